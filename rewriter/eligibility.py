"""Whether a Conv can become SparseConv: the reasons one cannot, and the malformed attributes
ONNX Runtime would refuse (raised, naming the node)."""

from __future__ import annotations

import math

import numpy as np
import onnx

from ._contract import MAX_ATTRIBUTE_VALUE, MAX_DILATED_EXTENT
from .context import Context
from .graph_walk import Scope, attribute, node_label, refers_to_caller
from .model_io import MalformedModelError
from .result import Code, Refusal
from .shapes import resolve_shape

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
_INTS, _INT, _STRING = onnx.AttributeProto.INTS, onnx.AttributeProto.INT, onnx.AttributeProto.STRING


def _check_group(node: onnx.NodeProto) -> None:
    """MalformedModelError, naming the node, for a group that is not an integer of at least 1:
    ONNX Runtime refuses it whatever the weight (checked before the weight decides anything)."""
    group = attribute(node, "group", 1, _INT)
    if group < 1:
        raise MalformedModelError(f"node '{node_label(node)}': attribute 'group' is {group}; it must be at least 1")


def _check_attributes(node: onnx.NodeProto, k: int) -> None:
    """Raises MalformedModelError, naming the node, for the Conv attributes ONNX Runtime refuses
    when it loads a model: a wrong type, count or range, an unknown auto_pad, auto_pad with pads."""
    label = node_label(node)
    for name in ("kernel_shape", "strides", "pads", "dilations"):
        attribute(node, name, None, _INTS)
    _check_group(node)
    auto_pad = attribute(node, "auto_pad", "NOTSET", _STRING)
    for name, count, low in (("strides", k, 1), ("dilations", k, 1), ("pads", 2 * k, 0)):
        values = attribute(node, name, None)
        if values is None:
            continue
        if len(values) != count:
            raise MalformedModelError(
                f"node '{label}': attribute '{name}' has {len(values)} values, a {k}D Conv takes {count}"
            )
        if any(v < low for v in values):
            raise MalformedModelError(f"node '{label}': attribute '{name}' {list(values)} has a value below {low}")
    if auto_pad not in _AUTO_PADS:
        raise MalformedModelError(f"node '{label}': unknown auto_pad '{auto_pad}' (ONNX has {', '.join(_AUTO_PADS)})")
    if auto_pad != "NOTSET" and attribute(node, "pads", None) is not None:
        raise MalformedModelError(f"node '{label}': both auto_pad {auto_pad} and pads are set")


def _beyond_plugin_bounds(node: onnx.NodeProto, weight: np.ndarray, group: int) -> Refusal | None:
    """Why the plugin would refuse this Conv's attributes as SparseConv's (conv_params.cc's
    bounds, read through _core), or None: ONNX Runtime's Conv may run it, so it stays dense."""
    k = weight.ndim - 2
    values = {
        "kernel_shape": list(weight.shape[2:]),
        "strides": list(attribute(node, "strides", [1] * k)),
        "dilations": list(attribute(node, "dilations", [1] * k)),
        "pads": list(attribute(node, "pads", [0] * 2 * k)),
        "group": [group],
        "in_channels_per_group": [weight.shape[1]],
    }
    for name, given in values.items():
        if any(v > MAX_ATTRIBUTE_VALUE for v in given):
            return Refusal(
                Code.CONV_UNSUPPORTED,
                f"{name} {given} exceeds the plugin's bound of {MAX_ATTRIBUTE_VALUE} per value; left dense",
            )
    for axis, (size, dilation) in enumerate(zip(values["kernel_shape"], values["dilations"])):
        if (size - 1) * dilation >= MAX_DILATED_EXTENT:
            return Refusal(
                Code.CONV_UNSUPPORTED,
                f"the dilated kernel spans {(size - 1) * dilation} on axis {axis}, beyond the plugin's bound of "
                f"{MAX_DILATED_EXTENT - 1}; left dense",
            )
    return None


# The plugin computes element counts of X, its padded and phase-split copy and Y in 64 bits and
# refuses a declared shape whose counts overflow; the rewriter leaves dense, with a margin for
# the copy's row alignment, a Conv whose counts reach this.
MAX_ELEMENTS = 1 << 62


