"""Loading and saving models safely: external data only from inside the model's folder, large
models saved with external data under names the tool chooses, IR versions ONNX Runtime reads."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from .graph_walk import all_tensors

log = logging.getLogger(__name__)

# Newest IR version every supported ONNX Runtime (1.21 on) reads.
MAX_IR_VERSION = 10
# Protobuf cannot serialize a message over 2 GiB; stay clear of it.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


class ModelLoadError(Exception):
    """The input cannot be used: missing, unreadable, not ONNX, unsafe or unsupported."""


class ModelSaveError(Exception):
    """The output cannot be written."""


def tensor_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all tensor data in the model, external or not."""
    total = 0
    for t in all_tensors(model):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            total += int(info.get("length", 0) or 0)
        elif t.raw_data:
            total += len(t.raw_data)
        else:
            count = 1
            for d in t.dims:
                count *= d
            total += count * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize if t.data_type else 0
    return total


def _check_external_locations(model: onnx.ModelProto, base: Path) -> bool:
    """Raises unless every external tensor's file lies inside `base`; True if there are any."""
    base = base.resolve()
    external = False
    for t in all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if not location or Path(location).is_absolute() or base not in target.parents:
            raise ModelLoadError(
                f"tensor '{t.name}' points its external data at '{location}', outside the model's folder; "
                "refusing to read it"
            )
        if not target.is_file():
            raise ModelLoadError(f"tensor '{t.name}': external data file '{location}' does not exist")
        external = True
    return external


@dataclass
class LoadedModel:
    model: onnx.ModelProto
    external_data: bool  # the file kept some tensors outside it


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
    external = _check_external_locations(model, path.parent)
    if external:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    return LoadedModel(model, external)


def check_opsets(model: onnx.ModelProto) -> None:
    """Rejects models whose default-domain opset this onnx release does not know."""
    newest = onnx.defs.onnx_opset_version()
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelLoadError("the model imports no ONNX (default domain) opset")
    if not 1 <= versions[0] <= newest:
        raise ModelLoadError(f"unsupported ONNX opset {versions[0]} (this onnx release knows 1 to {newest})")


def save_model(model: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> None:
    """Writes the model; with external data (one file, `<output name>.data`, next to it) when
    asked, or when it would exceed protobuf's 2 GiB limit. Never writes IR above MAX_IR_VERSION."""
    path = Path(path)
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
    if external_data is None:
        external_data = tensor_bytes(model) > EXTERNAL_DATA_THRESHOLD
    if not path.parent.is_dir():
        raise ModelSaveError(f"{path}: folder {path.parent} does not exist")
    try:
        if external_data:
            data_name = f"{path.name}.data"
            (path.parent / data_name).unlink(missing_ok=True)  # onnx appends to an existing file
            onnx.save_model(
                model,
                str(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_name,
                size_threshold=1024,
            )
        else:
            path.write_bytes(model.SerializeToString())
    except OSError as e:
        raise ModelSaveError(f"{path}: cannot write it ({e.strerror})") from None
