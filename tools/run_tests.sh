#!/usr/bin/env bash
# Installs onnx-sparsify with its test dependencies and runs the whole suite.
# The real-model tests read the models that rapidocr-onnxruntime and silero-vad ship in their
# wheels; those packages are installed without their own dependencies (OpenCV, torch), which
# the tests do not need.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install ".[test]"
python3 -m pip install --no-deps "rapidocr-onnxruntime==1.4.4" "silero-vad==6.2.3"
python3 -m pytest "$@"
