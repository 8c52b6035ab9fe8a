"""The SparseConv operator contract (docs/operator.md). The C++ side keeps the same values in
ort_plugin/kernels/contract.h; tests check that the two agree."""

DOMAIN = "org.onnx_sparsify"
OP_TYPE = "SparseConv"
OP_VERSION = 1

ACTIVATIONS = (
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "SiLU",
    "Tanh",
    "Gelu",
    "GeluTanh",
)
