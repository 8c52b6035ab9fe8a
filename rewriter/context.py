"""The state one rewrite of a model carries: the user's choices, the shapes inference found, the
report being written, the names in use, and what the passes of one sparsify() call share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import onnx

from .decision import REFERENCE, Decision, Rates
from .end_to_end import LayerKey
from .graph_walk import all_graphs
from .report import Report

log = logging.getLogger(__name__)


@dataclass
class Context:
    min_sparsity: float | None
    keep: frozenset[str]
    index_dtype: type
    shapes: dict[str, list]
    report: Report
    names: set[str]
    touched: set[str] = field(default_factory=set)  # constants a rewrite stopped reading
    autotune: bool = False
    provider: str = "cpu"
    cuda_unavailable: str | None = None  # why --autotune cannot time on CUDA here
    tick: Callable[[], None] = lambda: None
    autotune_skipped: int = 0  # Convs --autotune could not time: their input size is unknown
    # Shapes inferred without the model's declared value_info (known_shapes(declared=False)):
    # what the residual fusion trusts.
    inferred_shapes: dict[str, list] = field(default_factory=dict)
    rates: Rates = REFERENCE
    threads: int = 1  # for autotune's timing
    # Shared by the rewrites of one sparsify() call: decisions made (autotune times a layer once),
    # layers the end-to-end check reverted (key -> why).
    memo: dict[LayerKey, Decision] = field(default_factory=dict)
    reverted: Mapping[LayerKey, str] = field(default_factory=dict)
    outputs: dict[str, LayerKey] = field(default_factory=dict)  # SparseConv output -> its layer

    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name


def known_shapes(
    model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None, declared: bool = True
) -> dict[str, list]:
    """Value shapes from ONNX shape inference (with `input_shapes` fixing graph inputs), for
    the report and autotuning; empty where inference fails. With `declared` False, the shapes
    the model merely declares for computed values (value_info, the main graph's outputs) are
    dropped first, so that every shape comes from the graph inputs, the initializers and the
    operators: what a fusion that relies on a shape (a residual Add) may trust. ONNX Runtime
    does not check declared value_info against what runs."""
    if input_shapes or not declared:
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        if not declared:
            for graph in all_graphs(fixed):
                del graph.value_info[:]
            for value in fixed.graph.output:
                if value.type.HasField("tensor_type"):
                    value.type.tensor_type.ClearField("shape")
        for value in fixed.graph.input:
            if input_shapes and value.name in input_shapes:
                dims = value.type.tensor_type.shape.dim
                del dims[:]
                for d in input_shapes[value.name]:
                    dims.add().dim_value = d
        model = fixed
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as e:  # shape inference is a nicety for the report, never a reason to fail
        log.debug("shape inference failed: %s", e)
        return {}
    shapes = {}
    for graph in all_graphs(inferred):
        for v in [*graph.input, *graph.value_info, *graph.output]:
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
                shapes[v.name] = [
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in v.type.tensor_type.shape.dim
                ]
    return shapes
