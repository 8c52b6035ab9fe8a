"""The benchmark harness runs and reports (its figures are checked by reading them, not here:
timed tests on shared machines prove nothing)."""

from __future__ import annotations

import math
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks import peers
from benchmarks.__main__ import annotate, machine, markdown, scaling_rows
from benchmarks.fma_probe import fma_peak, fraction_of_peak
from benchmarks.layers import SCALING_TARGETS, TARGETS, TARGETS_70, Layer, sweeps
from benchmarks.networks import mobilenet
from benchmarks.plots import plot_sweep
from benchmarks.single_layer import bench_layer


def test_single_layer_measurement_is_complete_and_correct() -> None:
    row = bench_layer(Layer("tiny", (1, 4, 16, 16), 8, (3, 3), {"pads": [1, 1, 1, 1]}), threads=1, budget_s=0.05)
    assert row["rel_l2_error"] <= 1e-5
    assert row["dense_ms"] > 0 and row["sparse_ms"] > 0 and row["runs"] >= 9
    assert row["dense_min_ms"] <= row["dense_ms"] <= row["dense_max_ms"]
    assert row["sparse_min_ms"] <= row["sparse_ms"] <= row["sparse_max_ms"]
    # 8x4x3x3 weight, 90% zeros: 29 nonzeros over 16x16 output positions.
    assert row["nnz"] == 29 and row["sparse_flop"] == 2 * 29 * 256 and row["dense_flop"] == 2 * 288 * 256


def test_report_and_plot(tmp_path: Path) -> None:
    row = bench_layer(Layer("tiny", (1, 4, 12, 12), 8, (1, 1)), threads=1, budget_s=0.05)
    row.update(target=1.0, met=row["ratio"] >= 1.0, x=1)
    results = {
        "machine": machine(fma=False),
        "mode": "quick",
        "targets": [row],
        "networks": [],
        "sweeps": {"kernel_size": {"label": "kernel size", "rows": [row]}},
    }
    text = markdown(results)
    assert "| tiny |" in text and "kernel_size.png" in text
    assert "DeepSparse not run" in text and "FMA peak not measured" in text
    plot_sweep("kernel_size", "kernel size", [row], tmp_path / "k.png")
    assert (tmp_path / "k.png").stat().st_size > 1000


def test_sweeps_and_networks_are_well_formed() -> None:
    assert set(sweeps(quick=True)) == {"kernel_size", "in_channels", "out_channels", "nonzeros", "input_size"}
    onnx.checker.check_model(mobilenet())


def test_targets_are_the_issue_goals() -> None:
    goals = {"S1": 4.5, "S2": 5, "R1": 5, "R2": 4, "R3": 3, "R4": 4, "R5": 6, "D1": 2.5, "G1": 5, "A1": 6}
    assert {layer.name: target for layer, target in TARGETS} == goals
    assert all(layer.sparsity == 0.9 for layer, _ in TARGETS)
    assert [(layer.name, layer.sparsity, target) for layer, target in TARGETS_70] == [
        (name, 0.7, 1.5) for name in ("R1", "R2", "R4", "R5")
    ]
    assert SCALING_TARGETS == {"S1": 1.8, "S2": 1.8, "R1": 1.8}
    a1 = dict((layer.name, layer) for layer, _ in TARGETS)["A1"]
    assert len(a1.kernel) == 1 and a1.w_shape == (64, 64, 9)


def _row(layer: str, threads: int, dense_ms: float, sparse_ms: float, sparsity: float = 0.9, **extra: Any):
    row = {
        "layer": layer,
        "x_shape": [1, 64, 56, 56],
        "w_shape": [64, 64, 3, 3],
        "sparsity": sparsity,
        "threads": threads,
        "dense_ms": dense_ms,
        "sparse_ms": sparse_ms,
        "ratio": dense_ms / sparse_ms,
        "sparse_flop": 2e7,
        "sparse_gflops": 2e7 / sparse_ms / 1e6,
        **extra,
    }
    target = {"R1": 5.0, "G1": 5.0}.get(layer, 1.5) if threads == 1 else None
    row.update(target=target, met=None if target is None else row["ratio"] >= target)
    return row


def _ds(ms: float, fraction: float = 1.0) -> dict[str, Any]:
    return {
        "median_ms": ms,
        "fraction_of_supported_ops": fraction,
        "fallback": fraction == 0.0,
        "gflops": 2e7 / ms / 1e6,
        "rel_l2_error": 1e-7,
    }


