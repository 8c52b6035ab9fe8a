"""The serving examples (examples/serving/): Triton's model configuration, parsed against Triton's
own model-config protobuf (from the `tritonclient` package), and the Ray Serve deployment,
started on this machine on 127.0.0.1 with a few replicas and checked against the dense model.

Their packages are in tests/requirements-serving.txt. Without them the tests skip, except in CI
(the CI environment variable set), where a missing package fails them."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import onnx_sparsify
import onnxruntime as ort
import pytest
from models import rel_l2

ROOT = Path(__file__).resolve().parents[1]
SERVING = ROOT / "examples" / "serving"
TRITON = SERVING / "triton"
CONFIG = TRITON / "model_repository" / "small_cnn_sparse" / "config.pbtxt"
SMALL_CNN = ROOT / "examples" / "small_cnn.onnx"

RAY_REPLICAS = 3
RAY_REQUESTS = 12
RAY_START_TIMEOUT_S = 240  # Ray and three replicas on a busy 2-core machine take ~20 s
RAY_REQUEST_TIMEOUT_S = 30
RAY_STOP_TIMEOUT_S = 60


def _require(module: str, extra: str = "") -> None:
    """Skips when `module` is missing, with the install line; in CI, fails instead."""
    if importlib.util.find_spec(module) is not None:
        return
    message = f"{module} is not installed: python3 -m pip install -r tests/requirements-serving.txt {extra}".strip()
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the serving tests must run)")
    pytest.skip(message)


def _pruned_and_sparse(tmp_path: Path) -> tuple[Path, Path]:
    """examples/small_cnn.onnx pruned to 90% zeros (the dense baseline) and its rewrite."""
    pruned, _ = onnx_sparsify.prune_convs(onnx.load(str(SMALL_CNN)), 0.9)
    sparse, report = onnx_sparsify.sparsify(pruned, measure=False)  # what serving runs, not whether it pays
    assert report.rewritten == report.convs == 4
    dense_path, sparse_path = tmp_path / "pruned.onnx", tmp_path / "pruned.sparse.onnx"
    onnx.save(pruned, str(dense_path))
    onnx_sparsify.save_model(sparse, str(sparse_path))
    return dense_path, sparse_path


def _dense_run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": x})[0]


# --- Triton ---------------------------------------------------------------------------------


def _triton_config():
    _require("tritonclient", "(tritonclient[grpc] carries model_config_pb2)")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    # Parse rejects unknown fields, misspelt enum values and wrong types, as Triton does.
    return text_format.Parse(CONFIG.read_text(), model_config_pb2.ModelConfig()), model_config_pb2


def test_triton_config_parses_against_tritons_model_config_proto():
    config, pb = _triton_config()
    assert config.name == CONFIG.parent.name  # Triton requires the folder's name
    assert config.backend == "onnxruntime"
    assert config.model_operations.op_library_filename == ["/opt/onnx_sparsify/libonnx_sparsify_ort.so"]
    assert [g.kind for g in config.instance_group] == [pb.ModelInstanceGroup.KIND_CPU]
    assert config.parameters["intra_op_thread_count"].string_value.isdigit()


def test_triton_config_matches_the_rewritten_model(tmp_path):
    """The config's inputs and outputs are the model's (names, types, dims after the batch
    dimension), and the model written by prepare_repository.py runs with the library registered
    by path, the way Triton's ONNX Runtime backend registers op_library_filename."""
    config, pb = _triton_config()
    sys.path.insert(0, str(TRITON))
    try:
        import prepare_repository
    finally:
        sys.path.remove(str(TRITON))
    model_path = prepare_repository.prepare(SMALL_CNN, 0.9, tmp_path)
    assert (tmp_path / "libonnx_sparsify_ort.so").is_file() and (tmp_path / "Dockerfile").is_file()
    assert (model_path.parents[1] / "config.pbtxt").read_text() == CONFIG.read_text()
    model = onnx.load(str(model_path))
    assert any(n.op_type == onnx_sparsify.OP_TYPE for n in model.graph.node)

    def described(values):
        return [
            (v.name, v.type.tensor_type.elem_type, [d.dim_value for d in v.type.tensor_type.shape.dim][1:])
            for v in values
        ]

    fp32 = onnx.TensorProto.FLOAT
    assert all(t.data_type == pb.TYPE_FP32 for t in [*config.input, *config.output])
    assert described(model.graph.input) == [(t.name, fp32, list(t.dims)) for t in config.input]
    assert described(model.graph.output) == [(t.name, fp32, list(t.dims)) for t in config.output]
    assert all(v.type.tensor_type.shape.dim[0].dim_param for v in [*model.graph.input, *model.graph.output])

    options = ort.SessionOptions()
    options.register_custom_ops_library(str(tmp_path / "libonnx_sparsify_ort.so"))
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((config.max_batch_size, 3, 64, 64)).astype(np.float32)
    pruned, _ = onnx_sparsify.prune_convs(onnx.load(str(SMALL_CNN)), 0.9)
    onnx.save(pruned, str(tmp_path / "pruned.onnx"))
    assert rel_l2(session.run(["logits"], {"image": x})[0], _dense_run(tmp_path / "pruned.onnx", x)) < 1e-4


# --- Ray Serve --------------------------------------------------------------------------------


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=RAY_REQUEST_TIMEOUT_S) as response:
        return json.load(response)


def _stop(server: subprocess.Popen) -> None:
    """SIGINT (the example shuts Serve and Ray down), then the whole process group if needed."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)
    try:
        server.wait(RAY_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    try:  # Ray's own processes (raylet, GCS, workers) share the server's process group
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(10)


@pytest.mark.slow
def test_ray_serve_replicas_answer_like_the_dense_model(tmp_path):
    _require("ray")
    dense_path, sparse_path = _pruned_and_sparse(tmp_path)
    port = _free_loopback_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)  # never join a cluster that happens to be configured
    command = [sys.executable, str(SERVING / "ray_serve_app.py"), str(sparse_path)]
    command += ["--replicas", str(RAY_REPLICAS), "--cpus-per-replica", "0.25"]  # fits a 1-core machine too
    command += ["--host", "127.0.0.1", "--port", str(port)]
    started = time.monotonic()
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in server.stdout:
            log.append(line)
            if line.startswith("ready:"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while not ready.wait(1):
            assert server.poll() is None, "the Ray Serve example exited:\n" + "".join(log[-40:])
            assert time.monotonic() - started < RAY_START_TIMEOUT_S, "not ready in time:\n" + "".join(log[-40:])
        startup_s = time.monotonic() - started

        rng = np.random.default_rng(7)
        replicas = set()
        for i in range(RAY_REQUESTS):
            x = rng.standard_normal((1 + i % 3, 3, 64, 64)).astype(np.float32)
            answer = _post(f"http://127.0.0.1:{port}/", {"image": x.tolist()})
            logits = np.asarray(answer["outputs"]["logits"], dtype=np.float32)
            assert logits.shape == (x.shape[0], 10)
            assert rel_l2(logits, _dense_run(dense_path, x)) < 1e-4
            replicas.add(answer["replica"])
        with pytest.raises(urllib.error.HTTPError) as missing:
            _post(f"http://127.0.0.1:{port}/", {"not_an_input": []})
        assert missing.value.code == 400
        missing.value.close()
        print(f"Ray Serve: ready after {startup_s:.1f} s, {RAY_REQUESTS} requests served by {len(replicas)} replicas")
    finally:
        _stop(server)
        reader.join(10)  # the server's output ends when Ray's processes are gone
        if not reader.is_alive():
            server.stdout.close()
    assert server.returncode is not None
