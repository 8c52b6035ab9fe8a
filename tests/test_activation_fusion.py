"""The SiLU, Tanh and Gelu epilogues: their float32 formulas against float64 math over a sweep
of inputs (the bounds docs/operator.md states), and the rewriter fusing Tanh, Gelu and
Mul(x, Sigmoid(x)) into a SparseConv (in the main graph, a subgraph and a function), or saying
why it does not."""

from __future__ import annotations

import math
import re
from pathlib import Path

import isa as isas
import numpy as np
import onnx
import onnx_sparsify
import pytest
from fusion import IF_FEEDS, attr, function_model, if_model
from fusion import assert_same as _assert_same
from fusion import model as _model
from fusion import sparse_nodes as _sparse_nodes
from models import random_sparse_weight
from onnx import helper, numpy_helper
from onnx_sparsify import _core
from onnx_sparsify.csr import dense_to_csr

# docs/operator.md: max relative error where |y| >= FLT_MIN; below, an absolute error of FLT_MIN.
BOUNDS = {"Sigmoid": 1e-6, "SiLU": 1e-6, "Tanh": 1e-6, "Gelu": 3e-5, "GeluTanh": 2e-5, "QuickGelu": 1e-5, "Mish": 1e-5}
QUICK_GELU_ALPHA = float(np.float32(1.702))  # the default, as the kernel holds it
FLT_MIN = float(np.finfo(np.float32).tiny)


def _reference(name: str, v: float) -> float:
    """The activation in float64, written so that it loses no digits for large |v|."""
    if name == "Sigmoid":
        return 1.0 / (1.0 + math.exp(min(-v, 700.0)))
    if name == "QuickGelu":
        return v / (1.0 + math.exp(min(-QUICK_GELU_ALPHA * v, 700.0)))
    if name == "Mish":
        softplus = v if v > 30.0 else math.log1p(math.exp(v))
        return v * math.tanh(softplus)
    if name == "SiLU":
        return v / (1.0 + math.exp(min(-v, 700.0)))
    if name == "Tanh":
        return math.tanh(v)
    if name == "Gelu":
        return 0.5 * v * math.erfc(-v / math.sqrt(2.0))
    u = math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)
    return v / (1.0 + math.exp(min(-2.0 * u, 700.0)))  # 0.5 v (1 + tanh(u))


def _sweep() -> np.ndarray:
    dense = np.linspace(-20.0, 20.0, 40001)
    wide = np.geomspace(1e-30, 1e30, 6001)
    return np.unique(np.concatenate([dense, wide, -wide, [0.0]])).astype(np.float32)


def _through_kernel(x: np.ndarray, name: str, isa: isas.Variant | None, **extra) -> np.ndarray:
    """x (1-D) through a SparseConv whose weight is the 1x1 identity, activation `name`."""
    csr = dense_to_csr(np.ones((1, 1, 1, 1), np.float32))
    attrs = {"kernel_shape": [1, 1], "activation": name, **extra}
    out = _core.sparse_conv(
        x.reshape(1, 1, 1, -1), csr.values, csr.col_indices, csr.row_ptr, None, attributes=attrs, **isas.core_args(isa)
    )
    return np.asarray(out).ravel()


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_formula_accuracy(name, isa) -> None:
    x = _sweep()
    actual = _through_kernel(x, name, isa).astype(np.float64)
    expected = np.array([_reference(name, float(v)) for v in x.astype(np.float64)])
    error = np.abs(actual - expected)
    normal = np.abs(expected) >= FLT_MIN
    relative = error[normal] / np.abs(expected[normal])
    worst = int(np.argmax(relative))
    assert relative[worst] <= BOUNDS[name], f"{name}: relative error {relative[worst]:.3g} at x={x[normal][worst]!r}"
    assert (error[~normal] <= FLT_MIN).all()

    special = np.array([np.nan, np.inf, -np.nan], np.float32)
    out = _through_kernel(special, name, isa)
    assert np.isnan(out[0]) and np.isnan(out[2])
    assert out[1] == (1.0 if name in ("Tanh", "Sigmoid") else np.inf)


# ---------------------------------------------------------------------------------------------
# The rewriter

RNG = np.random.default_rng(20)


