"""Timing models in ONNX Runtime: sessions with the inputs and outputs bound once, warm-up, then
alternating blocks of repeated runs (medians). Used by the rewriter's end-to-end check and
calibration, and by the benchmark harness."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ._plugin import session_options

if TYPE_CHECKING:
    import onnxruntime as ort


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int
    round_medians_ms: tuple[float, ...] = ()  # each alternating round's own median


def make_session(
    model: onnx.ModelProto | bytes,
    plugin: bool,
    threads: int,
    provider: str = "cpu",
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """A session as a deployment runs it: every graph optimization, `threads` intra-op threads,
    sequential execution; with the SparseConv plugin registered when `plugin`."""
    import onnxruntime as ort

    options = options if options is not None else ort.SessionOptions()
    if plugin:
        options = session_options(options)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    if provider == "cuda":
        # A node the CUDA provider cannot take must fail the session, not be timed on the CPU.
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=providers)


class BoundRun:
    """A session with its inputs and outputs bound once; calling it runs the model."""

    def __init__(self, session: ort.InferenceSession, feeds: Mapping[str, np.ndarray], device: str = "cpu") -> None:
        import onnxruntime as ort

        self.session = session
        self.binding = session.io_binding()
        self._values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v), device, 0) for v in feeds.values()]
        for name, value in zip(feeds, self._values):
            self.binding.bind_ortvalue_input(name, value)
        for out in session.get_outputs():
            self.binding.bind_output(out.name, device)
        session.run_with_iobinding(self.binding)  # allocates the outputs once
        outputs = self.binding.get_outputs()
        for out, value in zip(session.get_outputs(), outputs):
            self.binding.bind_ortvalue_output(out.name, value)
        self.outputs = outputs

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)  # returns once the device work is done


def alternating_rounds(
    makers: Sequence[Callable[[], Callable[[], None]]], block_s: float = 0.3, min_runs: int = 3
) -> Iterator[list[list[float]]]:
    """Endless alternating rounds: each yields every variant's block of run times (ms), each block
    timed in a fresh session after warm-up, one session alive at a time (time_alternating)."""
    while True:
        blocks: list[list[float]] = []
        for make in makers:
            run = make()
            for _ in range(3):
                run()
            start = time.perf_counter()
            block: list[float] = []
            while True:
                t0 = time.perf_counter()
                run()
                t1 = time.perf_counter()
                block.append((t1 - t0) * 1e3)
                if t1 - start > block_s and len(block) >= min_runs:
                    break
            blocks.append(block)
            del run  # its session and threads go before the next is made
        yield blocks


def time_alternating(
    makers: Sequence[Callable[[], Callable[[], None]]],
    rounds: int = 3,
    block_s: float = 0.3,
    min_runs: int = 3,
    runners: bool = False,
) -> tuple[list[Timing], list[Callable[[], None]]]:
    """Times each variant in alternating blocks, `rounds` of each, every block in a fresh session
    after warm-up, so that a drift of the machine's speed touches all alike. Only one session
    lives while one is timed: an idle session's intra-op threads keep spinning after a run and
    take cores from the timed one (with 2 threads, a model ran 2.6x slower beside the other
    variant's idle session). Returns the timings and, with `runners`, a fresh runner of each made
    after the timing (to read outputs; else an empty list)."""
    samples: list[list[float]] = [[] for _ in makers]
    round_medians: list[list[float]] = [[] for _ in makers]
    timer = alternating_rounds(makers, block_s, min_runs)
    for _ in range(rounds):
        for i, block in enumerate(next(timer)):
            samples[i] += block
            round_medians[i].append(statistics.median(block))
    timer.close()
    timings = [Timing(statistics.median(s), min(s), max(s), len(s), tuple(r)) for s, r in zip(samples, round_medians)]
    return timings, [make() for make in makers] if runners else []


def time_pair(
    make_dense: Callable[[], BoundRun], make_sparse: Callable[[], BoundRun], rounds: int = 3, block_s: float = 0.3
) -> tuple[Timing, Timing, BoundRun, BoundRun]:
    """time_alternating for a (dense, sparse) pair."""
    (dense, sparse), (dense_run, sparse_run) = time_alternating(
        [make_dense, make_sparse], rounds, block_s, runners=True
    )
    return dense, sparse, dense_run, sparse_run  # type: ignore[return-value]
