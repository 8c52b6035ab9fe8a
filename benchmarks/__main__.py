"""Runs the benchmark harness and writes JSON, a Markdown table and PNG plots.

python -m benchmarks --quick [--threads 1,2] [--out results] [--peers deepsparse]
python -m benchmarks --full --peers deepsparse
python -m benchmarks --targets-only --layers R1,R5 --peers deepsparse   # a few target rows only

--peers deepsparse times DeepSparse 1.8 on the same dense Conv models, each right after the ORT
pair of its row (benchmarks/peers.py makes its virtual environment on first use).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx_sparsify
import onnxruntime as ort

from .fma_probe import fma_peak, fraction_of_peak
from .layers import SCALING_TARGETS, TARGETS, TARGETS_70, sweeps
from .networks import NETWORKS
from .peers import KNOWN_PEERS, make_peers
from .plots import plot_sweep
from .single_layer import bench_layer
from .timing import BoundRun, make_session, relative_l2, time_pair, timing_fields

log = logging.getLogger("benchmarks")


def machine(fma: bool = True) -> dict[str, Any]:
    """The machine's description; with `fma`, its measured single-precision FMA peak per core
    (benchmarks.fma_probe, measured once per process)."""
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
        **(_fma_fields() if fma else {}),
    }


def _fma_fields() -> dict[str, Any]:
    probe = fma_peak()
    return {"fma_peak_gflops_per_core": probe["gflops_per_core"], "fma_probe": probe}


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
    from onnx_sparsify.autotune import time_layer
    from onnx_sparsify.context import known_shapes
    from onnx_sparsify.conv_to_sparse import conv_attributes
    from onnx_sparsify.csr import dense_to_csr
    from onnx_sparsify.graph_walk import Scope

    pruned, _ = onnx_sparsify.prune_convs(NETWORKS[name](), sparsity)
    _, report = onnx_sparsify.sparsify(pruned)
    shapes = known_shapes(pruned)
    scope = Scope(pruned.graph, "main")
    rows = []
    for layer, node in zip(report.layers, [n for n in pruned.graph.node if n.op_type == "Conv"]):
        if not layer.rewritten:
            continue
        weight = scope.constant(node.input[1])
        dense_ms, sparse_ms = time_layer(
            shapes[node.input[0]], weight, None, conv_attributes(node), None, dense_to_csr(weight), threads=1
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


def annotate(row: dict[str, Any], peak_per_core: float | None, peer_names: list[str]) -> dict[str, Any]:
    """Adds the share of the FMA peak (row threads x per-core peak) that the nonzero work reaches,
    for SparseConv and for each peer."""
    row["sparse_peak_fraction"] = fraction_of_peak(row["sparse_gflops"], row["threads"], peak_per_core)
    for name in peer_names:
        peer = row.get(name) or {}
        if peer.get("gflops"):
            peer["peak_fraction"] = fraction_of_peak(peer["gflops"], row["threads"], peak_per_core)
    return row


def scaling_rows(rows: list[dict[str, Any]], peer_names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per layer and thread count N > 1: how much faster N threads are than 1 (median 1 thread /
    median N threads), for SparseConv, ORT's dense Conv and each peer; the target where one is set."""
    by_layer: dict[tuple[str, float], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_layer.setdefault((r["layer"], r["sparsity"]), {})[r["threads"]] = r
    out = []
    for (name, sparsity), by_threads in by_layer.items():
        one = by_threads.get(1)
        if one is None:
            continue
        for t, r in sorted(by_threads.items()):
            if t == 1:
                continue
            scaling = one["sparse_ms"] / r["sparse_ms"]
            target = SCALING_TARGETS.get(name) if t == 2 else None
            row = {
                "layer": name,
                "sparsity": sparsity,
                "threads": t,
                "sparse_1_ms": one["sparse_ms"],
                "sparse_n_ms": r["sparse_ms"],
                "scaling": scaling,
                "dense_scaling": one["dense_ms"] / r["dense_ms"],
                "target": target,
                "met": None if target is None else scaling >= target,
            }
            for peer in peer_names:
                a, b = (one.get(peer) or {}).get("median_ms"), (r.get(peer) or {}).get("median_ms")
                row[f"{peer}_scaling"] = a / b if a and b else None
            out.append(row)
    return out


def _log_row(row: dict[str, Any], peer_names: list[str]) -> None:
    peer_text = ""
    for name in peer_names:
        p = row.get(name) or {}
        if p.get("median_ms"):
            peer_text += f", {name} {p['median_ms']:.3f} ms (supported ops {p['fraction_of_supported_ops']})"
        else:
            peer_text += f", {name} failed: {p.get('error')}"
    target = f" (target {row['target']:.1f}x)" if row.get("target") else ""
    log.info(
        "%s %d%% zeros %d thr: dense %.3f ms, sparse %.3f ms, %.2fx%s%s",
        row["layer"],
        round(row["sparsity"] * 100),
        row["threads"],
        row["dense_ms"],
        row["sparse_ms"],
        row["ratio"],
        target,
        peer_text,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = [int(t) for t in args.threads.split(",")]
    budget = 0.5 if args.quick else 2.0
    peer_names = [p for p in (args.peers or "").split(",") if p]
    peers, peer_status = make_peers(peer_names)
    names = [n.strip() for n in args.layers.split(",")] if args.layers else None
    selected = [(layer, target) for layer, target in TARGETS if names is None or layer.name in names]
    selected_70 = [(layer, target) for layer, target in TARGETS_70 if names is None or layer.name in names]
    results: dict[str, Any] = {
        "machine": machine(),
        "mode": ("quick" if args.quick else "full") + (", target rows only" if args.targets_only else ""),
        "peers": peer_status,
        "targets": [],
        "targets_70": [],
        "scaling": [],
        "sweeps": {},
        "networks": [],
    }
    peak = results["machine"]["fma_peak_gflops_per_core"]
    used = [p.name for p in peers]
    # Each row: the ORT pair, then each peer on the same model; one engine at a time.
    for layer, target in selected:
        for t in threads:
            row = bench_layer(layer, t, budget, peers=peers)
            row.update(target=target if t == 1 else None, met=row["ratio"] >= target if t == 1 else None)
            results["targets"].append(annotate(row, peak, used))
            _log_row(row, used)
    for layer, target in selected_70:
        row = bench_layer(layer, 1, budget, peers=peers)
        row.update(target=target, met=row["ratio"] >= target)
        results["targets_70"].append(annotate(row, peak, used))
        _log_row(row, used)
    results["scaling"] = scaling_rows(results["targets"], used)
    for r in results["scaling"]:
        log.info("%s: %d threads %.2fx faster than 1 (SparseConv)", r["layer"], r["threads"], r["scaling"])
    if args.targets_only:
        return results
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


def _peer_cells(row: dict[str, Any], name: str, status: dict[str, Any] | None) -> tuple[str, str, str, str]:
    """(time, supported ops, SparseConv vs peer, GFLOP/s) cells of one row for one peer."""
    if not status or status.get("status") != "ok":
        return "—", "—", "—", "—"
    p = row.get(name) or {}
    if not p.get("median_ms"):
        return "failed", "—", "—", "—"
    ms = f"{p['median_ms']:.3f}" + (" (ORT fallback)" if p.get("fallback") else "")
    if (p.get("rel_l2_error") or 0) > 1e-4:
        ms += f" (output differs: rel. L2 error {p['rel_l2_error']:.1e})"
    fraction = p.get("fraction_of_supported_ops")
    ops = "—" if fraction is None else f"{fraction:.2f}" + (" (fallback)" if p.get("fallback") else "")
    r = p["median_ms"] / row["sparse_ms"]
    versus = f"{r:.2f}x faster" if r >= 1 else f"{1 / r:.2f}x slower"
    return ms, ops, versus, _gflops_cell(p.get("gflops"), p.get("peak_fraction"))


def _gflops_cell(gflops: float | None, fraction: float | None) -> str:
    if gflops is None:
        return "—"
    return f"{gflops:.1f}" + (f" ({100 * fraction:.0f}%)" if fraction is not None else "")


def _shape(r: dict[str, Any]) -> str:
    return f"{'x'.join(map(str, r['x_shape']))}, W {'x'.join(map(str, r['w_shape']))}"


def _target_table(rows: list[dict[str, Any]], peer: dict[str, Any] | None) -> list[str]:
    lines = [
        "| case | shape | zeros | threads | ORT dense (ms) | SparseConv (ms) | DeepSparse (ms) | ratio vs dense "
        "| target | met | SparseConv vs DeepSparse | SparseConv GFLOP/s (% peak) | DeepSparse GFLOP/s (% peak) "
        "| DeepSparse supported ops |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ds_ms, ds_ops, versus, ds_gflops = _peer_cells(r, "deepsparse", peer)
        target = f"{r['target']}x" if r.get("target") else "—"
        met = "—" if r.get("met") is None else ("met" if r["met"] else "**not met**")
        lines.append(
            f"| {r['layer']} | {_shape(r)} | {round(100 * r['sparsity'])}% | {r['threads']} | {r['dense_ms']:.3f} | "
            f"{r['sparse_ms']:.3f} | {ds_ms} | **{r['ratio']:.2f}x** | {target} | {met} | {versus} | "
            f"{_gflops_cell(r['sparse_gflops'], r.get('sparse_peak_fraction'))} | {ds_gflops} | {ds_ops} |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    peak = m.get("fma_peak_gflops_per_core")
    peer = (results.get("peers") or {}).get("deepsparse")
    if peak:
        widths = ", ".join(f"{k} {v:.1f}" for k, v in m.get("fma_probe", {}).get("widths", {}).items())
        peak_text = (
            f"Measured FMA peak: {peak:.1f} single-precision GFLOP/s per core ({widths}; benchmarks/fma_probe.py)."
        )
    else:
        reason = (m.get("fma_probe") or {}).get("error") or "not measured"
        peak_text = f"FMA peak not measured ({reason}): no % of peak."
    if peer is None:
        peer_text = "DeepSparse not run (`--peers deepsparse` runs it): its columns show —."
    elif peer.get("status") == "ok":
        peer_text = (
            f"DeepSparse {peer['version']} measured in the same run on the same dense Conv model files "
            "(IR version <= 9, opset 17), batch 1, num_cores = threads, each row right after its ORT pair, "
            "one engine at a time; median of repeated runs after warm-up. "
            '"ORT fallback" marks a row whose DeepSparse fraction_of_supported_ops was 0: DeepSparse handed '
            "the whole graph to its bundled ONNX Runtime."
        )
    else:
        peer_text = f"DeepSparse column skipped: {peer.get('reason')}."
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), onnxruntime {m['onnxruntime']}, "
        f"onnx-sparsify {m['onnx_sparsify']} ({m['kernel_isa']} kernel), {results['mode']} mode. "
        "Ratio = ORT dense Conv median / SparseConv median, same process and session options "
        "(ORT_ENABLE_ALL), unstructured zeros. Targets are for 1 thread.",
        "",
        peer_text,
        "",
        f"{peak_text} GFLOP/s counts only the nonzero weights' multiply-adds (2 x nnz x output positions, the "
        "same work for SparseConv and DeepSparse); % peak = GFLOP/s / (threads x per-core peak).",
        "",
        *_target_table(results.get("targets", []) + results.get("targets_70", []), peer),
    ]
    if peer and peer.get("status") == "ok":
        for r in results.get("targets", []) + results.get("targets_70", []):
            error = (r.get("deepsparse") or {}).get("error")
            if error:
                lines += ["", f"DeepSparse failed on {r['layer']} ({r['threads']} thr): {error}"]
    for label, key in (("90% zeros", "targets"), ("70% zeros", "targets_70")):
        judged = [r for r in results.get(key, []) if r.get("met") is not None]
        if judged:
            missed = ", ".join(r["layer"] for r in judged if not r["met"]) or "none"
            lines += [
                "",
                f"Targets met at {label}, 1 thread: {sum(r['met'] for r in judged)} of {len(judged)} "
                f"(not met: {missed}).",
            ]
    if results.get("scaling"):
        lines += [
            "",
            "| thread scaling (90% zeros) | threads | SparseConv 1 thr (ms) | SparseConv N thr (ms) | "
            "SparseConv speed-up | target | met | ORT dense speed-up | DeepSparse speed-up |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["scaling"]:
            target = f"{r['target']}x" if r.get("target") else "—"
            met = "—" if r.get("met") is None else ("met" if r["met"] else "**not met**")
            ds = r.get("deepsparse_scaling")
            lines.append(
                f"| {r['layer']} | 1 -> {r['threads']} | {r['sparse_1_ms']:.3f} | {r['sparse_n_ms']:.3f} | "
                f"**{r['scaling']:.2f}x** | {target} | {met} | {r['dense_scaling']:.2f}x | "
                f"{'—' if ds is None else f'{ds:.2f}x'} |"
            )
    if results.get("networks"):
        lines += [
            "",
            "| network (90% pruned) | threads | Convs rewritten | ORT dense (ms) | with SparseConv (ms) | ratio |",
            "|---|---|---|---|---|---|",
        ]
    for r in results.get("networks", []):
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
    for name, sweep in results.get("sweeps", {}).items():
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
    parser.add_argument(
        "--peers",
        default="",
        help=f"peer engines timed on the same models, comma-separated ({', '.join(KNOWN_PEERS)})",
    )
    parser.add_argument("--layers", default="", help="only these target layers (e.g. R1,R5)")
    parser.add_argument(
        "--targets-only", action="store_true", help="only the target rows (no sweeps, networks, layer audit)"
    )
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
