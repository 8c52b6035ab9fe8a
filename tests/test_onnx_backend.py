"""ONNX's own Conv test cases, each rewritten to SparseConv and compared with its expected
output: the node tests (rebuilt by onnx.backend.test.case.node.collect_testcases, since onnx
1.23 wheels no longer ship their data) and the PyTorch-converted Conv1d/2d/3d models."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.backend.test
import onnx_sparsify
import pytest
from models import rel_l2, run_nan_prefilled, session
from onnx import helper, numpy_helper

PYTORCH_CONVERTED = Path(onnx.backend.test.__file__).parent / "data" / "pytorch-converted"


def _node_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other operators' generators warn about float overflow
        cases = collect_testcases()
    return [
        c
        for c in cases
        if len(c.model.graph.node) == 1
        and c.model.graph.node[0].op_type == "Conv"
        and c.model.graph.node[0].domain == ""
    ]


NODE_CASES = _node_cases()
TORCH_CASES = sorted(p.name for p in PYTORCH_CONVERTED.glob("test_Conv[123]d*")) if PYTORCH_CONVERTED.is_dir() else []


def _with_constant_weights(case) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """The node test's model with W (and B) turned from graph inputs into initializers."""
    model = case.model
    conv = model.graph.node[0]
    inputs, outputs = case.data_sets[0]
    constants = [numpy_helper.from_array(a, name) for name, a in zip(conv.input[1:], inputs[1:])]
    graph = helper.make_graph([conv], "g", [model.graph.input[0]], list(model.graph.output), initializer=constants)
    return helper.make_model(graph, opset_imports=model.opset_import, ir_version=8), inputs[0], outputs[0]


def test_cases_were_found() -> None:
    assert len(NODE_CASES) >= 6, [c.name for c in NODE_CASES]
    assert len(TORCH_CASES) >= 20, TORCH_CASES
    assert {"test_Conv2d_depthwise_with_multiplier", "test_Conv3d_groups", "test_Conv1d_groups"} <= set(TORCH_CASES)


@pytest.mark.parametrize("case", NODE_CASES, ids=[c.name for c in NODE_CASES])
def test_node_case(case) -> None:
    model, x, expected = _with_constant_weights(case)
    sparse, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in sparse.graph.node] == [onnx_sparsify.OP_TYPE]
    actual = run_nan_prefilled(session(sparse, plugin=True), x, expected.shape)
    assert rel_l2(actual, expected) <= 1e-5


@pytest.mark.parametrize("name", TORCH_CASES)
def test_pytorch_converted(name: str) -> None:
    folder = PYTORCH_CONVERTED / name
    model = onnx.load(folder / "model.onnx")
    x = numpy_helper.to_array(onnx.load_tensor(folder / "test_data_set_0" / "input_0.pb"))
    expected = numpy_helper.to_array(onnx.load_tensor(folder / "test_data_set_0" / "output_0.pb"))
    sparse, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert onnx_sparsify.OP_TYPE in [n.op_type for n in sparse.graph.node]
    assert "Conv" not in [n.op_type for n in sparse.graph.node]
    actual = run_nan_prefilled(session(sparse, plugin=True), x, expected.shape)
    assert rel_l2(actual, expected) <= 1e-5
