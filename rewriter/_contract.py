"""The SparseConv operator contract (docs/operator.md). The C++ side keeps the same values in
ort_plugin/kernels/contract.h and epilogue.cc; tests check that the two agree."""

import math

DOMAIN = "org.onnx_sparsify"
OP_TYPE = "SparseConv"
OP_VERSION = 1

# The fused epilogue's steps: name -> the defaults of its activation_params (their number is the
# number the step takes). `activation` names up to MAX_EPILOGUE_STEPS of them, comma-separated.
ACTIVATIONS: dict[str, tuple[float, ...]] = {
    "Relu": (),
    "LeakyRelu": (0.01,),
    "Clip": (-math.inf, math.inf),
    "Sigmoid": (),
    "HardSigmoid": (0.2, 0.5),
    "HardSwish": (),
    "SiLU": (),
    "Tanh": (),
    "Gelu": (),
    "GeluTanh": (),
    "QuickGelu": (1.702,),
    "Mish": (),
    "PRelu": (),  # its slopes are the attribute activation_slopes
}
MAX_EPILOGUE_STEPS = 4
