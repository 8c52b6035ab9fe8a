#!/usr/bin/env bash
# The README's C++ steps as one script (CI runs it): builds the plugin alone (no Python, no
# pybind11), takes libonnxruntime from the onnxruntime wheel on PyPI (a zip: unzip, then the
# libonnxruntime.so.1 link), builds examples/cpp against the ONNX Runtime headers the plugin's build
# fetched, and runs it on the committed models. Exits nonzero if any step fails or the outputs
# disagree.
#
#   bash examples/cpp/build_and_run.sh [BUILD_DIR]     # default: build/cpp
#
# Environment: ORT_VERSION   the onnxruntime release whose library to use (default below)
#              ORT_WHEEL     an onnxruntime manylinux x86_64 wheel already on disk (no download)
#              CMAKE_ARGS    extra arguments for the plugin's configure step
#
# No Python: every step runs with PATH=(stand-ins)/usr/local/bin:/usr/bin:/bin, where the
# stand-ins for python, python3 and pip record any call and fail; the plugin's CMake cache must
# not mention Python or pybind11.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(mkdir -p "${1:-$ROOT/build/cpp}" && cd "${1:-$ROOT/build/cpp}" && pwd)"
ORT_VERSION="${ORT_VERSION:-1.31.1}"
JOBS="${JOBS:-$(nproc)}"
say() { printf '\n== cpp example: %s\n' "$*"; }

rm -rf "$BUILD/no-python"
mkdir -p "$BUILD/no-python/bin"
for tool in python python3 python3.11 pip pip3; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/no-python/calls"\nexit 1\n' "$tool" "$BUILD" > "$BUILD/no-python/bin/$tool"
  chmod +x "$BUILD/no-python/bin/$tool"
done
export PATH="$BUILD/no-python/bin:/usr/local/bin:/usr/bin:/bin"
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
command -v cmake >/dev/null || { echo "cmake not found in /usr/local/bin:/usr/bin:/bin" >&2; exit 1; }

say "1. the plugin alone: -DONNX_SPARSIFY_PYTHON=OFF ($(cmake --version | head -n 1))"
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD/plugin" -DCMAKE_BUILD_TYPE=Release -DONNX_SPARSIFY_PYTHON=OFF ${CMAKE_ARGS:-} \
  | grep -E "ONNX Runtime headers|CUDA:|Python module"
cmake --build "$BUILD/plugin" --parallel "$JOBS" > "$BUILD/plugin-build.log" 2>&1 \
  || { cat "$BUILD/plugin-build.log" >&2; exit 1; }
PLUGIN="$BUILD/plugin/ort_plugin/libonnx_sparsify_ort.so"
if grep -E "^(Python|pybind11)" "$BUILD/plugin/CMakeCache.txt"; then
  echo "the plugin-only build looked for Python or pybind11" >&2; exit 1
fi
echo "plugin: $PLUGIN"

say "2. libonnxruntime from the onnxruntime $ORT_VERSION wheel"
ORT_LIB="$BUILD/onnxruntime/lib"
wheel="${ORT_WHEEL:-$BUILD/onnxruntime/onnxruntime-$ORT_VERSION.whl}"
if [ ! -s "$wheel" ]; then
  url="$(curl -fsSL https://pypi.org/simple/onnxruntime/ \
    | grep -o "https://[^\"#]*/onnxruntime-$ORT_VERSION-cp3[0-9]*-cp3[0-9]*-manylinux[^\"#]*x86_64\.whl" | head -n 1)"
  [ -n "$url" ] || { echo "no manylinux x86_64 wheel of onnxruntime $ORT_VERSION on PyPI" >&2; exit 1; }
  echo "downloading $url"
  mkdir -p "$(dirname "$wheel")"
  curl -fsSL -o "$wheel.part" "$url" && mv "$wheel.part" "$wheel"
fi
rm -rf "$ORT_LIB" && mkdir -p "$ORT_LIB"
unzip -q -j "$wheel" "onnxruntime/capi/libonnxruntime.so.*" -d "$ORT_LIB"
full="$(cd "$ORT_LIB" && ls libonnxruntime.so.1.*)"
ln -s "$full" "$ORT_LIB/libonnxruntime.so.1"         # its SONAME: what the loader looks for
ln -s libonnxruntime.so.1 "$ORT_LIB/libonnxruntime.so"  # what the linker looks for (-lonnxruntime)
ls -l "$ORT_LIB" | sed 1d

say "3. the example, against the headers of step 1 and the library of step 2"
cmake -S "$ROOT/examples/cpp" -B "$BUILD/example" -DCMAKE_BUILD_TYPE=Release \
  -DONNX_SPARSIFY_BUILD_DIR="$BUILD/plugin" -DONNXRUNTIME_LIB_DIR="$ORT_LIB" | grep "ONNX Runtime"
cmake --build "$BUILD/example" > "$BUILD/example-build.log" 2>&1 || { cat "$BUILD/example-build.log" >&2; exit 1; }

say "4. run: the rewritten model with the plugin against the dense (pruned) original"
"$BUILD/example/sparse_conv_example" "$PLUGIN" \
  "$ROOT/examples/cpp/small_cnn.sparse.onnx" "$ROOT/examples/cpp/small_cnn.pruned.onnx" --threads 2

if [ -e "$BUILD/no-python/calls" ]; then
  echo "Python was called:" >&2; cat "$BUILD/no-python/calls" >&2; exit 1
fi
say "passed, with no Python called"
