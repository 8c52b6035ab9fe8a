"""Timing one model pair: ORT's dense Conv against SparseConv, same process, same options,
inputs and outputs pre-bound, warm-up, then alternating repeated runs (medians, min, max)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

import onnx_sparsify


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int


def make_session(model: onnx.ModelProto, plugin: bool, threads: int) -> ort.InferenceSession:
    options = onnx_sparsify.session_options() if plugin else ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class BoundRun:
    """A session with its inputs and outputs bound once; calling it runs the model."""

    def __init__(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> None:
        self.session = session
        self.binding = session.io_binding()
        self._values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
        for name, value in zip(feeds, self._values):
            self.binding.bind_ortvalue_input(name, value)
        for out in session.get_outputs():
            self.binding.bind_output(out.name, "cpu")
        session.run_with_iobinding(self.binding)  # allocates the outputs once
        outputs = self.binding.get_outputs()
        for out, value in zip(session.get_outputs(), outputs):
            self.binding.bind_ortvalue_output(out.name, value)
        self.outputs = outputs

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)


def time_pair(dense: BoundRun, sparse: BoundRun, min_runs: int = 5, budget_s: float = 2.0) -> tuple[Timing, Timing]:
    """Alternates dense and sparse runs until both have min_runs and the time budget is spent."""
    for run in (dense, sparse, dense, sparse):  # warm-up
        run()
    samples: dict[int, list[float]] = {0: [], 1: []}
    start = time.perf_counter()
    while len(samples[0]) < min_runs or (time.perf_counter() - start < budget_s and len(samples[0]) < 1000):
        for i, run in enumerate((dense, sparse)):
            t0 = time.perf_counter()
            run()
            samples[i].append((time.perf_counter() - t0) * 1e3)
    return tuple(
        Timing(statistics.median(s), min(s), max(s), len(s)) for s in (samples[0], samples[1])
    )  # type: ignore[return-value]
