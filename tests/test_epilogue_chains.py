"""The rewriter fusing what real models put after their Convs into SparseConv's epilogue chain:
PRelu (per-channel and scalar slopes), Max/Min by a scalar, ORT's QuickGelu, Swish with a beta
(x * sigmoid(beta * x)), Mish (the op and x * tanh(softplus(x))), HardSwish as exporters
decompose it (x * clip(x + 3, 0, 6) / 6 and its orderings) and chains of them; each
compared with ORT running the unfused original, on every instruction-set path, and each refusal
with its reason. In the main graph, in an If branch and in a model-local function."""

from __future__ import annotations

import isa as isas
import numpy as np
import onnx
import onnx_sparsify
import pytest
from fusion import IF_FEEDS, function_model, if_model
from fusion import assert_same as _assert_same
from fusion import attr as _attr
from fusion import model as _model
from fusion import sparse_nodes as _sparse
from models import random_sparse_weight
from onnx import helper, numpy_helper
from onnx_sparsify.result import Code

RNG = np.random.default_rng(14)
CHANNELS = 6


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _inits(*extra: onnx.TensorProto) -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(random_sparse_weight(RNG, (CHANNELS, 4, 3, 3), 0.9), "w"),
        numpy_helper.from_array(RNG.standard_normal(CHANNELS).astype(np.float32), "b"),
        *extra,
    ]


def _conv(out: str = "c") -> onnx.NodeProto:
    return helper.make_node("Conv", ["x", "w", "b"], [out], name="conv", pads=[1, 1, 1, 1])


SLOPES = np.linspace(-0.5, 1.5, CHANNELS, dtype=np.float32)

# name -> (nodes after the Conv's output "c", ending in "y"; constants; SparseConv's activation;
# its activation_params (None: absent))
PATTERNS = {
    "prelu_per_channel": (
        [helper.make_node("PRelu", ["c", "slope"], ["y"])],
        [_const("slope", SLOPES.reshape(CHANNELS, 1, 1))],
        "PRelu",
        None,
    ),
    "prelu_scalar": ([helper.make_node("PRelu", ["c", "slope"], ["y"])], [_const("slope", [0.2])], "PRelu", None),
    "max_scalar": ([helper.make_node("Max", ["c", "lo"], ["y"])], [_const("lo", 0.1)], "Clip", [0.1, np.inf]),
    "min_scalar_first": (
        [helper.make_node("Min", ["hi", "c"], ["y"])],
        [_const("hi", [[[[0.5]]]])],
        "Clip",
        [-np.inf, 0.5],
    ),
    "quick_gelu": (
        [helper.make_node("QuickGelu", ["c"], ["y"], domain="com.microsoft", alpha=1.5)],
        [],
        "QuickGelu",
        [1.5],
    ),
    "swish_beta": (
        [
            helper.make_node("Mul", ["beta", "c"], ["bc"]),
            helper.make_node("Sigmoid", ["bc"], ["g"]),
            helper.make_node("Mul", ["g", "c"], ["y"]),
        ],
        [_const("beta", 1.702)],
        "QuickGelu",
        [np.float32(1.702)],
    ),
    "mish": ([helper.make_node("Mish", ["c"], ["y"])], [], "Mish", None),
    "mish_pattern": (
        [
            helper.make_node("Softplus", ["c"], ["sp"]),
            helper.make_node("Tanh", ["sp"], ["t"]),
            helper.make_node("Mul", ["c", "t"], ["y"]),
        ],
        [],
        "Mish",
        None,
    ),
    "hard_swish_paddle": (  # paddle2onnx: (x * clip(x + 3, 0, 6)) / 6
        [
            helper.make_node("Add", ["c", "three"], ["a"]),
            helper.make_node("Clip", ["a", "zero", "six"], ["cl"]),
            helper.make_node("Mul", ["c", "cl"], ["m"]),
            helper.make_node("Div", ["m", "six"], ["y"]),
        ],
        [_const("three", 3.0), _const("zero", 0.0), _const("six", 6.0)],
        "HardSwish",
        None,
    ),
    "hard_swish_gate_divided": (  # x * (clip(x + 3, 0, 6) / 6), the Mul's operands swapped
        [
            helper.make_node("Add", ["three", "c"], ["a"]),
            helper.make_node("Clip", ["a", "zero", "six"], ["cl"]),
            helper.make_node("Div", ["cl", "six"], ["d"]),
            helper.make_node("Mul", ["d", "c"], ["y"]),
        ],
        [_const("three", 3.0), _const("zero", 0.0), _const("six", 6.0)],
        "HardSwish",
        None,
    ),
    "hard_swish_gate_sixth": (  # x * (clip(x + 3, 0, 6) * (1/6))
        [
            helper.make_node("Add", ["c", "three"], ["a"]),
            helper.make_node("Clip", ["a", "zero", "six"], ["cl"]),
            helper.make_node("Mul", ["cl", "sixth"], ["d"]),
            helper.make_node("Mul", ["c", "d"], ["y"]),
        ],
        [_const("three", 3.0), _const("zero", 0.0), _const("six", 6.0), _const("sixth", 1.0 / 6.0)],
        "HardSwish",
        None,
    ),
    "hard_swish_hard_sigmoid": (
        [
            helper.make_node("HardSigmoid", ["c"], ["h"], alpha=float(np.float32(1 / 6)), beta=0.5),
            helper.make_node("Mul", ["c", "h"], ["y"]),
        ],
        [],
        "HardSwish",
        None,
    ),
    "leaky_then_max": (  # the TF-exported audio model's Conv -> LeakyRelu -> Max(x, c)
        [helper.make_node("LeakyRelu", ["c"], ["l"], alpha=0.2), helper.make_node("Max", ["l", "lo"], ["y"])],
        [_const("lo", -0.3)],
        "LeakyRelu,Clip",
        [0.2, -0.3, np.inf],
    ),
    "four_steps": (
        [
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Min", ["r", "hi"], ["m"]),
            helper.make_node("Sigmoid", ["m"], ["s"]),
            helper.make_node("Mul", ["m", "s"], ["q"]),  # SiLU of the clipped value
            helper.make_node("PRelu", ["q", "slope"], ["y"]),
        ],
        [_const("hi", 2.0), _const("slope", SLOPES.reshape(1, CHANNELS, 1, 1))],
        "Relu,Clip,SiLU,PRelu",
        [-np.inf, 2.0],
    ),
}


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_fused(name, isa) -> None:
    nodes, consts, activation, params = PATTERNS[name]
    opsets = [helper.make_opsetid("com.microsoft", 1)] if name == "quick_gelu" else []
    model = _model([_conv(), *nodes], _inits(*consts), extra_opsets=opsets)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv"], report.layers[0].reason
    node = rewritten.graph.node[0]
    assert _attr(node, "activation") == activation
    if params is None:
        assert _attr(node, "activation_params") is None
    else:
        np.testing.assert_array_equal(np.float32(_attr(node, "activation_params")), np.float32(params))
    if "PRelu" in activation:
        slopes = _attr(node, "activation_slopes")
        assert len(slopes) in (1, CHANNELS)
    assert report.layers[0].folded == activation.split(",")
    _assert_same(model, rewritten, isa)


