"""The end-to-end check: what the rewrite keeps is measured on this machine, not predicted.

After the cost model's plan, the original and the rewritten model run on this machine's ONNX
Runtime, with every graph optimization, on random inputs of the resolved shapes (declared
sizes, ``input_shapes``, an unknown batch as 1: shapes.resolve_shape), in alternating blocks (timing.py). ORT's
profiler then times each SparseConv in the rewritten model, plus the layout conversions
(ReorderInput/ReorderOutput) ORT put next to it because it left its NCHWc Conv chain; a
layer costing more than its dense Conv's estimate is reverted (the estimate is this machine's
calibrated rate, scaled so that the model's dense Convs sum to what the profiler measured for
them). The plan (and the plan with those layers reverted) is then timed against the original in
paired, interleaved rounds (speedup_stats.py), more rounds until the speedup's confidence interval
lies wholly at or above MODEL_MARGIN (kept) or below it, or until the timing budget ends; unless
it shows the rewrite at least MODEL_MARGIN faster, every layer is reverted: the default rewrite
never makes a model slower, and an undecided measurement keeps the original, the safer plan.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ._contract import DOMAIN, OP_TYPE
from .graph_walk import all_graphs
from .speedup_stats import MIN_ROUNDS, Interval, Sampled, sample_until_decided, speedup_interval

log = logging.getLogger(__name__)

# The rewritten model must be this much faster than the original: the low end of the speedup's
# confidence interval (speedup_stats.py) must reach it. A 0.24 ms model (Silero VAD) measured 1.07x
# over 3 rounds in the check and 0.93x in the suite's timing right after; a 2x rewrite on a busy
# machine lost 1 of 5 rounds: single rounds decide nothing, the interval over many does.
MODEL_MARGIN = 1.03
PROFILE_RUNS = 5
_DENSE_CONV_OPS = ("Conv", "FusedConv")
_REORDERS = ("ReorderInput", "ReorderOutput")

LayerKey = tuple[str, str]  # (graph path, layer name), as the report names a layer


class NotMeasurable(Exception):
    """The model cannot be timed here (an input's size is unknown, or it fails to run)."""


@dataclass
class LayerCost:
    """One rewritten layer as measured in the model: SparseConv's time and its share of the
    layout conversions next to it, against the dense Conv's estimate (microseconds per run)."""

    key: LayerKey
    sparse_us: float
    reorder_us: float
    dense_us: float | None  # None: the layer's sizes are unknown, so no estimate

    @property
    def speedup(self) -> float | None:
        total = self.sparse_us + self.reorder_us
        return self.dense_us / total if self.dense_us is not None and total > 0 else None


@dataclass
class EndToEnd:
    """What the check measured and did, for the report."""

    threads: int
    inputs: dict[str, list[int]]
    original_ms: float = 0.0
    rewritten_ms: float = 0.0  # the model as written (the original's time when all was reverted)
    first_ms: float | None = None  # the cost model's plan, before reverting layers
    reverted: list[str] = field(default_factory=list)  # layers reverted by measurement
    verdict: str = ""  # the report's sentence; the fields below are what it says
    seconds: float = 0.0
    kept: bool = False  # whether the rewrite was kept (else the model stays dense)
    best_ms: float | None = None  # the fastest rewrite measured (kept or not)
    rounds: int = 0  # the paired rounds the models were timed in
    rounds_lost: int = 0  # those in which the fastest rewrite was not faster than the original
    speedup_low: float | None = None  # the fastest rewrite's speedup interval (original / rewrite)
    speedup_high: float | None = None
    confidence: float | None = None  # the interval's (two-sided)
    decision: str = ""  # the interval against MODEL_MARGIN: 'keep', 'reject' or 'undecided'

    @property
    def speedup(self) -> float:
        """The model as written against the original (1.0 when it stays dense)."""
        return self.original_ms / self.rewritten_ms if self.rewritten_ms else 1.0

    @property
    def measured_speedup(self) -> float | None:
        """The fastest rewrite measured against the original, kept or not."""
        return self.original_ms / self.best_ms if self.best_ms else None


def losers(costs: Iterable[LayerCost]) -> list[LayerKey]:
    """The layers whose measured cost, layout conversions included, is not below their dense
    Conv's estimate. A layer without an estimate is kept: the model-level timing decides."""
    return [c.key for c in costs if c.speedup is not None and c.speedup < 1.0]


def dense_scale(dense_conv_us: float, estimates: Iterable[float | None]) -> float:
    """The factor that makes the per-layer dense estimates sum to the dense Convs' measured time
    (1 when some Conv has no estimate or nothing was measured)."""
    values = list(estimates)
    if not values or any(v is None for v in values) or dense_conv_us <= 0:
        return 1.0
    total = float(sum(values))  # type: ignore[arg-type]
    return dense_conv_us / total if total > 0 else 1.0


def label_sparse_nodes(model: onnx.ModelProto, outputs: Mapping[str, LayerKey]) -> dict[str, LayerKey]:
    """Gives each SparseConv whose output is in `outputs` a unique name (the profiler names
    events by node) and returns name -> layer. Modifies `model`, a copy made for measuring."""
    labels = {}
    for graph in all_graphs(model):
        for node in graph.node:
            if node.op_type == OP_TYPE and node.domain == DOMAIN and node.output and node.output[0] in outputs:
                node.name = f"onnx_sparsify_layer_{len(labels)}"
                labels[node.name] = outputs[node.output[0]]
    return labels


def _profile(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], plugin: bool, threads: int, folder: str, tag: str
) -> tuple[dict[str, tuple[str, float]], onnx.ModelProto]:
    """Node name -> (op, microseconds per run) from ORT's profiler, and the optimized model."""
    import onnxruntime as ort

    from .timing import BoundRun, make_session

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(folder, tag)
    options.optimized_model_filepath = os.path.join(folder, f"{tag}.optimized.onnx")
    session = make_session(model, plugin, threads, options=options)
    run = BoundRun(session, feeds)
    for _ in range(PROFILE_RUNS):
        run()
    events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, list] = defaultdict(lambda: ["", 0.0])
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            entry = times[name[: -len("_kernel_time")]]
            entry[0] = event.get("args", {}).get("op_name", "")
            entry[1] += event["dur"] / (PROFILE_RUNS + 1)  # BoundRun runs once to bind
    optimized = onnx.load(options.optimized_model_filepath, load_external_data=False)
    return {k: (v[0], v[1]) for k, v in times.items()}, optimized


