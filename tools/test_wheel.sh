#!/usr/bin/env bash
# CI: the release wheel (tools/build_wheel.sh) is manylinux, its binaries need nothing beyond
# glibc and libgcc_s, and it installs into a fresh virtual environment with no build step, runs the
# README's quick start from the installed package, and passes the plugin and conformance tests.
#
#   bash tools/test_wheel.sh                 # builds the wheel first
#   bash tools/test_wheel.sh path/to.whl     # tests a wheel already built
#
# The install runs with --only-binary :all: (pip may not build anything from source) and with a
# PATH holding only the virtual environment and stand-ins for gcc, g++, cc, c++, cmake, ninja,
# make, ld and nvcc that record any call and fail; CC and CXX point at /bin/false. The test fails if
# a stand-in was called.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
say() { printf '\n== test_wheel: %s\n' "$*"; }

if [ "$#" -ge 1 ]; then
  wheel="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
else
  say "building the wheel (tools/build_wheel.sh)"
  wheel="$(bash "$ROOT/tools/build_wheel.sh" "$WORK/dist" | tail -n 1)"
fi
say "wheel: $(basename "$wheel")"
case "$(basename "$wheel")" in
  *-manylinux_*_x86_64.whl|*.manylinux_*_x86_64.whl) ;;
  *) echo "not a manylinux x86_64 wheel: $wheel" >&2; exit 1 ;;
esac

say "the wheel's binaries"
unzip -q "$wheel" -d "$WORK/unpacked"
plugin="$WORK/unpacked/onnx_sparsify/libonnx_sparsify_ort.so"
core="$(ls "$WORK"/unpacked/onnx_sparsify/_core*.so)"
[ -f "$plugin" ] || { echo "the wheel holds no plugin" >&2; exit 1; }
for lib in "$plugin" "$core"; do
  needed="$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
  echo "$(basename "$lib") needs: $needed"
  for n in $needed; do
    case "$n" in
      libc.so.6|libm.so.6|libdl.so.2|libpthread.so.0|librt.so.1|ld-linux-x86-64.so.2|libgcc_s.so.1) ;;
      *) echo "$(basename "$lib") needs $n: only glibc and libgcc_s are allowed (libstdc++ and CUDA are static)" >&2
         exit 1 ;;
    esac
  done
done
exported="$(nm -D --defined-only "$plugin" | awk '$2 ~ /^[TtWDBiu]$/ {print $3}' | sort -u | tr '\n' ' ')"
echo "plugin exports: $exported"
[ "$exported" = "RegisterCustomOps " ] || { echo "the plugin must export RegisterCustomOps only" >&2; exit 1; }

say "a fresh virtual environment, install with no build step"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
mkdir -p "$WORK/no-build/bin"
for tool in gcc g++ cc c++ cmake ninja make ld nvcc clang clang++; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/no-build/calls"\nexit 1\n' "$tool" "$WORK" > "$WORK/no-build/bin/$tool"
  chmod +x "$WORK/no-build/bin/$tool"
done
NO_BUILD_ENV=(env PATH="$WORK/no-build/bin:$WORK/venv/bin" CC=/bin/false CXX=/bin/false CUDACXX=/bin/false
              PYTHONNOUSERSITE=1)
if ! "${NO_BUILD_ENV[@]}" "$WORK/venv/bin/python" -m pip install --only-binary :all: --no-build-isolation \
     "$wheel" > "$WORK/pip.log" 2>&1; then
  cat "$WORK/pip.log" >&2; exit 1
fi
grep -E "^(Processing|Successfully installed)" "$WORK/pip.log"
if grep -qiE "building wheel|running setup.py|build_ext" "$WORK/pip.log"; then
  echo "pip built something:" >&2; cat "$WORK/pip.log" >&2; exit 1
fi

say "the quick start from the installed package, outside the source tree"
mkdir "$WORK/run"
cp "$ROOT/examples/small_cnn.onnx" "$WORK/run/"
cd "$WORK/run"
"${NO_BUILD_ENV[@]}" python - <<'PY'
import pathlib, sys
import onnx_sparsify
where = pathlib.Path(onnx_sparsify.__file__).resolve()
assert pathlib.Path(sys.prefix).resolve() in where.parents, f"imported from {where}, not the venv"
print("onnx_sparsify", onnx_sparsify.__version__, "from", where.parent)
print("build_info:", onnx_sparsify.build_info())
PY
"${NO_BUILD_ENV[@]}" python -m onnx_sparsify small_cnn.onnx -o out.onnx --prune 0.9 --check
"${NO_BUILD_ENV[@]}" onnx-sparsify small_cnn.onnx -o out2.onnx --min-sparsity 0 -q
[ -s out.onnx ] && [ -s out2.onnx ]

say "the plugin and conformance tests against the installed wheel's binaries"
"${NO_BUILD_ENV[@]}" python -m pip install -q --only-binary :all: "pytest>=7" "hypothesis>=6.80"
cd "$ROOT"  # tests/ and pyproject.toml; onnx_sparsify still comes from the venv (the source is rewriter/)
# The system's folders back on the PATH: the plugin tests read the library with nm and readelf.
env PATH="$WORK/no-build/bin:$WORK/venv/bin:/usr/bin:/bin" PYTHONNOUSERSITE=1 \
  python -m pytest -q -p no:cacheprovider -rs tests/test_plugin.py tests/test_conformance.py

if [ -e "$WORK/no-build/calls" ]; then
  echo "a compiler or build tool was called:" >&2; cat "$WORK/no-build/calls" >&2; exit 1
fi
say "passed: installed with no build step, no compiler or build tool called"
