"""The CPU kernel's generated strategy, code made per layer (ort_plugin/kernels/jit_tiles.h) by
each instruction set's generator (AVX-512, AVX2): code is made for each way it walks the outputs
(flat planes, rows with a masked last vector, virtual tiles, windows of a 1-D row padded per
task), for blocks across groups, where reading X directly forces a fallback on the last rows, and
for a symbolic batch; each result equals ORT's Conv. The variant matrix (tests/isa.py) runs every
conformance, property and residual test with generated code as well. The rewriter's
input_shape_hint lets the plugin generate code where the model leaves X's sizes symbolic."""

from __future__ import annotations

import isa as isas
import numpy as np
import onnx_sparsify
import pytest
from isa import Variant, forced_isa
from models import (
    assert_sparse_matches_dense,
    conv_model,
    dense_reference,
    random_sparse_weight,
    rel_l2,
    run_nan_prefilled,
    seeded_rng,
    session,
)
from onnx_sparsify import _core, layer_models
from onnx_sparsify.csr import dense_to_csr

# The variants that run generated code, skipped where this machine lacks them.
GENERATED = [p for p in isas.PARAMS if p.values[0].strategy == "generated"]
AVX512 = Variant("avx512f", "generated")
needs_avx512_code = pytest.mark.skipif(
    not isas.supported(AVX512), reason="generated AVX-512 code needs AVX-512 and executable memory"
)
# Output channels per generated block, by the code's vector width (jit_tiles.cc's generators).
MAX_CHANNELS = {16: 28, 8: 14}

