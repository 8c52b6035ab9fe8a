"""SparseConv's fused epilogue as the rewriter records it: an ordered chain of steps (names and
parameters from the contract, _contract.ACTIVATIONS), the node attributes that carry it, and the
same computation as plain ONNX nodes, the dense reference autotune times and tests compare with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._contract import ACTIVATIONS

MS_DOMAIN = "com.microsoft"  # ONNX Runtime's contrib ops (QuickGelu)
# Steps whose ONNX op came after opset 17: Mish in 18, Gelu in 20.
_MIN_OPSET = {"Mish": 18, "Gelu": 20, "GeluTanh": 20}


@dataclass(frozen=True)
class Activation:
    """One epilogue step."""

    name: str  # a key of _contract.ACTIVATIONS
    params: tuple[float, ...] = ()  # its activation_params, all of them (or none: the defaults)
    slopes: tuple[float, ...] = ()  # PRelu's: one per output channel, or one for all


def attributes(steps: Sequence[Activation]) -> dict:
    """SparseConv's activation, activation_params and activation_slopes for a chain of steps
    (nothing for an empty chain)."""
    if not steps:
        return {}
    attrs: dict = {"activation": ",".join(s.name for s in steps)}
    if any(s.params for s in steps):
        attrs["activation_params"] = [float(p) for s in steps for p in (s.params or ACTIVATIONS[s.name])]
    slopes = [float(v) for s in steps for v in s.slopes]
    if slopes:
        attrs["activation_slopes"] = slopes
    return attrs


def onnx_opsets(steps: Sequence[Activation], base: int = 17) -> list[onnx.OperatorSetIdProto]:
    """The opset imports a model computing `steps` with onnx_nodes needs (standard ONNX ops only,
    so onnx.reference runs it too)."""
    return [helper.make_opsetid("", max([base, *(_MIN_OPSET.get(s.name, base) for s in steps)]))]


def onnx_nodes(
    steps: Sequence[Activation], src: str, dst: str, channels: int, rank: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """ONNX nodes (and their constants) computing the chain from `src` into `dst`, for a Conv
    output of `channels` channels and `rank` dimensions."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    if not steps:
        return [helper.make_node("Identity", [src], [dst])], []
    for i, step in enumerate(steps):
        out = dst if i == len(steps) - 1 else f"{dst}_step{i}"
        name, p = step.name, step.params or ACTIVATIONS[step.name]
        tag = f"{dst}_{i}"

        def const(value, suffix: str, shape=(), tag: str = tag) -> str:
            inits.append(numpy_helper.from_array(np.asarray(value, np.float32).reshape(shape), f"{tag}_{suffix}"))
            return inits[-1].name

        if name == "LeakyRelu":
            nodes.append(helper.make_node("LeakyRelu", [src], [out], alpha=p[0]))
        elif name == "HardSigmoid":
            nodes.append(helper.make_node("HardSigmoid", [src], [out], alpha=p[0], beta=p[1]))
        elif name == "Clip":
            nodes.append(helper.make_node("Clip", [src, const(p[0], "min"), const(p[1], "max")], [out]))
        elif name == "SiLU":
            nodes += [
                helper.make_node("Sigmoid", [src], [f"{tag}_gate"]),
                helper.make_node("Mul", [src, f"{tag}_gate"], [out]),
            ]
        elif name == "QuickGelu":  # as exporters write Swish: x * sigmoid(alpha * x)
            nodes += [
                helper.make_node("Mul", [src, const(p[0], "alpha")], [f"{tag}_scaled"]),
                helper.make_node("Sigmoid", [f"{tag}_scaled"], [f"{tag}_gate"]),
                helper.make_node("Mul", [src, f"{tag}_gate"], [out]),
            ]
        elif name in ("Gelu", "GeluTanh"):
            nodes.append(helper.make_node("Gelu", [src], [out], approximate="tanh" if name == "GeluTanh" else "none"))
        elif name == "PRelu":
            slopes = np.broadcast_to(np.asarray(step.slopes, np.float32), (channels,))
            slope = const(slopes, "slope", (channels,) + (1,) * (rank - 2))
            nodes.append(helper.make_node("PRelu", [src, slope], [out]))
        else:  # Relu, Sigmoid, HardSwish, Tanh, Mish: no parameters
            nodes.append(helper.make_node(name, [src], [out]))
        src = out
    return nodes, inits
