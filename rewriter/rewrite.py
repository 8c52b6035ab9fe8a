"""The rewrite: each eligible, profitable Conv (with a following BatchNormalization and
activation folded in) becomes a SparseConv whose weight is CSR. Convs in subgraphs (If / Loop /
Scan bodies) and in model-local functions are visited too; every Conv left dense has a reason."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import end_to_end
from ._contract import DOMAIN, MAX_EPILOGUE_STEPS, OP_VERSION
from .autotune import MARGIN as AUTOTUNE_MARGIN
from .autotune import cuda_unavailable_reason, time_layer
from .calibration import load as load_calibration
from .calibration import same_machine, this_machine
from .check import CheckError, random_feeds, unknown_inputs, validate_input_shapes
from .conv_to_sparse import conv_attributes, ensure_domain, sparse_conv_node
from .csr import CsrWeight, dense_to_csr
from .decision import REFERENCE, Decision, LayerTraits, Rates, decide, dense_us, layer_traits
from .end_to_end import LayerKey
from .epilogue import Activation
from .folding import (
    affine_operand,
    affine_params,
    batchnorm_params,
    describe,
    fold_affine,
    fold_batchnorm,
    match_activation,
    match_gated,
)
from .graph_walk import SHAPE_OPS, Scope, all_graphs, attribute, node_label, refers_to_caller, subgraphs, value_uses
from .model_io import MalformedModelError, cap_ir_version, check_opsets, load_model, tensor_bytes
from .pruning import prune_convs
from .report import LayerReport, Report

log = logging.getLogger(__name__)

_ONNX_DOMAINS = ("", "ai.onnx")


@dataclass
class _Plan:
    """How one Conv is rewritten."""

    conv_index: int
    folded_indices: list[int]
    output: str
    csr: CsrWeight
    weight_name: str
    bias: np.ndarray | None
    bias_name: str | None  # reuse this constant as B when nothing was folded into it
    activations: list[Activation]  # the fused epilogue, in order
    residual: str | None  # Z: the other operand of a folded residual Add

    @property
    def emit_index(self) -> int:
        """Where the SparseConv goes in the node list: at the Conv, or with a residual at the last
        folded node, after Z is computed (the nodes in between do not read the Conv's result)."""
        return max([self.conv_index, *self.folded_indices]) if self.residual else self.conv_index


@dataclass
class _Context:
    min_sparsity: float | None
    keep: frozenset[str]
    index_dtype: type
    shapes: dict[str, list]
    report: Report
    names: set[str]
    touched: set[str] = field(default_factory=set)  # constants a rewrite stopped reading
    autotune: bool = False
    provider: str = "cpu"
    cuda_unavailable: str | None = None  # why --autotune cannot time on CUDA here
    tick: Callable[[], None] = lambda: None
    autotune_skipped: int = 0  # Convs --autotune could not time: their input size is unknown
    rates: Rates = REFERENCE
    threads: int = 1  # for autotune's timing
    # Shared by the rewrites of one sparsify() call: decisions made (autotune times a layer once),
    # layers the end-to-end check reverted (key -> why).
    memo: dict[LayerKey, Decision] = field(default_factory=dict)
    reverted: Mapping[LayerKey, str] = field(default_factory=dict)
    outputs: dict[str, LayerKey] = field(default_factory=dict)  # SparseConv output -> its layer

    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name


def _known_shapes(model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None) -> dict[str, list]:
    """Value shapes from ONNX shape inference (with `input_shapes` fixing graph inputs), for
    the report and autotuning; empty where inference fails."""
    if input_shapes:
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        for value in fixed.graph.input:
            if value.name in input_shapes:
                dims = value.type.tensor_type.shape.dim
                del dims[:]
                for d in input_shapes[value.name]:
                    dims.add().dim_value = d
        model = fixed
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as e:  # shape inference is a nicety for the report, never a reason to fail
        log.debug("shape inference failed: %s", e)
        return {}
    shapes = {}
    for graph in all_graphs(inferred):
        for v in [*graph.input, *graph.value_info, *graph.output]:
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
                shapes[v.name] = [
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in v.type.tensor_type.shape.dim
                ]
    return shapes


_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
_INTS, _INT, _STRING = onnx.AttributeProto.INTS, onnx.AttributeProto.INT, onnx.AttributeProto.STRING


def _check_attributes(node: onnx.NodeProto, k: int) -> None:
    """Raises MalformedModelError, naming the node, for the Conv attributes ONNX Runtime refuses
    when it loads a model: a wrong type, count or range, an unknown auto_pad, auto_pad with pads."""
    label = node_label(node)
    for name in ("kernel_shape", "strides", "pads", "dilations"):
        attribute(node, name, None, _INTS)
    attribute(node, "group", 1, _INT)
    auto_pad = attribute(node, "auto_pad", "NOTSET", _STRING)
    for name, count, low in (("strides", k, 1), ("dilations", k, 1), ("pads", 2 * k, 0)):
        values = attribute(node, name, None)
        if values is None:
            continue
        if len(values) != count:
            raise MalformedModelError(
                f"node '{label}': attribute '{name}' has {len(values)} values, a {k}D Conv takes {count}"
            )
        if any(v < low for v in values):
            raise MalformedModelError(f"node '{label}': attribute '{name}' {list(values)} has a value below {low}")
    if auto_pad not in _AUTO_PADS:
        raise MalformedModelError(f"node '{label}': unknown auto_pad '{auto_pad}' (ONNX has {', '.join(_AUTO_PADS)})")
    if auto_pad != "NOTSET" and attribute(node, "pads", None) is not None:
        raise MalformedModelError(f"node '{label}': both auto_pad {auto_pad} and pads are set")


def _eligibility(node: onnx.NodeProto, scope: Scope, weight: np.ndarray | None, ctx: _Context) -> str | None:
    """Why this Conv cannot become SparseConv, or None. Raises MalformedModelError where ONNX
    Runtime would refuse the model itself."""
    if len(node.input) < 2:
        return "Conv without a weight input"
    if weight is None:
        return "weight is not a constant (a graph input or computed)"
    if refers_to_caller(node):
        return "its attributes come from the function's caller"
    if weight.dtype != np.float32:
        return f"weight is {weight.dtype}, not float32"
    if not 3 <= weight.ndim <= 5:
        return f"weight has rank {weight.ndim}; SparseConv covers 1D, 2D and 3D"
    if 0 in weight.shape:
        return f"weight of shape {list(weight.shape)} has a zero size"
    k = weight.ndim - 2
    _check_attributes(node, k)
    if len(node.input) > 2 and node.input[2]:
        bias = scope.constant(node.input[2], reader=node)
        if bias is None or bias.dtype != np.float32 or bias.shape != (weight.shape[0],):
            return "bias is not a float32 constant of shape [M]"
    kernel = list(attribute(node, "kernel_shape", weight.shape[2:]))
    if kernel != list(weight.shape[2:]):
        return f"kernel_shape {kernel} disagrees with the weight's shape {list(weight.shape)}"
    group = attribute(node, "group", 1)
    if group < 1 or weight.shape[0] % group:
        return f"group {group} does not divide the {weight.shape[0]} output channels"
    x_shape = ctx.shapes.get(node.input[0])
    if x_shape and len(x_shape) == k + 2 and isinstance(x_shape[1], int) and x_shape[1] > 0:
        if x_shape[1] != weight.shape[1] * group:
            return f"input has {x_shape[1]} channels but the weight expects {weight.shape[1] * group}"
    if attribute(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        if any(d != 1 for d in attribute(node, "dilations", [1] * k)):
            return "SAME padding with dilations, which ORT's Conv does not run; left as is"
    return None


def _single_consumer(name: str, uses, consumers, graph) -> tuple[int, onnx.NodeProto] | None:
    """The only node reading `name`, when exactly one node of this graph reads it once and it is
    not a graph output nor read by a subgraph."""
    readers = consumers.get(name, [])
    if uses[name] != 1 or len(readers) != 1:
        return None
    index = readers[0]
    node = graph.node[index]
    return (index, node) if list(node.input).count(name) == 1 else None


def _traits(node: onnx.NodeProto, weight: np.ndarray, layer: LayerReport, ctx: _Context) -> LayerTraits:
    """The cost model's view of a Conv, with sizes where shape inference knows them."""
    k = weight.ndim - 2
    return layer_traits(
        weight,
        layer.group,
        list(attribute(node, "strides", [1] * k)),
        list(attribute(node, "pads", [0] * 2 * k)),
        attribute(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"),
        ctx.shapes.get(node.input[0]),
        ctx.shapes.get(node.output[0]),
    )


@dataclass
class _Folded:
    """A Conv's weight and bias after folding what follows it, and where its result now ends."""

    weight: np.ndarray
    bias: np.ndarray | None
    bias_name: str | None  # reuse this constant as B when nothing was folded into it
    output: str
    indices: list[int] = field(default_factory=list)  # the folded nodes
    names: list[str] = field(default_factory=list)  # their kinds, for the report
    activations: list[Activation] = field(default_factory=list)  # the fused epilogue, in order
    residual: str | None = None  # Z, the other operand of a folded residual Add
    notes: list[str] = field(default_factory=list)  # why a following BN or activation stays


def _fold_following(
    node: onnx.NodeProto, weight: np.ndarray, scope: Scope, uses, consumers, shapes: dict, claimed: set[int]
) -> _Folded:
    """Folds the chain of BatchNormalizations and Mul/Add/Sub/Div by per-channel constants that
    follows a Conv into W and B, then an Add of a tensor of the same shape into SparseConv's
    residual input (unless another Conv's plan took that Add: `claimed`), then the activations
    after them into the epilogue, each when it is the only reader of the value before it."""
    bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    bias = scope.constant(bias_name, reader=node) if bias_name else None
    folded = _Folded(weight, bias, bias_name, node.output[0])
    while True:
        found = _single_consumer(folded.output, uses, consumers, scope.graph)
        if found is None:
            break
        index, follower = found
        if follower.op_type == "BatchNormalization" and follower.domain in _ONNX_DOMAINS:
            params = batchnorm_params(follower, scope, weight.shape[0])
            result = params if isinstance(params, str) else fold_batchnorm(folded.weight, folded.bias, *params)
        else:
            params = affine_params(follower, folded.output, scope, weight.ndim, weight.shape[0])
            if params is None or _is_residual_add(follower, folded.output, scope):
                break  # an Add of a computed tensor: _fold_residual's to take or explain
            result = params if isinstance(params, str) else fold_affine(folded.weight, folded.bias, *params)
        if isinstance(result, str):
            folded.notes.append(f"{describe(follower)} not folded: {result}")
            break
        folded.weight, folded.bias = result
        folded.bias_name, folded.output = None, follower.output[0]
        folded.indices.append(index)
        folded.names.append(follower.op_type)
    _fold_residual(folded, scope, uses, consumers, shapes, claimed)
    shared = folded.output
    _fold_activations(folded, scope, uses, consumers, weight.ndim, weight.shape[0])
    if folded.output == shared and _single_consumer(shared, uses, consumers, scope.graph) is None:
        _note_shared_affine(folded, scope, consumers)  # nothing took the value its readers share
    return folded


def _is_residual_add(node: onnx.NodeProto, value: str, scope: Scope) -> bool:
    """An Add of `value` and a computed (not constant) tensor."""
    operand = affine_operand(node, value)
    return (
        node.op_type == "Add"
        and operand is not None
        and bool(operand[0])
        and scope.constant(operand[0], reader=node) is None
    )


def _fold_residual(folded: _Folded, scope: Scope, uses, consumers, shapes: dict, claimed: set[int]) -> None:
    """Takes a following Add(result, Z) as SparseConv's residual input when Z is a computed
    tensor (a constant is bias, folded above) whose shape is known to equal the result's: then
    the Add does not broadcast, and Z is ready where the Add is, where the SparseConv will go."""
    found = _single_consumer(folded.output, uses, consumers, scope.graph)
    if found is None:
        return
    index, add = found
    if add.attribute or not _is_residual_add(add, folded.output, scope):
        return
    z = affine_operand(add, folded.output)[0]
    label = f"{describe(add)} (residual)"
    if index in claimed:
        folded.notes.append(f"{label} not folded: another Conv's SparseConv takes it")
        return
    mine, theirs = shapes.get(folded.output), shapes.get(z)
    if not mine or mine != theirs or any(d == "?" or d == 0 for d in mine):
        shown = " and ".join(f"[{', '.join(map(str, s))}]" if s else "unknown" for s in (mine, theirs))
        folded.notes.append(f"{label} not folded: the shapes of its inputs ({shown}) are not known to be equal")
        return
    folded.residual, folded.output = z, add.output[0]
    folded.indices.append(index)
    folded.names.append("residual")


def _fold_activations(folded: _Folded, scope: Scope, uses, consumers, rank: int, channels: int) -> None:
    """Appends to the epilogue the activations that follow the folded result, one after the
    other: gated patterns (x * sigmoid(x) and its kin, which read the value twice) and single
    nodes, up to the contract's step limit and one PRelu."""
    while True:
        gated = match_gated(folded.output, scope.graph, scope, uses, consumers)
        found = _single_consumer(folded.output, uses, consumers, scope.graph) if gated is None else None
        match = match_activation(found[1], folded.output, scope, rank, channels) if found else None
        if gated is not None and not isinstance(gated[0], list):  # there, but it cannot go
            folded.notes.append(f"{gated[0]} not folded: {gated[1]}")
            return
        if isinstance(match, str):
            folded.notes.append(f"{describe(found[1])} not folded: {match}")
            return
        if gated is not None:
            indices, output, step = gated
        elif isinstance(match, Activation):
            indices, output, step = [found[0]], found[1].output[0], match
        else:
            return
        label = step.name if gated is None else f"the {step.name} pattern"
        if len(folded.activations) == MAX_EPILOGUE_STEPS:
            folded.notes.append(f"{label} not folded: the epilogue already has {MAX_EPILOGUE_STEPS} steps")
            return
        if step.name == "PRelu" and any(s.name == "PRelu" for s in folded.activations):
            folded.notes.append(f"{label} not folded: the epilogue already has a PRelu")
            return
        folded.activations.append(step)
        folded.output = output
        folded.indices.extend(indices)
        folded.names.append(step.name)


def _note_shared_affine(folded: _Folded, scope: Scope, consumers) -> None:
    """Says why a Mul/Add/Sub/Div by a constant reading the folded result stays: other nodes (or
    the graph's outputs) read that value too."""
    for index in consumers.get(folded.output, []):
        reader = scope.graph.node[index]
        operand = affine_operand(reader, folded.output)
        if operand is not None and operand[0] and scope.constant(operand[0], reader=reader) is not None:
            where = "is a graph output or has other readers"
            folded.notes.append(f"{describe(reader)} not folded: its input '{folded.output}' {where}")
            return


def _dims(shape: list | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "?"


def _decide(node: onnx.NodeProto, layer: LayerReport, folded: _Folded, index_dtype: type, ctx: _Context) -> Decision:
    """The cost model's decision (or the --min-sparsity threshold's), or autotune's timing; made
    once per layer for all the rewrites of one sparsify() call."""
    key = (layer.graph, layer.name)
    traits = _traits(node, folded.weight, layer, ctx)
    layer.dense_us_estimate = dense_us(traits, ctx.rates)
    if key not in ctx.memo:
        ctx.memo[key] = _decision(node, layer, folded, index_dtype, traits, ctx)
    decision = ctx.memo[key]
    layer.predicted_speedup = decision.predicted
    return decision


def _decision(
    node: onnx.NodeProto, layer: LayerReport, folded: _Folded, index_dtype: type, traits: LayerTraits, ctx: _Context
) -> Decision:
    decision = decide(layer.sparsity, ctx.min_sparsity, traits, ctx.provider, ctx.rates)
    if not (ctx.autotune and ctx.min_sparsity is None):
        return decision
    if ctx.provider == "cuda" and ctx.cuda_unavailable:
        # No GPU to time on: the Conv stays dense (decide() said so), with the reason why.
        return Decision(False, f"{decision.reason}; not autotuned: {ctx.cuda_unavailable}")
    x_shape = ctx.shapes.get(node.input[0])
    if x_shape is None or not all(isinstance(d, int) and d > 0 for d in x_shape):
        ctx.autotune_skipped += 1
        return Decision(decision.rewrite, f"{decision.reason}; not autotuned: input size {_dims(x_shape)} unknown")
    csr = dense_to_csr(folded.weight, index_dtype)
    act = folded.activations
    dense_ms, sparse_ms = time_layer(
        x_shape, folded.weight, folded.bias, conv_attributes(node), act, csr, provider=ctx.provider, threads=ctx.threads
    )
    where = " on CUDA" if ctx.provider == "cuda" else ""
    return Decision(
        sparse_ms * AUTOTUNE_MARGIN < dense_ms,
        f"{layer.sparsity:.1%} zeros, autotune{where}: dense {dense_ms:.3f} ms, sparse {sparse_ms:.3f} ms",
        decision.predicted,
    )


def _report_attributes(node: onnx.NodeProto, layer: LayerReport, k: int) -> None:
    """The strides and group the report shows, where they are well formed."""
    strides, group = attribute(node, "strides", [1] * k), attribute(node, "group", 1)
    layer.strides = list(strides) if isinstance(strides, list) and all(isinstance(v, int) for v in strides) else []
    layer.group = group if isinstance(group, int) else 1


def _plan_conv(index: int, node: onnx.NodeProto, scope: Scope, uses, consumers, ctx: _Context, claimed: set[int]):
    name = node_label(node)
    weight_name = node.input[1] if len(node.input) > 1 else ""
    weight = scope.constant(weight_name, reader=node) if weight_name else None
    layer = LayerReport(
        name=name,
        graph=scope.path,
        weight_shape=list(weight.shape) if weight is not None else [],
        input_shape=ctx.shapes.get(node.input[0]),
        kernel=list(weight.shape[2:]) if weight is not None else [],
        dense_bytes=int(weight.nbytes) if weight is not None else 0,
    )
    _report_attributes(node, layer, weight.ndim - 2 if weight is not None else 0)
    reason = _eligibility(node, scope, weight, ctx)
    if reason:
        layer.reason = reason
        return layer, None
    if name in ctx.keep or node.output[0] in ctx.keep:
        layer.reason = "kept dense (--keep)"
        return layer, None

    folded = _fold_following(node, weight, scope, uses, consumers, ctx.shapes, claimed)
    weight = folded.weight
    layer.nnz = int(np.count_nonzero(weight))
    layer.sparsity = (weight.size - layer.nnz) / weight.size
    index_dtype = ctx.index_dtype if weight[0].size < np.iinfo(ctx.index_dtype).max else np.int64
    decision = _decide(node, layer, folded, index_dtype, ctx)
    layer.reason = "; ".join([decision.reason, *folded.notes])
    if not decision.rewrite:
        return layer, None
    if (layer.graph, layer.name) in ctx.reverted:
        layer.reason = f"{decision.reason}; reverted, {ctx.reverted[layer.graph, layer.name]}"
        return layer, None
    csr = dense_to_csr(weight, index_dtype)
    layer.rewritten = True
    layer.folded = folded.names
    layer.csr_bytes = int(csr.values.nbytes + csr.col_indices.nbytes + csr.row_ptr.nbytes)
    plan = _Plan(
        index,
        folded.indices,
        folded.output,
        csr,
        weight_name,
        folded.bias,
        folded.bias_name,
        folded.activations,
        folded.residual,
    )
    return layer, plan


def _rewrite_nodes(graph: onnx.GraphProto, scope: Scope, ctx: _Context, as_constants: bool) -> list[onnx.TensorProto]:
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

    plans: dict[int, _Plan] = {}
    folded: set[int] = set()
    for i, node in enumerate(graph.node):
        if node.op_type != "Conv" or node.domain not in _ONNX_DOMAINS:
            continue
        ctx.tick()
        layer, plan = _plan_conv(i, node, scope, uses, consumers, ctx, folded)
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


def _drop_unused(graph: onnx.GraphProto, ctx: _Context, main: bool, ir_version: int) -> None:
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


def _rewrite_function(function: onnx.FunctionProto, ctx: _Context, ir_version: int) -> bool:
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


def _all_convs(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every ONNX Conv: main graph, subgraphs, functions."""
    nodes = [n for g in all_graphs(model) for n in g.node] + [n for f in model.functions for n in f.node]
    return (n for n in nodes if n.op_type == "Conv" and n.domain in _ONNX_DOMAINS)


def _warn_unmatched_keep(model: onnx.ModelProto, keep: frozenset[str]) -> None:
    names = {name for n in _all_convs(model) for name in (n.name, n.output[0] if n.output else "") if name}
    for name in sorted(keep - names):
        log.warning("keep: no Conv node is named '%s' (nor has it as its first output); nothing kept for it", name)


def _warn_autotune(model: onnx.ModelProto, ctx: _Context, input_shapes: dict[str, list[int]]) -> None:
    """Says why --autotune timed fewer layers than it was asked to."""
    if not ctx.autotune:
        return
    if ctx.min_sparsity is not None:
        log.warning("autotune: nothing timed, the min_sparsity threshold decides")
    elif ctx.provider == "cuda" and ctx.cuda_unavailable:
        log.warning("autotune: nothing timed on CUDA (%s); Convs stay dense", ctx.cuda_unavailable)
    elif ctx.autotune_skipped:
        unknown = unknown_inputs(model, input_shapes)
        why = f"the model's input {', '.join(unknown)} has unknown sizes" if unknown else "shape inference lost them"
        log.warning(
            "autotune: %d of %d Convs fell back to the cost model because their input sizes are unknown (%s); "
            "fix the inputs' sizes with --input-shape NAME:DIMS",
            ctx.autotune_skipped,
            ctx.report.convs,
            why,
        )


def sparsify(
    model: onnx.ModelProto | str | os.PathLike,
    *,
    min_sparsity: float | None = None,
    keep: Iterable[str] = (),
    prune: float | None = None,
    index_dtype: type = np.int32,
    autotune: bool = False,
    input_shapes: dict[str, list[int]] | None = None,
    provider: str = "cpu",
    progress: Callable[..., Callable[[], None]] | None = None,
    calibration: Rates | str | os.PathLike | None = None,
    measure: bool = True,
    threads: int = 1,
    sample_inputs: Mapping[str, np.ndarray] | None = None,
) -> tuple[onnx.ModelProto, Report]:
    """Rewrites a model's sparse Convs to SparseConv.

    ``model`` is a ModelProto (never modified) or a path. ``min_sparsity`` overrides the default
    profitability decision (0 rewrites every eligible Conv); ``keep`` names Conv nodes to leave
    dense; ``prune`` first magnitude-prunes each eligible Conv weight to that sparsity (which
    changes the model's accuracy). ``input_shapes`` fixes graph inputs' unknown sizes (for the
    cost model, ``autotune`` and the end-to-end check); a name that is no input, a wrong rank, a
    size below 1 or one contradicting a declared size raises ValueError. Returns the new model
    and a per-layer report.

    The default decision (no ``min_sparsity``, CPU) predicts each layer with this machine's
    rates (``calibration``: Rates, the path of a file calibration.save() wrote, or None for this
    machine's, measured once and cached), then, with ``measure``, times the original and the
    rewritten model end to end with ``threads`` intra-op threads on ``sample_inputs`` (default:
    random inputs of the resolved shapes, an unknown batch as 1), reverts the layers measured
    slower than their dense Conv and keeps the model dense unless the rewrite is measured faster
    (end_to_end.py). Where the model cannot be timed (an input size unknown), it stays dense and
    the report says why; ``measure=False`` trusts the cost model alone.

    A model ONNX Runtime would refuse to load, in a node the rewrite reads (a Conv, or a
    BatchNormalization or activation after one), raises MalformedModelError (a ModelLoadError)
    naming the node. A BatchNormalization, a Mul/Add/Sub/Div by a constant or an activation that
    cannot fold exactly stays in the graph, the reason in its Conv's report.
    """
    start = time.perf_counter()
    if isinstance(model, onnx.ModelProto):
        source = model
    else:
        source = load_model(model).model
    check_opsets(source)
    if min_sparsity is not None and not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be within [0, 1], got {min_sparsity}")
    if provider not in ("cpu", "cuda"):
        raise ValueError(f"provider must be 'cpu' or 'cuda', got {provider!r}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    validate_input_shapes(source, input_shapes or {})
    if sample_inputs:
        input_shapes = {**(input_shapes or {}), **{k: list(np.shape(v)) for k, v in sample_inputs.items()}}
        validate_input_shapes(source, input_shapes)
    keep = frozenset(keep)
    _warn_unmatched_keep(source, keep)
    report = Report()
    pruned = source
    if prune is not None:
        pruned, _ = prune_convs(source, prune, keep)
        report.pruned_to = prune
    default_cpu = min_sparsity is None and provider == "cpu"
    rates = _rates(calibration, threads, progress, report) if default_cpu else REFERENCE
    shapes = _known_shapes(pruned, input_shapes)
    memo: dict[LayerKey, Decision] = {}

    def rewrite(reverted: Mapping[LayerKey, str], report: Report) -> tuple[onnx.ModelProto, _Context]:
        ctx = _Context(
            min_sparsity,
            keep,
            index_dtype,
            shapes,
            report,
            _names(pruned),
            autotune=autotune,
            provider=provider,
            cuda_unavailable=cuda_unavailable_reason() if autotune and provider == "cuda" else None,
            rates=rates,
            threads=threads,
            memo=memo,
            reverted=reverted,
        )
        if progress is not None and not memo:
            ctx.tick = progress(sum(1 for _ in _all_convs(pruned)))
        return _rewrite_model(pruned, ctx), ctx

    out, ctx = rewrite({}, report)
    _warn_autotune(source, ctx, input_shapes or {})
    if default_cpu and report.rewritten:
        if not measure:
            report.end_to_end_skipped = "not measured (measure=False): the cost model alone decided"
        elif calibration is not None and not same_machine(rates):
            report.end_to_end_skipped = f"not measured: the calibration is from another machine ({rates.machine})"
        else:
            out, report = _measure(pruned, out, ctx, rewrite, sample_inputs, input_shapes or {}, threads)
    report.weight_bytes_before = tensor_bytes(source)
    report.weight_bytes_after = tensor_bytes(out)
    report.seconds = time.perf_counter() - start
    return out, report


def _names(model: onnx.ModelProto) -> set[str]:
    names = {v for g in all_graphs(model) for n in g.node for v in [*n.input, *n.output]}
    return names | {t.name for g in all_graphs(model) for t in g.initializer}


def _rewrite_model(pruned: onnx.ModelProto, ctx: _Context) -> onnx.ModelProto:
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


def _rates(
    calibration: Rates | str | os.PathLike | None,
    threads: int,
    progress: Callable[..., Callable[[], None]] | None,
    report: Report,
) -> Rates:
    """The cost model's rates: given, read from a file, or this machine's (cached or measured)."""
    if isinstance(calibration, Rates):
        report.calibration = f"given: {calibration.machine}"
        return calibration
    if calibration is not None:
        rates = load_calibration(calibration)  # OSError, ValueError: the caller's to report
        report.calibration = f"{os.fspath(calibration)}: {rates.machine}, {rates.threads} thread(s)"
        return rates
    rates, where = this_machine(threads, progress)
    report.calibration = f"{where}: {rates.machine}, {threads} thread(s)"
    return rates


def _measure(
    pruned: onnx.ModelProto,
    first: onnx.ModelProto,
    ctx: _Context,
    rewrite: Callable[[Mapping[LayerKey, str], Report], tuple[onnx.ModelProto, _Context]],
    sample_inputs: Mapping[str, np.ndarray] | None,
    input_shapes: Mapping[str, list[int]],
    threads: int,
) -> tuple[onnx.ModelProto, Report]:
    """The end-to-end check (end_to_end.py) of the first rewrite; returns the model to keep and
    its report."""
    report = ctx.report
    try:
        feeds = random_feeds(pruned, input_shapes, given=sample_inputs)
    except CheckError as e:
        why = f"kept dense: the model cannot be timed to show a gain ({e}; or trust the cost model: --no-measure)"
        return _all_dense(pruned, report, why)
    estimates = {(layer.graph, layer.name): layer.dense_us_estimate for layer in report.layers}
    revised: dict[str, Report] = {}

    def again(reverted: Mapping[LayerKey, str]) -> onnx.ModelProto:
        revised["report"] = Report(pruned_to=report.pruned_to, calibration=report.calibration)
        return rewrite(reverted, revised["report"])[0]

    try:
        kept, result, reverted, costs = end_to_end.check(pruned, again, first, ctx.outputs, estimates, feeds, threads)
    except end_to_end.NotMeasurable as e:
        return _all_dense(pruned, report, f"kept dense: {e}")
    measured = {c.key: c for c in costs}
    if reverted and kept is not None:
        report = revised["report"]
    for layer in report.layers:
        cost = measured.get((layer.graph, layer.name))
        if cost is not None:
            layer.measured_us = cost.sparse_us + cost.reorder_us
            layer.measured_speedup = cost.speedup
    report.end_to_end = result
    if kept is None:
        return _all_dense(pruned, report, result.verdict)
    log.info("end to end: %s", result.verdict)
    return kept, report


def _all_dense(pruned: onnx.ModelProto, report: Report, why: str) -> tuple[onnx.ModelProto, Report]:
    """The pruned model unrewritten, each layer the plan had rewritten now dense with `why`."""
    log.warning("%s", why)
    for layer in report.layers:
        if layer.rewritten:
            layer.rewritten, layer.folded, layer.csr_bytes = False, [], 0
            layer.reason = f"{layer.reason}; the model kept dense (end to end)"
    if report.end_to_end is None:
        report.end_to_end_skipped = why
    out = onnx.ModelProto()
    out.CopyFrom(pruned)
    cap_ir_version(out)
    return out, report
