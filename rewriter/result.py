"""Decisions as values: why a Conv cannot become SparseConv, or a node after it cannot fold into
it, is a Refusal (a stable code and the report's message), not a bare string. A match or fold
returns its value or a Refusal; callers test ``isinstance(result, Refusal)``; tests assert on
the code, the report shows the message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Code(str, Enum):
    """Short, stable identifiers of refusals and of who decided a layer (Decision.code)."""

    # Refusals: a Conv that cannot become SparseConv, a node that cannot fold into one.
    NOT_APPLICABLE = "not_applicable"  # not the node kind the function matches
    FROM_CALLER = "from_caller"  # attributes that refer to a function's caller
    BAD_ATTRIBUTE = "bad_attribute"  # an attribute of a type or value that cannot fold
    UNSUPPORTED_MODE = "unsupported_mode"  # training mode, spatial=0, an unknown Gelu approximation
    MISSING_INPUT = "missing_input"  # a weight or parameter input absent
    EXTRA_OUTPUTS = "extra_outputs"
    NOT_CONSTANT = "not_constant"  # a weight, parameter or operand computed in the graph
    WRONG_DTYPE = "wrong_dtype"
    WRONG_SHAPE = "wrong_shape"  # a rank, size or broadcast the rewrite does not take
    NOT_FINITE = "not_finite"  # NaN or infinity in a parameter
    NOT_POSITIVE = "not_positive"  # a BatchNormalization's variance + epsilon
    OVERFLOW = "overflow"  # the folded weights or bias, or a reciprocal, not finite in float32
    DIVIDE_BY_ZERO = "divide_by_zero"
    BAD_BOUNDS = "bad_bounds"  # Clip's min above its max
    OTHER_READERS = "other_readers"  # the value is a graph output or other nodes read it
    EPILOGUE_FULL = "epilogue_full"  # the step limit, or a second PRelu
    CLAIMED = "claimed"  # another Conv's SparseConv takes the node
    SHAPES_UNKNOWN = "shapes_unknown"  # a residual Add whose inputs are not known to match
    CONV_UNSUPPORTED = "conv_unsupported"  # a Conv the kernel does not run (SAME padding with dilations)
    # Layer decisions: who decided (Decision.code, LayerReport.code).
    KEEP = "keep"  # --keep
    MIN_SPARSITY = "min_sparsity"  # the user's threshold
    COST_MODEL = "cost_model"
    CUDA_UNMEASURED = "cuda_unmeasured"  # CUDA without --autotune: no measurement, stays dense
    NOT_AUTOTUNED = "not_autotuned"  # --autotune could not time it: the cost model decided
    AUTOTUNE = "autotune"  # both variants timed (Decision.dense_ms, sparse_ms)
    REVERTED = "reverted"  # the end-to-end check measured it slower in the model
    KEPT_DENSE = "kept_dense"  # the end-to-end check kept the whole model dense

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Refusal:
    """Why something cannot be done: a Code and the message the report shows."""

    code: Code
    message: str

    def __str__(self) -> str:
        return self.message

    def about(self, subject: str) -> Refusal:
        """The same refusal, its message naming what it refuses: "Clip 'clip1' not folded: ..."."""
        return Refusal(self.code, f"{subject} not folded: {self.message}")
