"""Folding what follows a Conv into it: an inference-mode BatchNormalization into W and B, and an
activation into SparseConv's fused epilogue."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from .graph_walk import Scope


@dataclass(frozen=True)
class Activation:
    name: str  # SparseConv's `activation` attribute
    params: tuple[float, ...]  # SparseConv's `activation_params`


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def batchnorm_params(node: onnx.NodeProto, scope: Scope) -> tuple[np.ndarray, np.ndarray] | str:
    """(scale, shift) such that BN(x) = scale * x + shift per channel, or why it cannot fold."""
    if node.op_type != "BatchNormalization" or node.domain not in ("", "ai.onnx"):
        return "not a BatchNormalization"
    if _attr(node, "training_mode", 0) != 0:
        return "BatchNormalization is in training mode"
    if _attr(node, "spatial", 1) != 1:
        return "BatchNormalization with spatial=0"
    if len(node.input) != 5:
        return "BatchNormalization without its four parameters"
    params = [scope.constant(name) for name in node.input[1:]]
    if any(p is None for p in params):
        return "BatchNormalization parameters are not constant"
    gamma, beta, mean, var = (np.asarray(p, dtype=np.float64).reshape(-1) for p in params)
    if not (gamma.shape == beta.shape == mean.shape == var.shape):
        return "BatchNormalization parameters have different shapes"
    eps = float(_attr(node, "epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def fold_batchnorm(
    weight: np.ndarray, bias: np.ndarray | None, scale: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """W' = W * scale[m], B' = B * scale + shift, computed in float64."""
    w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    b = (np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)) * scale + shift
    return w.astype(np.float32), b.astype(np.float32)


def match_activation(node: onnx.NodeProto, scope: Scope) -> Activation | str:
    """SparseConv's equivalent of an activation node, or why there is none."""
    if node.domain not in ("", "ai.onnx"):
        return f"{node.op_type} is not an ONNX activation"
    kind = node.op_type
    if kind in ("Relu", "Sigmoid", "HardSwish"):
        return Activation(kind, ())
    if kind == "LeakyRelu":
        return Activation(kind, (float(_attr(node, "alpha", 0.01)),))
    if kind == "HardSigmoid":
        return Activation(kind, (float(_attr(node, "alpha", 0.2)), float(_attr(node, "beta", 0.5))))
    if kind == "Clip":
        bounds = []
        for i, (attr, default) in enumerate((("min", -np.inf), ("max", np.inf))):
            if len(node.input) > i + 1 and node.input[i + 1]:
                value = scope.constant(node.input[i + 1])
                if value is None or value.size != 1:
                    return "Clip bounds are not constant scalars"
                bounds.append(float(value.reshape(())))
            else:
                bounds.append(float(_attr(node, attr, default)))
        return Activation(kind, tuple(bounds))
    return f"{kind} has no fused equivalent"
