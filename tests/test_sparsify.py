"""The rewriter's Python API: eligibility, folding, decisions, subgraphs, functions and the
output model's validity."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_sparsify
import pytest
from models import IR_VERSION, OPSET, graph_model, random_sparse_weight, rel_l2, session
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify.autotune import MARGIN as AUTOTUNE_MARGIN
from onnx_sparsify.check import check
from onnx_sparsify.decision import MARGIN as DECISION_MARGIN
from onnx_sparsify.result import Code

RNG = np.random.default_rng(42)
ANY_4D = ["n", "c", "h", "w"]  # onnx.checker wants every graph output to carry a shape


def _w(shape, sparsity=0.9):
    return random_sparse_weight(RNG, shape, sparsity)


def _graph_model(nodes, inits, x_shape=(1, 4, 8, 8), outputs=("y",), opset=OPSET, ir=IR_VERSION, value_info=()):
    return graph_model(nodes, inits, x_shape, outputs, ANY_4D, opset, ir, value_info)


def _conv_bn_act(activation_nodes, inits_extra=(), bn=True):
    w, b = _w((6, 4, 3, 3)), RNG.standard_normal(6).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"), *inits_extra]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    src = "c"
    if bn:
        for name, value in [
            ("s", RNG.uniform(0.5, 2, 6)),
            ("t", RNG.standard_normal(6)),
            ("m", RNG.standard_normal(6)),
            ("v", RNG.uniform(0.5, 2, 6)),
        ]:
            inits.append(numpy_helper.from_array(value.astype(np.float32), f"bn_{name}"))
        nodes.append(helper.make_node("BatchNormalization", ["c", "bn_s", "bn_t", "bn_m", "bn_v"], ["n"], epsilon=1e-3))
        src = "n"
    for node in activation_nodes(src):
        nodes.append(node)
    return _graph_model(nodes, inits)


def _assert_same(original, rewritten, x_shape=(1, 4, 8, 8), tol=1e-5):
    x = RNG.standard_normal(x_shape).astype(np.float32)
    expected = session(original, plugin=False).run(None, {"x": x})[0]
    actual = session(rewritten, plugin=True).run(None, {"x": x})[0]
    assert rel_l2(actual, expected) <= tol


def _ops(model):
    return [n.op_type for n in model.graph.node]


ACTIVATION_CASES = {
    "Relu": lambda s: [helper.make_node("Relu", [s], ["y"])],
    "LeakyRelu": lambda s: [helper.make_node("LeakyRelu", [s], ["y"], alpha=0.2)],
    "Sigmoid": lambda s: [helper.make_node("Sigmoid", [s], ["y"])],
    "HardSigmoid": lambda s: [helper.make_node("HardSigmoid", [s], ["y"], alpha=0.25, beta=0.4)],
    "HardSwish": lambda s: [helper.make_node("HardSwish", [s], ["y"])],
    "Clip": lambda s: [helper.make_node("Clip", [s, "lo", "hi"], ["y"])],
    "ClipNoMax": lambda s: [helper.make_node("Clip", [s, "lo"], ["y"])],
}


@pytest.mark.parametrize("bn", [True, False], ids=["bn", "no_bn"])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_CASES))
def test_folds_batchnorm_and_fuses_activation(activation, bn) -> None:
    clip = [numpy_helper.from_array(np.float32(-0.3), "lo"), numpy_helper.from_array(np.float32(0.6), "hi")]
    model = _conv_bn_act(ACTIVATION_CASES[activation], clip, bn=bn)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert _ops(rewritten) == ["SparseConv"]
    expected_folds = (["BatchNormalization"] if bn else []) + [activation.replace("NoMax", "")]
    assert report.layers[0].folded == expected_folds
    _assert_same(model, rewritten)
    onnx.checker.check_model(rewritten)


def test_no_fold_when_conv_output_is_shared_or_a_graph_output() -> None:
    w = _w((6, 4, 3, 3))
    model = _graph_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["y"])],
        [numpy_helper.from_array(w, "w")],
        outputs=("y", "c"),
    )
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert _ops(rewritten) == ["SparseConv", "Relu"] and report.layers[0].folded == []
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    for a, e in zip(session(rewritten, True).run(None, {"x": x}), session(model, False).run(None, {"x": x})):
        assert rel_l2(a, e) <= 1e-5


def test_input_model_is_not_modified() -> None:
    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    before = model.SerializeToString()
    onnx_sparsify.sparsify(model, min_sparsity=0, prune=0.95)
    assert model.SerializeToString() == before


def test_output_model_structure() -> None:
    w = _w((6, 4, 3, 3))
    vi = helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 6, 8, 8])
    model = _graph_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Neg", ["c"], ["y"]),
        ],
        [numpy_helper.from_array(w, "w")],
        value_info=[vi],
    )
    rewritten, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    names = {t.name for t in rewritten.graph.initializer}
    assert names == {"w_csr_values", "w_csr_col_indices", "w_csr_row_ptr"}  # dense weight removed
    assert any(o.domain == onnx_sparsify.DOMAIN and o.version == 1 for o in rewritten.opset_import)
    assert [v.name for v in rewritten.graph.value_info] == ["c"]  # downstream shapes stay known
    assert rewritten.ir_version == model.ir_version
    inferred = onnx.shape_inference.infer_shapes(rewritten)
    y = next(v for v in inferred.graph.output if v.name == "y")
    assert [d.dim_value for d in y.type.tensor_type.shape.dim] == [1, 6, 8, 8]
    onnx.checker.check_model(rewritten)


def test_weight_shared_with_another_reader_is_kept() -> None:
    w = _w((4, 4, 1, 1))
    model = _graph_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
            helper.make_node("Shape", ["w"], ["ws"]),
            helper.make_node("Identity", ["c"], ["y"]),
        ],
        [numpy_helper.from_array(w, "w")],
        outputs=("y", "ws"),
    )
    rewritten, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert "w" in {t.name for t in rewritten.graph.initializer}


def test_constant_node_weights_and_ir_version_cap() -> None:
    w = _w((6, 4, 3, 3))
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w, "w")),
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
    ]
    model = _graph_model(nodes, [])
    model.ir_version = 11  # newer than ORT 1.21 reads
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert _ops(rewritten) == ["SparseConv"] and report.rewritten == 1  # the Constant node is gone
    assert rewritten.ir_version == 10
    model.ir_version = IR_VERSION
    rewritten.ir_version = IR_VERSION
    _assert_same(model, rewritten)


def _if_model(outer_weight: bool) -> onnx.ModelProto:
    w1, w2 = _w((6, 4, 3, 3)), _w((6, 4, 1, 1))

    def branch(name, w, k):
        inits = [] if outer_weight and name == "then" else [numpy_helper.from_array(w, f"{name}_w")]
        weight = "outer_w" if outer_weight and name == "then" else f"{name}_w"
        nodes = [
            helper.make_node("Conv", ["x", weight], [f"{name}_c"], name=f"{name}_conv", pads=[k // 2] * 4),
            helper.make_node("Relu", [f"{name}_c"], [f"{name}_y"]),
        ]
        return helper.make_graph(
            nodes, name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, ANY_4D)], inits
        )

    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", w1, 3), else_branch=branch("else", w2, 1))],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ANY_4D)],
        [numpy_helper.from_array(w1, "outer_w")] if outer_weight else [],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


@pytest.mark.parametrize("outer_weight", [False, True], ids=["branch_weights", "outer_scope_weight"])
def test_convs_inside_if_branches(outer_weight) -> None:
    model = _if_model(outer_weight)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 2 and {layer.graph for layer in report.layers} == {
        "main/If.then_branch",
        "main/If.else_branch",
    }
    if outer_weight:
        assert "outer_w" not in {t.name for t in rewritten.graph.initializer}
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    for cond in (True, False):
        feed = {"x": x, "cond": np.array(cond)}
        expected = session(model, False).run(None, feed)[0]
        assert rel_l2(session(rewritten, True).run(None, feed)[0], expected) <= 1e-5
    onnx.checker.check_model(rewritten)


def _calling(fn: onnx.FunctionProto, call: onnx.NodeProto) -> onnx.ModelProto:
    """A model whose graph is the one node `call` of the model-local function `fn`: x -> y."""
    return graph_model([call], [], functions=[fn], extra_opsets=[helper.make_opsetid("local", 1)])


def test_conv_inside_model_local_function() -> None:
    w = _w((6, 4, 3, 3))
    fn = helper.make_function(
        "local",
        "ConvBlock",
        ["inp"],
        ["out"],
        [
            helper.make_node("Constant", [], ["fw"], value=numpy_helper.from_array(w, "fw")),
            helper.make_node("Conv", ["inp", "fw"], ["fc"], name="fconv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["fc"], ["out"]),
        ],
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model = _calling(fn, helper.make_node("ConvBlock", ["x"], ["y"], domain="local"))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 1 and report.layers[0].graph.startswith("function")
    assert [n.op_type for n in rewritten.functions[0].node].count("SparseConv") == 1
    _assert_same(model, rewritten)


def test_refusals_carry_reasons() -> None:
    w = _w((6, 4, 3, 3))
    half = _w((6, 4, 1, 1)).astype(np.float16)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w_in"], ["a"], name="graph_input_weight"),
            helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
            helper.make_node("Conv", ["x16", "w16"], ["b16"], name="half_weight"),
            helper.make_node("Conv", ["x", "w", "b_in"], ["c"], name="computed_bias"),
            helper.make_node("Conv", ["x", "w"], ["d"], name="same_dilated", auto_pad="SAME_UPPER", dilations=[2, 2]),
            helper.make_node("Conv", ["x", "w"], ["e"], name="kept"),
            helper.make_node("Conv", ["x", "dense_w"], ["f"], name="too_dense"),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8]),
            helper.make_tensor_value_info("w_in", TensorProto.FLOAT, [6, 4, 3, 3]),
            helper.make_tensor_value_info("b_in", TensorProto.FLOAT, [6]),
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "acdef"],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(half, "w16"),
            numpy_helper.from_array(_w((6, 4, 3, 3), 0.2), "dense_w"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    _, report = onnx_sparsify.sparsify(model, keep=["kept"])
    reasons = {layer.name: layer.reason for layer in report.layers}
    codes = {layer.name: layer.code for layer in report.layers}
    assert report.rewritten == 0
    assert codes == {
        "graph_input_weight": Code.NOT_CONSTANT,
        "half_weight": Code.WRONG_DTYPE,
        "computed_bias": Code.NOT_CONSTANT,
        "same_dilated": Code.CONV_UNSUPPORTED,
        "kept": Code.KEEP,
        "too_dense": Code.COST_MODEL,
    }
    assert "not a constant" in reasons["graph_input_weight"]
    assert "float16" in reasons["half_weight"]
    assert "bias" in reasons["computed_bias"]
    assert "SAME padding with dilations" in reasons["same_dilated"]
    assert "--keep" in reasons["kept"]
    too_dense = next(layer for layer in report.layers if layer.name == "too_dense")
    assert too_dense.predicted_speedup < DECISION_MARGIN and "predicted" in too_dense.reason


def test_min_sparsity_threshold() -> None:
    model = _graph_model(
        [
            helper.make_node("Conv", ["x", "w1"], ["a"], name="sparse"),
            helper.make_node("Conv", ["a", "w2"], ["y"], name="half"),
        ],
        [numpy_helper.from_array(_w((4, 4, 1, 1), 1.0), "w1"), numpy_helper.from_array(_w((4, 4, 1, 1), 0.0), "w2")],
    )
    _, report = onnx_sparsify.sparsify(model, min_sparsity=0.5)
    assert [layer.rewritten for layer in report.layers] == [True, False]
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 2
    _assert_same(model, rewritten)


def test_prune_reaches_the_requested_sparsity_and_check_reports_drift() -> None:
    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(_w((6, 4, 3, 3), 0.0), "w"))
    pruned, achieved = onnx_sparsify.prune_convs(model, 0.5)
    assert achieved == {"w": pytest.approx(0.5, abs=1 / 216)}
    rewritten, report = onnx_sparsify.sparsify(pruned)
    assert report.layers[0].sparsity == pytest.approx(0.5, abs=1 / 216)
    assert report.rewritten == 0  # at 50% zeros the cost model predicts a loss
    rewritten, report = onnx_sparsify.sparsify(model, prune=0.9, min_sparsity=0)
    assert report.rewritten == 1 and report.pruned_to == 0.9
    pruned, _ = onnx_sparsify.prune_convs(model, 0.9)
    result = check(pruned, onnx_sparsify.sparsify(pruned, min_sparsity=0)[0], original=model)
    assert result.passed and result.pruning_drift["y"] > 1e-3


def test_check_catches_a_wrong_rewrite() -> None:
    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    rewritten, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    values = next(t for t in rewritten.graph.initializer if t.name.endswith("_csr_values"))
    wrong = numpy_helper.to_array(values).copy()
    wrong[0] *= 1.01  # one weight off by 1%
    values.CopyFrom(numpy_helper.from_array(wrong, values.name))
    result = check(model, rewritten)
    assert not result.passed and result.worst_output == "y"


def _log_of_conv(perturb: float = 1.0) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """x -> Conv (channel 0 all zeros) -> Log -> y: -inf on channel 0, NaN where the Conv is
    negative, in both the reference and the rewrite; the rewrite's weights scaled by `perturb`."""
    w = random_sparse_weight(np.random.default_rng(7), (6, 4, 3, 3), 0.9)
    w[0] = 0
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Log", ["c"], ["y"], name="log"),
    ]
    model = _graph_model(nodes, [numpy_helper.from_array(w, "w")])
    scaled = _graph_model(nodes, [numpy_helper.from_array(w * np.float32(perturb), "w")])
    return model, onnx_sparsify.sparsify(scaled, min_sparsity=0)[0]


