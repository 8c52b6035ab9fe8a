"""Planning one Conv's rewrite: its report, eligibility, what follows it that folds in
(BatchNormalization, constant scale and shift, a residual Add, the activation epilogue), and the
decision (cost model, autotune) on the folded layer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx

from ._contract import MAX_EPILOGUE_STEPS
from .autotune import MARGIN as AUTOTUNE_MARGIN
from .autotune import time_layer
from .check import feed_too_large
from .context import Context
from .conv_to_sparse import conv_attributes
from .csr import CsrWeight, dense_to_csr
from .decision import Decision, LayerTraits, decide, dense_us, layer_traits
from .eligibility import eligibility
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
from .graph_walk import ONNX_DOMAINS, Scope, attribute, node_label
from .report import LayerReport
from .result import Code, Refusal
from .shapes import known_size


@dataclass
class Plan:
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


def _single_consumer(name: str, uses, consumers, graph) -> tuple[int, onnx.NodeProto] | None:
    """The only node reading `name`, when exactly one node of this graph reads it once and it is
    not a graph output nor read by a subgraph."""
    readers = consumers.get(name, [])
    if uses[name] != 1 or len(readers) != 1:
        return None
    index = readers[0]
    node = graph.node[index]
    return (index, node) if list(node.input).count(name) == 1 else None


def _traits(node: onnx.NodeProto, weight: np.ndarray, layer: LayerReport, ctx: Context) -> LayerTraits:
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
    notes: list[Refusal] = field(default_factory=list)  # why a following node stays, naming it


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
        if follower.op_type == "BatchNormalization" and follower.domain in ONNX_DOMAINS:
            params = batchnorm_params(follower, scope, weight.shape[0])
            result = params if isinstance(params, Refusal) else fold_batchnorm(folded.weight, folded.bias, *params)
        else:
            params = affine_params(follower, folded.output, scope, weight.ndim, weight.shape[0])
            if params is None or _is_residual_add(follower, folded.output, scope):
                break  # an Add of a computed tensor: _fold_residual's to take or explain
            result = params if isinstance(params, Refusal) else fold_affine(folded.weight, folded.bias, *params)
        if isinstance(result, Refusal):
            folded.notes.append(result.about(describe(follower)))
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
    the Add does not broadcast, and Z is ready where the Add is, where the SparseConv will go.
    `shapes` are inferred from the graph's inputs and operators, never taken from declared
    value_info alone (a false declaration would make SparseConv refuse a Z the Add broadcast)."""
    found = _single_consumer(folded.output, uses, consumers, scope.graph)
    if found is None:
        return
    index, add = found
    if add.attribute or not _is_residual_add(add, folded.output, scope):
        return
    z = affine_operand(add, folded.output)[0]
    label = f"{describe(add)} (residual)"
    if index in claimed:
        folded.notes.append(Refusal(Code.CLAIMED, "another Conv's SparseConv takes it").about(label))
        return
    mine, theirs = shapes.get(folded.output), shapes.get(z)
    if not mine or mine != theirs or any(d == "?" or d == 0 for d in mine):
        shown = " and ".join(f"[{', '.join(map(str, s))}]" if s else "unknown" for s in (mine, theirs))
        unknown = f"the shapes of its inputs ({shown}, by shape inference) are not known to be equal"
        folded.notes.append(Refusal(Code.SHAPES_UNKNOWN, unknown).about(label))
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
        if isinstance(gated, Refusal):  # there, but it cannot go
            folded.notes.append(gated)
            return
        if isinstance(match, Refusal):
            folded.notes.append(match.about(describe(found[1])))
            return
        if gated is not None:
            indices, output, step = gated
        elif isinstance(match, Activation):
            indices, output, step = [found[0]], found[1].output[0], match
        else:
            return
        label = step.name if gated is None else f"the {step.name} pattern"
        if len(folded.activations) == MAX_EPILOGUE_STEPS:
            full = f"the epilogue already has {MAX_EPILOGUE_STEPS} steps"
            folded.notes.append(Refusal(Code.EPILOGUE_FULL, full).about(label))
            return
        if step.name == "PRelu" and any(s.name == "PRelu" for s in folded.activations):
            folded.notes.append(Refusal(Code.EPILOGUE_FULL, "the epilogue already has a PRelu").about(label))
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
            shared = f"its input '{folded.output}' is a graph output or has other readers"
            folded.notes.append(Refusal(Code.OTHER_READERS, shared).about(describe(reader)))
            return


