"""Runs the benchmark harness and writes JSON, a Markdown table and PNG plots.

python -m benchmarks --quick [--threads 1,2] [--out results]
python -m benchmarks --full
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx_sparsify
import onnxruntime as ort

from .layers import AUDIO, TARGETS, sweeps
from .networks import NETWORKS
from .plots import plot_sweep
from .single_layer import bench_layer
from .timing import BoundRun, make_session, relative_l2, time_pair, timing_fields

log = logging.getLogger("benchmarks")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnx_sparsify": onnx_sparsify.__version__,
        "kernel_isa": onnx_sparsify.build_info()["cpu_isa"],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def bench_network(name: str, sparsity: float, threads: int, budget_s: float) -> dict[str, Any]:
    original = NETWORKS[name]()
    pruned, _ = onnx_sparsify.prune_convs(original, sparsity)
    rewritten, report = onnx_sparsify.sparsify(pruned)
    feeds = {"image": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    d, s, dense, sparse = time_pair(
        lambda: BoundRun(make_session(pruned, plugin=False, threads=threads), feeds),
        lambda: BoundRun(make_session(rewritten, plugin=True, threads=threads), feeds),
        block_s=budget_s / 6,
    )
    e, a = dense.outputs[0].numpy(), sparse.outputs[0].numpy()
    return {
        "network": name,
        "sparsity": sparsity,
        "threads": threads,
        "convs": report.convs,
        "rewritten": report.rewritten,
        **timing_fields(d, s),
        "rel_l2_error": relative_l2(a, e),
    }


def audit_network_layers(name: str, sparsity: float) -> list[dict[str, Any]]:
    """Every layer the default decision rewrote, timed alone both ways with the network's shapes:
    the check that no rewritten layer is slower than its dense Conv."""
    from onnx_sparsify.autotune import conv_attributes, time_layer
    from onnx_sparsify.csr import dense_to_csr
    from onnx_sparsify.graph_walk import Scope
    from onnx_sparsify.rewrite import _known_shapes

    pruned, _ = onnx_sparsify.prune_convs(NETWORKS[name](), sparsity)
    _, report = onnx_sparsify.sparsify(pruned)
    shapes = _known_shapes(pruned)
    scope = Scope(pruned.graph, "main")
    rows = []
    for layer, node in zip(report.layers, [n for n in pruned.graph.node if n.op_type == "Conv"]):
        if not layer.rewritten:
            continue
        weight = scope.constant(node.input[1])
        dense_ms, sparse_ms = time_layer(
            shapes[node.input[0]], weight, None, conv_attributes(node), None, dense_to_csr(weight), runs=15
        )
        rows.append(
            {
                "network": name,
                "layer": layer.name,
                "x_shape": shapes[node.input[0]],
                "w_shape": list(weight.shape),
                "dense_ms": dense_ms,
                "sparse_ms": sparse_ms,
                "ratio": dense_ms / sparse_ms,
                "reason": layer.reason,
            }
        )
    return rows


def run_gpu(args: argparse.Namespace) -> dict[str, Any]:
    """GPU mode: SparseConv on the CUDA execution provider against ORT's CUDA Conv (cuDNN, default
    settings) and PyTorch's cuDNN convolution with TF32 off and on; batch 1 and 8."""
    from .single_layer import bench_torch_cudnn

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit("--gpu needs onnxruntime-gpu with the CUDA execution provider")
    rows = []
    for layer, *_ in TARGETS:
        for batch in (1, 8):
            case = layer.with_(x_shape=(batch, *layer.x_shape[1:]))
            row = bench_layer(case, 1, 0.5 if args.quick else 2.0, provider="cuda")
            for tf32 in (False, True):
                try:
                    row[f"torch_cudnn_tf32_{tf32}_ms"] = bench_torch_cudnn(case, tf32)
                except ImportError:
                    row[f"torch_cudnn_tf32_{tf32}_ms"] = None
            rows.append(row)
            log.info(
                "GPU %s batch %d: ORT CUDA dense %.3f ms, SparseConv %.3f ms, %.2fx",
                layer.name,
                batch,
                row["dense_ms"],
                row["sparse_ms"],
                row["ratio"],
            )
    return {"machine": machine(), "mode": "gpu", "gpu": rows}


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = [int(t) for t in args.threads.split(",")]
    budget = 0.5 if args.quick else 2.0
    results: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "targets": [],
        "half_sparse": [],
        "audio": [],
        "sweeps": {},
        "networks": [],
    }
    for layer, dense_ref, deepsparse, target in TARGETS:
        for t in threads:
            row = bench_layer(layer, t, budget)
            row.update(reference_dense_ms=dense_ref, deepsparse_ratio=deepsparse, target=target)
            results["targets"].append(row)
            log.info(
                "%s %d thr: dense %.3f ms, sparse %.3f ms, %.2fx (target %.1fx)",
                layer.name,
                t,
                row["dense_ms"],
                row["sparse_ms"],
                row["ratio"],
                target,
            )
    for layer, *_ in TARGETS[2:7]:
        row = bench_layer(layer.with_(sparsity=0.5), 1, budget)
        results["half_sparse"].append(row)
        log.info("%s at 50%% zeros: %.2fx", layer.name, row["ratio"])
    for layer in AUDIO:
        for t in threads:
            results["audio"].append(bench_layer(layer, t, budget))
    for name, (label, cases) in sweeps(args.quick).items():
        rows = []
        for x, layer in cases:
            for t in threads:
                row = bench_layer(layer, t, budget)
                row["x"] = x
                rows.append(row)
        results["sweeps"][name] = {"label": label, "rows": rows}
        log.info("sweep %s done", name)
    for name in NETWORKS:
        for t in threads:
            row = bench_network(name, 0.9, t, budget * 4)
            results["networks"].append(row)
            log.info("%s 90%% pruned, %d thr: %.2fx", name, t, row["ratio"])
    results["layer_audit"] = [row for name in NETWORKS for row in audit_network_layers(name, 0.9)]
    slowest = min(results["layer_audit"], key=lambda r: r["ratio"])
    log.info(
        "layer audit: slowest rewritten layer %s/%s at %.2fx", slowest["network"], slowest["layer"], slowest["ratio"]
    )
    return results


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), onnxruntime {m['onnxruntime']}, "
        f"onnx-sparsify {m['onnx_sparsify']} ({m['kernel_isa']} kernel), {results['mode']} mode. "
        "Ratio = ORT dense Conv median / SparseConv median, same process and session options "
        "(ORT_ENABLE_ALL), 90% unstructured zeros unless stated.",
        "",
        "| case | shape | threads | ORT dense (ms) | SparseConv (ms) | ratio | target | DeepSparse 1.8 (reference) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["targets"]:
        shape = f"{'x'.join(map(str, r['x_shape']))}, W {'x'.join(map(str, r['w_shape']))}"
        lines.append(
            f"| {r['layer']} | {shape} | {r['threads']} | {r['dense_ms']:.3f} | {r['sparse_ms']:.3f} | "
            f"**{r['ratio']:.2f}x** | {r['target']}x | {r['deepsparse_ratio']}x |"
        )
    lines += ["", "| case at 50% zeros | ORT dense (ms) | SparseConv (ms) | ratio |", "|---|---|---|---|"]
    for r in results["half_sparse"]:
        lines.append(f"| {r['layer']} | {r['dense_ms']:.3f} | {r['sparse_ms']:.3f} | {r['ratio']:.2f}x |")
    lines += ["", "| 1D audio conv | threads | ORT dense (ms) | SparseConv (ms) | ratio |", "|---|---|---|---|---|"]
    for r in results["audio"]:
        lines.append(
            f"| {'x'.join(map(str, r['x_shape']))}, k{r['w_shape'][2]} | {r['threads']} | "
            f"{r['dense_ms']:.3f} | {r['sparse_ms']:.3f} | {r['ratio']:.2f}x |"
        )
    lines += [
        "",
        "| network (90% pruned) | threads | Convs rewritten | ORT dense (ms) | with SparseConv (ms) | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["networks"]:
        lines.append(
            f"| {r['network']} | {r['threads']} | {r['rewritten']}/{r['convs']} | {r['dense_ms']:.2f} | "
            f"{r['sparse_ms']:.2f} | {r['ratio']:.2f}x |"
        )
    audit = results.get("layer_audit", [])
    if audit:
        slowest = min(audit, key=lambda r: r["ratio"])
        lines += [
            "",
            f"Layer audit: each of the {len(audit)} layers the default decision rewrote in the networks above, "
            f"timed alone both ways (1 thread, default session options): slowest {slowest['network']}/"
            f"{slowest['layer']} ({'x'.join(map(str, slowest['w_shape']))}) at {slowest['ratio']:.2f}x, "
            f"median {sorted(r['ratio'] for r in audit)[len(audit) // 2]:.2f}x.",
        ]
    for name, sweep in results["sweeps"].items():
        lines += [
            "",
            f"Sweep `{name}` ({sweep['label']}): ![{name}]({name}.png)",
            "",
            "| x | threads | dense (ms) | sparse (ms) | ratio |",
            "|---|---|---|---|---|",
        ]
        for r in sweep["rows"]:
            lines.append(
                f"| {r['x']} | {r['threads']} | {r['dense_ms']:.3f} | {r['sparse_ms']:.3f} | {r['ratio']:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer sweep points and shorter timing (default)")
    mode.add_argument("--full", action="store_true", help="every sweep point, longer timing")
    parser.add_argument("--gpu", action="store_true", help="GPU mode: the CUDA execution provider and cuDNN")
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    args = parser.parse_args()
    args.quick = not args.full
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("onnx_sparsify").setLevel(logging.ERROR)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.gpu:
        results = run_gpu(args)
        (args.out / "benchmark_gpu.json").write_text(json.dumps(results, indent=2, default=str))
        return
    results = run(args)
    (args.out / "benchmark.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "benchmark.md").write_text(markdown(results))
    for name, sweep in results["sweeps"].items():
        plot_sweep(name, sweep["label"], sweep["rows"], args.out / f"{name}.png")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