def _conv(out: str = "c", inp: str = "x", weight: str = "w") -> onnx.NodeProto:
    return helper.make_node("Conv", [inp, weight, "b"], [out], name="conv", pads=[1, 1, 1, 1])


def _inits() -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(random_sparse_weight(RNG, (6, 4, 3, 3), 0.9), "w"),
        numpy_helper.from_array(RNG.standard_normal(6).astype(np.float32), "b"),
    ]


def _silu(src: str, dst: str, swapped: bool = False) -> list[onnx.NodeProto]:
    mul_inputs = ["sig", src] if swapped else [src, "sig"]
    return [
        helper.make_node("Sigmoid", [src], ["sig"], name="sigmoid"),
        helper.make_node("Mul", mul_inputs, [dst], name="mul"),
    ]


def _activation_of(node: onnx.NodeProto) -> str:
    return attr(node, "activation")


@pytest.mark.parametrize("swapped", [False, True])
@pytest.mark.parametrize("with_bn", [False, True])
def test_silu_fused_in_main_graph(swapped, with_bn) -> None:
    inits, nodes, src = _inits(), [_conv()], "c"
    if with_bn:  # the SiLU reads the end of a folded chain
        inits.append(numpy_helper.from_array(RNG.uniform(0.5, 2, (1, 6, 1, 1)).astype(np.float32), "scale"))
        nodes.append(helper.make_node("Mul", ["c", "scale"], ["scaled"], name="scale_mul"))
        src = "scaled"
    model = _model([*nodes, *_silu(src, "y", swapped)], inits)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv"]
    assert _activation_of(rewritten.graph.node[0]) == "SiLU"
    assert report.layers[0].folded[-1] == "SiLU"
    _assert_same(model, rewritten)


def test_silu_fused_in_subgraph() -> None:
    model = if_model([_conv("c"), *_silu("c", "out")], _inits())
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 1
    then_nodes = next(a.g.node for a in rewritten.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in then_nodes] == ["SparseConv"] and _activation_of(then_nodes[0]) == "SiLU"
    _assert_same(model, rewritten, feeds=IF_FEEDS)


def test_silu_fused_in_function() -> None:
    body = [helper.make_node("Sigmoid", ["fc"], ["fs"]), helper.make_node("Mul", ["fs", "fc"], ["out"])]
    model = function_model("ConvSiLU", random_sparse_weight(RNG, (6, 4, 3, 3), 0.9), body)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert report.rewritten == 1
    sparse = _sparse_nodes(rewritten.functions[0].node)
    assert len(sparse) == 1 and _activation_of(sparse[0]) == "SiLU"
    assert not {"Sigmoid", "Mul"} & {n.op_type for n in rewritten.functions[0].node}
    _assert_same(model, rewritten)


@pytest.mark.parametrize(
    "extra,outputs,why",
    [
        ([helper.make_node("Relu", ["sig"], ["other"])], ("y", "other"), "the Sigmoid's output 'sig'"),
        ([], ("y", "sig"), "the Sigmoid's output 'sig'"),
        ([helper.make_node("Relu", ["c"], ["other"])], ("y", "other"), "their input 'c'"),
        ([], ("y", "c"), "their input 'c'"),
    ],
    ids=["sigmoid_read", "sigmoid_output", "x_read", "x_output"],
)
def test_silu_refused_with_other_readers(extra, outputs, why) -> None:
    model = _model([_conv(), *_silu("c", "y"), *extra], _inits(), outputs=outputs)
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    sparse = _sparse_nodes(rewritten.graph.node)
    assert len(sparse) == 1 and not any(a.name == "activation" for a in sparse[0].attribute)
    assert {"Sigmoid", "Mul"} <= {n.op_type for n in rewritten.graph.node}
    reason = report.layers[0].reason
    assert "Sigmoid 'sigmoid' and Mul 'mul' (SiLU) not folded" in reason and why in reason
    _assert_same(model, rewritten)


