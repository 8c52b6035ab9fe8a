"""--check: run the reference model (ORT's dense Conv) and the rewritten one (the plugin) on the
same random inputs and compare, with a tolerance scaled by the model's own float32 sensitivity."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from ._plugin import session_options
from .report import CheckResult

log = logging.getLogger(__name__)

# A sound rewrite changes only the order of float32 additions, so its error is of the size of
# the model's own spread between ORT's optimized and unoptimized runs; a wrong one is far above.
SENSITIVITY_FACTOR = 10.0
MIN_TOLERANCE = 1e-4


class CheckError(Exception):
    """The check cannot run (for example, an input's size is unknown)."""


def parse_input_shape(text: str) -> tuple[str, list[int]]:
    """'NAME:1x3x224x224' -> ('NAME', [1, 3, 224, 224])."""
    name, sep, dims = text.rpartition(":")
    try:
        shape = [int(d) for d in dims.lower().split("x")] if sep and name else None
    except ValueError:
        shape = None
    if not shape or any(d < 0 for d in shape):
        raise ValueError(f"--input-shape '{text}': expected NAME:DIMS, like x:1x3x224x224")
    return name, shape


def random_feeds(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]], seed: int = 0
) -> dict[str, np.ndarray]:
    """Random inputs of the declared types and shapes; a symbolic batch (first) dimension is 1,
    any other unknown size must come from `input_shapes`."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if value.name in input_shapes:
            shape = list(input_shapes[value.name])
        else:
            shape = []
            for axis, dim in enumerate(tensor.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    shape.append(dim.dim_value)
                elif axis == 0:
                    shape.append(1)
                else:
                    raise CheckError(
                        f"input '{value.name}' has an unknown size on axis {axis}: "
                        f"give it with --input-shape {value.name}:DIMS"
                    )
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[value.name] = np.zeros(shape, dtype=dtype)
    return feeds


def _session(model: onnx.ModelProto, plugin: bool, optimize: bool) -> ort.InferenceSession:
    options = session_options() if plugin else ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Relative L2 error for floats (inf on new NaNs or a shape change); mismatch rate otherwise."""
    if actual.shape != expected.shape:
        return float("inf")
    if not np.issubdtype(expected.dtype, np.floating):
        return float(np.mean(actual != expected)) if expected.size else 0.0
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if (nan_a != nan_e).any():
        return float("inf")
    a, e = np.where(nan_a, 0, a), np.where(nan_e, 0, e)
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-30))


def check(
    reference: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
    original: onnx.ModelProto | None = None,
    runs: int = 2,
) -> CheckResult:
    """Compares `rewritten` (plugin) with `reference` (ORT's own kernels) on `feeds`, or on
    `runs` sets of random inputs. With `original` (the model before pruning), also measures how
    far pruning moved the outputs."""
    if feeds is None:
        feeds = [random_feeds(reference, input_shapes or {}, seed) for seed in range(runs)]
    ref_opt, ref_plain = _session(reference, False, True), _session(reference, False, False)
    candidate = _session(rewritten, True, True)
    names = [o.name for o in ref_opt.get_outputs()]
    errors = dict.fromkeys(names, 0.0)
    spread = dict.fromkeys(names, 0.0)
    drift = dict.fromkeys(names, 0.0) if original is not None else None
    source = _session(original, False, True) if original is not None else None
    for feed in feeds:
        expected = ref_opt.run(None, dict(feed))
        for name, e, a, p in zip(names, expected, candidate.run(None, dict(feed)), ref_plain.run(None, dict(feed))):
            errors[name] = max(errors[name], _error(a, e))
            spread[name] = max(spread[name], _error(p, e))
        if source is not None:
            for name, e, o in zip(names, expected, source.run(None, dict(feed))):
                drift[name] = max(drift[name], _error(e, o))
    tolerances = {n: max(MIN_TOLERANCE, SENSITIVITY_FACTOR * spread[n]) for n in names}
    worst = max(names, key=lambda n: errors[n] / tolerances[n])
    result = CheckResult(
        passed=all(errors[n] <= tolerances[n] for n in names),
        tolerance=tolerances[worst],
        sensitivity=spread[worst],
        worst_output=worst,
        worst_error=errors[worst],
        errors=errors,
        pruning_drift=drift,
    )
    log.info("check: %s", result)
    return result
