"""Building SparseConv nodes and their CSR tensors."""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import helper

from . import epilogue as _epilogue
from ._contract import DOMAIN, OP_TYPE, OP_VERSION
from .csr import CsrWeight
from .shapes import resolve_shape

# Conv attributes SparseConv takes over unchanged (kernel_shape and in_channels_per_group are
# always written from W, whose shape CSR no longer carries).
_CONV_ATTRIBUTES = ("strides", "pads", "dilations", "group", "auto_pad")


def conv_attributes(node: onnx.NodeProto) -> dict:
    """The Conv attributes SparseConv takes over, by name (auto_pad as str)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in _CONV_ATTRIBUTES}
    if isinstance(attrs.get("auto_pad"), bytes):
        attrs["auto_pad"] = attrs["auto_pad"].decode()
    return attrs


def sparse_conv_node(
    conv: onnx.NodeProto,
    csr: CsrWeight,
    csr_names: Sequence[str],
    bias: str | None = None,
    activation: str | None = None,
    activation_params: Sequence[float] = (),
    name: str | None = None,
    epilogue: Sequence[_epilogue.Activation] = (),
    residual: str | None = None,
    input_shape: Sequence[int | str] | None = None,
) -> onnx.NodeProto:
    """A SparseConv node equivalent to ``conv`` whose CSR initializers are named ``csr_names``
    (values, column indices, row pointers), optionally fusing one activation (``activation``,
    ``activation_params``) or a chain of epilogue steps (``epilogue``), after adding the tensor
    named ``residual`` (SparseConv's input Z, the output's shape). ``input_shape``, X's shape as
    shape inference resolved it, becomes the attribute input_shape_hint when every size but the
    batch is known, so that the plugin prepares for it even where the model leaves sizes symbolic."""
    values, cols, row_ptr = csr_names
    inputs = [conv.input[0], values, cols, row_ptr] + ([bias] if bias else [])
    if residual:
        inputs = [*inputs, *([""] if not bias else []), residual]
    attributes = conv_attributes(conv)
    attributes["kernel_shape"] = list(csr.kernel_shape)
    attributes["in_channels_per_group"] = csr.in_channels_per_group
    if activation:
        epilogue = [_epilogue.Activation(activation, tuple(activation_params)), *epilogue]
    attributes.update(_epilogue.attributes(epilogue))
    hint = input_shape_hint(input_shape)
    if hint:
        attributes["input_shape_hint"] = hint
    return helper.make_node(
        OP_TYPE, inputs, list(conv.output), name=name if name is not None else conv.name, domain=DOMAIN, **attributes
    )


def input_shape_hint(shape: Sequence[int | str] | None) -> list[int] | None:
    """SparseConv's input_shape_hint for X of this shape: its sizes resolved (shapes.resolve_shape:
    an unknown batch as 1), None unless every other size is known."""
    return resolve_shape(shape) if shape and len(shape) >= 3 else None


def ensure_domain(model: onnx.ModelProto) -> None:
    """Adds SparseConv's domain to the model's opset imports when missing."""
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OP_VERSION))
