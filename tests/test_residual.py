"""SparseConv's residual input Z (Y = epilogue(Conv(X, W, B) + Z), ONNX Runtime's FusedConv
form): the kernel on every instruction-set path and every CPU layout (direct, padded, strided,
the plane path, small groups, input-channel blocks) against ORT running Conv, Add and the
activations; the CUDA kernel under the emulation; a Z of the wrong shape refused by name; and the
rewriter folding a residual Add where it may, or saying why not."""

from __future__ import annotations

import isa as isas
import numpy as np
import onnx
import onnx_sparsify
import pytest
from cuda_emulation import emulated
from models import (
    IR_VERSION,
    OPSET,
    epilogue_attributes,
    epilogue_steps,
    params_for,
    random_sparse_weight,
    rel_l2,
    session,
)
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import _core
from onnx_sparsify.csr import dense_to_csr
from onnx_sparsify.epilogue import onnx_nodes, onnx_opsets
from onnx_sparsify.result import Code

# (id, x shape, weight shape, Conv attributes, sparsity): one per CPU code path.
LAYOUTS = [
    ("direct_1x1", (1, 16, 9, 21), (8, 16, 1, 1), {}, 0.8),
    ("padded_3x3", (2, 8, 11, 140), (12, 8, 3, 3), {"pads": [1, 1, 1, 1]}, 0.8),
    ("strided", (1, 8, 17, 30), (6, 8, 3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 0]}, 0.8),
    ("plane_path_depthwise", (1, 8, 40, 40), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}, 0.5),
    ("small_groups", (1, 16, 12, 20), (16, 4, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}, 0.7),
    ("input_channel_blocks", (1, 512, 14, 14), (32, 512, 3, 3), {"pads": [1, 1, 1, 1]}, 0.9),
    ("conv1d", (1, 8, 300), (8, 8, 5), {"pads": [2, 2]}, 0.8),
]
ACTIVATIONS = [None, "Relu", "Mish,HardSigmoid,PRelu,Clip"]


def _graph_model(nodes, inits, inputs, opsets) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)


def _io(x_shape, y_shape) -> list[onnx.ValueInfoProto]:
    return [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape)),
        helper.make_tensor_value_info("z", TensorProto.FLOAT, None if y_shape is None else list(y_shape)),
    ]


def _dense(x_shape, y_shape, weight, bias, attrs, activation) -> onnx.ModelProto:
    """Conv, Add(Z), then the activations, in ONNX's own ops: the reference."""
    steps = epilogue_steps(activation, params_for(activation), weight.shape[0])
    act_nodes, act_inits = onnx_nodes(steps, "sum", "y", weight.shape[0], weight.ndim)
    inits = [numpy_helper.from_array(weight, "w"), *act_inits]
    conv_inputs = ["x", "w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
        conv_inputs.append("b")
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], **attrs), helper.make_node("Add", ["c", "z"], ["sum"])]
    return _graph_model([*nodes, *act_nodes], inits, _io(x_shape, y_shape), onnx_opsets(steps, OPSET))


def _sparse(x_shape, y_shape, weight, bias, attrs, activation, z_name: str = "z") -> onnx.ModelProto:
    csr = dense_to_csr(weight)
    inits = [
        numpy_helper.from_array(csr.values, "v"),
        numpy_helper.from_array(csr.col_indices, "ci"),
        numpy_helper.from_array(csr.row_ptr, "rp"),
    ]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
    node_attrs = dict(attrs, kernel_shape=list(weight.shape[2:]), in_channels_per_group=int(weight.shape[1]))
    node_attrs.update(epilogue_attributes(activation, params_for(activation), weight.shape[0]))
    inputs = ["x", "v", "ci", "rp", "b" if bias is not None else "", z_name]
    node = helper.make_node("SparseConv", inputs, ["y"], name="sc", domain=onnx_sparsify.DOMAIN, **node_attrs)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(onnx_sparsify.DOMAIN, onnx_sparsify.OP_VERSION)]
    return _graph_model([node], inits, _io(x_shape, y_shape), opsets)


