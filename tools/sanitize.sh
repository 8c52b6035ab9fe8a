#!/usr/bin/env bash
# Builds the ONNX Runtime plugin and the pybind11 module with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs pytest suites against them.
#
#   tools/sanitize.sh                        # the default suites (below)
#   tools/sanitize.sh tests/test_plugin.py   # any pytest arguments instead
#   JOBS=1 tools/sanitize.sh                 # build on one core (default: all)
#   SANITIZE_ORT_ARENA=1 tools/sanitize.sh   # keep ONNX Runtime's CPU arena (default: off, below)
#
# Default suites: tests/test_conformance.py tests/test_property.py tests/test_malformed.py.
# Exit status: pytest's, or 1 when a sanitizer reported an error (the reports are printed at the
# end and kept in build/sanitize/reports/). ASan writes its reports there from every process,
# children whose failure a test swallowed included. UBSan, linked beside ASan, ignores log_path and
# always writes to stderr, so its reports are found in pytest's output (reports/pytest.log):
# in-process ones end pytest, a child's shows up where a test prints the child's stderr.
#
# How it works (see docs/sanitizers.md):
#  - CMake builds into build/sanitize (CUDA off: nvcc code is not instrumented) with
#    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g
#    -D_GLIBCXX_ASSERTIONS -D_GLIBCXX_SANITIZE_VECTOR. The flags go at the end of every compile
#    command, after the targets' own options, so -O1 also replaces the kernels' -O3.
#  - A copy of the package (rewriter/*.py as onnx_sparsify/ plus the sanitized .so files) is put
#    in a temporary folder that PYTHONPATH puts ahead of any installed or editable onnx_sparsify.
#  - Python and ONNX Runtime are not instrumented, so libasan must be preloaded (it has to come
#    first). libstdc++ is preloaded after it: Python does not link libstdc++, and when it is not
#    loaded as ASan starts, ASan's __cxa_throw interceptor finds no real __cxa_throw and the first
#    C++ exception (ONNX Runtime throws internally on error paths) aborts the process with
#    "CHECK failed: asan_interceptors.cpp:... real___cxa_throw != 0". GCC 12's libasan has no
#    option to turn that interceptor off; the preload is the fix.
#  - detect_leaks=0: CPython does not free everything at exit by design, and neither does ONNX
#    Runtime's Python binding; LeakSanitizer would report those on every run. tests/test_memory.py
#    checks for growth instead.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD="$ROOT/build/sanitize"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-$(nproc)}"
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g -D_GLIBCXX_ASSERTIONS -D_GLIBCXX_SANITIZE_VECTOR"
SAN_LINK="-fsanitize=address,undefined"
if [ "$#" -eq 0 ]; then
  set -- tests/test_conformance.py tests/test_property.py tests/test_malformed.py
fi

start=$(date +%s)
# pybind11's CMake files (pip installs it only into its isolated build environments).
"$PYTHON" -c 'import pybind11' 2>/dev/null || "$PYTHON" -m pip install -q "pybind11>=2.12"
cmake_args=(
  -S "$ROOT" -B "$BUILD"
  -DCMAKE_BUILD_TYPE=Debug  # no LTO and no stripping from pybind11; the flags below replace Debug's
  -DCMAKE_CXX_FLAGS_DEBUG=
  "-DCMAKE_CXX_COMPILE_OBJECT=<CMAKE_CXX_COMPILER> <DEFINES> <INCLUDES> <FLAGS> $SAN_FLAGS -o <OBJECT> -c <SOURCE>"
  "-DCMAKE_SHARED_LINKER_FLAGS=$SAN_LINK"
  "-DCMAKE_MODULE_LINKER_FLAGS=$SAN_LINK"
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$BUILD/lib"
  -DONNX_SPARSIFY_CUDA=OFF
  -DONNX_SPARSIFY_STATIC_LIBSTDCXX=OFF  # ASan must see the one shared libstdc++ (its __cxa_throw)
  -DPython_EXECUTABLE="$(command -v "$PYTHON")"
  -Dpybind11_DIR="$("$PYTHON" -c 'import pybind11; print(pybind11.get_cmake_dir())')"
)
if command -v ninja >/dev/null; then cmake_args+=(-GNinja); fi
# Headers fetched by an earlier build of this checkout save a download: copied to where
# cmake/OnnxRuntimeHeaders.cmake looks in this build folder (ONNXRUNTIME_ROOT still wins).
HEADERS="$BUILD/_deps/onnxruntime-headers"
if [ -z "${ONNXRUNTIME_ROOT:-}" ] && [ ! -d "$HEADERS" ]; then
  for dir in "$ROOT"/build/*/_deps/onnxruntime-headers/debian/root/usr \
             "$ROOT"/build/*/_deps/onnxruntime-headers/onnxruntime-linux-x64-*; do
    if [ "$dir" != "$HEADERS/debian/root/usr" ] &&
       { [ -f "$dir/include/onnxruntime/onnxruntime_c_api.h" ] || [ -f "$dir/include/onnxruntime_c_api.h" ]; }; then
      mkdir -p "$HEADERS/debian/root/usr"
      cp -r "$dir/include" "$HEADERS/debian/root/usr/"
      break
    fi
  done
