"""Replacing ONNX Conv nodes by SparseConv.

This is the minimal rewrite the plugin's tests and the bundled example need: top-level Convs
whose weight is a float32 initializer. The full rewriter (folding, subgraphs, profitability,
report) builds on ``sparse_conv_node``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._contract import DOMAIN, OP_TYPE, OP_VERSION
from .csr import CsrWeight, dense_to_csr

log = logging.getLogger(__name__)

# Conv attributes SparseConv takes over unchanged (kernel_shape is always written from W).
_CONV_ATTRIBUTES = ("strides", "pads", "dilations", "group", "auto_pad")


def sparse_conv_node(
    conv: onnx.NodeProto,
    csr: CsrWeight,
    csr_names: Sequence[str],
    bias: str | None = None,
    activation: str | None = None,
    activation_params: Sequence[float] = (),
    name: str | None = None,
) -> onnx.NodeProto:
    """A SparseConv node equivalent to ``conv`` whose CSR initializers are named ``csr_names``
    (values, column indices, row pointers), optionally fusing an activation."""
    values, cols, row_ptr = csr_names
    inputs = [conv.input[0], values, cols, row_ptr] + ([bias] if bias else [])
    attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute if a.name in _CONV_ATTRIBUTES}
    if isinstance(attributes.get("auto_pad"), bytes):
        attributes["auto_pad"] = attributes["auto_pad"].decode()
    attributes["kernel_shape"] = list(csr.kernel_shape)
    if activation:
        attributes["activation"] = activation
        if activation_params:
            attributes["activation_params"] = [float(p) for p in activation_params]
    return helper.make_node(
        OP_TYPE, inputs, list(conv.output), name=name if name is not None else conv.name, domain=DOMAIN, **attributes
    )


def csr_initializers(csr: CsrWeight, weight_name: str) -> list[onnx.TensorProto]:
    """The CSR tensors, named after the dense weight they replace."""
    return [
        numpy_helper.from_array(csr.values, f"{weight_name}_csr_values"),
        numpy_helper.from_array(csr.col_indices, f"{weight_name}_csr_col_indices"),
        numpy_helper.from_array(csr.row_ptr, f"{weight_name}_csr_row_ptr"),
    ]


def ensure_domain(model: onnx.ModelProto) -> None:
    """Adds SparseConv's domain to the model's opset imports when missing."""
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OP_VERSION))


def convert_convs(
    model: onnx.ModelProto, min_sparsity: float = 0.0, index_dtype: type = np.int32
) -> onnx.ModelProto:
    """Returns a copy of ``model`` where each top-level Conv with a float32 initializer weight
    holding at least ``min_sparsity`` zeros is a SparseConv. The input model is not modified."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    initializers = {t.name: t for t in graph.initializer}
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" and node.domain in ("", "ai.onnx") else None
        if weight is None or weight.data_type != onnx.TensorProto.FLOAT:
            new_nodes.append(node)
            continue
        dense = numpy_helper.to_array(weight)
        sparsity = 1.0 - np.count_nonzero(dense) / max(dense.size, 1)
        if sparsity < min_sparsity:
            log.info("%s: %.1f%% zeros, below %.1f%%: kept dense", node.name, 100 * sparsity, 100 * min_sparsity)
            new_nodes.append(node)
            continue
        csr = dense_to_csr(dense, index_dtype)
        tensors = csr_initializers(csr, weight.name)
        if not any(t.name == tensors[0].name for t in graph.initializer):
            graph.initializer.extend(tensors)
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        new_nodes.append(sparse_conv_node(node, csr, [t.name for t in tensors], bias))
        log.info("%s: %.1f%% zeros, %d nonzeros: SparseConv", node.name, 100 * sparsity, csr.nnz)
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused_initializers(graph, ir_version=out.ir_version)
    ensure_domain(out)
    return out


def _drop_unused_initializers(graph: onnx.GraphProto, ir_version: int) -> None:
    """Removes initializers (and their graph inputs) nothing reads any more. Before IR 4 every
    initializer must also be a graph input, so new ones are declared there."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    dropped = {t.name for t in graph.initializer} - {t.name for t in kept}
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [i for i in graph.input if i.name not in dropped]
    if ir_version < 4:
        declared = {i.name for i in inputs}
        inputs += [
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in kept if t.name not in declared
        ]
    del graph.input[:]
    graph.input.extend(inputs)
