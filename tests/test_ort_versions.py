"""The plugin, built against API 21, also loads and passes in the oldest supported runtime,
onnxruntime 1.21.x, installed in a throwaway virtual environment beside the newest one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

OLDEST = "1.21.1"
TESTS = Path(__file__).parent
IN_CHILD = "ONNX_SPARSIFY_ORT_COMPAT_CHILD"


def test_newest_runtime_is_recent() -> None:
    """This process exercises a runtime newer than the one the plugin was built against."""
    assert tuple(int(p) for p in onnxruntime.__version__.split(".")[:2]) >= (1, 21)


@pytest.mark.skipif(bool(os.environ.get(IN_CHILD)), reason="already running inside the onnxruntime 1.21 environment")
@pytest.mark.slow
def test_oldest_supported_runtime(tmp_path: Path) -> None:
    venv = tmp_path / "ort121"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Everything else (onnx_sparsify, onnx, numpy, pytest) comes from this interpreter's
    # site-packages, listed after the venv's own, so the venv's onnxruntime wins.
    child_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(child_site, "parent_site.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"onnxruntime=={OLDEST}"],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    version = subprocess.run(
        [str(python), "-c", "import onnxruntime; print(onnxruntime.__version__)"], capture_output=True, text=True
    )
    assert version.stdout.strip() == OLDEST, version.stdout + version.stderr
    suite = [str(TESTS / name) for name in ("test_conformance.py", "test_onnx_backend.py", "test_malformed.py")]
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite],
        capture_output=True,
        text=True,
        env={**os.environ, IN_CHILD: "1"},
        cwd=TESTS.parent,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
