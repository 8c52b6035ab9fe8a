"""Models with external data, hostile external-data locations, and models over 2 GiB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx_sparsify
import pytest
from models import IR_VERSION, OPSET, random_sparse_weight, rel_l2, session
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import cli


def _model(weight: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[1], 4, 4])],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, [1, weight.shape[0], 4 - weight.shape[2] + 1, 4 - weight.shape[3] + 1]
            )
        ],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def test_external_data_in_and_out(tmp_path: Path) -> None:
    weight = random_sparse_weight(np.random.default_rng(0), (64, 8, 3, 3), 0.5)
    src = tmp_path / "in" / "model.onnx"
    src.parent.mkdir()
    onnx.save(_model(weight), src, save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert (src.parent / "weights.bin").is_file()
    out = tmp_path / "out" / "sparse.onnx"
    out.parent.mkdir()
    assert cli.main([str(src), "-o", str(out), "--min-sparsity", "0", "-q"]) == cli.EXIT_OK
    assert sorted(p.name for p in out.parent.iterdir()) == ["sparse.onnx", "sparse.onnx.data"]
    onnx.checker.check_model(str(out))
    rewritten = onnx.load(out)
    x = np.random.default_rng(1).standard_normal((1, 8, 4, 4)).astype(np.float32)
    expected = session(_model(weight), plugin=False).run(None, {"x": x})[0]
    assert rel_l2(session(rewritten, plugin=True).run(None, {"x": x})[0], expected) <= 1e-5


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname", "sub/../../secret.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    folder = tmp_path / "models"
    folder.mkdir()
    model = _model(np.zeros((2, 2, 1, 1), np.float32))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "16"}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(onnx_sparsify.ModelLoadError, match="outside the model's folder"):
        onnx_sparsify.load_model(path)
    assert cli.main([str(path), "-o", str(folder / "out.onnx"), "-q"]) == cli.EXIT_INPUT


@pytest.mark.skipif(
    os.statvfs("/tmp").f_bavail * os.statvfs("/tmp").f_frsize < 8 * 2**30, reason="needs 8 GiB of free disk"
)
def test_model_over_2gib(tmp_path: Path) -> None:
    """A 2.1 GiB Conv weight (99.9% zeros): loaded from its external data, rewritten, saved
    with external data under the tool's own file name, and read back."""
    out_channels = 1100
    weight = np.zeros((out_channels, 512, 31, 31), np.float32)  # 2.16e9 bytes
    weight.reshape(-1)[::997] = 1.0
    src = tmp_path / "big.onnx"
    model = _model(weight[:, :, :1, :1].copy())  # small graph skeleton, then swap in the big tensor
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, "w"))
    del weight
    onnx.save(model, src, save_as_external_data=True, location="big.onnx.data")
    del model
    assert (tmp_path / "big.onnx.data").stat().st_size > 2**31
    loaded = onnx_sparsify.load_model(src)
    assert loaded.external_data
    rewritten, report = onnx_sparsify.sparsify(loaded.model, min_sparsity=0)
    assert report.rewritten == 1 and report.weight_bytes_before > 2**31
    out = tmp_path / "big.sparse.onnx"
    onnx_sparsify.save_model(rewritten, out, external_data=True)
    assert sorted(p.name for p in tmp_path.glob("big.sparse.onnx*")) == ["big.sparse.onnx", "big.sparse.onnx.data"]
    onnx.checker.check_model(str(out))
    reread = onnx.load(out)
    values = next(t for t in reread.graph.initializer if t.name == "w_csr_values")
    assert numpy_helper.to_array(values).size == report.layers[0].nnz
