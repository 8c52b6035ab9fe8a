"""--check: run the reference model (ORT's dense Conv) and the rewritten one (the plugin) on the
same random inputs and compare, with a tolerance scaled by the model's own float32 sensitivity."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import onnx

from . import model_io
from ._plugin import session_options
from .report import CheckResult
from .shapes import first_unknown_axis, resolve_shape

if TYPE_CHECKING:
    import onnxruntime

# A model in memory, or the path of a model file (whose external data lies beside it).
ModelSource = Union[onnx.ModelProto, str, os.PathLike]

log = logging.getLogger(__name__)

# A sound rewrite changes only the order of float32 additions, so its error is of the size of
# the model's own spread between ORT's optimized and unoptimized runs; a wrong one is far above.
SENSITIVITY_FACTOR = 10.0
MIN_TOLERANCE = 1e-4


# The most bytes of random data generated for one input (--check and the end-to-end check): a
# declared size beyond it is refused by name rather than failing in NumPy's allocator.
MAX_FEED_BYTES = 1 << 31


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


def _dims(dims: Sequence) -> str:
    return "x".join("?" if d is None else str(d) for d in dims)


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds: graph inputs that are not initializers."""
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def declared_shape(value: onnx.ValueInfoProto) -> list[int | None] | None:
    """A tensor input's declared sizes (None where unknown), or None without a declared shape."""
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim]


def validate_input_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> None:
    """Raises ValueError unless each shape names one of the model's inputs, has its rank, sizes of
    at least 1, and agrees with the sizes the model declares."""
    inputs = {v.name: v for v in graph_inputs(model)}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ValueError(f"the model has no input '{name}' (its inputs: {', '.join(inputs) or 'none'})")
        if any(d < 1 for d in shape):
            raise ValueError(f"sizes must be at least 1, got {_dims(shape)}")
        if not inputs[name].type.HasField("tensor_type"):
            raise ValueError(f"input '{name}' is not a tensor")
        declared = declared_shape(inputs[name])
        if declared is None:
            continue
        if len(declared) != len(shape):
            raise ValueError(f"input '{name}' has rank {len(declared)}, not {len(shape)}")
        if any(fixed is not None and fixed != size for fixed, size in zip(declared, shape)):
            raise ValueError(
                f"input '{name}' is declared {_dims(declared)}; a shape can only fix its unknown (?) sizes"
            )


