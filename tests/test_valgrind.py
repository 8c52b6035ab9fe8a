"""On a CPU without AVX-512 the plugin picks its AVX2 variant by itself and gives ORT's answers:
valgrind's virtual CPU (--tool=none runs the code, checks nothing) has no AVX-512, so this runs
tests/no_avx512_check.py under it, on whole-tile layers (both strategies), SparseQLinearConv's
portable kernel and a rewritten third-party model.
tools/run_tests.sh installs valgrind; the check takes about a minute."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_real_models import _model_path

HERE = Path(__file__).parent


def test_dispatch_without_avx512_under_valgrind() -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is missing: CI installs it (tools/run_tests.sh)")
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    model = _model_path("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    result = subprocess.run(
        [valgrind, "--tool=none", "-q", sys.executable, str(HERE / "no_avx512_check.py"), str(model), "1,3,48,192"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "CPU kernel instruction set: avx2" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
