"""Side by side in one run: ORT's dense Conv against SparseConv as several plugin builds and CPU
kernel variants run it, on the harness's target layers. For a before/after comparison of a kernel
change (the old build's plugin next to the new one) and for choosing a variant's default (loops
against generated code on one instruction set).

python -m benchmarks.variants --column old=/tmp/old/libonnx_sparsify_ort.so,ONNX_SPARSIFY_CPU_ISA=avx512f-jit \\
    --column new=,ONNX_SPARSIFY_CPU_ISA=avx512f --layers R1,R5 --threads 1 [--out variants.json]

A column is LABEL=[PLUGIN_PATH][,VAR=VALUE...]: the plugin library (empty: the installed one) and
the environment its sessions are created in. Every column and the dense model are timed in
alternating blocks (onnx_sparsify.timing.time_alternating), one session alive at a time."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx_sparsify
import onnxruntime as ort
from onnx_sparsify.timing import BoundRun, make_session, time_alternating

from .__main__ import machine
from .layers import TARGETS, Layer
from .single_layer import layer_models_for

log = logging.getLogger("benchmarks.variants")


@dataclass(frozen=True)
class Column:
    label: str
    plugin: str  # library path; "" for the installed package's
    env: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> Column:
        label, _, rest = text.partition("=")
        plugin, *assignments = rest.split(",")
        env = dict(a.split("=", 1) for a in assignments if a)
        return cls(label, plugin, env)


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _sparse_maker(model, feeds, column: Column, threads: int) -> Callable[[], BoundRun]:
    def make() -> BoundRun:
        options = ort.SessionOptions()
        options.register_custom_ops_library(column.plugin or onnx_sparsify.library_path())
        with _environment(column.env):  # the plugin reads it when the session creates its kernels
            session = make_session(model, plugin=False, threads=threads, options=options)
        return BoundRun(session, feeds)

    return make


def compare(layer: Layer, columns: Sequence[Column], threads: int, block_s: float, seed: int = 0) -> dict:
    models = layer_models_for(layer, seed)
    dense, sparse, feeds = models.dense, models.sparse, models.feeds
    makers = [lambda: BoundRun(make_session(dense, plugin=False, threads=threads), feeds)]
    makers += [_sparse_maker(sparse, feeds, c, threads) for c in columns]
    timings, runners = time_alternating(makers, rounds=5, block_s=block_s, runners=True)
    expected = runners[0].outputs[0].numpy()
    row = {"layer": layer.name, "threads": threads, "dense_ms": timings[0].median_ms}
    for column, timing, runner in zip(columns, timings[1:], runners[1:]):
        actual = runner.outputs[0].numpy()
        error = float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))
        row[column.label] = {
            "ms": timing.median_ms,
            "ratio": timings[0].median_ms / timing.median_ms,
            "round_ms": list(timing.round_medians_ms),
            "rel_l2": error,
        }
    return row


def table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    head = "| layer | threads | ORT dense ms | " + " | ".join(f"{c.label} ms (x dense)" for c in columns) + " |"
    lines = [head, "|" + "---|" * (3 + len(columns))]
    for r in rows:
        cells = [f"{r[c.label]['ms']:.3f} ({r[c.label]['ratio']:.2f}x)" for c in columns]
        lines.append(f"| {r['layer']} | {r['threads']} | {r['dense_ms']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--column", action="append", required=True, help="LABEL=[PLUGIN_PATH][,VAR=VALUE...]")
    parser.add_argument("--layers", default=",".join(layer.name for layer, _ in TARGETS))
    parser.add_argument("--threads", default="1")
    parser.add_argument("--block-s", type=float, default=0.15, help="seconds per timing block")
    parser.add_argument("--out", type=Path, help="JSON file for the rows and the machine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    columns = [Column.parse(c) for c in args.column]
    names = args.layers.split(",")
    layers = [layer for layer, _ in TARGETS if layer.name in names]
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        for layer in layers:
            rows.append(compare(layer, columns, threads, args.block_s))
            log.info("%s", table(rows[-1:], columns).splitlines()[-1])
    print(table(rows, columns))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(fma=False), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
