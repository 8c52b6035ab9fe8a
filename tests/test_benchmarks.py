"""The benchmark harness runs and reports (its figures are checked by reading them, not here:
timed tests on shared machines prove nothing)."""

from __future__ import annotations

from pathlib import Path

import onnx

from benchmarks.__main__ import machine, markdown
from benchmarks.layers import Layer, sweeps
from benchmarks.networks import mobilenet
from benchmarks.plots import plot_sweep
from benchmarks.single_layer import bench_layer


def test_single_layer_measurement_is_complete_and_correct() -> None:
    row = bench_layer(Layer("tiny", (1, 4, 16, 16), 8, (3, 3), {"pads": [1, 1, 1, 1]}), threads=1, budget_s=0.05)
    assert row["rel_l2_error"] <= 1e-5
    assert row["dense_ms"] > 0 and row["sparse_ms"] > 0 and row["runs"] >= 9
    assert row["ratio"] == row["dense_ms"] / row["sparse_ms"]
    assert row["sparse_min_ms"] <= row["sparse_ms"] <= row["sparse_max_ms"]


def test_report_and_plot(tmp_path: Path) -> None:
    row = bench_layer(Layer("tiny", (1, 4, 12, 12), 8, (1, 1)), threads=1, budget_s=0.05)
    row.update(reference_dense_ms=1.0, deepsparse_ratio=1.0, target=1.0, x=1)
    results = {
        "machine": machine(),
        "mode": "quick",
        "targets": [row],
        "half_sparse": [row],
        "audio": [row],
        "networks": [],
        "sweeps": {"kernel_size": {"label": "kernel size", "rows": [row]}},
    }
    text = markdown(results)
    assert "| tiny |" in text and "kernel_size.png" in text
    plot_sweep("kernel_size", "kernel size", [row], tmp_path / "k.png")
    assert (tmp_path / "k.png").stat().st_size > 1000


def test_sweeps_and_networks_are_well_formed() -> None:
    assert set(sweeps(quick=True)) == {"kernel_size", "in_channels", "out_channels", "nonzeros", "input_size"}
    onnx.checker.check_model(mobilenet())
