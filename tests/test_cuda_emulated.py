"""The CUDA kernels' own source, executed on the CPU through the test suite's CUDA emulation
(tests/cuda_emulation/), against ORT's Conv (onnx.reference where ORT deviates from ONNX).

The emulation compiles ort_plugin/cuda/sparse_conv_cuda.cu as host C++; the setup is the
plugin's (attribute parsing, CSR packing, call geometry, cuda::PlanCuda) and the launcher is the
real cuda::LaunchSparseConv up to its <<<>>>, where blocks run one at a time with their threads as
fibers: __syncthreads() really suspends a thread until its whole block arrives, shared memory
starts as NaN, and the order threads run in between barriers varies (forward, reverse,
shuffled). This proves the kernels' arithmetic, indexing, tiling, grid-stride and barrier logic.
It proves nothing about speed, races under real warp scheduling and memory ordering, memory
coalescing, or that nvcc compiles the code the same way: tests/test_cuda.py does that on a GPU."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cuda_emulation import emulated
from hypothesis import HealthCheck, given, settings
from models import (
    ACTIVATIONS,
    conv_model,
    dense_reference,
    epilogue_attributes,
    random_sparse_weight,
    rel_l2,
    seeded_rng,
)
from onnx_sparsify import _core
from onnx_sparsify.csr import dense_to_csr
from test_conformance import CASES
from test_property import conv_configs

pytestmark = pytest.mark.skipif(emulated.compiler() is None, reason="needs a C++ compiler (g++) for the emulation")

SCHEDULES = list(emulated.SCHEDULES)
MAX_GRID_X = 2**31 - 1


@pytest.fixture(scope="module", autouse=True)
def _built():
    emulated.build()


def run_case(
    rng: np.random.Generator,
    x_shape,
    w_shape,
    attrs: dict,
    sparsity: float = 0.9,
    bias: bool = True,
    activation: str | None = None,
    empty_rows: int = 0,
    **launch,
) -> emulated.LaunchStats:
    """The emulated CUDA path equals ORT's Conv; every output element written."""
    weight = random_sparse_weight(rng, w_shape, sparsity, empty_rows)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    x = rng.standard_normal(x_shape).astype(np.float32)
    params = ACTIVATIONS.get(activation, ()) if activation else ()
    expected = dense_reference(conv_model(x_shape, weight, b, attrs, activation, params), x)
    csr = dense_to_csr(weight)
    sparse_attrs = dict(attrs, kernel_shape=list(w_shape[2:]), in_channels_per_group=int(w_shape[1]))
    sparse_attrs.update(epilogue_attributes(activation, params, w_shape[0]))
    actual, stats = emulated.sparse_conv(
        x, csr.values, csr.col_indices, csr.row_ptr, b, sparse_attrs, expected.shape, **launch
    )
    assert not np.isnan(actual).any(), f"the CUDA kernel left {int(np.isnan(actual).sum())} outputs unwritten"
    err = rel_l2(actual, expected)
    assert err <= 1e-5, f"relative L2 error {err:.3g} against ORT Conv ({stats})"
    return stats


# --- the emulation itself ----------------------------------------------------------------------


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_emulated_barrier_orders_shared_memory(schedule) -> None:
    """A block exchanging values through shared memory is right with __syncthreads() under every
    schedule, and visibly wrong without it (reads of unwritten shared memory give NaN)."""
    code, out, _ = emulated.self_test("reverse", schedule, blocks=3, threads=96)
    assert code == 0
    expected = np.concatenate([np.arange(96 * (b + 1) - 1, 96 * b - 1, -1) for b in range(3)]).astype(np.float32)
    np.testing.assert_array_equal(out, expected)
    code, out, _ = emulated.self_test("reverse_without_barrier", schedule, blocks=3, threads=96)
    assert code == 0 and np.isnan(out).any()


