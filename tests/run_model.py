"""Runs one model through the plugin in a child process, so a crash cannot take pytest down.

usage: python run_model.py MODEL X_SHAPE   (X_SHAPE like 1,3,8,8)
exit 0: ran; exit 3: ONNX Runtime reported an error (printed on stdout); anything else: a crash.
"""

import sys

import numpy as np
import onnx_sparsify
import onnxruntime as ort


def main() -> int:
    path, shape = sys.argv[1], [int(d) for d in sys.argv[2].split(",")]
    options = onnx_sparsify.session_options()
    options.log_severity_level = 4
    try:
        sess = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        sess.run(None, {sess.get_inputs()[0].name: x})
    except Exception as e:  # ORT raises a family of exception types; all count as a clean error
        print(f"{type(e).__name__}: {e}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