def _results(peer_status: dict[str, Any]) -> dict[str, Any]:
    targets = [
        _row("R1", 1, 10.0, 2.0, deepsparse=_ds(4.0)),  # 5x: met; SparseConv 2x faster than DeepSparse
        _row("R1", 2, 5.0, 1.25, deepsparse=_ds(2.5)),
        _row("G1", 1, 9.0, 3.0, deepsparse=_ds(1.5, fraction=0.0)),  # fell back; SparseConv 2x slower
        _row("G1", 2, 5.0, 2.0, deepsparse={"error": "worker exited with 1: boom"}),
    ]
    targets_70 = [_row("R5", 1, 3.0, 1.5, sparsity=0.7, deepsparse=_ds(1.0))]
    m = machine(fma=False)
    m.update(fma_peak_gflops_per_core=100.0, fma_probe={"widths": {"avx512": 100.0, "avx2": 55.0}, "error": None})
    for r in targets + targets_70:
        annotate(r, 100.0, ["deepsparse"] if peer_status else [])
    return {
        "machine": m,
        "mode": "quick",
        "peers": peer_status,
        "targets": targets,
        "targets_70": targets_70,
        "scaling": scaling_rows(targets, ["deepsparse"]),
        "networks": [],
        "sweeps": {},
    }


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_markdown_with_a_measured_peer_and_a_fallback_row() -> None:
    results = _results({"deepsparse": {"status": "ok", "version": "1.8.0", "python": "x", "reason": None}})
    text = markdown(results)
    assert "DeepSparse 1.8.0 measured in the same run" in text
    assert "Measured FMA peak: 100.0" in text
    r1 = _line(text, "| R1 | 1x64x56x56, W 64x64x3x3 | 90% | 1 |")
    # ORT dense, SparseConv, DeepSparse, ratio, target, met, versus, GFLOP/s (% peak) x2, supported ops
    assert "| 10.000 | 2.000 | 4.000 | **5.00x** | 5.0x | met | 2.00x faster | 10.0 (10%) | 5.0 (5%) | 1.00 |" in r1
    r1_2 = _line(text, "| R1 | 1x64x56x56, W 64x64x3x3 | 90% | 2 |")
    assert "| — | — | 2.00x faster | 16.0 (8%) | 8.0 (4%) |" in r1_2  # no target at 2 threads; peak x 2 threads
    g1 = _line(text, "| G1 | 1x64x56x56, W 64x64x3x3 | 90% | 1 |")
    assert "1.500 (ORT fallback)" in g1 and "**not met**" in g1 and "2.00x slower" in g1 and "0.00 (fallback)" in g1
    g1_2 = _line(text, "| G1 | 1x64x56x56, W 64x64x3x3 | 90% | 2 |")
    assert "| failed |" in g1_2 and "DeepSparse failed on G1 (2 thr): worker exited with 1: boom" in text
    assert "| R5 | 1x64x56x56, W 64x64x3x3 | 70% | 1 | 3.000 | 1.500 | 1.000 | **2.00x** | 1.5x | met |" in text
    assert "Targets met at 90% zeros, 1 thread: 1 of 2 (not met: G1)." in text
    assert "Targets met at 70% zeros, 1 thread: 1 of 1 (not met: none)." in text
    assert "| R1 | 1 -> 2 | 2.000 | 1.250 | **1.60x** | 1.8x | **not met** | 2.00x | 1.60x |" in text
    assert "| G1 | 1 -> 2 | 3.000 | 2.000 | **1.50x** | — | — | 1.80x | — |" in text


def test_markdown_with_a_skipped_peer_gives_the_reason() -> None:
    reason = "python3.11 not found on PATH (deepsparse 1.8.0 needs Python <= 3.11)"
    results = _results({"deepsparse": {"status": "skipped", "reason": reason, "version": None, "python": None}})
    text = markdown(results)
    assert f"DeepSparse column skipped: {reason}." in text
    r1 = _line(text, "| R1 | 1x64x56x56, W 64x64x3x3 | 90% | 1 |")
    assert "| 10.000 | 2.000 | — | **5.00x** | 5.0x | met | — | 10.0 (10%) | — | — |" in r1
    assert "DeepSparse failed" not in text


