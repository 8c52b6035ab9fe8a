"""Peer engines timed in the same harness run, on the same model files: DeepSparse 1.8.

DeepSparse 1.8 wants Python <= 3.11, onnx < 1.15 and numpy < 2, none of which this project's
environment has to match, so it lives in a virtual environment of its own, made on demand:

    ~/.cache/onnx-sparsify/peers/deepsparse-1.8.0   (python3.11 -m venv; pip install
                                                     deepsparse==1.8.0 "onnx<1.15" "numpy<2")

reused when it already imports (ONNX_SPARSIFY_PEERS_DIR moves the folder). Each model is timed by
benchmarks/deepsparse_worker.py run with that environment's python in a subprocess that exits
before the harness times anything else, so two engines never run at the same time. The model
handed over is the layer's dense Conv model, saved with IR version <= 9 and opset <= 17 (what
onnx 1.14 reads).

Where the environment cannot be made or deepsparse does not import, `deepsparse_peer` raises
PeerUnavailable with the reason; the harness logs it and writes it in its JSON and table.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import version_converter

log = logging.getLogger("benchmarks")

DEEPSPARSE_VERSION = "1.8.0"
DEEPSPARSE_PYTHON = "python3.11"
DEEPSPARSE_REQUIREMENTS = [f"deepsparse=={DEEPSPARSE_VERSION}", "onnx<1.15", "numpy<2"]
MAX_IR_VERSION = 9  # onnx 1.14, the newest deepsparse 1.8 accepts, reads IR <= 9
MAX_OPSET = 17
WORKER = Path(__file__).with_name("deepsparse_worker.py")
KNOWN_PEERS = ("deepsparse",)


class PeerUnavailable(RuntimeError):
    """The peer cannot run here; the message says why."""


def peers_dir() -> Path:
    if os.environ.get("ONNX_SPARSIFY_PEERS_DIR"):
        return Path(os.environ["ONNX_SPARSIFY_PEERS_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onnx-sparsify" / "peers"


def for_peer(model: onnx.ModelProto, max_ir: int = MAX_IR_VERSION, max_opset: int = MAX_OPSET) -> onnx.ModelProto:
    """A copy of `model` an older onnx reads: the default domain converted down to `max_opset`
    where it is newer, and the IR version lowered to `max_ir`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    opset = next((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset > max_opset:
        out = version_converter.convert_version(out, max_opset)
    out.ir_version = min(out.ir_version, max_ir)
    return out


def _tail(text: str, n: int = 400) -> str:
    text = " ".join(text.strip().split())
    return text[-n:]


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _probe_import(python: Path) -> str:
    """The installed deepsparse version, or PeerUnavailable."""
    proc = subprocess.run(
        [str(python), "-c", "import deepsparse, onnx, numpy; print(deepsparse.__version__)"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NM_DISABLE_ANALYTICS": "1"},
    )
    if proc.returncode != 0:
        raise PeerUnavailable(f"deepsparse does not import in {python}: {_tail(proc.stderr)}")
    return proc.stdout.strip().splitlines()[-1]


def ensure_deepsparse_venv(folder: Path | None = None, base_python: str = DEEPSPARSE_PYTHON) -> tuple[Path, str]:
    """(python of the peer's environment, deepsparse version): reused when it imports, else made."""
    venv = folder or peers_dir() / f"deepsparse-{DEEPSPARSE_VERSION}"
    python = _venv_python(venv)
    if python.exists():
        try:
            return python, _probe_import(python)
        except (PeerUnavailable, subprocess.SubprocessError, OSError) as error:
            log.warning("peer environment %s is broken (%s); making it again", venv, error)
            shutil.rmtree(venv, ignore_errors=True)
    interpreter = shutil.which(base_python)
    if interpreter is None:
        raise PeerUnavailable(f"{base_python} not found on PATH (deepsparse {DEEPSPARSE_VERSION} needs Python <= 3.11)")
    log.info("making the DeepSparse environment %s (once)", venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [interpreter, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *DEEPSPARSE_REQUIREMENTS],
    ]
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except (subprocess.SubprocessError, OSError) as error:
            shutil.rmtree(venv, ignore_errors=True)
            raise PeerUnavailable(f"`{' '.join(step[:4])} ...` failed: {error}") from error
        if proc.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise PeerUnavailable(f"`{' '.join(step[:4])} ...` failed: {_tail(proc.stderr or proc.stdout)}")
    try:
        return python, _probe_import(python)
    except PeerUnavailable:
        shutil.rmtree(venv, ignore_errors=True)
        raise


class DeepSparsePeer:
    """Times models with the DeepSparse engine in a subprocess (benchmarks/deepsparse_worker.py)."""

    name = "deepsparse"

    def __init__(self, python: Path, version: str, timeout_s: float = 900) -> None:
        self.python = python
        self.version = version
        self.timeout_s = timeout_s

    def info(self) -> dict[str, Any]:
        return {"status": "ok", "version": self.version, "python": str(self.python), "reason": None}

    def time_model(
        self,
        model: onnx.ModelProto,
        feeds: dict[str, np.ndarray],
        expected: np.ndarray | None,
        threads: int,
        block_s: float,
        rounds: int = 3,
    ) -> dict[str, Any]:
        """The worker's result (median_ms, fraction_of_supported_ops, fallback, ...), or
        {"error": reason} where the engine failed on this model."""
        with tempfile.TemporaryDirectory(prefix="onnx-sparsify-peer-") as tmp:
            folder = Path(tmp)
            onnx.save(for_peer(model), str(folder / "model.onnx"))
            inputs = []
            for i, name in enumerate(i.name for i in model.graph.input):
                path = folder / f"input{i}.npy"
                np.save(path, np.ascontiguousarray(feeds[name]))
                inputs.append(str(path))
            job = {
                "model": str(folder / "model.onnx"),
                "inputs": inputs,
                "expected": None,
                "num_cores": threads,
                "block_s": block_s,
                "rounds": rounds,
                "warmup": 3,
                "out": str(folder / "result.json"),
            }
            if expected is not None:
                np.save(folder / "expected.npy", expected)
                job["expected"] = str(folder / "expected.npy")
            (folder / "job.json").write_text(json.dumps(job))
            try:
                proc = subprocess.run(
                    [str(self.python), str(WORKER), str(folder / "job.json")],
                    capture_output=True,
                    text=True,
                    timeout=self.timeout_s,
                    env={**os.environ, "NM_DISABLE_ANALYTICS": "1"},
                )
            except subprocess.TimeoutExpired:
                return {"error": f"timed out after {self.timeout_s:.0f} s"}
            if proc.returncode != 0 or not (folder / "result.json").exists():
                return {"error": f"worker exited with {proc.returncode}: {_tail(proc.stderr)}"}
            return json.loads((folder / "result.json").read_text())


def make_peers(names: list[str]) -> tuple[list[DeepSparsePeer], dict[str, dict[str, Any]]]:
    """The usable peers among `names`, and every requested peer's status for the results
    ({"status": "ok" | "skipped", "reason": ...})."""
    usable, status = [], {}
    for name in names:
        if name not in KNOWN_PEERS:
            raise ValueError(f"unknown peer {name!r} (known: {', '.join(KNOWN_PEERS)})")
        try:
            python, version = ensure_deepsparse_venv()
        except PeerUnavailable as error:
            log.warning("DeepSparse column skipped: %s", error)
            status[name] = {"status": "skipped", "reason": str(error), "version": None, "python": None}
            continue
        peer = DeepSparsePeer(python, version)
        usable.append(peer)
        status[name] = peer.info()
        log.info("DeepSparse %s from %s", version, python)
    return usable, status
