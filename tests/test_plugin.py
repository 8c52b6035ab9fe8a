"""The plugin as a shared library: what it exports and links, what it reports, and how it
behaves under concurrent Run calls."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx_sparsify
import onnxruntime as ort
import pytest
from models import conv_model, random_sparse_weight, session, sparse_conv_from_dense
from onnx_sparsify import _core
from test_ort_versions import OLDEST


def test_library_path_is_the_installed_plugin() -> None:
    path = Path(onnx_sparsify.library_path())
    assert path.is_file() and path.parent == Path(onnx_sparsify.__file__).parent


@pytest.mark.skipif(shutil.which("nm") is None, reason="binutils' nm is not installed")
def test_exports_only_the_registration_entry_point() -> None:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", onnx_sparsify.library_path()], capture_output=True, text=True, check=True
    ).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.split()[-2:-1] and line.split()[-2] in "TtWDB"}
    assert exported == {"RegisterCustomOps"}, exported


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf is not installed")
def test_needs_no_cuda_library() -> None:
    out = subprocess.run(
        ["readelf", "-d", onnx_sparsify.library_path()], capture_output=True, text=True, check=True
    ).stdout
    needed = [line for line in out.splitlines() if "(NEEDED)" in line]
    assert needed and not any("cuda" in line.lower() for line in needed), needed


def test_build_info() -> None:
    info = onnx_sparsify.build_info()
    assert info["version"] == onnx_sparsify.__version__
    # Built against the API of the oldest runtime the suite proves it loads in (test_ort_versions).
    assert info["ort_api_version"] == int(OLDEST.split(".")[1])
    assert isinstance(info["cuda_compiled"], bool)
    assert info["cpu_isa"] in {"avx512vnni", "avx512f", "avx2", "baseline"}
    assert info["cpu_strategy"] in {"generated", "loops"}
    # What build_info says is what was built: the CUDA entry points exist exactly in a CUDA build.
    assert hasattr(_core, "sparse_conv_cuda") == info["cuda_compiled"]


def test_registration_is_repeatable() -> None:
    """Many sessions may each register the library."""
    rng = np.random.default_rng(1)
    w = random_sparse_weight(rng, (4, 3, 3, 3), 0.8)
    model = sparse_conv_from_dense((1, 3, 8, 8), w, None, {})
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    outputs = [session(model, plugin=True).run(None, {"x": x})[0] for _ in range(5)]
    assert all(np.array_equal(outputs[0], o) for o in outputs)


def test_concurrent_runs_share_one_kernel() -> None:
    """One session (one kernel instance) serves Run calls from many threads at once."""
    rng = np.random.default_rng(2)
    w = random_sparse_weight(rng, (16, 8, 3, 3), 0.9)
    attrs = {"pads": [1, 1, 1, 1]}
    sparse = session(
        sparse_conv_from_dense((1, 8, 24, 24), w, None, attrs, symbolic=(True, False, True, True)), True, 2
    )
    dense = session(conv_model((1, 8, 24, 24), w, None, attrs, symbolic=(True, False, True, True)), plugin=False)
    inputs = [rng.standard_normal((1 + i % 3, 8, 16 + i, 24 - i)).astype(np.float32) for i in range(8)]
    expected = [dense.run(None, {"x": x})[0] for x in inputs]
    failures: list[str] = []

    def worker(offset: int) -> None:
        for step in range(20):
            i = (offset + step) % len(inputs)
            y = sparse.run(None, {"x": inputs[i]})[0]
            if y.shape != expected[i].shape or not np.allclose(y, expected[i], rtol=1e-4, atol=1e-4):
                failures.append(f"thread {offset} input {i}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


def test_session_options_keeps_caller_settings() -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    assert onnx_sparsify.session_options(options) is options
    assert options.intra_op_num_threads == 2


def test_importing_the_package_does_not_import_onnxruntime() -> None:
    """The rewriter's modules import onnxruntime where they run it, so that `import onnx_sparsify`
    (and the command's --help) stays light."""
    code = "import sys, onnx_sparsify; assert 'onnxruntime' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