def test_emulated_divergent_barrier_fails_the_launch() -> None:
    """Threads exiting while others wait at __syncthreads() (undefined in CUDA) fail the launch."""
    code, _, message = emulated.self_test("divergent_barrier", "forward", blocks=1, threads=64)
    assert code == 719 and "exited threads never reach" in message  # cudaErrorLaunchFailure


def test_emulated_launch_limits() -> None:
    code, _, message = emulated.self_test("block_too_large", "forward", blocks=1, threads=1)
    assert code == 9 and "block too large" in message  # cudaErrorInvalidConfiguration


# --- conformance: every case of the CPU suite, through the CUDA kernels ------------------------


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("x_shape,w_shape,attrs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_tiled_kernel_matches_conv(x_shape, w_shape, attrs, sparsity, schedule) -> None:
    rng = seeded_rng(x_shape, w_shape, sparsity)
    stats = run_case(rng, x_shape, w_shape, attrs, sparsity=sparsity, empty_rows=1, schedule=schedule)
    assert stats.tiled, "the tiled kernel serves every conformance case"
    assert stats.blocks_run == stats.blocks


@pytest.mark.parametrize("x_shape,w_shape,attrs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_direct_kernel_matches_conv(x_shape, w_shape, attrs) -> None:
    rng = seeded_rng(x_shape, w_shape)
    assert not run_case(rng, x_shape, w_shape, attrs, empty_rows=1, direct=True, max_blocks=5).tiled


@pytest.mark.parametrize("activation", [None, *ACTIVATIONS])
@pytest.mark.parametrize("bias", [True, False])
def test_activations_and_bias(activation, bias) -> None:
    rng = np.random.default_rng(7)
    attrs = {"group": 2, "pads": [1, 0, 1, 2]}
    run_case(rng, (2, 6, 9, 10), (8, 3, 3, 3), attrs, bias=bias, activation=activation, schedule="shuffled")


def test_nan_and_inf_propagate_as_on_the_cpu() -> None:
    """Non-finite inputs reach exactly the outputs the CPU kernel gives them (shared formulas,
    kernels/activation.h; the tile's zero padding multiplies no stored weight by inf)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, 6, 40)).astype(np.float32)
    x[0, 0, 2, [3, 30]] = np.nan
    x[0, 1, 4, 7] = np.inf
    x[0, 2, 0, 39] = -np.inf
    weight = random_sparse_weight(rng, (6, 4, 3, 3), 0.5)
    csr = dense_to_csr(weight)
    bias = rng.standard_normal(6).astype(np.float32)
    for activation in [None, *ACTIVATIONS]:
        params = list(ACTIVATIONS.get(activation, ())) if activation else []
        attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], **epilogue_attributes(activation, params, 6)}
        cpu = _core.sparse_conv(x, csr.values, csr.col_indices, csr.row_ptr, bias, attributes=attrs)
        gpu, _ = emulated.sparse_conv(x, csr.values, csr.col_indices, csr.row_ptr, bias, attrs, cpu.shape)
        np.testing.assert_array_equal(np.isnan(gpu), np.isnan(cpu))
        np.testing.assert_array_equal(np.isinf(gpu), np.isinf(cpu))
        finite = np.isfinite(cpu)
        np.testing.assert_allclose(gpu[finite], cpu[finite], rtol=1e-5, atol=1e-5)


# --- launch shapes: grid-stride loops, grid limits, blocks straddling boundaries ---------------


@pytest.mark.parametrize("max_blocks", [1, 2, 7, 64])
@pytest.mark.parametrize("direct", [False, True])
def test_grid_stride_loop_covers_every_item(max_blocks, direct) -> None:
    """A grid smaller than the work (as when the work exceeds CUDA's grid limit) walks it all."""
    rng = np.random.default_rng(max_blocks)
    stats = run_case(
        rng,
        (2, 8, 19, 45),
        (40, 4, 3, 3),
        {"group": 2, "pads": [1, 1, 1, 1]},
        empty_rows=3,
        max_blocks=max_blocks,
        direct=direct,
        schedule="reverse",
    )
    assert stats.blocks == min(max_blocks, stats.items) and stats.items > 7


def test_huge_layers_launch_within_cuda_grid_limits() -> None:
    """Work beyond 2^31 blocks: the grid is capped at CUDA's limit (the kernels' grid-stride loop
    covers the rest) and the configuration is valid; computed by the launcher without running."""
    weight = random_sparse_weight(np.random.default_rng(0), (64, 16, 3, 3), 0.9)
    csr = dense_to_csr(weight)
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    x_shape = (4096, 16, 8192, 8192)  # 2^50 outputs: far beyond any memory, only the launch is computed
    tiled, blocks, items, valid = emulated.launch_shape(x_shape, csr.values, csr.col_indices, csr.row_ptr, attrs)
    assert tiled and valid and blocks == MAX_GRID_X and items == 4096 * (8192 // 32) * (8192 // 4) * 4
    tiled, blocks, items, valid = emulated.launch_shape(
        x_shape, csr.values, csr.col_indices, csr.row_ptr, attrs, direct=True
    )
    assert not tiled and valid and blocks == MAX_GRID_X and items == 4096 * 64 * 8192 * 8192


def test_channel_chunks_and_row_blocks_straddle() -> None:
    """Input channels over several shared-memory chunks (the last one partial), output channels
    of each group over several row blocks (the last one partial, never crossing a group), tiles
    overhanging the output on both axes, rows of very different lengths."""
    rng = np.random.default_rng(3)
    stats = run_case(rng, (2, 200, 9, 37), (36, 100, 1, 1), {"group": 2}, sparsity=0.7, empty_rows=5)
    assert stats.chunks == 2 and stats.chunk_channels < 100
    weight_shape = (20, 40, 5, 5)
    stats = run_case(rng, (1, 40, 13, 21), weight_shape, {"pads": [2, 2, 2, 2], "strides": [1, 2]}, sparsity=0.5)
    assert stats.chunks >= 2


def test_layer_too_large_for_shared_memory_runs_the_direct_kernel() -> None:
    """A dilated kernel whose single-channel input tile exceeds shared memory takes the direct kernel."""
    rng = np.random.default_rng(4)
    stats = run_case(rng, (1, 2, 12100), (3, 2, 3), {"dilations": [6000]}, sparsity=0.3)
    assert not stats.tiled


def test_empty_output_and_all_zero_weight() -> None:
    rng = np.random.default_rng(6)
    run_case(rng, (1, 4, 5, 5), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}, sparsity=1.0)
    weight = random_sparse_weight(rng, (3, 2, 3, 3), 0.5)
    csr = dense_to_csr(weight)
    y, stats = emulated.sparse_conv(
        np.zeros((0, 2, 5, 5), np.float32),
        csr.values,
        csr.col_indices,
        csr.row_ptr,
        None,
        {"kernel_shape": [3, 3]},
        (0, 3, 3, 3),
    )
    assert y.shape == (0, 3, 3, 3) and stats.launches == 0


# --- property-based: the CPU suite's random configurations ------------------------------------

EXAMPLES = int(os.environ.get("ONNX_SPARSIFY_EMULATED_EXAMPLES", "300"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(config=conv_configs())
def test_property_emulated_cuda_equals_conv(config) -> None:
    seed = config["seed"]
    rng = np.random.default_rng(seed)
    run_case(
        rng,
        config["x_shape"],
        config["w_shape"],
        config["attrs"],
        sparsity=config["sparsity"],
        bias=config["bias"],
        activation=config["activation"],
        empty_rows=config["empty_rows"],
        schedule=SCHEDULES[seed % 3],
        seed=seed,
        max_blocks=[MAX_GRID_X, 1, 3][seed % 3],
        direct=seed % 5 == 0,
    )
