"""Folding the per-channel affine ops exporters write after a Conv (Mul, Add, Sub and Div by a
constant, alone, chained, with a BatchNormalization) into W and B, and the cases that stay in
the graph with a reason. Each rewrite is compared with ONNX Runtime running the original."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_sparsify
import pytest
from models import IR_VERSION, OPSET, random_sparse_weight, rel_l2, session
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify.result import Code

RNG = np.random.default_rng(14)
M, C = 6, 4  # output and input channels


def _out(name: str, rank: int = 4) -> onnx.ValueInfoProto:
    """A graph output of any size (onnx.checker wants a shape)."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}_d{i}" for i in range(rank)])


def _spatial(rank: int) -> list[int]:
    return {3: [9], 4: [7, 8], 5: [4, 5, 6]}[rank]


def _per_channel(rank: int, low: float = 0.5, high: float = 2.0) -> np.ndarray:
    """A positive float32 constant of shape [M, 1, ...] for a Conv output of this rank."""
    return RNG.uniform(low, high, (M, *[1] * (rank - 2))).astype(np.float32)


def _bn(src: str, dst: str, prefix: str) -> tuple[list, list]:
    inits = [
        numpy_helper.from_array(RNG.uniform(0.5, 2, M).astype(np.float32), f"{prefix}_s"),
        numpy_helper.from_array(RNG.standard_normal(M).astype(np.float32), f"{prefix}_t"),
        numpy_helper.from_array(RNG.standard_normal(M).astype(np.float32), f"{prefix}_m"),
        numpy_helper.from_array(RNG.uniform(0.5, 2, M).astype(np.float32), f"{prefix}_v"),
    ]
    node = helper.make_node("BatchNormalization", [src, *(t.name for t in inits)], [dst], epsilon=1e-3)
    return [node], inits


def _chain(steps, constant_nodes: bool = False, src: str = "c"):
    """Nodes and initializers for `steps` after the Conv's output `src`, the last writing "y".
    A step is ("BN",), (op, constant) or (op, constant, constant_first); an activation name
    ("Relu") is an activation step."""
    nodes, inits = [], []
    for i, step in enumerate(steps):
        dst = "y" if i == len(steps) - 1 else f"t{i}"
        op = step[0]
        if op == "BN":
            more_nodes, more_inits = _bn(src, dst, f"bn{i}")
            nodes += more_nodes
            inits += more_inits
        elif len(step) == 1:
            nodes.append(helper.make_node(op, [src], [dst], name=f"act{i}"))
        else:
            value, first = step[1], (step[2] if len(step) > 2 else False)
            name = f"k{i}"
            tensor = numpy_helper.from_array(np.asarray(value), name)
            if constant_nodes:
                nodes.append(helper.make_node("Constant", [], [name], value=tensor))
            else:
                inits.append(tensor)
            operands = [name, src] if first else [src, name]
            nodes.append(helper.make_node(op, operands, [dst], name=f"{op.lower()}{i}"))
        src = dst
    return nodes, inits


def _conv(rank: int, bias: bool, out: str = "c", weight: np.ndarray | None = None):
    w = random_sparse_weight(RNG, (M, C, *[3] * (rank - 2)), 0.8) if weight is None else weight
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(RNG.standard_normal(M).astype(np.float32), "b"))
        inputs.append("b")
    conv = helper.make_node("Conv", inputs, [out], name="conv", pads=[1] * 2 * (rank - 2))
    return [conv], inits


def _model(steps, rank: int = 4, bias: bool = True, constant_nodes: bool = False, extra_inputs=(), outputs=("y",)):
    conv_nodes, conv_inits = _conv(rank, bias)
    nodes, inits = _chain(steps, constant_nodes)
    graph = helper.make_graph(
        conv_nodes + nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, *_spatial(rank)]), *extra_inputs],
        [_out(o, rank) for o in outputs],
        conv_inits + inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    feeds = {}
    for value in model.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == TensorProto.BOOL:
            feeds[value.name] = np.array(True)
        else:
            feeds[value.name] = RNG.standard_normal(dims).astype(np.float32)
    return feeds


def _assert_same(original: onnx.ModelProto, rewritten: onnx.ModelProto, feeds=None) -> None:
    feeds = feeds or _feeds(original)
    expected = session(original, plugin=False).run(None, feeds)
    actual = session(rewritten, plugin=True).run(None, feeds)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        finite = np.isfinite(e)  # a Div by zero left in the graph gives infinities: the same ones
        np.testing.assert_array_equal(a[~finite], e[~finite])
        assert rel_l2(a[finite], e[finite]) <= 1e-5, rel_l2(a[finite], e[finite])


def _ops(graph: onnx.GraphProto) -> list[str]:
    return [n.op_type for n in graph.node if n.op_type != "Constant"]


