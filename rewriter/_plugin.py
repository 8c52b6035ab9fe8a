"""Finding and loading the native parts: the ONNX Runtime plugin and the pybind11 module."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnxruntime

_PLUGIN_NAMES = ("libonnx_sparsify_ort.so", "libonnx_sparsify_ort.dylib", "onnx_sparsify_ort.dll")


def library_path() -> str:
    """Absolute path of the custom-op library, for ``SessionOptions.register_custom_ops_library``."""
    here = Path(__file__).resolve().parent
    for name in _PLUGIN_NAMES:
        candidate = here / name
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"onnx-sparsify's ONNX Runtime plugin is missing from {here}; reinstall the package")


def session_options(options: onnxruntime.SessionOptions | None = None) -> onnxruntime.SessionOptions:
    """Returns ``options`` (or new SessionOptions) with the SparseConv plugin registered."""
    import onnxruntime

    options = options if options is not None else onnxruntime.SessionOptions()
    options.register_custom_ops_library(library_path())
    return options


def build_info() -> dict[str, Any]:
    """Facts about this build: version, ORT API version, CUDA compiled, CPU instruction set in use."""
    from . import _core

    return dict(_core.build_info())
