"""The SparseConv operator contract (docs/operator.md), read from the compiled kernels (_core) so
that it has one definition: ort_plugin/kernels/contract.h (domain, op, version, step limit) and
the epilogue's step table in epilogue.cc. Importing _core does not import onnxruntime."""

from __future__ import annotations

from . import _core

DOMAIN: str = _core.DOMAIN
OP_TYPE: str = _core.OP_TYPE
OP_VERSION: int = _core.OP_VERSION
Q_OP_TYPE: str = _core.Q_OP_TYPE  # SparseQLinearConv, the quantized form (same domain and version)

# The fused epilogue's steps: name -> the defaults of its activation_params (their number is the
# number the step takes; the float32 values the kernel uses, Clip's as -inf and inf). PRelu takes
# none: its slopes are the attribute activation_slopes. `activation` names up to
# MAX_EPILOGUE_STEPS of them, comma-separated.
ACTIVATIONS: dict[str, tuple[float, ...]] = {str(k): tuple(float(v) for v in d) for k, d in _core.ACTIVATIONS.items()}
MAX_EPILOGUE_STEPS: int = int(_core.MAX_EPILOGUE_STEPS)

# The bounds the plugin checks SparseConv's attributes against (conv_params.h): any attribute
# value (kernel_shape, strides, dilations, pads, group, in_channels_per_group, input_shape_hint)
# at most MAX_ATTRIBUTE_VALUE, a dilated kernel's extent (kernel - 1) x dilation below
# MAX_DILATED_EXTENT. The rewriter never writes a node beyond them.
MAX_ATTRIBUTE_VALUE: int = int(_core.MAX_ATTRIBUTE_VALUE)
MAX_DILATED_EXTENT: int = int(_core.MAX_DILATED_EXTENT)
