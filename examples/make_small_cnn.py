"""Writes examples/small_cnn.onnx, the dense model the README's first command rewrites: the
small CNN of prune_and_run.py (stem, depthwise, pointwise and grouped Convs with BatchNorm and
Relu), with random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from prune_and_run import small_cnn


def with_batchnorm(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    """Inserts an inference-mode BatchNormalization after every Conv, as exporters write them."""
    nodes, inits = [], list(model.graph.initializer)
    for node in model.graph.node:
        nodes.append(node)
        if node.op_type != "Conv":
            continue
        channels = next(t for t in inits if t.name == node.input[1]).dims[0]
        conv_out = node.output[0]
        node.output[0] = f"{conv_out}.pre_bn"
        params = []
        for name, value in [
            ("scale", rng.uniform(0.5, 1.5, channels)),
            ("bias", rng.normal(0, 0.1, channels)),
            ("mean", rng.normal(0, 0.1, channels)),
            ("var", rng.uniform(0.5, 1.5, channels)),
        ]:
            inits.append(numpy_helper.from_array(value.astype(np.float32), f"{node.name}.bn.{name}"))
            params.append(inits[-1].name)
        nodes.append(
            helper.make_node("BatchNormalization", [node.output[0], *params], [conv_out], name=f"{node.name}.bn")
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return model


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    model = with_batchnorm(small_cnn(rng), rng)
    onnx.checker.check_model(model)
    path = Path(__file__).with_name("small_cnn.onnx")
    onnx.save(model, path)
    print(f"wrote {path}")
