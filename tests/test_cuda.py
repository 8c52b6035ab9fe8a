"""SparseConv on the CUDA execution provider against ORT's dense Conv on the CPU (and on CUDA
where available). Runs only where onnxruntime has the CUDA execution provider, the plugin was
built with CUDA, and a GPU is present.

A test here must not be able to pass on the CPU: the sessions are created with the CPU
execution provider's fallback disabled (ORT then refuses to create a session that would place
any node on the CPU), and a profile of the run shows which execution provider ran each
SparseConv node."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx_sparsify
import onnxruntime as ort
import pytest
from models import ACTIVATIONS, conv_model, dense_reference, random_sparse_weight, rel_l2, sparse_conv_from_dense
from onnx_sparsify import _core
from onnx_sparsify.autotune import CUDA_EP, cuda_unavailable_reason
from test_conformance import CASES

# Why these tests cannot run here, if they cannot: the reason --autotune --provider cuda gives.
NO_CUDA = cuda_unavailable_reason()


pytestmark = pytest.mark.skipif(NO_CUDA is not None, reason=NO_CUDA or "")


def _cuda_session(model, profile_dir: Path | None = None) -> ort.InferenceSession:
    options = onnx_sparsify.session_options()
    # Without this, ORT places nodes the CUDA EP does not take on the CPU EP, which it always
    # adds; with it, creating such a session fails.
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "cuda_profile")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=[CUDA_EP])
    assert session.get_providers() == [CUDA_EP]
    return session


def _run_on_cuda(model, feeds: dict, profile_dir: Path) -> list:
    """Runs the model on the CUDA EP alone and checks, from the run's profile, that the CUDA EP
    ran every SparseConv node."""
    session = _cuda_session(model, profile_dir)
    outputs = session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e["args"] for e in events if e.get("cat") == "Node" and "op_name" in e.get("args", {})]
    providers = [n.get("provider") for n in nodes if n["op_name"] == onnx_sparsify.OP_TYPE]
    assert providers and set(providers) == {CUDA_EP}, f"SparseConv ran on {providers or 'nothing'}; nodes: {nodes}"
    return outputs


@pytest.mark.parametrize("x_shape,w_shape,attrs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("sparsity", [0.0, 0.9, 1.0])
@pytest.mark.parametrize("activation", [None, "HardSwish"])
def test_cuda_matches_dense(x_shape, w_shape, attrs, sparsity, activation, tmp_path) -> None:
    rng = np.random.default_rng(0)
    weight = random_sparse_weight(rng, w_shape, sparsity, empty_rows=1)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    x = rng.standard_normal(x_shape).astype(np.float32)
    params = ACTIVATIONS.get(activation, ()) if activation else ()
    expected = dense_reference(conv_model(x_shape, weight, bias, attrs, activation, params), x)
    model = sparse_conv_from_dense(x_shape, weight, bias, attrs, activation, params)
    actual = _run_on_cuda(model, {"x": x}, tmp_path)[0]
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
