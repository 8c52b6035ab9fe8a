"""Whether a sparse Conv is worth rewriting.

Until the benchmark harness calibrates a per-layer cost model, the decision is a documented
sparsity threshold: SparseConv replaces a Conv whose weight has at least DEFAULT_MIN_SPARSITY
zeros. Users override it with ``min_sparsity`` (0 rewrites every eligible Conv).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MIN_SPARSITY = 0.8


@dataclass(frozen=True)
class Decision:
    rewrite: bool
    reason: str


def decide(sparsity: float, min_sparsity: float | None) -> Decision:
    threshold = DEFAULT_MIN_SPARSITY if min_sparsity is None else min_sparsity
    source = "default threshold" if min_sparsity is None else "--min-sparsity"
    if sparsity >= threshold:
        return Decision(True, f"{sparsity:.1%} zeros >= {threshold:.0%} ({source})")
    return Decision(False, f"{sparsity:.1%} zeros < {threshold:.0%} ({source})")
