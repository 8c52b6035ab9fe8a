"""The command's output path: never the input, nothing left there unless the run succeeds (exit
0 or 5), flags that would silently do nothing, and the JSON report's non-finite numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import pytest
from models import IR_VERSION, OPSET
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import cli
from test_cli import _model


@pytest.fixture()
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(_model(), path)
    return path


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def _corrupt_rewrite(monkeypatch, value: float | None = None) -> None:
    """Makes the rewrite wrong (CSR values scaled, or set to `value`), so that --check fails."""
    import onnx_sparsify.rewrite as rewrite_module

    real = rewrite_module.sparsify

    def corrupt(*args, **kwargs):
        model, report = real(*args, **kwargs)
        values = next(t for t in model.graph.initializer if t.name.endswith("_csr_values"))
        array = numpy_helper.to_array(values).copy()
        array[:3] = array[:3] * 1.5 if value is None else value
        values.CopyFrom(numpy_helper.from_array(array, values.name))
        return model, report

    monkeypatch.setattr(rewrite_module, "sparsify", corrupt)


# --- -o must not be the input ---------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(model_path: Path, spelling: str, caplog) -> None:
    before = model_path.read_bytes()
    folder = model_path.parent
    if spelling == "same":
        out = model_path
    elif spelling == "dotted":
        out = folder / "." / ".." / folder.name / model_path.name
    elif spelling == "symlink":
        out = folder / "alias.onnx"
        out.symlink_to(model_path)
    else:
        out = folder / "hard.onnx"
        os.link(model_path, out)
    assert cli.main([str(model_path), "-o", str(out), "--min-sparsity", "0"]) == cli.EXIT_USAGE
    assert model_path.read_bytes() == before
    errors = _errors(caplog)
    assert len(errors) == 1 and "-o" in errors[0] and "input" in errors[0], errors


def test_output_that_would_overwrite_the_inputs_external_data_is_refused(tmp_path: Path, caplog) -> None:
    src = tmp_path / "model.onnx"
    onnx.save(_model(), src, save_as_external_data=True, location="out.onnx.data", size_threshold=0)
    before = (tmp_path / "out.onnx.data").read_bytes()
    assert cli.main([str(src), "-o", str(tmp_path / "out.onnx"), "--min-sparsity", "0"]) == cli.EXIT_USAGE
    assert (tmp_path / "out.onnx.data").read_bytes() == before and not (tmp_path / "out.onnx").exists()
    assert "external data" in _errors(caplog)[0]


# --- --input-shape is checked against the model's inputs --------------------------------------


@pytest.mark.parametrize(
    "shape,words",
    [
        ("nope:1x4x8x8", "no input 'nope'"),
        ("w1:8x4x3x3", "no input 'w1'"),  # an initializer is not an input
        ("x:1x4x8", "rank 4"),
        ("x:1x4x0x8", "at least 1"),
        ("x:0x4x8x8", "at least 1"),
    ],
    ids=["unknown", "initializer", "rank", "zero_spatial", "zero_batch"],
)
@pytest.mark.parametrize("check", [False, True], ids=["rewrite", "check"])
def test_bad_input_shape_is_a_usage_error(model_path: Path, tmp_path: Path, shape, words, check, caplog) -> None:
    out = tmp_path / "out.onnx"
    flags = ["--check"] if check else []
    code = cli.main([str(model_path), "-o", str(out), "--min-sparsity", "0", "--input-shape", shape, *flags])
    assert code == cli.EXIT_USAGE
    errors = _errors(caplog)
    assert len(errors) == 1 and "--input-shape" in errors[0] and words in errors[0], errors
    assert not out.exists()


def test_input_shape_contradicting_a_declared_size_is_a_usage_error(tmp_path: Path, caplog) -> None:
    path = tmp_path / "static.onnx"
    onnx.save(_model(x_dims=(1, 4, 8, 8)), path)
    code = cli.main([str(path), "-o", str(tmp_path / "o.onnx"), "--check", "--input-shape", "x:1x4x16x16"])
    assert code == cli.EXIT_USAGE and "declared" in _errors(caplog)[0]


# --- flags that would do nothing say so ---------------------------------------------------------


def test_keep_naming_no_conv_warns(model_path: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "out.onnx"
    code = cli.main([str(model_path), "-o", str(out), "--min-sparsity", "0", "--keep", "a", "--keep", "conv9"])
    assert code == cli.EXIT_OK  # "a" is conv1's first output: conv1 is kept
    assert [n.op_type for n in onnx.load(out).graph.node] == ["Conv", "Relu", "SparseConv"]
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "'conv9'" in warnings[0] and "'a'" not in warnings[0], warnings


def test_autotune_without_shapes_warns(model_path: Path, tmp_path: Path, caplog) -> None:
    report = tmp_path / "r.json"
    code = cli.main([str(model_path), "-o", str(tmp_path / "o.onnx"), "--autotune", "--report-json", str(report)])
    assert code in (cli.EXIT_OK, cli.EXIT_NOTHING_REWRITTEN)
    warnings = _warnings(caplog)
    assert any("--input-shape" in w and "'x'" in w and "cost model" in w for w in warnings), warnings
    reasons = [layer["reason"] for layer in json.loads(report.read_text())["layers"]]
    assert all("autotune" in r and "unknown" in r for r in reasons), reasons


def test_prune_without_convs_does_not_claim_a_change(tmp_path: Path, caplog) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION), path)
    assert cli.main([str(path), "-o", str(tmp_path / "o.onnx"), "--prune", "0.9"]) == cli.EXIT_NOTHING_REWRITTEN
    assert not any("accuracy" in w or "pruned" in w for w in _warnings(caplog)), _warnings(caplog)


# --- nothing is left at the output path unless the run succeeds ----------------------------------


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing_output"])
@pytest.mark.parametrize("external", [False, True], ids=["inline", "external_data"])
def test_check_failure_writes_nothing(tmp_path: Path, monkeypatch, caplog, existing, external) -> None:
    src = tmp_path / "in" / "model.onnx"
    src.parent.mkdir()
    onnx.save(_model(), src, save_as_external_data=external, location="w.bin", size_threshold=0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if existing:
        (out_dir / "o.onnx").write_bytes(b"previous model")
        (out_dir / "o.onnx.data").write_bytes(b"previous data")
    before = _listing(out_dir)
    _corrupt_rewrite(monkeypatch)
    flags = ["--min-sparsity", "0", "--check", "--input-shape", "x:1x4x8x8"]
    assert cli.main([str(src), "-o", str(out_dir / "o.onnx"), *flags]) == cli.EXIT_CHECK_FAILED
    assert _listing(out_dir) == before  # no model, no .data, no temporary folder, old files untouched
    errors = _errors(caplog)
    assert len(errors) == 1 and "check failed" in errors[0] and "not written" in errors[0], errors


def test_malformed_input_leaves_an_existing_output_untouched(model_path: Path, tmp_path: Path, caplog) -> None:
    model = onnx.load(model_path)
    model.graph.initializer[1].raw_data = model.graph.initializer[1].raw_data[:-4]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model.SerializeToString())
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous model")
    assert cli.main([str(bad), "-o", str(out), "--min-sparsity", "0"]) == cli.EXIT_INPUT
    assert out.read_bytes() == b"previous model"
    errors = _errors(caplog)
    assert len(errors) == 1 and "node 'conv2'" in errors[0] and "not written" in errors[0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx", "model.onnx", "out.onnx"]


def test_unwritable_report_writes_no_model(model_path: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "out.onnx"
    report = tmp_path / "missing" / "r.json"
    assert cli.main([str(model_path), "-o", str(out), "--min-sparsity", "0", "--report-json", str(report)]) == 4
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert "not written" in _errors(caplog)[0]


def test_check_lacking_a_shape_writes_no_model(model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    assert cli.main([str(model_path), "-o", str(out), "--min-sparsity", "0", "--check"]) == cli.EXIT_USAGE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external_data"])
def test_success_replaces_an_existing_output(tmp_path: Path, external) -> None:
    src = tmp_path / "model.onnx"
    onnx.save(_model(), src, save_as_external_data=external, location="w.bin", size_threshold=0)
    out = tmp_path / "o.onnx"
    out.write_bytes(b"previous model")
    (tmp_path / "o.onnx.data").write_bytes(b"previous data")
    assert cli.main([str(src), "-o", str(out), "--min-sparsity", "0", "--check", "--input-shape", "x:1x4x5x5"]) == 0
    rewritten = onnx.load(out)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "SparseConv"]
    expected = {"model.onnx", "o.onnx", "o.onnx.data"} | ({"w.bin"} if external else set())
    assert {p.name for p in tmp_path.iterdir()} == expected


def test_nothing_rewritten_still_writes_the_output(tmp_path: Path) -> None:
    src = tmp_path / "dense.onnx"
    onnx.save(_model(sparsity=0.1), src)
    out = tmp_path / "o.onnx"
    assert cli.main([str(src), "-o", str(out), "--input-shape", "x:1x4x8x8"]) == cli.EXIT_NOTHING_REWRITTEN
    assert [n.op_type for n in onnx.load(out).graph.node] == ["Conv", "Relu", "Conv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.onnx", "o.onnx"]


# --- the JSON report ----------------------------------------------------------------------------------


def test_check_error_of_infinity_exits_1_with_null_in_json(model_path: Path, tmp_path: Path, monkeypatch) -> None:
    """New NaNs in the output make the error infinite: JSON has no infinity, so it says null."""
    _corrupt_rewrite(monkeypatch, value=float("nan"))
    report = tmp_path / "r.json"
    flags = ["--min-sparsity", "0", "--check", "--input-shape", "x:1x4x8x8", "--report-json", str(report)]
    assert cli.main([str(model_path), "-o", str(tmp_path / "o.onnx"), *flags]) == cli.EXIT_CHECK_FAILED
    data = json.loads(report.read_text())
    assert data["check"]["passed"] is False
    assert data["check"]["worst_error"] is None and data["check"]["errors"]["y"] is None
    assert not (tmp_path / "o.onnx").exists()