def test_check_compares_non_finite_outputs_by_position() -> None:
    """The same NaN / -inf pattern in both models agrees; the finite values are measured (the
    error was NaN, lost by max(), or infinite): a sound rewrite passes, a 1% scaled one fails
    with the finite values' relative L2 error, computed here with NumPy alone."""
    reference, rewritten = _log_of_conv()
    result = check(reference, rewritten)
    assert result.passed and np.isfinite(result.worst_error) and result.worst_error < 1e-5
    reference, scaled = _log_of_conv(1.01)
    result = check(reference, scaled, runs=1)
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    expected = session(reference, plugin=False).run(None, {"x": x})[0].astype(np.float64)
    actual = session(scaled, plugin=True).run(None, {"x": x})[0].astype(np.float64)
    assert (np.isnan(expected) == np.isnan(actual)).all() and np.isneginf(expected[:, 0]).all()
    finite = np.isfinite(expected)
    want = np.linalg.norm(actual[finite] - expected[finite]) / np.linalg.norm(expected[finite])
    assert not result.passed and result.worst_error == pytest.approx(want, rel=1e-3)


def test_check_counts_a_different_non_finite_pattern_as_infinite() -> None:
    from onnx_sparsify.check import _error

    e = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    assert _error(e.copy(), e) == 0.0
    for changed in ([1.0, 2.0, np.inf, -np.inf], [1.0, np.nan, -np.inf, -np.inf], [1.0, np.nan, np.nan, -np.inf]):
        assert _error(np.array(changed, np.float32), e) == float("inf")


