"""Every snippet in README.md runs: each ```python block, in order, in one temporary folder
holding a copy of examples/ (the snippets read examples/small_cnn.onnx and later ones read the
files earlier ones write); each ```bash block that is cheap and safe, in a fresh temporary
folder. Every other ```bash block is listed in SKIPPED with the reason; a new block in neither
list fails test_every_bash_block_is_classified, so a README edit cannot add an untested
command silently."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# bash blocks run here, by their first line.
RUN = {
    "python3 -m venv .venv && . .venv/bin/activate": "creates and activates a venv in the temporary folder",
    "python3 examples/serving/triton/prepare_repository.py --out triton_example": "writes a small model",
}
# bash blocks not run here, by their first line, and why.
SKIPPED = {
    "python3 -m pip install . && python3 -m onnx_sparsify": "the quick start: CI runs it itself (a source build)",
    "bash tools/run_tests.sh": "the test suite itself (.ci/run runs it)",
    "python3 -m pip uninstall -y onnxruntime && python3 -m pip install": (
        "replaces this environment's onnxruntime with onnxruntime-gpu (a GPU package, a large download)"
    ),
    "python3 -m pip install --only-binary :all: dist/onnx_sparsify-": (
        "installs the release wheel, which tools/build_wheel.sh builds: .ci/run's tools/test_wheel.sh does this"
    ),
    "bash tools/gpu_check.sh": "needs an NVIDIA GPU",
    "cmake -S . -B build/plugin": "a C++ build of the plugin: .ci/run's examples/cpp/build_and_run.sh does it",
    "ORT_VERSION=": "downloads ONNX Runtime (network): .ci/run's examples/cpp/build_and_run.sh does it",
    "cmake -S examples/cpp": "builds and runs the C++ example: .ci/run's examples/cpp/build_and_run.sh does it",
    "python3 -m pip install -r tests/requirements-serving.txt": (
        "installs packages; tools/run_tests.sh installs the same file, and tests/test_serving.py runs the "
        "Ray Serve server command bounded in time (it serves until Ctrl-C)"
    ),
}
# python blocks not run here, by their first line, and why (none so far).
PYTHON_SKIPPED: dict[str, str] = {}


def _blocks(language: str) -> list[tuple[int, str]]:
    """(line number, text) of each ```language block in README.md."""
    text = README.read_text()
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(1))
        for m in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M)
    ]


def _first_line(block: str) -> str:
    return block.strip().splitlines()[0].strip()


def _matches(block: str, table: dict[str, str]) -> bool:
    return any(_first_line(block).startswith(key) for key in table)


def _workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__", "1"))
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "requirements-serving.txt", tmp_path / "tests")
    return tmp_path


def test_readme_has_the_snippets_this_file_expects():
    assert len(_blocks("python")) >= 3
    bash = [_first_line(b) for _, b in _blocks("bash")]
    for key in [*RUN, *SKIPPED]:
        assert any(line.startswith(key) for line in bash), f"README.md has no bash block starting {key!r}"


def test_every_bash_block_is_classified():
    for line, block in _blocks("bash"):
        assert _matches(block, RUN) or _matches(block, SKIPPED), (
            f"README.md line {line}: a bash block neither run nor skipped by tests/test_readme.py "
            f"(add its first line to RUN or, with the reason, SKIPPED): {_first_line(block)!r}"
        )


def test_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(_workdir(tmp_path))
    ran = 0
    for line, block in _blocks("python"):
        if _matches(block, PYTHON_SKIPPED):
            continue
        try:
            exec(compile(block, f"README.md, block at line {line}", "exec"), {"__name__": "__readme__"})
        except Exception as error:
            raise AssertionError(f"README.md python block at line {line} failed: {error!r}") from error
        ran += 1
    assert ran >= 3
    assert Path("pruned.sparse.onnx").is_file()


@pytest.mark.parametrize("first_line", sorted(RUN))
def test_bash_block_runs(first_line, tmp_path):
    blocks = [(line, b) for line, b in _blocks("bash") if _first_line(b).startswith(first_line)]
    assert blocks, f"no bash block starting {first_line!r}"
    for line, block in blocks:
        script = "set -euo pipefail\n" + block
        if first_line.startswith("python3 -m venv"):  # the venv is active afterwards
            script += 'python3 -c "import sys; assert sys.prefix != sys.base_prefix, sys.prefix"\n'
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=_workdir(tmp_path / f"line{line}"),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"README.md line {line}:\n{block}\n{result.stdout}\n{result.stderr}"
    if first_line.startswith("python3 examples/serving/triton"):
        repository = tmp_path / f"line{line}" / "triton_example"
        assert (repository / "model_repository" / "small_cnn_sparse" / "1" / "model.onnx").is_file()
        assert (repository / "libonnx_sparsify_ort.so").is_file()


def test_status_table_median_matches_the_model_suite_table():
    """The status table's "median Nx at 90%, 1 thread" is the median of the third-party model
    table's 90%, 1-thread column, and the performance section says the same (they said 1.51x
    and 1.76x)."""
    text = README.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| model | family |"))
    column = [c.strip() for c in header.split("|")].index("90%, 1 thr")
    rows = [line for line in text.splitlines() if re.match(r"\| [^|]+ \| [^|]+ \| \d+% \|", line)]
    values = sorted(float(re.match(r"[\d.]+", [c.strip() for c in row.split("|")][column]).group()) for row in rows)
    assert len(values) == 9
    median = f"{values[len(values) // 2]:.2f}x"
    assert re.search(r"median ([\d.]+x) at 90%, 1 thread", text).group(1) == median
    assert re.search(r"Median at 90% zeros: ([\d.]+x)\s+with 1 thread", text).group(1) == median