# (id, x shape, weight shape, Conv attributes, expected walk)
CASES = [
    ("flat_1x1", (1, 40, 16, 16), (36, 40, 1, 1), {}, "flat"),
    ("flat_1x1_padded_plane", (2, 24, 14, 14), (30, 24, 1, 1), {}, "flat"),
    ("rows_3x3", (1, 16, 40, 56), (29, 16, 3, 3), {"pads": [1, 1, 1, 1]}, "rows"),
    ("rows_strided", (1, 12, 60, 62), (20, 12, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "rows"),
    # one padded input row per channel: padded in windows of 512 outputs, the last one partial
    ("windows_1d", (1, 8, 1300), (10, 8, 5), {"pads": [2, 2]}, "windows"),
    ("windows_1d_dilated_uneven_pads", (2, 6, 700), (33, 6, 4), {"pads": [9, 1], "dilations": [3]}, "windows"),
    ("windows_1d_one_short_window", (1, 5, 40), (7, 5, 3), {"pads": [1, 1]}, "windows"),
    ("windows_1d_grouped", (1, 60, 1100), (60, 20, 3), {"group": 3, "pads": [1, 1]}, "windows"),
    ("windows_height_1", (1, 6, 1, 600), (9, 6, 1, 7), {"pads": [0, 3, 0, 3]}, "windows"),
    ("rows_1d_strided", (1, 8, 1300), (10, 8, 5), {"strides": [2], "pads": [2, 2]}, "rows"),
    # windows would exceed the 8 MB buffer bound (kWindowBufferBytes): the whole padded copy
    ("rows_1d_windows_too_large", (1, 4, 2**21 + 100), (5, 4, 3), {"dilations": [2**20], "pads": [1, 1]}, "rows"),
    # X read directly (no padding, unit strides): the last row's last vector would read past X
    ("rows_direct_x_fallback", (1, 3, 6, 40), (5, 3, 1, 10), {}, "rows"),
    ("virtual_7x7", (1, 32, 7, 7), (40, 32, 3, 3), {"pads": [1, 1, 1, 1]}, "virtual"),
    ("virtual_direct_x_fallback", (1, 4, 20, 20), (6, 4, 3, 3), {}, "virtual"),
    ("grouped_blocks", (1, 64, 20, 56), (64, 32, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}, "rows"),
    ("small_groups", (1, 32, 24, 24), (32, 4, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}, "virtual"),
    ("3d", (1, 4, 6, 10, 30), (6, 4, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}, "rows"),
]


def _info(x_shape, w_shape, attrs, any_size: bool, rng: np.random.Generator, variant: Variant = AVX512) -> dict:
    csr = dense_to_csr(random_sparse_weight(rng, w_shape, 0.8), np.int32)
    return _core.cpu_plan_info(
        list(x_shape),
        csr.values,
        csr.col_indices,
        csr.row_ptr,
        attributes=dict(attrs, kernel_shape=list(w_shape[2:])),
        any_size=any_size,
        isa=variant.isa,
        strategy=variant.strategy,
    )


@pytest.mark.parametrize("variant", GENERATED)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("activation", [None, "Relu", "HardSigmoid"])
def test_each_walk_matches_ort(case, activation, variant) -> None:
    _, x_shape, w_shape, attrs, walk = case
    rng = seeded_rng(case[0], activation)
    info = _info(x_shape, w_shape, attrs, True, rng, variant)
    assert (info["isa"], info["strategy"], info["walk"]) == (variant.isa, "generated", walk)
    assert info["code_bytes"] > 0
    groups = attrs.get("group", 1)
    per_group = w_shape[0] // groups
    assert info["blocks"] == groups * -(-per_group // MAX_CHANNELS[info["lanes"]])
    for sparsity in (0.5, 0.9):
        assert_sparse_matches_dense(
            rng, x_shape, w_shape, attrs, sparsity=sparsity, activation=activation, empty_rows=1, isa=variant
        )


def test_strategy_is_a_setting_of_its_own() -> None:
    """avx512vnni plans avx512f's float code; the baseline has no generator, and forcing one is
    refused with the reason; the retired name avx512f-jit says what replaced it."""
    rng = np.random.default_rng(3)
    layer = ((1, 16, 20, 20), (24, 16, 3, 3), {"pads": [1, 1, 1, 1]})
    if "avx512vnni" in isas.SUPPORTED and isas.supported(AVX512):
        # The same weight (the same seed) both times.
        vnni = _info(*layer, True, np.random.default_rng(4), Variant("avx512vnni", "generated"))
        avx512 = _info(*layer, True, np.random.default_rng(4), AVX512)
        assert {k: vnni[k] for k in ("lanes", "blocks", "code_bytes")} == {
            k: avx512[k] for k in ("lanes", "blocks", "code_bytes")
        }
    assert _core.supported_cpu_strategies("baseline") == ["loops"]
    with pytest.raises(ValueError, match="no code generator for baseline"):
        _info(*layer, True, rng, Variant("baseline", "generated"))
    with pytest.raises(ValueError, match="ONNX_SPARSIFY_CPU_STRATEGY=generated"):
        _info(*layer, True, rng, Variant("avx512f-jit", "loops"))
    with pytest.raises(ValueError, match="not a strategy"):
        _info(*layer, True, rng, Variant("baseline", "jit"))
    loops = _info(*layer, True, rng, Variant("baseline", "loops"))
    assert (loops["code_bytes"], loops["path"]) == (0, "tiles")


@needs_avx512_code
def test_plugin_generates_code_only_for_planes_large_enough() -> None:
    rng = np.random.default_rng(1)
    small = ((1, 32, 7, 7), (40, 32, 3, 3), {"pads": [1, 1, 1, 1]})
    large = ((1, 32, 28, 28), (40, 32, 3, 3), {"pads": [1, 1, 1, 1]})
    assert _info(*small, any_size=False, rng=rng)["code_bytes"] == 0
    assert _info(*small, any_size=True, rng=rng)["code_bytes"] > 0
    assert _info(*large, any_size=False, rng=rng)["code_bytes"] > 0


@pytest.mark.parametrize("variant", GENERATED)
@pytest.mark.parametrize("batch", [1, 3])
def test_symbolic_batch_runs_planned_code(batch, variant) -> None:
    """A symbolic batch no longer stops the plugin from planning (and generating code) at
    creation: the layout does not depend on the batch."""
    rng = np.random.default_rng(batch)
    assert_sparse_matches_dense(
        rng, (batch, 16, 24, 24), (24, 16, 3, 3), {"pads": [1, 1, 1, 1]}, symbolic=(True,), threads=2, isa=variant
    )


def _hinted_model(rng: np.random.Generator, hint: list[int] | None):
    """A 3x3 SparseConv whose X has symbolic N, H and W, with `hint` as its input_shape_hint."""
    weight = random_sparse_weight(rng, (24, 16, 3, 3), 0.9)
    bias = rng.standard_normal(24).astype(np.float32)
    csr = dense_to_csr(weight, np.int32)
    attrs = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3], "in_channels_per_group": 16}
    if hint:
        attrs["input_shape_hint"] = hint
    symbolic = (True, False, True, True)
    model = layer_models.sparse_conv_model(
        (1, 16, 40, 56), csr.values, csr.col_indices, csr.row_ptr, bias, attrs, symbolic
    )
    dense = conv_model((1, 16, 40, 56), weight, bias, {"pads": [1, 1, 1, 1]}, None, (), symbolic)
    return model, dense


@pytest.mark.parametrize("isa", isas.PARAMS)
@pytest.mark.parametrize(
    "x_shape", [(1, 16, 40, 56), (2, 16, 40, 56), (1, 16, 23, 31)], ids=["hinted", "batch", "other"]
)
def test_input_shape_hint_prepares_without_changing_results(x_shape, isa) -> None:
    """Symbolic H and W with a hint of 40x56: the hinted shape (and any batch) runs the offsets
    (and generated code) made at creation, another shape the per-call path; every
    instruction set equals ORT's Conv."""
    rng = np.random.default_rng(sum(x_shape))
    model, dense = _hinted_model(rng, [1, 16, 40, 56])
    x = rng.standard_normal(x_shape).astype(np.float32)
    expected = dense_reference(dense, x)
    with forced_isa(isa):
        sparse = session(model, plugin=True)
    actual = run_nan_prefilled(sparse, x, expected.shape)
    assert rel_l2(actual, expected) <= 1e-5


