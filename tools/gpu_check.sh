#!/usr/bin/env bash
# The GPU check, one command for anyone with an NVIDIA GPU (README, "GPU"):
#
#   bash tools/gpu_check.sh
#
# 1. makes a virtual environment (.venv-gpu, or $VENV) and installs onnx-sparsify into it, built
#    with its CUDA kernels (needs nvcc on the PATH), and onnxruntime-gpu in place of onnxruntime;
# 2. refuses to go on unless ORT has the CUDA execution provider, the plugin has its CUDA
#    kernels and a device is usable;
# 3. runs the GPU test suite (tests/test_cuda.py: the CPU fallback disabled, so nothing passes
#    on the CPU) and the emulated one, and fails if any GPU test was skipped;
# 4. runs `python -m benchmarks --gpu` (SparseConv on the CUDA EP against ORT's CUDA Conv);
# 5. writes everything to docs/benchmarks/gpu/<date>-<gpu>/ (results.json, benchmark_gpu.json,
#    the test log, nvidia-smi and versions), ready to commit.
#
# Environment: VENV (the virtual environment's folder), ORT_GPU (the onnxruntime-gpu pip
# requirement, default "onnxruntime-gpu[cuda,cudnn]", which brings CUDA 12 and cuDNN 9 wheels),
# PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$ROOT/.venv-gpu}
ORT_GPU=${ORT_GPU:-onnxruntime-gpu[cuda,cudnn]}

die() { echo "gpu_check: $*" >&2; exit 1; }

command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: this needs a machine with an NVIDIA GPU and driver"
command -v nvcc >/dev/null 2>&1 || die "nvcc not found: the plugin's CUDA kernels are compiled by nvcc (install the CUDA toolkit)"
nvidia-smi -L >/dev/null || die "nvidia-smi lists no GPU"

"$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q ".[test,bench]"
# onnxruntime (CPU) and onnxruntime-gpu install the same module: keep only the GPU one.
python -m pip uninstall -q -y onnxruntime
python -m pip install -q "$ORT_GPU"

# onnxruntime-gpu's pip extras put the CUDA and cuDNN libraries in site-packages/nvidia/*/lib:
# make every process below find them.
NVIDIA_LIBS=$(python -c 'import glob, os, site; print(":".join(d for sp in site.getsitepackages() for d in sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))))')
export LD_LIBRARY_PATH="${NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

python - <<'EOF'
import sys

import onnxruntime as ort

try:  # onnxruntime-gpu 1.19+: load the CUDA and cuDNN libraries its pip extras installed
    ort.preload_dlls()
except AttributeError:
    pass
import onnx_sparsify
from onnx_sparsify import _core

problems = []
if "CUDAExecutionProvider" not in ort.get_available_providers():
    problems.append(f"onnxruntime {ort.__version__} has no CUDA execution provider: {ort.get_available_providers()}")
if not onnx_sparsify.build_info()["cuda_compiled"]:
    problems.append("onnx-sparsify was built without its CUDA kernels (nvcc not found by the build?)")
elif not _core.cuda_available():
    problems.append(
        "the plugin's CUDA runtime sees no usable device (it is the runtime of the nvcc that built it, "
        "linked statically: the driver must support that CUDA version; compare `nvcc --version` with nvidia-smi)"
    )
if problems:
    sys.exit("gpu_check: " + "; ".join(problems))
print("gpu_check: onnxruntime", ort.__version__, "with", ort.get_available_providers(), onnx_sparsify.build_info())
EOF

GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '-' | tr -s '-')
OUT="$ROOT/docs/benchmarks/gpu/$(date -u +%Y%m%d-%H%M)-${GPU_NAME%-}"
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt"
{
  echo "git: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (modified)')"
  python -c 'import onnxruntime, onnx_sparsify, sys; print("python", sys.version.split()[0]); print("onnxruntime-gpu", onnxruntime.__version__); print("onnx-sparsify", onnx_sparsify.build_info())'
  nvcc --version | tail -1
} > "$OUT/versions.txt"

# The GPU tests must run, not skip: a skip here means the check proved nothing.
set +e
python -m pytest tests/test_cuda.py tests/test_cuda_emulated.py -p no:cacheprovider -rs \
  --junitxml="$OUT/tests.xml" 2>&1 | tee "$OUT/tests.log"
TESTS=${PIPESTATUS[0]}
set -e
python - "$OUT/tests.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
gpu = [c for c in cases if c.get("classname", "").endswith("test_cuda")]
skipped = [c.get("name") for c in gpu if c.find("skipped") is not None]
if not gpu or skipped:
    sys.exit(f"gpu_check: {len(skipped)} of {len(gpu)} GPU tests skipped (first: {skipped[:3]}): nothing was proven on the GPU")
print(f"gpu_check: {len(gpu)} GPU tests ran")
EOF
[ "$TESTS" -eq 0 ] || echo "gpu_check: GPU tests FAILED (see $OUT/tests.log); benchmarking anyway" >&2

python -m benchmarks --gpu --out "$OUT"
python - "$OUT" "$TESTS" <<'EOF'
import json
import sys
from pathlib import Path

out, tests = Path(sys.argv[1]), int(sys.argv[2])
bench = json.loads((out / "benchmark_gpu.json").read_text())
summary = {
    "tests_passed": tests == 0,
    "versions": (out / "versions.txt").read_text().splitlines(),
    "layers": [
        {k: row.get(k) for k in ("layer", "x_shape", "dense_ms", "sparse_ms", "ratio") if k in row} | {"raw": row}
        for row in bench.get("gpu", [])
    ],
}
(out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
print(f"gpu_check: wrote {out} (commit it: it is the measurement the README and the rewriter wait for)")
EOF
exit "$TESTS"
