"""Peak single-precision FMA throughput of one core, measured on the machine the harness runs on.

A small C++ program is compiled at run time with the system compiler (`c++ -O2 -march=native`)
and timed: many independent chains of vector FMAs (16 accumulators held in registers: more than
latency x FMA ports on current x86 cores, so the chains never wait on each other), with 512-bit vectors where the CPU
has AVX-512 and 256-bit ones where it has AVX2 + FMA (both widths are measured where both exist
and the faster is the peak: some AVX-512 cores run 512-bit FMAs at half rate). Each width runs a
few short trials and keeps the best, so that other load on the machine only lowers the trials it
hits. One thread: the per-core peak; a row run with N threads is compared with N times it.

NumPy cannot give this number reliably (its kernels are memory-bound or BLAS-threaded), hence
the compiled probe. Without a compiler the probe reports None and why.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks")

SOURCE = r"""
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <immintrin.h>

// 16 independent accumulators in named registers; the empty asm after each step keeps every
// accumulator in a register and stops the compiler from folding iterations together.
#define KEEP(a) __asm__ volatile("" : "+v"(a))
#define PROBE(NAME, V, LANES, FMA, SET, TOFLOAT)                                                  \
    static double probe_##NAME(long iters, int trials) {                                          \
        double best = 0.0;                                                                        \
        volatile float sink = 0.0f;                                                               \
        for (int t = 0; t < trials; ++t) {                                                        \
            V a0 = SET(1.00f), a1 = SET(1.01f), a2 = SET(1.02f), a3 = SET(1.03f);                 \
            V a4 = SET(1.04f), a5 = SET(1.05f), a6 = SET(1.06f), a7 = SET(1.07f);                 \
            V a8 = SET(1.08f), a9 = SET(1.09f), a10 = SET(1.10f), a11 = SET(1.11f);               \
            V a12 = SET(1.12f), a13 = SET(1.13f), a14 = SET(1.14f), a15 = SET(1.15f);             \
            const V m = SET(0.999999f), c = SET(1e-7f);                                           \
            auto start = std::chrono::steady_clock::now();                                        \
            for (long n = 0; n < iters; ++n) {                                                    \
                a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);   \
                a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);   \
                a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c);                     \
                a11 = FMA(a11, m, c); a12 = FMA(a12, m, c); a13 = FMA(a13, m, c);                 \
                a14 = FMA(a14, m, c); a15 = FMA(a15, m, c);                                       \
                KEEP(a0); KEEP(a1); KEEP(a2); KEEP(a3); KEEP(a4); KEEP(a5); KEEP(a6); KEEP(a7);   \
                KEEP(a8); KEEP(a9); KEEP(a10); KEEP(a11); KEEP(a12); KEEP(a13); KEEP(a14);        \
                KEEP(a15);                                                                        \
            }                                                                                     \
            auto stop = std::chrono::steady_clock::now();                                         \
            sink = sink + TOFLOAT(a0) + TOFLOAT(a1) + TOFLOAT(a2) + TOFLOAT(a3) + TOFLOAT(a4) +   \
                   TOFLOAT(a5) + TOFLOAT(a6) + TOFLOAT(a7) + TOFLOAT(a8) + TOFLOAT(a9) +          \
                   TOFLOAT(a10) + TOFLOAT(a11) + TOFLOAT(a12) + TOFLOAT(a13) + TOFLOAT(a14) +     \
                   TOFLOAT(a15);                                                                  \
            double seconds = std::chrono::duration<double>(stop - start).count();                 \
            double gflops = 2.0 * LANES * 16 * (double)iters / seconds / 1e9;                     \
            if (gflops > best) best = gflops;                                                     \
        }                                                                                         \
        std::printf("%s %.3f\n", #NAME, best);                                                   \
        return best;                                                                              \
    }

#if defined(__AVX512F__)
PROBE(avx512, __m512, 16, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_cvtss_f32)
#endif
#if defined(__AVX2__) && defined(__FMA__)
PROBE(avx2, __m256, 8, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_cvtss_f32)
#endif
#if !(defined(__AVX2__) && defined(__FMA__))
#define SSE_MULADD(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
PROBE(sse, __m128, 4, SSE_MULADD, _mm_set1_ps, _mm_cvtss_f32)
#endif

int main(int argc, char** argv) {
    long iters = argc > 1 ? std::atol(argv[1]) : 20000000L;
    int trials = argc > 2 ? std::atoi(argv[2]) : 5;
#if defined(__AVX512F__)
    probe_avx512(iters, trials);
#endif
#if defined(__AVX2__) && defined(__FMA__)
    probe_avx2(iters, trials);
#else
    probe_sse(iters, trials);  // no FMA: a multiply and an add, counted as 2 flops per lane
#endif
    return 0;
}
"""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onnx-sparsify" / "fma_probe"


def compile_probe(compiler: str | None = None, folder: Path | None = None) -> Path:
    """Compiles the probe (once per source and compiler; the binary is cached) and returns its path."""
    compiler = compiler or os.environ.get("CXX") or "c++"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler}) on PATH")
    folder = folder or _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    flags = ["-O2", "-march=native", "-std=c++14"]
    key = hashlib.sha256((SOURCE + compiler + " ".join(flags) + os.uname().machine).encode()).hexdigest()[:16]
    binary = folder / f"fma_probe_{key}"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fma_probe.cc"
        src.write_text(SOURCE)
        out = Path(tmp) / "fma_probe"
        proc = subprocess.run([compiler, *flags, str(src), "-o", str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {proc.stderr.strip()[-500:]}")
        shutil.move(str(out), binary)
    return binary


def run_probe(binary: Path, iters: int = 20_000_000, trials: int = 5) -> dict[str, float]:
    """Runs the compiled probe pinned to one thread: {vector width name: best GFLOP/s}."""
    proc = subprocess.run([str(binary), str(iters), str(trials)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"probe exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    widths = {}
    for line in proc.stdout.splitlines():
        name, value = line.split()
        widths[name] = float(value)
    return widths


@functools.lru_cache(maxsize=1)
def fma_peak(iters: int = 20_000_000, trials: int = 5) -> dict[str, Any]:
    """{"gflops_per_core": peak or None, "widths": {...}, "method": ..., "error": reason or None}.
    Measured once per process."""
    method = "C++ probe, c++ -O2 -march=native, 16 independent vector FMA chains, 1 thread, best of trials"
    try:
        widths = run_probe(compile_probe(), iters, trials)
        peak = max(widths.values())
        if not (math.isfinite(peak) and peak > 0):
            raise RuntimeError(f"implausible probe result {widths}")
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as error:
        log.warning("FMA probe unavailable: %s", error)
        return {"gflops_per_core": None, "widths": {}, "method": method, "error": str(error)}
    return {"gflops_per_core": peak, "widths": widths, "method": method, "error": None}


def fraction_of_peak(gflops: float | None, threads: int, peak_per_core: float | None) -> float | None:
    """The share of `threads` cores' FMA peak that `gflops` reaches (None where either is unknown)."""
    if gflops is None or not peak_per_core or threads < 1:
        return None
    return gflops / (peak_per_core * threads)
