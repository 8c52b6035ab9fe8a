"""One-layer models: a Conv (its epilogue as ONNX nodes after it) and the same layer as one
SparseConv node; a QLinearConv and the same layer as one SparseQLinearConv node. What autotune
and calibration time, what the benchmark harness runs, and what the tests compare
(tests/models.py builds on these)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import epilogue
from ._contract import DOMAIN, OP_TYPE, OP_VERSION, Q_OP_TYPE
from .csr import dense_to_csr

IR_VERSION = 8  # loads in every ONNX Runtime from 1.21 on
OPSET = 17


def x_input(
    x_shape: Sequence[int], symbolic: Sequence[bool] = (), elem: int = TensorProto.FLOAT
) -> onnx.ValueInfoProto:
    """The input 'x' of element type `elem`, its axes named d0, d1, ... where `symbolic` says so."""
    dims: list[Any] = [f"d{i}" if i < len(symbolic) and symbolic[i] else d for i, d in enumerate(x_shape)]
    return helper.make_tensor_value_info("x", elem, dims)


def _model(nodes, inputs, initializers, opsets, elem: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """A graph of `nodes` whose output 'y' has element type `elem`."""
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", elem, None)], initializers)
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


@dataclass(frozen=True)
class Quantization:
    """A quantized Conv's scales and zero points (QLinearConv's inputs): X and Y of `dtype`
    ("uint8" or "int8"), the weight int8 (zero point 0) or uint8 (zero point 128)."""

    dtype: str
    x_scale: float
    x_zero: int
    w_scale: np.ndarray  # float32, [1] or [M]
    w_zero: int
    y_scale: float
    y_zero: int

    @property
    def elem(self) -> int:
        return TensorProto.UINT8 if self.dtype == "uint8" else TensorProto.INT8

    def initializers(self, w_dtype: np.dtype) -> dict[str, onnx.TensorProto]:
        return {
            "x_scale": numpy_helper.from_array(np.array(self.x_scale, np.float32), "x_scale"),
            "x_zero": numpy_helper.from_array(np.array(self.x_zero, self.dtype), "x_zero"),
            "w_scale": numpy_helper.from_array(self.w_scale.astype(np.float32), "w_scale"),
            "w_zero": numpy_helper.from_array(np.array(self.w_zero, w_dtype), "w_zero"),
            "y_scale": numpy_helper.from_array(np.array(self.y_scale, np.float32), "y_scale"),
            "y_zero": numpy_helper.from_array(np.array(self.y_zero, self.dtype), "y_zero"),
        }


def qlinear_conv_model(
    x_shape: Sequence[int],
    w_q: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict[str, Any],
    q: Quantization,
    symbolic: Sequence[bool] = (),
) -> onnx.ModelProto:
    """ONNX's QLinearConv with the dense quantized weight `w_q` and an int32 bias."""
    inits = q.initializers(w_q.dtype)
    inputs = ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero"]
    tensors = [*inits.values(), numpy_helper.from_array(w_q, "w")]
    if bias is not None:
        inputs.append("b")
        tensors.append(numpy_helper.from_array(bias.astype(np.int32), "b"))
    node = helper.make_node("QLinearConv", inputs, ["y"], kernel_shape=list(w_q.shape[2:]), **attrs)
    return _model([node], [x_input(x_shape, symbolic, q.elem)], tensors, [helper.make_opsetid("", OPSET)], q.elem)


def sparse_qlinear_conv_model(
    x_shape: Sequence[int],
    w_q: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict[str, Any],
    q: Quantization,
    symbolic: Sequence[bool] = (),
) -> onnx.ModelProto:
    """The same layer as one SparseQLinearConv node: the CSR of w_q - w_zero as int8."""
    csr = dense_to_csr((w_q.astype(np.int32) - q.w_zero).astype(np.float32))
    inits = q.initializers(w_q.dtype)
    del inits["w_zero"]
    tensors = [
        *inits.values(),
        numpy_helper.from_array(csr.values.astype(np.int8), "w_values"),
        numpy_helper.from_array(csr.col_indices, "w_cols"),
        numpy_helper.from_array(csr.row_ptr, "w_rows"),
    ]
    inputs = ["x", "x_scale", "x_zero", "w_values", "w_cols", "w_rows", "w_scale", "y_scale", "y_zero"]
    if bias is not None:
        inputs.append("b")
        tensors.append(numpy_helper.from_array(bias.astype(np.int32), "b"))
    node = helper.make_node(
        Q_OP_TYPE,
        inputs,
        ["y"],
        domain=DOMAIN,
        kernel_shape=list(w_q.shape[2:]),
        in_channels_per_group=w_q.shape[1],
        **attrs,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, OP_VERSION)]
    return _model([node], [x_input(x_shape, symbolic, q.elem)], tensors, opsets, q.elem)
