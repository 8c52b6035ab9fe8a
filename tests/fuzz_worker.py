"""Runs SparseConv models for the fuzz test (tests/test_fuzz.py) in a process of its own, so that
a crash, an abort or a hang in the plugin cannot take pytest down.

Protocol, over stdin and stdout, one request and one reply at a time: each message is a frame,
an 8-byte little-endian length followed by that many bytes of pickle.

- request: {"model": bytes (a serialized ModelProto), "x": float32 ndarray}
- reply:   {"outcome": "created_error" | "run_error" | "ok",
            "error_type": "module.Class" (errors only), "message": str (errors only),
            "y": ndarray (ok only)}

The worker exits 0 when stdin is closed. It inherits the parent's environment, so variables
such as ONNX_SPARSIFY_CPU_ISA reach the plugin; ONNX_SPARSIFY_FUZZ_PLUGIN selects another build
of the plugin library. File descriptor 1 is pointed at stderr before
ONNX Runtime loads, so nothing the runtime prints can corrupt the protocol stream.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct("<Q")


def read_frame(stream: BinaryIO) -> Any | None:
    """The next message, or None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return pickle.loads(payload)


def write_frame(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def _error(outcome: str, error: BaseException) -> dict[str, Any]:
    kind = type(error)
    return {"outcome": outcome, "error_type": f"{kind.__module__}.{kind.__qualname__}", "message": str(error)}


def run_case(request: dict[str, Any], options: Any) -> dict[str, Any]:
    """Creates a session for the model and runs it on x; any exception becomes an error reply
    (the parent judges whether it is a clean ONNX Runtime error)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(request["model"], options, providers=["CPUExecutionProvider"])
    except Exception as e:  # every failure is reported; the parent classifies it
        return _error("created_error", e)
    try:
        (y,) = sess.run(None, {sess.get_inputs()[0].name: request["x"]})
    except Exception as e:
        return _error("run_error", e)
    return {"outcome": "ok", "y": y}


def session_options() -> Any:
    """Plugin registered, one thread (cases are tiny; threads only add noise), errors only in the
    log. ONNX_SPARSIFY_FUZZ_PLUGIN, when set, names another build of the plugin library to fuzz
    (an older or a sanitizer build) instead of the installed one."""
    import onnx_sparsify
    import onnxruntime as ort

    plugin = os.environ.get("ONNX_SPARSIFY_FUZZ_PLUGIN")
    if plugin:
        options = ort.SessionOptions()
        options.register_custom_ops_library(plugin)
    else:
        options = onnx_sparsify.session_options()
    options.enable_cpu_mem_arena = False  # every tensor its own allocation: overruns show (under ASan)
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def main() -> int:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    options = session_options()
    while (request := read_frame(requests)) is not None:
        write_frame(replies, run_case(request, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
