"""The onnx-sparsify command: flags, output, report and every documented exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from models import OPSET, conv_relu_conv, rel_l2, session
from onnx import helper, numpy_helper
from onnx_sparsify import cli

EXE = shutil.which(
    "onnx-sparsify", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)


def _model(sparsity: float = 0.9, opset: int = OPSET, x_dims=("N", 4, "H", "W")) -> onnx.ModelProto:
    """Conv 3x3 (pads 1) -> Relu -> Conv 1x1, 4 -> 8 -> 8 channels."""
    return conv_relu_conv((4, 8, 8), sparsity, x_dims, opset, output_shape=["N", 8, "H", "W"])


def _run(*args: str) -> subprocess.CompletedProcess:
    command = [EXE] if EXE else [sys.executable, "-m", "onnx_sparsify.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture()
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(_model(), path)
    return path


def test_console_script_is_installed() -> None:
    assert EXE is not None, "pip install should put onnx-sparsify on the PATH"


def test_rewrite_check_and_report(model_path: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    result = _run(
        str(model_path),
        "-o",
        str(out),
        "--min-sparsity",
        "0",
        "--check",
        "--input-shape",
        "x:2x4x10x12",
        "--report-json",
        str(report),
    )
    assert result.returncode == 0, result.stderr
    assert "Convs rewritten: 2 of 2" in result.stderr and "check passed" in result.stderr
    assert "conv1" in result.stderr and "+Relu" in result.stderr
    data = json.loads(report.read_text())
    assert data["totals"]["rewritten"] == 2 and data["check"]["passed"] is True
    assert [layer["name"] for layer in data["layers"]] == ["conv1", "conv2"]
    rewritten = onnx.load(out)
    onnx.checker.check_model(rewritten)
    x = np.random.default_rng(1).standard_normal((1, 4, 6, 7)).astype(np.float32)
    expected = session(_model(), plugin=False).run(None, {"x": x})[0]
    assert rel_l2(session(rewritten, plugin=True).run(None, {"x": x})[0], expected) <= 1e-5


def test_keep_min_sparsity_and_quiet(model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    result = _run(str(model_path), "-o", str(out), "--keep", "conv2", "--min-sparsity", "0", "-q")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert [n.op_type for n in onnx.load(out).graph.node] == ["SparseConv", "Conv"]


def test_prune_warns_and_reports_drift(tmp_path: Path) -> None:
    dense = tmp_path / "dense.onnx"
    onnx.save(_model(sparsity=0.0), dense)
    result = _run(
        str(dense),
        "-o",
        str(tmp_path / "o.onnx"),
        "--prune",
        "0.9",
        "--min-sparsity",
        "0",
        "--check",
        "--input-shape",
        "x:1x4x8x8",
    )
    assert result.returncode == 0, result.stderr
    assert "changes the model's outputs and accuracy" in result.stderr
    assert "pruning moved the outputs" in result.stderr


def test_check_failure_exits_1(model_path: Path, tmp_path: Path, monkeypatch, capsys, caplog) -> None:
    """A wrong rewrite (one CSR value perturbed) must fail the check, naming the output."""
    import onnx_sparsify.rewrite as rewrite_module

    real = rewrite_module.sparsify

    def corrupt(*args, **kwargs):
        model, report = real(*args, **kwargs)
        values = next(t for t in model.graph.initializer if t.name.endswith("_csr_values"))
        array = numpy_helper.to_array(values).copy()
        array[:3] *= 1.5
        values.CopyFrom(numpy_helper.from_array(array, values.name))
        return model, report

    monkeypatch.setattr(rewrite_module, "sparsify", corrupt)
    code = cli.main(
        [
            str(model_path),
            "-o",
            str(tmp_path / "o.onnx"),
            "--min-sparsity",
            "0",
            "--check",
            "--input-shape",
            "x:1x4x8x8",
        ]
    )
    assert code == cli.EXIT_CHECK_FAILED
    assert "check FAILED: worst output 'y'" in capsys.readouterr().err
    assert "check failed: output 'y'" in caplog.text


@pytest.mark.parametrize(
    "make_input,expected_code,message",
    [
        (lambda d: d / "missing.onnx", 3, "no such file"),
        (lambda d: d, 3, "is a folder"),
        (
            lambda d: (d / "junk.onnx", (d / "junk.onnx").write_bytes(b"\x00not a model\xff" * 9))[0],
            3,
            "not an ONNX model",
        ),
        (lambda d: (d / "text.onnx", (d / "text.onnx").write_text("hello"))[0], 3, "not an ONNX model"),
        (lambda d: (d / "new.onnx", onnx.save(_model(opset=99), d / "new.onnx"))[0], 3, "unsupported ONNX opset 99"),
        (lambda d: _malformed(d, "dtype"), 3, "node 'conv1': input 'w1'"),
        (lambda d: _malformed(d, "negative_dim"), 3, "node 'conv1': input 'w1'"),
        (lambda d: _malformed(d, "pads"), 3, "node 'conv2'"),
        (lambda d: _malformed(d, "group_zero"), 3, "node 'conv2': attribute 'group' is 0"),
        (lambda d: _malformed(d, "self_loop"), 3, "graph 'main': node 'relu1' reads its own output 'b'"),
        (lambda d: _malformed(d, "cycle"), 3, "graph 'main': the graph has a cycle (nodes 'relu1', 'conv2'"),
    ],
    ids=[
        "missing",
        "folder",
        "binary_junk",
        "text",
        "future_opset",
        "weight_dtype",
        "weight_dims",
        "conv_pads",
        "group_zero",
        "self_loop",
        "cycle",
    ],
)
@pytest.mark.parametrize("flags", [("--min-sparsity", "0"), ("--no-measure",)], ids=["min_sparsity", "no_measure"])
def test_bad_inputs(tmp_path: Path, make_input, expected_code: int, message: str, flags: tuple[str, ...]) -> None:
    out = tmp_path / "out.onnx"
    result = _run(str(make_input(tmp_path)), "-o", str(out), *flags)
    assert result.returncode == expected_code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "out.onnx not written" in result.stderr and not out.exists()


def _malformed(folder: Path, defect: str) -> Path:
    """The CLI test model with one defect ONNX Runtime refuses to load."""
    model = _model()
    if defect == "dtype":
        model.graph.initializer[0].data_type = 999
    elif defect == "negative_dim":
        model.graph.initializer[0].dims[0] = -1
    elif defect == "group_zero":
        model.graph.node[2].attribute.append(helper.make_attribute("group", 0))
    elif defect == "self_loop":  # relu1: b -> b
        model.graph.node[1].input[0] = "b"
    elif defect == "cycle":  # relu1 reads conv2's output, conv2 reads relu1's
        model.graph.node[1].input[0] = "y"
    else:
        model.graph.node[2].attribute.append(helper.make_attribute("pads", [1, 1]))
    path = folder / "malformed.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_unreadable_input(model_path: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    """Reading the input fails with EACCES (simulated in-process: root reads any file)."""
    real = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == model_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    out = tmp_path / "out.onnx"
    assert cli.main([str(model_path), "-o", str(out)]) == cli.EXIT_INPUT
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "cannot read it (Permission denied)" in errors[0], errors
    assert not out.exists()


def test_unwritable_output(model_path: Path, tmp_path: Path) -> None:
    no_dir = tmp_path / "no" / "such" / "dir" / "out.onnx"
    result = _run(str(model_path), "-o", str(no_dir), "--no-measure")
    assert result.returncode == 4 and "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = _run(str(model_path), "-o", str(tmp_path), "--no-measure")  # a folder
    assert result.returncode == 4, result.stderr


def test_nothing_rewritten_still_writes_a_valid_model(tmp_path: Path) -> None:
    dense = tmp_path / "dense.onnx"
    onnx.save(_model(sparsity=0.1), dense)
    out = tmp_path / "out.onnx"
    result = _run(str(dense), "-o", str(out), "--check", "--input-shape", "x:1x4x8x8")
    assert result.returncode == 5, result.stderr
    assert "no Conv was rewritten" in result.stderr
    written = onnx.load(out)
    onnx.checker.check_model(written)
    assert [n.op_type for n in written.graph.node] == ["Conv", "Relu", "Conv"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--min-sparsity", "1.5"], "not within [0, 1]"),
        (["--prune", "abc"], "is not a number"),
        (["--input-shape", "x:1xAx3"], "expected NAME:DIMS"),
        (["--check"], "give it with --input-shape x:DIMS"),
    ],
    ids=["min_sparsity_range", "prune_not_number", "bad_input_shape", "check_needs_shape"],
)
def test_usage_errors(model_path: Path, tmp_path: Path, flags, message) -> None:
    result = _run(str(model_path), "-o", str(tmp_path / "out.onnx"), *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_verbose_shows_traceback_on_unexpected_errors(model_path: Path, tmp_path: Path, monkeypatch) -> None:
    import onnx_sparsify.rewrite as rewrite_module

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(rewrite_module, "sparsify", boom)
    assert cli.main([str(model_path), "-o", str(tmp_path / "o.onnx")]) == cli.EXIT_INPUT
    with pytest.raises(RuntimeError, match="kaboom"):
        cli.main([str(model_path), "-o", str(tmp_path / "o.onnx"), "-v"])


def test_default_decision_keeps_tiny_layers_dense(model_path: Path, tmp_path: Path) -> None:
    """With shapes known, the cost model sees that these tiny layers would not pay."""
    result = _run(str(model_path), "-o", str(tmp_path / "out.onnx"), "--input-shape", "x:1x4x8x8")
    assert result.returncode == 5 and "predicted" in result.stderr


@pytest.mark.parametrize("size", [100_000, 2**62], ids=["1e5", "2^62"])
def test_declared_input_too_large_to_generate_is_named(tmp_path: Path, size: int, caplog) -> None:
    """Declared sizes whose random inputs would not fit: the end-to-end check keeps the model
    dense (exit 5) and --check refuses (exit 2), each naming the input and the limit (a raw
    MemoryError or NumPy's "array is too big", exit 3, before). (At 2^62 the Convs stay dense
    before any measurement: their sizes overflow the plugin's counts.)"""
    from onnx_sparsify.check import MAX_FEED_BYTES

    path = tmp_path / "big.onnx"
    onnx.save(_model(x_dims=(1, 4, size, size)), path)
    out = tmp_path / "out.onnx"
    limit = f"over the limit of {MAX_FEED_BYTES / 2**30:.0f} GiB per input"
    assert cli.main([str(path), "-o", str(out)]) == cli.EXIT_NOTHING_REWRITTEN
    assert size == 2**62 or any("input 'x'" in r.getMessage() and limit in r.getMessage() for r in caplog.records)
    caplog.clear()
    code = cli.main([str(path), "-o", str(out), "--min-sparsity", "0", "--check", "-q"])
    assert code == cli.EXIT_USAGE
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line.startswith("--check: input 'x' of shape 1x4x") and limit in line


def test_nothing_rewritten_after_prune_does_not_say_unchanged(tmp_path: Path, caplog) -> None:
    """--prune changed the file written even when no Conv became SparseConv: the warning says it
    was written pruned (it said "written unchanged"), and the file holds the pruned weights."""
    model_path, out = tmp_path / "dense.onnx", tmp_path / "out.onnx"
    onnx.save(_model(sparsity=0.0), model_path)
    assert cli.main([str(model_path), "-o", str(out), "--prune", "0.5", "--min-sparsity", "1"]) == 5
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("no Conv was rewritten")]
    assert line.endswith(f"{out} written pruned (--prune), with no SparseConv") and "unchanged" not in line
    weight = numpy_helper.to_array(next(t for t in onnx.load(out).graph.initializer if t.name == "w1"))
    assert np.mean(weight == 0) >= 0.5


