"""The CUDA kernels' source run on the CPU through the emulation (cuda_emulation.h).

build() compiles ort_plugin/cuda/sparse_conv_cuda.cu as host C++ together with the plugin's
ORT-free kernels/ sources and driver.cc into a shared library (with g++, cached under
build/cuda_emulation/ by a hash of every input), and sparse_conv() runs SparseConv through the
real launcher, cuda::LaunchSparseConv, on NumPy arrays."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN = ROOT / "ort_plugin"
CUDA_SOURCES = [PLUGIN / "cuda" / "sparse_conv_cuda.cu"]
CXX_SOURCES = [
    HERE / "driver.cc",
    PLUGIN / "kernels" / "conv_params.cc",
    PLUGIN / "kernels" / "epilogue.cc",
    PLUGIN / "kernels" / "phase_layout.cc",
    PLUGIN / "kernels" / "sparse_weights.cc",
]
HEADERS = [*sorted(HERE.glob("*.h")), *sorted((PLUGIN / "cuda").glob("*.h")), *sorted((PLUGIN / "kernels").glob("*.h"))]

SCHEDULES = {"forward": 0, "reverse": 1, "shuffled": 2}
_lib: ctypes.CDLL | None = None


def compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def build() -> ctypes.CDLL:
    """The emulated library, compiled once per change of its sources."""
    global _lib
    if _lib is not None:
        return _lib
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) to build the CUDA emulation")
    digest = hashlib.sha256(cxx.encode())
    for path in [*CUDA_SOURCES, *CXX_SOURCES, *HEADERS]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    out_dir = ROOT / "build" / "cuda_emulation"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only checkout
        out_dir = Path(tempfile.gettempdir()) / "onnx_sparsify_cuda_emulation"
        out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"libcuda_emulated-{digest.hexdigest()[:16]}.so"
    if not target.exists():
        common = [cxx, "-std=c++17", "-O2", "-g0", "-fPIC", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas"]
        common += ["-include", str(HERE / "cuda_emulation.h"), f"-I{HERE}", f"-I{PLUGIN}"]
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            objects, jobs = [], []
            for source in [*CUDA_SOURCES, *CXX_SOURCES]:
                obj = Path(tmp) / (source.name + ".o")
                language = ["-x", "c++"] if source.suffix == ".cu" else []
                jobs.append(subprocess.Popen([*common, *language, "-c", str(source), "-o", str(obj)]))
                objects.append(str(obj))
                if len(jobs) >= 2:  # this machine's cores are shared
                    _wait(jobs.pop(0))
            for job in jobs:
                _wait(job)
            partial = Path(tmp) / target.name
            subprocess.run([cxx, "-shared", *objects, "-Wl,--no-undefined", "-o", str(partial)], check=True)
            os.replace(partial, target)  # atomic: concurrent test processes never see half a file
        for stale in out_dir.glob("libcuda_emulated-*.so"):
            if stale != target:
                stale.unlink(missing_ok=True)  # a process that loaded it keeps its mapping
    _lib = _load(target)
    return _lib


def _wait(job: subprocess.Popen) -> None:
    if job.wait() != 0:
        raise RuntimeError(f"building the CUDA emulation failed: {' '.join(job.args)}")


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    p = ctypes.c_void_p
    i64, i32 = ctypes.c_int64, ctypes.c_int
    lib.ose_sparse_conv.argtypes = [
        ctypes.c_char_p,
        p,
        p,
        p,
        i64,
        i64,
        p,
        p,
        p,
        i32,
        p,
        p,
        i64,
        i64,
        i32,
        ctypes.c_uint64,
        i32,
        p,
        p,
        i32,
    ]
    lib.ose_sparse_conv.restype = i32
    lib.ose_launch_shape.argtypes = [ctypes.c_char_p, p, p, p, i64, i64, p, i32, i32, p, p, i32]
    lib.ose_launch_shape.restype = i32
    lib.ose_self_test.argtypes = [i32, i32, i32, i32, p, p, i32]
    lib.ose_self_test.restype = i32
    return lib


class EmulationError(RuntimeError):
    """A CUDA error reported by the launcher (the launch failed) under the emulation."""


def attribute_text(attributes: dict[str, Any]) -> bytes:
    """SparseConv's attributes in the driver's text form."""
    parts = []
    for name, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str):
            kind, text = "str", value
        elif isinstance(value, (int, np.integer)):
            kind, text = "int", str(int(value))
        elif name in ("activation_params", "activation_slopes"):
            kind, text = "floats", ",".join(repr(float(v)) for v in value)
        else:
            kind, text = "ints", ",".join(str(int(v)) for v in value)
        parts.append(f"{name}={kind}:{text}")
    return ";".join(parts).encode()


@dataclass
class LaunchStats:
    tiled: bool
    blocks: int
    items: int
    blocks_run: int
    barriers: int
    launches: int
    chunk_channels: int
    chunks: int


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _csr(values, col_indices, row_ptr):
    return (
        np.ascontiguousarray(values, np.float32),
        np.ascontiguousarray(col_indices, np.int64),
        np.ascontiguousarray(row_ptr, np.int64),
    )


def _weight_args(values, col_indices, row_ptr, attributes: dict[str, Any]) -> tuple[list, tuple]:
    """The entry points' first arguments (attributes, CSR pointers and sizes), and the arrays the
    pointers point to, which the caller keeps alive until the call returns."""
    values, cols, rows = _csr(values, col_indices, row_ptr)
    args = [attribute_text(attributes), _ptr(values), _ptr(cols), _ptr(rows), values.size, rows.size - 1]
    return args, (values, cols, rows)


def sparse_conv(
    x: np.ndarray,
    values: np.ndarray,
    col_indices: np.ndarray,
    row_ptr: np.ndarray,
    bias: np.ndarray | None,
    attributes: dict[str, Any],
    out_shape: Sequence[int],
    *,
    max_blocks: int = 2**31 - 1,
    schedule: str = "forward",
    seed: int = 0,
    direct: bool = False,
    residual: np.ndarray | None = None,
) -> tuple[np.ndarray, LaunchStats]:
    """SparseConv through cuda::LaunchSparseConv under the emulation (`residual`: Z, the output's
    shape); the output starts as NaN, so an element the kernel never writes stays NaN."""
    lib = build()
    x = np.ascontiguousarray(x, np.float32)
    weights, _alive = _weight_args(values, col_indices, row_ptr, attributes)  # _alive: what the pointers point to
    b = None if bias is None else np.ascontiguousarray(bias, np.float32)
    y = np.full(tuple(out_shape), np.nan, np.float32)
    z = None if residual is None else np.ascontiguousarray(residual, np.float32).reshape(y.shape)
    shape = np.asarray(x.shape, np.int64)
    stats = np.zeros(8, np.int64)
    error = ctypes.create_string_buffer(1024)
    code = lib.ose_sparse_conv(
        *weights,
        _ptr(b),
        _ptr(z),
        _ptr(shape),
        x.ndim,
        _ptr(x),
        _ptr(y),
        y.size,
        max_blocks,
        SCHEDULES[schedule],
        seed,
        int(direct),
        _ptr(stats),
        error,
        len(error),
    )
    message = error.value.decode()
    if code == 2:
        raise ValueError(message)
    if code != 0:
        raise EmulationError(message)
    return y, LaunchStats(bool(stats[0]), *(int(v) for v in stats[1:]))


def launch_shape(
    x_shape: Sequence[int], values, col_indices, row_ptr, attributes: dict[str, Any], direct: bool = False
) -> tuple[bool, int, int, bool]:
    """(tiled, gridDim.x, work items, valid under CUDA's limits) for this input shape, computed
    by the launcher's own code without running anything."""
    lib = build()
    weights, _alive = _weight_args(values, col_indices, row_ptr, attributes)  # _alive: what the pointers point to
    shape = np.asarray(x_shape, np.int64)
    out = np.zeros(4, np.int64)
    error = ctypes.create_string_buffer(1024)
    code = lib.ose_launch_shape(
        *weights,
        _ptr(shape),
        len(shape),
        int(direct),
        _ptr(out),
        error,
        len(error),
    )
    if code != 0:
        raise ValueError(error.value.decode())
    return bool(out[0]), int(out[1]), int(out[2]), bool(out[3])


def self_test(which: str, schedule: str, blocks: int, threads: int) -> tuple[int, np.ndarray, str]:
    """The emulation's own checks (driver.cc): returns (cudaError_t, output, message)."""
    lib = build()
    index = {"reverse": 0, "reverse_without_barrier": 1, "divergent_barrier": 2, "block_too_large": 3}[which]
    out = np.full(blocks * max(threads, 1), np.nan, np.float32)
    error = ctypes.create_string_buffer(1024)
    code = lib.ose_self_test(index, SCHEDULES[schedule], blocks, threads, _ptr(out), error, len(error))
    return code, out, error.value.decode()
