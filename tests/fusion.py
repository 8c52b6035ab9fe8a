"""Builders shared by the rewriter's fusion tests (activations, epilogue chains): a model around
one Conv reading X of shape 1x4x8x8 (in the main graph, an If branch or a model-local function)
and the check that its rewrite through the plugin equals ORT running the original."""

from __future__ import annotations

from collections.abc import Sequence

import isa as isas
import numpy as np
import onnx
from models import IR_VERSION, graph_model, rel_l2, session
from onnx import TensorProto, helper, numpy_helper

OPSET = 20  # Gelu's
X_SHAPE = (1, 4, 8, 8)


def model(nodes, inits, outputs=("y",), functions=(), extra_opsets=()) -> onnx.ModelProto:
    """A main graph reading X and writing `outputs`."""
    return graph_model(nodes, inits, X_SHAPE, outputs, None, OPSET, functions=functions, extra_opsets=extra_opsets)


def if_model(branch_nodes, branch_inits, branch_output: str = "out") -> onnx.ModelProto:
    """`branch_nodes` (writing `branch_output`) as the then-branch of an If on input `cond`; the
    else-branch passes X through."""
    then_graph = helper.make_graph(
        branch_nodes, "then", [], [helper.make_tensor_value_info(branch_output, TensorProto.FLOAT, None)], branch_inits
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["out2"])],
        "else",
        [],
        [helper.make_tensor_value_info("out2", TensorProto.FLOAT, None)],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE)),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


IF_FEEDS = [{"cond": np.array(True)}, {"cond": np.array(False)}]


def function_model(name: str, weight: np.ndarray, body: Sequence[onnx.NodeProto], constants=()) -> onnx.ModelProto:
    """A model calling local function `name`: Conv(inp, weight) into "fc" (weight and
    `constants`, (name, array) pairs, as Constant nodes), then `body` writing "out"."""
    nodes = [helper.make_node("Constant", [], ["fw"], value=numpy_helper.from_array(weight, "fw"))]
    nodes += [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(v, n)) for n, v in constants]
    nodes.append(helper.make_node("Conv", ["inp", "fw"], ["fc"], name="fconv", pads=[1, 1, 1, 1]))
    fn = helper.make_function(
        "local", name, ["inp"], ["out"], [*nodes, *body], opset_imports=[helper.make_opsetid("", OPSET)]
    )
    call = helper.make_node(name, ["x"], ["y"], domain="local")
    return model([call], [], functions=[fn], extra_opsets=[helper.make_opsetid("local", 1)])


def assert_same(original, rewritten, isa: str | None = None, feeds=None, seed: int = 0) -> None:
    """The rewritten model through the plugin (its CPU kernel on `isa`) equals ORT running the
    original: the same NaN positions, relative L2 within 1e-5 elsewhere."""
    x = (3 * np.random.default_rng(seed).standard_normal(X_SHAPE)).astype(np.float32)
    with isas.forced_isa(isa):
        sparse = session(rewritten, plugin=True)
    for feed in feeds or [{}]:
        feed = {"x": x, **feed}
        expected = session(original, plugin=False).run(None, feed)
        actual = sparse.run(None, feed)
        for a, e in zip(actual, expected, strict=True):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
            finite = ~np.isnan(e)
            assert not finite.any() or rel_l2(a[finite], e[finite]) <= 1e-5


def sparse_nodes(graph_nodes) -> list[onnx.NodeProto]:
    return [n for n in graph_nodes if n.op_type == "SparseConv"]


def attr(node: onnx.NodeProto, name: str):
    """A node's attribute value (strings decoded), None when absent."""
    value = next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)
    return value.decode() if isinstance(value, bytes) else value