def test_check_runs_when_nothing_was_rewritten(tmp_path: Path, capsys) -> None:
    """--check with a model that stays dense (here pruned, with --min-sparsity 1): the check
    line is printed and the JSON report holds its result, with pruning's drift (there was none)."""
    model_path, out, report = tmp_path / "dense.onnx", tmp_path / "out.onnx", tmp_path / "report.json"
    onnx.save(_model(sparsity=0.0), model_path)
    flags = ["--prune", "0.5", "--min-sparsity", "1", "--check", "--input-shape", "x:1x4x8x8"]
    assert cli.main([str(model_path), "-o", str(out), *flags, "--report-json", str(report)]) == 5
    assert "check passed: worst output 'y'" in capsys.readouterr().err
    check = json.loads(report.read_text())["check"]
    assert check["passed"] and check["worst_error"] == 0.0 and check["pruning_drift"]["y"] > 0.01


@pytest.mark.parametrize("flag", ["-o", "--report-json"])
def test_missing_output_folder_fails_before_any_work(model_path: Path, tmp_path: Path, monkeypatch, caplog, flag):
    """-o (or --report-json) into a folder that does not exist: exit 4 and one line before the
    model is even read (it was reported only after the whole rewrite and its measurement)."""
    from onnx_sparsify import rewrite

    def must_not_run(*args, **kwargs):
        raise AssertionError("the rewrite ran before the output folder was checked")

    monkeypatch.setattr(rewrite, "sparsify", must_not_run)
    missing = tmp_path / "no" / "such" / "out.onnx"
    out = missing if flag == "-o" else tmp_path / "out.onnx"
    extra = [] if flag == "-o" else ["--report-json", str(missing)]
    assert cli.main([str(model_path), "-o", str(out), *extra]) == cli.EXIT_OUTPUT
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line == f"{flag} {missing}: folder {missing.parent} does not exist; {out} not written"