def _sparsify(model: onnx.ModelProto):
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    onnx.checker.check_model(rewritten)
    return rewritten, report


SINGLE = {
    "mul_scalar": ("Mul", np.float32(1.7)),
    "mul_scalar_1": ("Mul", np.array([0.6], np.float32)),
    "mul_m11": ("Mul", "per_channel"),
    "mul_1m11": ("Mul", "per_channel_batch"),
    "add_scalar": ("Add", np.float32(-0.4)),
    "add_m11": ("Add", "per_channel"),
    "add_1m11": ("Add", "per_channel_batch"),
    "sub_m11": ("Sub", "per_channel"),
    "div_scalar": ("Div", np.float32(3.0)),
    "div_m11": ("Div", "per_channel"),
}


def _value(spec, rank: int) -> np.ndarray:
    if isinstance(spec, str):
        value = _per_channel(rank)
        return value[None] if spec == "per_channel_batch" else value
    return spec


@pytest.mark.parametrize("source", ["initializer", "constant_node"])
@pytest.mark.parametrize(
    ("case", "first"),  # c / x is not affine in x: test_div_of_a_constant_by_the_conv_output_stays
    [(case, first) for case in sorted(SINGLE) for first in (False, True) if not (first and SINGLE[case][0] == "Div")],
    ids=lambda v: v if isinstance(v, str) else ("constant_first" if v else "conv_first"),
)
def test_folds_a_single_affine_op(case, first, source) -> None:
    op, spec = SINGLE[case]
    model = _model([(op, _value(spec, 4), first)], constant_nodes=source == "constant_node")
    rewritten, report = _sparsify(model)
    assert _ops(rewritten.graph) == ["SparseConv"]
    assert report.layers[0].folded == [op]
    assert "k0" not in {t.name for t in rewritten.graph.initializer}
    assert not any(n.op_type == "Constant" and n.output[0] == "k0" for n in rewritten.graph.node)
    _assert_same(model, rewritten)


@pytest.mark.parametrize("op", ["Mul", "Add", "Sub", "Div"])
def test_folds_into_a_conv_without_bias(op) -> None:
    model = _model([(op, _per_channel(4))], bias=False)
    rewritten, report = _sparsify(model)
    assert _ops(rewritten.graph) == ["SparseConv"] and report.layers[0].folded == [op]
    _assert_same(model, rewritten)


CHAINS = {
    "mul_add": [("Mul", "c"), ("Add", "c")],
    "add_mul": [("Add", "c"), ("Mul", "c", True)],
    "mul_add_relu": [("Mul", "c"), ("Add", "c", True), ("Relu",)],
    "bn_mul_add": [("BN",), ("Mul", "c"), ("Add", "c")],
    "mul_bn_sub": [("Mul", "c", True), ("BN",), ("Sub", "c")],
    "bn_div_add_sigmoid": [("BN",), ("Div", "c"), ("Add", "s"), ("Sigmoid",)],
    "sub_mul_sub_div": [("Sub", "s"), ("Mul", "c"), ("Sub", "c", True), ("Div", "s")],
}


def _steps(chain, rank: int):
    return [
        (step[0], _per_channel(rank) if step[1] == "c" else np.float32(1.3), *step[2:]) if len(step) > 1 else step
        for step in chain
    ]