def test_hard_swish_lookalike_with_other_constants_stays() -> None:
    """x * clip(x + 2, 0, 6) / 6 is no HardSwish: nothing fuses but the Conv."""
    nodes, consts, *_ = PATTERNS["hard_swish_paddle"]
    consts = [_const("three", 2.0), *consts[1:]]
    model = _model([_conv(), *nodes], _inits(*consts))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "Add", "Clip", "Mul", "Div"]
    assert report.layers[0].folded == []
    _assert_same(model, rewritten)


def test_fifth_step_stays_with_its_reason() -> None:
    steps = [("Relu", "c", "s1"), ("Tanh", "s1", "s2"), ("Relu", "s2", "s3"), ("Tanh", "s3", "s4")]
    nodes = [helper.make_node(op, [src], [dst]) for op, src, dst in steps]
    nodes.append(helper.make_node("Sigmoid", ["s4"], ["y"], name="fifth"))
    model = _model([_conv(), *nodes], _inits())
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "Sigmoid"]
    assert "Sigmoid not folded: the epilogue already has 4 steps" in report.layers[0].reason
    _assert_same(model, rewritten)


@pytest.mark.parametrize(
    "nodes,consts,why,code",
    [
        (
            [helper.make_node("PRelu", ["c", "slope"], ["y"], name="p")],
            [_const("slope", np.full((1, 8, 8), 0.1))],
            "PRelu 'p' not folded: its slope of shape [1, 8, 8] varies along a spatial axis",
            Code.WRONG_SHAPE,
        ),
        (
            [helper.make_node("Max", ["c", "lo"], ["y"], name="m")],
            [_const("lo", np.zeros((CHANNELS, 1, 1)))],
            "Max 'm' not folded: its constant 'lo' is float32 of shape [6, 1, 1], not one float32",
            Code.WRONG_SHAPE,
        ),
        (
            [helper.make_node("Max", ["c", "lo", "lo2"], ["y"], name="m")],
            [_const("lo", 0.0), _const("lo2", 1.0)],
            "Max 'm' not folded: it has 3 inputs",
            Code.UNSUPPORTED_MODE,
        ),
        (
            [helper.make_node("Max", ["c", "lo"], ["y"], name="m")],
            [_const("lo", np.nan)],
            "Max 'm' not folded: its constant is NaN",
            Code.NOT_FINITE,
        ),
        (
            [
                helper.make_node("PRelu", ["c", "slope"], ["p"]),
                helper.make_node("PRelu", ["p", "slope"], ["y"], name="second"),
            ],
            [_const("slope", [0.25])],
            "PRelu not folded: the epilogue already has a PRelu",
            Code.EPILOGUE_FULL,
        ),
    ],
    ids=["prelu_spatial_slope", "max_per_channel", "max_three_inputs", "max_nan", "second_prelu"],
)
def test_refusals_name_the_reason(nodes, consts, why, code) -> None:
    model = _model([_conv(), *nodes], _inits(*consts))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert len(_sparse(rewritten.graph.node)) == 1
    layer = report.layers[0]
    assert [note.code for note in layer.notes] == [code] and layer.notes[0].message.startswith(why), layer.notes
    assert why in layer.reason, layer.reason
    _assert_same(model, rewritten)