@pytest.mark.parametrize("isa", isas.PARAMS)
def test_a_hint_no_input_could_run_is_ignored(isa) -> None:
    """input_shape_hint is for speed only: a hint of 2x2 for a 3x3 kernel without padding (no
    input of that size runs) makes the plugin prepare nothing instead of failing the session,
    and real inputs run, equal to ORT's Conv (session creation failed)."""
    rng = np.random.default_rng(11)
    weight = random_sparse_weight(rng, (24, 16, 3, 3), 0.9)
    csr = dense_to_csr(weight, np.int32)
    attrs = {"kernel_shape": [3, 3], "in_channels_per_group": 16, "input_shape_hint": [1, 16, 2, 2]}
    symbolic = (True, False, True, True)
    model = layer_models.sparse_conv_model(
        (1, 16, 10, 12), csr.values, csr.col_indices, csr.row_ptr, None, attrs, symbolic
    )
    dense = conv_model((1, 16, 10, 12), weight, None, {}, None, (), symbolic)
    with forced_isa(isa):
        sparse = session(model, plugin=True)
    for shape in ((1, 16, 10, 12), (2, 16, 3, 3)):
        x = rng.standard_normal(shape).astype(np.float32)
        expected = dense_reference(dense, x)
        assert rel_l2(run_nan_prefilled(sparse, x, expected.shape), expected) <= 1e-5, shape


def test_rewriter_never_writes_a_hint_the_plugin_cannot_plan() -> None:
    """--input-shape 1x16x2x2 for a 3x3 Conv without padding, and a 1-D input longer than the
    plugin's attribute bound: no hint written; a hint that fits is."""
    from onnx_sparsify._contract import MAX_ATTRIBUTE_VALUE

    rng = np.random.default_rng(6)

    def hint(model):
        node = next(n for n in model.graph.node if n.op_type == "SparseConv")
        return next((list(a.ints) for a in node.attribute if a.name == "input_shape_hint"), None)

    weight = random_sparse_weight(rng, (24, 16, 3, 3), 0.9)
    dense = conv_model((1, 16, 40, 56), weight, None, {}, None, (), (True, False, True, True))
    for x_shape, expected in (([1, 16, 2, 2], None), ([1, 16, 3, 3], [1, 16, 3, 3])):
        rewritten, _ = onnx_sparsify.sparsify(dense, input_shapes={"x": x_shape}, min_sparsity=0, measure=False)
        assert hint(rewritten) == expected, x_shape
    long = conv_model((1, 4, MAX_ATTRIBUTE_VALUE + 1), random_sparse_weight(rng, (4, 4, 3), 0.5), None, {})
    rewritten, _ = onnx_sparsify.sparsify(long, min_sparsity=0, measure=False)
    assert hint(rewritten) is None
    session(rewritten, plugin=True)  # loads


def test_rewriter_writes_the_hint_where_shapes_resolve() -> None:
    rng = np.random.default_rng(5)
    weight = random_sparse_weight(rng, (24, 16, 3, 3), 0.9)
    dense = conv_model((1, 16, 40, 56), weight, None, {"pads": [1, 1, 1, 1]}, None, (), (True, False, True, True))
    hinted, _ = onnx_sparsify.sparsify(dense, input_shapes={"x": [1, 16, 40, 56]}, measure=False)
    plain, _ = onnx_sparsify.sparsify(dense, measure=False)

    def hint(model):
        node = next(n for n in model.graph.node if n.op_type == "SparseConv")
        return next((list(a.ints) for a in node.attribute if a.name == "input_shape_hint"), None)

    assert hint(hinted) == [1, 16, 40, 56]
    assert hint(plain) is None  # H and W unknown: no hint


@pytest.mark.parametrize("variant", GENERATED)
def test_code_for_windows_is_not_run_on_a_call_that_walks_rows(variant) -> None:
    """A model that leaves X's channels symbolic (no in_channels_per_group) is planned for its
    hint's 3971 channels, whose windows just fit the 8 MB bound; a call with one channel more
    takes the rows walk over the whole copy, so the code generated for windows must not run."""
    rng = np.random.default_rng(5)
    planned, called, length = 3971, 3972, 130
    weight = random_sparse_weight(rng, (4, planned, 3), 0.99)
    csr = dense_to_csr(weight, np.int32)
    attrs = {"kernel_shape": [3], "pads": [1, 1], "input_shape_hint": [1, planned, length]}
    model = layer_models.sparse_conv_model(
        (1, planned, length), csr.values, csr.col_indices, csr.row_ptr, None, attrs, symbolic=(True, True, True)
    )
    with forced_isa(variant):
        sparse = session(model, plugin=True)
    for channels in (planned, called):
        x = rng.standard_normal((1, channels, length)).astype(np.float32)
        padded = np.zeros((4, channels, 3), np.float32)
        padded[:, :planned] = weight
        expected = dense_reference(conv_model((1, channels, length), padded, None, {"pads": [1, 1]}), x)
        actual = run_nan_prefilled(sparse, x, expected.shape)
        assert rel_l2(actual, expected) <= 1e-5, channels