@pytest.mark.parametrize("rank", [3, 4, 5], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_folds_chains(chain, rank) -> None:
    model = _model(_steps(CHAINS[chain], rank), rank=rank)
    rewritten, report = _sparsify(model)
    assert _ops(rewritten.graph) == ["SparseConv"]
    names = [{"BN": "BatchNormalization"}.get(step[0], step[0]) for step in CHAINS[chain]]
    assert report.layers[0].folded == names
    _assert_same(model, rewritten)


def test_folds_inside_if_branches_with_outer_scope_constants() -> None:
    w = random_sparse_weight(RNG, (M, C, 3, 3), 0.8)
    scale, shift = _per_channel(4), _per_channel(4, -1, 1)

    def branch(name):
        nodes = [
            helper.make_node("Conv", ["x", "outer_w"], [f"{name}_c"], name=f"{name}_conv", pads=[1] * 4),
            helper.make_node("Mul", ["outer_scale", f"{name}_c"], [f"{name}_m"]),
            helper.make_node("Add", [f"{name}_m", f"{name}_shift"], [f"{name}_a"]),
            helper.make_node("Relu", [f"{name}_a"], [f"{name}_y"]),
        ]
        local = [numpy_helper.from_array(shift, f"{name}_shift")]
        outputs = [_out(f"{name}_y")]
        return helper.make_graph(nodes, name, [], outputs, local)

    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch("then"), else_branch=branch("else"))],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 7, 8]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [_out("y")],
        [numpy_helper.from_array(w, "outer_w"), numpy_helper.from_array(scale, "outer_scale")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    rewritten, report = _sparsify(model)
    assert report.rewritten == 2 and all(layer.folded == ["Mul", "Add", "Relu"] for layer in report.layers)
    assert "outer_scale" not in {t.name for t in rewritten.graph.initializer}
    for attr in rewritten.graph.node[0].attribute:
        assert _ops(attr.g) == ["SparseConv"]
    x = RNG.standard_normal((1, C, 7, 8)).astype(np.float32)
    for cond in (True, False):
        _assert_same(model, rewritten, {"x": x, "cond": np.array(cond)})


def test_folds_inside_a_model_local_function() -> None:
    w = random_sparse_weight(RNG, (M, C, 3), 0.8)
    chain_nodes, _ = _chain([("Mul", _per_channel(3)), ("Sub", _per_channel(3)), ("Relu",)], constant_nodes=True)
    for node in chain_nodes:
        node.input[:] = ["inp_c" if n == "c" else n for n in node.input]
    chain_nodes[-1].output[:] = ["out"]
    fn = helper.make_function(
        "local",
        "Block",
        ["inp"],
        ["out"],
        [
            helper.make_node("Constant", [], ["fw"], value=numpy_helper.from_array(w, "fw")),
            helper.make_node("Conv", ["inp", "fw"], ["inp_c"], name="fconv", pads=[1, 1]),
            *chain_nodes,
        ],
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    graph = helper.make_graph(
        [helper.make_node("Block", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 9])],
        [_out("y", 3)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("local", 1)],
        ir_version=IR_VERSION,
        functions=[fn],
    )
    rewritten, report = _sparsify(model)
    assert report.layers[0].graph.startswith("function") and report.layers[0].folded == ["Mul", "Sub", "Relu"]
    fn_nodes = rewritten.functions[0].node
    assert [n.op_type for n in fn_nodes if n.op_type != "Constant"] == ["SparseConv"]
    assert not any(n.output[0] in ("k0", "k1") for n in fn_nodes)
    _assert_same(model, rewritten)


def _assert_refused(rewritten, report, op: str, words: str, folded=(), code: Code | None = None) -> None:
    layer = report.layers[0]
    assert layer.rewritten and layer.folded == list(folded)
    assert op in _ops(rewritten.graph)
    assert f"{op} '" in layer.reason and "not folded" in layer.reason and words in layer.reason, layer.reason
    if code is not None:
        assert [note.code for note in layer.notes] == [code], layer.notes


REFUSED_VALID = {  # models ONNX Runtime runs, whose affine op cannot fold: (steps, words, code)
    "spatial": ([("Mul", RNG.uniform(0.5, 2, (1, M, 7, 8)).astype(np.float32))], "spatial axis", Code.WRONG_SHAPE),
    "spatial_broadcast": (
        [("Add", RNG.uniform(0.5, 2, (1, 1, 1, 8)).astype(np.float32))],
        "spatial axis",
        Code.WRONG_SHAPE,
    ),
    "batch": ([("Mul", RNG.uniform(0.5, 2, (2, M, 1, 1)).astype(np.float32))], "batch axis", Code.WRONG_SHAPE),
    "higher_rank": ([("Add", np.ones((1, 1, M, 1, 1), np.float32), True)], "higher rank", Code.WRONG_SHAPE),
    "div_by_zero": (
        [("Div", np.array([[[1.0]], [[0.0]], *[[[2.0]]] * (M - 2)], np.float32))],
        "zero in 1 channels",
        Code.DIVIDE_BY_ZERO,
    ),
    "div_tiny": ([("Div", np.float32(1e-40))], "not finite in float32", Code.OVERFLOW),
}


@pytest.mark.parametrize("case", sorted(REFUSED_VALID))
def test_refusals_keep_the_node_with_a_reason(case) -> None:
    steps, words, code = REFUSED_VALID[case]
    model = _model(steps)
    rewritten, report = _sparsify(model)
    _assert_refused(rewritten, report, steps[0][0], words, code=code)
    _assert_same(model, rewritten)


def test_non_constant_operand_stays() -> None:
    """A Mul by a computed tensor is no per-channel scale. (An Add of one is a residual input:
    tests/test_residual.py.)"""
    model = _model(
        [("Add", _per_channel(4)), ("Mul", np.float32(0))],
        extra_inputs=[helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, M, 7, 8])],
    )
    mul = model.graph.node[-1]
    mul.input[1] = "r"
    model.graph.initializer.pop()  # the placeholder constant for the Mul
    rewritten, report = _sparsify(model)
    _assert_refused(rewritten, report, "Mul", "'r' is not constant", folded=["Add"], code=Code.NOT_CONSTANT)
    _assert_same(model, rewritten)