def test_swish_beta_with_inner_reader_stays() -> None:
    nodes, consts, *_ = PATTERNS["swish_beta"]
    extra = helper.make_node("Relu", ["g"], ["other"])
    model = _model([_conv(), *nodes, extra], _inits(*consts), outputs=("y", "other"))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert {"Sigmoid", "Mul"} <= {n.op_type for n in rewritten.graph.node}
    assert "(QuickGelu) not folded: the Sigmoid's output 'g'" in report.layers[0].reason
    _assert_same(model, rewritten)


def test_swish_with_non_constant_beta_is_not_a_pattern() -> None:
    """Mul(c, Sigmoid(Mul(c, z))) with z computed from the input is no QuickGelu: nothing fuses,
    nothing breaks."""
    nodes = [
        helper.make_node("Mul", ["c", "x2"], ["bc"]),
        helper.make_node("Sigmoid", ["bc"], ["g"]),
        helper.make_node("Mul", ["c", "g"], ["y"]),
    ]
    model = _model([_conv(), helper.make_node("ReduceMax", ["x"], ["x2"], keepdims=0), *nodes], _inits())
    rewritten, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node].count("Mul") == 2
    _assert_same(model, rewritten)


def test_chain_fused_in_subgraph() -> None:
    nodes, consts, activation, _ = PATTERNS["leaky_then_max"]
    renamed = [helper.make_node(n.op_type, list(n.input), ["out" if o == "y" else o for o in n.output]) for n in nodes]
    for new, old in zip(renamed, nodes):
        new.attribute.extend(old.attribute)
    model = if_model([_conv(), *renamed], _inits(*consts))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 1
    then_nodes = next(a.g.node for a in rewritten.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in then_nodes] == ["SparseConv"]
    assert _attr(then_nodes[0], "activation") == activation
    _assert_same(model, rewritten, feeds=IF_FEEDS)


def test_prelu_and_mish_pattern_fused_in_function() -> None:
    body = [
        helper.make_node("PRelu", ["fc", "fs"], ["fp"]),
        helper.make_node("Softplus", ["fp"], ["fsp"]),
        helper.make_node("Tanh", ["fsp"], ["ft"]),
        helper.make_node("Mul", ["ft", "fp"], ["out"]),
    ]
    weight = random_sparse_weight(RNG, (CHANNELS, 4, 3, 3), 0.9)
    model = function_model("ConvPReluMish", weight, body, [("fs", SLOPES.reshape(CHANNELS, 1, 1))])
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 1
    sparse = _sparse(rewritten.functions[0].node)
    assert len(sparse) == 1 and _attr(sparse[0], "activation") == "PRelu,Mish"
    assert not {"PRelu", "Softplus", "Tanh", "Mul"} & {n.op_type for n in rewritten.functions[0].node}
    _assert_same(model, rewritten)


def test_an_activation_attribute_of_the_wrong_type_is_refused_with_its_reason() -> None:
    """ORT refuses a LeakyRelu whose alpha is not FLOAT; the rewriter leaves it in the graph and
    says why (ORT will name it when it loads the model)."""
    leaky = helper.make_node("LeakyRelu", ["c"], ["y"], name="l")
    leaky.attribute.append(helper.make_attribute("alpha", 2))  # INT
    rewritten, report = onnx_sparsify.sparsify(_model([_conv(), leaky], _inits()), min_sparsity=0)
    assert "LeakyRelu 'l' not folded: its attribute 'alpha' is INT, not FLOAT" in report.layers[0].reason
    assert [n.op_type for n in rewritten.graph.node][-1] == "LeakyRelu"
