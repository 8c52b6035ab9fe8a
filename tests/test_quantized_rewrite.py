"""onnx_sparsify.sparsify_quantized on models quantized by ONNX Runtime's own quantizer
(quantize_static: QDQ and QOperator formats, per-channel int8 weights, uint8 or int8
activations): every pruned Conv becomes SparseQLinearConv, the dense weights and their
DequantizeLinear go, and the rewritten model gives ORT's int8 model's outputs exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from models import seeded_rng
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import _core
from onnx_sparsify.quantized import sparsify_quantized
from onnx_sparsify.result import Code
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from test_qlinear import _session

pytestmark = pytest.mark.skipif(
    "avx512vnni" not in _core.supported_cpu_isas(),
    reason="ORT's own uint8 x int8 Conv saturates without VNNI (docs/operator.md): it is no exact reference there",
)
X_SHAPE = (1, 8, 12, 12)


def _float_model(rng: np.random.Generator, sparsity: float) -> onnx.ModelProto:
    """Conv 3x3 (bias) -> Relu -> Conv 1x1 -> Add(skip from a 1x1 Conv of x): pruned weights."""

    def weight(shape):
        w = rng.standard_normal(shape).astype(np.float32)
        w[rng.random(shape) < sparsity] = 0.0
        return w

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", strides=[2, 2]),
        helper.make_node("Conv", ["x", "w3"], ["c3"], name="conv3", strides=[2, 2]),
        helper.make_node("Add", ["c2", "c3"], ["y"], name="add"),
    ]
    inits = [
        numpy_helper.from_array(weight((16, 8, 3, 3)), "w1"),
        numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b1"),
        numpy_helper.from_array(weight((8, 16, 1, 1)), "w2"),
        numpy_helper.from_array(weight((8, 8, 1, 1)), "w3"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


class _Inputs(CalibrationDataReader):
    def __init__(self, rng: np.random.Generator) -> None:
        self._feeds = iter([{"x": rng.standard_normal(X_SHAPE).astype(np.float32)} for _ in range(8)])

    def get_next(self):
        return next(self._feeds, None)


def _quantized(tmp_path: Path, rng, fmt: str, activation: QuantType, sparsity: float = 0.9) -> onnx.ModelProto:
    source, target = tmp_path / "f32.onnx", tmp_path / f"{fmt}.onnx"
    onnx.save(_float_model(rng, sparsity), source)
    quantize_static(
        str(source), str(target), _Inputs(rng), quant_format=getattr(QuantFormat, fmt), per_channel=True,
        weight_type=QuantType.QInt8, activation_type=activation,
    )  # fmt: skip
    return onnx.load(target)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("activation", [QuantType.QUInt8, QuantType.QInt8], ids=["u8", "s8"])
def test_quantized_model_runs_sparse_and_exact(tmp_path, fmt, activation) -> None:
    rng = seeded_rng("quantized", fmt, str(activation))
    model = _quantized(tmp_path, rng, fmt, activation)
    before = onnx.ModelProto()
    before.CopyFrom(model)
    rewritten, layers = sparsify_quantized(model)
    assert model == before  # the caller's model is not changed
    # (QOperator names the nodes conv1_quant, ...)
    names = sorted((layer.node.split("_quant")[0], layer.rewritten) for layer in layers)
    assert names == [("conv1", True), ("conv2", True), ("conv3", True)]
    assert all(layer.form == fmt and layer.sparsity > 0.8 for layer in layers)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("SparseQLinearConv") == 3 and "Conv" not in ops and "QLinearConv" not in ops
    dense_weights = {"w1_quantized", "w2_quantized", "w3_quantized"}
    assert not dense_weights & {t.name for t in rewritten.graph.initializer}
    onnx.checker.check_model(rewritten)
    x = rng.standard_normal(X_SHAPE).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    actual = _session(rewritten).run(None, {"x": x})
    np.testing.assert_array_equal(actual[0], expected[0])


def test_layers_below_the_threshold_stay_with_a_reason(tmp_path) -> None:
    rng = seeded_rng("threshold")
    model = _quantized(tmp_path, rng, "QDQ", QuantType.QUInt8, sparsity=0.5)
    rewritten, layers = sparsify_quantized(model, min_sparsity=0.7)
    assert all(not layer.rewritten and layer.refusal.code == Code.MIN_SPARSITY for layer in layers)
    assert all("zeros < 70%" in layer.refusal.message for layer in layers)
    assert [n.op_type for n in rewritten.graph.node] == [n.op_type for n in model.graph.node]


def test_weight_whose_centered_values_leave_int8_is_refused() -> None:
    """A uint8 weight with zero point 0 holding 200: 200 - 0 does not fit int8."""
    w = np.zeros((4, 2, 1, 1), np.uint8)
    w[0, 0] = 200
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.uint8), "z"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([0.01], np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.uint8), "wz"),
    ]
    node = helper.make_node(
        "QLinearConv", ["x", "s", "z", "w", "ws", "wz", "s", "z"], ["y"], name="q", kernel_shape=[1, 1]
    )
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits,
    )  # fmt: skip
    _, layers = sparsify_quantized(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert len(layers) == 1 and not layers[0].rewritten and layers[0].refusal.code == Code.OVERFLOW
