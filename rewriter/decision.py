"""Whether a sparse Conv is worth rewriting: a per-layer cost model over a machine's measured
rates (calibration.py), or timing both variants (autotune); the end-to-end check (end_to_end.py)
then measures the whole model and reverts what loses.

The model predicts SparseConv's speedup over ORT's dense Conv on the CPU as
efficiency(density) / density, where efficiency is the sparse kernel's multiply-add rate
relative to dense Conv's for that kind of layer, linear in the density. Calibration measures
it per kind at two densities on the machine that will run the model. The line holds only where
it was measured: at higher densities the efficiency stays at most its value at the densest
probe and falls to at most 1 at density 1 (sparse_efficiency), so a Conv with few zeros is
never predicted faster than the dense work it repeats. REFERENCE holds the
constants fitted when the model was written (1 thread, AMD Zen 5 with AVX-512), from the
harness's measurements at 90% and 50% zeros:

    kind                      measured efficiency (90% zeros, 50% zeros)    fit
    unit stride               R1 .38/.50, R2 .36/.60, R4 .33/.38, R5 .36/.45  0.33 + 0.25 d
    strided                   R3 .26/.40, S1-like stems                        0.24 + 0.30 d
    depthwise (C/group = 1)   D1 .25/.45                                       0.20 + 0.50 d
    grouped, C/group <= 8     G1 .70                                           0.50 + 0.30 d

When the layer's shapes are known (static models, or --input-shape), fixed costs count too:
SparseConv copies a padded or strided input once per call (copy_gb_per_s) and has a fixed
cost per call (sparse_call_us), which matter for small layers such as a network's stem.

A Conv is rewritten when the predicted speedup is at least MARGIN, so that a rewritten layer
is not slower than its dense Conv even where the model errs by 10%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .result import Code
from .shapes import resolve_shape

MARGIN = 1.1

KINDS = ("unit stride", "strided", "depthwise", "grouped")


@dataclass(frozen=True)
class Rates:
    """A machine's rates as the cost model uses them: measured by calibration.calibrate() on the
    machine the model will run on, or REFERENCE."""

    # kind -> (sparse efficiency at density 0, slope in density): SparseConv's multiply-add rate
    # on the nonzeros relative to ORT's dense Conv on all weights.
    efficiency: dict[str, tuple[float, float]]
    dense_macs_per_us: dict[str, float]  # ORT's dense Conv, multiply-adds per microsecond, by kind
    copy_gb_per_s: float = 10.0  # SparseConv's copy of a padded or strided input
    sparse_call_us: float = 3.0  # SparseConv's fixed cost per call beyond ORT's own per-node cost
    machine: str = ""  # the CPU they were measured on
    threads: int = 1
    versions: dict[str, str] = field(default_factory=dict)  # onnxruntime, onnx_sparsify, plugin, cpu_isa, cpu_strategy
    # The highest density calibration measured (calibration.DENSITIES; REFERENCE's fit went to
    # 50% zeros). Beyond it the efficiency is not extrapolated: see sparse_efficiency().
    densest: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Rates:
        """Raises ValueError for data that is not a complete set of rates."""
        try:
            efficiency = {k: (float(data["efficiency"][k][0]), float(data["efficiency"][k][1])) for k in KINDS}
            dense = {k: float(data["dense_macs_per_us"][k]) for k in KINDS}
            rates = cls(
                efficiency,
                dense,
                float(data["copy_gb_per_s"]),
                float(data["sparse_call_us"]),
                str(data.get("machine", "")),
                int(data.get("threads", 1)),
                {str(k): str(v) for k, v in dict(data.get("versions", {})).items()},
                float(data.get("densest", cls.__dataclass_fields__["densest"].default)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"not a calibration of onnx-sparsify's cost model ({type(e).__name__}: {e})") from None
        numbers = [*dense.values(), rates.copy_gb_per_s, rates.densest]
        numbers += [v for pair in efficiency.values() for v in pair]
        if (
            not all(math.isfinite(v) for v in numbers)
            or min(dense.values()) <= 0
            or rates.copy_gb_per_s <= 0
            or not 0 < rates.densest <= 1
        ):
            raise ValueError("not a calibration of onnx-sparsify's cost model (rates must be finite and positive)")
        return rates


# The constants fitted on the development machine (1 thread, AMD Zen 5 with AVX-512): what the
# model uses when it is told not to calibrate. ORT's dense rates: R1-R5 ~55e3, D1 ~20e3, G1 ~13e3.
REFERENCE = Rates(
    efficiency={
        "unit stride": (0.33, 0.25),
        "strided": (0.24, 0.30),
        "depthwise": (0.20, 0.50),
        "grouped": (0.50, 0.30),
    },
    dense_macs_per_us={"unit stride": 55e3, "strided": 55e3, "depthwise": 20e3, "grouped": 13e3},
    densest=0.5,
    machine="reference: AMD EPYC (Zen 5), the constants fitted when the cost model was written",
)


@dataclass(frozen=True)
class LayerTraits:
    """What the cost model needs to know about a Conv; sizes are 0 when unknown."""

    group: int
    in_channels_per_group: int
    strided: bool
    weight_size: int = 0  # M * C/group * prod(kernel)
    output_positions: int = 0  # N * prod(output spatial)
    copied_input_elements: int = 0  # N * C * prod(padded spatial) when the kernel copies the input

    @property
    def kind(self) -> str:
        if self.in_channels_per_group == 1 and self.group > 1:
            return "depthwise"
        if self.group > 1 and self.in_channels_per_group <= 8:
            return "grouped"
        return "strided" if self.strided else "unit stride"


def _one_image(shape: Sequence | None) -> list[int] | None:
    """One image's sizes (batch 1, known or not: costs scale with the batch on both sides), or
    None unless every other size is known (shapes.resolve_shape)."""
    sizes = resolve_shape(shape)
    return [1, *sizes[1:]] if sizes else None


def layer_traits(
    weight: np.ndarray,
    group: int,
    strides: Sequence[int],
    pads: Sequence[int],
    same_padding: bool,
    x_shape: Sequence | None,
    y_shape: Sequence | None,
) -> LayerTraits:
    """The cost model's view of a Conv; shapes may be unknown (None, or sizes that are not ints)."""
    k = weight.ndim - 2
    strided = any(s > 1 for s in strides)
    x, y = _one_image(x_shape), _one_image(y_shape)
    positions = int(np.prod([y[0], *y[2:]])) if y else 0
    # The CPU kernel copies a padded or strided input, except on its plane path (unit strides,
    # few nonzeros per output channel, large output planes: the kernel's thresholds).
    from . import _core

    out_plane = int(np.prod(y[2:])) if y else 0  # one image's, as the kernel decides
    plane_path = _core.cpu_plane_path(not strided, int(np.count_nonzero(weight)), int(weight.shape[0]), out_plane)
    copied = 0
    if (any(pads) or same_padding or strided) and not plane_path and x and len(x) == k + 2:
        padded = [d + pads[i] + pads[i + k] for i, d in enumerate(x[2:])] if len(pads) == 2 * k else x[2:]
        copied = int(np.prod([x[0], x[1], *padded]))
    return LayerTraits(group, weight.shape[1], strided, int(weight.size), positions, copied)


