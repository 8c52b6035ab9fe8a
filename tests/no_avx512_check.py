"""Run under `valgrind --tool=none`, whose virtual CPU has no AVX-512 (tests/test_valgrind.py):
the plugin must dispatch to its AVX2 variant on its own and give ORT's answers there with both
strategies (compiled loops, generated AVX2 code), on layers whose rows fill whole tiles, and with
its default strategy on a third-party model rewritten end to end.

usage: python no_avx512_check.py [MODEL.onnx INPUT_SHAPE]   (INPUT_SHAPE like 1,3,48,192)
Prints one line per check; exit 0 when all agree, 1 otherwise.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import onnx_sparsify
from isa import STRATEGIES, STRATEGY_ENV
from models import (
    conv_model,
    params_for,
    random_sparse_weight,
    rel_l2,
    run_nan_prefilled,
    session,
    sparse_conv_from_dense,
)
from onnx_sparsify import _core
from onnx_sparsify.check import check
from onnx_sparsify.layer_models import qlinear_conv_model, sparse_qlinear_conv_model

# (x_shape, w_shape, attrs): whole 128-position tiles, padding, strides, groups, the plane path.
LAYERS = [
    ((1, 3, 2, 128), (4, 3, 1, 1), {}),
    ((1, 8, 16, 256), (16, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 8, 17, 130), (8, 8, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 16, 20, 64), (16, 4, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
    ((1, 16, 40, 40), (16, 1, 3, 3), {"group": 16, "pads": [1, 1, 1, 1]}),
]


def check_layers() -> bool:
    ok = True
    rng = np.random.default_rng(0)
    for x_shape, w_shape, attrs in LAYERS:
        # No epilogue; Clip; and the vector exp, tanh and erfc through a chain and Gelu's tanh form.
        for activation in (None, "Clip", "Mish,HardSigmoid,PRelu,Clip", "GeluTanh"):
            params = params_for(activation)
            weight = random_sparse_weight(rng, w_shape, 0.8)
            bias = rng.standard_normal(w_shape[0]).astype(np.float32)
            x = rng.standard_normal(x_shape).astype(np.float32)
            expected = session(conv_model(x_shape, weight, bias, attrs, activation, params), plugin=False).run(
                None, {"x": x}
            )[0]
            model = sparse_conv_from_dense(x_shape, weight, bias, attrs, activation, params)
            actual = run_nan_prefilled(session(model, plugin=True), x, expected.shape)
            err = rel_l2(actual, expected) if not np.isnan(actual).any() else float("inf")
            ok &= err <= 1e-5
            print(f"layer x={x_shape} w={w_shape} {attrs} {activation}: relative L2 {err:.2e}")
    return ok


def check_quantized() -> bool:
    """SparseQLinearConv on this CPU's default int8 kernel (the portable one without AVX-512)
    against the exact arithmetic (quantization.h: exact int32 sums, float requantization). ORT's
    own QLinearConv is printed beside it: without VNNI its uint8 x int8 path adds pairs of
    products in saturating int16 (vpmaddubsw) and leaves the exact values on some elements."""
    from test_qlinear import _case, _ort_int8, _session

    ok = True
    for x_type, w_type in (("uint8", "int8"), ("int8", "int8")):
        rng = np.random.default_rng(1)
        x_shape, w_shape, attrs = (1, 8, 12, 20), (12, 8, 3, 3), {"pads": [1, 1, 1, 1]}
        x, w_q, bias, q = _case(rng, x_shape, w_shape, attrs, x_type, w_type, True)
        sums = session(conv_model(x_shape, w_q.astype(np.float32), bias.astype(np.float32), attrs), plugin=False).run(
            None, {"x": x.astype(np.float32) - q.x_zero}
        )[0]  # exact in float32 at these sizes
        scale = (np.float32(q.x_scale) * q.w_scale / np.float32(q.y_scale)).astype(np.float32).reshape(1, -1, 1, 1)
        lo, hi = np.iinfo(x_type).min, np.iinfo(x_type).max
        exact = np.clip(np.rint(sums.astype(np.float32) * scale) + q.y_zero, lo, hi).astype(x_type)
        actual = _session(sparse_qlinear_conv_model(x_shape, w_q, bias, attrs, q)).run(None, {"x": x})[0]
        ort_int8 = _ort_int8(qlinear_conv_model(x_shape, w_q, bias, attrs, q), x)
        equal = float((actual == exact).mean())
        ok &= equal == 1.0
        print(
            f"SparseQLinearConv {x_type} x {w_type}: {equal:.2%} of elements exact "
            f"(ORT's QLinearConv here: {float((ort_int8 == exact).mean()):.2%})"
        )
    return ok


def check_model(path: str, shape: list[int]) -> bool:
    """Prunes the model to 90%, rewrites every eligible Conv and compares with ORT's dense run."""
    reference, _ = onnx_sparsify.prune_convs(onnx.load(path), 0.9)
    rewritten, report = onnx_sparsify.sparsify(reference, min_sparsity=0)
    result = check(reference, rewritten, input_shapes={reference.graph.input[0].name: shape}, runs=1)
    print(
        f"model {path}: {report.rewritten} Convs rewritten, relative L2 {result.worst_error:.2e} "
        f"(tolerance {result.tolerance:.2e})"
    )
    return result.passed and report.rewritten > 0


def main() -> int:
    info = onnx_sparsify.build_info()
    isa = info["cpu_isa"]
    print(f"CPU kernel instruction set: {isa}, strategy {info['cpu_strategy']}")
    if isa.startswith("avx512"):
        print("this CPU has AVX-512: run under valgrind --tool=none")
        return 1
    ok = True
    for strategy in STRATEGIES:
        if strategy not in _core.supported_cpu_strategies(isa):
            print(f"strategy {strategy}: not run on this machine")
            ok = False
            continue
        print(f"strategy {strategy}:")
        os.environ[STRATEGY_ENV] = strategy
        ok &= check_layers()
    del os.environ[STRATEGY_ENV]
    ok &= check_quantized()
    if len(sys.argv) == 3:
        ok &= check_model(sys.argv[1], [int(d) for d in sys.argv[2].split(",")])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