@pytest.mark.parametrize(
    "weight_shape, attrs, what",
    [
        ((4, 4, 1, 1), {"strides": [2**25, 1]}, "strides"),
        ((4, 4, 1, 1), {"pads": [0, 0, 2**40, 0]}, "pads"),
        ((4, 4, 257), {"dilations": [2**23]}, "dilated kernel"),
    ],
    ids=["stride_2^25", "pads_2^40", "dilated_extent_2^31"],
)
def test_conv_beyond_the_plugins_bounds_stays_dense(weight_shape, attrs, what) -> None:
    """Attribute values ONNX's Conv allows but the plugin refuses (conv_params.cc's bounds, read
    through _core): the Conv stays dense with the reason (the SparseConv written failed to load
    while the CLI exited 0)."""
    from onnx_sparsify._contract import MAX_ATTRIBUTE_VALUE, MAX_DILATED_EXTENT

    assert (MAX_ATTRIBUTE_VALUE, MAX_DILATED_EXTENT) == (2**24, 2**31)
    x_shape = (1, 4, 8, 8) if len(weight_shape) == 4 else (1, 4, 8)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)]
    model = graph_model(nodes, [numpy_helper.from_array(_w(weight_shape), "w")], x_shape, output_shape=None)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 0 and report.layers[0].code == Code.CONV_UNSUPPORTED
    assert what in report.layers[0].reason
    assert [n.op_type for n in rewritten.graph.node] == ["Conv"]
    if "strides" in attrs:  # ORT's Conv runs it: so does the model written
        x = RNG.standard_normal(x_shape).astype(np.float32)
        expected = session(model, plugin=False).run(None, {"x": x})[0]
        np.testing.assert_array_equal(session(rewritten, plugin=True).run(None, {"x": x})[0], expected)


