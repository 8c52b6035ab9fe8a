"""Memory must not grow with use: many Run calls on one SparseConv session, and many SparseConv
sessions created, run once and dropped, keep no more memory than ONNX Runtime's own Conv does on
the same layer in the same pattern.

The measuring happens in a child process (memory_probe.py), one per operator, after a warm-up:
a 32->32 channel 3x3 convolution with pads 1 on 16x16, so the kernel takes its padded copy of X
from ONNX Runtime's allocator on every call. One session stays alive throughout, which also keeps
the plugin library loaded while the others come and go (as in a server).

Two readings, both compared as SparseConv growth minus dense Conv growth:
  RSS  (/proc/self/statm) is what users see. The slacks come from eight paired repetitions on a
       build without the leaks (g++ 12, onnxruntime 1.31.1, glibc 2.36, 2 cores): the difference
       stayed within -4..0 KiB over 40,000 runs and within -180..+192 KiB over 1,000 sessions.
       Slacks: 256 KiB for the runs (a leak of 7 bytes per Run exceeds it) and 2 MiB for the
       sessions (2 KiB per session), about ten times the noise.
  heap (glibc's mallinfo2: bytes malloc handed out and not freed; skipped without it) is exact
       and also counts allocations never touched, which RSS misses. Same repetitions: -672..0
       bytes over the runs, -17..+36 KiB over the sessions. Slacks: 16 KiB for the runs (under
       half a byte per Run) and 100 KiB for the sessions (100 bytes per session).

What these caught (onnx-sparsify before issue 8): the kernel took ORT's allocator wrapper
(KernelContext_GetAllocator) on every call and never released it, 96 bytes per Run; the wrapper
holds the session's CPU arena, so each dropped session that had run kept its whole arena,
about 1 MiB of heap and 110 KiB of RSS. And every registration of the plugin added a custom-op
domain (about 190 bytes) to a list freed only when the library unloads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx_sparsify
import pytest

PROBE = Path(__file__).with_name("memory_probe.py")
RUNS = 40_000
SESSIONS = 1_000
KIB, MIB = 1024, 1024 * 1024
RSS_SLACK = {"run_growth": 256 * KIB, "session_growth": 2 * MIB}
HEAP_SLACK = {"run_growth": 16 * KIB, "session_growth": 100 * KIB}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc/self/statm (Linux only)"),
]


def _probe(kind: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(PROBE), kind, str(RUNS), str(SESSIONS)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # The child must measure the package this process tests (PYTHONPATH and all).
    assert Path(figures["package"]).resolve() == Path(onnx_sparsify.__file__).resolve(), figures["package"]
    return figures


@pytest.fixture(scope="module")
def figures() -> dict[str, dict]:
    return {kind: _probe(kind) for kind in ("dense", "sparse")}


def _describe(figures: dict[str, dict], phase: str, count: int, unit: str) -> str:
    lines = []
    for kind in ("sparse", "dense"):
        g = figures[kind][phase]
        heap = "n/a" if g["heap"] is None else f"{g['heap']:+,} B ({g['heap'] / count:+.1f} B/{unit})"
        lines.append(f"{kind:>6}: RSS {g['rss']:+,} B ({g['rss'] / count:+.1f} B/{unit}), heap {heap}")
    return f"over {count:,} {unit}s:\n" + "\n".join(lines)


@pytest.mark.parametrize(
    "phase,count,unit", [("run_growth", RUNS, "run"), ("session_growth", SESSIONS, "session")], ids=["runs", "sessions"]
)
def test_memory_does_not_grow_more_than_dense_conv(figures, phase, count, unit) -> None:
    sparse, dense = figures["sparse"][phase], figures["dense"][phase]
    report = _describe(figures, phase, count, unit)
    assert sparse["rss"] - dense["rss"] <= RSS_SLACK[phase], f"SparseConv's RSS grows more than Conv's {report}"
    if sparse["heap"] is not None and dense["heap"] is not None:
        assert sparse["heap"] - dense["heap"] <= HEAP_SLACK[phase], f"SparseConv's heap grows more than Conv's {report}"