def test_scaling_rows() -> None:
    rows = [_row("S1", 1, 40.0, 9.0), _row("S1", 2, 20.0, 5.0), _row("R3", 1, 1.0, 0.5), _row("R3", 2, 0.6, 0.4)]
    scaling = {r["layer"]: r for r in scaling_rows(rows)}
    assert scaling["S1"]["scaling"] == pytest.approx(1.8) and scaling["S1"]["met"] is True
    assert scaling["S1"]["target"] == 1.8 and scaling["S1"]["dense_scaling"] == pytest.approx(2.0)
    assert scaling["R3"]["target"] is None and scaling["R3"]["met"] is None
    assert scaling_rows([_row("S1", 2, 20.0, 5.0)]) == []  # no 1-thread row to compare with


def test_peer_model_is_downgraded_and_unchanged_in_meaning() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    old = peers.for_peer(model)
    assert old.ir_version <= 9 and old.ir_version == 9
    assert [o.version for o in old.opset_import if o.domain == ""] == [17]
    assert model.ir_version == 10  # the original is left alone
    reloaded = onnx.load_from_string(old.SerializeToString())
    onnx.checker.check_model(reloaded, full_check=True)
    x = {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    y_new = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
    y_old = ort.InferenceSession(reloaded.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
    np.testing.assert_array_equal(y_new, y_old)
    small = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    kept = peers.for_peer(small)
    assert kept.ir_version == 7 and kept.opset_import[0].version == 13  # older models are kept as they are


@pytest.mark.skipif(shutil.which("c++") is None, reason="the FMA probe needs a C++ compiler (c++) on PATH")
def test_fma_probe_gives_a_positive_finite_peak() -> None:
    probe = fma_peak(iters=2_000_000, trials=2)
    assert probe["error"] is None, probe["error"]
    peak = probe["gflops_per_core"]
    assert math.isfinite(peak) and peak > 0 and peak == max(probe["widths"].values())
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512f" in flags:
        assert "avx512" in probe["widths"]
    if " avx2" in flags and " fma" in flags:
        assert "avx2" in probe["widths"]


def test_fraction_of_peak_counts_threads() -> None:
    assert fraction_of_peak(50.0, 2, 100.0) == 0.25
    assert fraction_of_peak(50.0, 1, None) is None and fraction_of_peak(None, 1, 100.0) is None


def test_a_missing_interpreter_skips_the_peer_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(peers.PeerUnavailable, match="no-such-python3.11 not found"):
        peers.ensure_deepsparse_venv(tmp_path / "venv", base_python="no-such-python3.11")
    assert not (tmp_path / "venv").exists()

    def unavailable(*args, **kwargs):
        raise peers.PeerUnavailable("no wheel for this platform")

    monkeypatch.setattr(peers, "ensure_deepsparse_venv", unavailable)
    usable, status = peers.make_peers(["deepsparse"])
    assert usable == [] and status == {
        "deepsparse": {"status": "skipped", "reason": "no wheel for this platform", "version": None, "python": None}
    }
    with pytest.raises(ValueError, match="unknown peer"):
        peers.make_peers(["tvm"])


def _stub_deepsparse(folder: Path, fraction: float) -> None:
    """A stand-in `deepsparse` module: its engine doubles the input and reports `fraction`."""
    (folder / "deepsparse").mkdir()
    (folder / "deepsparse" / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            __version__ = "0.0-stub"

            class Engine:
                def __init__(self, model, batch_size=1, num_cores=None):
                    assert open(model, "rb").read(), model
                    self.num_cores = num_cores
                    self.fraction_of_supported_ops = {fraction}

                def run(self, inputs, val_inp=True):
                    return [inputs[0] * 2]
            """
        )
    )


def test_worker_protocol_with_a_stub_engine(tmp_path: Path, monkeypatch) -> None:
    """The harness side and the worker script together, with a stand-in engine: the model and
    inputs reach the worker, its result comes back, a fraction of 0 is marked as a fallback and
    a wrong output shows in the error."""
    _stub_deepsparse(tmp_path, fraction=0.0)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    layer = Layer("tiny", (1, 2, 4, 4), 2, (1, 1))
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        layer.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(layer.x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    x = np.arange(32, dtype=np.float32).reshape(layer.x_shape)
    peer = peers.DeepSparsePeer(Path(sys.executable), "0.0-stub", timeout_s=120)
    result = peer.time_model(model, {"x": x}, 2 * x, threads=2, block_s=0.001)
    assert "error" not in result, result
    assert result["fallback"] is True and result["fraction_of_supported_ops"] == 0.0
    assert result["num_cores"] == 2 and result["rel_l2_error"] == 0.0 and result["runs"] >= 9
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["max_ms"]
    wrong = peer.time_model(model, {"x": x}, x, threads=1, block_s=0.001)
    assert wrong["rel_l2_error"] == pytest.approx(1.0)

    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nowhere"))
    failed = peer.time_model(model, {"x": x}, None, threads=1, block_s=0.001)
    assert "ModuleNotFoundError" in failed["error"]


def _real_deepsparse_python() -> Path | None:
    venv = peers.peers_dir() / f"deepsparse-{peers.DEEPSPARSE_VERSION}"
    python = venv / "bin" / "python"
    return python if python.exists() else None


@pytest.mark.skipif(
    _real_deepsparse_python() is None,
    reason="the DeepSparse environment has not been made here (python -m benchmarks --peers deepsparse makes it)",
)
def test_real_deepsparse_times_a_dense_conv() -> None:
    python, version = peers.ensure_deepsparse_venv()
    assert version == peers.DEEPSPARSE_VERSION
    layer = Layer("tiny", (1, 8, 16, 16), 8, (3, 3), {"pads": [1, 1, 1, 1]})
    row = bench_layer(layer, threads=1, budget_s=0.03, peers=[peers.DeepSparsePeer(python, version)])
    ds = row["deepsparse"]
    assert "error" not in ds, ds
    assert 0.0 <= ds["fraction_of_supported_ops"] <= 1.0 and ds["fallback"] == (ds["fraction_of_supported_ops"] == 0)
    assert ds["rel_l2_error"] < 1e-4 and ds["median_ms"] > 0
    assert ds["gflops"] == pytest.approx(row["sparse_flop"] / ds["median_ms"] / 1e6)


def test_int8_side_by_side_is_complete_and_exact() -> None:
    """benchmarks.quantized on a small layer: four timings, and SparseQLinearConv equal to ORT's
    QLinearConv on every element (this CPU's default int8 kernel)."""
    from benchmarks.quantized import compare, table

    layer = Layer("T", (1, 8, 20, 20), 12, (3, 3), {"pads": [1, 1, 1, 1]})
    row = compare(layer, threads=1, block_s=0.01)
    assert all(row[name] > 0 for name in ("ort_fp32", "ort_int8", "sparse_fp32", "sparse_int8"))
    assert row["int8_elements_equal"] == 1.0 and row["int8_max_step"] == 0
    assert "| T |" in table([row])


def test_variants_compare_plugin_builds_side_by_side() -> None:
    """benchmarks.variants with two columns of the installed plugin (loops and the default):
    both exact against ORT's Conv, timings positive."""
    from benchmarks.variants import Column, compare

    loops = Column.parse("loops=,ONNX_SPARSIFY_CPU_ISA=baseline")
    assert (loops.label, loops.plugin, dict(loops.env)) == ("loops", "", {"ONNX_SPARSIFY_CPU_ISA": "baseline"})
    row = compare(
        Layer("T", (1, 8, 20, 20), 12, (3, 3), {"pads": [1, 1, 1, 1]}), [loops, Column.parse("default=")], 1, 0.01
    )
    for label in ("loops", "default"):
        assert row[label]["ms"] > 0 and row[label]["rel_l2"] < 1e-5


def test_block_pruning_zeroes_whole_aligned_runs_of_input_channels() -> None:
    """random_weight(block=4): every aligned run of 4 input channels (one output channel, one tap)
    is all zero or all nonzero, and 90% of the runs are zero; block 1 stays unstructured."""
    from benchmarks.single_layer import random_weight

    rng = np.random.default_rng(0)
    w = random_weight(rng, (16, 10, 3, 3), 0.9, block=4)  # 10 channels: runs of 4, 4 and 2
    runs = [w[:, 0:4], w[:, 4:8], w[:, 8:10]]
    zero = [(r == 0).all(axis=1) for r in runs]
    assert all(((r == 0).all(axis=1) | (r != 0).all(axis=1)).all() for r in runs)
    assert np.mean(np.concatenate([z.ravel() for z in zero])) == pytest.approx(0.9, abs=0.01)
    unstructured = random_weight(np.random.default_rng(0), (16, 10, 3, 3), 0.9)
    assert (unstructured == 0).mean() == pytest.approx(0.9, abs=0.001)
