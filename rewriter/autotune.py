"""--autotune: time a Conv both ways on this machine and keep the faster, instead of trusting
the cost model. Each candidate layer runs alone, dense (ORT's Conv with the folded weight and
the activation as its own node) and sparse (SparseConv through the plugin), on random inputs
of the layer's inferred shape, in sessions as a deployment makes them (timing.make_session).

With provider "cuda" both run on the CUDA execution provider alone (the CPU fallback disabled,
so neither can be timed on the CPU by mistake), input and output bound in device memory. That
needs onnxruntime-gpu, a plugin built with its CUDA kernels and a usable GPU;
cuda_unavailable_reason() says which is missing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import epilogue
from .csr import CsrWeight
from .layer_models import conv_model, sparse_conv_model
from .timing import BoundRun, make_session, time_alternating

MARGIN = 1.05  # sparse must win by this much


CUDA_EP = "CUDAExecutionProvider"


def cuda_unavailable_reason() -> str | None:
    """None when layers can be timed on the CUDA execution provider here, else why not."""
    import onnxruntime as ort

    if CUDA_EP not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} here has no CUDA execution provider (install onnxruntime-gpu)"
    from . import _core

    if not _core.build_info()["cuda_compiled"]:
        return "the plugin was built without its CUDA kernels"
    if not _core.cuda_available():
        return "no usable CUDA device and driver on this machine"
    return None


def time_layer(
    x_shape: Sequence[int],
    weight: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict,
    activation: Sequence[epilogue.Activation] | None,
    csr: CsrWeight,
    provider: str = "cpu",
    threads: int = 0,
    block_s: float = 0.05,
) -> tuple[float, float]:
    """Median milliseconds of (dense, sparse) for one layer on `provider` ("cpu" or "cuda"), with
    the epilogue `activation` (a chain of steps; empty or None for none), `threads` intra-op
    threads (0: ORT's default), in alternating blocks (timing.time_alternating)."""
    activation = list(activation or ())
    dense = conv_model(x_shape, weight, bias, attrs, activation)
    sparse_attrs = dict(attrs, kernel_shape=list(csr.kernel_shape), **epilogue.attributes(activation))
    sparse_attrs["in_channels_per_group"] = csr.in_channels_per_group
    sparse = sparse_conv_model(x_shape, csr.values, csr.col_indices, csr.row_ptr, bias, sparse_attrs)
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    device = "cuda" if provider == "cuda" else "cpu"
    (dense_t, sparse_t), _ = time_alternating(
        [
            lambda: BoundRun(make_session(dense, False, threads, provider), {"x": x}, device),
            lambda: BoundRun(make_session(sparse, True, threads, provider), {"x": x}, device),
        ],
        rounds=3,
        block_s=block_s,
    )
    return dense_t.median_ms, sparse_t.median_ms
