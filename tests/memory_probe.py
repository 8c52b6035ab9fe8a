"""Measures how much memory one process keeps after many Run calls and after many sessions are
created and dropped, for one 3x3 padded convolution run either by the plugin (SparseConv) or by
ONNX Runtime's own Conv (dense). Run by test_memory.py in a child process, so the numbers are
not disturbed by whatever pytest did before; prints one JSON object.

usage: python memory_probe.py {sparse,dense} RUNS SESSIONS

Memory is read two ways after gc.collect():
  rss   resident set size from /proc/self/statm: what an operator sees (page granular, noisy);
  heap  bytes malloc has handed out and not taken back (glibc's mallinfo2), or null where the C
        library has no mallinfo2: exact, and it also counts allocations never touched (RSS
        misses most of a leaked 1 MiB arena region, for instance).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx_sparsify  # noqa: E402
import onnxruntime as ort  # noqa: E402
from models import conv_model, random_sparse_weight, sparse_conv_from_dense  # noqa: E402

X_SHAPE = (1, 32, 16, 16)
W_SHAPE = (32, 32, 3, 3)
ATTRS = {"pads": [1, 1, 1, 1]}  # padded: the kernel takes its padded copy of X from ORT's allocator
WARMUP_RUNS = 2000
WARMUP_SESSIONS = 30
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _mallinfo2():
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):  # not glibc, or glibc before 2.33
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()


def heap() -> int | None:
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd  # in use from the heap + in use from malloc's own mmaps


def snapshot() -> tuple[int, int | None]:
    gc.collect()
    return rss(), heap()


def growth(before: tuple[int, int | None], after: tuple[int, int | None]) -> dict:
    return {
        "rss": after[0] - before[0],
        "heap": None if before[1] is None or after[1] is None else after[1] - before[1],
    }


def main() -> None:
    kind, runs, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if kind not in ("sparse", "dense"):
        raise SystemExit(f"kind must be sparse or dense, got {kind!r}")
    rng = np.random.default_rng(0)
    weight = random_sparse_weight(rng, W_SHAPE, 0.9)
    bias = rng.standard_normal(W_SHAPE[0]).astype(np.float32)
    build = sparse_conv_from_dense if kind == "sparse" else conv_model
    model = build(X_SHAPE, weight, bias, ATTRS).SerializeToString()
    feed = {"x": rng.standard_normal(X_SHAPE).astype(np.float32)}
    # Looked up once: Path.resolve() in library_path() grows CPython's interned-string table by a
    # bounded amount on its first few thousand calls, which would blur the figures here.
    library = onnx_sparsify.library_path() if kind == "sparse" else None

    def new_session() -> ort.InferenceSession:
        # Fresh options and a fresh registration each time, as an application creating sessions does.
        options = ort.SessionOptions()
        if library:
            options.register_custom_ops_library(library)
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    # One session lives throughout, as in a server; for SparseConv it also keeps the plugin loaded,
    # so what each registration leaves behind in the library accumulates instead of being unloaded.
    kept = new_session()
    for _ in range(WARMUP_RUNS):
        kept.run(None, feed)
    for _ in range(WARMUP_SESSIONS):
        new_session().run(None, feed)

    t0 = time.perf_counter()
    before = snapshot()
    for _ in range(runs):
        kept.run(None, feed)
    after_runs = snapshot()
    t1 = time.perf_counter()
    for _ in range(sessions):
        s = new_session()
        s.run(None, feed)
        del s
    after_sessions = snapshot()
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "kind": kind,
                "package": onnx_sparsify.__file__,
                "runs": runs,
                "sessions": sessions,
                "run_growth": growth(before, after_runs),
                "session_growth": growth(after_runs, after_sessions),
                "seconds": {"runs": round(t1 - t0, 2), "sessions": round(t2 - t1, 2)},
            }
        )
    )


if __name__ == "__main__":
    main()
