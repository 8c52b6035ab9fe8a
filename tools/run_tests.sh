#!/usr/bin/env bash
# Installs onnx-sparsify with its test dependencies and runs the whole suite.
# The real-model tests read the models that rapidocr-onnxruntime and silero-vad ship in their
# wheels; those packages are installed without their own dependencies (OpenCV, torch), which
# the tests do not need.
set -euo pipefail
cd "$(dirname "$0")/.."
# valgrind's virtual CPU has no AVX-512: tests/test_valgrind.py runs the plugin's dispatch on it.
if ! command -v valgrind >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
python3 -m pip install ".[test]"
python3 -m pip install --no-deps "rapidocr-onnxruntime==1.4.4" "silero-vad==6.2.3"
# Serving engines for tests/test_serving.py: Ray Serve (run here) and Triton's model-config schema.
python3 -m pip install -r tests/requirements-serving.txt
python3 -m pytest "$@"
