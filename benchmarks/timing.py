"""Timing one model pair: ORT's dense Conv against SparseConv, same process, same options,
inputs and outputs pre-bound, warm-up, then alternating repeated runs (medians, min, max).
The machinery is the library's (onnx_sparsify.timing), which the rewriter's end-to-end check
uses too; this module adds the result rows' fields."""

from __future__ import annotations

from onnx_sparsify.check import relative_l2
from onnx_sparsify.timing import BoundRun, Timing, make_session, time_pair

__all__ = ["BoundRun", "Timing", "make_session", "relative_l2", "time_pair", "timing_fields"]


def timing_fields(dense: Timing, sparse: Timing) -> dict[str, float]:
    """The figures every result row carries: medians, extremes, runs and the ratio."""
    return {
        "dense_ms": dense.median_ms,
        "dense_min_ms": dense.min_ms,
        "dense_max_ms": dense.max_ms,
        "sparse_ms": sparse.median_ms,
        "sparse_min_ms": sparse.min_ms,
        "sparse_max_ms": sparse.max_ms,
        "runs": sparse.runs,
        "ratio": dense.median_ms / sparse.median_ms,
    }
