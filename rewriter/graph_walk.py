"""Walking an ONNX model's graphs: nested subgraphs (If/Loop/Scan bodies), constants visible from
a scope, and how often each value is used."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from .model_io import MalformedModelError, tensor_value


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


def node_label(node: onnx.NodeProto) -> str:
    """How messages name a node: its name, else its first output."""
    return node.name or (node.output[0] if node.output else node.op_type)


def refers_to_caller(node: onnx.NodeProto) -> bool:
    """Whether some attribute of this node (inside a function) takes its value from the calling
    node's attributes (ref_attr_name), which only the caller knows."""
    return any(a.ref_attr_name for a in node.attribute)


def attribute(node: onnx.NodeProto, name: str, default, kind: int | None = None):
    """The value of a node's attribute (strings decoded), or `default` when absent or when it
    refers to the caller's (see refers_to_caller). With `kind` (an AttributeProto type), an
    attribute of another type raises MalformedModelError, as ONNX Runtime refuses such a model."""
    for a in node.attribute:
        if a.name != name or a.ref_attr_name:
            continue
        if kind is not None and a.type != kind:
            raise MalformedModelError(
                f"node '{node_label(node)}': attribute '{name}' is "
                f"{onnx.AttributeProto.AttributeType.Name(a.type)}, not {onnx.AttributeProto.AttributeType.Name(kind)}"
            )
        value = helper.get_attribute_value(a)
        return value.decode() if isinstance(value, bytes) else value
    return default


def constant_node_value(node: onnx.NodeProto, where: str = "") -> np.ndarray | None:
    """The value of a Constant node (tensor, float(s) or int(s)); None for sparse values.
    A tensor ONNX Runtime would refuse raises MalformedModelError, its message starting with
    `where` (by default the Constant node)."""
    for attr in node.attribute:
        if attr.name == "value":
            return tensor_value(attr.t, where or f"Constant node '{node_label(node)}'")
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
    return None


# Nodes that only rearrange their first input: over constants their result is a constant too
# (exporters write a bias as Reshape(constant, [1, C, 1, 1]) or Unsqueeze(constant)).
ONNX_DOMAINS = ("", "ai.onnx")  # the default domain, by both its names

SHAPE_OPS = ("Reshape", "Unsqueeze", "Squeeze", "Identity")
_MAX_FOLDED_ELEMENTS = 1 << 20  # shape ops over larger constants are left alone


def _shape_op_value(node: onnx.NodeProto, data: np.ndarray, operand: np.ndarray | None) -> np.ndarray | None:
    """A shape op's result on a constant (`operand`: its second input's value, if any); None
    where the node is not one this evaluates exactly as ONNX defines it."""
    if node.op_type == "Identity":
        return data
    if node.op_type == "Reshape":
        if operand is None or attribute(node, "allowzero", 0) != 0:
            return None
        shape = [int(d) if d != 0 else data.shape[i] for i, d in enumerate(operand.reshape(-1))]
        try:
            return data.reshape(shape)
        except (ValueError, IndexError):
            return None
    axes = operand if operand is not None else attribute(node, "axes", None)
    axes = None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    if node.op_type == "Squeeze":
        try:
            return np.squeeze(data, axis=tuple(axes)) if axes else np.squeeze(data)
        except ValueError:
            return None
    if not axes:
        return None
    rank = data.ndim + len(axes)
    try:
        return np.expand_dims(data, axis=tuple(a + rank if a < 0 else a for a in axes))
    except ValueError:  # numpy's AxisError is one
        return None


@dataclass
class Scope:
    """One graph and the graphs enclosing it. Finds constants by name: initializers (unless a
    graph input of the same name lets the caller override them), Constant node outputs, and the
    outputs of shape ops (SHAPE_OPS) over constants."""

    graph: onnx.GraphProto
    path: str
    parent: Scope | None = None
    ir_version: int = 8
    _initializers: dict[str, onnx.TensorProto] = field(init=False)
    _constant_nodes: dict[str, onnx.NodeProto] = field(init=False)
    _inputs: set[str] = field(init=False)
    _produced: set[str] = field(init=False)
    _shape_ops: dict[str, onnx.NodeProto] = field(init=False)

    def __post_init__(self) -> None:
        self._initializers = {t.name: t for t in self.graph.initializer}
        self._constant_nodes = {n.output[0]: n for n in self.graph.node if n.op_type == "Constant" and n.output}
        self._shape_ops = {
            n.output[0]: n
            for n in self.graph.node
            if n.op_type in SHAPE_OPS and n.domain in ("", "ai.onnx") and len(n.output) == 1 and n.input
        }
        self._inputs = {i.name for i in self.graph.input}
        self._produced = {o for n in self.graph.node for o in n.output}

    def child(self, graph: onnx.GraphProto, name: str) -> Scope:
        return Scope(graph, f"{self.path}/{name}", self, self.ir_version)

    def constant(self, name: str, reader: onnx.NodeProto | None = None) -> np.ndarray | None:
        """The value of `name` if it is a constant visible here, else None. A stored tensor ONNX
        Runtime would refuse (see model_io.tensor_value) raises MalformedModelError naming
        `reader`, the node reading it, when given."""
        where = f"node '{node_label(reader)}': input '{name}'" if reader is not None else ""
        scope: Scope | None = self
        while scope is not None:
            if name in scope._initializers:
                overridable = name in scope._inputs and scope.ir_version >= 4
                return None if overridable else tensor_value(scope._initializers[name], where)
            if name in scope._constant_nodes:
                node = scope._constant_nodes[name]
                return constant_node_value(node, f"{where} (Constant node '{node_label(node)}')" if where else "")
            if name in scope._shape_ops:
                return scope._shape_op_constant(scope._shape_ops[name], reader)
            if name in scope._inputs or name in scope._produced:
                return None  # defined here, and not as a constant
            scope = scope.parent
        return None

    def _shape_op_constant(self, node: onnx.NodeProto, reader: onnx.NodeProto | None) -> np.ndarray | None:
        if refers_to_caller(node):
            return None
        data = self.constant(node.input[0], reader)
        if data is None or data.size > _MAX_FOLDED_ELEMENTS:
            return None
        operand = self.constant(node.input[1], reader) if len(node.input) > 1 and node.input[1] else None
        if len(node.input) > 1 and node.input[1] and operand is None:
            return None
        return _shape_op_value(node, data, operand)

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
