"""onnx-sparsify's benchmark harness: SparseConv (plugin) against ONNX Runtime's dense Conv,
single layers and whole networks, in one process with the same session options.

    python -m benchmarks --quick            # a few minutes
    python -m benchmarks --full             # everything, including the sweeps and networks
"""
