"""The per-layer report in a terminal: the wide table where it fits, a narrow one in 80 columns
whose cells wrap (never cut with an ellipsis), and predicted speedups printed with enough
digits that a rejected layer never reads "1.1x < 1.1x"."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from onnx_sparsify.decision import MARGIN, LayerTraits, decide, predicted_speedup, shown_speedup
from onnx_sparsify.report import LayerReport, Report, render
from onnx_sparsify.result import Code
from rich.console import Console

LONG = "/backbone/stage{0}/block_with_a_rather_long_name_{0}/conv2d_depthwise_separable/Conv"
REASONS = [
    (True, "89.9% zeros, strided: predicted 1.13x >= 1.1x"),
    (
        False,
        "55.0% zeros, unit stride: predicted 1.09x < 1.1x; a BatchNormalization that would give non-finite "
        "weights stays after the SparseConv",
    ),
    (False, "weight is not a float32 constant (it is computed by node 'backbone/very_long_stage_name/MatMul_0')"),
    (True, "93.1% zeros, autotune: dense 0.123 ms, sparse 0.045 ms"),
    (False, "kept dense (--keep)"),
]


def _report() -> Report:
    layers = [
        LayerReport(
            name=LONG.format(i),
            graph="main" if i < 2 else "Loop_0.body",
            weight_shape=[256, 128, 3, 3],
            input_shape=[1, 128, 56, 56],
            sparsity=None if i in (2, 4) else 0.899,
            nnz=None if i in (2, 4) else 33080,
            rewritten=rewritten,
            reason=reason,
            folded=["BatchNormalization", "Relu"] if rewritten else [],
            dense_bytes=1179648,
            csr_bytes=264804 if rewritten else 0,
        )
        for i, (rewritten, reason) in enumerate(REASONS)
    ]
    return Report(layers=layers, weight_bytes_before=5898240, weight_bytes_after=3000000, seconds=0.42)


def _render(width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    render(_report(), console)
    return console.export_text()


def _columns(text: str) -> dict[str, str]:
    """The narrow table's columns, each cell's wrapped lines joined (whitespace dropped): the
    column spans come from the header line."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(r"\s*layer\s+weight\s+decision\s+reason", line))
    header = lines[at]
    names = header.split()
    starts = [header.index(name) for name in names]
    spans = dict(zip(names, zip(starts, [*starts[1:], None])))
    body = [line for line in lines[at + 2 :] if not line.startswith("Convs rewritten")]
    return {name: "".join("".join(line[a:b].split()) for line in body) for name, (a, b) in spans.items()}


@pytest.mark.parametrize("width", [80, 100])
def test_narrow_terminal_lines_fit_and_nothing_is_cut(width):
    text = _render(width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert "…" not in text, text  # rich's ellipsis: no cell is cut
    columns = _columns(text)
    for i, (_, reason) in enumerate(REASONS):
        name = LONG.format(i) if i < 2 else f"Loop_0.body/{LONG.format(i)}"
        assert name in columns["layer"], name  # every name and reason whole: wrapped, not cut
        assert "".join(reason.split()) in columns["reason"], reason
    assert columns["decision"] == "SparseConv+BN+Reludensedense" + "SparseConv+BN+Reludense"
    assert columns["weight"] == "256x128x3x3" * len(REASONS)
    assert len(lines) < 60, text  # a few lines per layer, not one word per line


def test_wide_terminal_keeps_every_column_on_one_line_per_layer():
    text = _render(400)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 400
    header = next(line for line in lines if "┃ layer" in line)
    for column in ("input", "weight", "group", "zeros", "nnz", "decision", "dense", "CSR", "reason"):
        assert column in header
    for i, (_, reason) in enumerate(REASONS):
        assert any(LONG.format(i) in line and reason in line for line in lines), reason
    assert "+BatchNormalization+Relu" in text


def test_log_files_get_the_wide_table(monkeypatch):
    """A console that is not a terminal and whose width nobody chose (a pipe, a log file) gets
    the wide table."""
    monkeypatch.delenv("COLUMNS", raising=False)
    buffer = io.StringIO()
    render(_report(), Console(file=buffer))
    assert any(LONG.format(0) in line and REASONS[0][1] in line for line in buffer.getvalue().splitlines())


def test_predicted_speedup_never_prints_equal_to_the_margin_when_rejected():
    traits = LayerTraits(1, 64, False)
    crossing = None
    for sparsity in np.linspace(0.3, 0.99, 20001):
        decision = decide(float(sparsity), None, traits)
        assert decision.code == Code.COST_MODEL and decision.rewrite == (decision.predicted >= MARGIN)
        shown = shown_speedup(decision.predicted)
        assert shown <= decision.predicted and f"predicted {shown:.2f}x" in decision.reason
        if decision.rewrite:
            assert shown >= MARGIN and ">=" in decision.reason
        else:
            assert shown < MARGIN and f"{shown:.2f}x < {MARGIN}x" in decision.reason, decision.reason
            crossing = sparsity
    assert crossing is not None and predicted_speedup(traits, float(crossing)) < MARGIN


def test_a_model_kept_dense_reports_what_was_measured_not_a_rewritten_time():
    """Issue 23: "original 356.976 ms, rewritten 356.976 ms: kept dense: the rewrite measured
    2.03x": the line now gives the fastest rewrite's time, and that the original was written."""
    from onnx_sparsify.end_to_end import EndToEnd

    e2e = EndToEnd(1, {"x": [1, 3, 64, 64]}, original_ms=356.976, rewritten_ms=356.976, best_ms=175.85)
    e2e.verdict = "kept dense: the rewrite measured 2.03x the original's speed but lost 1 of 5 timing rounds"
    console = Console(width=300, record=True, file=io.StringIO())
    render(Report(end_to_end=e2e), console)
    [line] = [line for line in console.export_text().splitlines() if line.startswith("end to end")]
    assert "rewritten 356.976" not in line
    assert "original 356.976 ms, fastest rewrite measured 175.850 ms: kept dense" in line
    assert "the model written is the original" in line
    e2e.kept, e2e.rewritten_ms, e2e.verdict = True, 175.85, "2.03x faster than the original, measured"
    console = Console(width=300, record=True, file=io.StringIO())
    render(Report(end_to_end=e2e), console)
    assert "original 356.976 ms, rewritten 175.850 ms: 2.03x faster" in console.export_text()
