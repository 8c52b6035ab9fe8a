"""Loading and saving models safely: external data only from inside the model's folder, every
tensor checked as ONNX Runtime checks it before its value is used, outputs staged next to their
final path and moved into place only when complete, IR versions ONNX Runtime reads."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from onnx import external_data_helper, numpy_helper

log = logging.getLogger(__name__)

# Newest IR version every supported ONNX Runtime (1.21 on) reads.
MAX_IR_VERSION = 10
# Protobuf cannot serialize a message over 2 GiB; stay clear of it.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


class ModelLoadError(Exception):
    """The input cannot be used: missing, unreadable, not ONNX, unsafe or unsupported."""


class MalformedModelError(ModelLoadError):
    """The model breaks a rule ONNX Runtime enforces when it loads one (a tensor whose data does
    not match its dims or type, a Conv attribute out of range); the message names the node or
    tensor."""


class ModelSaveError(Exception):
    """The output cannot be written."""


def every_tensor(message: Message) -> Iterator[onnx.TensorProto]:
    """Every TensorProto inside a protobuf message, wherever it sits: initializers, sparse
    initializers' values and indices, any attribute's `t` / `tensors` / sparse tensors whatever
    its declared type, in every graph, subgraph, function and training graph."""
    for descriptor, value in message.ListFields():
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        items = [value] if isinstance(value, Message) else value  # ONNX's messages have no map fields
        for item in items:
            if descriptor.message_type.full_name == "onnx.TensorProto":
                yield item
            else:
                yield from every_tensor(item)


# The repeated field that holds a tensor's values when it has no raw_data, and bytes per entry.
_TYPED_FIELDS = {"float_data": 4, "int32_data": 4, "int64_data": 8, "double_data": 8, "uint64_data": 8}


def _stored_bytes(tensor: onnx.TensorProto) -> int:
    """Bytes of one tensor's data, external or not; never fails on a malformed tensor."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        length = next((e.value for e in tensor.external_data if e.key == "length"), "0")
        return int(length) if length.isdigit() else 0
    if tensor.raw_data:
        return len(tensor.raw_data)
    return sum(len(getattr(tensor, name)) * size for name, size in _TYPED_FIELDS.items()) + sum(
        len(s) for s in tensor.string_data
    )


def tensor_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all tensor data in the model, external or not."""
    return sum(_stored_bytes(t) for t in every_tensor(model))


def _type_name(data_type: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(data_type)
    except ValueError:
        return str(data_type)


def tensor_value(tensor: onnx.TensorProto, where: str = "") -> np.ndarray:
    """The tensor's value, after the checks ONNX Runtime makes when it loads a model. A tensor
    that fails them raises MalformedModelError, whose message starts with `where` (by default
    "tensor 'NAME'"), instead of numpy's or onnx's own exceptions."""
    where = where or f"tensor '{tensor.name}'"
    dims = list(tensor.dims)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise MalformedModelError(f"{where}: its data is in an external file that was not loaded")
    if any(d < 0 for d in dims):
        raise MalformedModelError(f"{where}: its dims {dims} include a negative size")
    try:
        np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except (KeyError, TypeError, ValueError):
        raise MalformedModelError(f"{where}: unknown data type {tensor.data_type}") from None
    try:
        value = numpy_helper.to_array(tensor)
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, MemoryError):
        value = None
    if value is None or list(value.shape) != dims:
        if tensor.raw_data:
            stored = f"{len(tensor.raw_data)} bytes"
        else:
            stored = f"{sum(len(getattr(tensor, n)) for n in _TYPED_FIELDS) + len(tensor.string_data)} values"
        raise MalformedModelError(
            f"{where}: its data ({stored}) does not match its dims {dims} and type {_type_name(tensor.data_type)}"
        )
    return value


def _external_info(tensor: onnx.TensorProto) -> tuple[str, int, int | None]:
    """(location, offset, length) of an external tensor; ModelLoadError if they make no sense."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    try:
        offset = int(info.get("offset") or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError:
        raise ModelLoadError(f"tensor '{tensor.name}': external data offset or length is not a number") from None
    if offset < 0 or (length is not None and length < 0):
        raise ModelLoadError(f"tensor '{tensor.name}': negative external data offset or length")
    return location, offset, length


def _external_file(tensor: onnx.TensorProto, folder: Path) -> Path:
    """The file holding an external tensor's data, symlinks resolved; ModelLoadError unless it is
    a file inside `folder` (itself resolved)."""
    location, _, _ = _external_info(tensor)
    target = (folder / location).resolve()
    if not location or Path(location).is_absolute() or folder not in target.parents:
        raise ModelLoadError(
            f"tensor '{tensor.name}' points its external data at '{location}', outside the model's folder; "
            "refusing to read it"
        )
    if not target.is_file():
        problem = "is not a regular file" if target.exists() else "does not exist"
        raise ModelLoadError(f"tensor '{tensor.name}': external data file '{location}' {problem}")
    _check_extent(tensor, target)
    return target


def _check_extent(tensor: onnx.TensorProto, target: Path) -> None:
    """ModelLoadError, naming the tensor, the file and its size, unless the tensor's offset and
    length lie inside the file (a huge length or offset would otherwise fail in read or seek
    with a message that says nothing)."""
    _, offset, length = _external_info(tensor)
    try:
        size = target.stat().st_size
    except OSError as e:
        raise ModelLoadError(f"tensor '{tensor.name}': cannot read {target.name} ({e.strerror})") from None
    end = offset + (length or 0)
    if offset > size or end > size:
        span = f"offset {offset}" + (f", length {length}" if length is not None else "")
        raise ModelLoadError(
            f"tensor '{tensor.name}': its external data ({span}) lies beyond the end of {target.name} ({size} bytes)"
        )


def _read_external(tensor: onnx.TensorProto, target: Path) -> None:
    """Moves an external tensor's data into the tensor."""
    _, offset, length = _external_info(tensor)
    try:
        with open(target, "rb") as f:
            f.seek(offset)
            data = f.read(-1 if length is None else length)
    except OSError as e:
        raise ModelLoadError(f"tensor '{tensor.name}': cannot read {target.name} ({e.strerror})") from None
    if length is not None and len(data) != length:
        raise ModelLoadError(
            f"tensor '{tensor.name}': {target.name} holds {len(data)} of the {length} bytes at offset {offset}"
        )
    tensor.raw_data = data
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]


