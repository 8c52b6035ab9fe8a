"""Models with external data, hostile external-data locations, and models over 2 GiB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx_sparsify
import onnxruntime as ort
import pytest
from models import OPSET, conv_model, random_sparse_weight, rel_l2, session
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import cli


def _model(weight: np.ndarray) -> onnx.ModelProto:
    """x (1 x C x 4 x 4) -> Conv 'conv' with weight 'w' -> y, y's shape declared (onnx.checker
    wants one on the graph output)."""
    model = conv_model([1, weight.shape[1], 4, 4], weight, None, {})
    y_shape = [1, weight.shape[0], 4 - weight.shape[2] + 1, 4 - weight.shape[3] + 1]
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape))
    return model


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


def _external(tensor: onnx.TensorProto, location: str, length: int = 16) -> onnx.TensorProto:
    """Marks `tensor` as keeping its data at `location` (relative to the model's folder)."""
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": str(length)}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _hidden_tensor(name: str) -> onnx.TensorProto:
    return _external(numpy_helper.from_array(np.zeros(4, np.float32), name), "link.bin")


def _sparse(name: str, external: str) -> onnx.SparseTensorProto:
    values = numpy_helper.from_array(np.ones(2, np.float32), f"{name}_values")
    indices = numpy_helper.from_array(np.array([0, 3], np.int64), f"{name}_indices")
    _external(values if external == "values" else indices, "link.bin")
    return helper.make_sparse_tensor(values, indices, [4])


def _hide_in_attribute_t(model: onnx.ModelProto) -> None:
    """A tensor in `t` of an attribute declared INT: onnx's loader reads it all the same."""
    attr = helper.make_attribute("hidden", 0)
    attr.t.CopyFrom(_hidden_tensor("attr_t"))
    model.graph.node[0].attribute.append(attr)


def _hide_in_attribute_tensors(model: onnx.ModelProto) -> None:
    attr = helper.make_attribute("hidden", 1.0)
    attr.tensors.append(_hidden_tensor("attr_tensors"))
    model.graph.node[0].attribute.append(attr)


def _hide_in_sparse_initializer(model: onnx.ModelProto) -> None:
    model.graph.sparse_initializer.append(_sparse("sparse_init", "values"))


def _hide_in_sparse_attribute(model: onnx.ModelProto) -> None:
    node = helper.make_node("Constant", [], ["unused"], sparse_value=_sparse("sparse_attr", "indices"))
    model.graph.node.append(node)


def _hide_in_subgraph(model: onnx.ModelProto) -> None:
    """A sparse initializer and an attribute's `t` inside an If branch."""
    branch = helper.make_graph(
        [helper.make_node("Identity", ["sub_c"], ["sub_y"])],
        "branch",
        [],
        [helper.make_tensor_value_info("sub_y", TensorProto.FLOAT, [4])],
        sparse_initializer=[_sparse("sub_sparse", "values")],
    )
    attr = helper.make_attribute("hidden", "text")
    attr.t.CopyFrom(_hidden_tensor("sub_attr_t"))
    branch.node[0].attribute.append(attr)
    model.graph.node.append(helper.make_node("If", ["cond"], ["unused"], then_branch=branch, else_branch=branch))


def _hide_in_function(model: onnx.ModelProto) -> None:
    node = helper.make_node("Identity", ["a"], ["b"])
    attr = helper.make_attribute("hidden", 0)
    attr.t.CopyFrom(_hidden_tensor("function_attr_t"))
    node.attribute.append(attr)
    model.functions.append(helper.make_function("local", "F", ["a"], ["b"], [node], [helper.make_opsetid("", OPSET)]))


@pytest.mark.parametrize(
    "hide",
    [
        _hide_in_attribute_t,
        _hide_in_attribute_tensors,
        _hide_in_sparse_initializer,
        _hide_in_sparse_attribute,
        _hide_in_subgraph,
        _hide_in_function,
    ],
    ids=["attribute_t", "attribute_tensors", "sparse_initializer", "sparse_attribute", "subgraph", "function"],
)
def test_hidden_tensor_behind_a_symlink_out_of_the_folder_is_refused(tmp_path: Path, hide) -> None:
    """Every TensorProto anywhere in the model is checked, and a symlink inside the folder that
    points outside it counts as outside."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRET!!" * 512)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "link.bin").symlink_to(secret)
    model = _model(np.zeros((2, 2, 1, 1), np.float32))
    hide(model)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(onnx_sparsify.ModelLoadError, match="outside the model's folder"):
        onnx_sparsify.load_model(path)
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main([str(path), "-o", str(out / "o.onnx"), "--min-sparsity", "0", "-q"]) == cli.EXIT_INPUT
    assert list(out.iterdir()) == []


def test_symlink_inside_the_folder_to_a_file_inside_is_read(tmp_path: Path) -> None:
    weight = random_sparse_weight(np.random.default_rng(3), (4, 2, 1, 1), 0.5)
    src = tmp_path / "model.onnx"
    onnx.save(_model(weight), src, save_as_external_data=True, location="real.bin", size_threshold=0)
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")
    model = onnx.load(src, load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "link.bin"
    src.write_bytes(model.SerializeToString())
    loaded = onnx_sparsify.load_model(src)
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.model.graph.initializer[0]), weight)


def test_every_external_tensor_is_loaded(tmp_path: Path) -> None:
    """A sparse initializer with external data (onnx's own loader skips those) ends up in the
    output with its data, so the rewritten model runs from another folder."""
    weight = random_sparse_weight(np.random.default_rng(4), (4, 2, 1, 1), 0.5)
    model = _model(weight)
    model.graph.node.append(helper.make_node("Add", ["y", "offset"], ["z"]))
    model.graph.output[0].name = "z"
    dense_offset = np.array([0, 0, 0, 0, 2.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1.5] * 4, np.float32).reshape(1, 4, 4, 4)
    flat = dense_offset.reshape(-1)
    indices = np.nonzero(flat)[0].astype(np.int64)
    values = numpy_helper.from_array(flat[indices], "offset")
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(indices, "offset_indices"), [1, 4, 4, 4])
    model.graph.sparse_initializer.append(sparse)
    folder = tmp_path / "in"
    folder.mkdir()
    data = values.raw_data
    (folder / "sparse.bin").write_bytes(data)
    _external(model.graph.sparse_initializer[0].values, "sparse.bin", len(data))
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    loaded = onnx_sparsify.load_model(folder / "model.onnx")
    assert loaded.external_data
    assert loaded.model.graph.sparse_initializer[0].values.data_location == TensorProto.DEFAULT
    out = tmp_path / "out" / "o.onnx"
    out.parent.mkdir()
    assert cli.main([str(folder / "model.onnx"), "-o", str(out), "--min-sparsity", "0", "-q"]) == cli.EXIT_OK
    x = np.random.default_rng(5).standard_normal((1, 2, 4, 4)).astype(np.float32)
    expected = np.einsum("mc,nchw->nmhw", weight[:, :, 0, 0], x) + dense_offset
    actual = session(onnx.load(out), plugin=True).run(None, {"x": x})[0]
    assert rel_l2(actual, expected) <= 1e-5


def test_check_with_external_data_and_output_outside_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    weight = random_sparse_weight(np.random.default_rng(6), (64, 8, 3, 3), 0.5)
    src = tmp_path / "in" / "model.onnx"
    src.parent.mkdir()
    onnx.save(_model(weight), src, save_as_external_data=True, location="weights.bin", size_threshold=0)
    out = tmp_path / "out" / "sparse.onnx"
    out.parent.mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code = cli.main([str(src), "-o", str(out), "--min-sparsity", "0", "--check", "-q"])
    assert code == cli.EXIT_OK
    assert sorted(p.name for p in out.parent.iterdir()) == ["sparse.onnx", "sparse.onnx.data"]
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_check_runs_models_too_large_to_serialize_from_a_file(tmp_path: Path, monkeypatch) -> None:
    """Past protobuf's 2 GiB limit a model cannot go to ORT as bytes: check() hands it over by path
    (shown here with the limit lowered)."""
    import onnx_sparsify.check as check_module
    import onnx_sparsify.model_io as model_io

    model = _model(random_sparse_weight(np.random.default_rng(7), (16, 8, 3, 3), 0.8))
    rewritten, _ = onnx_sparsify.sparsify(model, min_sparsity=0)
    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 1000)
    sources = []
    real = ort.InferenceSession

    def spy(source, *args, **kwargs):
        sources.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)  # check() imports onnxruntime when it runs
    before = rewritten.SerializeToString()
    result = check_module.check(model, rewritten)
    assert result.passed
    assert sources and all(isinstance(s, str) for s in sources)
    assert rewritten.SerializeToString() == before  # check() does not touch the caller's models


def test_second_run_with_external_data_into_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    """Relative paths, the current directory the output's folder: the second run overwrites
    the first's model and data (onnx's own check looked for the data file relative to the
    current directory and refused with "External data file exists")."""
    weight = random_sparse_weight(np.random.default_rng(0), (64, 8, 3, 3), 0.9)
    src = tmp_path / "in" / "model.onnx"
    src.parent.mkdir()
    onnx.save(_model(weight), src, save_as_external_data=True, location="weights.bin", size_threshold=0)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    for _ in range(2):
        assert cli.main([str(src), "-o", "sparse.onnx", "--min-sparsity", "0", "-q"]) == cli.EXIT_OK
        assert sorted(p.name for p in out.iterdir()) == ["sparse.onnx", "sparse.onnx.data"]
    x = np.random.default_rng(1).standard_normal((1, 8, 4, 4)).astype(np.float32)
    expected = session(_model(weight), plugin=False).run(None, {"x": x})[0]
    actual = session(onnx.load(out / "sparse.onnx"), plugin=True).run(None, {"x": x})[0]
    assert rel_l2(actual, expected) < 1e-5


@pytest.mark.parametrize(
    "key, value", [("length", 10**18), ("offset", 10**19), ("offset", 10**6)], ids=["length", "offset", "past_end"]
)
def test_external_data_beyond_its_file_is_named(tmp_path: Path, key: str, value: int, caplog) -> None:
    """An offset or length past the end of the data file: exit 3 and one line naming the tensor,
    the file and its size (a huge length failed with a bare MemoryError, a huge offset with
    "cannot fit 'int' into an offset-sized integer")."""
    weight = random_sparse_weight(np.random.default_rng(0), (4, 2, 1, 1), 0.5)
    src = tmp_path / "model.onnx"
    onnx.save(_model(weight), src, save_as_external_data=True, location="w.bin", size_threshold=0)
    model = onnx.load(src, load_external_data=False)
    info = {e.key: e for e in model.graph.initializer[0].external_data}
    entry = info.get(key) or model.graph.initializer[0].external_data.add()
    entry.key, entry.value = key, str(value)
    src.write_bytes(model.SerializeToString())
    size = (tmp_path / "w.bin").stat().st_size
    assert cli.main([str(src), "-o", str(tmp_path / "o.onnx"), "--min-sparsity", "0", "-q"]) == cli.EXIT_INPUT
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "tensor 'w'" in line and f"{key} {value}" in line and f"beyond the end of w.bin ({size} bytes)" in line
    assert not (tmp_path / "o.onnx").exists()
