"""One-layer models: a Conv (its epilogue as ONNX nodes after it) and the same layer as one
SparseConv node. What autotune and calibration time, what the benchmark harness runs, and
what the tests compare (tests/models.py builds on these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import epilogue
from ._contract import DOMAIN, OP_TYPE, OP_VERSION
from .csr import dense_to_csr

IR_VERSION = 8  # loads in every ONNX Runtime from 1.21 on
OPSET = 17


def x_input(x_shape: Sequence[int], symbolic: Sequence[bool] = ()) -> onnx.ValueInfoProto:
    """The input 'x', its axes named d0, d1, ... where `symbolic` says so."""
    dims: list[Any] = [f"d{i}" if i < len(symbolic) and symbolic[i] else d for i, d in enumerate(x_shape)]
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)


def _model(nodes, inputs, initializers, opsets) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers
    )
    return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)


def conv_model(
    x_shape: Sequence[int],
    weight: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict[str, Any],
    steps: Sequence[epilogue.Activation] = (),
    symbolic: Sequence[bool] = (),
    name: str = "conv",
) -> onnx.ModelProto:
    """x -> Conv `name` (weight 'w', bias 'b') [-> the epilogue `steps` as ONNX ops] -> y."""
    inits = [numpy_helper.from_array(np.asarray(weight, np.float32), "w")]
    conv_inputs = ["x", "w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(np.asarray(bias, np.float32), "b"))
        conv_inputs.append("b")
    nodes = [helper.make_node("Conv", conv_inputs, ["conv_out" if steps else "y"], name=name, **attrs)]
    if steps:
        act_nodes, act_inits = epilogue.onnx_nodes(steps, "conv_out", "y", weight.shape[0], weight.ndim)
        nodes += act_nodes
        inits += act_inits
    return _model(nodes, [x_input(x_shape, symbolic)], inits, epilogue.onnx_opsets(steps, OPSET))


def sparse_conv_model(
    x_shape: Sequence[int],
    values: np.ndarray,
    col_indices: np.ndarray,
    row_ptr: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict[str, Any],
    symbolic: Sequence[bool] = (),
    csr_as_inputs: bool = False,
    node_name: str = "sparse_conv",
) -> onnx.ModelProto:
    """x -> one SparseConv node with `attrs` -> y, the CSR tensors as given (a test may pass
    malformed ones) as initializers, or as graph inputs."""
    csr = [
        numpy_helper.from_array(np.asarray(values), "w_values"),
        numpy_helper.from_array(np.asarray(col_indices), "w_cols"),
        numpy_helper.from_array(np.asarray(row_ptr), "w_row_ptr"),
    ]
    inputs = ["x", "w_values", "w_cols", "w_row_ptr"]
    inits = [] if csr_as_inputs else list(csr)
    graph_inputs = [x_input(x_shape, symbolic)]
    if csr_as_inputs:
        graph_inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in csr]
    if bias is not None:
        inits.append(numpy_helper.from_array(np.asarray(bias, dtype=np.float32), "b"))
        inputs.append("b")
    node = helper.make_node(OP_TYPE, inputs, ["y"], name=node_name, domain=DOMAIN, **attrs)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, OP_VERSION)]
    return _model([node], graph_inputs, inits, opsets)


def sparse_conv_from_dense(
    x_shape: Sequence[int],
    weight: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict[str, Any],
    steps: Sequence[epilogue.Activation] = (),
    symbolic: Sequence[bool] = (),
    index_dtype: type = np.int32,
) -> onnx.ModelProto:
    """conv_model's layer as SparseConv: the weight as CSR, the epilogue fused."""
    csr = dense_to_csr(weight, index_dtype)
    sparse_attrs = dict(attrs, kernel_shape=list(weight.shape[2:]), in_channels_per_group=int(weight.shape[1]))
    sparse_attrs.update(epilogue.attributes(steps))
    return sparse_conv_model(x_shape, csr.values, csr.col_indices, csr.row_ptr, bias, sparse_attrs, symbolic)
