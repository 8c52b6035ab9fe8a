"""Sparse int8: the quantized Convs people deploy, rewritten to SparseQLinearConv (docs/operator.md).

Two forms of ONNX Runtime's quantizer (``onnxruntime.quantization.quantize_static``) are
recognized in a model's main graph:

- QOperator: a ``QLinearConv`` node whose weight, scales and zero points are constants;
- QDQ: ``DequantizeLinear(x_q) -> Conv -> QuantizeLinear`` with the weight (and an int32 bias)
  constants behind their own DequantizeLinear, the Conv's output read by the QuantizeLinear alone.
  ONNX Runtime fuses that group into QLinearConv on the CPU; SparseQLinearConv computes the same.

A weight element is zero where it equals its zero point; a layer is rewritten when at least
``min_sparsity`` of its weight is. Every quantized Conv gets a result with the reason. Not yet in
``sparsify()`` and the CLI: its decision (calibration, the end-to-end check) comes with the next
steps of issue 22."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._contract import DOMAIN, OP_VERSION, Q_OP_TYPE
from .conv_to_sparse import conv_attributes
from .csr import dense_to_csr
from .graph_walk import node_label, value_uses
from .model_io import cap_ir_version, tensor_value
from .result import Code, Refusal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizedLayer:
    """One quantized Conv: the node (QLinearConv, or the QDQ group's Conv), its weight's zeros,
    and whether it became SparseQLinearConv, else why not."""

    node: str
    form: str  # "QOperator" or "QDQ"
    sparsity: float | None
    rewritten: bool
    refusal: Refusal | None = None


@dataclass(frozen=True)
class _Match:
    """A quantized Conv's parts: the inputs of QLinearConv in its order (W as a constant), the
    Conv node whose attributes apply, the nodes the rewrite replaces and its output."""

    inputs: list[str]  # x, x_scale, x_zero, (w), w_scale, w_zero, y_scale, y_zero, [b]
    weight: np.ndarray
    w_zero: np.ndarray
    conv: onnx.NodeProto
    replaced: list[onnx.NodeProto]
    output: str
    feeders: tuple[onnx.NodeProto, ...] = ()  # the DequantizeLinear nodes before the group


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in graph.initializer}


def _qoperator(node: onnx.NodeProto, consts: dict[str, onnx.TensorProto]) -> _Match | Refusal:
    inputs = list(node.input)
    missing = [name for name in inputs[1:] if name and name not in consts]
    if missing:
        return Refusal(Code.NOT_CONSTANT, f"its inputs {', '.join(missing)} are not constant initializers")
    return _Match(
        inputs, tensor_value(consts[inputs[3]]), tensor_value(consts[inputs[5]]), node, [node], node.output[0]
    )


def _qdq(conv: onnx.NodeProto, graph: onnx.GraphProto, consts, producers, consumers) -> _Match | Refusal:
    """DequantizeLinear(x_q) -> Conv(., DQ(w), [DQ(b)]) -> QuantizeLinear, or why not."""

    def dq(name: str) -> onnx.NodeProto | None:
        node = producers.get(name)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    dq_x, dq_w = dq(conv.input[0]), dq(conv.input[1])
    if dq_x is None or dq_w is None:
        return Refusal(Code.NOT_APPLICABLE, "not a quantized (QDQ) Conv")
    readers = consumers.get(conv.output[0], [])
    if len(readers) != 1 or readers[0].op_type != "QuantizeLinear" or conv.output[0] in {o.name for o in graph.output}:
        return Refusal(Code.OTHER_READERS, "its output is not read by one QuantizeLinear alone")
    q = readers[0]
    needed = [*dq_x.input[1:], *dq_w.input, *q.input[1:]]
    bias: str | None = None
    if len(conv.input) > 2 and conv.input[2]:
        dq_b = dq(conv.input[2])
        if dq_b is None or dq_b.input[0] not in consts:
            return Refusal(Code.NOT_CONSTANT, "its bias is not an int32 constant behind a DequantizeLinear")
        bias = dq_b.input[0]
        needed.append(bias)
    missing = [name for name in needed if name and name not in consts]
    if missing or len(dq_x.input) < 3 or len(dq_w.input) < 3 or len(q.input) < 3:
        return Refusal(Code.NOT_CONSTANT, "its scales, zero points or weight are not all constant initializers")
    inputs = [dq_x.input[0], dq_x.input[1], dq_x.input[2], dq_w.input[0], dq_w.input[1], dq_w.input[2]]
    inputs += [q.input[1], q.input[2], *([bias] if bias else [])]
    if bias is not None and tensor_value(consts[bias]).dtype != np.int32:
        return Refusal(Code.WRONG_DTYPE, "its bias is not int32")
    weight = tensor_value(consts[dq_w.input[0]])
    feeders = (dq_x, dq_w, *([dq(conv.input[2])] if bias else []))
    return _Match(inputs, weight, tensor_value(consts[dq_w.input[2]]), conv, [conv, q], q.output[0], feeders)


def _centered(match: _Match) -> np.ndarray | Refusal:
    """W minus its zero point (per tensor or per output channel), as int8."""
    w = match.weight
    if w.dtype not in (np.int8, np.uint8):
        return Refusal(Code.WRONG_DTYPE, f"its weight is {w.dtype}, not int8 or uint8")
    zero = match.w_zero.astype(np.int32).reshape(-1)
    if zero.size not in (1, w.shape[0]):
        return Refusal(Code.WRONG_SHAPE, f"its weight zero point has {zero.size} values, not 1 or {w.shape[0]}")
    centered = w.astype(np.int32) - zero.reshape([-1] + [1] * (w.ndim - 1))
    if centered.min(initial=0) < -128 or centered.max(initial=0) > 127:
        return Refusal(Code.OVERFLOW, "its weight minus its zero point leaves int8 (-128..127)")
    return centered.astype(np.int8)


def _sparse_node(match: _Match, centered: np.ndarray, name: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    csr = dense_to_csr(centered.astype(np.float32))
    names = [f"{name}_W_values", f"{name}_W_col_indices", f"{name}_W_row_ptr"]
    tensors = [
        numpy_helper.from_array(csr.values.astype(np.int8), names[0]),
        numpy_helper.from_array(csr.col_indices, names[1]),
        numpy_helper.from_array(csr.row_ptr, names[2]),
    ]
    x, x_scale, x_zero, _, w_scale, _, y_scale, y_zero, *bias = match.inputs
    attributes = conv_attributes(match.conv)
    attributes["kernel_shape"] = list(centered.shape[2:])
    attributes["in_channels_per_group"] = int(centered.shape[1])
    node = helper.make_node(
        Q_OP_TYPE, [x, x_scale, x_zero, *names, w_scale, y_scale, y_zero, *bias], [match.output], name=name,
        domain=DOMAIN, **attributes,
    )  # fmt: skip
    return node, tensors


def sparsify_quantized(
    model: onnx.ModelProto, min_sparsity: float = 0.7
) -> tuple[onnx.ModelProto, list[QuantizedLayer]]:
    """A copy of `model` whose quantized Convs (QOperator QLinearConv, QDQ groups) with at least
    `min_sparsity` of their weight at the zero point are SparseQLinearConv nodes, and a result for
    every quantized Conv. The caller's model is not changed."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    consts = _constants(graph)
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    layers: list[QuantizedLayer] = []
    replacements: dict[int, tuple[onnx.NodeProto, list[onnx.NodeProto]]] = {}
    new_tensors: list[onnx.TensorProto] = []
    freed: list[onnx.NodeProto] = []  # DequantizeLinear nodes that may have lost their last reader
    for node in graph.node:
        form = "QOperator" if node.op_type == "QLinearConv" else "QDQ" if node.op_type == "Conv" else None
        if form is None:
            continue
        label = node_label(node)
        match = _qoperator(node, consts) if form == "QOperator" else _qdq(node, graph, consts, producers, consumers)
        if isinstance(match, Refusal):
            if match.code != Code.NOT_APPLICABLE:
                layers.append(QuantizedLayer(label, form, None, False, match))
            continue
        centered = _centered(match)
        if isinstance(centered, Refusal):
            layers.append(QuantizedLayer(label, form, None, False, centered))
            continue
        sparsity = float((centered == 0).mean())
        if sparsity < min_sparsity:
            why = Refusal(Code.MIN_SPARSITY, f"{sparsity:.1%} zeros < {min_sparsity:.0%}")
            layers.append(QuantizedLayer(label, form, sparsity, False, why))
            continue
        sparse, tensors = _sparse_node(match, centered, label)
        replacements[id(match.replaced[0])] = (sparse, match.replaced)
        new_tensors += tensors
        freed += match.feeders
        layers.append(QuantizedLayer(label, form, sparsity, True))
    if replacements:
        _apply(out, replacements, new_tensors, freed)
    for layer in layers:
        log.info("%s (%s): %s", layer.node, layer.form, "SparseQLinearConv" if layer.rewritten else layer.refusal)
    return out, layers


def _apply(model: onnx.ModelProto, replacements, new_tensors: Sequence[onnx.TensorProto], freed) -> None:
    """Each replaced group's first node becomes its SparseQLinearConv and the rest go; then the
    DequantizeLinear nodes before the groups that nothing reads any more, and the initializers
    that only the removed nodes read (the dense weights). Nothing else changes."""
    graph = model.graph
    removed = [n for _, group in replacements.values() for n in group]
    dropped = {id(n) for _, group in replacements.values() for n in group[1:]}
    nodes = [replacements[id(n)][0] if id(n) in replacements else n for n in graph.node if id(n) not in dropped]
    graph.initializer.extend(new_tensors)
    del graph.node[:]
    graph.node.extend(nodes)
    uses = value_uses(graph)
    gone = [n for n in freed if not any(uses[o] for o in n.output)]
    gone_ids = {id(n) for n in gone}
    kept_nodes = [n for n in graph.node if not any(n == g for g in gone)] if gone_ids else list(graph.node)
    del graph.node[:]
    graph.node.extend(kept_nodes)
    uses = value_uses(graph)
    candidates = {name for n in [*removed, *gone] for name in n.input}
    kept = [t for t in graph.initializer if t.name not in candidates or uses[t.name]]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OP_VERSION))
    cap_ir_version(model)