def _served_layers(
    start: onnx.NodeProto, downstream: bool, producer: Mapping, readers: Mapping, labels: Mapping[str, LayerKey]
) -> list[LayerKey]:
    """The labelled SparseConvs reached from `start`, down or up the graph, through nodes that are
    not Convs or other reorders."""
    found, seen, todo = [], set(), [start]
    while todo:
        node = todo.pop()
        if downstream:
            nexts = [r for o in node.output for r in readers.get(o, [])]
        else:
            nexts = [producer[i] for i in node.input if i in producer]
        for n in nexts:
            if id(n) in seen:
                continue
            seen.add(id(n))
            if n.name in labels:
                found.append(labels[n.name])
            elif "Conv" not in n.op_type and n.op_type not in _REORDERS:
                todo.append(n)
    return found


def attribute_reorders(optimized: onnx.ModelProto, labels: Mapping[str, LayerKey]) -> dict[str, list[LayerKey]]:
    """Reorder node name -> the layers it serves: a ReorderOutput (NCHWc to NCHW) whose result
    reaches SparseConvs, a ReorderInput (back to NCHWc) fed from them, through nodes that are
    not Convs (Add, Concat, activations...)."""
    served: dict[str, list[LayerKey]] = {}
    for graph in all_graphs(optimized):
        producer = {o: n for n in graph.node for o in n.output}
        readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in graph.node:
            for i in n.input:
                readers[i].append(n)
        for node in graph.node:
            if node.op_type in _REORDERS:
                layers = _served_layers(node, node.op_type == "ReorderOutput", producer, readers, labels)
                if layers:
                    served[node.name] = layers
    return served


