"""What the rewriter did, layer by layer: a data object, its JSON form and a terminal table."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .result import Refusal
from .shapes import known_size


@dataclass
class LayerReport:
    name: str
    graph: str  # "main", or the path to a subgraph / function
    weight_shape: list[int]
    input_shape: list[int | str] | None = None
    kernel: list[int] = field(default_factory=list)
    strides: list[int] = field(default_factory=list)
    group: int = 1
    sparsity: float | None = None
    nnz: int | None = None
    rewritten: bool = False
    reason: str = ""  # the decision's message, then the notes' (joined with "; ")
    code: str = ""  # who decided, or why it cannot be rewritten (result.Code)
    # The nodes after the Conv that stayed in the graph, and why (in the reason too).
    notes: list[Refusal] = field(default_factory=list)
    # What was folded in, in order: e.g. ["BatchNormalization", "Mul", "residual", "Relu"]
    # (BatchNormalization, Mul/Add/Sub/Div by constants, a residual Add, epilogue steps).
    folded: list[str] = field(default_factory=list)
    dense_bytes: int = 0
    csr_bytes: int = 0
    predicted_speedup: float | None = None  # the cost model's, where it made one
    # --autotune's median times of the layer alone, dense (ORT's Conv) and sparse, where it timed it.
    autotune_dense_ms: float | None = None
    autotune_sparse_ms: float | None = None
    dense_us_estimate: float | None = None  # ORT's dense Conv by this machine's rates (sizes known)
    # Measured in the model by the end-to-end check (end_to_end.py): SparseConv's time with the
    # layout conversions it caused, and the dense estimate over it.
    measured_us: float | None = None
    measured_speedup: float | None = None


@dataclass
class CheckResult:
    passed: bool
    tolerance: float
    sensitivity: float  # the original model's own float32 spread (optimized vs not)
    worst_output: str
    worst_error: float  # relative L2, rewritten vs reference
    errors: dict[str, float]
    pruning_drift: dict[str, float] | None = None  # pruned vs original model, when pruned


@dataclass
class Report:
    layers: list[LayerReport] = field(default_factory=list)
    weight_bytes_before: int = 0
    weight_bytes_after: int = 0
    seconds: float = 0.0
    pruned_to: float | None = None
    check: CheckResult | None = None
    calibration: str = ""  # where the cost model's rates come from
    end_to_end: Any = None  # end_to_end.EndToEnd when the model was timed
    end_to_end_skipped: str = ""  # why it was not, when it was not

    @property
    def convs(self) -> int:
        return len(self.layers)

    @property
    def rewritten(self) -> int:
        return sum(layer.rewritten for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.end_to_end is not None:
            data["end_to_end"]["speedup"] = self.end_to_end.speedup
            data["end_to_end"]["measured_speedup"] = self.end_to_end.measured_speedup
        data["totals"] = {
            "convs": self.convs,
            "rewritten": self.rewritten,
            "weight_bytes_before": self.weight_bytes_before,
            "weight_bytes_after": self.weight_bytes_after,
            "seconds": self.seconds,
        }
        return data

    def to_json(self) -> str:
        """The report as JSON. JSON has no infinity or NaN: such numbers (a check error is
        infinite when the rewritten model's output has NaNs the reference's has not, or another
        shape) are written as null."""
        return json.dumps(_finite_or_null(self.to_dict()), indent=2, allow_nan=False, default=str)


def _finite_or_null(value: Any) -> Any:
    """`value` with every non-finite float, however deeply nested, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _dims(dims: list | None) -> str:
    if dims is None:
        return "?"
    return "x".join(str(d) if known_size(d) else "?" for d in dims)


# Short names for folded ops in the narrow table.
_SHORT = {"BatchNormalization": "BN"}


def _layer_name(layer: LayerReport) -> str:
    return layer.name if layer.graph == "main" else f"{layer.graph}/{layer.name}"


def _decision(layer: LayerReport, short: bool) -> str:
    decision = "[green]SparseConv[/green]" if layer.rewritten else "[yellow]dense[/yellow]"
    if layer.rewritten and layer.folded:
        decision += " +" + "+".join(_SHORT.get(f, f) if short else f for f in layer.folded)
    return decision