def test_declared_sizes_the_plugin_cannot_count_stay_dense() -> None:
    """X declared 1x2x2^62x3: ORT's Conv loads the model, the plugin refuses sizes whose counts
    overflow 64 bits, so the Conv stays dense with the reason (the SparseConv written failed
    to load with --no-measure)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    model = graph_model(nodes, [numpy_helper.from_array(_w((4, 2, 3, 3)), "w")], (1, 2, 2**62, 3), output_shape=None)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0, measure=False)
    assert report.rewritten == 0 and report.layers[0].code == Code.CONV_UNSUPPORTED
    assert "2^62" in report.layers[0].reason
    session(rewritten, plugin=True)  # loads, as the original does


def test_autotune_does_not_time_an_input_too_large_to_generate() -> None:
    """--autotune on a declared 1x2x100000x100000 input: the cost model decides, the reason says
    why (a raw MemoryError before)."""
    from onnx_sparsify.check import MAX_FEED_BYTES

    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    x_shape = (1, 2, 100_000, 100_000)
    model = graph_model(nodes, [numpy_helper.from_array(_w((4, 2, 3, 3)), "w")], x_shape, output_shape=None)
    _, report = onnx_sparsify.sparsify(model, autotune=True, measure=False)
    layer = report.layers[0]
    assert layer.code == Code.NOT_AUTOTUNED and layer.autotune_dense_ms is None
    assert f"over the limit of {MAX_FEED_BYTES / 2**30:.0f} GiB per input" in layer.reason


def test_group_zero_is_refused_even_with_a_computed_weight() -> None:
    """ONNX Runtime refuses group 0 whatever the weight: MalformedModelError naming the node (a
    computed weight made the Conv a plain "not constant" refusal, exit 5)."""
    from onnx_sparsify.model_io import MalformedModelError

    nodes = [
        helper.make_node("Identity", ["w0"], ["w"], name="id"),
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=0),
    ]
    model = _graph_model(nodes, [])
    model.graph.input.append(helper.make_tensor_value_info("w0", TensorProto.FLOAT, [4, 4, 3, 3]))
    with pytest.raises(MalformedModelError, match="node 'conv': attribute 'group' is 0"):
        onnx_sparsify.sparsify(model, min_sparsity=0)


def test_ir3_model_declares_initializers_as_inputs() -> None:
    w = _w((4, 4, 3, 3))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 4, 3, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=3)
    rewritten, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert {i.name for i in rewritten.graph.input} == {"x", "w_csr_values", "w_csr_col_indices", "w_csr_row_ptr"}
    _assert_same(model, rewritten)


def test_cost_model_decisions() -> None:
    """The default decision follows the calibrated cost model: unit-stride Convs pay from about
    60% zeros, and every kind pays at 90%."""
    from onnx_sparsify.decision import LayerTraits, decide, predicted_speedup

    unit, strided = LayerTraits(1, 64, False), LayerTraits(1, 64, True)
    depthwise, grouped = LayerTraits(64, 1, False), LayerTraits(32, 4, False)
    assert not decide(0.5, None, unit).rewrite and decide(0.7, None, unit).rewrite
    assert not decide(0.6, None, strided).rewrite and decide(0.75, None, strided).rewrite
    for traits in (unit, strided, depthwise, grouped):
        assert decide(0.9, None, traits).rewrite
        assert predicted_speedup(traits, 0.99) > predicted_speedup(traits, 0.9) > predicted_speedup(traits, 0.5)
    assert decide(0.2, 0.1, unit).rewrite  # --min-sparsity overrides the model


def test_autotune_times_both_variants() -> None:
    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    rewritten, report = onnx_sparsify.sparsify(model, autotune=True, prune=0.99, measure=False)
    layer = report.layers[0]
    assert layer.code == Code.AUTOTUNE, layer.reason
    dense_ms, sparse_ms = layer.autotune_dense_ms, layer.autotune_sparse_ms
    assert dense_ms > 0 and sparse_ms > 0
    assert layer.rewritten == (sparse_ms * AUTOTUNE_MARGIN < dense_ms)  # the faster one is kept
    assert layer.rewritten == ("SparseConv" in _ops(rewritten))
    assert f"dense {dense_ms:.3f} ms, sparse {sparse_ms:.3f} ms" in layer.reason


def test_cost_model_counts_fixed_costs_of_small_layers() -> None:
    """With shapes known, a tiny padded layer is not worth its input copy; a large one is."""
    from onnx_sparsify.decision import LayerTraits, predicted_speedup

    tiny = LayerTraits(1, 4, False, weight_size=6 * 4 * 9, output_positions=64, copied_input_elements=4 * 100)
    large = LayerTraits(1, 64, False, weight_size=64 * 64 * 9, output_positions=3136, copied_input_elements=64 * 3364)
    assert predicted_speedup(tiny, 0.9) < 1.0 < predicted_speedup(large, 0.9)


def test_cuda_provider_decision() -> None:
    """No GPU measurement calibrates the CUDA kernel: without --min-sparsity (or a GPU to
    autotune on) --provider cuda keeps every Conv dense and says why, however sparse."""
    from onnx_sparsify.decision import LayerTraits, decide

    unit = LayerTraits(1, 64, False)
    for sparsity in (0.5, 0.9, 0.99, 1.0):
        decision = decide(sparsity, None, unit, "cuda")
        assert not decision.rewrite and "no GPU measurement" in decision.reason
        assert "--autotune" in decision.reason and "--min-sparsity" in decision.reason
    assert decide(0.95, 0.9, unit, "cuda").rewrite and not decide(0.8, 0.9, unit, "cuda").rewrite
    with pytest.raises(ValueError, match="provider"):
        onnx_sparsify.sparsify(_conv_bn_act(ACTIVATION_CASES["Relu"]), provider="tpu")


def test_cuda_provider_never_rewrites_on_a_guess(caplog) -> None:
    """sparsify(provider='cuda') rewrites nothing without a measurement; --autotune with no GPU
    here falls back to dense with the reason; min_sparsity forces the rewrite."""
    from onnx_sparsify.autotune import cuda_unavailable_reason

    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    rewritten, report = onnx_sparsify.sparsify(model, provider="cuda", prune=0.99)
    assert report.rewritten == 0 and "SparseConv" not in _ops(rewritten)
    assert all("no GPU measurement" in layer.reason for layer in report.layers)
    why = cuda_unavailable_reason()
    if why is not None:
        with caplog.at_level("WARNING", logger="onnx_sparsify"):
            rewritten, report = onnx_sparsify.sparsify(model, provider="cuda", prune=0.99, autotune=True)
        assert report.rewritten == 0 and "SparseConv" not in _ops(rewritten)
        assert all(layer.code == Code.NOT_AUTOTUNED and why in layer.reason for layer in report.layers)
        assert "nothing timed on CUDA" in caplog.text
    _, report = onnx_sparsify.sparsify(model, provider="cuda", prune=0.99, min_sparsity=0.9)
    assert report.rewritten == report.convs >= 1


@pytest.mark.parametrize("dense_ms,sparse_ms", [(2.0, 1.0), (1.0, 2.0)])
def test_cuda_autotune_keeps_the_faster(monkeypatch, dense_ms, sparse_ms) -> None:
    """With a GPU (simulated here: the timing is stubbed), --autotune --provider cuda times each
    layer on the CUDA execution provider and keeps the faster variant."""
    from onnx_sparsify import planning, rewrite

    calls = []

    def fake_time_layer(*args, provider="cpu", **kwargs):
        calls.append(provider)
        return dense_ms, sparse_ms

    monkeypatch.setattr(rewrite, "cuda_unavailable_reason", lambda: None)
    monkeypatch.setattr(planning, "time_layer", fake_time_layer)
    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    rewritten, report = onnx_sparsify.sparsify(
        model, provider="cuda", prune=0.99, autotune=True, input_shapes={"x": [1, 4, 8, 8]}
    )
    assert calls and set(calls) == {"cuda"}
    assert report.rewritten == (1 if sparse_ms < dense_ms else 0)
    assert all(layer.code == Code.AUTOTUNE for layer in report.layers)
    assert all((layer.autotune_dense_ms, layer.autotune_sparse_ms) == (dense_ms, sparse_ms) for layer in report.layers)
    assert all("autotune on CUDA" in layer.reason for layer in report.layers)


# --- item 8: SAME padding with a stride longer than the kernel --------------------------------


def _same_stride_model(x_hw, kernel, stride, auto_pad):
    w = _w((8, 4, kernel, kernel), 0.5)
    node = helper.make_node(
        "Conv",
        ["x", "w"],
        ["y"],
        name="shortcut",
        auto_pad=auto_pad,
        strides=[stride, stride],
        kernel_shape=[kernel] * 2,
    )
    return _graph_model([node], [numpy_helper.from_array(w, "w")], x_shape=(1, 4, *x_hw))


def test_same_padding_stride_longer_than_kernel_is_rewritten() -> None:
    """A TensorFlow-exported ResNet shortcut (1x1, stride 2, SAME_UPPER) becomes SparseConv."""
    model = _same_stride_model((8, 8), 1, 2, "SAME_UPPER")
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 1 and _ops(rewritten) == ["SparseConv"], report.layers[0].reason
    attrs = {a.name: helper.get_attribute_value(a) for a in rewritten.graph.node[0].attribute}
    assert attrs["auto_pad"] == b"SAME_UPPER" and attrs["strides"] == [2, 2]
    onnx.checker.check_model(rewritten)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize(
    "x_hw,kernel,stride", [((8, 8), 1, 2), ((7, 9), 1, 2), ((8, 8), 1, 4), ((11, 10), 2, 3), ((9, 9), 1, 3)]
)
def test_same_padding_stride_longer_than_kernel_matches_ort(x_hw, kernel, stride, auto_pad) -> None:
    """The rewritten model computes what ORT's own Conv computes (needs the plugin to follow ORT there)."""
    model = _same_stride_model(x_hw, kernel, stride, auto_pad)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 1
    _assert_same(model, rewritten, x_shape=(1, 4, *x_hw))