@pytest.mark.parametrize(
    "node,activation",
    [
        (helper.make_node("Tanh", ["c"], ["y"]), "Tanh"),
        (helper.make_node("Gelu", ["c"], ["y"]), "Gelu"),
        (helper.make_node("Gelu", ["c"], ["y"], approximate="none"), "Gelu"),
        (helper.make_node("Gelu", ["c"], ["y"], approximate="tanh"), "GeluTanh"),
    ],
    ids=["tanh", "gelu", "gelu_none", "gelu_tanh"],
)
def test_tanh_and_gelu_fused(node, activation) -> None:
    model = _model([_conv(), node], _inits())
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv"]
    assert _activation_of(rewritten.graph.node[0]) == activation
    assert report.layers[0].folded == [activation]
    _assert_same(model, rewritten)


def test_gelu_with_unknown_approximation_stays() -> None:
    model = _model([_conv(), helper.make_node("Gelu", ["c"], ["y"], name="gelu", approximate="erf")], _inits())
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "Gelu"]
    assert "Gelu 'gelu' not folded: its approximate 'erf'" in report.layers[0].reason


def test_the_step_table_is_what_the_kernel_parses() -> None:
    """_core.ACTIVATIONS (epilogue.cc's table, which rewriter/_contract.py reads) is what
    ParseEpilogue does: each step runs, leaving its parameters out is passing its defaults, it
    takes exactly that many, and the error for an unknown name lists the same set."""
    from onnx_sparsify import _contract

    assert _contract.ACTIVATIONS == dict(_core.ACTIVATIONS)
    assert _contract.MAX_EPILOGUE_STEPS == _core.MAX_EPILOGUE_STEPS
    x = np.linspace(-3, 3, 8, dtype=np.float32)
    for name, defaults in _contract.ACTIVATIONS.items():
        assert all(type(d) is float for d in defaults), (name, defaults)
        slopes = {"activation_slopes": [0.5]} if name == "PRelu" else {}
        _through_kernel(x, name, None, **slopes)
        if defaults:
            implicit = _through_kernel(x, name, None, **slopes)
            explicit = _through_kernel(x, name, None, activation_params=list(defaults), **slopes)
            np.testing.assert_array_equal(implicit, explicit)
            other = _through_kernel(x, name, None, activation_params=[0.5] * len(defaults), **slopes)
            assert not np.array_equal(implicit, other)
            with pytest.raises(Exception, match=f"takes {len(defaults)} activation_params"):
                _through_kernel(x, name, None, activation_params=[0.5] * (len(defaults) + 1), **slopes)
    with pytest.raises(Exception, match="unknown activation") as raised:
        _through_kernel(x, "Swish", None)
    listed = str(raised.value).split("steps among ", 1)[1].split(", separated by commas")[0].split(", ")
    assert set(listed) == set(_contract.ACTIVATIONS)
    chain = ",".join(["Relu"] * (_contract.MAX_EPILOGUE_STEPS + 1))
    with pytest.raises(Exception, match=f"at most {_contract.MAX_EPILOGUE_STEPS}"):
        _through_kernel(x, chain, None)


def _operator_md_attribute(name: str) -> str:
    """The description cell of attribute `name` in docs/operator.md's attribute table."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "operator.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
    return row.rsplit("|", 2)[-2]


def test_the_contract_is_what_the_operator_page_documents() -> None:
    """The steps, their parameters' defaults (Clip's -inf and inf as Python floats), the step
    limit, domain and version the package reads from _core are what docs/operator.md states."""
    from onnx_sparsify import _contract

    steps = _operator_md_attribute("activation")
    listed = re.findall(r"`(\w+)`", steps.split(" from ", 1)[1].split(";", 1)[0])
    assert listed == list(_contract.ACTIVATIONS)
    assert f"up to {_contract.MAX_EPILOGUE_STEPS} steps" in steps
    params = _operator_md_attribute("activation_params")
    documented = {
        step: tuple(float(v) for v in values.split(", "))
        for step, values in re.findall(r"`(\w+)` \[[^]]*\] \(([^)]*)\)", params)
    }
    assert "the other steps take none" in params
    assert {k: v for k, v in _contract.ACTIVATIONS.items() if v} == documented
    assert _contract.ACTIVATIONS["Clip"] == (-math.inf, math.inf)
    header = (Path(__file__).resolve().parents[1] / "docs" / "operator.md").read_text()
    assert f"| Domain | `{_contract.DOMAIN}` |" in header and f"| Op type | `{_contract.OP_TYPE}` |" in header
    assert f"| Version | {_contract.OP_VERSION} |" in header