@dataclass(frozen=True)
class Decision:
    """One layer's decision as a value: whether to rewrite it, who decided (code), the report's
    reason, and the numbers it rests on."""

    rewrite: bool
    reason: str
    predicted: float | None = None  # the cost model's speedup, where it made one
    code: Code = Code.COST_MODEL
    dense_ms: float | None = None  # autotune's median times of the layer alone (Code.AUTOTUNE)
    sparse_ms: float | None = None


def dense_us(traits: LayerTraits, rates: Rates = REFERENCE) -> float | None:
    """ORT's dense Conv's predicted time, or None when the layer's sizes are unknown."""
    if not (traits.weight_size and traits.output_positions):
        return None
    return traits.weight_size * traits.output_positions / rates.dense_macs_per_us[traits.kind]


def sparse_efficiency(kind: str, density: float, rates: Rates = REFERENCE) -> float:
    """SparseConv's multiply-add rate on the nonzeros relative to ORT's dense Conv's on all
    weights, at this density: the calibrated line where calibration measured (up to
    rates.densest). Beyond it nothing was measured, so the line is not extrapolated: the rate
    per nonzero stays at most what it was at the densest probe (the sparse time grows with the
    nonzeros) and falls linearly to at most dense Conv's at density 1, where the sparse kernel
    does all the dense work and must never be predicted faster."""
    base, slope = rates.efficiency[kind]
    line = max(base + slope * density, 1e-3)
    top = rates.densest
    if density <= top or top >= 1.0:
        return line
    edge = max(base + slope * top, 1e-3)
    towards_dense = edge + (min(edge, 1.0) - edge) * (density - top) / (1.0 - top)
    return min(line, towards_dense)


