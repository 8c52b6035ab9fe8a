"""One Conv layer: dense Conv model, its SparseConv rewrite, timed side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx_sparsify
from onnx_sparsify import layer_models

from .layers import Layer
from .timing import BoundRun, make_session, relative_l2, time_pair, timing_fields


def random_weight(rng: np.random.Generator, shape, sparsity: float, block: int = 1) -> np.ndarray:
    """Unstructured (block 1): exactly round(sparsity * size) zeros at random positions. With
    block b: runs of b consecutive input channels (one output channel, one tap, aligned to b) are
    zeroed together, round(sparsity * runs) of them (DeepSparse's 4-block pruning, for int8)."""
    w = rng.standard_normal(shape).astype(np.float32)
    if block == 1:
        flat = w.reshape(-1)
        flat[rng.permutation(flat.size)[: int(round(sparsity * flat.size))]] = 0.0
        return w
    runs = (shape[0], -(-shape[1] // block), *shape[2:])
    count = int(np.prod(runs))
    mask = np.zeros(count, bool)
    mask[rng.permutation(count)[: int(round(sparsity * count))]] = True
    w[np.repeat(mask.reshape(runs), block, axis=1)[:, : shape[1]]] = 0.0
    return w


def conv_model(layer: Layer, weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """The layer as one dense Conv named after it (onnx_sparsify.layer_models builds it)."""
    return layer_models.conv_model(layer.x_shape, weight, bias, layer.attrs, name=layer.name)


@dataclass(frozen=True)
class LayerModels:
    """One layer's dense Conv model, its SparseConv rewrite (every Conv rewritten), the weight and
    a random input, from one seed."""

    dense: onnx.ModelProto
    sparse: onnx.ModelProto
    weight: np.ndarray
    feeds: dict[str, np.ndarray]


def layer_models_for(layer: Layer, seed: int = 0) -> LayerModels:
    rng = np.random.default_rng(seed)
    weight = random_weight(rng, layer.w_shape, layer.sparsity, layer.block)
    bias = rng.standard_normal(layer.out_channels).astype(np.float32)
    dense = conv_model(layer, weight, bias)
    sparse, _ = onnx_sparsify.sparsify(dense, min_sparsity=0)
    return LayerModels(dense, sparse, weight, {"x": rng.standard_normal(layer.x_shape).astype(np.float32)})


def bench_layer(
    layer: Layer, threads: int, budget_s: float, seed: int = 0, provider: str = "cpu", peers: Sequence[Any] = ()
) -> dict[str, Any]:
    """ORT's dense Conv and SparseConv timed side by side (benchmarks.timing.time_pair), then each
    peer engine (benchmarks.peers) on the same dense model file, input and thread count, one after
    the other once the ORT sessions are gone: row[peer.name] holds its figures."""
    models = layer_models_for(layer, seed)
    dense_model, sparse_model, weight, x = models.dense, models.sparse, models.weight, models.feeds
    d, s, dense, sparse = time_pair(
        lambda: BoundRun(make_session(dense_model, plugin=False, threads=threads, provider=provider), x, provider),
        lambda: BoundRun(make_session(sparse_model, plugin=True, threads=threads, provider=provider), x, provider),
        block_s=budget_s / 6,
    )
    expected, actual = np.array(dense.outputs[0].numpy()), np.array(sparse.outputs[0].numpy())
    del dense, sparse  # the ORT sessions and their threads go before a peer runs
    error = relative_l2(actual, expected)
    nnz = int(np.count_nonzero(weight))
    out_positions = int(np.prod(expected.shape[2:])) * expected.shape[0]
    dense_flop = 2 * weight.size * out_positions
    sparse_flop = 2 * nnz * out_positions  # the nonzero work, the same for every sparse engine
    row = {
        "provider": provider,
        "layer": layer.name,
        "x_shape": list(layer.x_shape),
        "w_shape": list(layer.w_shape),
        "attrs": layer.attrs,
        "sparsity": layer.sparsity,
        "threads": threads,
        **timing_fields(d, s),
        "nnz": nnz,
        "dense_flop": dense_flop,
        "sparse_flop": sparse_flop,
        "dense_gflops": dense_flop / d.median_ms / 1e6,
        "sparse_gflops": sparse_flop / s.median_ms / 1e6,
        "rel_l2_error": error,
    }
    for peer in peers:
        result = peer.time_model(dense_model, x, expected, threads, block_s=budget_s / 6)
        if result.get("median_ms"):
            result["gflops"] = sparse_flop / result["median_ms"] / 1e6
        row[peer.name] = result
    return row


def bench_torch_cudnn(layer: Layer, allow_tf32: bool, runs: int = 50, seed: int = 0) -> float:
    """Median milliseconds of PyTorch's cuDNN convolution for the same layer (dense weight)."""
    import torch

    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(random_weight(rng, layer.w_shape, layer.sparsity)).cuda()
    x = torch.from_numpy(rng.standard_normal(layer.x_shape).astype(np.float32)).cuda()
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[
        len(layer.kernel)
    ]
    pads = layer.attrs.get("pads", [0] * 2 * len(layer.kernel))[: len(layer.kernel)]
    kwargs = {"stride": layer.attrs.get("strides", 1), "padding": pads, "groups": layer.group}
    for _ in range(5):
        conv(x, w, **kwargs)
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        conv(x, w, **kwargs)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))
