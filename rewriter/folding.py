"""Folding what follows a Conv into it: an inference-mode BatchNormalization, and a Mul, Add, Sub
or Div by a per-channel constant, into W and B, and a chain of activations (single nodes, or
patterns such as x * sigmoid(x)) into SparseConv's fused epilogue.

A BatchNormalization or activation is folded only when the result is exactly what the node
computes: parameters that are not usable as they stand (the wrong shape or type, NaN, a
variance + epsilon that is not positive, a fold that overflows float32, Clip bounds that are
not scalars or cross) leave the node in the graph, with the reason. A stored tensor ONNX Runtime
itself would refuse raises MalformedModelError naming the node instead."""

from __future__ import annotations

import numpy as np
import onnx

from .epilogue import MS_DOMAIN, Activation
from .graph_walk import ONNX_DOMAINS, Scope, attribute, node_label, refers_to_caller
from .model_io import MalformedModelError
from .result import Code, Refusal

_FROM_CALLER = Refusal(Code.FROM_CALLER, "its attributes come from the function's caller")
_OVERFLOW = Refusal(Code.OVERFLOW, "folding it gives weights or a bias that are not finite in float32")


def _other_readers(value: str) -> Refusal:
    """`value` ("its input 'c'") cannot go: other nodes, or the graph's outputs, need it."""
    return Refusal(Code.OTHER_READERS, f"{value} is a graph output or has other readers")


def _float_attr(node: onnx.NodeProto, name: str, default: float) -> float | Refusal:
    """A FLOAT attribute's value, or why it is unusable (ONNX Runtime refuses other types): the
    node stays in the graph, where ORT will say so itself."""
    try:
        return float(attribute(node, name, default, onnx.AttributeProto.FLOAT))
    except MalformedModelError as e:
        return Refusal(Code.BAD_ATTRIBUTE, f"its attribute{str(e).split(': attribute', 1)[1]}")