def _case(case_id: str, bias: bool, seed: int = 0):
    _, x_shape, w_shape, attrs, sparsity = next(c for c in LAYOUTS if c[0] == case_id)
    rng = np.random.default_rng(seed)
    weight = random_sparse_weight(rng, w_shape, sparsity)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    x = rng.standard_normal(x_shape).astype(np.float32)
    y_shape = (
        session(_dense(x_shape, None, weight, b, attrs, None), plugin=False)
        .run(None, {"x": x, "z": np.zeros(1, np.float32)})[0]
        .shape
    )
    z = (2 * rng.standard_normal(y_shape)).astype(np.float32)
    return x, z, weight, b, attrs, y_shape


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layout", [c[0] for c in LAYOUTS])
def test_residual_equals_conv_add(layout, bias, activation, isa) -> None:
    x, z, weight, b, attrs, y_shape = _case(layout, bias)
    expected = session(_dense(x.shape, y_shape, weight, b, attrs, activation), plugin=False).run(
        None, {"x": x, "z": z}
    )[0]
    with isas.forced_isa(isa):
        sparse = session(_sparse(x.shape, y_shape, weight, b, attrs, activation), plugin=True)
    y = np.full(expected.shape, np.nan, np.float32)
    binding = sparse.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_cpu_input("z", z)
    binding.bind_output("y", "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
    sparse.run_with_iobinding(binding)
    assert not np.isnan(y).any(), "SparseConv left output elements unwritten"
    assert rel_l2(y, expected) <= 1e-5

    csr = dense_to_csr(weight)
    direct = dict(attrs, kernel_shape=list(weight.shape[2:]))
    direct.update(epilogue_attributes(activation, params_for(activation), weight.shape[0]))
    out = np.full(expected.shape, np.nan, np.float32)
    _core.sparse_conv(
        x,
        csr.values,
        csr.col_indices,
        csr.row_ptr,
        b,
        attributes=direct,
        out=out,
        residual=z,
        **isas.core_args(isa),
        threads=2,
    )
    assert rel_l2(out, expected) <= 1e-5


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layout", ["padded_3x3", "strided", "conv1d"])
def test_residual_on_emulated_cuda(layout, activation) -> None:
    x, z, weight, b, attrs, y_shape = _case(layout, True)
    expected = session(_dense(x.shape, y_shape, weight, b, attrs, activation), plugin=False).run(
        None, {"x": x, "z": z}
    )[0]
    csr = dense_to_csr(weight)
    sparse_attrs = dict(attrs, kernel_shape=list(weight.shape[2:]), in_channels_per_group=int(weight.shape[1]))
    sparse_attrs.update(epilogue_attributes(activation, params_for(activation), weight.shape[0]))
    for direct in (False, True):  # the tiled kernel and the one-thread-per-output one
        actual, _ = emulated.sparse_conv(
            x, csr.values, csr.col_indices, csr.row_ptr, b, sparse_attrs, y_shape, direct=direct, residual=z
        )
        assert not np.isnan(actual).any() and rel_l2(actual, expected) <= 1e-5


def test_residual_of_the_wrong_shape_is_refused_naming_the_node() -> None:
    x, z, weight, b, attrs, y_shape = _case("padded_3x3", True)
    model = _sparse(x.shape, None, weight, b, attrs, None)
    sess = session(model, plugin=True)
    with pytest.raises(Exception, match=r"SparseConv node 'sc'.*Z \(the residual input\) has shape"):
        sess.run(None, {"x": x, "z": z[:, :, :-1]})
    with pytest.raises(ValueError, match="residual must have the output's shape"):
        csr = dense_to_csr(weight)
        _core.sparse_conv(
            x, csr.values, csr.col_indices, csr.row_ptr, b, attributes=dict(attrs, kernel_shape=[3, 3]), residual=z[0]
        )


def test_nan_in_residual_reaches_the_output() -> None:
    x, z, weight, b, attrs, y_shape = _case("padded_3x3", True)
    z[0, 1, 2, 3] = np.nan
    z[1, 0, 0, 0] = np.inf
    model = _sparse(x.shape, y_shape, weight, b, attrs, "Relu")
    y = session(model, plugin=True).run(None, {"x": x, "z": z})[0]
    assert np.isnan(y[0, 1, 2, 3]) and y[1, 0, 0, 0] == np.inf
    assert np.isnan(y).sum() == 1


# ---------------------------------------------------------------------------------------------
# The rewriter

RNG = np.random.default_rng(10)


def _conv(name: str, inp: str, out: str, weight: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [inp, weight], [out], name=name, pads=[1, 1, 1, 1])


def _weights(*names: str) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(random_sparse_weight(RNG, (4, 4, 3, 3), 0.9), n) for n in names]


def _block_model(nodes, inits, extra_inputs=(), x_dims=(1, 4, 8, 8)) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_dims)), *extra_inputs]
    return _graph_model(nodes, inits, inputs, [helper.make_opsetid("", OPSET)])


def _same_as_original(original, rewritten, feeds) -> None:
    defined = {i.name for i in rewritten.graph.input} | {t.name for t in rewritten.graph.initializer} | {""}
    for node in rewritten.graph.node:  # still in topological order
        assert set(node.input) <= defined, f"{node.op_type} reads {set(node.input) - defined} before it is computed"
        defined |= set(node.output)
    expected = session(original, plugin=False).run(None, feeds)[0]
    actual = session(rewritten, plugin=True).run(None, feeds)[0]
    assert rel_l2(actual, expected) <= 1e-5


def _bn(name: str, inp: str, out: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    params = [RNG.uniform(0.5, 1.5, 4), RNG.standard_normal(4), RNG.standard_normal(4), RNG.uniform(0.5, 2, 4)]
    names = [f"{name}_{p}" for p in ("scale", "bias", "mean", "var")]
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for v, n in zip(params, names)]
    return helper.make_node("BatchNormalization", [inp, *names], [out], name=name), inits