def _dims(shape: list | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "?"


def _decide(node: onnx.NodeProto, layer: LayerReport, folded: _Folded, index_dtype: type, ctx: Context) -> Decision:
    """The cost model's decision (or the --min-sparsity threshold's), or autotune's timing; made
    once per layer for all the rewrites of one sparsify() call."""
    key = (layer.graph, layer.name)
    traits = _traits(node, folded.weight, layer, ctx)
    layer.dense_us_estimate = dense_us(traits, ctx.rates)
    if key not in ctx.memo:
        ctx.memo[key] = _decision(node, layer, folded, index_dtype, traits, ctx)
    decision = ctx.memo[key]
    layer.predicted_speedup = decision.predicted
    layer.autotune_dense_ms, layer.autotune_sparse_ms = decision.dense_ms, decision.sparse_ms
    return decision


def _decision(
    node: onnx.NodeProto, layer: LayerReport, folded: _Folded, index_dtype: type, traits: LayerTraits, ctx: Context
) -> Decision:
    decision = decide(layer.sparsity, ctx.min_sparsity, traits, ctx.provider, ctx.rates)
    if not (ctx.autotune and ctx.min_sparsity is None):
        return decision
    if ctx.provider == "cuda" and ctx.cuda_unavailable:
        # No GPU to time on: the Conv stays dense (decide() said so), with the reason why.
        return Decision(False, f"{decision.reason}; not autotuned: {ctx.cuda_unavailable}", code=Code.NOT_AUTOTUNED)
    x_shape = ctx.shapes.get(node.input[0])
    if x_shape is None or not all(known_size(d) for d in x_shape):  # autotune times the real batch
        ctx.autotune_skipped += 1
        unknown = f"{decision.reason}; not autotuned: input size {_dims(x_shape)} unknown"
        return dataclasses.replace(decision, reason=unknown, code=Code.NOT_AUTOTUNED)  # the cost model decided
    too_large = feed_too_large(x_shape)
    if too_large is not None:  # the cost model decided
        reason = f"{decision.reason}; not autotuned: its input {too_large}"
        return dataclasses.replace(decision, reason=reason, code=Code.NOT_AUTOTUNED)
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
        Code.AUTOTUNE,
        dense_ms,
        sparse_ms,
    )


def _report_attributes(node: onnx.NodeProto, layer: LayerReport, k: int) -> None:
    """The strides and group the report shows, where they are well formed."""
    strides, group = attribute(node, "strides", [1] * k), attribute(node, "group", 1)
    layer.strides = list(strides) if isinstance(strides, list) and all(isinstance(v, int) for v in strides) else []
    layer.group = group if isinstance(group, int) else 1


def plan_conv(index: int, node: onnx.NodeProto, scope: Scope, uses, consumers, ctx: Context, claimed: set[int]):
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
    refusal = eligibility(node, scope, weight, ctx)
    if refusal is not None:
        layer.reason, layer.code = refusal.message, refusal.code
        return layer, None
    if name in ctx.keep or node.output[0] in ctx.keep:
        layer.reason, layer.code = "kept dense (--keep)", Code.KEEP
        return layer, None

    folded = _fold_following(node, weight, scope, uses, consumers, ctx.inferred_shapes, claimed)
    weight = folded.weight
    layer.nnz = int(np.count_nonzero(weight))
    layer.sparsity = (weight.size - layer.nnz) / weight.size
    index_dtype = ctx.index_dtype if weight[0].size < np.iinfo(ctx.index_dtype).max else np.int64
    decision = _decide(node, layer, folded, index_dtype, ctx)
    layer.reason = "; ".join([decision.reason, *(note.message for note in folded.notes)])
    layer.code, layer.notes = decision.code, folded.notes
    if not decision.rewrite:
        return layer, None
    if (layer.graph, layer.name) in ctx.reverted:
        layer.reason = f"{decision.reason}; reverted, {ctx.reverted[layer.graph, layer.name]}"
        layer.code = Code.REVERTED
        return layer, None
    csr = dense_to_csr(weight, index_dtype)
    layer.rewritten = True
    layer.folded = folded.names
    layer.csr_bytes = int(csr.values.nbytes + csr.col_indices.nbytes + csr.row_ptr.nbytes)
    plan = Plan(
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
