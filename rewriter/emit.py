"""Emitting the planned rewrites: each graph's Convs (after its subgraphs') replaced by
SparseConv nodes with CSR tensors, shared CSR for shared weights, dead constants removed,
model-local functions rewritten with Constant nodes."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._contract import DOMAIN, OP_VERSION
from .context import Context
from .conv_to_sparse import ensure_domain, sparse_conv_node
from .csr import CsrWeight
from .graph_walk import ONNX_DOMAINS, SHAPE_OPS, Scope, all_graphs, node_label, subgraphs, value_uses
from .model_io import cap_ir_version
from .planning import Plan, plan_conv

log = logging.getLogger(__name__)


def _rewrite_nodes(graph: onnx.GraphProto, scope: Scope, ctx: Context, as_constants: bool) -> list[onnx.TensorProto]:
    """Rewrites this graph's Convs in place (after those of its subgraphs); returns the new
    tensors, which the caller stores as initializers (or which are Constant nodes already)."""
    for node in graph.node:
        for attr_name, sub in subgraphs(node):
            child = scope.child(sub, f"{node.name or node.op_type}.{attr_name}")
            new = _rewrite_nodes(sub, child, ctx, as_constants=False)
            sub.initializer.extend(new)
            _drop_unused(sub, ctx, main=False, ir_version=scope.ir_version)

    uses = value_uses(graph)
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(graph.node):
        for name in set(node.input):
            if name:
                consumers[name].append(i)

    plans: dict[int, Plan] = {}
    folded: set[int] = set()
    for i, node in enumerate(graph.node):
        if node.op_type != "Conv" or node.domain not in ONNX_DOMAINS:
            continue
        ctx.tick()
        layer, plan = plan_conv(i, node, scope, uses, consumers, ctx, folded)
        ctx.report.layers.append(layer)
        log.info("%s: %s", layer.name, ("SparseConv: " if layer.rewritten else "dense: ") + layer.reason)
        if plan and not folded.intersection(plan.folded_indices):
            plans[i] = plan
            folded.update(plan.folded_indices)

    new_tensors: list[onnx.TensorProto] = []
    new_nodes: list[onnx.NodeProto] = []
    # Convs sharing one weight tensor share its CSR too when their (folded) weights are
    # identical, so a model with shared weights does not grow: weight name -> CSRs written.
    written: dict[str, list[tuple[CsrWeight, list[str]]]] = defaultdict(list)
    emitted_at = {plan.emit_index: conv_index for conv_index, plan in plans.items()}
    for i, node in enumerate(graph.node):
        if i in folded:  # a folded node's constants may be its first input (2 * x)
            ctx.touched.update(n for n in node.input if n)
        elif i in plans:
            ctx.touched.update(n for n in node.input[1:] if n)
        else:
            new_nodes.append(node)
        if i not in emitted_at:
            continue
        node = graph.node[emitted_at[i]]  # the Conv
        plan = plans[emitted_at[i]]
        shared = next((names for csr, names in written[plan.weight_name] if _same_csr(csr, plan.csr)), None)
        if shared is not None:
            csr_names, tensors = shared, []
        else:
            tensors = [
                numpy_helper.from_array(plan.csr.values, ctx.unique(f"{plan.weight_name}_csr_values")),
                numpy_helper.from_array(plan.csr.col_indices, ctx.unique(f"{plan.weight_name}_csr_col_indices")),
                numpy_helper.from_array(plan.csr.row_ptr, ctx.unique(f"{plan.weight_name}_csr_row_ptr")),
            ]
            csr_names = [t.name for t in tensors]
            written[plan.weight_name].append((plan.csr, csr_names))
        bias_name = plan.bias_name
        if bias_name is None and plan.bias is not None:
            base = node.name or plan.weight_name
            tensors.append(numpy_helper.from_array(plan.bias.astype(np.float32), ctx.unique(f"{base}_folded_bias")))
            bias_name = tensors[-1].name
        ctx.outputs[plan.output] = (scope.path, node_label(node))
        conv = onnx.NodeProto()
        conv.CopyFrom(node)
        del conv.output[:]
        conv.output.append(plan.output)
        sparse = sparse_conv_node(
            conv,
            plan.csr,
            csr_names,
            bias=bias_name,
            epilogue=plan.activations,
            residual=plan.residual,
            input_shape=ctx.shapes.get(node.input[0]),
        )
        if as_constants:
            new_nodes += [helper.make_node("Constant", [], [t.name], value=t) for t in tensors]
        else:
            new_tensors += tensors
        new_nodes.append(sparse)
    del graph.node[:]
    graph.node.extend(new_nodes)
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    produced |= {t.name for t in graph.initializer} | {t.name for t in new_tensors}
    kept_info = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return new_tensors


def _same_csr(a: CsrWeight, b: CsrWeight) -> bool:
    """Whether two CSR weights are the same tensors, bit for bit (dtypes and shapes included)."""
    return all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in ((a.values, b.values), (a.col_indices, b.col_indices), (a.row_ptr, b.row_ptr))
    ) and (a.kernel_shape, a.in_channels_per_group) == (b.kernel_shape, b.in_channels_per_group)


def _drop_unused(graph: onnx.GraphProto, ctx: Context, main: bool, ir_version: int) -> None:
    """Removes constants a rewrite stopped reading; before IR 4 the main graph declares every
    initializer as an input too."""
    uses = value_uses(graph)
    dead = {name for name in ctx.touched if uses[name] == 0}
    # A shape op over constants (graph_walk.SHAPE_OPS) that only a folded node read goes too, and
    # what it read becomes a candidate in turn.
    while True:
        gone = [n for n in graph.node if n.op_type in SHAPE_OPS and n.output and n.output[0] in dead]
        if not gone:
            break
        for node in gone:
            graph.node.remove(node)
            ctx.touched.update(i for i in node.input if i)
        uses = value_uses(graph)
        dead |= {name for name in ctx.touched if uses[name] == 0}
    kept = [t for t in graph.initializer if t.name not in dead]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output and n.output[0] in dead)]
    del graph.node[:]
    graph.node.extend(nodes)
    if main:
        inputs = [i for i in graph.input if i.name not in dead]
        if ir_version < 4:
            declared = {i.name for i in inputs}
            inputs += [
                helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                for t in graph.initializer
                if t.name not in declared
            ]
        del graph.input[:]
        graph.input.extend(inputs)


def _rewrite_function(function: onnx.FunctionProto, ctx: Context, ir_version: int) -> bool:
    """Functions have no initializers: their constants, old and new, are Constant nodes."""
    graph = helper.make_graph(
        list(function.node),
        function.name,
        [helper.make_empty_tensor_value_info(n) for n in function.input],
        [helper.make_empty_tensor_value_info(n) for n in function.output],
    )
    before = len(ctx.report.layers)
    scope = Scope(graph, f"function {function.domain}.{function.name}", ir_version=ir_version)
    _rewrite_nodes(graph, scope, ctx, as_constants=True)
    _drop_unused(graph, ctx, main=False, ir_version=ir_version)
    del function.node[:]
    function.node.extend(graph.node)
    rewritten = any(layer.rewritten for layer in ctx.report.layers[before:])
    if rewritten and not any(o.domain == DOMAIN for o in function.opset_import):
        function.opset_import.append(helper.make_opsetid(DOMAIN, OP_VERSION))
    return rewritten


def rewrite_model(pruned: onnx.ModelProto, ctx: Context) -> onnx.ModelProto:
    """One rewrite of the whole model (graphs, subgraphs, functions) under `ctx`'s decisions."""
    out = onnx.ModelProto()
    out.CopyFrom(pruned)
    main = Scope(out.graph, "main", ir_version=out.ir_version)
    new = _rewrite_nodes(out.graph, main, ctx, as_constants=False)
    out.graph.initializer.extend(new)
    _drop_unused(out.graph, ctx, main=True, ir_version=out.ir_version)
    for function in out.functions:
        _rewrite_function(function, ctx, out.ir_version)
    if ctx.report.rewritten:
        ensure_domain(out)
    cap_ir_version(out)
    return out


def all_convs(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every ONNX Conv: main graph, subgraphs, functions."""
    nodes = [n for g in all_graphs(model) for n in g.node] + [n for f in model.functions for n in f.node]
    return (n for n in nodes if n.op_type == "Conv" and n.domain in ONNX_DOMAINS)
