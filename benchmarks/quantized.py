"""int8 side by side (issue 22): on the harness's target layers, ORT's dense fp32 Conv, ORT's
own int8 (QLinearConv, what its quantizer's QDQ models run), SparseConv fp32 and SparseQLinearConv
int8, timed in one process in alternating blocks (one session alive at a time), 1 thread unless
stated. The weight is the harness's (90% unstructured zeros), quantized per output channel to
symmetric int8; X and Y uint8 with scales from their ranges. --block 4 prunes in runs of 4 input
channels instead (the zeros SparseQLinearConv's quads skip whole).

python -m benchmarks.quantized [--layers R1,R5] [--threads 1] [--out quantized.json]"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnx_sparsify.layer_models import Quantization, qlinear_conv_model, sparse_qlinear_conv_model
from onnx_sparsify.timing import BoundRun, make_session, time_alternating

from .__main__ import machine
from .layers import TARGETS, Layer
from .single_layer import layer_models_for

log = logging.getLogger("benchmarks.quantized")

COLUMNS = ("ort_fp32", "ort_int8", "sparse_fp32", "sparse_int8")


def _uint8(values: np.ndarray) -> tuple[float, int]:
    """Scale and zero point covering `values` in uint8."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (hi - lo) / 255 or 1.0
    return float(np.float32(scale)), int(np.clip(round(-lo / scale), 0, 255))


def quantize(layer: Layer, seed: int = 0):
    """The layer's fp32 models and their int8 forms: (fp32 dense, fp32 sparse, int8 dense, int8
    sparse, fp32 feeds, int8 feeds)."""
    models = layer_models_for(layer, seed)
    w = models.weight
    m = w.shape[0]
    w_scale = (np.abs(w.reshape(m, -1)).max(axis=1) / 127).astype(np.float32)
    w_scale[w_scale == 0] = 1.0
    w_q = np.clip(np.round(w / w_scale.reshape([m] + [1] * (w.ndim - 1))), -127, 127).astype(np.int8)
    x = models.feeds["x"]
    x_scale, x_zero = _uint8(x)
    x_q = np.clip(np.round(x / x_scale) + x_zero, 0, 255).astype(np.uint8)
    y = BoundRun(make_session(models.dense, plugin=False, threads=1), models.feeds)
    y()
    y_scale, y_zero = _uint8(y.outputs[0].numpy())
    del y
    q = Quantization("uint8", x_scale, x_zero, w_scale, 0, y_scale, y_zero)
    bias = np.zeros(m, np.int32)
    int8_dense = qlinear_conv_model(layer.x_shape, w_q, bias, layer.attrs, q)
    int8_sparse = sparse_qlinear_conv_model(layer.x_shape, w_q, bias, layer.attrs, q)
    return models.dense, models.sparse, int8_dense, int8_sparse, models.feeds, {"x": x_q}


def compare(layer: Layer, threads: int, block_s: float) -> dict:
    fp32_dense, fp32_sparse, int8_dense, int8_sparse, feeds, qfeeds = quantize(layer)
    makers = [
        lambda: BoundRun(make_session(fp32_dense, plugin=False, threads=threads), feeds),
        lambda: BoundRun(make_session(int8_dense, plugin=False, threads=threads), qfeeds),
        lambda: BoundRun(make_session(fp32_sparse, plugin=True, threads=threads), feeds),
        lambda: BoundRun(make_session(int8_sparse, plugin=True, threads=threads), qfeeds),
    ]
    timings, runners = time_alternating(makers, rounds=5, block_s=block_s, runners=True)
    ort_int8, sparse_int8 = runners[1].outputs[0].numpy(), runners[3].outputs[0].numpy()
    row = {"layer": layer.name, "threads": threads, "sparsity": layer.sparsity, "block": layer.block}
    row.update({name: t.median_ms for name, t in zip(COLUMNS, timings)})
    row["int8_elements_equal"] = float((ort_int8 == sparse_int8).mean())
    row["int8_max_step"] = int(np.abs(ort_int8.astype(np.int32) - sparse_int8.astype(np.int32)).max())
    return row


def table(rows: Sequence[dict]) -> str:
    head = ["layer", "ORT fp32", "ORT int8", "SparseConv fp32", "SparseQLinearConv int8", "int8 vs ORT int8"]
    head += ["int8 vs SparseConv fp32", "equal to ORT int8"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['ort_fp32']:.3f} ms | {r['ort_int8']:.3f} ms | {r['sparse_fp32']:.3f} ms | "
            f"{r['sparse_int8']:.3f} ms | {r['ort_int8'] / r['sparse_int8']:.2f}x | "
            f"{r['sparse_fp32'] / r['sparse_int8']:.2f}x | {r['int8_elements_equal']:.2%} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="R1,R2,R3,R4,R5,S1,A1")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--block", type=int, default=1, help="prune in runs of this many input channels (4: 4-block)")
    parser.add_argument("--block-s", type=float, default=0.15, help="seconds per timing block")
    parser.add_argument("--out", type=Path, help="JSON file for the rows and the machine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = args.layers.split(",")
    layers = [layer.with_(block=args.block) for layer, _ in TARGETS if layer.name in names]
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        for layer in layers:
            rows.append(compare(layer, threads, args.block_s))
            log.info("%s", table(rows[-1:]).splitlines()[-1])
    print(table(rows))
    if args.out:
        info = machine(fma=False)
        args.out.write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
        args.out.with_suffix(".md").write_text(
            f"Machine: {info['cpu']}, {info['cores']} cores, onnxruntime {info['onnxruntime']}, "
            f"onnx-sparsify {info['onnx_sparsify']}, {info['date']}; `python -m benchmarks.quantized "
            f"--layers {args.layers} --threads {args.threads} --block {args.block}`. Medians of 5 alternating "
            f"rounds; ratios are ORT's time over SparseQLinearConv's.\n\n{table(rows)}\n"
        )


if __name__ == "__main__":
    main()
