"""SparseConv on the CUDA execution provider against ORT's dense Conv on the CPU (and on CUDA
where available). Runs only where onnxruntime has the CUDA execution provider and a GPU."""

from __future__ import annotations

import numpy as np
import onnx_sparsify
import onnxruntime as ort
import pytest
from models import ACTIVATIONS, conv_model, dense_reference, random_sparse_weight, rel_l2, sparse_conv_from_dense
from onnx_sparsify import _core
from test_conformance import CASES

HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()
pytestmark = pytest.mark.skipif(
    not (HAS_CUDA_EP and _core.cuda_available()),
    reason="needs onnxruntime-gpu's CUDA execution provider and a CUDA device; neither is on this machine",
)


def _cuda_session(model):
    options = onnx_sparsify.session_options()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CUDAExecutionProvider"])
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    return session


@pytest.mark.parametrize("x_shape,w_shape,attrs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("sparsity", [0.0, 0.9, 1.0])
@pytest.mark.parametrize("activation", [None, "HardSwish"])
def test_cuda_matches_dense(x_shape, w_shape, attrs, sparsity, activation) -> None:
    rng = np.random.default_rng(0)
    weight = random_sparse_weight(rng, w_shape, sparsity, empty_rows=1)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    x = rng.standard_normal(x_shape).astype(np.float32)
    params = ACTIVATIONS.get(activation, ()) if activation else ()
    expected = dense_reference(conv_model(x_shape, weight, bias, attrs, activation, params), x)
    model = sparse_conv_from_dense(x_shape, weight, bias, attrs, activation, params)
    actual = _cuda_session(model).run(None, {"x": x})[0]
    assert rel_l2(actual, expected) <= 1e-5


def test_pybind_cuda_on_device_pointers() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch provides the device arrays here")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    rng = np.random.default_rng(1)
    weight = random_sparse_weight(rng, (16, 8, 3, 3), 0.9)
    csr = onnx_sparsify.dense_to_csr(weight)
    x = torch.randn(2, 8, 20, 20, device="cuda")
    y = torch.full((2, 16, 20, 20), float("nan"), device="cuda")
    _core.sparse_conv_cuda(
        x.data_ptr(),
        list(x.shape),
        y.data_ptr(),
        csr.values,
        csr.col_indices,
        csr.row_ptr,
        attributes={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
        stream=torch.cuda.current_stream().cuda_stream,
    )
    expected = torch.nn.functional.conv2d(x.cpu().double(), torch.from_numpy(weight).double(), padding=1)
    assert rel_l2(y.cpu().numpy(), expected.numpy()) <= 1e-5
