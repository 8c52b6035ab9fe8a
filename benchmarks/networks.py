"""Whole networks for end-to-end timing, built from ONNX ops with random weights (no download):
ResNet-50 and a MobileNet-v1-style network, Conv + BatchNormalization + Relu as exporters
write them, then magnitude-pruned per layer."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def conv_bn(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, group: int = 1, relu: bool = True) -> str:
        name = self._name("conv")
        fan_in = c_in // group * k * k
        w = (self.rng.standard_normal((c_out, c_in // group, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight"],
                [f"{name}.out"],
                name=name,
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[k // 2] * 4,
                group=group,
            )
        )
        params = []
        for p, value in (
            ("scale", self.rng.uniform(0.5, 1.5, c_out)),
            ("bias", self.rng.normal(0, 0.1, c_out)),
            ("mean", self.rng.normal(0, 0.1, c_out)),
            ("var", self.rng.uniform(0.5, 1.5, c_out)),
        ):
            self.inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}.bn.{p}"))
            params.append(f"{name}.bn.{p}")
        self.nodes.append(
            helper.make_node("BatchNormalization", [f"{name}.out", *params], [f"{name}.bn"], name=f"{name}.bn")
        )
        out = f"{name}.bn"
        if relu:
            self.nodes.append(helper.make_node("Relu", [out], [f"{name}.relu"], name=f"{name}.relu"))
            out = f"{name}.relu"
        return out

    def add_relu(self, a: str, b: str) -> str:
        name = self._name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [f"{name}.sum"], name=name))
        self.nodes.append(helper.make_node("Relu", [f"{name}.sum"], [f"{name}.out"], name=f"{name}.relu"))
        return f"{name}.out"

    def head(self, x: str, channels: int, classes: int = 1000) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
        self.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"]))
        fc = (self.rng.standard_normal((channels, classes)) * 0.01).astype(np.float32)
        self.inits.append(numpy_helper.from_array(fc, "fc.weight"))
        self.nodes.append(helper.make_node("MatMul", ["features", "fc.weight"], ["logits"]))
        graph = helper.make_graph(
            self.nodes,
            "net",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 224, 224])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
            self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def resnet50(seed: int = 0) -> onnx.ModelProto:
    b = _Builder(seed)
    x = b.conv_bn("image", 3, 64, 7, stride=2)
    b.nodes.append(helper.make_node("MaxPool", [x], ["pool1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, c_in = "pool1", 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for i in range(blocks):
            stride = 2 if i == 0 and stage > 0 else 1
            y = b.conv_bn(x, c_in, width, 1)
            y = b.conv_bn(y, width, width, 3, stride=stride)
            y = b.conv_bn(y, width, width * 4, 1, relu=False)
            shortcut = b.conv_bn(x, c_in, width * 4, 1, stride=stride, relu=False) if i == 0 else x
            x, c_in = b.add_relu(y, shortcut), width * 4
    return b.head(x, c_in)


def mobilenet(seed: int = 0) -> onnx.ModelProto:
    b = _Builder(seed)
    x = b.conv_bn("image", 3, 32, 3, stride=2)
    c_in = 32
    for c_out, stride in [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        *[(512, 1)] * 5,
        (1024, 2),
        (1024, 1),
    ]:
        x = b.conv_bn(x, c_in, c_in, 3, stride=stride, group=c_in)
        x = b.conv_bn(x, c_in, c_out, 1)
        c_in = c_out
    return b.head(x, c_in)


NETWORKS = {"resnet50": resnet50, "mobilenet": mobilenet}
