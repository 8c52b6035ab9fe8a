"""Calibration: this machine's rates for the cost model (decision.Rates), measured in a few
seconds by timing ORT's dense Conv and SparseConv on probe layers of each kind at two
densities, and cached per CPU model, library versions, plugin build, CPU kernel variant
(instruction set and strategy) and thread count in the user's cache folder. A calibration
saved to a file on one machine decides for that machine when passed to the rewriter on
another (``onnx-sparsify-calibrate -o rates.json`` on the target, then
``onnx-sparsify --calibration rates.json``)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .decision import KINDS, Rates, layer_traits, sparse_efficiency

log = logging.getLogger(__name__)

DENSITIES = (0.1, 0.3)  # 90% and 70% zeros: where pruned models are
CACHE_ENV = "ONNX_SPARSIFY_CACHE"  # overrides the cache folder


@dataclass(frozen=True)
class Probe:
    """One calibration layer: a 2D Conv on a 1 x C x H x W input."""

    kind: str
    channels: int
    out_channels: int
    kernel: int
    size: int
    stride: int = 1
    group: int = 1

    @property
    def pads(self) -> list[int]:
        return [self.kernel // 2] * 4


# Sized so that each runs for about a millisecond dense, one thread: long enough to time, short
# enough that the whole calibration takes seconds. The tiny layer measures the fixed cost per call.
PROBES = (
    Probe("unit stride", 64, 64, 3, 28),
    Probe("unit stride", 256, 64, 1, 28),
    Probe("strided", 64, 128, 3, 56, stride=2),
    Probe("depthwise", 96, 96, 3, 56, group=96),
    Probe("grouped", 128, 128, 3, 28, group=32),
)
CALL_PROBE = Probe("unit stride", 16, 16, 1, 4)


def cpu_model() -> str:
    """The CPU's marketing name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_versions() -> dict[str, str]:
    """What a calibration depends on besides the CPU: the libraries, the plugin's build (a
    digest of its file: a rebuilt kernel is another kernel) and the kernel variant."""
    import onnxruntime

    from ._plugin import build_info, library_path
    from ._version import __version__

    plugin = hashlib.sha256(Path(library_path()).read_bytes()).hexdigest()[:12]
    return {
        "onnxruntime": onnxruntime.__version__,
        "onnx_sparsify": __version__,
        "plugin": plugin,
        "cpu_isa": build_info()["cpu_isa"],
        "cpu_strategy": build_info()["cpu_strategy"],
    }


def cache_folder() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "onnx-sparsify"
    )
    return Path(root) / "calibration"


def cache_path(threads: int) -> Path:
    v = machine_versions()
    variant = f"{v['cpu_isa']}-{v['cpu_strategy']}"
    key = f"{cpu_model()}-ort{v['onnxruntime']}-{v['onnx_sparsify']}-{v['plugin']}-{variant}-{threads}t"
    return cache_folder() / (re.sub(r"[^A-Za-z0-9.]+", "_", key).strip("_") + ".json")


