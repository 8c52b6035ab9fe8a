"""Timing one model pair: ORT's dense Conv against SparseConv, same process, same options,
inputs and outputs pre-bound, warm-up, then alternating repeated runs (medians, min, max)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_sparsify
import onnxruntime as ort


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int


def make_session(model: onnx.ModelProto, plugin: bool, threads: int, provider: str = "cpu") -> ort.InferenceSession:
    options = onnx_sparsify.session_options() if plugin else ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers = ["CUDAExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    if provider == "cuda":
        # A node the CUDA provider cannot take must fail the session, not be timed on the CPU.
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort.InferenceSession(model.SerializeToString(), options, providers=providers)


class BoundRun:
    """A session with its inputs and outputs bound once; calling it runs the model."""

    def __init__(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray], device: str = "cpu") -> None:
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


def time_pair(
    make_dense: Callable[[], BoundRun], make_sparse: Callable[[], BoundRun], rounds: int = 3, block_s: float = 0.3
) -> tuple[Timing, Timing, BoundRun, BoundRun]:
    """Times dense and sparse in alternating blocks, `rounds` of each, every block in a fresh
    session after warm-up. Only one session lives at a time: an idle session's intra-op threads
    keep spinning after a run and would take cores from the other (seen here with 2 threads).
    Returns both timings and the last session of each (for checking outputs)."""
    samples: dict[int, list[float]] = {0: [], 1: []}
    last: list[BoundRun | None] = [None, None]
    for _ in range(rounds):
        for i, make in enumerate((make_dense, make_sparse)):
            last[i] = None  # release the previous session and its threads first
            run = make()
            for _ in range(3):
                run()
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                run()
                t1 = time.perf_counter()
                samples[i].append((t1 - t0) * 1e3)
                if t1 - start > block_s and len(samples[i]) >= 3:
                    break
            last[i] = run
    dense, sparse = (Timing(statistics.median(s), min(s), max(s), len(s)) for s in (samples[0], samples[1]))
    return dense, sparse, last[0], last[1]  # type: ignore[return-value]


def timing_fields(dense: Timing, sparse: Timing) -> dict[str, float]:
    """The figures every result row carries: medians, extremes, runs and the ratio."""
    return {
        "dense_ms": dense.median_ms,
        "dense_min_ms": dense.min_ms,
        "dense_max_ms": dense.max_ms,
        "sparse_ms": sparse.median_ms,
        "sparse_min_ms": sparse.min_ms,
        "sparse_max_ms": sparse.max_ms,
        "runs": sparse.runs,
        "ratio": dense.median_ms / sparse.median_ms,
    }


def relative_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))
