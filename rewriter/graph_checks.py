"""Whole-graph rules ONNX Runtime enforces when it loads a model, checked before the rewrite
reads the model: every graph (main, If/Loop/Scan bodies, model-local functions) is acyclic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx

from .graph_walk import node_label, subgraphs, value_uses
from .model_io import MalformedModelError


def _reads(node: onnx.NodeProto) -> set[str]:
    """The names a node reads: its inputs and, for a node holding subgraphs, what they read from
    the enclosing scope (their implicit inputs; names are unique in a model, so any name a
    subgraph reads that this graph produces comes from here)."""
    names = {name for name in node.input if name}
    for _, sub in subgraphs(node):
        names.update(value_uses(sub))
    return names


def _check_nodes(nodes: Sequence[onnx.NodeProto], where: str) -> None:
    """MalformedModelError naming a node on a cycle (or reading its own output), if any."""
    producer = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    readers: list[list[int]] = [[] for _ in nodes]
    pending = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for name in _reads(node):
            source = producer.get(name)
            if source is None:
                continue
            if source == i:
                raise MalformedModelError(f"{where}: node '{node_label(node)}' reads its own output '{name}'")
            readers[source].append(i)
            pending[i] += 1
    ready = [i for i, count in enumerate(pending) if count == 0]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for reader in readers[i]:
            pending[reader] -= 1
            if pending[reader] == 0:
                ready.append(reader)
    if done < len(nodes):
        cycle = [node_label(nodes[i]) for i, count in enumerate(pending) if count > 0]
        shown = ", ".join(f"'{name}'" for name in cycle[:5]) + (", ..." if len(cycle) > 5 else "")
        raise MalformedModelError(f"{where}: the graph has a cycle (nodes {shown} wait on each other's outputs)")


def _graphs(model: onnx.ModelProto) -> Iterable[tuple[str, Sequence[onnx.NodeProto]]]:
    """(where, nodes) for the main graph, every subgraph and every function body."""

    def walk(nodes: Sequence[onnx.NodeProto], where: str) -> Iterable[tuple[str, Sequence[onnx.NodeProto]]]:
        yield where, nodes
        for node in nodes:
            for attr_name, sub in subgraphs(node):
                yield from walk(sub.node, f"{where}/{node_label(node)}.{attr_name}")

    yield from walk(model.graph.node, "graph 'main'")
    for function in model.functions:
        yield from walk(function.node, f"function '{function.name}'")


def check_acyclic(model: onnx.ModelProto) -> None:
    """Raises MalformedModelError, naming the graph and a node, when some graph of the model has
    a cycle or a node reads its own output: ONNX Runtime refuses to load such a model."""
    for where, nodes in _graphs(model):
        _check_nodes(nodes, where)
