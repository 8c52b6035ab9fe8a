"""--autotune: time a Conv both ways on this machine and keep the faster, instead of trusting
the cost model. Each candidate layer runs alone, dense (ORT's Conv with the folded weight and
the activation as its own node) and sparse (SparseConv through the plugin), on random inputs
of the layer's inferred shape, with ORT's default session options."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ._contract import DOMAIN, OP_TYPE, OP_VERSION
from ._plugin import session_options
from .csr import CsrWeight

MARGIN = 1.05  # sparse must win by this much


def _median_ms(session: ort.InferenceSession, x: np.ndarray, runs: int) -> float:
    feed = {"x": x}
    for _ in range(2):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_layer(
    x_shape: Sequence[int],
    weight: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict,
    activation: tuple[str, tuple[float, ...]] | None,
    csr: CsrWeight,
    runs: int = 7,
) -> tuple[float, float]:
    """Median milliseconds of (dense, sparse) for one layer."""
    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias.astype(np.float32), "b"))
        inputs.append("b")
    nodes = [helper.make_node("Conv", inputs, ["c" if activation else "y"], **attrs)]
    sparse_attrs = dict(attrs, kernel_shape=list(csr.kernel_shape))
    if activation:
        name, params = activation
        act_inits, act_attrs = [], {}
        if name == "Clip":
            act_inits = [
                numpy_helper.from_array(np.float32(params[0]), "lo"),
                numpy_helper.from_array(np.float32(params[1]), "hi"),
            ]
        elif name in ("LeakyRelu", "HardSigmoid"):
            act_attrs = dict(zip(("alpha", "beta"), params))
        nodes.append(helper.make_node(name, ["c", *[t.name for t in act_inits]], ["y"], **act_attrs))
        inits += act_inits
        sparse_attrs["activation"] = name
        if params:
            sparse_attrs["activation_params"] = list(params)
    graph_io = (
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    dense = helper.make_model(
        helper.make_graph(nodes, "dense", *graph_io, inits), opset_imports=[helper.make_opsetid("", 17)], ir_version=8
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
    dense_session = ort.InferenceSession(dense.SerializeToString(), providers=["CPUExecutionProvider"])
    dense_ms = _median_ms(dense_session, x, runs)
    del dense_session  # one live session at a time: idle intra-op threads keep spinning
    sparse_session = ort.InferenceSession(
        sparse.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    return dense_ms, _median_ms(sparse_session, x, runs)


def conv_attributes(node: onnx.NodeProto) -> dict:
    keep = ("strides", "pads", "dilations", "group", "auto_pad")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in keep}
    if isinstance(attrs.get("auto_pad"), bytes):
        attrs["auto_pad"] = attrs["auto_pad"].decode()
    return attrs
