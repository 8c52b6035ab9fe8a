"""Walking an ONNX model's graphs: nested subgraphs (If/Loop/Scan bodies), constants visible from
a scope, and how often each value is used."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper


def subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    """The graphs held in a node's attributes (If branches, Loop/Scan bodies), by attribute name."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for i, g in enumerate(attr.graphs):
                yield f"{attr.name}[{i}]", g


def all_graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph and every nested subgraph, functions' included."""

    def walk(nodes) -> Iterator[onnx.GraphProto]:
        for node in nodes:
            for _, sub in subgraphs(node):
                yield sub
                yield from walk(sub.node)

    yield model.graph
    yield from walk(model.graph.node)
    for function in model.functions:
        yield from walk(function.node)


def all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in the model: initializers and tensor-valued attributes, everywhere."""
    nodes = [n for g in all_graphs(model) for n in g.node] + [n for f in model.functions for n in f.node]
    for graph in all_graphs(model):
        yield from graph.initializer
    for node in nodes:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors


def value_uses(graph: onnx.GraphProto) -> Counter[str]:
    """How many times each name is read in this graph: node inputs here and in every nested
    subgraph (outer-scope references), plus graph outputs. A subgraph defining the same name
    still counts, which errs on the safe side."""
    uses: Counter[str] = Counter(o.name for o in graph.output)
    for node in graph.node:
        uses.update(name for name in node.input if name)
        for _, sub in subgraphs(node):
            uses.update(value_uses(sub))
    return uses


def constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a Constant node (tensor, float(s) or int(s)); None for sparse values."""
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
    return None


@dataclass
class Scope:
    """One graph and the graphs enclosing it. Finds constants by name: initializers (unless a
    graph input of the same name lets the caller override them) and Constant node outputs."""

    graph: onnx.GraphProto
    path: str
    parent: Scope | None = None
    ir_version: int = 8
    _initializers: dict[str, onnx.TensorProto] = field(init=False)
    _constant_nodes: dict[str, onnx.NodeProto] = field(init=False)
    _inputs: set[str] = field(init=False)
    _produced: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self._initializers = {t.name: t for t in self.graph.initializer}
        self._constant_nodes = {n.output[0]: n for n in self.graph.node if n.op_type == "Constant" and n.output}
        self._inputs = {i.name for i in self.graph.input}
        self._produced = {o for n in self.graph.node for o in n.output}

    def child(self, graph: onnx.GraphProto, name: str) -> Scope:
        return Scope(graph, f"{self.path}/{name}", self, self.ir_version)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of `name` if it is a constant visible here, else None."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope._initializers:
                overridable = name in scope._inputs and scope.ir_version >= 4
                return None if overridable else numpy_helper.to_array(scope._initializers[name])
            if name in scope._constant_nodes:
                return constant_node_value(scope._constant_nodes[name])
            if name in scope._inputs or name in scope._produced:
                return None  # defined here, and not as a constant
            scope = scope.parent
        return None

    def constant_tensor(self, name: str) -> onnx.TensorProto | None:
        """The mutable TensorProto holding constant `name` (an initializer or a Constant node's
        `value`), or None."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope._initializers:
                return scope._initializers[name]
            if name in scope._constant_nodes:
                return next((a.t for a in scope._constant_nodes[name].attribute if a.name == "value"), None)
            if name in scope._inputs or name in scope._produced:
                return None
            scope = scope.parent
        return None
