"""The plugin, built against API 21, also loads and passes in the oldest supported runtime,
onnxruntime 1.21.x, installed in a throwaway virtual environment beside the newest one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

OLDEST = "1.21.1"
TESTS = Path(__file__).parent
IN_CHILD = "ONNX_SPARSIFY_ORT_COMPAT_CHILD"

# What pip (through urllib3 and requests) prints when it cannot reach the package index: the
# connection itself failed, not the index's answer.
NETWORK_FAILURES = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "No route to host",
    "Connection refused",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "Could not fetch URL",
)


def index_unreachable(pip_output: str) -> str | None:
    """Why pip failed, when it failed because the package index could not be reached, else None.

    Needs both a connection failure in pip's log and a final error that follows from it: no
    matching distribution (the index holding the release was never read) or a network error
    while downloading. Any other failure (a release that does not exist for this Python, a
    broken wheel, a full disk) is not a reason to skip."""
    lines = [line.strip() for line in pip_output.splitlines() if line.strip()]
    network = [line for line in lines if any(m in line for m in NETWORK_FAILURES)]
    if not network or not lines:
        return None
    final = [line for line in lines if line.startswith("ERROR:")] + [lines[-1]]
    if not any("No matching distribution found" in line or any(m in line for m in NETWORK_FAILURES) for line in final):
        return None
    reason = re.search(r"Failed to establish a new connection: ([^'\"]+)", network[0])
    return reason.group(1).strip() if reason else network[0][:300]


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
    # site-packages, added after the venv's own, so the venv's onnxruntime wins.
    child_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A .pth line that starts with "import" is run; site.addsitedir also reads the .pth files in
    # the parent's site-packages, so an editable install (a finder that a .pth installs) is found.
    parent_sites = [p for p in sys.path if p.endswith("site-packages")]
    Path(child_site, "parent_site.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parent_sites) + "\n"
    )
    # Not quiet, so the log holds pip's connection warnings; --retries 2 keeps an offline run short
    # (pip's default of 5 retries backs off for about ten seconds) and still logs a retry warning.
    pip = [str(python), "-m", "pip", "install", "--retries", "2", "--disable-pip-version-check"]
    install = subprocess.run(
        [*pip, f"onnxruntime=={OLDEST}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if install.returncode != 0:
        reason = index_unreachable(install.stdout)
        if reason:
            pytest.skip(f"onnxruntime=={OLDEST} could not be installed: the package index is unreachable ({reason})")
    assert install.returncode == 0, install.stdout[-5000:]
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
