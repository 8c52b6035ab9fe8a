"""Times one ONNX model with the DeepSparse engine; run by the harness with the python of the
peer's own virtual environment (deepsparse 1.8 needs Python <= 3.11, onnx < 1.15, numpy < 2),
never imported by the harness itself. Needs only numpy and deepsparse.

    <venv>/bin/python benchmarks/deepsparse_worker.py job.json

job.json: {"model": path, "inputs": [.npy paths, in graph input order], "expected": .npy path or
null, "num_cores": int, "block_s": float, "rounds": int, "warmup": int, "out": path}.
Writes the result as JSON to job["out"]: median/min/max milliseconds of `engine.run` over the
timed runs, the engine's fraction_of_supported_ops (0 means DeepSparse handed the whole graph to
its bundled ONNX Runtime), the cores it took, and the output's relative L2 error against
`expected`.

Same discipline as benchmarks/timing.py: batch 1, the engine compiled once, `warmup` untimed runs,
then `rounds` blocks of back-to-back runs, each block at least `block_s` seconds and 3 runs. The
inputs are validated once, then run without validation (the timed call is the engine's execute).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time


def main(job_path: str) -> None:
    os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")  # no network calls from the engine
    with open(job_path) as f:
        job = json.load(f)
    import deepsparse
    import numpy as np

    inputs = [np.ascontiguousarray(np.load(p)) for p in job["inputs"]]
    t0 = time.perf_counter()
    engine = deepsparse.Engine(job["model"], batch_size=1, num_cores=int(job["num_cores"]))
    compile_s = time.perf_counter() - t0
    outputs = engine.run(inputs, val_inp=True)
    for _ in range(int(job.get("warmup", 3))):
        engine.run(inputs, val_inp=False)
    samples: list[float] = []
    for _ in range(int(job.get("rounds", 3))):
        block: list[float] = []
        start = time.perf_counter()
        while True:
            a = time.perf_counter()
            engine.run(inputs, val_inp=False)
            b = time.perf_counter()
            block.append((b - a) * 1e3)
            if b - start > float(job["block_s"]) and len(block) >= 3:
                break
        samples += block
    error = None
    if job.get("expected"):
        expected = np.load(job["expected"]).astype(np.float64)
        actual = np.asarray(outputs[0], dtype=np.float64)
        error = float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))
    fraction = float(engine.fraction_of_supported_ops)
    result = {
        "version": deepsparse.__version__,
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "runs": len(samples),
        "compile_s": compile_s,
        "fraction_of_supported_ops": fraction,
        "fallback": fraction == 0.0,
        "num_cores": engine.num_cores,
        "cpu_avx_type": getattr(engine, "cpu_avx_type", None),
        "rel_l2_error": error,
    }
    del engine
    with open(job["out"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
