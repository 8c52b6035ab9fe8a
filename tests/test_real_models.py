"""The whole workflow (prune, rewrite, check) on third-party models installed from PyPI, whose
weights nobody here chose: RapidOCR's PP-OCR detection, recognition and classification models
(weights in Constant nodes, depthwise Convs, asymmetric strides, BatchNorm) and Silero VAD (1D
Convs inside If branches). The wheels carry the models; nothing is downloaded at run time.
Install them with tools/run_tests.sh (or pip install --no-deps rapidocr-onnxruntime silero-vad)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import onnx
import onnx_sparsify
import pytest
from onnx_sparsify.check import check


def _package_dir(name: str) -> Path | None:
    """The installed package's folder, found without importing it (its imports need OpenCV or torch)."""
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def _model_path(package: str, relative: str) -> Path:
    folder = _package_dir(package)
    if folder is None or not (folder / relative).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{package} is not installed: CI installs it (tools/run_tests.sh)")
        pytest.skip(f"{package} is not installed (pip install --no-deps {package.replace('_', '-')})")
    return folder / relative


PP_OCR = {  # model file -> input shape
    "ch_PP-OCRv4_det_infer.onnx": (1, 3, 96, 128),
    "ch_PP-OCRv4_rec_infer.onnx": (1, 3, 48, 160),
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": (1, 3, 48, 192),
}


def _tolerance(result) -> float:
    """At most 1e-4 relative L2, or a few times the model's own float32 sensitivity."""
    return max(1e-4, 5 * result.sensitivity)


@pytest.mark.parametrize("sparsity", [None, 0.9], ids=["original_weights", "pruned_90"])
@pytest.mark.parametrize("filename", sorted(PP_OCR))
def test_pp_ocr(filename: str, sparsity) -> None:
    path = _model_path("rapidocr_onnxruntime", f"models/{filename}")
    original = onnx.load(path)
    reference = original if sparsity is None else onnx_sparsify.prune_convs(original, sparsity)[0]
    rewritten, report = onnx_sparsify.sparsify(reference, min_sparsity=0)
    assert report.convs > 30 and report.rewritten == report.convs, [
        layer.reason for layer in report.layers if not layer.rewritten
    ]
    assert any("BatchNormalization" in layer.folded for layer in report.layers) or "det" in filename
    assert any(layer.group > 1 and layer.group == layer.weight_shape[0] for layer in report.layers)  # depthwise
    onnx.checker.check_model(rewritten)
    result = check(reference, rewritten, input_shapes={"x": PP_OCR[filename]}, original=original if sparsity else None)
    assert result.passed and result.worst_error <= _tolerance(result), result
    if sparsity:
        assert max(result.pruning_drift.values()) > 0  # pruning did change the model


def _vad_feeds(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    state = np.zeros((2, 1, 128), np.float32)
    return [  # 16 kHz and 8 kHz take different If branches
        {"input": rng.standard_normal((1, 512)).astype(np.float32) * 0.3, "state": state, "sr": np.array(16000)},
        {"input": rng.standard_normal((1, 256)).astype(np.float32) * 0.3, "state": state, "sr": np.array(8000)},
    ]


@pytest.mark.parametrize("sparsity", [None, 0.9], ids=["original_weights", "pruned_90"])
def test_silero_vad(sparsity) -> None:
    path = _model_path("silero_vad", "data/silero_vad.onnx")
    original = onnx.load(path)
    reference = original if sparsity is None else onnx_sparsify.prune_convs(original, sparsity)[0]
    rewritten, report = onnx_sparsify.sparsify(reference, min_sparsity=0)
    assert report.rewritten == report.convs >= 10
    assert all(layer.graph != "main" for layer in report.layers)  # all inside If branches
    assert all(len(layer.weight_shape) == 3 for layer in report.layers)  # 1D convolutions
    onnx.checker.check_model(rewritten)
    result = check(reference, rewritten, feeds=_vad_feeds(np.random.default_rng(0)))
    assert result.passed and result.worst_error <= _tolerance(result), result


def test_cli_on_a_real_model(tmp_path: Path) -> None:
    from onnx_sparsify import cli

    path = _model_path("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    code = cli.main(
        [
            str(path),
            "-o",
            str(tmp_path / "cls.onnx"),
            "--prune",
            "0.9",
            "--check",
            "--input-shape",
            "x:1x3x48x192",
            "--report-json",
            str(tmp_path / "r.json"),
            "-q",
        ]
    )
    assert code == cli.EXIT_OK