fi
mkdir -p "$BUILD"
cmake "${cmake_args[@]}" >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" --parallel "$JOBS"
built=$(date +%s)

PKG="$(mktemp -d "${TMPDIR:-/tmp}/onnx_sparsify_sanitize.XXXXXX")"
trap 'rm -rf "$PKG"' EXIT
LOGS="$BUILD/reports"
rm -rf "$LOGS"
mkdir -p "$PKG/onnx_sparsify" "$LOGS"
cp rewriter/*.py "$PKG/onnx_sparsify/"
cp "$BUILD"/lib/libonnx_sparsify_ort.so "$BUILD"/lib/_core*.so "$PKG/onnx_sparsify/"
# ONNX Runtime's CPU arena carves tensors out of 1 MiB chunks it mallocs, so ASan would not see a
# read or write past the end of X, Y or the kernel's scratch: it lands in the neighbouring tensor.
# This sitecustomize (on PYTHONPATH, so children load it too) turns the arena off in every session.
# SANITIZE_ORT_ARENA=1 keeps it on.
if [ "${SANITIZE_ORT_ARENA:-0}" != 1 ]; then
  cat >"$PKG/sitecustomize.py" <<'PY'
"""Written by tools/sanitize.sh: every ONNX Runtime session runs without the CPU memory arena,
so each tensor is a malloc block of its own that AddressSanitizer guards."""

import importlib.abc
import importlib.util
import sys


def _arena_off(ort):
    init = ort.InferenceSession.__init__

    def __init__(self, path_or_bytes, sess_options=None, *args, **kwargs):
        sess_options = sess_options if sess_options is not None else ort.SessionOptions()
        sess_options.enable_cpu_mem_arena = False
        init(self, path_or_bytes, sess_options, *args, **kwargs)

    ort.InferenceSession.__init__ = __init__


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "onnxruntime":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _arena_off(module)

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _PatchOnImport())
PY
fi

LIBASAN="$(g++ -print-file-name=libasan.so)"
LIBSTDCXX="$(g++ -print-file-name=libstdc++.so)"
for lib in "$LIBASAN" "$LIBSTDCXX"; do
  [ -f "$lib" ] || { echo "sanitize.sh: $lib not found (g++ -print-file-name)" >&2; exit 1; }
done
export PYTHONPATH="$PKG${PYTHONPATH:+:$PYTHONPATH}"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LD_PRELOAD="$LIBASAN $LIBSTDCXX${LD_PRELOAD:+ $LD_PRELOAD}"

# The copy must be what Python imports, and the sanitizers must be in it.
"$PYTHON" - "$PKG" <<'EOF'
import pathlib, sys
import onnx_sparsify
where = pathlib.Path(onnx_sparsify.__file__).resolve().parent
assert where == pathlib.Path(sys.argv[1], "onnx_sparsify").resolve(), f"imported {where}, not the sanitized copy"
plugin = pathlib.Path(onnx_sparsify.library_path()).read_bytes()
assert b"__asan_init" in plugin and b"__ubsan_handle" in plugin, "the plugin is not instrumented"
import onnxruntime
arena = "off" if onnxruntime.InferenceSession.__init__.__module__ == "sitecustomize" else "on"
print(f"sanitize.sh: testing {where} (ASan+UBSan), ONNX Runtime's CPU arena {arena}")
EOF

set +e
"$PYTHON" -m pytest -p no:cacheprovider "$@" 2>&1 | tee "$LOGS/pytest.log"
status=${PIPESTATUS[0]}
pytest_status=$status
set -e
finished=$(date +%s)

asan_reports=$(find "$LOGS" -type f -name 'asan.*' | sort)
ubsan_lines=$(grep -c ": runtime error: " "$LOGS/pytest.log" || true)
shown=0
for report in $asan_reports; do  # the first two in full, then one line each
  if [ "$shown" -lt 2 ]; then
    echo "---- ASan report $report" >&2
    head -n 40 "$report" >&2
  else
    echo "---- ASan report $report: $(grep -m1 'ERROR: AddressSanitizer' "$report" | cut -c1-200)" >&2
  fi
  shown=$((shown + 1))
done
if [ "$ubsan_lines" -gt 0 ]; then
  echo "---- UBSan: $ubsan_lines report(s) in $LOGS/pytest.log; the distinct ones:" >&2
  grep -o "[^ ]*: runtime error: .*" "$LOGS/pytest.log" | sort | uniq -c | head -n 20 >&2
fi
if [ -n "$asan_reports" ] || [ "$ubsan_lines" -gt 0 ]; then
  [ "$status" -ne 0 ] || status=1
fi
echo "sanitize.sh: build $((built - start)) s, tests $((finished - built)) s, pytest exit $pytest_status," \
  "$(echo "$asan_reports" | grep -c . || true) ASan and $ubsan_lines UBSan report(s); exit $status"
exit "$status"