def unknown_inputs(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """'NAME (DIMS)' for each tensor input with sizes neither declared nor given."""
    unknown = []
    for value in graph_inputs(model):
        declared = declared_shape(value)
        if value.name not in input_shapes and value.type.HasField("tensor_type"):
            if declared is None or None in declared:
                unknown.append(f"'{value.name}' ({_dims(declared) if declared is not None else 'no shape'})")
    return unknown


def random_feeds(
    model: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]],
    seed: int = 0,
    given: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Random inputs of the declared types and shapes, except those `given`; an unknown batch
    (first) size is 1 (shapes.resolve_shape), any other unknown size must come from `input_shapes`."""
    rng = np.random.default_rng(seed)
    feeds = dict(given or {})
    for value in graph_inputs(model):
        if value.name in feeds:
            continue
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if value.name in input_shapes:
            shape = list(input_shapes[value.name])
        else:
            declared = declared_shape(value) or []
            shape = resolve_shape(declared)
            if shape is None:
                raise CheckError(
                    f"input '{value.name}' has an unknown size on axis {first_unknown_axis(declared)}: "
                    f"give it with --input-shape {value.name}:DIMS"
                )
        _check_feed_size(value.name, shape, dtype)
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[value.name] = np.zeros(shape, dtype=dtype)
    return feeds


def feed_too_large(shape: Sequence[int], dtype: type = np.float32) -> str | None:
    """Why random data of `shape` is not generated (over MAX_FEED_BYTES; the values are drawn
    in float64, 8 bytes an element at least), or None."""
    elements = math.prod(int(d) for d in shape)
    needed = elements * max(np.dtype(dtype).itemsize, 8)
    if needed <= MAX_FEED_BYTES:
        return None
    return (
        f"of shape {_dims(shape)} ({elements} elements) needs {needed / 2**30:.3g} GiB of random data, "
        f"over the limit of {MAX_FEED_BYTES / 2**30:.0f} GiB per input"
    )


def _check_feed_size(name: str, shape: Sequence[int], dtype: np.dtype) -> None:
    """CheckError naming the input and the limit when a random input of `shape` is too large."""
    why = feed_too_large(shape, dtype)
    if why is not None:
        raise CheckError(f"input '{name}' {why}")


@contextlib.contextmanager
def _loadable(source: ModelSource) -> Iterator[str | bytes]:
    """What InferenceSession takes for `source`: a path as it is (ORT reads the external data
    beside it); a model as bytes, or, past protobuf's 2 GiB limit, as a copy saved with external
    data in a temporary folder."""
    if not isinstance(source, onnx.ModelProto):
        yield os.fspath(source)
        return
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model_io.every_tensor(source)):
        raise CheckError("a model given in memory keeps tensors in external files: pass its path instead")
    if model_io.tensor_bytes(source) <= model_io.EXTERNAL_DATA_THRESHOLD:
        yield source.SerializeToString()
        return
    with tempfile.TemporaryDirectory(prefix="onnx-sparsify-check.") as folder:
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        path = Path(folder) / "model.onnx"
        model_io.save_model(copy, path, external_data=True)
        del copy
        yield str(path)


def _graph_of(source: ModelSource) -> onnx.ModelProto:
    """The model, or its graph without the tensor data when given by path."""
    if isinstance(source, onnx.ModelProto):
        return source
    return onnx.load(os.fspath(source), load_external_data=False)


def _session(model: str | bytes, plugin: bool, optimize: bool) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = session_options() if plugin else ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def relative_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    """||actual - expected|| / ||expected||, in float64 (the error measure of --check, the test
    suite and the benchmarks)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-30))


def _error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Relative L2 error over the finite values, for floats; mismatch rate otherwise. Non-finite
    values are compared by position: the same NaN, +inf and -inf in the same places agree, any
    other difference (or another shape) is an infinite error."""
    if actual.shape != expected.shape:
        return float("inf")
    if not np.issubdtype(expected.dtype, np.floating):
        return float(np.mean(actual != expected)) if expected.size else 0.0
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    for kind in (np.isnan, np.isposinf, np.isneginf):
        if (kind(a) != kind(e)).any():
            return float("inf")
    finite = np.isfinite(e)
    return relative_l2(a[finite], e[finite])


def check(
    reference: ModelSource,
    rewritten: ModelSource,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
    original: ModelSource | None = None,
    runs: int = 2,
) -> CheckResult:
    """Compares `rewritten` (plugin) with `reference` (ORT's own kernels) on `feeds`, or on
    `runs` sets of random inputs. With `original` (the model before pruning), also measures how
    far pruning moved the outputs. Each model is a ModelProto or the path of a model file
    (needed for a model whose tensors were saved to external data); none is modified."""
    if feeds is None:
        graph = _graph_of(reference)
        try:
            validate_input_shapes(graph, input_shapes or {})
        except ValueError as e:
            raise CheckError(str(e)) from None
        feeds = [random_feeds(graph, input_shapes or {}, seed) for seed in range(runs)]
    with contextlib.ExitStack() as stack:  # temporary copies live until the last run
        ref = stack.enter_context(_loadable(reference))
        ref_opt, ref_plain = _session(ref, False, True), _session(ref, False, False)
        del ref
        candidate = _session(stack.enter_context(_loadable(rewritten)), True, True)
        source = _session(stack.enter_context(_loadable(original)), False, True) if original is not None else None
        names = [o.name for o in ref_opt.get_outputs()]
        errors = dict.fromkeys(names, 0.0)
        spread = dict.fromkeys(names, 0.0)
        drift = dict.fromkeys(names, 0.0) if source is not None else None
        for feed in feeds:
            expected = ref_opt.run(None, dict(feed))
            actual, plain = candidate.run(None, dict(feed)), ref_plain.run(None, dict(feed))
            for name, e, a, p in zip(names, expected, actual, plain):
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