def layer_costs(
    sparse_profile: Mapping[str, tuple[str, float]],
    optimized: onnx.ModelProto,
    labels: Mapping[str, LayerKey],
    dense_estimates: Mapping[LayerKey, float | None],
    scale: float,
) -> list[LayerCost]:
    """Per rewritten layer: its SparseConv's measured time, its share of the reorders serving it,
    and its dense estimate times `scale`."""
    reorder_us: dict[LayerKey, float] = defaultdict(float)
    for name, layers in attribute_reorders(optimized, labels).items():
        for key in layers:
            reorder_us[key] += sparse_profile.get(name, ("", 0.0))[1] / len(layers)
    costs = []
    for name, key in labels.items():
        if name not in sparse_profile:
            continue  # not run: a branch of an If these inputs did not take
        estimate = dense_estimates.get(key)
        costs.append(
            LayerCost(key, sparse_profile[name][1], reorder_us[key], estimate * scale if estimate is not None else None)
        )
    return costs


def model_rounds(
    original: onnx.ModelProto, candidates: Iterable[onnx.ModelProto], feeds: Mapping[str, np.ndarray], threads: int
) -> Iterator[list[float]]:
    """Endless paired rounds of the original and each candidate (with the plugin), timed one after
    the other in alternating blocks: each round yields every model's median (ms), the original
    first."""
    from .timing import BoundRun, alternating_rounds, make_session

    def maker(data: bytes, plugin: bool):
        return lambda: BoundRun(make_session(data, plugin, threads), feeds)

    makers = [maker(original.SerializeToString(), False)]
    makers += [maker(m.SerializeToString(), True) for m in candidates]
    for blocks in alternating_rounds(makers, block_s=0.1):
        yield [statistics.median(b) for b in blocks]


def time_models(
    original: onnx.ModelProto, candidates: Iterable[onnx.ModelProto], feeds: Mapping[str, np.ndarray], threads: int
) -> Sampled:
    """The original and each candidate timed in paired rounds until the fastest candidate's
    speedup interval decides against MODEL_MARGIN, or the budget ends (speedup_stats.py)."""
    rounds = model_rounds(original, candidates, feeds, threads)  # no session lives between rounds
    return sample_until_decided(lambda: next(rounds), MODEL_MARGIN, time.perf_counter)


def rounds_lost(original: list[float], candidate: list[float]) -> int:
    """The timing rounds in which `candidate` was not faster than `original`."""
    return sum(o <= c for o, c in zip(original, candidate))


def _record(result: EndToEnd, interval: Interval, original: list[float], best: list[float]) -> None:
    """The measurement's figures in `result`: medians over the rounds, the interval."""
    result.original_ms, result.best_ms = statistics.median(original), statistics.median(best)
    result.rounds, result.rounds_lost = interval.rounds, rounds_lost(original, best)
    result.speedup_low, result.speedup_high, result.confidence = interval.low, interval.high, interval.confidence


