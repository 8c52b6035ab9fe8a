"""Building SparseConv nodes and their CSR tensors."""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import helper

from . import epilogue as _epilogue
from ._contract import DOMAIN, MAX_ATTRIBUTE_VALUE, OP_TYPE, OP_VERSION
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
    if hint and hint_fits(hint, attributes):
        attributes["input_shape_hint"] = hint
    return helper.make_node(
        OP_TYPE, inputs, list(conv.output), name=name if name is not None else conv.name, domain=DOMAIN, **attributes
    )


def input_shape_hint(shape: Sequence[int | str] | None) -> list[int] | None:
    """SparseConv's input_shape_hint for X of this shape: its sizes resolved (shapes.resolve_shape:
    an unknown batch as 1), None unless every other size is known."""
    return resolve_shape(shape) if shape and len(shape) >= 3 else None


def hint_fits(hint: Sequence[int], attributes: dict) -> bool:
    """Whether the plugin can plan for X of shape `hint` under these SparseConv attributes: the
    values within its bound (MAX_ATTRIBUTE_VALUE), the channels group x in_channels_per_group, and
    on every spatial axis a padded input at least as long as the dilated kernel. A hint that
    fails is not written (the plugin ignores a hint it cannot plan for; one beyond its bound it
    refuses)."""
    kernel = list(attributes["kernel_shape"])
    k = len(kernel)
    if len(hint) != k + 2 or not all(1 <= d <= MAX_ATTRIBUTE_VALUE for d in hint):
        return False
    if hint[1] != attributes.get("group", 1) * attributes["in_channels_per_group"]:
        return False
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return True  # every input size gives an output of at least 1
    pads = list(attributes.get("pads", [0] * 2 * k)) if auto_pad == "NOTSET" else [0] * 2 * k
    dilations = list(attributes.get("dilations", [1] * k))
    return all(hint[2 + i] + pads[i] + pads[i + k] >= (kernel[i] - 1) * dilations[i] + 1 for i in range(k))


def ensure_domain(model: onnx.ModelProto) -> None:
    """Adds SparseConv's domain to the model's opset imports when missing."""
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OP_VERSION))
