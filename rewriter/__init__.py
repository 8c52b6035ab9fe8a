"""onnx-sparsify: run pruned convolutional networks faster in ONNX Runtime.

The package ships an ONNX Runtime custom-op library executing ``SparseConv`` (a Conv whose
weight is stored as CSR) and the tools that rewrite a model's sparse Convs into it.
"""

from ._contract import DOMAIN, OP_TYPE, OP_VERSION
from ._plugin import build_info, library_path, session_options
from ._version import __version__
from .conv_to_sparse import convert_convs, sparse_conv_node
from .csr import CsrWeight, csr_to_dense, dense_to_csr

__all__ = [
    "DOMAIN",
    "OP_TYPE",
    "OP_VERSION",
    "CsrWeight",
    "__version__",
    "build_info",
    "convert_convs",
    "csr_to_dense",
    "dense_to_csr",
    "library_path",
    "session_options",
    "sparse_conv_node",
]
