"""Fill the Triton example: prune and rewrite a model into model_repository/small_cnn_sparse/1/,
and copy the onnx-sparsify plugin library beside the Dockerfile.

    python examples/serving/triton/prepare_repository.py [--model examples/small_cnn.onnx] [--prune 0.9]

Then build the image with the Dockerfile in this folder (its header says how). The library is
the one this Python package ships (`onnx_sparsify.library_path()`): it links only the C and C++
runtime libraries (glibc 2.34 and libstdc++ of GCC 11 or newer for a build like this project's),
so it loads in Triton images based on Ubuntu 22.04 or later.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import onnx_sparsify

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "model_repository" / "small_cnn_sparse"


def prepare(model: Path, prune: float | None, out_dir: Path = HERE) -> Path:
    """Writes out_dir/model_repository/small_cnn_sparse/1/model.onnx and
    out_dir/libonnx_sparsify_ort.so; returns the model's path."""
    source = onnx_sparsify.load_model(model).model
    if prune is not None:
        source, _ = onnx_sparsify.prune_convs(source, prune)
    sparse, report = onnx_sparsify.sparsify(source)
    target = out_dir / "model_repository" / "small_cnn_sparse" / "1" / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    if out_dir != HERE:  # a copy elsewhere: bring the config and the Dockerfile along
        shutil.copy(MODEL_DIR / "config.pbtxt", target.parent.parent / "config.pbtxt")
        shutil.copy(HERE / "Dockerfile", out_dir / "Dockerfile")
    onnx_sparsify.save_model(sparse, str(target))
    shutil.copy(onnx_sparsify.library_path(), out_dir / "libonnx_sparsify_ort.so")
    print(f"{target}: {report.rewritten} of {report.convs} Convs rewritten; library in {out_dir}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=HERE.parents[2] / "examples" / "small_cnn.onnx")
    parser.add_argument("--prune", type=float, default=0.9, help="prune to this sparsity first (0: no pruning)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: this one)")
    args = parser.parse_args(argv)
    prepare(args.model, args.prune or None, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
