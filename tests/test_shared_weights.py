"""Convs sharing one weight tensor: pruned once, counted as such, and rewritten to one shared CSR
when their folded weights are identical, so the file does not grow."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_sparsify
import onnxruntime as ort
from models import rel_l2
from onnx import TensorProto, helper, numpy_helper

CHAIN = 8  # Convs in a row, all reading the same weight


def _shared_weight_model(batchnorm: str = "none") -> onnx.ModelProto:
    """x -> CHAIN x (Conv with the shared weight `w` [-> BatchNormalization]) -> y.
    batchnorm: "none", "same" (one BN's parameters for all) or "distinct" (per Conv)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), "w")]
    nodes, x = [], "x"
    for i in range(CHAIN):
        nodes.append(helper.make_node("Conv", [x, "w"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]))
        x = f"c{i}"
        if batchnorm != "none":
            p = "bn" if batchnorm == "same" else f"bn{i}"
            if batchnorm == "distinct" or i == 0:
                scale = rng.uniform(0.5, 1.5, 16) if batchnorm == "distinct" else np.ones(16)
                for name, value in zip(("s", "b", "m", "v"), (scale, np.zeros(16), np.zeros(16), np.ones(16))):
                    inits.append(numpy_helper.from_array(value.astype(np.float32), f"{p}_{name}"))
            nodes.append(helper.make_node("BatchNormalization", [x, f"{p}_s", f"{p}_b", f"{p}_m", f"{p}_v"], [f"n{i}"]))
            x = f"n{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray, plugin: bool) -> np.ndarray:
    options = onnx_sparsify.session_options() if plugin else ort.SessionOptions()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_pruning_names_weight_tensors_and_the_convs_using_them(caplog):
    with caplog.at_level(logging.WARNING, logger="onnx_sparsify.pruning"):
        pruned, achieved = onnx_sparsify.prune_convs(_shared_weight_model(), 0.9)
    assert list(achieved) == ["w"] and abs(achieved["w"] - 0.9) < 0.01
    assert "pruned 1 weight tensor used by 8 Convs to 90% zeros" in caplog.text
    w = numpy_helper.to_array(pruned.graph.initializer[0])
    assert np.count_nonzero(w) == w.size - int(0.9 * w.size)  # pruned once, not eight times over


def test_convs_sharing_a_weight_share_one_csr_and_the_file_does_not_grow():
    pruned, _ = onnx_sparsify.prune_convs(_shared_weight_model(), 0.9)
    sparse, report = onnx_sparsify.sparsify(pruned, min_sparsity=0.5)
    assert report.rewritten == CHAIN
    sparse_nodes = [n for n in sparse.graph.node if n.op_type == onnx_sparsify.OP_TYPE]
    assert len(sparse_nodes) == CHAIN and len({tuple(n.input[1:4]) for n in sparse_nodes}) == 1
    assert sorted(t.name for t in sparse.graph.initializer) == ["w_csr_col_indices", "w_csr_row_ptr", "w_csr_values"]
    assert report.weight_bytes_after < report.weight_bytes_before
    assert len(sparse.SerializeToString()) < len(pruned.SerializeToString())
    x = np.random.default_rng(1).standard_normal((1, 16, 8, 8)).astype(np.float32)
    assert rel_l2(_run(sparse, x, plugin=True), _run(pruned, x, plugin=False)) < 1e-4


def test_identical_folded_batchnorms_share_and_distinct_ones_do_not():
    x = np.random.default_rng(2).standard_normal((1, 16, 8, 8)).astype(np.float32)
    for batchnorm, expected_csrs in (("same", 1), ("distinct", CHAIN)):
        pruned, _ = onnx_sparsify.prune_convs(_shared_weight_model(batchnorm), 0.9)
        sparse, report = onnx_sparsify.sparsify(pruned, min_sparsity=0.5)
        assert report.rewritten == CHAIN
        assert all(layer.folded == ["BatchNormalization"] for layer in report.layers)
        sparse_nodes = [n for n in sparse.graph.node if n.op_type == onnx_sparsify.OP_TYPE]
        assert len({tuple(n.input[1:4]) for n in sparse_nodes}) == expected_csrs, batchnorm
        assert len([t for t in sparse.graph.initializer if "_csr_values" in t.name]) == expected_csrs
        assert rel_l2(_run(sparse, x, plugin=True), _run(pruned, x, plugin=False)) < 1e-4


def test_shared_weight_inside_a_function_shares_its_constants():
    """In a model-local function the CSR tensors are Constant nodes: one set for all Convs."""
    model = _shared_weight_model()
    pruned, _ = onnx_sparsify.prune_convs(model, 0.9)
    weight = pruned.graph.initializer[0]
    body = [helper.make_node("Constant", [], ["w"], value=weight)]
    body += [helper.make_node("Conv", [f"t{i}", "w"], [f"t{i + 1}"], pads=[1, 1, 1, 1]) for i in range(3)]
    body[1].input[0] = "fx"
    body[-1].output[0] = "fy"
    function = helper.make_function("local", "Chain", ["fx"], ["fy"], body, [helper.make_opsetid("", 17)])
    graph = helper.make_graph(
        [helper.make_node("Chain", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    dense = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[function],
        ir_version=8,
    )
    sparse, report = onnx_sparsify.sparsify(dense, min_sparsity=0.5)
    assert report.rewritten == 3
    nodes = sparse.functions[0].node
    assert [n.op_type for n in nodes].count("Constant") == 3  # values, col_indices, row_ptr once
    assert len({tuple(n.input[1:4]) for n in nodes if n.op_type == onnx_sparsify.OP_TYPE}) == 1
    x = np.random.default_rng(3).standard_normal((1, 16, 8, 8)).astype(np.float32)
    assert rel_l2(_run(sparse, x, plugin=True), _run(dense, x, plugin=False)) < 1e-4
