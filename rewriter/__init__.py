"""onnx-sparsify: run pruned convolutional networks faster in ONNX Runtime.

The package ships an ONNX Runtime custom-op library executing ``SparseConv`` (a Conv whose
weight is stored as CSR) and ``SparseQLinearConv`` (its int8 form), and the tools that rewrite a
model's sparse Convs into them.
"""

from ._contract import DOMAIN, OP_TYPE, OP_VERSION, Q_OP_TYPE
from ._plugin import build_info, library_path, session_options
from ._version import __version__
from .conv_to_sparse import sparse_conv_node
from .csr import CsrWeight, csr_to_dense, dense_to_csr
from .model_io import MalformedModelError, ModelLoadError, ModelSaveError, load_model, save_model
from .pruning import prune_convs
from .quantized import QuantizedLayer, sparsify_quantized
from .report import CheckResult, LayerReport, Report
from .rewrite import sparsify

__all__ = [
    "DOMAIN",
    "OP_TYPE",
    "OP_VERSION",
    "Q_OP_TYPE",
    "QuantizedLayer",
    "CheckResult",
    "CsrWeight",
    "LayerReport",
    "MalformedModelError",
    "ModelLoadError",
    "ModelSaveError",
    "Report",
    "__version__",
    "build_info",
    "csr_to_dense",
    "dense_to_csr",
    "library_path",
    "load_model",
    "prune_convs",
    "save_model",
    "session_options",
    "sparse_conv_node",
    "sparsify",
    "sparsify_quantized",
]
