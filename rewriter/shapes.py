"""Shapes with unknown sizes, resolved one way everywhere: an unknown batch (the first size)
counts as 1; any other unknown size leaves the shape unknown. (The plugin resolves a planned
input the same way: PlannedInputShape in ort_plugin/kernels/conv_params.h.)"""

from __future__ import annotations

from collections.abc import Sequence


def known_size(dim: object) -> bool:
    """Whether `dim` is a known size: an int of at least 1 (not a symbol, None or 0)."""
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0


def resolve_shape(shape: Sequence[int | str | None] | None) -> list[int] | None:
    """`shape`'s sizes with an unknown batch as 1; None when the shape itself is unknown or a
    size other than the batch is. A scalar's shape ([]) is known."""
    if shape is None:
        return None
    sizes = list(shape)
    if not sizes:
        return []
    if not all(known_size(d) for d in sizes[1:]):
        return None
    return [sizes[0] if known_size(sizes[0]) else 1, *sizes[1:]]


def first_unknown_axis(shape: Sequence[int | str | None]) -> int | None:
    """The first axis after the batch whose size is unknown, or None."""
    return next((axis for axis, d in enumerate(shape) if axis > 0 and not known_size(d)), None)