def check(
    original: onnx.ModelProto,
    rewrite: Callable[[Mapping[LayerKey, str]], onnx.ModelProto],
    first: onnx.ModelProto,
    outputs: Mapping[str, LayerKey],
    dense_estimates: Mapping[LayerKey, float | None],
    feeds: Mapping[str, np.ndarray],
    threads: int,
) -> tuple[onnx.ModelProto | None, EndToEnd, dict[LayerKey, str], list[LayerCost]]:
    """Measures `first` (the cost model's rewrite of `original`, whose SparseConvs compute the
    values `outputs` maps to their layers) against `original`; `rewrite(reverted)` rewrites
    again with the layers in `reverted` (layer -> why) left dense. Returns the model to keep
    (None: the original), what was measured, the layers reverted with the reason, and the
    measured cost of each layer of `first`. Raises
    NotMeasurable when the models do not run here."""
    start = time.perf_counter()
    result = EndToEnd(threads, {k: list(v.shape) for k, v in feeds.items()})
    try:
        with tempfile.TemporaryDirectory(prefix="onnx-sparsify-profile.") as folder:
            labelled = onnx.ModelProto()
            labelled.CopyFrom(first)
            labels = label_sparse_nodes(labelled, outputs)
            sparse_profile, optimized = _profile(labelled, feeds, True, threads, folder, "sparse")
            dense_profile, _ = _profile(original, feeds, False, threads, folder, "dense")
        dense_conv_us = sum(us for op, us in dense_profile.values() if op in _DENSE_CONV_OPS)
        scale = dense_scale(dense_conv_us, dense_estimates.values())
        costs = layer_costs(sparse_profile, optimized, labels, dense_estimates, scale)
        lost = set(losers(costs))
        reverted = {
            c.key: f"measured in the model: SparseConv {c.sparse_us:.0f} us"
            + (f" + layout conversions {c.reorder_us:.0f} us" if c.reorder_us else "")
            + f" >= dense estimate {c.dense_us:.0f} us"
            for c in costs
            if c.key in lost
        }
        candidates = [first]
        if reverted and len(reverted) < len(labels):
            candidates.append(rewrite(reverted))
        sampled = time_models(original, candidates, feeds, threads)
    except Exception as e:  # noqa: BLE001 - ORT's failures have no common type
        raise NotMeasurable(f"the models failed to run here ({type(e).__name__}: {e})") from None
    best, interval = sampled.best, sampled.interval
    if best == 0:
        reverted = {}  # reverting was not shown faster (or nothing to revert): the plan stands
    _record(result, interval, sampled.medians(0), sampled.medians(1 + best))
    result.first_ms = statistics.median(sampled.medians(1))
    result.reverted = [name for _, name in reverted]
    result.decision = sampled.decision
    result.seconds = time.perf_counter() - start
    if sampled.decision == "keep":
        result.rewritten_ms, result.kept = result.best_ms, True
        result.verdict = f"{interval.estimate:.2f}x faster than the original, measured ({interval})"
        if sampled.versus is not None:
            result.verdict += f"; with {len(reverted)} layer(s) reverted, {sampled.versus} against the plan"
        return candidates[best], result, reverted, costs
    result.rewritten_ms = result.original_ms
    if sampled.decision == "reject":
        result.verdict = (
            f"kept dense: the rewrite measured {interval.estimate:.2f}x the original's speed ({interval}, "
            f"below the {MODEL_MARGIN}x it must reach)"
        )
    else:
        result.verdict = (
            f"kept dense: the rewrite measured {interval.estimate:.2f}x the original's speed, but {interval} "
            f"does not show it at least {MODEL_MARGIN}x faster within the timing budget; the original is the "
            "safer plan"
        )
    return None, result, reverted, costs


def time_only(
    original: onnx.ModelProto, rewritten: onnx.ModelProto, feeds: Mapping[str, np.ndarray], threads: int, why: str
) -> EndToEnd:
    """The original and the rewritten model timed against each other for the report, nothing
    reverted: for a rewrite that `why` (the user's threshold) decided. Raises NotMeasurable when
    the models do not run here."""
    start = time.perf_counter()
    result = EndToEnd(threads, {k: list(v.shape) for k, v in feeds.items()}, kept=True)
    try:
        rounds = model_rounds(original, [rewritten], feeds, threads)
        timed = [next(rounds) for _ in range(MIN_ROUNDS)]
    except Exception as e:  # noqa: BLE001 - ORT's failures have no common type
        raise NotMeasurable(f"the models failed to run here ({type(e).__name__}: {e})") from None
    original_r, rewritten_r = [r[0] for r in timed], [r[1] for r in timed]
    interval = speedup_interval(original_r, rewritten_r)
    _record(result, interval, original_r, rewritten_r)
    result.rewritten_ms = result.first_ms = result.best_ms
    result.seconds = time.perf_counter() - start
    result.verdict = (
        f"{interval.estimate:.2f}x the original's speed, measured ({interval}); {why} decided, nothing reverted"
    )
    return result