def _speedup(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _zeros(layer: LayerReport) -> str:
    return "-" if layer.sparsity is None else f"{layer.sparsity:.1%}"


def _wide_table(report: Report):
    """Every column, one line per layer: for wide terminals and log files."""
    from rich.table import Table

    table = Table(title="onnx-sparsify: Conv layers", title_justify="left", show_lines=False)
    columns = ("layer", "input", "weight", "group", "zeros", "nnz", "decision", "predicted", "measured", "dense", "CSR")
    for column in (*columns, "reason"):
        right = column in ("group", "zeros", "nnz", "predicted", "measured", "dense", "CSR")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for layer in report.layers:
        table.add_row(
            _layer_name(layer),
            _dims(layer.input_shape),
            _dims(layer.weight_shape),
            str(layer.group),
            _zeros(layer),
            "-" if layer.nnz is None else str(layer.nnz),
            _decision(layer, short=False),
            _speedup(layer.predicted_speedup),
            _speedup(layer.measured_speedup),
            _size(layer.dense_bytes),
            _size(layer.csr_bytes) if layer.rewritten else "-",
            layer.reason,
        )
    return table


def _narrow_table(report: Report):
    """The columns that explain the decision (layer, weight, decision, reason), names and reasons
    wrapped, never cut: for terminals the wide table does not fit (80 columns). The JSON report
    has every field."""
    from rich import box
    from rich.table import Table

    table = Table(
        title="onnx-sparsify: Conv layers",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        leading=1,  # a blank line between layers, whose cells wrap over several lines
    )
    table.add_column("layer", overflow="fold", ratio=3, min_width=8)
    table.add_column("weight", overflow="fold")
    table.add_column("decision", overflow="fold", min_width=10, max_width=12)
    table.add_column("reason", overflow="fold", ratio=4, min_width=16)
    for layer in report.layers:  # the reason starts with the fraction of zeros
        table.add_row(_layer_name(layer), _dims(layer.weight_shape), _decision(layer, short=True), layer.reason)
    return table


def _end_to_end_line(e2e: Any) -> str:
    """What the end-to-end check measured: the original's time and the rewrite's; when the model
    was kept dense, the fastest rewrite measured, not a "rewritten" time (the model written is
    the original)."""
    shapes = ", ".join(f"{k} {_dims(v)}" for k, v in e2e.inputs.items())
    head = f"end to end ({e2e.threads} thread(s), {shapes}): original {e2e.original_ms:.3f} ms, "
    took = f" (check took {e2e.seconds:.1f} s)"
    if not e2e.kept:
        best = f"fastest rewrite measured {e2e.best_ms:.3f} ms" if e2e.best_ms else "rewrite not timed"
        return f"{head}{best}: {e2e.verdict}; the model written is the original{took}"
    reverted = f"; {len(e2e.reverted)} layer(s) reverted as measured slower" if e2e.reverted else ""
    return f"{head}rewritten {e2e.rewritten_ms:.3f} ms: {e2e.verdict}{reverted}{took}"


def render(report: Report, console=None, verbose: bool = False) -> None:
    """Prints the per-layer table and the totals with rich: every column when they fit the
    console's width, else a narrow table (layer, weight, decision, reason) whose cells wrap
    rather than being cut."""
    from rich.console import Console
    from rich.measure import Measurement

    console = console or Console(stderr=True)
    if not console.is_terminal and getattr(console, "_width", None) is None and "COLUMNS" not in os.environ:
        console.width = max(console.width, 200)  # a log file or pipe: no reason to wrap the table
    table = _wide_table(report)
    if Measurement.get(console, console.options.update_width(100_000), table).maximum > console.width:
        table = _narrow_table(report)
    if report.layers:
        console.print(table)
    console.print(
        f"Convs rewritten: {report.rewritten} of {report.convs}; "
        f"weights {_size(report.weight_bytes_before)} -> {_size(report.weight_bytes_after)}; "
        f"{report.seconds:.2f} s"
    )
    if report.calibration:
        console.print(f"rates: {report.calibration}")
    e2e = report.end_to_end
    if e2e is not None:
        console.print(_end_to_end_line(e2e))
    elif report.end_to_end_skipped:
        console.print(f"end to end: {report.end_to_end_skipped}")
    if report.check is not None:
        c = report.check
        verdict = "[green]passed[/green]" if c.passed else "[red]FAILED[/red]"
        console.print(
            f"check {verdict}: worst output '{c.worst_output}' relative L2 error {c.worst_error:.2e} "
            f"(tolerance {c.tolerance:.2e}; the model's own float32 spread {c.sensitivity:.2e})"
        )
        if c.pruning_drift:
            worst = max(c.pruning_drift, key=c.pruning_drift.get)
            console.print(
                f"pruning moved the outputs: '{worst}' relative L2 {c.pruning_drift[worst]:.2e} from the original "
                "(accuracy changes: evaluate the pruned model on real data)"
            )