def _sizes_overflow(node: onnx.NodeProto, weight: np.ndarray, x_shape: list | None) -> Refusal | None:
    """Why the plugin would refuse this Conv's declared input size (its element counts overflow
    64 bits), or None. ORT's Conv loads such a model; the Conv stays dense."""
    k = weight.ndim - 2
    sizes = resolve_shape(x_shape) if x_shape is not None and len(x_shape) == k + 2 else None
    if not sizes:
        return None
    pads = list(attribute(node, "pads", [0] * 2 * k))
    dilations = list(attribute(node, "dilations", [1] * k))
    padded = [
        d + (pads[i] + pads[i + k] if len(pads) == 2 * k else 0) + (weight.shape[2 + i] - 1) * dilations[i]
        for i, d in enumerate(sizes[2:])
    ]
    elements = max(
        math.prod(sizes), math.prod([sizes[0], sizes[1], *padded]), math.prod([sizes[0], weight.shape[0], *padded])
    )
    if elements >= MAX_ELEMENTS:
        return Refusal(
            Code.CONV_UNSUPPORTED,
            f"input of size {'x'.join(map(str, sizes))}: its element counts reach 2^62, beyond the plugin's 64-bit "
            "sizes; left dense",
        )
    return None


def eligibility(node: onnx.NodeProto, scope: Scope, weight: np.ndarray | None, ctx: Context) -> Refusal | None:
    """Why this Conv cannot become SparseConv, or None. Raises MalformedModelError where ONNX
    Runtime would refuse the model itself."""
    _check_group(node)
    if len(node.input) < 2:
        return Refusal(Code.MISSING_INPUT, "Conv without a weight input")
    if weight is None:
        return Refusal(Code.NOT_CONSTANT, "weight is not a constant (a graph input or computed)")
    if refers_to_caller(node):
        return Refusal(Code.FROM_CALLER, "its attributes come from the function's caller")
    if weight.dtype != np.float32:
        return Refusal(Code.WRONG_DTYPE, f"weight is {weight.dtype}, not float32")
    if not 3 <= weight.ndim <= 5:
        return Refusal(Code.WRONG_SHAPE, f"weight has rank {weight.ndim}; SparseConv covers 1D, 2D and 3D")
    if 0 in weight.shape:
        return Refusal(Code.WRONG_SHAPE, f"weight of shape {list(weight.shape)} has a zero size")
    k = weight.ndim - 2
    _check_attributes(node, k)
    if len(node.input) > 2 and node.input[2]:
        bias = scope.constant(node.input[2], reader=node)
        if bias is None or bias.dtype != np.float32 or bias.shape != (weight.shape[0],):
            code = (
                Code.NOT_CONSTANT
                if bias is None
                else Code.WRONG_DTYPE
                if bias.dtype != np.float32
                else Code.WRONG_SHAPE
            )
            return Refusal(code, "bias is not a float32 constant of shape [M]")
    kernel = list(attribute(node, "kernel_shape", weight.shape[2:]))
    if kernel != list(weight.shape[2:]):
        return Refusal(
            Code.WRONG_SHAPE, f"kernel_shape {kernel} disagrees with the weight's shape {list(weight.shape)}"
        )
    group = attribute(node, "group", 1)
    if group < 1 or weight.shape[0] % group:
        return Refusal(Code.WRONG_SHAPE, f"group {group} does not divide the {weight.shape[0]} output channels")
    x_shape = ctx.shapes.get(node.input[0])
    if x_shape and len(x_shape) == k + 2 and isinstance(x_shape[1], int) and x_shape[1] > 0:
        if x_shape[1] != weight.shape[1] * group:
            expects = weight.shape[1] * group
            return Refusal(Code.WRONG_SHAPE, f"input has {x_shape[1]} channels but the weight expects {expects}")
    beyond = _beyond_plugin_bounds(node, weight, group) or _sizes_overflow(node, weight, x_shape)
    if beyond is not None:
        return beyond
    if attribute(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        if any(d != 1 for d in attribute(node, "dilations", [1] * k)):
            return Refusal(
                Code.CONV_UNSUPPORTED, "SAME padding with dilations, which ORT's Conv does not run; left as is"
            )
    return None
