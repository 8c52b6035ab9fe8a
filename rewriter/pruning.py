"""Magnitude pruning, for users starting from a dense model: each eligible Conv's weight loses
its smallest-magnitude entries until the requested fraction is zero. This changes the model's
outputs and accuracy."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from .graph_walk import Scope, node_label, subgraphs
from .model_io import tensor_value

log = logging.getLogger(__name__)


def magnitude_prune(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """A copy of `weight` with exactly floor(sparsity * size) of its smallest |w| set to zero
    (more if it already had more zeros)."""
    flat = weight.reshape(-1).copy()
    count = int(np.floor(sparsity * flat.size))
    if count > 0:
        flat[np.argsort(np.abs(flat), kind="stable")[:count]] = 0
    return flat.reshape(weight.shape)


def prune_convs(
    model: onnx.ModelProto, sparsity: float, keep: Iterable[str] = ()
) -> tuple[onnx.ModelProto, dict[str, float]]:
    """A copy of `model` whose float32 constant Conv weights are magnitude-pruned to `sparsity`
    (per layer). Returns it with each pruned weight's resulting sparsity. A weight ONNX Runtime
    would refuse to load raises MalformedModelError naming its Conv."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"prune sparsity must be within [0, 1], got {sparsity}")
    keep = set(keep)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    achieved: dict[str, float] = {}
    convs = 0  # Convs reading a pruned weight: several Convs may share one weight tensor

    def visit(scope: Scope) -> None:
        nonlocal convs
        for node in scope.graph.node:
            for attr_name, sub in subgraphs(node):
                visit(scope.child(sub, f"{node.name or node.op_type}.{attr_name}"))
            if node.op_type != "Conv" or len(node.input) < 2 or node.name in keep or node.output[0] in keep:
                continue
            tensor = scope.constant_tensor(node.input[1])
            if tensor is None:
                continue
            if node.input[1] in achieved:  # a shared weight, pruned once
                convs += 1
                continue
            weight = tensor_value(tensor, f"node '{node_label(node)}': input '{node.input[1]}'")
            if weight.dtype != np.float32:
                continue
            pruned = magnitude_prune(weight, sparsity)
            tensor.CopyFrom(numpy_helper.from_array(pruned, tensor.name))
            achieved[node.input[1]] = 1.0 - np.count_nonzero(pruned) / max(pruned.size, 1)
            convs += 1

    visit(Scope(out.graph, "main", ir_version=out.ir_version))
    for function in out.functions:  # constants in functions are Constant nodes
        graph = onnx.helper.make_graph(list(function.node), function.name, [], [])
        visit(Scope(graph, f"function {function.name}", ir_version=out.ir_version))
        del function.node[:]
        function.node.extend(graph.node)
    if achieved:
        log.warning(
            "pruned %d weight tensor%s used by %d Conv%s to %.0f%% zeros: "
            "this changes the model's outputs and accuracy",
            len(achieved),
            "" if len(achieved) == 1 else "s",
            convs,
            "" if convs == 1 else "s",
            100 * sparsity,
        )
    else:
        log.info("prune: no float32 constant Conv weight to prune; the model is unchanged")
    return out, achieved
