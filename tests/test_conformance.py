"""SparseConv equals ORT's dense Conv across everything ONNX Conv can express."""

from __future__ import annotations

import functools

import isa as isas
import numpy as np
import onnx
import pytest
from models import (
    ACTIVATIONS,
    assert_sparse_matches_dense,
    conv_model,
    epilogue_attributes,
    random_sparse_weight,
    run_nan_prefilled,
    seeded_rng,
    session,
    sparse_conv_from_dense,
)
from onnx.reference import ReferenceEvaluator
from onnx_sparsify import _core
from onnx_sparsify.csr import dense_to_csr

# (id, x_shape, w_shape, Conv attributes)
CASES = [
    ("1d", (2, 3, 17), (4, 3, 3), {}),
    ("1d_stride_pad_dilation", (1, 4, 40), (6, 4, 5), {"strides": [3], "pads": [2, 1], "dilations": [2]}),
    ("2d", (1, 3, 9, 11), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ("2d_batch", (3, 4, 8, 8), (6, 4, 3, 3), {}),
    ("2d_stride2", (2, 8, 14, 15), (8, 8, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("2d_stride_mixed", (1, 4, 13, 17), (5, 4, 3, 5), {"strides": [1, 3], "pads": [0, 2, 1, 0]}),
    ("2d_asymmetric_pads", (1, 3, 10, 10), (4, 3, 4, 2), {"pads": [3, 0, 1, 2]}),
    ("2d_dilations", (1, 5, 20, 18), (4, 5, 3, 3), {"dilations": [2, 3], "pads": [2, 3, 2, 3]}),
    ("2d_large_kernel", (1, 3, 32, 48), (8, 3, 11, 11), {"pads": [5, 5, 5, 5]}),
    ("2d_1x1", (2, 16, 7, 9), (12, 16, 1, 1), {}),
    ("2d_1x1_spatial_input", (2, 8, 1, 1), (4, 8, 1, 1), {}),
    ("2d_1x1_spatial_input_padded", (1, 8, 1, 1), (4, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
    ("2d_wide_row", (1, 2, 3, 70), (3, 2, 3, 3), {"pads": [1, 1, 1, 1]}),
    ("2d_group2", (1, 8, 10, 10), (6, 4, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),
    ("2d_depthwise", (2, 12, 11, 11), (12, 1, 3, 3), {"group": 12, "pads": [1, 1, 1, 1]}),
    ("2d_depthwise_stride", (1, 16, 15, 15), (16, 1, 5, 5), {"group": 16, "strides": [2, 2], "pads": [2, 2, 2, 2]}),
    ("2d_depthwise_multiplier", (1, 6, 9, 9), (12, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
    ("2d_auto_same_upper", (1, 3, 10, 11), (4, 3, 4, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("2d_auto_same_lower", (1, 3, 10, 11), (4, 3, 4, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ("2d_auto_same_dilated", (1, 3, 10, 11), (4, 3, 3, 2), {"auto_pad": "SAME_UPPER", "dilations": [2, 3]}),
    ("2d_auto_valid", (1, 3, 10, 11), (4, 3, 3, 4), {"auto_pad": "VALID", "strides": [2, 1]}),
    ("2d_stride_beyond_kernel", (1, 3, 11, 11), (4, 3, 1, 1), {"strides": [4, 5]}),
    ("2d_same_stride_beyond_kernel", (1, 3, 10, 13), (4, 3, 1, 1), {"auto_pad": "SAME_UPPER", "strides": [5, 4]}),
    ("3d", (1, 3, 5, 6, 7), (4, 3, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}),
    ("3d_stride_dilation", (2, 4, 8, 9, 10), (6, 4, 2, 3, 3), {"strides": [2, 1, 2], "dilations": [1, 2, 1]}),
    ("3d_group", (1, 6, 5, 5, 5), (6, 2, 3, 3, 3), {"group": 3, "pads": [0, 1, 1, 1, 0, 1]}),
    ("3d_same_lower", (1, 2, 6, 5, 7), (3, 2, 3, 2, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2, 1]}),
    # The CPU kernel's other paths: shifted planes (unit strides, few nonzeros per channel,
    # planes of 1024 or more), per-group padding, and input-channel blocking with partial sums.
    ("plane_depthwise", (2, 16, 40, 40), (16, 1, 3, 3), {"group": 16, "pads": [1, 2, 0, 1]}),
    ("plane_dilated", (1, 4, 36, 33), (6, 4, 3, 3), {"dilations": [2, 3], "pads": [2, 1, 3, 2]}),
    ("plane_1d", (1, 4, 2000), (4, 4, 5), {"pads": [2, 3]}),
    ("plane_3d", (1, 2, 12, 12, 12), (3, 2, 3, 3, 3), {"pads": [1, 0, 1, 1, 2, 0]}),
    ("groups_of_4", (1, 32, 24, 24), (32, 4, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ("channel_blocks", (1, 32, 20, 24), (8, 32, 7, 7), {"pads": [3, 3, 3, 3]}),
    ("channel_blocks_strided", (1, 48, 23, 21), (16, 48, 5, 5), {"strides": [2, 2], "pads": [2, 1, 2, 1]}),
]


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("x_shape,w_shape,attrs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_layouts_and_sparsity(x_shape, w_shape, attrs, sparsity, isa) -> None:
    rng = seeded_rng(x_shape, w_shape, sparsity)
    assert_sparse_matches_dense(rng, x_shape, w_shape, attrs, sparsity=sparsity, empty_rows=1, isa=isa)


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("activation", [None, *ACTIVATIONS])
@pytest.mark.parametrize("bias", [True, False])
def test_activations_and_bias(activation, bias, isa) -> None:
    rng = np.random.default_rng(7)
    assert_sparse_matches_dense(
        rng, (2, 6, 9, 10), (8, 3, 3, 3), {"group": 2, "pads": [1, 0, 1, 2]}, bias=bias, activation=activation, isa=isa
    )


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("width", [127, 128, 129, 256, 300])
def test_full_tiles(width, isa) -> None:
    """Rows that fill whole 128-position tiles (where GCC 12 miscompiled the auto-vectorized AVX2
    tile), with and without padding, and a 1x1 layer that reads X directly."""
    rng = np.random.default_rng(width)
    assert_sparse_matches_dense(rng, (1, 3, 2, width), (4, 3, 1, 1), {}, sparsity=0.3, isa=isa)
    assert_sparse_matches_dense(rng, (1, 3, 2, width), (4, 3, 1, 3), {"pads": [0, 1, 0, 1]}, sparsity=0.3, isa=isa)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_index_dtypes(index_dtype) -> None:
    assert_sparse_matches_dense(np.random.default_rng(3), (1, 4, 8, 8), (5, 4, 3, 3), {}, index_dtype=index_dtype)


@pytest.mark.parametrize(
    "x_shape,w_shape,attrs,symbolic",
    [
        ((2, 4, 12, 10), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}, (True, False, True, True)),
        ((3, 4, 12, 10), (6, 4, 3, 3), {"strides": [2, 2]}, (True, True, True, True)),
        ((2, 3, 30), (4, 3, 5), {"auto_pad": "SAME_UPPER", "strides": [2]}, (True, False, True)),
    ],
    ids=["N_H_W", "all_dims", "1d_same"],
)
def test_symbolic_dims(x_shape, w_shape, attrs, symbolic) -> None:
    assert_sparse_matches_dense(np.random.default_rng(5), x_shape, w_shape, attrs, symbolic=symbolic)


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_intra_op_threads(threads, isa) -> None:
    rng = np.random.default_rng(11)
    assert_sparse_matches_dense(rng, (2, 16, 20, 20), (24, 16, 3, 3), {"pads": [1, 1, 1, 1]}, threads=threads, isa=isa)


@pytest.mark.parametrize(
    "x_shape,w_shape,attrs,message",
    [
        ((1, 2, 2, 6), (3, 2, 3, 3), {}, "larger than the padded input"),
        ((1, 2, 4, 6), (3, 2, 3, 5), {"dilations": [1, 2], "pads": [1, 1, 1, 1]}, "larger than the padded input"),
        (
            (1, 2, 6, 6),
            (3, 2, 3, 3),
            {"auto_pad": "VALID", "strides": [1, 1], "dilations": [3, 1]},
            "larger than the padded input",
        ),
        ((1, 3, 6, 6), (4, 1, 3, 3), {"group": 2}, "not divisible by group"),
        ((1, 4, 6, 6), (3, 2, 3, 3), {"group": 2}, "not divisible by group"),
        ((1, 2, 6, 6), (3, 2, 3, 3), {"auto_pad": "SAME_UPPER", "pads": [1, 1, 1, 1]}, "both set"),
    ],
    ids=[
        "kernel_too_large",
        "dilated_kernel_too_large",
        "valid_kernel_too_large",
        "channels_vs_group",
        "outputs_vs_group",
        "auto_pad_and_pads",
    ],
)
def test_rejects_what_conv_rejects(x_shape, w_shape, attrs, message) -> None:
    """Where ORT's Conv refuses a configuration, SparseConv refuses it too, with a reason."""
    rng = np.random.default_rng(0)
    weight = random_sparse_weight(rng, w_shape, 0.5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    symbolic = (False, False, True, True)  # let both reach run time
    with pytest.raises(Exception):  # noqa: B017 - ORT raises different classes per failure
        session(conv_model(x_shape, weight, None, attrs, symbolic=symbolic), plugin=False).run(None, {"x": x})
    with pytest.raises(Exception, match=message):  # noqa: B017
        session(sparse_conv_from_dense(x_shape, weight, None, attrs, symbolic=symbolic), plugin=True).run(
            None, {"x": x}
        )


@functools.cache
def _ort_prelu_gives_nan_for_minus_inf() -> bool:
    """Whether this ONNX Runtime's PRelu turns an infinity into NaN (1.21 does, with a negative
    slope), where ONNX defines slope * x for x < 0 and x otherwise."""
    node = onnx.helper.make_node("PRelu", ["x", "s"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "prelu",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 2])],
        [onnx.numpy_helper.from_array(np.array([-0.6, 0.5], np.float32), "s")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    x = np.array([[-np.inf, -np.inf], [np.inf, np.inf]], np.float32)
    return bool(np.isnan(session(model, plugin=False).run(None, {"x": x})[0]).any())


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize("activation", [None, *ACTIVATIONS])
def test_nan_and_inf_propagate_as_in_ort(activation, isa) -> None:
    """NaN and infinities in X reach the output exactly as through ORT's Conv and activation:
    every activation maps NaN to NaN (the CUDA kernel shares the formulas, kernels/activation.h).
    (A zero weight is not stored, so unlike dense Conv it never turns an inf into NaN.)"""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, 6, 140)).astype(np.float32)
    x[0, 0, 2, [3, 130]] = np.nan
    x[0, 1, 4, 7] = np.inf
    x[0, 2, 1, 64] = -np.inf
    # No zero weights: ORT's dense Conv multiplies zeros too (0 x inf = NaN), SparseConv stores none.
    weight = rng.choice([-1.0, 1.0], size=(6, 4, 1, 3)).astype(np.float32) * rng.uniform(0.5, 1, (6, 4, 1, 3))
    weight = weight.astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    params = ACTIVATIONS.get(activation, ()) if activation else ()
    attrs = {"pads": [0, 1, 0, 1]}
    reference = conv_model(x.shape, weight, bias, attrs, activation, params)
    expected = session(reference, plugin=False).run(None, {"x": x})[0]
    if activation and "PRelu" in activation and _ort_prelu_gives_nan_for_minus_inf():
        # ONNX defines PRelu(±inf) without NaN, as onnx.reference and ORT 1.31 compute it.
        with np.errstate(all="ignore"):  # inf and NaN in, by design
            expected = ReferenceEvaluator(reference).run(None, {"x": x})[0]
    with isas.forced_isa(isa):
        sparse = session(sparse_conv_from_dense(x.shape, weight, bias, attrs, activation, params), plugin=True)
    actual = run_nan_prefilled(sparse, x, expected.shape)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-5, atol=1e-5)

    csr = dense_to_csr(weight)
    direct = {**attrs, "kernel_shape": [1, 3], **epilogue_attributes(activation, params, weight.shape[0])}
    out = _core.sparse_conv(x, csr.values, csr.col_indices, csr.row_ptr, bias, attributes=direct, **isas.core_args(isa))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))


@pytest.mark.parametrize("activation,params", [("Clip", [0, 6]), ("LeakyRelu", [2]), ("HardSigmoid", [1, 0])])
def test_activation_params_given_as_integers(activation, params) -> None:
    """An INTS activation_params attribute means the same numbers (it was once ignored)."""
    rng = np.random.default_rng(9)
    x = (4 * rng.standard_normal((1, 3, 7, 7))).astype(np.float32)
    weight = random_sparse_weight(rng, (4, 3, 3, 3), 0.5)
    reference = conv_model(x.shape, weight, None, {}, activation, [float(p) for p in params])
    expected = session(reference, plugin=False).run(None, {"x": x})[0]
    model = sparse_conv_from_dense(x.shape, weight, None, {}, activation)
    node = model.graph.node[0]
    node.attribute.append(onnx.helper.make_attribute("activation_params", [int(p) for p in params]))
    assert node.attribute[-1].type == onnx.AttributeProto.INTS
    actual = session(model, plugin=True).run(None, {"x": x})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    csr = dense_to_csr(weight)
    direct = {"kernel_shape": [3, 3], "activation": activation, "activation_params": [int(p) for p in params]}
    out = _core.sparse_conv(x, csr.values, csr.col_indices, csr.row_ptr, None, attributes=direct)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_pybind_out_must_be_float32(dtype) -> None:
    """A non-float32 `out` is refused, not silently replaced by a converted copy."""
    x = np.ones((1, 1, 1, 4), np.float32)
    out = np.full((1, 1, 1, 4), 7, dtype)
    args = (x, np.array([2.0], np.float32), np.array([0], np.int32), np.array([0, 1], np.int32))
    with pytest.raises(ValueError, match="out must be"):
        _core.sparse_conv(*args, attributes={"kernel_shape": [1, 1]}, out=out)
    assert (out == 7).all()


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize(
    "in_size,stride,kernel",
    [
        (h, s, k)
        for k in (1, 2, 3)
        for s in (2, 3, 4, 5, 7)
        for h in range(s + 1, 3 * s + 1)
        if (-(-h // s) - 1) * s + k < h
    ],
)
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_same_padding_with_stride_beyond_kernel(in_size, stride, kernel, auto_pad, isa) -> None:
    """SAME padding whose total is negative (1x1 stride-2 SAME shortcuts of TF-exported ResNets):
    SparseConv computes exactly what ORT's Conv computes."""
    rng = np.random.default_rng(in_size * 100 + stride * 10 + kernel)
    x_shape = (1, 3, in_size, in_size + 1)
    attrs = {"auto_pad": auto_pad, "strides": [stride, stride]}
    assert_sparse_matches_dense(rng, x_shape, (4, 3, kernel, kernel), attrs, sparsity=0.3, isa=isa)
