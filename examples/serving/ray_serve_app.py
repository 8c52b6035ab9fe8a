"""Serve a rewritten model with Ray Serve, the plugin registered in every replica.

    python -m pip install "ray[serve]"
    python examples/serving/ray_serve_app.py small_cnn.sparse.onnx --replicas 2 --port 8000

Each replica opens its own ONNX Runtime session with ``onnx_sparsify.session_options()``, so the
custom-op library is loaded in every replica process, wherever Ray places it (every node needs
onnx-sparsify installed). A request is a JSON object mapping each model input to a nested list;
the answer maps each output to a nested list:

    curl -s -X POST http://127.0.0.1:8000/ -d '{"image": [[[[0.0, ...]]]]}'

The server listens on 127.0.0.1 unless --host says otherwise, and shuts Serve and Ray down on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 0.5})
class SparseModel:
    """One replica: one ONNX Runtime session with the onnx-sparsify plugin registered."""

    def __init__(self, model_path: str, threads: int = 1) -> None:
        import onnx_sparsify
        import onnxruntime as ort

        options = onnx_sparsify.session_options()  # registers the SparseConv library
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.type) for i in self.session.get_inputs()]

    def infer(self, inputs: dict) -> dict:
        import numpy as np

        dtypes = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
        feed = {name: np.asarray(inputs[name], dtype=dtypes.get(kind, np.float32)) for name, kind in self.inputs}
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, (out.tolist() for out in self.session.run(names, feed))))

    async def __call__(self, request) -> dict:
        body = await request.json()
        missing = sorted({name for name, _ in self.inputs} - set(body))
        if missing:
            from starlette.responses import JSONResponse

            return JSONResponse({"error": f"missing inputs {missing}"}, status_code=400)
        return {"outputs": self.infer(body), "replica": os.getpid()}


def app(model_path: str, replicas: int = 2, threads: int = 1, cpus_per_replica: float = 0.5):
    """The Serve application: `replicas` copies of the model, each with `threads` ORT threads,
    each reserving `cpus_per_replica` of Ray's CPUs."""
    return SparseModel.options(num_replicas=replicas, ray_actor_options={"num_cpus": cpus_per_replica}).bind(
        os.path.abspath(model_path), threads
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model rewritten by onnx-sparsify")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per replica")
    parser.add_argument("--cpus-per-replica", type=float, default=0.5, help="Ray CPUs each replica reserves")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report sent anywhere
    import ray

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # A local Ray instance on the loopback interface; on a cluster, serve.run(app(...)) there.
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        application = app(args.model, args.replicas, args.threads, args.cpus_per_replica)
        serve.run(application, name="onnx_sparsify", route_prefix="/")
        print(f"ready: http://{args.host}:{args.port}/ ({args.replicas} replicas)", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