def predicted_speedup(traits: LayerTraits, sparsity: float, rates: Rates = REFERENCE) -> float:
    density = max(1.0 - sparsity, 1e-6)
    speedup = sparse_efficiency(traits.kind, density, rates) / density
    dense = dense_us(traits, rates)
    if dense is None:
        return speedup
    # The CPU kernel computes whole tiles of positions: a 7x7 output fills 49 of a tile's 128.
    tile = _tile_positions()
    speedup *= traits.output_positions / (math.ceil(traits.output_positions / tile) * tile)
    copy_us = traits.copied_input_elements * 4 / (rates.copy_gb_per_s * 1e3)
    return dense / (dense / speedup + copy_us + max(rates.sparse_call_us, 0.0))


def _tile_positions() -> int:
    from . import _core

    return int(_core.CPU_TILE_POSITIONS)


# CUDA: no GPU measurement calibrates the CUDA kernel (docs/performance.md, "CUDA kernel"), so
# the default decision for the CUDA execution provider rewrites nothing: an uncalibrated guess
# could make a GPU model slower. --autotune on a machine with the GPU times both variants per
# layer; --min-sparsity forces a rewrite for users who know better.
CUDA_NO_MEASUREMENT = (
    "no GPU measurement: SparseConv on CUDA is unmeasured, so the Conv stays dense; "
    "use --autotune on the GPU machine or --min-sparsity"
)


def decide(
    sparsity: float,
    min_sparsity: float | None,
    traits: LayerTraits | None = None,
    provider: str = "cpu",
    rates: Rates = REFERENCE,
) -> Decision:
    """The default decision (cost model), or the user's --min-sparsity threshold. For CUDA there
    is no cost model: without --min-sparsity the Conv stays dense (autotune may overrule it)."""
    if min_sparsity is not None:
        if sparsity >= min_sparsity:
            return Decision(
                True, f"{sparsity:.1%} zeros >= {min_sparsity:.0%} (--min-sparsity)", code=Code.MIN_SPARSITY
            )
        return Decision(False, f"{sparsity:.1%} zeros < {min_sparsity:.0%} (--min-sparsity)", code=Code.MIN_SPARSITY)
    if provider == "cuda":
        return Decision(False, f"{sparsity:.1%} zeros, {CUDA_NO_MEASUREMENT}", code=Code.CUDA_UNMEASURED)
    traits = traits or LayerTraits(1, 64, False)
    speedup = predicted_speedup(traits, sparsity, rates)
    kind = traits.kind
    verdict = ">=" if speedup >= MARGIN else "<"
    reason = f"{sparsity:.1%} zeros, {kind}: predicted {shown_speedup(speedup):.2f}x {verdict} {MARGIN}x"
    return Decision(speedup >= MARGIN, reason, speedup, Code.COST_MODEL)


def shown_speedup(speedup: float) -> float:
    """A predicted speedup as the reason prints it: two decimals, rounded down, and below MARGIN
    for one below it (never "1.1x < 1.1x" for a prediction just under MARGIN)."""
    shown = math.floor(speedup * 100) / 100
    return min(shown, math.floor(MARGIN * 100 - 1) / 100) if speedup < MARGIN else shown