@pytest.mark.parametrize("where", ["conv_output", "intermediate"])
def test_shared_value_is_not_folded(where) -> None:
    if where == "conv_output":  # the Conv's output is a graph output too
        model = _model([("Mul", _per_channel(4)), ("Relu",)], outputs=("y", "c"))
        op, folded = "Mul", []
    else:  # the Mul's output is read by the Add and by a second node
        model = _model([("Mul", _per_channel(4)), ("Add", _per_channel(4)), ("Relu",)])
        model.graph.node.append(helper.make_node("Neg", ["t0"], ["z"]))
        model.graph.output.append(_out("z"))
        op, folded = "Add", ["Mul"]
    rewritten, report = _sparsify(model)
    _assert_refused(rewritten, report, op, "other readers", folded=folded, code=Code.OTHER_READERS)
    _assert_same(model, rewritten)


def test_non_finite_folds_are_refused() -> None:
    # Folding both Muls gives weights beyond float32 (the original's output is infinite too).
    w = np.full((M, C, 3, 3), 0.0, np.float32)
    w[:, :, 1, 1] = 1.0
    conv_nodes, conv_inits = _conv(4, False, weight=w)
    nodes, inits = _chain([("Mul", np.float32(1e30)), ("Mul", np.float32(1e30))])
    model = _model([])
    del model.graph.node[:], model.graph.initializer[:]
    model.graph.node.extend(conv_nodes + nodes)
    model.graph.initializer.extend(conv_inits + inits)
    rewritten, report = _sparsify(model)
    _assert_refused(rewritten, report, "Mul", "not finite in float32", folded=["Mul"], code=Code.OVERFLOW)
    assert _ops(rewritten.graph) == ["SparseConv", "Mul"]


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_non_finite_constants_are_refused(value) -> None:
    rewritten, report = _sparsify(_model([("Add", np.full((M, 1, 1), value, np.float32))]))
    _assert_refused(rewritten, report, "Add", "NaN or infinity", code=Code.NOT_FINITE)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int64])
def test_constants_of_other_types_are_refused(dtype) -> None:
    # Not a model ONNX Runtime would load (Mul's operands differ in type): only the refusal counts.
    model = _model([("Mul", np.ones((M, 1, 1), dtype))])
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    _assert_refused(rewritten, report, "Mul", f"is {np.dtype(dtype)}, not float32", code=Code.WRONG_DTYPE)


def test_div_of_a_constant_by_the_conv_output_stays() -> None:
    model = _model([("Div", _per_channel(4), True)])
    rewritten, report = _sparsify(model)
    assert _ops(rewritten.graph) == ["SparseConv", "Div"] and report.layers[0].folded == []
    _assert_same(model, rewritten)


@pytest.mark.parametrize("shape_op", ["Reshape", "Unsqueeze", "Squeeze", "Identity"])
def test_constant_behind_a_shape_op_folds(shape_op) -> None:
    """A bias or scale written as Reshape(constant), Unsqueeze(constant) and the like is a
    constant too: it folds, and the shape op, read by nothing else, goes with it."""
    model = _model([("Add", np.float32(0))])
    add = model.graph.node[-1]
    model.graph.initializer.pop()  # the placeholder constant
    raw = _per_channel(4).reshape(-1)  # [M]
    if shape_op == "Reshape":
        inits = [numpy_helper.from_array(raw, "raw"), numpy_helper.from_array(np.array([1, M, 1, 1]), "shape")]
        node = helper.make_node("Reshape", ["raw", "shape"], ["k"])
    elif shape_op == "Unsqueeze":
        inits = [numpy_helper.from_array(raw, "raw"), numpy_helper.from_array(np.array([0, 2, 3]), "axes")]
        node = helper.make_node("Unsqueeze", ["raw", "axes"], ["k"])
    elif shape_op == "Squeeze":
        inits = [
            numpy_helper.from_array(raw.reshape(1, 1, M, 1, 1), "raw"),
            numpy_helper.from_array(np.array([0]), "axes"),
        ]
        node = helper.make_node("Squeeze", ["raw", "axes"], ["k"])
    else:
        inits = [numpy_helper.from_array(raw.reshape(1, M, 1, 1), "raw")]
        node = helper.make_node("Identity", ["raw"], ["k"])
    model.graph.initializer.extend(inits)
    model.graph.node.insert(0, node)
    add.input[1] = "k"
    rewritten, report = _sparsify(model)
    assert report.layers[0].folded == ["Add"], report.layers[0].reason
    assert _ops(rewritten.graph) == ["SparseConv"]
    assert not {"raw", "shape", "axes"} & {t.name for t in rewritten.graph.initializer}
    _assert_same(model, rewritten)