def batchnorm_params(node: onnx.NodeProto, scope: Scope, channels: int) -> tuple[np.ndarray, np.ndarray] | Refusal:
    """(scale, shift) such that BN(x) = scale * x + shift per channel, for a BatchNormalization
    whose input has `channels` channels; or why it cannot fold."""
    if node.op_type != "BatchNormalization" or node.domain not in ONNX_DOMAINS:
        return Refusal(Code.NOT_APPLICABLE, "not a BatchNormalization")
    if refers_to_caller(node):
        return _FROM_CALLER
    if attribute(node, "training_mode", 0) != 0:
        return Refusal(Code.UNSUPPORTED_MODE, "it is in training mode")
    if attribute(node, "spatial", 1) != 1:
        return Refusal(Code.UNSUPPORTED_MODE, "spatial=0")
    if len(node.input) != 5 or not all(node.input[1:]):
        return Refusal(Code.MISSING_INPUT, "it lacks some of its four parameters")
    if any(node.output[1:]):
        return Refusal(Code.EXTRA_OUTPUTS, "it has more than one output")
    params = [scope.constant(name, reader=node) for name in node.input[1:]]
    if any(p is None for p in params):
        return Refusal(Code.NOT_CONSTANT, "its parameters are not constant")
    dtypes = sorted({str(p.dtype) for p in params if not np.issubdtype(p.dtype, np.floating)})
    if dtypes:
        return Refusal(Code.WRONG_DTYPE, f"its parameters are {', '.join(dtypes)}, not floating point")
    shapes = [list(p.shape) for p in params]
    if any(s != [channels] for s in shapes):
        return Refusal(
            Code.WRONG_SHAPE, f"its parameters have shapes {shapes}, not [{channels}] (the Conv's output channels)"
        )
    eps = _float_attr(node, "epsilon", 1e-5)
    if isinstance(eps, Refusal):
        return eps
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    if not all(np.isfinite(p).all() for p in (gamma, beta, mean, var)) or not np.isfinite(eps):
        return Refusal(Code.NOT_FINITE, "its parameters hold NaN or infinity")
    if not (var + eps > 0).all():
        count = int((var + eps <= 0).sum())
        return Refusal(
            Code.NOT_POSITIVE, f"variance + epsilon is not positive in {count} channels (its output is NaN there)"
        )
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def fold_batchnorm(
    weight: np.ndarray, bias: np.ndarray | None, scale: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | Refusal:
    """W' = W * scale[m], B' = B * scale + shift, computed in float64; or why not, when the
    float32 result would not be finite."""
    b = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        w = (weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32)
        b = (b * scale + shift).astype(np.float32)
    if not (np.isfinite(w).all() and np.isfinite(b).all()) and np.isfinite(weight).all():
        return _OVERFLOW
    return w, b


_AFFINE_OPS = ("Mul", "Add", "Sub", "Div")


def affine_operand(node: onnx.NodeProto, value: str) -> tuple[str, bool] | None:
    """For a Mul, Add, Sub or Div reading `value` (the Conv's result) once: the name of its other
    operand and whether that operand comes first. None for any other node, and for a Div that
    divides by `value` (not affine in it)."""
    if node.op_type not in _AFFINE_OPS or node.domain not in ONNX_DOMAINS or len(node.input) != 2:
        return None
    if list(node.input).count(value) != 1:
        return None
    first = node.input[1] == value
    if node.op_type == "Div" and first:
        return None
    return node.input[0 if first else 1], first


def _per_channel(value: np.ndarray, rank: int, channels: int, what: str = "constant") -> np.ndarray | Refusal:
    """A constant broadcast against a Conv output of `rank` dimensions and `channels` channels,
    as one float64 value per channel; or why it is not constant along every axis but the
    channel axis, or would change the output's shape (naming it "its {what}")."""
    shape = list(value.shape)
    its = f"its {what} of shape {shape}"
    if len(shape) > rank:
        return Refusal(Code.WRONG_SHAPE, f"{its} has a higher rank than the Conv's output ({rank})")
    padded = [1] * (rank - len(shape)) + shape
    if padded[0] != 1:
        return Refusal(Code.WRONG_SHAPE, f"{its} varies along the batch axis")
    if any(d != 1 for d in padded[2:]):
        return Refusal(Code.WRONG_SHAPE, f"{its} varies along a spatial axis")
    if padded[1] not in (1, channels):
        return Refusal(Code.WRONG_SHAPE, f"{its} has {padded[1]} channels, not 1 or {channels}")
    return np.broadcast_to(value.astype(np.float64).reshape(-1), (channels,))


def _per_channel_constant(
    node: onnx.NodeProto, name: str, scope: Scope, rank: int, channels: int, operand: str, constant: str
) -> np.ndarray | Refusal:
    """Input `name` of `node` as one float64 value per channel of a Conv output of `rank`
    dimensions and `channels` channels; or why not (not constant, not float32, varying along
    another axis), naming it "its {operand}" while unread and "its {constant}" once read."""
    value = scope.constant(name, reader=node) if name else None
    if value is None:
        return Refusal(Code.NOT_CONSTANT, f"its {operand} '{name}' is not constant")
    if value.dtype != np.float32:
        return Refusal(Code.WRONG_DTYPE, f"its {constant} '{name}' is {value.dtype}, not float32")
    return _per_channel(value, rank, channels, constant)


def affine_params(
    node: onnx.NodeProto, value: str, scope: Scope, rank: int, channels: int
) -> tuple[np.ndarray | None, np.ndarray | None] | Refusal | None:
    """(scale, shift), either None when absent, such that the node computes scale * value + shift
    per channel, for a Mul, Add, Sub or Div of `value` (a Conv result of `rank` dimensions and
    `channels` channels) by a constant; why it cannot fold; None when the node is none of these."""
    operand = affine_operand(node, value)
    if operand is None:
        return None
    name, first = operand
    if node.attribute:
        names = ", ".join(a.name for a in node.attribute)
        return Refusal(Code.UNSUPPORTED_MODE, f"it has attributes ({names}): the broadcast of opsets before 7")
    per_channel = _per_channel_constant(node, name, scope, rank, channels, "operand", "constant")
    if isinstance(per_channel, Refusal):
        return per_channel
    if not np.isfinite(per_channel).all():
        return Refusal(Code.NOT_FINITE, f"its constant '{name}' holds NaN or infinity")
    kind = node.op_type
    if kind == "Mul":
        return per_channel, None
    if kind == "Add":
        return None, per_channel
    if kind == "Sub":  # value - c, or c - value
        return (-np.ones(channels), per_channel) if first else (None, -per_channel)
    zeros = int((per_channel == 0).sum())
    if zeros:
        return Refusal(Code.DIVIDE_BY_ZERO, f"its divisor '{name}' is zero in {zeros} channels")
    with np.errstate(over="ignore", divide="ignore"):
        scale = 1.0 / per_channel
        finite = np.isfinite(scale.astype(np.float32)).all()
    if not finite:
        return Refusal(Code.OVERFLOW, f"the reciprocal of its divisor '{name}' is not finite in float32")
    return scale, None


def fold_affine(
    weight: np.ndarray, bias: np.ndarray | None, scale: np.ndarray | None, shift: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None] | Refusal:
    """W' = W * scale[m], B' = B * scale + shift (B taken as 0 where absent and shift is given),
    computed in float64; or why not, when the float32 result would not be finite."""
    w64 = weight.astype(np.float64)
    b64 = None if bias is None else bias.astype(np.float64)
    if b64 is None and shift is not None:
        b64 = np.zeros(weight.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        if scale is not None:
            w64 = w64 * scale.reshape(-1, *([1] * (weight.ndim - 1)))
            b64 = None if b64 is None else b64 * scale
        if shift is not None:
            b64 = b64 + shift
        w = w64.astype(np.float32)
        b = None if b64 is None else b64.astype(np.float32)
    finite_before = np.isfinite(weight).all() and (bias is None or np.isfinite(bias).all())
    if finite_before and not (np.isfinite(w).all() and (b is None or np.isfinite(b).all())):
        return _OVERFLOW
    return w, b


def _clip_bounds(node: onnx.NodeProto, scope: Scope) -> tuple[float, float] | Refusal:
    """Clip's (min, max), from its inputs (opset 11 on) or attributes, or why they cannot fuse."""
    bounds = []
    for i, (name, default) in enumerate((("min", -np.inf), ("max", np.inf))):
        if len(node.input) > i + 1 and node.input[i + 1]:
            value = scope.constant(node.input[i + 1], reader=node)
            if value is None:
                return Refusal(Code.NOT_CONSTANT, "its bounds are not constant")
            if value.shape not in ((), (1,)) or value.dtype != np.float32:
                what = f"its {name} is {value.dtype} of shape {list(value.shape)}, not a float32 scalar"
                return Refusal(Code.WRONG_DTYPE if value.dtype != np.float32 else Code.WRONG_SHAPE, what)
            bounds.append(float(value.reshape(())))
        else:
            bound = _float_attr(node, name, default)
            if isinstance(bound, Refusal):
                return bound
            bounds.append(bound)
    lo, hi = bounds
    if np.isnan(lo) or np.isnan(hi):
        return Refusal(Code.NOT_FINITE, "a bound is NaN")
    if lo > hi:
        return Refusal(Code.BAD_BOUNDS, f"its min {lo:g} exceeds its max {hi:g}")
    return lo, hi


def _scalar_operand(node: onnx.NodeProto, value: str, scope: Scope) -> float | Refusal | None:
    """For a two-input node reading `value` once: its other operand as a float, when that is a
    float32 constant holding one value (of any shape whose dimensions are all 1); why not when
    it is another constant or not constant; None when the node does not have that form."""
    if len(node.input) != 2 or list(node.input).count(value) != 1:
        return None
    name = node.input[1] if node.input[0] == value else node.input[0]
    constant = scope.constant(name, reader=node) if name else None
    if constant is None:
        return Refusal(Code.NOT_CONSTANT, f"its operand '{name}' is not constant")
    if constant.dtype != np.float32 or constant.size != 1:
        what = f"its constant '{name}' is {constant.dtype} of shape {list(constant.shape)}, not one float32"
        return Refusal(Code.WRONG_DTYPE if constant.dtype != np.float32 else Code.WRONG_SHAPE, what)
    bound = float(constant.reshape(()))
    return Refusal(Code.NOT_FINITE, "its constant is NaN") if np.isnan(bound) else bound


def _prelu_slopes(
    node: onnx.NodeProto, value: str, scope: Scope, rank: int, channels: int
) -> tuple[float, ...] | Refusal:
    """PRelu's slopes as one per channel (or one for all), or why they cannot fuse."""
    if len(node.input) != 2 or node.input[0] != value or node.input[1] == value:
        return Refusal(Code.NOT_CONSTANT, "its slope is not a constant apart from the Conv's output")
    per_channel = _per_channel_constant(node, node.input[1], scope, rank, channels, "slope", "slope")
    if isinstance(per_channel, Refusal):
        return per_channel
    if np.isnan(per_channel).any():
        return Refusal(Code.NOT_FINITE, "its slope holds NaN")
    values = per_channel.astype(np.float32)
    return (float(values[0]),) if (values == values[0]).all() else tuple(float(v) for v in values)


def match_activation(
    node: onnx.NodeProto, value: str, scope: Scope, rank: int, channels: int
) -> Activation | Refusal | None:
    """SparseConv's epilogue step equivalent to a node reading `value` (a Conv result of `rank`
    dimensions and `channels` channels); why there is none for an activation that cannot fuse;
    None for any other node."""
    kind = node.op_type
    if node.domain == MS_DOMAIN and kind == "QuickGelu":
        if refers_to_caller(node):
            return _FROM_CALLER
        alpha = _float_attr(node, "alpha", 1.702)
        if isinstance(alpha, Refusal) or np.isnan(alpha):
            return alpha if isinstance(alpha, Refusal) else Refusal(Code.NOT_FINITE, "its alpha is NaN")
        return Activation("QuickGelu", (alpha,))
    if node.domain not in ONNX_DOMAINS:
        return None
    if kind in ("Relu", "Sigmoid", "HardSwish", "Clip", "LeakyRelu", "HardSigmoid", "Gelu") and refers_to_caller(node):
        return _FROM_CALLER
    if kind in ("Relu", "Sigmoid", "HardSwish", "Tanh", "Mish"):
        # ONNX defines Mish from opset 18 on (Gelu from 20): under an older default-domain opset
        # ONNX Runtime does not know the op, the model never loads, and no version check is needed.
        return Activation(kind)
    if kind in ("Max", "Min"):
        bound = _scalar_operand(node, value, scope)
        if bound is None:
            only = f"only {kind} of the Conv's output and one constant fuses"
            return Refusal(Code.UNSUPPORTED_MODE, f"it has {len(node.input)} inputs; {only}")
        if isinstance(bound, Refusal):
            return bound
        return Activation("Clip", (bound, np.inf) if kind == "Max" else (-np.inf, bound))
    if kind == "PRelu":
        slopes = _prelu_slopes(node, value, scope, rank, channels)
        return slopes if isinstance(slopes, Refusal) else Activation("PRelu", (), slopes)
    if kind == "Gelu":
        approximate = next((a for a in node.attribute if a.name == "approximate"), None)
        if approximate is None:
            return Activation("Gelu")
        if approximate.type != onnx.AttributeProto.STRING:
            kind_name = onnx.AttributeProto.AttributeType.Name(approximate.type)
            return Refusal(Code.BAD_ATTRIBUTE, f"its attribute 'approximate' is {kind_name}, not STRING")
        mode = approximate.s.decode("utf-8", "replace")
        if mode in ("none", "tanh"):
            return Activation("Gelu" if mode == "none" else "GeluTanh")
        return Refusal(Code.UNSUPPORTED_MODE, f"its approximate '{mode}' is neither 'none' nor 'tanh'")
    if kind == "Clip":
        bounds = _clip_bounds(node, scope)
        return bounds if isinstance(bounds, Refusal) else Activation(kind, bounds)
    defaults = {"LeakyRelu": (("alpha", 0.01),), "HardSigmoid": (("alpha", 0.2), ("beta", 0.5))}.get(kind)
    if defaults is None:
        return None
    params = [_float_attr(node, name, default) for name, default in defaults]
    problem = next((p for p in params if isinstance(p, Refusal)), None)
    if problem:
        return problem
    if any(np.isnan(p) for p in params):
        return Refusal(Code.NOT_FINITE, f"its {' or '.join(name for name, _ in defaults)} is NaN")
    return Activation(kind, tuple(params))


# Gated patterns: Mul(v, g(v)) where g is a chain of nodes reading one value (a first Mul or Add
# and a later Mul or Div may take a constant too), keyed by their op types in order.
_GATES = {
    ("Sigmoid",): "SiLU",
    ("Mul", "Sigmoid"): "QuickGelu",  # Swish: x * sigmoid(beta * x)
    ("Softplus", "Tanh"): "Mish",
    ("HardSigmoid",): "HardSwish",  # x * hardsigmoid(x) with alpha 1/6, beta 1/2
    ("Add", "Clip", "Div"): "HardSwish",  # x * (clip(x + 3, 0, 6) / 6)
    ("Add", "Clip", "Mul"): "HardSwish",  # x * (clip(x + 3, 0, 6) * (1/6))
    ("Add", "Clip"): "HardSwish",  # (x * clip(x + 3, 0, 6)) / 6, the Div after the Mul: paddle2onnx
}
_SIXTH = float(np.float32(1.0 / 6.0))


def _is_onnx(node: onnx.NodeProto, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in ONNX_DOMAINS


def _follow_gate(value: str, first: int, graph: onnx.GraphProto, consumers) -> tuple[list[int], tuple[str, ...]] | None:
    """From a node reading `value`, the chain of nodes that ends in a Mul of `value` and the
    chain's result: (its node indices, the chain's op types without that Mul); None when the
    nodes from `first` do not form one. Constants are checked by match_gated."""
    chain, ops, current = [first], [], value
    node = graph.node[first]
    while len(ops) <= 3 and node.domain in ONNX_DOMAINS:
        if node.op_type == "Mul" and ops and sorted(node.input) == sorted([value, current]):
            return chain, tuple(ops)
        inputs = [i for i in node.input if i]
        scaled_input = node.op_type in ("Mul", "Add") and not ops and len(inputs) == 2 and inputs.count(value) == 1
        scaled_gate = node.op_type in ("Mul", "Div") and ops and len(inputs) == 2 and inputs[0] == current
        clip = node.op_type == "Clip" and inputs[:1] == [current]
        if not (scaled_input or scaled_gate or clip or inputs == [current]) or len(node.output) != 1:
            return None
        ops.append(node.op_type)
        current = node.output[0]
        candidates = [i for i in consumers.get(current, []) if current in graph.node[i].input]
        if not candidates:
            return None
        # Prefer the closing Mul; another reader of `current` is reported by match_gated.
        closing = [i for i in candidates if _is_onnx(graph.node[i], "Mul") and value in graph.node[i].input]
        chain.append((closing or candidates)[0])
        node = graph.node[chain[-1]]
    return None


def _constant_is(node: onnx.NodeProto, operand: str, scope: Scope, expected: float) -> bool:
    bound = _scalar_operand(node, operand, scope)
    return isinstance(bound, float) and bound == expected


def _hard_swish_gate(nodes: list[onnx.NodeProto], value: str, scope: Scope) -> bool:
    """Whether the gate of a decomposed HardSwish has its constants: x + 3, clip to [0, 6], / 6
    (or * 1/6); or hardsigmoid with alpha 1/6 and beta 1/2."""
    if nodes[0].op_type == "HardSigmoid":
        alpha, beta = _float_attr(nodes[0], "alpha", 0.2), _float_attr(nodes[0], "beta", 0.5)
        return alpha == _SIXTH and beta == 0.5
    if not _constant_is(nodes[0], value, scope, 3.0) or _clip_bounds(nodes[1], scope) != (0.0, 6.0):
        return False
    if len(nodes) == 2:  # ("Add", "Clip"): the scale comes after the Mul (_trailing_sixth)
        return True
    return _constant_is(nodes[2], nodes[1].output[0], scope, 6.0 if nodes[2].op_type == "Div" else _SIXTH)


def _trailing_sixth(mul: onnx.NodeProto, graph: onnx.GraphProto, scope: Scope, consumers) -> int | None:
    """The index of a Div by 6 (or Mul by 1/6) that alone reads the Mul's output."""
    readers = consumers.get(mul.output[0], [])
    if len(readers) != 1:
        return None
    node = graph.node[readers[0]]
    if node.op_type not in ("Div", "Mul") or node.domain not in ONNX_DOMAINS or node.input[:1] != [mul.output[0]]:
        return None
    return readers[0] if _constant_is(node, mul.output[0], scope, 6.0 if node.op_type == "Div" else _SIXTH) else None


def match_gated(
    value: str, graph: onnx.GraphProto, scope: Scope, uses, consumers
) -> tuple[list[int], str, Activation] | Refusal | None:
    """Mul(value, g(value)) with g one of _GATES: SiLU (x * sigmoid(x)), Swish with a scalar beta
    (x * sigmoid(beta * x), SparseConv's QuickGelu), Mish (x * tanh(softplus(x))) and HardSwish
    as exporters decompose it, the Mul's operands in either order. Returns (the pattern's node
    indices, its output, the step) when every node can go; why it cannot fold, naming the
    pattern, when it is there but something else reads `value` or a value inside it (or one is a
    graph output); None when there is no such pattern."""
    readers = consumers.get(value, [])
    for first in readers:
        found = _follow_gate(value, first, graph, consumers)
        kind = _GATES.get(found[1]) if found else None
        if kind is None:
            continue
        chain = list(found[0])
        nodes = [graph.node[i] for i in chain]
        params: tuple[float, ...] = ()
        if kind == "QuickGelu":
            beta = _scalar_operand(nodes[0], value, scope)
            if not isinstance(beta, float):
                continue  # a Mul by something else: not this pattern
            params = (beta,)
        if kind == "HardSwish":
            if not _hard_swish_gate(nodes[:-1], value, scope):
                continue
            if found[1] == ("Add", "Clip"):
                trailing = _trailing_sixth(nodes[-1], graph, scope, consumers)
                if trailing is None:
                    continue
                chain.append(trailing)
                nodes.append(graph.node[trailing])
        closing = found[0][-1]  # the Mul of value and the gate
        label = " and ".join(f"{n.op_type} '{node_label(n)}'" for n in nodes) + f" ({kind})"
        if uses[value] != 2 or sorted(readers) != sorted([first, closing]):
            return _other_readers(f"their input '{value}'").about(label)
        for inner in nodes[:-1]:
            out = inner.output[0]
            if uses[out] != 1 or len(consumers.get(out, [])) != 1:
                return _other_readers(f"the {inner.op_type}'s output '{out}'").about(label)
        return chain, nodes[-1].output[0], Activation(kind, params)
    return None


def describe(node: onnx.NodeProto) -> str:
    """How a report names a node it did not fold: "Clip 'clip1'"."""
    return f"{node.op_type} '{node_label(node)}'"
