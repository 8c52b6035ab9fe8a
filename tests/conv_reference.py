"""An independent float64 reference for SparseConv, written from docs/operator.md and ONNX's Conv
rather than from the plugin's sources, for the fuzz test (tests/test_fuzz.py).

`sparse_conv_reference(model, x)` reads a single-node SparseConv model exactly as ONNX Runtime
would receive it (typed attributes, initializers of any dtype and rank) and either

- raises `InvalidModel` when the contract says the model must be refused, or
- raises `Unverifiable` when the model is valid but cannot be evaluated here (too big), or
- returns the float64 output together with a magnitude scale for the comparison tolerance.

The convolution itself is direct: for every kernel tap with a nonzero weight, the input is
sliced at the tap's offset with the stride (numpy views, no padded copy), and the contribution
of all channels of a group is one tensordot. Only the in-bounds part of the input and only the
CSR's explicit entries contribute, so NaN and infinities in X propagate as in a sparse kernel:
a NaN reaches an output exactly when some explicit weight multiplies it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper
from onnx_sparsify._contract import ACTIVATIONS, MAX_EPILOGUE_STEPS

# Limits on what the reference evaluates (elements): far above the fuzz test's small shapes,
# far below what would strain the machine.
MAX_OUTPUT_ELEMENTS = 1 << 21
MAX_DENSE_WEIGHT_ELEMENTS = 1 << 22

# The contract's table of steps (activation -> default activation_params; the tuple's length is
# the accepted count) and chain length, as the package reads them from the kernels (_core):
# test_activation_fusion checks them against docs/operator.md, which this reference implements.
SPEC_DEFAULTS = ACTIVATIONS
MAX_STEPS = MAX_EPILOGUE_STEPS
NO_ACTIVATION = ("", "none")
AUTO_PAD_VALUES = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


class InvalidModel(Exception):
    """The model breaks SparseConv's contract: a correct plugin must refuse it."""


class Unverifiable(Exception):
    """The model is valid, but the reference cannot check it: its output or dense weight is too
    large, or its weights are not finite (then zero padding times inf is NaN in one correct
    kernel and absent in another)."""


@dataclass(frozen=True)
class ConvParams:
    """A validated convolution: everything the numeric part needs."""

    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...] | None  # explicit pads (begins then ends), None when absent
    group: int
    auto_pad: str
    activation: str  # the steps, comma-separated ("" for none)
    activation_params: tuple[float, ...]  # every step's, in order, defaults filled in
    activation_slopes: tuple[float, ...]  # PRelu's
    in_channels_per_group: int | None


@dataclass(frozen=True)
class ReferenceResult:
    """The expected output, and the L2 norm of the terms that were summed into it
    (sum of |w * x| plus |bias|, before the activation), which bounds float32 rounding error."""

    y: np.ndarray
    magnitude: float


# ---------------------------------------------------------------------------------------------
# Padding and output sizes


