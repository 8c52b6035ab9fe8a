"""Malformed or hostile SparseConv nodes fail with an ORT error naming the node and the problem:
never a crash, a hang or a wrong answer. Each model runs in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from models import sparse_conv_model

RUNNER = Path(__file__).with_name("run_model.py")
I32, I64 = np.int32, np.int64

# A valid 2x(2x3x3) weight: M=2, C=2, kernel 3x3, so columns must be below 18.
VALUES = np.array([1.0, -2.0, 0.5], np.float32)
COLS = np.array([0, 17, 4], I32)
ROW_PTR = np.array([0, 2, 3], I32)
ATTRS = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
X = (1, 2, 6, 6)


def case(expect, values=VALUES, cols=COLS, row_ptr=ROW_PTR, bias=None, attrs=ATTRS, x_shape=X, **kw):
    return dict(expect=expect, values=values, cols=cols, row_ptr=row_ptr, bias=bias, attrs=attrs, x_shape=x_shape, **kw)


CASES = {
    "row_ptr_decreasing": case("decreases", row_ptr=np.array([0, 3, 2], I32), values=VALUES[:2], cols=COLS[:2]),
    "row_ptr_not_from_zero": case("W_row_ptr[0] must be 0", row_ptr=np.array([1, 2, 3], I32)),
    "row_ptr_end_not_nnz": case("ends at 2", row_ptr=np.array([0, 1, 2], I32)),
    "row_ptr_end_beyond_nnz": case("ends at 9", row_ptr=np.array([0, 1, 9], I32)),
    "row_ptr_too_short": case("M+1 >= 2", row_ptr=np.array([0], I32)),
    "cols_length": case("W_col_indices has 2 entries", cols=COLS[:2]),
    "col_negative": case("is negative", cols=np.array([0, -1, 4], I32)),
    "col_out_of_range": case("C/group * prod(kernel_shape)", cols=np.array([0, 18, 4], I32)),
    "col_out_of_range_huge": case("out of range", cols=np.array([0, 2**62, 4], I64), row_ptr=ROW_PTR.astype(I64)),
    "col_out_of_range_symbolic_channels": case(
        "C/group * prod(kernel_shape)", cols=np.array([0, 18, 4], I32), symbolic=(False, True, False, False)
    ),
    "col_duplicate": case("repeats column 17", cols=np.array([17, 17, 4], I32)),
    "index_dtypes_differ": case("same integer type", row_ptr=ROW_PTR.astype(I64)),
    "index_dtype_float": case("int32 or int64", cols=COLS.astype(np.float32), row_ptr=ROW_PTR.astype(np.float32)),
    "values_2d": case("must be 1-D", values=VALUES.reshape(1, 3)),
    "csr_as_graph_inputs": case("must be a constant initializer", csr_as_inputs=True),
    "kernel_shape_missing": case("kernel_shape' is required", attrs={"pads": [1, 1, 1, 1]}),
    "kernel_shape_rank4": case("1, 2 or 3 values", attrs={"kernel_shape": [3, 3, 1, 1]}),
    "kernel_shape_vs_x_rank": case("needs rank 5", attrs={"kernel_shape": [3, 3, 1]}),
    "kernel_shape_zero": case("out of range", attrs={"kernel_shape": [0, 3]}),
    "kernel_shape_overflow": case("out of range", attrs={"kernel_shape": [2**40, 2**40]}),
    "strides_length": case("'strides' has 1 values", attrs={**ATTRS, "strides": [2]}),
    "strides_zero": case("'strides' value 0", attrs={**ATTRS, "strides": [0, 1]}),
    "pads_negative": case("'pads' value -1", attrs={"kernel_shape": [3, 3], "pads": [-1, 0, 0, 0]}),
    "pads_length": case("'pads' has 2 values", attrs={"kernel_shape": [3, 3], "pads": [1, 1]}),
    "dilations_huge": case("out of range", attrs={**ATTRS, "dilations": [2**33, 1]}),
    "auto_pad_unknown": case("auto_pad", attrs={**ATTRS, "auto_pad": "SAME"}),
    "auto_pad_with_pads": case("both set", attrs={**ATTRS, "auto_pad": "SAME_UPPER"}),
    "group_zero": case("'group' must be at least 1", attrs={**ATTRS, "group": 0}),
    "group_not_dividing_channels": case("not divisible by group", x_shape=(1, 3, 6, 6), attrs={**ATTRS, "group": 2}),
    "group_not_dividing_channels_symbolic": case(
        "not divisible by group",
        x_shape=(1, 3, 6, 6),
        attrs={**ATTRS, "group": 2},
        symbolic=(False, True, False, False),
    ),
    "group_not_dividing_outputs": case(
        "not divisible by group",
        x_shape=(1, 3, 6, 6),
        attrs={**ATTRS, "group": 3},
        row_ptr=np.array([0, 1], I32),
        values=VALUES[:1],
        cols=COLS[:1],
    ),
    "kernel_larger_than_padded_input": case(
        "larger than the padded input", x_shape=(1, 2, 1, 6), attrs={"kernel_shape": [3, 3]}
    ),
    "kernel_larger_symbolic_input": case(
        "larger than the padded input",
        x_shape=(1, 2, 1, 6),
        attrs={"kernel_shape": [3, 3]},
        symbolic=(True, True, True, True),
    ),
    "x_spatial_zero_symbolic": case("spatial size 0", x_shape=(1, 2, 0, 6), symbolic=(False, False, True, False)),
    "activation_unknown": case("unknown activation 'Swish'", attrs={**ATTRS, "activation": "Swish"}),
    "activation_params_count": case(
        "takes 1 activation_params", attrs={**ATTRS, "activation": "LeakyRelu", "activation_params": [0.1, 0.2]}
    ),
    "activation_chain_too_long": case("at most 4", attrs={**ATTRS, "activation": "Relu,Relu,Relu,Relu,Relu"}),
    "activation_chain_empty_step": case("unknown activation ''", attrs={**ATTRS, "activation": "Relu,,Tanh"}),
    "activation_chain_params_count": case(
        "takes 3 activation_params", attrs={**ATTRS, "activation": "LeakyRelu,Clip", "activation_params": [0.1, 0.2]}
    ),
    "prelu_without_slopes": case("no activation_slopes", attrs={**ATTRS, "activation": "PRelu"}),
    "prelu_twice": case(
        "more than one PRelu", attrs={**ATTRS, "activation": "PRelu,PRelu", "activation_slopes": [0.1]}
    ),
    "slopes_without_prelu": case("no PRelu step", attrs={**ATTRS, "activation": "Relu", "activation_slopes": [0.1]}),
    "slopes_count": case(
        "activation_slopes has 3 values", attrs={**ATTRS, "activation": "PRelu", "activation_slopes": [0.1, 0.2, 0.3]}
    ),
    "slopes_nan": case(
        "activation_slopes contains NaN", attrs={**ATTRS, "activation": "PRelu", "activation_slopes": [float("nan")]}
    ),
    "activation_params_nan": case(
        "NaN", attrs={**ATTRS, "activation": "Clip", "activation_params": [float("nan"), 1.0]}
    ),
    "strides_wrong_type": case("'strides' must be a list of integers", attrs={**ATTRS, "strides": [1.0, 1.0]}),
    "kernel_shape_floats": case("'kernel_shape' must be a list of integers", attrs={"kernel_shape": [3.0, 3.0]}),
    "pads_scalar": case("'pads' must be a list of integers", attrs={"kernel_shape": [3, 3], "pads": 1}),
    "group_float": case("'group' must be an integer", attrs={**ATTRS, "group": 1.0}),
    "activation_params_string": case(
        "must be a list of numbers", attrs={**ATTRS, "activation": "Clip", "activation_params": "0,6"}
    ),
    "x_channels_vs_weight": case(
        "has 4 channels but the weight expects 2", x_shape=(1, 4, 6, 6), attrs={**ATTRS, "in_channels_per_group": 2}
    ),
    "x_channels_vs_weight_symbolic": case(
        "has 4 channels but the weight expects 2",
        x_shape=(1, 4, 6, 6),
        attrs={**ATTRS, "in_channels_per_group": 2},
        symbolic=(True, True, True, True),
    ),
    "x_channels_vs_weight_grouped": case(
        "has 4 channels but the weight expects 2",
        x_shape=(1, 4, 6, 6),
        attrs={**ATTRS, "group": 2, "in_channels_per_group": 1},
        cols=np.array([0, 8, 4], I32),
        symbolic=(False, True, False, False),
    ),
    "in_channels_per_group_zero": case("'in_channels_per_group' value 0", attrs={**ATTRS, "in_channels_per_group": 0}),
    "columns_beyond_in_channels_per_group": case(
        "C/group * prod(kernel_shape)",
        attrs={**ATTRS, "in_channels_per_group": 1},
        x_shape=(1, 1, 6, 6),
        symbolic=(True, True, True, True),
    ),
    "declared_size_near_2_63": case(
        "overflows", x_shape=(1, 2, 2**63 - 2, 6), attrs={"kernel_shape": [3, 3], "pads": [2, 2, 2, 2]}
    ),
    "same_padding_size_near_2_63": case(
        "overflows", x_shape=(1, 2, 2**63 - 2, 6), attrs={"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}
    ),
    "huge_dilated_kernel_window": case(
        "larger than the padded input",
        attrs={"kernel_shape": [2**24, 2**24], "dilations": [1, 64]},
        cols=np.array([0, 2**40, 4], I64),
        row_ptr=ROW_PTR.astype(I64),
    ),
    "dilated_kernel_extent_2_31": case(
        "exceeds 2^31",
        attrs={"kernel_shape": [2**24, 2**24], "dilations": [1, 2**24]},
        cols=np.array([0, 2**40, 4], I64),
        row_ptr=ROW_PTR.astype(I64),
    ),
    "bias_wrong_length": case("B must", bias=np.ones(3, np.float32)),
    "input_shape_hint_rank": case("must have 4 values", attrs={**ATTRS, "input_shape_hint": [1, 2, 6]}),
    "input_shape_hint_zero": case("out of range", attrs={**ATTRS, "input_shape_hint": [1, 2, 0, 6]}),
    "input_shape_hint_contradicts": case(
        "contradicts X's declared shape",
        attrs={**ATTRS, "input_shape_hint": [1, 2, 6, 7]},
        symbolic=(True, False, True),
    ),
    "input_shape_hint_contradicts_static": case(
        "contradicts X's declared shape", attrs={**ATTRS, "input_shape_hint": [1, 2, 6, 7]}
    ),
    "input_shape_hint_contradicts_batch": case(
        "contradicts X's declared shape",
        attrs={**ATTRS, "input_shape_hint": [3, 2, 6, 6]},
        symbolic=(False, False, True, True),
    ),
    "input_shape_hint_channels": case(
        "channels",
        attrs={**ATTRS, "in_channels_per_group": 2, "input_shape_hint": [1, 4, 6, 6]},
        symbolic=(True, True, True, True),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_model_fails_cleanly(name: str, tmp_path: Path) -> None:
    spec = dict(CASES[name])
    expect, x_shape = spec.pop("expect"), spec.pop("x_shape")
    model = sparse_conv_model(
        x_shape,
        spec.pop("values"),
        spec.pop("cols"),
        spec.pop("row_ptr"),
        spec.pop("bias"),
        spec.pop("attrs"),
        node_name=f"bad_{name}",
        **spec,
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(path), ",".join(map(str, x_shape))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, (
        f"exit {result.returncode} (expected a clean ORT error)\n{result.stdout}\n{result.stderr}"
    )
    message = result.stdout
    assert expect in message, message
    shape_inference = "shape inference" in message
    assert f"bad_{name}" in message or shape_inference, f"error does not name the node: {message}"


def test_valid_baseline_runs(tmp_path: Path) -> None:
    """The unmodified case runs, so each failure above is due to its one defect."""
    path = tmp_path / "model.onnx"
    path.write_bytes(sparse_conv_model(X, VALUES, COLS, ROW_PTR, None, ATTRS).SerializeToString())
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(path), "1,2,6,6"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
