"""The rewrite, sparsify(): each eligible, profitable Conv (with what follows it folded in)
becomes a SparseConv whose weight is CSR. Convs in subgraphs (If / Loop / Scan bodies) and in
model-local functions are visited too; every Conv left dense has a reason.

The pipeline reads plan -> decide -> emit -> measure: planning.py plans each Conv (eligibility,
folding) and decides it (decision.py's cost model over this machine's rates, or autotune),
emit.py writes the graph, end_to_end.py times the result and reverts what loses.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import onnx

from . import end_to_end
from .autotune import cuda_unavailable_reason
from .calibration import load as load_calibration
from .calibration import same_machine, this_machine
from .check import CheckError, random_feeds, unknown_inputs, validate_input_shapes
from .context import Context, known_shapes
from .decision import REFERENCE, Decision, Rates
from .emit import all_convs, rewrite_model
from .end_to_end import LayerKey
from .graph_checks import check_acyclic
from .graph_walk import all_graphs
from .model_io import cap_ir_version, check_opsets, load_model, tensor_bytes
from .pruning import prune_convs
from .report import Report
from .result import Code

log = logging.getLogger(__name__)


def _warn_unmatched_keep(model: onnx.ModelProto, keep: frozenset[str]) -> None:
    names = {name for n in all_convs(model) for name in (n.name, n.output[0] if n.output else "") if name}
    for name in sorted(keep - names):
        log.warning("keep: no Conv node is named '%s' (nor has it as its first output); nothing kept for it", name)


def _warn_autotune(model: onnx.ModelProto, ctx: Context, input_shapes: dict[str, list[int]]) -> None:
    """Says why --autotune timed fewer layers than it was asked to."""
    if not ctx.autotune:
        return
    if ctx.min_sparsity is not None:
        log.warning("autotune: nothing timed, the min_sparsity threshold decides")
    elif ctx.provider == "cuda" and ctx.cuda_unavailable:
        log.warning("autotune: nothing timed on CUDA (%s); Convs stay dense", ctx.cuda_unavailable)
    elif ctx.autotune_skipped:
        unknown = unknown_inputs(model, input_shapes)
        why = f"the model's input {', '.join(unknown)} has unknown sizes" if unknown else "shape inference lost them"
        log.warning(
            "autotune: %d of %d Convs fell back to the cost model because their input sizes are unknown (%s); "
            "fix the inputs' sizes with --input-shape NAME:DIMS",
            ctx.autotune_skipped,
            ctx.report.convs,
            why,
        )


def sparsify(
    model: onnx.ModelProto | str | os.PathLike,
    *,
    min_sparsity: float | None = None,
    keep: Iterable[str] = (),
    prune: float | None = None,
    index_dtype: type = np.int32,
    autotune: bool = False,
    input_shapes: dict[str, list[int]] | None = None,
    provider: str = "cpu",
    progress: Callable[..., Callable[[], None]] | None = None,
    calibration: Rates | str | os.PathLike | None = None,
    measure: bool = True,
    threads: int = 1,
    sample_inputs: Mapping[str, np.ndarray] | None = None,
    timed: bool = False,
) -> tuple[onnx.ModelProto, Report]:
    """Rewrites a model's sparse Convs to SparseConv.

    ``model`` is a ModelProto (never modified) or a path. ``min_sparsity`` overrides the default
    profitability decision (0 rewrites every eligible Conv); ``keep`` names Conv nodes to leave
    dense; ``prune`` first magnitude-prunes each eligible Conv weight to that sparsity (which
    changes the model's accuracy). ``input_shapes`` fixes graph inputs' unknown sizes (for the
    cost model, ``autotune`` and the end-to-end check); a name that is no input, a wrong rank, a
    size below 1 or one contradicting a declared size raises ValueError. Returns the new model
    and a per-layer report.

    The default decision (no ``min_sparsity``, CPU) predicts each layer with this machine's
    rates (``calibration``: Rates, the path of a file calibration.save() wrote, or None for this
    machine's, measured once and cached), then, with ``measure``, times the original and the
    rewritten model end to end with ``threads`` intra-op threads on ``sample_inputs`` (default:
    random inputs of the resolved shapes, an unknown batch as 1: shapes.resolve_shape), reverts the layers measured
    slower than their dense Conv and keeps the model dense unless the rewrite is measured faster
    (end_to_end.py). Where the model cannot be timed (an input size unknown), it stays dense and
    the report says why; ``measure=False`` trusts the cost model alone. With ``min_sparsity``
    (which decides instead), ``timed`` and ``measure`` still time the rewritten model against the
    original on the CPU for the report (report.end_to_end), reverting nothing.

    A model ONNX Runtime would refuse to load, in a node the rewrite reads (a Conv, or a
    BatchNormalization or activation after one), raises MalformedModelError (a ModelLoadError)
    naming the node. A BatchNormalization, a Mul/Add/Sub/Div by a constant or an activation that
    cannot fold exactly stays in the graph, the reason in its Conv's report.
    """
    start = time.perf_counter()
    if isinstance(model, onnx.ModelProto):
        source = model
    else:
        source = load_model(model).model
    check_opsets(source)
    check_acyclic(source)
    if min_sparsity is not None and not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be within [0, 1], got {min_sparsity}")
    if provider not in ("cpu", "cuda"):
        raise ValueError(f"provider must be 'cpu' or 'cuda', got {provider!r}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    validate_input_shapes(source, input_shapes or {})
    if sample_inputs:
        input_shapes = {**(input_shapes or {}), **{k: list(np.shape(v)) for k, v in sample_inputs.items()}}
        validate_input_shapes(source, input_shapes)
    keep = frozenset(keep)
    _warn_unmatched_keep(source, keep)
    report = Report()
    pruned = source
    if prune is not None:
        pruned, _ = prune_convs(source, prune, keep)
        report.pruned_to = prune
    default_cpu = min_sparsity is None and provider == "cpu"
    rates = _rates(calibration, threads, progress, report) if default_cpu else REFERENCE
    shapes = known_shapes(pruned, input_shapes)
    inferred_shapes = known_shapes(pruned, input_shapes, declared=False)
    memo: dict[LayerKey, Decision] = {}

    def rewrite(reverted: Mapping[LayerKey, str], report: Report) -> tuple[onnx.ModelProto, Context]:
        ctx = Context(
            min_sparsity,
            keep,
            index_dtype,
            shapes,
            report,
            _names(pruned),
            autotune=autotune,
            provider=provider,
            cuda_unavailable=cuda_unavailable_reason() if autotune and provider == "cuda" else None,
            inferred_shapes=inferred_shapes,
            rates=rates,
            threads=threads,
            memo=memo,
            reverted=reverted,
        )
        if progress is not None and not memo:
            ctx.tick = progress(sum(1 for _ in all_convs(pruned)))
        return rewrite_model(pruned, ctx), ctx

    out, ctx = rewrite({}, report)
    _warn_autotune(source, ctx, input_shapes or {})
    if default_cpu and report.rewritten:
        if not measure:
            report.end_to_end_skipped = "not measured (measure=False): the cost model alone decided"
        elif calibration is not None and not same_machine(rates):
            report.end_to_end_skipped = f"not measured: the calibration is from another machine ({rates.machine})"
        else:
            out, report = _measure(pruned, out, ctx, rewrite, sample_inputs, input_shapes or {}, threads)
    elif timed and measure and min_sparsity is not None and provider == "cpu" and report.rewritten:
        _time_only(pruned, out, report, sample_inputs, input_shapes or {}, threads)
    report.weight_bytes_before = tensor_bytes(source)
    report.weight_bytes_after = tensor_bytes(out)
    report.seconds = time.perf_counter() - start
    return out, report


def _names(model: onnx.ModelProto) -> set[str]:
    names = {v for g in all_graphs(model) for n in g.node for v in [*n.input, *n.output]}
    return names | {t.name for g in all_graphs(model) for t in g.initializer}


def _rates(
    calibration: Rates | str | os.PathLike | None,
    threads: int,
    progress: Callable[..., Callable[[], None]] | None,
    report: Report,
) -> Rates:
    """The cost model's rates: given, read from a file, or this machine's (cached or measured)."""
    if isinstance(calibration, Rates):
        report.calibration = f"given: {calibration.machine}"
        return calibration
    if calibration is not None:
        rates = load_calibration(calibration)  # OSError, ValueError: the caller's to report
        report.calibration = f"{os.fspath(calibration)}: {rates.machine}, {rates.threads} thread(s)"
        return rates
    rates, where = this_machine(threads, progress)
    report.calibration = f"{where}: {rates.machine}, {threads} thread(s)"
    return rates


def _measure(
    pruned: onnx.ModelProto,
    first: onnx.ModelProto,
    ctx: Context,
    rewrite: Callable[[Mapping[LayerKey, str], Report], tuple[onnx.ModelProto, Context]],
    sample_inputs: Mapping[str, np.ndarray] | None,
    input_shapes: Mapping[str, list[int]],
    threads: int,
) -> tuple[onnx.ModelProto, Report]:
    """The end-to-end check (end_to_end.py) of the first rewrite; returns the model to keep and
    its report."""
    report = ctx.report
    try:
        feeds = random_feeds(pruned, input_shapes, given=sample_inputs)
    except CheckError as e:
        why = f"kept dense: the model cannot be timed to show a gain ({e}; or trust the cost model: --no-measure)"
        return _all_dense(pruned, report, why)
    estimates = {(layer.graph, layer.name): layer.dense_us_estimate for layer in report.layers}
    revised: dict[str, Report] = {}

    def again(reverted: Mapping[LayerKey, str]) -> onnx.ModelProto:
        revised["report"] = Report(pruned_to=report.pruned_to, calibration=report.calibration)
        return rewrite(reverted, revised["report"])[0]

    try:
        kept, result, reverted, costs = end_to_end.check(pruned, again, first, ctx.outputs, estimates, feeds, threads)
    except end_to_end.NotMeasurable as e:
        return _all_dense(pruned, report, f"kept dense: {e}")
    measured = {c.key: c for c in costs}
    if reverted and kept is not None:
        report = revised["report"]
    for layer in report.layers:
        cost = measured.get((layer.graph, layer.name))
        if cost is not None:
            layer.measured_us = cost.sparse_us + cost.reorder_us
            layer.measured_speedup = cost.speedup
            if layer.rewritten and cost.speedup is not None and cost.speedup < 1.0:
                layer.reason += (
                    "; kept although slower than its dense Conv in place: the model with it reverted was timed "
                    "and was not faster"
                )
    report.end_to_end = result
    if kept is None:
        return _all_dense(pruned, report, result.verdict)
    log.info("end to end: %s", result.verdict)
    return kept, report


def _time_only(
    pruned: onnx.ModelProto,
    out: onnx.ModelProto,
    report: Report,
    sample_inputs: Mapping[str, np.ndarray] | None,
    input_shapes: Mapping[str, list[int]],
    threads: int,
) -> None:
    """Times a rewrite the min_sparsity threshold decided against the original, for the report."""
    try:
        feeds = random_feeds(pruned, input_shapes, given=sample_inputs)
        report.end_to_end = end_to_end.time_only(pruned, out, feeds, threads, "--min-sparsity")
    except (CheckError, end_to_end.NotMeasurable) as e:
        report.end_to_end_skipped = f"not timed ({e})"  # the report says it; min_sparsity decided anyway
        log.info("end to end: %s", report.end_to_end_skipped)


def _all_dense(pruned: onnx.ModelProto, report: Report, why: str) -> tuple[onnx.ModelProto, Report]:
    """The pruned model unrewritten, each layer the plan had rewritten now dense with `why`."""
    log.warning("%s", why)
    for layer in report.layers:
        if layer.rewritten:
            layer.rewritten, layer.folded, layer.csr_bytes = False, [], 0
            layer.reason = f"{layer.reason}; the model kept dense (end to end)"
            layer.code = Code.KEPT_DENSE
    if report.end_to_end is None:
        report.end_to_end_skipped = why
    out = onnx.ModelProto()
    out.CopyFrom(pruned)
    cap_ir_version(out)
    return out, report