def test_resnet_block_folds_bn_residual_and_relu() -> None:
    """Conv -> BatchNormalization -> Add(skip) -> Relu becomes one SparseConv reading the skip."""
    bn, bn_inits = _bn("bn", "c", "b")
    nodes = [
        _conv("conv", "x", "c", "w"),
        bn,
        helper.make_node("Add", ["b", "x"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    model = _block_model(nodes, [*_weights("w"), *bn_inits])
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv"]
    assert list(rewritten.graph.node[0].input)[-1] == "x"
    assert report.layers[0].folded == ["BatchNormalization", "residual", "Relu"]
    _same_as_original(model, rewritten, {"x": RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)})


def test_add_of_two_convs_keeps_both_sparse() -> None:
    """Add(Conv1(x), Conv2(x)): the first SparseConv takes the second's output as Z and goes
    where the Add was; the second stays a plain SparseConv, saying why."""
    nodes = [
        _conv("conv1", "x", "c1", "w1"),
        _conv("conv2", "x", "c2", "w2"),
        helper.make_node("Add", ["c1", "c2"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    model = _block_model(nodes, _weights("w1", "w2"))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "SparseConv"]
    assert report.layers[0].folded == ["residual", "Relu"]
    assert "Add 'add' (residual) not folded: another Conv's SparseConv takes it" in report.layers[1].reason
    _same_as_original(model, rewritten, {"x": RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)})


def test_residual_computed_after_the_conv() -> None:
    """Z is computed by a node after the Conv: the SparseConv moves to the Add's place."""
    nodes = [
        _conv("conv", "x", "c", "w"),
        helper.make_node("Neg", ["x"], ["z"]),
        helper.make_node("Add", ["z", "c"], ["y"]),
    ]
    model = _block_model(nodes, _weights("w"))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["Neg", "SparseConv"]
    _same_as_original(model, rewritten, {"x": RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)})


def test_residual_with_shapes_not_known_equal_stays() -> None:
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    nodes = [_conv("conv", "x", "c", "w"), helper.make_node("Add", ["c", "z"], ["y"], name="add")]
    model = _block_model(nodes, _weights("w"), extra_inputs=[z])
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "Add"]
    assert "Add 'add' (residual) not folded: the shapes of its inputs" in report.layers[0].reason
    feeds = {"x": RNG.standard_normal((1, 4, 8, 8)).astype(np.float32), "z": np.ones((1, 4, 1, 1), np.float32)}
    _same_as_original(model, rewritten, feeds)


def test_symbolic_but_equal_shapes_fold() -> None:
    """A symbolic batch on both sides (the same dim_param) is equal by ONNX's rules."""
    nodes = [_conv("conv", "x", "c", "w"), helper.make_node("Add", ["c", "x"], ["y"])]
    model = _block_model(nodes, _weights("w"), x_dims=("n", 4, 8, 8))
    rewritten, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv"]
    _same_as_original(model, rewritten, {"x": RNG.standard_normal((3, 4, 8, 8)).astype(np.float32)})


def test_residual_declared_by_false_value_info_stays() -> None:
    """Z's value_info declares the Conv's shape, but Z is a [1, 4, 1, 1] input passed through
    Identity (whose input declares no shape, so inference alone cannot tell): the Add broadcasts
    it in the original. Declared value_info alone is not trusted, so the Add stays (it was fused,
    and the rewritten model failed at run time on Z's shape)."""
    nodes = [
        _conv("conv", "x", "c", "w"),
        helper.make_node("Identity", ["z_in"], ["z"], name="id"),
        helper.make_node("Add", ["c", "z"], ["y"], name="add"),
    ]
    z_in = helper.make_tensor_value_info("z_in", TensorProto.FLOAT, None)
    model = _block_model(nodes, _weights("w"), extra_inputs=[z_in])
    model.graph.value_info.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 8, 8]))
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["SparseConv", "Identity", "Add"]
    assert [note.code for note in report.layers[0].notes] == [Code.SHAPES_UNKNOWN]
    feeds = {"x": RNG.standard_normal((1, 4, 8, 8)).astype(np.float32), "z_in": np.ones((1, 4, 1, 1), np.float32)}
    _same_as_original(model, rewritten, feeds)


def test_residual_shape_inferred_from_the_graph_still_folds() -> None:
    """The same Identity fed a declared [1, 4, 8, 8] input: inference knows Z's shape without
    any value_info, and the Add folds."""
    nodes = [
        _conv("conv", "x", "c", "w"),
        helper.make_node("Identity", ["z_in"], ["z"], name="id"),
        helper.make_node("Add", ["c", "z"], ["y"], name="add"),
    ]
    z_in = helper.make_tensor_value_info("z_in", TensorProto.FLOAT, [1, 4, 8, 8])
    model = _block_model(nodes, _weights("w"), extra_inputs=[z_in])
    rewritten, report = onnx_sparsify.sparsify(model, min_sparsity=0)
    assert [n.op_type for n in rewritten.graph.node] == ["Identity", "SparseConv"]
    assert report.layers[0].folded == ["residual"]
    feeds = {k: RNG.standard_normal((1, 4, 8, 8)).astype(np.float32) for k in ("x", "z_in")}
    _same_as_original(model, rewritten, feeds)
