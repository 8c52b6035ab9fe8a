"""Build a small CNN, prune its Conv weights to 90% zeros, rewrite the Convs to SparseConv and
check that ONNX Runtime gives the same answer with the plugin as with its own dense Conv.

    python examples/prune_and_run.py [--sparsity 0.9] [--output small_cnn.sparse.onnx]
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import onnx
import onnx_sparsify
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify.check import relative_l2

IR_VERSION = 8  # readable by every ONNX Runtime from 1.21 on


def small_cnn(rng: np.random.Generator) -> onnx.ModelProto:
    """stem 3x3/2 -> depthwise 3x3 -> pointwise 1x1 -> 3x3 grouped -> global pool -> classifier."""
    layers = [  # name, out, in/group, kernel, attributes
        ("stem", 32, 3, 3, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ("depthwise", 32, 1, 3, {"group": 32, "pads": [1, 1, 1, 1]}),
        ("pointwise", 64, 32, 1, {}),
        ("grouped", 64, 16, 3, {"group": 4, "pads": [1, 1, 1, 1]}),
    ]
    nodes, inits, x = [], [], "image"
    for name, out, per_group, k, attrs in layers:
        w = rng.standard_normal((out, per_group, k, k)).astype(np.float32) * np.float32(
            np.sqrt(2.0 / (per_group * k * k))
        )
        b = rng.standard_normal(out).astype(np.float32) * np.float32(0.1)
        inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        nodes.append(
            helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [f"{name}.conv"], name=name, **attrs)
        )
        nodes.append(helper.make_node("Relu", [f"{name}.conv"], [f"{name}.out"], name=f"{name}.relu"))
        x = f"{name}.out"
    fc = rng.standard_normal((64, 10)).astype(np.float32) * np.float32(0.1)
    inits.append(numpy_helper.from_array(fc, "fc.weight"))
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("MatMul", ["features", "fc.weight"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--output", default=None, help="also save the rewritten model here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    rng = np.random.default_rng(0)
    dense, _ = onnx_sparsify.prune_convs(small_cnn(rng), args.sparsity)  # magnitude pruning, per layer
    sparse, _ = onnx_sparsify.sparsify(dense, min_sparsity=0)
    onnx.checker.check_model(sparse)
    if args.output:
        onnx.save(sparse, args.output)

    image = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)
    reference = ort.InferenceSession(dense.SerializeToString(), providers=["CPUExecutionProvider"])
    plugin = ort.InferenceSession(
        sparse.SerializeToString(), onnx_sparsify.session_options(), providers=["CPUExecutionProvider"]
    )
    expected = reference.run(None, {"image": image})[0]
    actual = plugin.run(None, {"image": image})[0]

    rel = relative_l2(actual, expected)
    ops = [n.op_type for n in sparse.graph.node]
    print(f"Convs rewritten to SparseConv: {ops.count('SparseConv')} of {ops.count('SparseConv') + ops.count('Conv')}")
    print(f"model size: dense {dense.ByteSize() / 1024:.1f} KiB, sparse {sparse.ByteSize() / 1024:.1f} KiB")
    max_diff = np.abs(actual - expected).max()
    print(f"logits, batch of {image.shape[0]}: relative L2 error {rel:.2e}, max |diff| {max_diff:.2e}")
    print(f"same top-1 class for every image: {bool((actual.argmax(1) == expected.argmax(1)).all())}")
    if not rel <= 1e-5:
        raise SystemExit("SparseConv and ORT's Conv disagree")


if __name__ == "__main__":
    main()
