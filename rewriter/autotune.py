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
from onnx import TensorProto, helper, numpy_helper

from . import epilogue
from ._contract import DOMAIN, OP_TYPE, OP_VERSION
from .csr import CsrWeight
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
    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias.astype(np.float32), "b"))
        inputs.append("b")
    nodes = [helper.make_node("Conv", inputs, ["c" if activation else "y"], **attrs)]
    sparse_attrs = dict(attrs, kernel_shape=list(csr.kernel_shape), **epilogue.attributes(activation))
    if activation:
        act_nodes, act_inits = epilogue.onnx_nodes(activation, "c", "y", weight.shape[0], weight.ndim)
        nodes += act_nodes
        inits += act_inits
    graph_io = (
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    dense = helper.make_model(
        helper.make_graph(nodes, "dense", *graph_io, inits),
        opset_imports=epilogue.onnx_opsets(activation),
        ir_version=8,
    )
    csr_inits = [
        numpy_helper.from_array(csr.values, "v"),
        numpy_helper.from_array(csr.col_indices, "ci"),
        numpy_helper.from_array(csr.row_ptr, "rp"),
    ]
    sparse_inputs = ["x", "v", "ci", "rp"] + (["b"] if bias is not None else [])
    sparse_node = helper.make_node(OP_TYPE, sparse_inputs, ["y"], domain=DOMAIN, **sparse_attrs)
    sparse = helper.make_model(
        helper.make_graph([sparse_node], "sparse", *graph_io, csr_inits + (inits[1:2] if bias is not None else [])),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OP_VERSION)],
        ir_version=8,
    )
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