@dataclass
class LoadedModel:
    model: onnx.ModelProto
    external_data: bool  # the file kept some tensors outside it
    external_files: frozenset[Path] = field(default_factory=frozenset)  # those files, resolved


def _load_external_data(model: onnx.ModelProto, folder: Path) -> frozenset[Path]:
    """Checks every external tensor's file first (nothing is read if one is unsafe), then reads them."""
    folder = folder.resolve()
    external = [t for t in every_tensor(model) if t.data_location == onnx.TensorProto.EXTERNAL]
    targets = [_external_file(t, folder) for t in external]
    for tensor, target in zip(external, targets):
        _read_external(tensor, target)
    return frozenset(targets)


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Reads an ONNX model and its external data (only from files inside its folder)."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a folder, not an ONNX file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read it ({e.strerror})") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError:
        raise ModelLoadError(f"{path}: not an ONNX model (protobuf parse failed)") from None
    if not model.HasField("graph") or not model.opset_import:
        raise ModelLoadError(f"{path}: not an ONNX model (no graph or no opset_import)")
    files = _load_external_data(model, path.parent)
    return LoadedModel(model, bool(files), files)


def check_opsets(model: onnx.ModelProto) -> None:
    """Rejects models whose default-domain opset this onnx release does not know."""
    newest = onnx.defs.onnx_opset_version()
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelLoadError("the model imports no ONNX (default domain) opset")
    if not 1 <= versions[0] <= newest:
        raise ModelLoadError(f"unsupported ONNX opset {versions[0]} (this onnx release knows 1 to {newest})")


def external_data_name(path: str | os.PathLike) -> str:
    """The file name save_model gives a model's external data: `<output name>.data`."""
    return f"{Path(path).name}.data"


def _write(model: onnx.ModelProto, path: Path, external_data: bool) -> None:
    """Writes the model to `path` (and its data to `<name>.data` beside it)."""
    if external_data:
        # onnx's own save_as_external_data refuses a `location` that exists relative to the
        # current directory (not to the model's folder), so a second run into a folder that is
        # the current directory would fail: convert under onnx's temporary name, then point the
        # tensors at ours, which resolves inside the staging folder.
        external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True, size_threshold=1024)
        for tensor in every_tensor(model):
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                external_data_helper.set_external_data(tensor, external_data_name(path))
        onnx.save_model(model, str(path))
    else:
        path.write_bytes(model.SerializeToString())


def cap_ir_version(model: onnx.ModelProto) -> None:
    """Lowers the model's IR version to MAX_IR_VERSION, which every supported ORT reads."""
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)


class StagedModel:
    """A model written into a temporary folder inside its destination's folder, under its final
    name (and its data under `<name>.data`, the name the model refers to), then moved into place
    by commit(). Leaving the `with` block without commit() removes everything it wrote, so a
    failed run leaves nothing at the destination and a file already there untouched."""

    def __init__(self, model: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> None:
        self.destination = Path(path)
        cap_ir_version(model)
        self.external_data = tensor_bytes(model) > EXTERNAL_DATA_THRESHOLD if external_data is None else external_data
        self._model = model
        self._folder: Path | None = None

    @property
    def path(self) -> Path:
        """Where the staged model is, until commit()."""
        if self._folder is None:
            raise RuntimeError("the model is not staged yet")
        return self._folder / self.destination.name

    def __enter__(self) -> StagedModel:
        parent = self.destination.parent
        if not parent.is_dir():
            raise ModelSaveError(f"{self.destination}: folder {parent} does not exist")
        if self.destination.is_dir():
            raise ModelSaveError(f"{self.destination}: is a folder")
        try:
            self._folder = Path(tempfile.mkdtemp(prefix=f".{self.destination.name}.", suffix=".partial", dir=parent))
            _write(self._model, self.path, self.external_data)
        except OSError as e:
            self.__exit__(None, None, None)
            raise ModelSaveError(f"{self.destination}: cannot write it ({e.strerror or e})") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def commit(self) -> None:
        """Moves the data file (when onnx wrote one: small tensors stay inline), then the model,
        into place."""
        data = external_data_name(self.destination)
        try:
            if (self.path.parent / data).exists():
                os.replace(self.path.parent / data, self.destination.parent / data)
            os.replace(self.path, self.destination)
        except OSError as e:
            raise ModelSaveError(f"{self.destination}: cannot write it ({e.strerror})") from None

    def __exit__(self, *exc_info) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def save_model(model: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> None:
    """Writes the model; with external data (one file, `<output name>.data`, next to it) when
    asked, or when it would exceed protobuf's 2 GiB limit. Never writes IR above MAX_IR_VERSION.
    The files appear complete or not at all. With external data, onnx leaves `model`'s tensors
    pointing at the data file instead of holding their data."""
    with StagedModel(model, path, external_data) as staged:
        staged.commit()
