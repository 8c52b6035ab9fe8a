"""Calibration (onnx_sparsify/calibration.py) and the cost model over injected rates: the
fit recovers known rates from synthetic timings, files are validated, the cache is keyed and
reused, and a calibration from another machine decides without timing here."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import onnx
import onnx_sparsify
import pytest
from models import conv_relu_conv
from onnx_sparsify import calibration, cli
from onnx_sparsify.decision import (
    KINDS,
    MARGIN,
    REFERENCE,
    LayerTraits,
    Rates,
    decide,
    layer_traits,
    predicted_speedup,
)
from onnx_sparsify.result import Code
from test_end_to_end import _model

# Rates the synthetic timings are made from: the fit must give them back.
TRUE = Rates(
    efficiency={"unit stride": (0.3, 0.4), "strided": (0.2, 0.5), "depthwise": (0.15, 0.9), "grouped": (0.4, 1.0)},
    dense_macs_per_us={"unit stride": 40e3, "strided": 30e3, "depthwise": 6e3, "grouped": 5e3},
    sparse_call_us=2.0,
)


def _synthetic(probe, weight, threads):
    """(dense, sparse) microseconds that the rates TRUE predict for this probe."""
    traits = calibration._traits(probe, weight)
    density = np.count_nonzero(weight) / weight.size
    dense = traits.weight_size * traits.output_positions / TRUE.dense_macs_per_us[probe.kind]
    base, slope = TRUE.efficiency[probe.kind]
    copy = traits.copied_input_elements * 4 / (TRUE.copy_gb_per_s * 1e3)
    if probe is calibration.CALL_PROBE:
        return 1.0, 1.0 + TRUE.sparse_call_us
    return dense, dense * density / (base + slope * density) + copy + TRUE.sparse_call_us


def test_the_fit_recovers_the_rates_it_was_timed_with(monkeypatch) -> None:
    monkeypatch.setattr(calibration, "_time_probe", _synthetic)
    ticks = []
    rates = calibration.calibrate(threads=1, tick=lambda: ticks.append(1))
    assert len(ticks) == 1 + 2 * len(calibration.PROBES)
    assert rates.sparse_call_us == pytest.approx(TRUE.sparse_call_us)
    for kind in KINDS:
        assert rates.dense_macs_per_us[kind] == pytest.approx(TRUE.dense_macs_per_us[kind], rel=1e-6)
        assert rates.efficiency[kind] == pytest.approx(TRUE.efficiency[kind], rel=1e-6, abs=1e-9)
    assert rates.machine == calibration.cpu_model() and rates.versions["onnxruntime"]


def test_a_real_calibration_gives_usable_rates() -> None:
    """Measured for real (a few seconds): every rate finite and positive, predictions too."""
    rates = calibration.calibrate(threads=1)
    assert all(v > 0 and math.isfinite(v) for v in rates.dense_macs_per_us.values())
    assert rates.sparse_call_us >= 0
    for kind in KINDS:
        traits = LayerTraits(8 if kind == "grouped" else 1, 4 if kind == "grouped" else 64, kind == "strided")
        if kind == "depthwise":
            traits = LayerTraits(64, 1, False)
        assert traits.kind == kind
        assert 0 < predicted_speedup(traits, 0.9, rates) < 1e3
    assert Rates.from_dict(json.loads(json.dumps(rates.to_dict()))) == rates


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d.pop("efficiency"), "KeyError"),
        (lambda d: d["dense_macs_per_us"].pop("grouped"), "KeyError"),
        (lambda d: d["dense_macs_per_us"].update(strided=-1.0), "finite and positive"),
        (lambda d: d["efficiency"].update(strided=[float("nan"), 0.1]), "finite and positive"),
        (lambda d: d.update(copy_gb_per_s="fast"), "ValueError"),
        (lambda d: d["efficiency"].update(strided=[0.1]), "IndexError"),
        (lambda d: d.update(densest=0.0), "finite and positive"),
        (lambda d: d.update(densest=1.5), "finite and positive"),
    ],
    ids=[
        "no_efficiency",
        "missing_kind",
        "negative_rate",
        "nan",
        "not_a_number",
        "short_pair",
        "densest_0",
        "densest_1.5",
    ],
)
def test_a_malformed_calibration_file_is_refused(tmp_path, edit, message) -> None:
    data = REFERENCE.to_dict()
    edit(data)
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        calibration.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        calibration.load(path)


def test_the_cache_is_used_and_a_broken_one_replaced(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setenv(calibration.CACHE_ENV, str(tmp_path))
    calls = []
    monkeypatch.setattr(calibration, "calibrate", lambda threads, tick: calls.append(threads) or TRUE)
    rates, where = calibration.this_machine(threads=2)
    assert calls == [2] and rates == TRUE and "calibrated now" in where
    path = calibration.cache_path(2)
    assert path.parent == tmp_path / "calibration" and "2t" in path.name and calibration.load(path) == TRUE
    rates, where = calibration.this_machine(threads=2)
    assert calls == [2] and "cached" in where  # not measured again
    path.write_text("garbage")
    with caplog.at_level("WARNING", logger="onnx_sparsify"):
        rates, _ = calibration.this_machine(threads=2)
    assert calls == [2, 2] and "ignoring the cached calibration" in caplog.text
    assert calibration.cache_path(1) != path


def test_predictions_follow_the_rates_and_count_partial_tiles() -> None:
    slow = dataclasses.replace(REFERENCE, efficiency={k: (0.01, 0.0) for k in KINDS})
    traits = LayerTraits(1, 64, False)
    assert decide(0.9, None, traits, rates=REFERENCE).rewrite
    slow_decision = decide(0.9, None, traits, rates=slow)
    assert not slow_decision.rewrite and slow_decision.predicted == pytest.approx(0.1)
    # The same 1x1 layer on a 56x56 and on a 7x7 output: the 7x7 fills 49 of a tile's positions.
    big, small = (LayerTraits(1, 64, False, 64 * 64, n * n, 0) for n in (56, 7))
    tile = onnx_sparsify._core.CPU_TILE_POSITIONS
    ratio = predicted_speedup(small, 0.9, dataclasses.replace(REFERENCE, sparse_call_us=0)) / predicted_speedup(
        big, 0.9, dataclasses.replace(REFERENCE, sparse_call_us=0)
    )
    assert ratio == pytest.approx((49 / tile) / (3136 / (math.ceil(3136 / tile) * tile)))


def test_the_cost_model_counts_the_padded_copy_where_the_kernel_makes_one() -> None:
    """The plane path (no copy) is the kernel's own rule, read through _core: a padded
    depthwise layer with few nonzeros copies nothing on a 32x32 plane (1024 positions, the
    threshold) and copies its padded input on a 31x31 one, whatever the batch."""
    weight = np.zeros((8, 1, 3, 3), np.float32)
    weight[:, 0, 1, 1] = 1.0  # 1 nonzero per channel
    for batch in (1, 4):
        big = layer_traits(weight, 8, [1, 1], [1, 1, 1, 1], False, [batch, 8, 32, 32], [batch, 8, 32, 32])
        small = layer_traits(weight, 8, [1, 1], [1, 1, 1, 1], False, [batch, 8, 31, 31], [batch, 8, 31, 31])
        assert big.copied_input_elements == 0 and small.copied_input_elements == 8 * 33 * 33  # per image
    assert onnx_sparsify._core.cpu_plane_path(True, 8, 8, 1024)
    assert not onnx_sparsify._core.cpu_plane_path(False, 8, 8, 1024)
    assert not onnx_sparsify._core.cpu_plane_path(True, 8 * 7, 8, 4096)


def test_a_calibration_file_from_another_machine_decides_without_timing_here(tmp_path, monkeypatch) -> None:
    elsewhere = dataclasses.replace(REFERENCE, machine="some other CPU")
    path = tmp_path / "target.json"
    calibration.save(elsewhere, path)
    model, report = onnx_sparsify.sparsify(_model(), calibration=path)
    assert report.rewritten == 2 and report.end_to_end is None
    assert "another machine (some other CPU)" in report.end_to_end_skipped
    assert str(path) in report.calibration
    slow = dataclasses.replace(elsewhere, efficiency={k: (0.01, 0.0) for k in KINDS})
    _, report = onnx_sparsify.sparsify(_model(), calibration=slow)
    assert report.rewritten == 0
    assert all(layer.code == Code.COST_MODEL and layer.predicted_speedup < MARGIN for layer in report.layers)


def test_the_commands(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv(calibration.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(calibration, "_time_probe", _synthetic)
    target = tmp_path / "rates.json"
    assert cli.calibrate_main(["-o", str(target), "-q"]) == cli.EXIT_OK
    assert calibration.load(target).dense_macs_per_us["strided"] == pytest.approx(30e3)
    assert calibration.cache_path(1).is_file()
    assert cli.calibrate_main(["-o", str(tmp_path), "-q"]) == cli.EXIT_OUTPUT  # a folder
    model = tmp_path / "m.onnx"
    onnx.save(_model(), model)
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    for given in (bad, tmp_path / "missing.json"):
        caplog.clear()
        code = cli.main([str(model), "-o", str(tmp_path / "out.onnx"), "--calibration", str(given), "-q"])
        assert code == cli.EXIT_USAGE
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and errors[0].startswith(f"--calibration {given}"), errors
    args = [str(model), "-o", str(tmp_path / "out.onnx"), "--calibration", str(target), "--no-measure", "-q"]
    assert cli.main(args) == cli.EXIT_OK


# This machine's calibration when issue 23 was filed (AMD EPYC, AVX-512, 1 thread), fitted at
# 90% and 70% zeros: extended to density 1, its lines predicted 2.07x (unit stride), 1.68x
# (strided) and 1.07x (grouped) for a Conv without a single zero.
FILED = Rates(
    efficiency={
        "unit stride": (0.396, 1.677),
        "strided": (0.691, 0.985),
        "depthwise": (0.174, 0.664),
        "grouped": (4.736, -3.669),
    },
    dense_macs_per_us={"unit stride": 54.4e3, "strided": 56.0e3, "depthwise": 21.3e3, "grouped": 11.4e3},
    sparse_call_us=0.0,
)
# The line through R1's measured speedups in README's table (3.24x at 90% zeros, 2.10x at 70%):
# efficiency 0.324 at density 0.1, 0.63 at 0.3.
R1_LINE = dataclasses.replace(REFERENCE, efficiency={k: (0.171, 1.53) for k in KINDS}, densest=0.3)
TRAITS = {
    "unit stride": LayerTraits(1, 64, False),
    "strided": LayerTraits(1, 64, True),
    "depthwise": LayerTraits(64, 1, False),
    "grouped": LayerTraits(32, 4, False),
}


@pytest.mark.parametrize("rates", [FILED, R1_LINE, REFERENCE], ids=["filed", "r1_line", "reference"])
def test_no_gain_is_predicted_without_zeros(rates: Rates) -> None:
    """Issue 23: at density 1 the sparse kernel does all the dense work, and calibration never
    measured it winning there, so no line may predict a gain; beyond the densest calibrated
    probe the time per nonzero stays at most what was measured (the sparse time scales with the
    nonzeros)."""
    for kind, traits in TRAITS.items():
        assert traits.kind == kind
        decision = decide(0.0, None, traits, rates=rates)
        assert decision.predicted <= 1.0 and not decision.rewrite, (kind, decision)
        at_edge = predicted_speedup(traits, 1.0 - rates.densest, rates) * rates.densest
        for density in (0.4, 0.5, 0.7, 0.9):
            assert predicted_speedup(traits, 1.0 - density, rates) * density <= at_edge * (1 + 1e-9), (kind, density)


def test_thirty_percent_zeros_is_not_predicted_a_gain_from_a_line_fitted_at_seventy() -> None:
    """R1's line gave 1.77x at 30% zeros by extrapolation; the measured efficiency at the
    densest probe (0.63 per nonzero) gives 0.63 / 0.7 = 0.9x."""
    traits = TRAITS["unit stride"]
    assert predicted_speedup(traits, 0.3, R1_LINE) == pytest.approx(0.63 / 0.7, rel=1e-6)
    assert not decide(0.3, None, traits, rates=R1_LINE).rewrite
    assert decide(0.9, None, traits, rates=R1_LINE).predicted == pytest.approx(0.324 / 0.1, rel=1e-6)


@pytest.mark.parametrize("sparsity, rates", [(0.0, FILED), (0.3, R1_LINE)], ids=["0%_filed", "30%_r1_line"])
def test_no_measure_rewrites_no_conv_too_dense_to_win(sparsity: float, rates: Rates) -> None:
    """--no-measure on a model with no zeros (this machine's calibration as filed; it rewrote 3
    of 4 dense Convs), and with 30% zeros under rates that measured 0.63 per nonzero at 70%
    zeros: the prediction alone rewrites nothing. (With the filed rates, 30% zeros is predicted
    0.899 / 0.7 = 1.28x for unit stride, and SparseConv does measure 1.2x to 1.6x faster there
    on that machine: a win, not an error of the model.)"""
    model = conv_relu_conv((32, 32, 64), sparsity, [1, 32, 32, 32], seed=1)
    _, report = onnx_sparsify.sparsify(model, calibration=rates, measure=False)
    assert report.rewritten == 0 and report.convs == 2
    assert all(layer.code == Code.COST_MODEL and layer.predicted_speedup < MARGIN for layer in report.layers)


def test_calibrate_prints_a_table_not_a_dict(tmp_path, monkeypatch, caplog) -> None:
    """onnx-sparsify-calibrate printed the raw Rates dict; now one row per kind of layer, with
    ORT's dense rate and the predicted speedups at the calibrated densities (TRUE's numbers)."""
    monkeypatch.setenv(calibration.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(calibration, "_time_probe", _synthetic)
    with caplog.at_level("INFO", logger="onnx_sparsify"):
        assert cli.calibrate_main([]) == cli.EXIT_OK
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "{" not in text and "'efficiency'" not in text
    rows = {line.split("  ")[0].strip(): line for line in text.splitlines() if line.startswith(KINDS)}
    assert sorted(rows) == sorted(KINDS)
    base, slope = TRUE.efficiency["unit stride"]
    speedups = " / ".join(f"{(base + slope * d) / d:.2f}x" for d in calibration.DENSITIES)
    assert "40.0 GMAC/s" in rows["unit stride"] and rows["unit stride"].endswith(speedups)


def test_a_calibration_file_from_before_densest_reads_as_calibrated_to_70_percent_zeros(tmp_path) -> None:
    data = FILED.to_dict()
    del data["densest"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert calibration.load(path) == dataclasses.replace(FILED, densest=max(calibration.DENSITIES))
