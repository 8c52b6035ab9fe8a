"""Whether a sparse Conv is worth rewriting: a per-layer cost model calibrated from the
benchmark harness (benchmarks/, results in README), or timing both variants (autotune).

The model predicts SparseConv's speedup over ORT's dense Conv on the CPU as
efficiency(density) / density, where efficiency is the sparse kernel's multiply-add rate
relative to dense Conv's for that kind of layer, fitted linearly in the density to the
harness's measurements at 90% and 50% zeros (1 thread, AMD Zen 5 with AVX-512):

    kind                      measured efficiency (90% zeros, 50% zeros)    fit
    unit stride               R1 .38/.50, R2 .36/.60, R4 .33/.38, R5 .36/.45  0.33 + 0.25 d
    strided                   R3 .26/.40, S1-like stems                        0.24 + 0.30 d
    depthwise (C/group = 1)   D1 .25/.45                                       0.20 + 0.50 d
    grouped, C/group <= 8     G1 .70                                           0.50 + 0.30 d

When the layer's shapes are known (static models, or --input-shape), fixed costs count too:
SparseConv copies a padded or strided input once per call (about COPY_GB_PER_S), which
matters for small layers such as a network's stem. Dense multiply-add rates per kind were
measured by the same harness (ORT's Conv on this CPU, 1 thread).

A Conv is rewritten when the predicted speedup is at least MARGIN, so that a rewritten layer
is not slower than its dense Conv even where the model errs by 10%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MARGIN = 1.1

# kind -> (efficiency at density 0, slope in density)
EFFICIENCY = {
    "unit stride": (0.33, 0.25),
    "strided": (0.24, 0.30),
    "depthwise": (0.20, 0.50),
    "grouped": (0.50, 0.30),
}


# ORT's dense Conv, multiply-adds per microsecond by kind (harness: R1-R5 ~55e3, D1 ~20e3, G1 ~13e3).
DENSE_MACS_PER_US = {"unit stride": 55e3, "strided": 55e3, "depthwise": 20e3, "grouped": 13e3}
COPY_GB_PER_S = 10.0
SPARSE_CALL_US = 3.0  # SparseConv's fixed cost per call beyond ORT's own per-node cost


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


@dataclass(frozen=True)
class Decision:
    rewrite: bool
    reason: str


def predicted_speedup(traits: LayerTraits, sparsity: float) -> float:
    density = max(1.0 - sparsity, 1e-6)
    base, slope = EFFICIENCY[traits.kind]
    speedup = (base + slope * density) / density
    if not (traits.weight_size and traits.output_positions):
        return speedup
    dense_us = traits.weight_size * traits.output_positions / DENSE_MACS_PER_US[traits.kind]
    copy_us = traits.copied_input_elements * 4 / (COPY_GB_PER_S * 1e3)
    return dense_us / (dense_us / speedup + copy_us + SPARSE_CALL_US)


# CUDA: no GPU measurement calibrates the CUDA kernel (docs/performance.md, "CUDA kernel"), so
# the default decision for the CUDA execution provider rewrites nothing: an uncalibrated guess
# could make a GPU model slower. --autotune on a machine with the GPU times both variants per
# layer; --min-sparsity forces a rewrite for users who know better.
CUDA_NO_MEASUREMENT = (
    "no GPU measurement: SparseConv on CUDA is unmeasured, so the Conv stays dense; "
    "use --autotune on the GPU machine or --min-sparsity"
)


def decide(
    sparsity: float, min_sparsity: float | None, traits: LayerTraits | None = None, provider: str = "cpu"
) -> Decision:
    """The default decision (cost model), or the user's --min-sparsity threshold. For CUDA there
    is no cost model: without --min-sparsity the Conv stays dense (autotune may overrule it)."""
    if min_sparsity is not None:
        if sparsity >= min_sparsity:
            return Decision(True, f"{sparsity:.1%} zeros >= {min_sparsity:.0%} (--min-sparsity)")
        return Decision(False, f"{sparsity:.1%} zeros < {min_sparsity:.0%} (--min-sparsity)")
    if provider == "cuda":
        return Decision(False, f"{sparsity:.1%} zeros, {CUDA_NO_MEASUREMENT}")
    speedup = predicted_speedup(traits or LayerTraits(1, 64, False), sparsity)
    kind = (traits or LayerTraits(1, 64, False)).kind
    verdict = ">=" if speedup >= MARGIN else "<"
    # Two decimals, rounded down: never "1.1x < 1.1x" for a prediction just under MARGIN.
    shown = math.floor(speedup * 100) / 100
    if speedup < MARGIN:
        shown = min(shown, math.floor(MARGIN * 100 - 1) / 100)
    return Decision(speedup >= MARGIN, f"{sparsity:.1%} zeros, {kind}: predicted {shown:.2f}x {verdict} {MARGIN}x")