def _probe_weight(probe: Probe, density: float, rng: np.random.Generator) -> np.ndarray:
    shape = (probe.out_channels, probe.channels // probe.group, probe.kernel, probe.kernel)
    weight = rng.standard_normal(shape).astype(np.float32)
    weight[rng.random(shape) >= density] = 0
    return weight


def _time_probe(probe: Probe, weight: np.ndarray, threads: int) -> tuple[float, float]:
    """Median microseconds of (dense, sparse) for the probe with this weight."""
    from .autotune import time_layer
    from .csr import dense_to_csr

    attrs = {"strides": [probe.stride] * 2, "pads": probe.pads, "group": probe.group}
    x_shape = [1, probe.channels, probe.size, probe.size]
    dense_ms, sparse_ms = time_layer(x_shape, weight, None, attrs, None, dense_to_csr(weight), threads=threads)
    return dense_ms * 1e3, sparse_ms * 1e3


def _traits(probe: Probe, weight: np.ndarray):
    out = (probe.size + 2 * (probe.kernel // 2) - probe.kernel) // probe.stride + 1
    return layer_traits(
        weight,
        probe.group,
        [probe.stride] * 2,
        probe.pads,
        False,
        [1, probe.channels, probe.size, probe.size],
        [1, probe.out_channels, out, out],
    )


def fit(samples: dict[str, list[tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Per kind, the line through (density, efficiency) samples (least squares), where
    efficiency = density * speedup of the sparse kernel's own work."""
    efficiency = {}
    for kind in KINDS:
        points = samples[kind]
        d = np.array([p[0] for p in points])
        e = np.array([p[1] for p in points])
        slope = float(np.polyfit(d, e, 1)[0]) if len(set(d)) > 1 else 0.0
        base = float(np.mean(e - slope * d))
        efficiency[kind] = (base, slope)
    return efficiency


def calibrate(threads: int = 1, tick: Callable[[], None] = lambda: None) -> Rates:
    """Measures this machine's rates (a few seconds). `tick` is called once per timed layer."""
    rng = np.random.default_rng(0)
    dense_macs: dict[str, list[float]] = {k: [] for k in KINDS}
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
    weight = _probe_weight(CALL_PROBE, DENSITIES[0], rng)
    dense_us, sparse_us = _time_probe(CALL_PROBE, weight, threads)
    tick()
    call_us = max(sparse_us - dense_us, 0.0)
    copy_gb_per_s = Rates.__dataclass_fields__["copy_gb_per_s"].default
    timed = []
    for probe in PROBES:
        for density in DENSITIES:
            weight = _probe_weight(probe, density, rng)
            dense_us, sparse_us = _time_probe(probe, weight, threads)
            tick()
            traits = _traits(probe, weight)
            dense_macs[probe.kind].append(traits.weight_size * traits.output_positions / dense_us)
            timed.append((probe, weight, dense_us, sparse_us, traits))
    dense_rates = {k: float(np.median(v)) for k, v in dense_macs.items()}
    for probe, weight, dense_us, sparse_us, traits in timed:
        nnz_density = np.count_nonzero(weight) / weight.size
        kernel_us = sparse_us - call_us - traits.copied_input_elements * 4 / (copy_gb_per_s * 1e3)
        samples[probe.kind].append((nnz_density, nnz_density * dense_us / max(kernel_us, 1e-3)))
    rates = Rates(
        fit(samples),
        dense_rates,
        copy_gb_per_s,
        call_us,
        densest=max(DENSITIES),
        machine=cpu_model(),
        threads=threads,
        versions=machine_versions(),
    )
    log.info("%s", describe(rates))
    return rates


def describe(rates: Rates) -> str:
    """The rates as a small table: per kind of layer, ORT's dense rate and what the cost model
    predicts for SparseConv at the calibrated densities, then the fixed costs."""
    zeros = [1.0 - d for d in DENSITIES]
    at = " / ".join(f"{z:.0%}" for z in zeros)
    header = f"{'kind':<12} {'dense Conv':>12}   {'sparse efficiency at ' + at + ' zeros':<38} predicted speedup"
    lines = [f"calibration of {rates.machine or 'an unnamed machine'}, {rates.threads} thread(s):", header]
    for kind in KINDS:
        efficiency = [sparse_efficiency(kind, d, rates) for d in DENSITIES]
        shown = " / ".join(f"{e:.2f}" for e in efficiency)
        speedups = " / ".join(f"{e / d:.2f}x" for e, d in zip(efficiency, DENSITIES))
        dense = f"{rates.dense_macs_per_us[kind] / 1e3:.1f} GMAC/s"
        lines.append(f"{kind:<12} {dense:>12}   {shown:<38} {speedups}")
    lines.append(
        f"input copy {rates.copy_gb_per_s:.1f} GB/s, fixed cost {rates.sparse_call_us:.1f} us per call; "
        f"densities beyond {rates.densest:.0%} nonzeros are not extrapolated"
    )
    return "\n".join(lines)


def save(rates: Rates, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rates.to_dict(), indent=2) + "\n")


def load(path: str | os.PathLike) -> Rates:
    """Raises OSError when the file cannot be read, ValueError when it is not a calibration."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    try:
        return Rates.from_dict(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def this_machine(
    threads: int = 1, progress: Callable[[int, str], Callable[[], None]] | None = None
) -> tuple[Rates, str]:
    """This machine's rates and where they come from: the cache, or a calibration run now (and
    cached). `progress(total, description)` may return a tick for a progress bar."""
    path = cache_path(threads)
    try:
        return load(path), f"cached calibration {path}"
    except (OSError, ValueError) as e:
        if path.exists():
            log.warning("ignoring the cached calibration: %s", e)
    tick = progress(1 + 2 * len(PROBES), "calibrating this machine") if progress else (lambda: None)
    rates = calibrate(threads, tick)
    try:
        save(rates, path)
        where = f"calibrated now, cached in {path}"
    except OSError as e:
        log.warning("cannot cache the calibration in %s (%s); it will be measured again next time", path, e)
        where = "calibrated now"
    return rates, where


def same_machine(rates: Rates) -> bool:
    """Whether `rates` were measured on this CPU (so timing here tells about their machine)."""
    return rates.machine == cpu_model()