def same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    """Begin and end padding of one axis for auto_pad SAME_UPPER / SAME_LOWER.

    The output size is ceil(size / stride) and ONNX's total padding is
    `t = (out - 1) * stride + (kernel - 1) * dilation + 1 - size`. For t >= 0 the begin pad is
    t // 2 (SAME_UPPER) or (t + 1) // 2 (SAME_LOWER). A stride longer than the kernel makes t
    negative; there SparseConv computes what ONNX Runtime's Conv computes (docs/operator.md),
    which crops the start of the input by (-t - 1) // 2 (SAME_UPPER) or max(0, (-t - 2) // 2)
    (SAME_LOWER). That is NOT C++'s t / 2 and (t + 1) / 2 truncated toward zero (ORT's
    ComputePad formula): e.g. size 6, kernel 1, stride 3, SAME_UPPER has t = -2 and ORT reads
    x[0], x[3], not x[1], x[4]. test_same_padding_matches_onnxruntime checks this rule against
    ORT's Conv. With a dilation (ORT's Conv refuses SAME there) SparseConv follows ONNX and
    onnx.reference, which clamp t at 0; the contract and the plugin decide this per axis.
    """
    out = -(-size // stride)
    total = (out - 1) * stride + (kernel - 1) * dilation + 1 - size
    if dilation != 1:
        total = max(0, total)
    if total >= 0:
        begin = total // 2 if upper else (total + 1) // 2
    else:
        begin = -((-total - 1) // 2) if upper else -max(0, (-total - 2) // 2)
    return begin, total - begin


def resolve_pads(params: ConvParams, spatial: Sequence[int]) -> tuple[list[int], list[int]]:
    """Begin and end pads of every spatial axis for this input size."""
    k = len(params.kernel_shape)
    if params.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pairs = [
            same_pads(n, kk, s, d, params.auto_pad == "SAME_UPPER")
            for n, kk, s, d in zip(spatial, params.kernel_shape, params.strides, params.dilations)
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if params.auto_pad == "VALID" or params.pads is None:
        return [0] * k, [0] * k
    return list(params.pads[:k]), list(params.pads[k:])


def output_sizes(params: ConvParams, spatial: Sequence[int], begins: Sequence[int], ends: Sequence[int]) -> list[int]:
    """Output size of every spatial axis; InvalidModel when a dilated kernel does not fit."""
    sizes = []
    for axis, (n, kk, s, d, b, e) in enumerate(
        zip(spatial, params.kernel_shape, params.strides, params.dilations, begins, ends)
    ):
        dilated = (kk - 1) * d + 1
        padded = n + b + e
        if padded < dilated:
            raise InvalidModel(f"axis {axis}: dilated kernel {dilated} exceeds padded input {padded}")
        sizes.append((padded - dilated) // s + 1)
    return sizes


# ---------------------------------------------------------------------------------------------
# Attributes


def _attributes(node: onnx.NodeProto) -> dict[str, AttributeProto]:
    return {a.name: a for a in node.attribute}


def _typed(attrs: dict[str, AttributeProto], name: str, *types: int) -> AttributeProto | None:
    """The attribute, or None when absent; InvalidModel when it has another type."""
    attr = attrs.get(name)
    if attr is None:
        return None
    if attr.type not in types:
        raise InvalidModel(f"attribute {name} has type {AttributeProto.AttributeType.Name(attr.type)}")
    return attr


def _spatial_ints(attrs: dict[str, AttributeProto], name: str, count: int, minimum: int) -> tuple[int, ...] | None:
    attr = _typed(attrs, name, AttributeProto.INTS)
    if attr is None:
        return None
    values = tuple(int(v) for v in attr.ints)
    if len(values) != count:
        raise InvalidModel(f"{name} has {len(values)} values, expected {count}")
    if any(v < minimum for v in values):
        raise InvalidModel(f"{name} {values} has a value below {minimum}")
    return values


def _activation(attrs: dict[str, AttributeProto]) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """The epilogue's steps (comma-separated), all their parameters and PRelu's slopes (float32,
    as the plugin stores them); activation_params may be FLOATS or INTS, both meaning the same
    numbers, and is empty (every step's defaults) or every step's parameters in order."""
    name_attr = _typed(attrs, "activation", AttributeProto.STRING)
    name = name_attr.s.decode("utf-8", "replace") if name_attr is not None else ""
    steps = [] if name in NO_ACTIVATION else name.split(",")
    for step in steps:
        if step not in SPEC_DEFAULTS:
            raise InvalidModel(f"unknown activation {step!r}")
    if len(steps) > MAX_STEPS:
        raise InvalidModel(f"{len(steps)} epilogue steps")
    params_attr = _typed(attrs, "activation_params", AttributeProto.FLOATS, AttributeProto.INTS)
    given: tuple[float, ...] = ()
    if params_attr is not None:
        raw = params_attr.floats if params_attr.type == AttributeProto.FLOATS else params_attr.ints
        given = tuple(float(np.float32(v)) for v in raw)
    defaults = tuple(p for step in steps for p in SPEC_DEFAULTS[step])
    if given and len(given) != len(defaults):
        raise InvalidModel(f"activation {name!r} takes {len(defaults)} params, got {len(given)}")
    if any(math.isnan(p) for p in given):
        raise InvalidModel("activation_params contains NaN")
    slopes_attr = _typed(attrs, "activation_slopes", AttributeProto.FLOATS, AttributeProto.INTS)
    slopes: tuple[float, ...] = ()
    if slopes_attr is not None:
        raw = slopes_attr.floats if slopes_attr.type == AttributeProto.FLOATS else slopes_attr.ints
        slopes = tuple(float(np.float32(v)) for v in raw)
    prelus = steps.count("PRelu")
    if prelus > 1 or (prelus == 1) != bool(slopes):
        raise InvalidModel(f"{prelus} PRelu steps with {len(slopes)} slopes")
    if any(math.isnan(v) for v in slopes):
        raise InvalidModel("activation_slopes contains NaN")
    return ",".join(steps), given or defaults, slopes


def _int(attrs: dict[str, AttributeProto], name: str, minimum: int) -> int | None:
    attr = _typed(attrs, name, AttributeProto.INT)
    if attr is not None and attr.i < minimum:
        raise InvalidModel(f"{name} {attr.i} is below {minimum}")
    return None if attr is None else int(attr.i)


def _auto_pad(attrs: dict[str, AttributeProto], pads_given: bool) -> str:
    attr = _typed(attrs, "auto_pad", AttributeProto.STRING)
    auto_pad = attr.s.decode("utf-8", "replace") if attr is not None else "NOTSET"
    if auto_pad not in AUTO_PAD_VALUES:
        raise InvalidModel(f"auto_pad {auto_pad!r}")
    if auto_pad != "NOTSET" and pads_given:
        raise InvalidModel("auto_pad and pads both set")
    return auto_pad


def parse_attributes(node: onnx.NodeProto) -> ConvParams:
    """Validates the node's attributes against the contract (types, counts, ranges)."""
    attrs = _attributes(node)
    kernel_attr = _typed(attrs, "kernel_shape", AttributeProto.INTS)
    if kernel_attr is None:
        raise InvalidModel("kernel_shape is required")
    k = len(kernel_attr.ints)
    if not 1 <= k <= 3:
        raise InvalidModel(f"kernel_shape has {k} values")
    kernel = tuple(int(v) for v in kernel_attr.ints)
    if min(kernel) < 1:
        raise InvalidModel(f"kernel_shape {kernel}")
    pads = _spatial_ints(attrs, "pads", 2 * k, 0)
    activation, params, slopes = _activation(attrs)
    return ConvParams(
        kernel_shape=kernel,
        strides=_spatial_ints(attrs, "strides", k, 1) or (1,) * k,
        dilations=_spatial_ints(attrs, "dilations", k, 1) or (1,) * k,
        pads=pads,
        group=_int(attrs, "group", 1) or 1,
        auto_pad=_auto_pad(attrs, pads is not None),
        activation=activation,
        activation_params=params,
        activation_slopes=slopes,
        in_channels_per_group=_int(attrs, "in_channels_per_group", 1),
    )


# ---------------------------------------------------------------------------------------------
# Inputs


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _csr_arrays(node: onnx.NodeProto, inits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(node.input) < 4:
        raise InvalidModel("SparseConv needs 4 inputs")
    try:
        values, cols, row_ptr = (inits[name] for name in node.input[1:4])
    except KeyError as missing:
        raise InvalidModel(f"CSR input {missing} is not an initializer") from None
    if values.dtype != np.float32 or values.ndim != 1:
        raise InvalidModel(f"W_values is {values.dtype} of rank {values.ndim}")
    if cols.dtype != row_ptr.dtype or cols.dtype not in (np.int32, np.int64):
        raise InvalidModel(f"index types {cols.dtype} / {row_ptr.dtype}")
    if cols.ndim != 1 or row_ptr.ndim != 1:
        raise InvalidModel("CSR index arrays must be 1-D")
    return values, cols.astype(np.int64), row_ptr.astype(np.int64)


def _bias(node: onnx.NodeProto, inits: dict[str, np.ndarray], out_channels: int) -> np.ndarray | None:
    if len(node.input) < 5 or not node.input[4]:
        return None
    bias = inits.get(node.input[4])
    if bias is None:
        raise InvalidModel("the fuzz models only use a constant bias")
    if bias.dtype != np.float32 or bias.shape != (out_channels,):
        raise InvalidModel(f"bias is {bias.dtype}{list(bias.shape)}, expected float32[{out_channels}]")
    return bias.astype(np.float64)


def validate_csr(values: np.ndarray, cols: np.ndarray, row_ptr: np.ndarray, group: int, column_limit: int) -> int:
    """Checks the CSR structure; returns M, the number of output channels."""
    if row_ptr.size < 2:
        raise InvalidModel("W_row_ptr needs M + 1 >= 2 entries")
    if cols.size != values.size:
        raise InvalidModel("W_col_indices and W_values differ in length")
    rows = row_ptr.size - 1
    if rows % group:
        raise InvalidModel(f"{rows} output channels not divisible by group {group}")
    if row_ptr[0] != 0 or np.any(np.diff(row_ptr) < 0) or row_ptr[-1] != values.size:
        raise InvalidModel(f"W_row_ptr {row_ptr.tolist()} is not a valid row pointer for {values.size} values")
    if cols.size and (cols.min() < 0 or cols.max() >= column_limit):
        raise InvalidModel(f"a column index is outside [0, {column_limit})")
    row_of = np.repeat(np.arange(rows), np.diff(row_ptr))
    order = np.lexsort((cols, row_of))  # by row, then column: a repeat sits next to its twin
    if np.any((np.diff(row_of[order]) == 0) & (np.diff(cols[order]) == 0)):
        raise InvalidModel("a row repeats a column")
    return rows


def csr_to_dense(
    values: np.ndarray, cols: np.ndarray, row_ptr: np.ndarray, in_channels_per_group: int, kernel_shape: Sequence[int]
) -> np.ndarray:
    """The dense float64 weight W[M, C/group, k...] of a validated CSR weight: the column is the
    C-order position in the C/group x kernel_shape block."""
    rows = row_ptr.size - 1
    width = in_channels_per_group * math.prod(kernel_shape)
    dense = np.zeros((rows, width), np.float64)
    dense[np.repeat(np.arange(rows), np.diff(row_ptr)), cols] = values
    return dense.reshape(rows, in_channels_per_group, *kernel_shape)


# ---------------------------------------------------------------------------------------------
# Numerics


def _tap_window(out: int, tap_offset: int, stride: int, size: int) -> tuple[int, int] | None:
    """Outputs o in [lo, hi) read input o * stride + tap_offset inside [0, size); None if none."""
    lo = max(0, -(tap_offset // stride))  # ceil(-offset / stride): first o reading index >= 0
    last = size - 1 - tap_offset
    hi = min(out, last // stride + 1) if last >= 0 else 0
    return (lo, hi) if lo < hi else None


def conv_nd(
    x: np.ndarray,
    w: np.ndarray,
    strides: Sequence[int],
    dilations: Sequence[int],
    begins: Sequence[int],
    out_sizes: Sequence[int],
    group: int,
) -> np.ndarray:
    """Direct grouped convolution in float64 without bias: y[n, m, o...] = sum over c and taps t
    of w[m, c, t] * x[n, g*C/g + c, o*stride - begin + t*dilation], positions outside the input
    contributing nothing. Pads may be negative (cropping). Only taps with a nonzero weight are
    visited; `w` must be finite (NaN/inf would turn zero-weight products into NaN)."""
    m, cg = w.shape[:2]
    mg = m // group
    y = np.zeros((x.shape[0], m, *out_sizes), np.float64)
    for tap in zip(*np.nonzero(w.any(axis=(0, 1)))):
        tap = tuple(int(t) for t in tap)
        block = w[(slice(None), slice(None), *tap)]  # [M, C/group]
        windows = []
        for o, t, s, d, b, size in zip(out_sizes, tap, strides, dilations, begins, x.shape[2:]):
            window = _tap_window(o, t * d - b, s, size)
            if window is None:
                break
            windows.append((window, t * d - b, s))
        else:
            out_index = tuple(slice(lo, hi) for (lo, hi), _, _ in windows)
            in_index = tuple(slice(lo * s + off, (hi - 1) * s + off + 1, s) for (lo, hi), off, s in windows)
            for g in range(group):
                xs = x[(slice(None), slice(g * cg, (g + 1) * cg), *in_index)]  # [N, C/g, win...]
                contrib = np.tensordot(block[g * mg : (g + 1) * mg], xs, axes=([1], [1]))  # [M/g, N, win...]
                y[(slice(None), slice(g * mg, (g + 1) * mg), *out_index)] += np.moveaxis(contrib, 0, 1)
    return y


def conv_nonfinite(x: np.ndarray, w: np.ndarray, conv: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Convolution of an X that may hold NaN or infinities with a finite w, with IEEE semantics
    for the explicit (nonzero) weights only: a NaN input, or +inf and -inf products meeting in
    one sum, give NaN; otherwise an infinite product gives that infinity. `conv(x, w)` is the
    finite convolution."""
    finite = np.isfinite(x)
    y = conv(np.where(finite, x, 0.0), w)
    if finite.all():
        return y
    nonzero, positive, negative = (w != 0).astype(float), (w > 0).astype(float), (w < 0).astype(float)
    pos_inf, neg_inf = (x == np.inf).astype(float), (x == -np.inf).astype(float)
    nans = conv(np.isnan(x).astype(float), nonzero) > 0
    up = (conv(pos_inf, positive) + conv(neg_inf, negative)) > 0
    down = (conv(neg_inf, positive) + conv(pos_inf, negative)) > 0
    y = np.where(up, np.inf, np.where(down, -np.inf, y))
    return np.where(nans | (up & down), np.nan, y)


def apply_activation(y: np.ndarray, name: str, params: Sequence[float], slope: Any = 0.0) -> np.ndarray:
    """One epilogue step in float64, NaN in giving NaN out; `slope` is PRelu's (broadcast
    against y)."""
    with np.errstate(all="ignore"):
        if name == "PRelu":
            return np.where(y >= 0, y, slope * y)
        if name == "QuickGelu":
            return y / (1.0 + np.exp(-params[0] * y))
        if name == "Mish":
            return y * np.tanh(np.logaddexp(0.0, y))
        if name == "Relu":
            return np.maximum(y, 0.0)
        if name == "LeakyRelu":
            return np.where(y >= 0, y, params[0] * y)
        if name == "Clip":
            return np.minimum(np.maximum(y, params[0]), params[1])
        if name == "Sigmoid":
            return 1.0 / (1.0 + np.exp(-y))
        if name == "HardSigmoid":
            return np.clip(params[0] * y + params[1], 0.0, 1.0)
        if name == "HardSwish":
            return y * np.clip(y / 6.0 + 0.5, 0.0, 1.0)
        if name == "SiLU":
            return y / (1.0 + np.exp(-y))
        if name == "Tanh":
            return np.tanh(y)
        if name == "Gelu":
            # 1 + erf(z) = erfc(-z), which keeps the digits 1 + erf loses for negative y
            return 0.5 * y * np.vectorize(math.erfc, otypes=[float])(-y / math.sqrt(2.0))
        if name == "GeluTanh":
            # 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u))
            return y / (1.0 + np.exp(-2.0 * math.sqrt(2.0 / math.pi) * (y + 0.044715 * y**3)))
    return y


def _steps(chain: str, params: Sequence[float]) -> list[tuple[str, tuple[float, ...]]]:
    """The chain's steps with their parameters."""
    steps, rest = [], list(params)
    for name in chain.split(",") if chain else []:
        count = len(SPEC_DEFAULTS[name])
        steps.append((name, tuple(rest[:count])))
        rest = rest[count:]
    return steps


def apply_epilogue(y: np.ndarray, chain: str, params: Sequence[float], slopes: Sequence[float]) -> np.ndarray:
    """The whole epilogue, step after step, on y of shape (N, M, ...)."""
    slope = np.asarray(slopes, np.float64).reshape((1, -1) + (1,) * (y.ndim - 2)) if slopes else 0.0
    for name, step_params in _steps(chain, params):
        y = apply_activation(y, name, step_params, slope)
    return y


def chain_lipschitz(chain: str, params: Sequence[float], slopes: Sequence[float]) -> float:
    """A bound on how much the epilogue can amplify an error in its input."""
    bound = 1.0
    for name, step_params in _steps(chain, params):
        bound *= max(1.0, *(abs(v) for v in slopes)) if name == "PRelu" else lipschitz(name, step_params)
    return bound


def lipschitz(name: str, params: Sequence[float]) -> float:
    """A bound on how much the activation can amplify an error in its input."""
    if name == "QuickGelu":
        return 1.3  # |d/dx x sigmoid(a x)| <= 1 + 0.28 for any a
    if name == "Mish":
        return 1.2  # its slope stays within [-0.22, 1.1]
    if name == "LeakyRelu" or name == "HardSigmoid":
        return max(1.0, abs(params[0]))
    if name == "HardSwish":
        return 2.0  # slope of x * clip(x / 6 + 0.5, 0, 1) stays within [-0.5, 1.5]
    if name in ("SiLU", "Gelu", "GeluTanh"):
        return 1.2  # their slopes stay within [-0.2, 1.2]
    return 1.0


# ---------------------------------------------------------------------------------------------
# The model


def _check_input(params: ConvParams, x_shape: Sequence[int]) -> tuple[int, int]:
    """Validates X's shape against the attributes; returns (C, C/group)."""
    k = len(params.kernel_shape)
    if len(x_shape) != k + 2:
        raise InvalidModel(f"X has rank {len(x_shape)}, kernel_shape needs {k + 2}")
    c = x_shape[1]
    if c < 1 or any(d < 1 for d in x_shape[2:]):
        raise InvalidModel(f"X shape {list(x_shape)} has an empty channel or spatial axis")
    if c % params.group:
        raise InvalidModel(f"{c} channels not divisible by group {params.group}")
    if params.in_channels_per_group is not None and c != params.group * params.in_channels_per_group:
        raise InvalidModel(f"X has {c} channels, in_channels_per_group says {params.in_channels_per_group}")
    return c, c // params.group


def sparse_conv_reference(model: onnx.ModelProto, x: np.ndarray) -> ReferenceResult:
    """What SparseConv must output for `model` (one SparseConv node) fed with `x`."""
    (node,) = model.graph.node
    params = parse_attributes(node)
    _, cg = _check_input(params, x.shape)
    inits = _initializers(model)
    values, cols, row_ptr = _csr_arrays(node, inits)
    kernel_volume = math.prod(params.kernel_shape)
    rows = validate_csr(values, cols, row_ptr, params.group, cg * kernel_volume)
    bias = _bias(node, inits, rows)
    begins, ends = resolve_pads(params, x.shape[2:])
    out_sizes = output_sizes(params, x.shape[2:], begins, ends)
    if x.shape[0] * rows * math.prod(out_sizes) > MAX_OUTPUT_ELEMENTS:
        raise Unverifiable(f"output of {x.shape[0]} x {rows} x {out_sizes}")
    if rows * cg * kernel_volume > MAX_DENSE_WEIGHT_ELEMENTS:
        raise Unverifiable(f"dense weight of {rows} x {cg} x {params.kernel_shape}")
    w = csr_to_dense(values.astype(np.float64), cols, row_ptr, cg, params.kernel_shape)
    if not np.isfinite(w).all():
        raise Unverifiable("non-finite weights")

    def conv(xx: np.ndarray, ww: np.ndarray) -> np.ndarray:
        return conv_nd(xx, ww, params.strides, params.dilations, begins, out_sizes, params.group)

    x64 = x.astype(np.float64)
    y = conv_nonfinite(x64, w, conv)
    terms = conv(np.abs(np.where(np.isfinite(x64), x64, 0.0)), np.abs(w))
    if bias is not None:
        shape = (1, rows) + (1,) * len(out_sizes)
        with np.errstate(invalid="ignore"):
            y = y + bias.reshape(shape)
        terms = terms + np.abs(np.where(np.isfinite(bias), bias, 0.0)).reshape(shape)
    if len(params.activation_slopes) not in (0, 1, rows):
        raise InvalidModel(f"{len(params.activation_slopes)} activation_slopes for {rows} output channels")
    y = apply_epilogue(y, params.activation, params.activation_params, params.activation_slopes)
    magnitude = float(np.linalg.norm(terms)) * chain_lipschitz(
        params.activation, params.activation_params, params.activation_slopes
    )
    return ReferenceResult(y, magnitude)