# --- items 9 and 12: malformed constants and attributes ---------------------------------------


def _single_conv(weight_tensor=None, attrs=None, extra_nodes=(), extra_inits=(), output="c"):
    """x -> Conv 'conv' (weight 'w', 6x4x3x3, 2/3 zeros) [-> extra nodes] -> output."""
    if weight_tensor is None:
        weight_tensor = numpy_helper.from_array(_w((6, 4, 3, 3), 0.67), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", **(attrs or {})), *extra_nodes]
    return graph_model(nodes, [weight_tensor, *extra_inits], outputs=[output])


def _weight_tensor(edit):
    tensor = numpy_helper.from_array(_w((6, 4, 3, 3), 0.67), "w")
    edit(tensor)
    return tensor


def _float_data_weight(count):
    tensor = helper.make_tensor("w", TensorProto.FLOAT, [6, 4, 3, 3], [1.0] * 216)
    del tensor.float_data[count:]
    return tensor


def _set_dim(tensor, axis, value):
    tensor.dims[axis] = value


def _truncate_raw(tensor):
    tensor.raw_data = tensor.raw_data[:-4]


def _set_dtype(tensor, value):
    tensor.data_type = value


def _bn_model(params, epsilon=1e-5, edit=None):
    """Conv 'conv' -> BatchNormalization 'bn' with the given (scale, bias, mean, var)."""
    inits = [numpy_helper.from_array(np.asarray(p, np.float32), n) for n, p in zip(("s", "t", "m", "v"), params)]
    if edit:
        edit(inits)
    bn = helper.make_node("BatchNormalization", ["c", "s", "t", "m", "v"], ["y"], name="bn", epsilon=epsilon)
    return _single_conv(extra_nodes=[bn], extra_inits=inits, output="y")


def _activation_model(node, inits=()):
    return _single_conv(extra_nodes=[node], extra_inits=list(inits), output="y")


def _clip_model(lo, hi):
    inits = [
        numpy_helper.from_array(np.asarray(lo, np.float32), "lo"),
        numpy_helper.from_array(np.asarray(hi, np.float32), "hi"),
    ]
    return _activation_model(helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip"), inits)


def _ort_refuses(model) -> bool:
    """Independent reference: ONNX Runtime's own verdict on the (unrewritten) model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:
        return True
    return False


ONE = np.ones(6)
MALFORMED = {
    "weight_negative_dim": (lambda: _single_conv(_weight_tensor(lambda t: _set_dim(t, 0, -1))), "conv", "negative"),
    "weight_dims_vs_data": (lambda: _single_conv(_weight_tensor(lambda t: _set_dim(t, 0, 5))), "conv", "data"),
    "weight_raw_data_short": (lambda: _single_conv(_weight_tensor(_truncate_raw)), "conv", "data"),
    "weight_float_data_short": (lambda: _single_conv(_float_data_weight(10)), "conv", "data"),
    "weight_dtype_999": (lambda: _single_conv(_weight_tensor(lambda t: _set_dtype(t, 999))), "conv", "data type 999"),
    "bn_param_dtype_999": (lambda: _bn_model([ONE] * 4, edit=lambda t: _set_dtype(t[3], 999)), "bn", "data type 999"),
    "clip_bound_dtype_999": (lambda: _clip_dtype_999(), "clip", "data type 999"),
    "pads_count": (lambda: _single_conv(attrs={"pads": [1, 1]}), "conv", "pads"),
    "pads_negative": (lambda: _single_conv(attrs={"pads": [-1, 0, 0, 0]}), "conv", "pads"),
    "strides_zero": (lambda: _single_conv(attrs={"strides": [0, 1]}), "conv", "strides"),
    "strides_count": (lambda: _single_conv(attrs={"strides": [2]}), "conv", "strides"),
    "strides_floats": (lambda: _single_conv(attrs={"strides": [1.0, 1.0]}), "conv", "strides"),
    "dilations_zero": (lambda: _single_conv(attrs={"dilations": [0, 1]}), "conv", "dilations"),
    "auto_pad_unknown": (lambda: _single_conv(attrs={"auto_pad": "SAME"}), "conv", "auto_pad"),
    "auto_pad_with_pads": (
        lambda: _single_conv(attrs={"auto_pad": "SAME_UPPER", "pads": [1, 1, 1, 1]}),
        "conv",
        "pads",
    ),
    "group_float": (lambda: _single_conv(attrs={"group": 1.0}), "conv", "group"),
}


def _clip_dtype_999():
    model = _clip_model(0.0, 1.0)
    next(t for t in model.graph.initializer if t.name == "hi").data_type = 999
    return model


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_model_ort_refuses_fails_naming_the_node(case) -> None:
    """What ONNX Runtime refuses to load ends the rewrite with one sentence naming the node,
    never a raw KeyError / IndexError / numpy message, and never a rewritten model."""
    build, node, words = MALFORMED[case]
    model = build()
    assert _ort_refuses(model)
    with pytest.raises(onnx_sparsify.ModelLoadError, match=f"node '{node}'") as info:
        onnx_sparsify.sparsify(model, min_sparsity=0)
    assert words in str(info.value)
    if case.startswith("weight"):
        with pytest.raises(onnx_sparsify.ModelLoadError, match=f"node '{node}'"):
            onnx_sparsify.prune_convs(model, 0.9)


def _assert_same_nan_aware(original, rewritten):
    """Infinities and NaNs included, against ORT unoptimized: its own Conv + BatchNormalization
    fusion would change them."""
    import onnxruntime as ort

    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(original.SerializeToString(), options, providers=["CPUExecutionProvider"])
    expected = reference.run(None, {"x": x})[0]
    actual = session(rewritten, plugin=True).run(None, {"x": x})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5, equal_nan=True)


UNFOLDABLE = {
    "bn_negative_variance": (lambda: _bn_model([ONE, ONE, ONE, -ONE]), "BatchNormalization", "variance"),
    "bn_nan_bias": (lambda: _bn_model([ONE, ONE * np.nan, ONE, ONE]), "BatchNormalization", "NaN"),
    "bn_overflow": (
        lambda: _bn_model([ONE * 3e38, ONE, ONE, ONE * 1e-6], epsilon=1e-30),
        "BatchNormalization",
        "finite",
    ),
    "clip_nan_min": (lambda: _clip_model(np.nan, 1.0), "Clip", "NaN"),
    "clip_min_above_max": (lambda: _clip_model(2.0, 1.0), "Clip", "min"),
    "leaky_relu_nan_alpha": (
        lambda: _activation_model(helper.make_node("LeakyRelu", ["c"], ["y"], name="act", alpha=float("nan"))),
        "LeakyRelu",
        "NaN",
    ),
}


@pytest.mark.parametrize("case", sorted(UNFOLDABLE))
def test_unfoldable_parameters_stay_unfolded_with_a_reason(case) -> None:
    """A valid model whose BatchNormalization or activation cannot be folded exactly (it would give
    non-finite weights, or SparseConv would compute something else) keeps that node, says why,
    and the rewritten model still computes what ORT computes on the original."""
    build, kind, words = UNFOLDABLE[case]
    model = build()
    assert not _ort_refuses(model)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    layer = report.layers[0]
    assert layer.rewritten and kind not in layer.folded
    assert f"{kind} " in layer.reason and "not folded" in layer.reason and words in layer.reason, layer.reason
    assert kind in _ops(rewritten)
    _assert_same_nan_aware(model, rewritten)


@pytest.mark.parametrize("shape", [(3,), (6, 1)], ids=["too_few_channels", "rank_2"])
def test_batchnorm_params_of_the_wrong_shape_are_not_folded(shape) -> None:
    model = _bn_model([np.ones(shape)] * 4)
    assert _ort_refuses(model)  # ORT names the BatchNormalization itself; the rewrite must not hide it
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.layers[0].folded == [] and "BatchNormalization" in _ops(rewritten)
    assert "shape" in report.layers[0].reason


def test_clip_bounds_that_are_not_scalars_are_not_fused() -> None:
    model = _clip_model([0.0, 0.5], [1.0, 1.0])
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert "Clip" in _ops(rewritten) and report.layers[0].folded == []
    assert "Clip" in report.layers[0].reason and "scalar" in report.layers[0].reason


@pytest.mark.parametrize("shape", [(0, 4, 3, 3), (6, 4, 0, 3)], ids=["no_output_channels", "empty_kernel"])
def test_zero_size_weight_stays_dense(shape) -> None:
    model = _single_conv(numpy_helper.from_array(np.zeros(shape, np.float32), "w"))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 0 and "zero" in report.layers[0].reason
    assert _ops(rewritten) == ["Conv"]


# --- item 12: --keep and --autotune say what they did -------------------------------------------


def test_keep_naming_no_conv_warns(caplog) -> None:
    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    with caplog.at_level("WARNING", logger="onnx_sparsify"):
        _, report = onnx_sparsify.sparsify(model, min_sparsity=0, keep=["conv", "c", "no_such_conv"])
    assert not report.layers[0].rewritten
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "'no_such_conv'" in warnings[0], warnings


def test_keep_matches_convs_in_subgraphs_and_functions(caplog) -> None:
    with caplog.at_level("WARNING", logger="onnx_sparsify"):
        _, report = onnx_sparsify.sparsify(_if_model(False), min_sparsity=0, keep=["then_conv", "else_c"])
    assert report.rewritten == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_autotune_with_unknown_shapes_says_it_used_the_cost_model(caplog) -> None:
    w = _w((6, 4, 3, 3), 0.95)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    with caplog.at_level("WARNING", logger="onnx_sparsify"):
        _, report = onnx_sparsify.sparsify(model, autotune=True, measure=False)
    layer = report.layers[0]
    assert layer.code == Code.NOT_AUTOTUNED and layer.autotune_dense_ms is None, layer.reason
    assert layer.predicted_speedup > DECISION_MARGIN and layer.rewritten  # the cost model decided
    assert "not autotuned: input size Nx4xHxW unknown" in layer.reason
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "'x'" in warnings[0] and "input_shape" in warnings[0].replace("-", "_"), warnings
    # with the size given, it times the layer
    # (the end-to-end check is off: what it keeps depends on this machine's timing, not on autotune)
    _, report = onnx_sparsify.sparsify(model, autotune=True, input_shapes={"x": [1, 4, 8, 8]}, measure=False)
    layer = report.layers[0]
    assert layer.code == Code.AUTOTUNE and layer.autotune_dense_ms > 0 and layer.autotune_sparse_ms > 0


def test_prune_on_a_model_without_conv_does_not_warn(caplog) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    with caplog.at_level("WARNING", logger="onnx_sparsify"):
        pruned, achieved = onnx_sparsify.prune_convs(model, 0.9)
    assert achieved == {} and pruned.SerializeToString() == model.SerializeToString()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize(
    "shapes,words",
    [
        ({"nope": [1, 4, 8, 8]}, "no input 'nope'"),
        ({"x": [1, 4, 8]}, "rank"),
        ({"x": [1, 4, 0, 8]}, "at least 1"),
        ({"x": [1, 3, 8, 8]}, "declared"),
    ],
    ids=["unknown_name", "wrong_rank", "zero_size", "contradicts_declared"],
)
def test_input_shapes_are_validated(shapes, words) -> None:
    model = _conv_bn_act(ACTIVATION_CASES["Relu"])
    with pytest.raises(ValueError, match=words):
        onnx_sparsify.sparsify(model, input_shapes=shapes)


def test_report_json_writes_non_finite_numbers_as_null() -> None:
    import json

    from onnx_sparsify.report import CheckResult, Report

    report = Report(check=CheckResult(False, 1e-4, float("nan"), "y", float("inf"), {"y": float("inf"), "z": 0.5}))
    data = json.loads(report.to_json())
    assert data["check"]["worst_error"] is None and data["check"]["sensitivity"] is None
    assert data["check"]["errors"] == {"y": None, "z": 0.5} and data["check"]["tolerance"] == 1e-4


def test_conv_whose_attributes_refer_to_the_functions_stays_dense() -> None:
    """A Conv inside a function whose strides come from the calling node (ref_attr_name): the
    rewriter cannot know them, so the Conv stays as it is and the model still runs."""
    w = _w((6, 4, 3, 3))
    strides = onnx.AttributeProto()
    strides.name, strides.ref_attr_name, strides.type = "strides", "step", onnx.AttributeProto.INTS
    conv = helper.make_node("Conv", ["inp", "fw"], ["out"], name="fconv", pads=[1, 1, 1, 1])
    conv.attribute.append(strides)
    fn = helper.make_function(
        "local",
        "StridedConv",
        ["inp"],
        ["out"],
        [helper.make_node("Constant", [], ["fw"], value=numpy_helper.from_array(w, "fw")), conv],
        opset_imports=[helper.make_opsetid("", OPSET)],
        attributes=["step"],
    )
    model = _calling(fn, helper.make_node("StridedConv", ["x"], ["y"], domain="local", step=[2, 2]))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 0 and "function" in report.layers[0].reason
    _assert_same(model, rewritten)


def test_one_rule_for_unknown_sizes() -> None:
    """An unknown batch counts as 1 and any other unknown size leaves a shape unknown, alike for
    the input_shape_hint, the cost model's view of a layer and the end-to-end check's inputs."""
    from onnx_sparsify.check import CheckError, random_feeds
    from onnx_sparsify.conv_to_sparse import input_shape_hint
    from onnx_sparsify.decision import layer_traits
    from onnx_sparsify.shapes import resolve_shape

    assert resolve_shape(["N", 3, 8, 8]) == resolve_shape([None, 3, 8, 8]) == [1, 3, 8, 8]
    assert resolve_shape([4, 3, 8, 8]) == [4, 3, 8, 8]
    assert resolve_shape(["N", 3, "H", 8]) is None and resolve_shape([1, 3, 0, 8]) is None
    assert resolve_shape(None) is None and resolve_shape([]) == []
    assert input_shape_hint(["N", 3, 8, 8]) == [1, 3, 8, 8] and input_shape_hint(["N", 3]) is None
    assert input_shape_hint([2, 3, "?", 8]) is None
    w = _w((6, 3, 3, 3))
    traits = [layer_traits(w, 1, [1, 1], [0] * 4, False, [n, 3, 8, 8], [n, 6, 6, 6]) for n in ("N", 1, 4)]
    assert traits[0] == traits[1] == traits[2] and traits[0].output_positions == 36  # one image's
    assert layer_traits(w, 1, [1, 1], [0] * 4, False, ["N", 3, "H", 8], None).output_positions == 0

    def model(dims: list) -> onnx.ModelProto:
        graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)], [])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)

    assert random_feeds(model(["N", 3, 8, 8]), {})["x"].shape == (1, 3, 8, 8)
    assert random_feeds(model([2, 3, 8, 8]), {})["x"].shape == (2, 3, 8, 8)
    with pytest.raises(CheckError, match="unknown size on axis 2: give it with --input-shape x:DIMS"):
        random_feeds(model(["N", 3, "H", 8]), {})
