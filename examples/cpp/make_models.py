"""Regenerates the two models the C++ example compares (committed, so that building and running
the example needs no Python):

    small_cnn.pruned.onnx   examples/small_cnn.onnx with each Conv weight magnitude-pruned to 90%
                            zeros: a dense model, run by ONNX Runtime's own Conv
    small_cnn.sparse.onnx   the same model rewritten by onnx-sparsify: SparseConv nodes (CSR
                            weights, BatchNormalization and Relu folded in)

    python3 examples/cpp/make_models.py      # needs onnx-sparsify installed
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_sparsify

HERE = Path(__file__).resolve().parent


def main() -> None:
    model = onnx.load(str(HERE.parent / "small_cnn.onnx"))
    pruned, _ = onnx_sparsify.prune_convs(model, 0.9)
    sparse, report = onnx_sparsify.sparsify(pruned, min_sparsity=0.5)
    assert report.rewritten == report.convs, [layer.reason for layer in report.layers]
    onnx.save(pruned, str(HERE / "small_cnn.pruned.onnx"))
    onnx_sparsify.save_model(sparse, str(HERE / "small_cnn.sparse.onnx"))
    print(f"{report.rewritten} of {report.convs} Convs rewritten; wrote small_cnn.pruned.onnx, small_cnn.sparse.onnx")


if __name__ == "__main__":
    main()
