"""Fuzz test (issue 8): valid random SparseConv models, each with 1-3 random mutations of its CSR
arrays, attributes or declared/fed shapes, run through the plugin in a worker process
(tests/fuzz_worker.py) and judged against an independent float64 reference
(tests/conv_reference.py).

The only acceptable outcomes of a case are a clean ONNX Runtime error (at session creation or at
run) or an output equal to the reference within float32 rounding. A crash, a hang, an unclean
error, an output for a model the contract says must be refused, or wrong numbers fail the test;
each failing case is saved (model, input, description) under pytest's tmp_path.

Budget: ONNX_SPARSIFY_FUZZ_EXAMPLES cases (default 600; e.g. 20000 for a long run). The draws
are derandomized, the same cases every run; ONNX_SPARSIFY_FUZZ_SEED=N draws another fixed set
(to explore further, vary N). The worker inherits the environment, so ONNX_SPARSIFY_CPU_ISA and _STRATEGY reach it, and
ONNX_SPARSIFY_FUZZ_PLUGIN=path/to/libonnx_sparsify_ort.so fuzzes another build (older, sanitized).
Run with -s to see the outcome counts.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_sparsify
import pytest
from conv_reference import (
    SPEC_DEFAULTS,
    InvalidModel,
    ReferenceResult,
    Unverifiable,
    sparse_conv_reference,
)
from fuzz_worker import HEADER
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from models import (
    ACTIVATIONS,
    IR_VERSION,
    OPSET,
    conv_model,
    params_for,
    random_sparse_weight,
    session,
    sparse_conv_from_dense,
)
from onnx import AttributeProto, TensorProto, helper, numpy_helper
from onnx_sparsify.csr import dense_to_csr

WORKER = Path(__file__).with_name("fuzz_worker.py")
FUZZ_EXAMPLES = int(os.environ.get("ONNX_SPARSIFY_FUZZ_EXAMPLES", "600"))
FUZZ_SEED = os.environ.get("ONNX_SPARSIFY_FUZZ_SEED")
CASE_TIMEOUT_S = 20.0
MIN_COMPARED_FRACTION = 0.2
RELATIVE_L2 = 1e-5
# Floor of the allowed error, relative to the L2 norm of the summed terms |w * x| + |b|: only
# matters where the terms cancel to an output far smaller than themselves.
MAGNITUDE_FLOOR = 1e-6
HUGE = (2**24 + 1, 2**31 - 1, 2**31, 2**32 + 3, 2**40, 2**62, 2**63 - 1)
MAX_SIZE = {1: 12, 2: 7, 3: 4}  # spatial size bound per rank: keeps every case small

# ---------------------------------------------------------------------------------------------
# A case


@dataclass
class FuzzCase:
    """One SparseConv model and its input, mutable while mutations are applied. `k`, `group`
    and `kernel_volume` are the valid base's, kept for choosing targeted mutation values."""

    x: np.ndarray
    declared: list[int | str | None] | None  # X's declared shape (None: rank unknown)
    values: np.ndarray
    cols: np.ndarray
    row_ptr: np.ndarray
    bias: np.ndarray | None
    attrs: dict[str, AttributeProto]
    k: int
    group: int
    kernel_volume: int
    notes: list[str] = field(default_factory=list)
    mutations: list[str] = field(default_factory=list)

    def set_attr(self, name: str, value: Any, attr_type: int | None = None) -> None:
        """Sets an attribute; its ONNX type follows the Python value unless attr_type says."""
        self.attrs[name] = helper.make_attribute(name, value, attr_type=attr_type)

    def refeed(self, x: np.ndarray) -> None:
        """Feeds a new X of the same rank; declared sizes follow it, symbolic or unknown
        dimensions (and a deliberately wrong declared rank) stay as they are."""
        if self.declared is not None and len(self.declared) == x.ndim:
            self.declared = [n if isinstance(d, int) else d for d, n in zip(self.declared, x.shape)]
        self.x = x

    def model(self) -> onnx.ModelProto:
        """The single-node model, CSR and bias as initializers."""
        inits = [
            numpy_helper.from_array(self.values, "w_values"),
            numpy_helper.from_array(self.cols, "w_cols"),
            numpy_helper.from_array(self.row_ptr, "w_row_ptr"),
        ]
        inputs = ["x", "w_values", "w_cols", "w_row_ptr"]
        if self.bias is not None:
            inits.append(numpy_helper.from_array(self.bias, "b"))
            inputs.append("b")
        node = helper.make_node(onnx_sparsify.OP_TYPE, inputs, ["y"], name="fuzz", domain=onnx_sparsify.DOMAIN)
        node.attribute.extend(self.attrs.values())
        graph = helper.make_graph(
            [node],
            "fuzz",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.declared)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            inits,
        )
        opsets = [
            helper.make_opsetid("", OPSET),
            helper.make_opsetid(onnx_sparsify.DOMAIN, onnx_sparsify.OP_VERSION),
        ]
        return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)

    def describe(self) -> str:
        """Everything about the case a reader needs to reproduce it by hand."""
        attrs = ", ".join(helper.printable_attribute(a) for a in self.attrs.values())
        bias = "none" if self.bias is None else f"{self.bias.dtype}{list(self.bias.shape)}"
        lines = [
            f"X fed {list(self.x.shape)}, declared {self.declared}",
            f"W_values {self.values.dtype}{list(self.values.shape)} = {np.array2string(self.values, threshold=12)}",
            f"W_col_indices {self.cols.dtype}{list(self.cols.shape)} = {np.array2string(self.cols, threshold=12)}",
            f"W_row_ptr {self.row_ptr.dtype}{list(self.row_ptr.shape)} = {np.array2string(self.row_ptr, threshold=12)}",
            f"bias {bias}",
            f"attributes: {attrs}",
            *self.notes,
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Valid base cases


def _activation_attrs(draw: st.DrawFn, case: FuzzCase) -> None:
    """No activation, or one with default or explicit (valid, float) parameters."""
    name = draw(st.sampled_from([None, *SPEC_DEFAULTS]))
    if name is None:
        return
    case.set_attr("activation", name)
    if name == "PRelu":
        case.set_attr("activation_slopes", [draw(st.floats(-2, 2, width=32))], AttributeProto.FLOATS)
    count = len(SPEC_DEFAULTS[name])
    if count and draw(st.booleans()):
        params = sorted(draw(st.lists(st.floats(-3, 3, width=32), min_size=count, max_size=count)))
        case.set_attr("activation_params", [float(p) for p in params], AttributeProto.FLOATS)


@dataclass(frozen=True)
class Geometry:
    """A valid convolution's shapes and attributes (the dilated kernel fits the padded input)."""

    group: int
    in_per_group: int
    out_per_group: int
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    auto_pad: str
    pads: list[int]
    x_shape: tuple[int, ...]

    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_per_group * self.group, self.in_per_group, *self.kernel)


@st.composite
def geometries(draw: st.DrawFn, same_with_dilations: bool = True) -> Geometry:
    """Small valid geometries. Half the SAME cases are undilated with a stride longer than the
    kernel (negative total padding, where ONNX and ONNX Runtime differ: the 1x1 stride-2
    shortcuts of TensorFlow-exported ResNets); `same_with_dilations=False` keeps every SAME
    case undilated, as ORT's Conv requires."""
    k = draw(st.integers(1, 3))
    kernel = draw(st.lists(st.integers(1, 3), min_size=k, max_size=k))
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    same = auto_pad.startswith("SAME")
    long_strides = same and draw(st.booleans())
    dilations = draw(st.lists(st.integers(1, 2), min_size=k, max_size=k))
    if long_strides or (same and not same_with_dilations):
        dilations = [1] * k
    dilated = [(kk - 1) * d + 1 for kk, d in zip(kernel, dilations)]
    pads = draw(st.lists(st.integers(0, 2), min_size=2 * k, max_size=2 * k))
    if long_strides:
        strides = [kk + draw(st.sampled_from(range(1, 7))) for kk in kernel]
        # size = q * stride + r: the larger the residue r, the more negative the total padding
        sizes = [draw(st.sampled_from([0, s])) + s - draw(st.sampled_from(range(s))) for s in strides]
    else:
        strides = draw(st.lists(st.integers(1, 3), min_size=k, max_size=k))
        sizes = []
        for i in range(k):
            padding = pads[i] + pads[i + k] if auto_pad == "NOTSET" else 0
            low = 1 if same else max(1, dilated[i] - padding)
            sizes.append(draw(st.sampled_from(range(low, max(low, MAX_SIZE[k]) + 1))))  # uniform, not small-first
    group = draw(st.sampled_from([1, 1, 2, 3]))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x_shape = (draw(st.integers(1, 2)), cg * group, *sizes)
    return Geometry(group, cg, mg, kernel, strides, dilations, auto_pad, pads, x_shape)


@st.composite
def valid_cases(draw: st.DrawFn) -> FuzzCase:
    """A valid SparseConv built from a random sparse dense weight, small shapes; optional
    attributes at their defaults are sometimes written, sometimes left out."""
    g = draw(geometries())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weight = random_sparse_weight(rng, g.weight_shape(), draw(st.sampled_from([0.3, 0.6, 0.8, 0.9])))
    if not weight.any():  # tiny weights often lose every nonzero; csr_empty covers that case
        weight.flat[rng.integers(weight.size)] = 1.0
    csr = dense_to_csr(weight, draw(st.sampled_from([np.int32, np.int64])))
    x = rng.standard_normal(g.x_shape).astype(np.float32)
    bias = rng.standard_normal(weight.shape[0]).astype(np.float32) if draw(st.booleans()) else None
    k = len(g.kernel)
    case = FuzzCase(
        x, list(x.shape), csr.values, csr.col_indices, csr.row_ptr, bias, {}, k, g.group, math.prod(g.kernel)
    )
    case.set_attr("kernel_shape", g.kernel)
    optional = {"strides": g.strides, "dilations": g.dilations, "group": g.group}
    for name, value in optional.items():
        if value not in (1, [1] * k) or draw(st.booleans()):
            case.set_attr(name, value)
    if g.auto_pad != "NOTSET" or draw(st.booleans()):
        case.set_attr("auto_pad", g.auto_pad)
    if g.auto_pad == "NOTSET" and (any(g.pads) or draw(st.booleans())):
        case.set_attr("pads", g.pads)
    if draw(st.booleans()):
        case.set_attr("in_channels_per_group", g.in_per_group)
    _activation_attrs(draw, case)
    case.notes.append(f"base: dense weight {list(weight.shape)}, {csr.nnz} nonzeros")
    if draw(st.integers(0, 2)) == 0:  # sizes unknown at session creation: checked per run
        case.notes.append(f"base: {declared_symbolic(draw, case)}")
    return case


# ---------------------------------------------------------------------------------------------
# Mutations: each changes the case and returns what it did


Mutation = Callable[[st.DrawFn, FuzzCase], str]
MUTATIONS: dict[str, Mutation] = {}


def mutation(fn: Mutation) -> Mutation:
    MUTATIONS[fn.__name__] = fn
    return fn


def _index(draw: st.DrawFn, size: int) -> int:
    return draw(st.integers(0, size - 1))


def _with_entry(array: np.ndarray, i: int, value: int) -> np.ndarray:
    """A copy of array with flat entry i set to value, wrapped into the array's dtype as C
    would wrap it (whatever rank or dtype earlier mutations gave the array)."""
    out = array.copy()
    out.reshape(-1)[i] = np.array([value], np.int64).astype(array.dtype)[0]
    return out


def _rows(case: FuzzCase) -> list[tuple[int, int]]:
    """[begin, end) of every row, or [] when earlier mutations broke the row pointer."""
    ptr = case.row_ptr.reshape(-1).astype(np.int64)
    valid = ptr.size >= 2 and ptr[0] == 0 and np.all(np.diff(ptr) >= 0) and ptr[-1] == case.cols.size
    return list(zip(ptr[:-1].tolist(), ptr[1:].tolist())) if valid else []


@mutation
def values_length(draw: st.DrawFn, case: FuzzCase) -> str:
    extra = draw(st.sampled_from([-1, 1, 3]))
    flat = case.values.reshape(-1)
    if extra < 0 and flat.size:
        case.values = flat[:-1]
    else:
        case.values = np.concatenate([flat, np.full(extra if extra > 0 else 1, 0.5, flat.dtype)])
    return f"W_values length {flat.size} -> {case.values.size}"


@mutation
def values_type(draw: st.DrawFn, case: FuzzCase) -> str:
    dtype = draw(st.sampled_from([np.float64, np.float16, np.int32]))
    case.values = case.values.astype(dtype)
    return f"W_values as {np.dtype(dtype)}"


@mutation
def values_rank(draw: st.DrawFn, case: FuzzCase) -> str:
    shape = draw(st.sampled_from([(1, -1), (-1, 1), ()])) if case.values.size == 1 else (1, -1)
    case.values = case.values.reshape(shape)
    return f"W_values reshaped to {list(case.values.shape)}"


@mutation
def col_negative(draw: st.DrawFn, case: FuzzCase) -> str:
    if case.cols.size == 0:
        return "no-op, no nonzeros"
    i = _index(draw, case.cols.size)
    case.cols = _with_entry(case.cols, i, draw(st.sampled_from([-1, -2, -(2**31), -(2**62)])))
    return f"W_col_indices[{i}] = {case.cols.reshape(-1)[i]}"


@mutation
def col_out_of_range(draw: st.DrawFn, case: FuzzCase) -> str:
    if case.cols.size == 0:
        return "no-op, no nonzeros"
    limit = (case.x.shape[1] // case.group) * case.kernel_volume
    i = _index(draw, case.cols.size)
    case.cols = _with_entry(case.cols, i, draw(st.sampled_from([limit, limit + 1, 2 * limit, 2**31 - 1, 2**62])))
    return f"W_col_indices[{i}] = {case.cols.reshape(-1)[i]} (C/group * prod(kernel) = {limit})"


@mutation
def col_duplicate(draw: st.DrawFn, case: FuzzCase) -> str:
    rows = [(b, e) for b, e in _rows(case) if e - b >= 2]
    if not rows:
        return "no-op, no row with 2 nonzeros"
    begin, end = draw(st.sampled_from(rows))
    i, j = draw(st.lists(st.integers(begin, end - 1), min_size=2, max_size=2, unique=True))
    case.cols = _with_entry(case.cols, j, int(case.cols.reshape(-1)[i]))
    return f"W_col_indices[{j}] = W_col_indices[{i}] = {case.cols.reshape(-1)[i]} (same row)"


@mutation
def cols_unsorted(draw: st.DrawFn, case: FuzzCase) -> str:
    """Valid: columns may come in any order within a row."""
    rows = _rows(case)
    if not rows or case.values.shape != case.cols.shape or case.cols.ndim != 1:
        return "no-op, CSR already broken"
    order = np.arange(case.cols.size)
    for begin, end in rows:
        order[begin:end] = draw(st.permutations(list(range(begin, end))))
    case.cols, case.values = case.cols[order], case.values[order]
    return "columns shuffled within rows (valid)"


@mutation
def row_ptr_length(draw: st.DrawFn, case: FuzzCase) -> str:
    ptr = case.row_ptr.reshape(-1)
    case.row_ptr = ptr[:-1] if draw(st.booleans()) and ptr.size > 1 else np.concatenate([ptr, ptr[-1:]])
    return f"W_row_ptr length {ptr.size} -> {case.row_ptr.size}"


@mutation
def row_ptr_decreasing(draw: st.DrawFn, case: FuzzCase) -> str:
    ptr = case.row_ptr.reshape(-1)
    if ptr.size < 2:
        return "no-op, W_row_ptr too short"
    i = draw(st.integers(1, ptr.size - 1))
    case.row_ptr = _with_entry(case.row_ptr, i, int(ptr[i - 1]) - 1)
    return f"W_row_ptr[{i}] = W_row_ptr[{i - 1}] - 1"


@mutation
def row_ptr_start(draw: st.DrawFn, case: FuzzCase) -> str:
    case.row_ptr = _with_entry(case.row_ptr, 0, draw(st.sampled_from([1, -1, int(case.values.size) + 1])))
    return f"W_row_ptr[0] = {case.row_ptr.reshape(-1)[0]}"


@mutation
def row_ptr_end(draw: st.DrawFn, case: FuzzCase) -> str:
    ptr = case.row_ptr.reshape(-1)
    case.row_ptr = _with_entry(case.row_ptr, ptr.size - 1, int(ptr[-1]) + draw(st.sampled_from([-1, 1, 2**30])))
    return f"W_row_ptr[-1] = {case.row_ptr.reshape(-1)[-1]} (nnz {case.values.size})"


@mutation
def index_types(draw: st.DrawFn, case: FuzzCase) -> str:
    cols_type, ptr_type = draw(
        st.sampled_from(
            [
                (np.int32, np.int32),
                (np.int64, np.int64),
                (np.int32, np.int64),
                (np.int64, np.int32),
                (np.float32, np.float32),
                (np.uint32, np.uint32),
                (np.int16, np.int16),
                (np.float64, np.int64),
            ]
        )
    )
    case.cols, case.row_ptr = case.cols.astype(cols_type), case.row_ptr.astype(ptr_type)
    return f"index types {np.dtype(cols_type)} / {np.dtype(ptr_type)}"


@mutation
def index_rank(draw: st.DrawFn, case: FuzzCase) -> str:
    if draw(st.booleans()):
        case.cols = case.cols.reshape(1, -1)
        return "W_col_indices reshaped to 2-D"
    case.row_ptr = case.row_ptr.reshape(1, -1)
    return "W_row_ptr reshaped to 2-D"


@mutation
def csr_empty(draw: st.DrawFn, case: FuzzCase) -> str:
    """Valid: no nonzero at all, every channel outputs its bias."""
    case.values, case.cols = case.values.reshape(-1)[:0], case.cols.reshape(-1)[:0]
    case.row_ptr = np.zeros_like(case.row_ptr)
    return "all rows empty (valid)"


def _spatial_attr(draw: st.DrawFn, case: FuzzCase, name: str, count: int, valid: st.SearchStrategy[int]) -> str:
    """A spatial attribute replaced by a valid or broken value, of the right or a wrong type."""
    choice = draw(st.sampled_from(["valid", "zero", "negative", "huge", "length", "floats", "int", "string", "absent"]))
    if choice == "absent":
        case.attrs.pop(name, None)
        return f"{name} removed"
    ints = draw(st.lists(valid, min_size=count, max_size=count))
    if choice in ("zero", "negative", "huge"):
        bad = {"zero": 0, "negative": -draw(st.integers(1, 3)), "huge": draw(st.sampled_from(HUGE))}[choice]
        ints[_index(draw, count)] = bad
    elif choice == "length":
        ints = draw(st.lists(valid, min_size=0, max_size=4).filter(lambda v: len(v) != count))
    if choice == "floats":
        case.set_attr(name, [float(v) for v in ints], AttributeProto.FLOATS)
    elif choice == "int":
        case.set_attr(name, ints[0], AttributeProto.INT)
    elif choice == "string":
        case.set_attr(name, ",".join(map(str, ints)), AttributeProto.STRING)
    else:
        case.set_attr(name, ints, AttributeProto.INTS)
    return f"{name}: {choice} -> {helper.printable_attribute(case.attrs[name])}"


@mutation
def kernel_shape_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    return _spatial_attr(draw, case, "kernel_shape", case.k, st.integers(1, 4))


@mutation
def strides_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    return _spatial_attr(draw, case, "strides", case.k, st.integers(1, 9))


@mutation
def dilations_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    return _spatial_attr(draw, case, "dilations", case.k, st.integers(1, 5))


@mutation
def pads_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    return _spatial_attr(draw, case, "pads", 2 * case.k, st.integers(0, 8))


@mutation
def group_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    c = case.x.shape[1]
    m = case.row_ptr.size - 1
    choices = [1, c, m, 0, -1, 2, 3, 4, 6, *HUGE[:3]]
    kind = draw(st.sampled_from(["int", "int", "int", "float", "string", "ints"]))
    value = draw(st.sampled_from(choices))
    if kind == "int":
        case.set_attr("group", value)
    elif kind == "float":
        case.set_attr("group", float(value))
    elif kind == "string":
        case.set_attr("group", str(value))
    else:
        case.set_attr("group", [value], AttributeProto.INTS)
    return f"group = {helper.printable_attribute(case.attrs['group'])} (C {c}, M {m})"


@mutation
def auto_pad_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    value = draw(
        st.sampled_from(["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", "SAME", "same_upper", "", "VALID ", 3])
    )
    case.set_attr("auto_pad", value)
    if draw(st.booleans()):
        case.attrs.pop("pads", None)
    return f"auto_pad = {value!r}, pads {'kept' if 'pads' in case.attrs else 'absent'}"


@mutation
def activation_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    value = draw(
        st.sampled_from(
            [*SPEC_DEFAULTS, "none", "", "Gelu", "relu", "Tanh", 1, ["Relu"], "Relu,Clip", "Relu,", "Mish," * 4]
        )
    )
    case.set_attr("activation", value)
    if draw(st.booleans()):
        case.attrs.pop("activation_params", None)
    return f"activation = {value!r}, activation_params {'kept' if 'activation_params' in case.attrs else 'absent'}"


def _expected_param_count(case: FuzzCase) -> int:
    attr = case.attrs.get("activation")
    if attr is None or attr.type != AttributeProto.STRING:
        return 0
    steps = attr.s.decode("utf-8", "replace").split(",")
    return sum(len(SPEC_DEFAULTS.get(step, ())) for step in steps)


@mutation
def activation_params_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    """Float or int parameters, of the right count or not; NaN and infinities among floats."""
    count = draw(st.sampled_from([_expected_param_count(case)] * 3 + [0, 1, 2, 3]))
    kind = draw(st.sampled_from(["floats", "floats", "ints", "ints", "nan", "string", "absent"]))
    if kind == "floats":
        values = draw(
            st.lists(st.floats(-5, 5, width=32) | st.sampled_from([-np.inf, np.inf]), min_size=count, max_size=count)
        )
        case.set_attr("activation_params", sorted(float(v) for v in values), AttributeProto.FLOATS)
    elif kind == "ints":
        values = draw(st.lists(st.integers(-3, 3) | st.sampled_from([2**40, -(2**31)]), min_size=count, max_size=count))
        case.set_attr("activation_params", sorted(values), AttributeProto.INTS)
    elif kind == "nan":
        values = [0.5] * max(count, 1)
        values[_index(draw, len(values))] = float("nan")
        case.set_attr("activation_params", values, AttributeProto.FLOATS)
    elif kind == "string":
        case.set_attr("activation_params", "0.1")
    else:
        case.attrs.pop("activation_params", None)
    shown = (
        helper.printable_attribute(case.attrs["activation_params"]) if "activation_params" in case.attrs else "absent"
    )
    return f"activation_params: {kind} -> {shown}"


@mutation
def in_channels_per_group_attr(draw: st.DrawFn, case: FuzzCase) -> str:
    right = case.x.shape[1] // case.group
    kind = draw(st.sampled_from(["right", "right", "wrong", "negative", "huge", "float", "absent"]))
    value: Any = {
        "right": right,
        "wrong": right + draw(st.sampled_from([-1, 1, 2])),
        "negative": -right,
        "huge": draw(st.sampled_from(HUGE)),
        "float": float(right),
    }.get(kind)
    if value is None:
        case.attrs.pop("in_channels_per_group", None)
        return "in_channels_per_group absent"
    case.set_attr("in_channels_per_group", value)
    return f"in_channels_per_group = {value!r} ({kind}; X has {case.x.shape[1]} channels, group {case.group})"


@mutation
def declared_symbolic(draw: st.DrawFn, case: FuzzCase) -> str:
    if draw(st.integers(0, 4)) == 0:
        case.declared = None
        return "X declared without a shape"
    dims = list(case.declared) if case.declared is not None else list(case.x.shape)
    for i in range(len(dims)):
        choice = draw(st.sampled_from(["keep", "symbol", "unknown"]))
        dims[i] = {"keep": dims[i], "symbol": f"dim{i}", "unknown": None}[choice]
    case.declared = dims
    return f"X declared as {dims}"


@mutation
def declared_disagrees(draw: st.DrawFn, case: FuzzCase) -> str:
    dims = list(case.declared) if case.declared is not None else list(case.x.shape)
    i = _index(draw, len(dims))
    dims[i] = case.x.shape[i] + draw(st.sampled_from([-1, 1, 3])) if i < case.x.ndim else 1
    dims[i] = max(dims[i], 0)
    case.declared = dims
    return f"X declared as {dims}, fed {list(case.x.shape)}"


@mutation
def declared_rank(draw: st.DrawFn, case: FuzzCase) -> str:
    dims = list(case.declared) if case.declared is not None else list(case.x.shape)
    case.declared = dims[:-1] if draw(st.booleans()) and len(dims) > 1 else [*dims, 2]
    return f"X declared with rank {len(case.declared)}: {case.declared}"


@mutation
def declared_huge(draw: st.DrawFn, case: FuzzCase) -> str:
    dims = list(case.declared) if case.declared is not None else list(case.x.shape)
    i = _index(draw, len(dims))
    dims[i] = draw(st.sampled_from([2**31, 2**40, 2**62, 2**63 - 1]))
    case.declared = dims
    return f"X declared as {dims}"


@mutation
def fed_zero_batch(draw: st.DrawFn, case: FuzzCase) -> str:
    case.refeed(case.x[:0])
    return "X fed with batch 0"


@mutation
def fed_zero_spatial(draw: st.DrawFn, case: FuzzCase) -> str:
    if case.x.ndim < 3:
        return "no-op, X has no spatial axis"
    axis = 2 + _index(draw, case.x.ndim - 2)
    case.refeed(np.take(case.x, [], axis=axis))
    return f"X fed with size 0 on axis {axis}"


@mutation
def fed_channels(draw: st.DrawFn, case: FuzzCase) -> str:
    c = case.x.shape[1]
    new = max(1, c + draw(st.sampled_from([-case.group, -1, 1, case.group, c])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    case.refeed(rng.standard_normal((case.x.shape[0], new, *case.x.shape[2:])).astype(np.float32))
    return f"X fed with {new} channels instead of {c}"


@mutation
def fed_spatial_size(draw: st.DrawFn, case: FuzzCase) -> str:
    if case.x.ndim < 3:
        return "no-op, X has no spatial axis"
    axis = 2 + _index(draw, case.x.ndim - 2)
    shape = list(case.x.shape)
    shape[axis] = draw(st.integers(1, MAX_SIZE[max(1, min(3, case.x.ndim - 2))]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    case.refeed(rng.standard_normal(shape).astype(np.float32))
    return f"X fed with size {shape[axis]} on axis {axis}"


@mutation
def fed_rank(draw: st.DrawFn, case: FuzzCase) -> str:
    if draw(st.booleans()) and case.x.ndim > 2:
        x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(case.x.shape[:-1])
    else:
        x = case.x[..., None]
    case.declared = list(x.shape) if case.declared is not None else None
    case.x = np.ascontiguousarray(x, dtype=np.float32)
    return f"X fed with rank {x.ndim}: {list(x.shape)}"


@mutation
def x_nonfinite(draw: st.DrawFn, case: FuzzCase) -> str:
    if case.x.size == 0:
        return "no-op, X is empty"
    special = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    x = case.x.copy()
    if draw(st.integers(0, 3)) == 0:
        x[...] = special
        where = "everywhere"
    else:
        flat = x.reshape(-1)
        where = sorted(set(draw(st.lists(st.integers(0, flat.size - 1), min_size=1, max_size=3))))
        flat[where] = special
    case.x = x
    return f"X holds {special} at flat positions {where}"


@mutation
def bias_nonfinite(draw: st.DrawFn, case: FuzzCase) -> str:
    m = max(1, case.row_ptr.size - 1)
    bias = np.zeros(m, np.float32) if case.bias is None or case.bias.shape != (m,) else case.bias.copy()
    channel = _index(draw, m)
    bias[channel] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    case.bias = bias
    return f"bias[{channel}] = {bias[channel]}"


@mutation
def bias_malformed(draw: st.DrawFn, case: FuzzCase) -> str:
    m = case.row_ptr.size - 1
    kind = draw(st.sampled_from(["short", "long", "float64", "2-D"]))
    bias = np.linspace(-1, 1, max(m, 1)).astype(np.float32)
    case.bias = {
        "short": bias[:-1],
        "long": np.concatenate([bias, bias[:1]]),
        "float64": bias.astype(np.float64),
        "2-D": bias.reshape(1, -1),
    }[kind]
    return f"bias {kind}: {case.bias.dtype}{list(case.bias.shape)}"


@st.composite
def fuzz_cases(draw: st.DrawFn) -> FuzzCase:
    """A valid case with 1-3 mutations applied in order."""
    case = draw(valid_cases())
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3)):
        case.notes.append(f"mutation {name}: {MUTATIONS[name](draw, case)}")
        case.mutations.append(name)
    return case


# ---------------------------------------------------------------------------------------------
# The worker


@dataclass(frozen=True)
class WorkerDied:
    """The worker crashed (signal or nonzero exit) or hung past the case's time limit."""

    kind: str  # "crash" or "timeout"
    detail: str


class FuzzWorker:
    """One persistent tests/fuzz_worker.py process, restarted after it dies or hangs."""

    def __init__(self, stderr_path: Path) -> None:
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("ab")
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=dict(os.environ),
            )
        return self._proc

    def _read_exact(self, proc: subprocess.Popen[bytes], size: int, deadline: float) -> bytes | None:
        """size bytes from the worker, or None at end of stream; TimeoutError past deadline."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        chunks, remaining = [], size
        while remaining:
            timeout = deadline - _now()
            if timeout <= 0 or not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _stop(self, kind: str, stderr_from: int) -> WorkerDied:
        """Kills (if still alive) and reaps the worker; describes how it ended."""
        proc = self._proc
        assert proc is not None
        if kind == "timeout":
            proc.kill()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        self._release()
        self.restarts += 1
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        if kind == "timeout":
            how = f"no reply within {CASE_TIMEOUT_S:g} s, killed"
        return WorkerDied(kind, f"worker {how}; its stderr:\n{self._stderr_since(stderr_from)}")

    def _stderr_since(self, offset: int, head: int = 3000, tail: int = 1500) -> str:
        """What the worker wrote to stderr from offset on: the start (where a sanitizer or an
        abort names the problem) and the end."""
        self._stderr.flush()
        with self._stderr_path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        return text if len(text) <= head + tail else f"{text[:head]}\n[...]\n{text[-tail:]}"

    def run(self, model: bytes, x: np.ndarray, timeout: float = CASE_TIMEOUT_S) -> dict[str, Any] | WorkerDied:
        """Runs one case; the reply dict of fuzz_worker.py, or how the worker died."""
        proc = self._ensure_started()
        assert proc.stdin is not None
        stderr_from = self._stderr_path.stat().st_size
        payload = pickle.dumps({"model": model, "x": x}, protocol=pickle.HIGHEST_PROTOCOL)
        deadline = _now() + timeout
        try:
            proc.stdin.write(HEADER.pack(len(payload)) + payload)
            proc.stdin.flush()
            header = self._read_exact(proc, HEADER.size, deadline)
            body = self._read_exact(proc, HEADER.unpack(header)[0], deadline) if header else None
        except BrokenPipeError:
            return self._stop("crash", stderr_from)
        except TimeoutError:
            return self._stop("timeout", stderr_from)
        if body is None:
            return self._stop("crash", stderr_from)
        return pickle.loads(body)

    def _release(self) -> None:
        """Closes the pipes of a worker that has exited."""
        assert self._proc is not None
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass
        self._proc = None

    def close(self) -> None:
        """Ends the worker by closing its input; kills it if it does not exit."""
        if self._proc is not None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._release()
        self._stderr.close()


def _now() -> float:
    return time.monotonic()


@pytest.fixture(scope="module")
def fuzz_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWorker]:
    worker = FuzzWorker(tmp_path_factory.mktemp("fuzz_worker") / "stderr.log")
    yield worker
    worker.close()


# ---------------------------------------------------------------------------------------------
# Judging a reply

# Text that only escapes from C++ internals, never from a deliberate error message.
LEAKED_INTERNALS = ("unknown error", "std::", "bad_alloc", "basic_string", "vector::", "_M_", "out of memory")
# Words of the plugin's own messages: a message using them must name SparseConv.
PLUGIN_VOCABULARY = ("W_values", "W_col_indices", "W_row_ptr", "activation_params", "in_channels_per_group", "C/group")


def unclean_error(error_type: str, message: str) -> str | None:
    """Why an error is not a clean ONNX Runtime error, or None when it is."""
    if not error_type.startswith("onnxruntime"):
        return f"not an ONNX Runtime error: {error_type}: {message}"
    if not message.strip():
        return f"{error_type} with an empty message"
    leaked = [marker for marker in LEAKED_INTERNALS if marker in message]
    if leaked:
        return f"message leaks internals ({', '.join(leaked)}): {message}"
    if any(word in message for word in PLUGIN_VOCABULARY) and "SparseConv" not in message:
        return f"plugin message without 'SparseConv': {message}"
    return None


def compare(actual: np.ndarray, expected: ReferenceResult) -> str | None:
    """Why the plugin's output differs from the reference, or None when it matches: same shape,
    NaN and infinities in the same places, and relative L2 error <= 1e-5 elsewhere (with a floor
    of 1e-6 of the summed terms' norm, for outputs that cancel to almost nothing)."""
    e = expected.y
    if not isinstance(actual, np.ndarray) or actual.dtype != np.float32:
        return f"output is {type(actual).__name__} {getattr(actual, 'dtype', '')}, expected float32"
    if actual.shape != e.shape:
        return f"output shape {list(actual.shape)}, reference {list(e.shape)}"
    a = actual.astype(np.float64)
    for what, mask_a, mask_e in (
        ("NaN", np.isnan(a), np.isnan(e)),
        ("+inf", a == np.inf, e == np.inf),
        ("-inf", a == -np.inf, e == -np.inf),
    ):
        if not np.array_equal(mask_a, mask_e):
            where = np.argwhere(mask_a != mask_e)[0].tolist()
            return (
                f"{what} at {int(mask_a.sum())} positions, reference {int(mask_e.sum())}; first difference at "
                f"{where}: got {a[tuple(where)]}, reference {e[tuple(where)]}"
            )
    finite = np.isfinite(e)
    error = float(np.linalg.norm(a[finite] - e[finite]))
    norm = float(np.linalg.norm(e[finite]))
    if error > RELATIVE_L2 * norm + MAGNITUDE_FLOOR * expected.magnitude:
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite: masked out
            worst = np.unravel_index(np.argmax(np.where(finite, np.abs(a - e), -1)), e.shape)
        size = f"relative L2 error {error / norm:.3g}" if norm else f"L2 error {error:.3g} (reference all 0)"
        return f"{size}; worst at {list(map(int, worst))}: got {a[worst]:.6g}, reference {e[worst]:.6g}"
    return None


@dataclass(frozen=True)
class Verdict:
    """How a case ended, and the failure if it was not acceptable."""

    outcome: str  # created_error, run_error, compared, unverified, crash, timeout
    failure_kind: str | None = None
    detail: str = ""


def judge(model: onnx.ModelProto, x: np.ndarray, reply: dict[str, Any] | WorkerDied) -> Verdict:
    if isinstance(reply, WorkerDied):
        return Verdict(reply.kind, reply.kind, reply.detail)
    if reply["outcome"] != "ok":
        problem = unclean_error(reply["error_type"], reply["message"])
        return Verdict(reply["outcome"], "unclean error" if problem else None, problem or reply["message"])
    try:
        expected = sparse_conv_reference(model, x)
    except InvalidModel as e:
        shape = list(getattr(reply["y"], "shape", []))
        return Verdict("compared", "ran an invalid model", f"reference: {e}; the plugin returned shape {shape}")
    except Unverifiable as e:
        return Verdict("unverified", None, str(e))
    problem = compare(reply["y"], expected)
    return Verdict("compared", "wrong result" if problem else None, problem or "")


# ---------------------------------------------------------------------------------------------
# Recording


@dataclass
class FuzzLog:
    """Outcome counts and failures of one fuzz run; saves every failing case for reproduction."""

    directory: Path
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str, Path]] = field(default_factory=list)  # (signature, text, saved)
    repeats: int = 0  # failing cases identical to one already recorded (hypothesis redraws some)
    _seen: set[str] = field(default_factory=set)

    def record(self, case: FuzzCase, model: onnx.ModelProto, verdict: Verdict) -> None:
        self.outcomes[verdict.outcome] += 1
        if verdict.failure_kind is None:
            return
        signature = f"{verdict.failure_kind} [{', '.join(sorted(set(case.mutations)))}]"
        text = f"{verdict.failure_kind}: {verdict.detail}\n{case.describe()}"
        if text in self._seen:
            self.repeats += 1
            return
        self._seen.add(text)
        self.failures.append((signature, text, self._save(case, model, text)))

    def _save(self, case: FuzzCase, model: onnx.ModelProto, text: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = self.directory / f"case{len(self.failures):05d}"
        stem.with_suffix(".onnx").write_bytes(model.SerializeToString())
        np.save(stem.with_name(stem.name + "_x.npy"), case.x)
        reproduce = (
            "import numpy as np, onnxruntime as ort, onnx_sparsify\n"
            f"s = ort.InferenceSession({str(stem.with_suffix('.onnx'))!r}, onnx_sparsify.session_options())\n"
            f"print(s.run(None, {{'x': np.load({str(stem.with_name(stem.name + '_x.npy'))!r})}}))\n"
        )
        stem.with_suffix(".txt").write_text(f"{text}\n\nreproduce:\n{reproduce}")
        return stem.with_suffix(".txt")

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def summary(self) -> str:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
        repeats = f" (and {self.repeats} repeats)" if self.repeats else ""
        return f"{self.total} fuzz cases: {counts}; {len(self.failures)} distinct failing cases{repeats}"

    def report(self, limit: int = 3) -> str:
        """Failures grouped by kind and mutations, a few full examples of each."""
        groups: dict[str, list[tuple[str, Path]]] = {}
        for signature, text, path in self.failures:
            groups.setdefault(signature, []).append((text, path))
        parts = [self.summary()]
        for signature, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            parts.append(f"\n=== {len(items)} x {signature}")
            parts.extend(f"--- {path}\n{text}" for text, path in items[:limit])
        return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Tests


def _fuzz_settings() -> settings:
    return settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=FUZZ_SEED is None,  # with a seed, hypothesis draws from it instead
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def test_fuzz_sparse_conv(fuzz_worker: FuzzWorker, tmp_path: Path) -> None:
    """Mutated SparseConv models fail cleanly or compute what the reference computes."""
    log = FuzzLog(tmp_path / "fuzz_failures")

    @_fuzz_settings()
    @given(fuzz_cases())
    def check(case: FuzzCase) -> None:
        model = case.model()
        reply = fuzz_worker.run(model.SerializeToString(), case.x)
        log.record(case, model, judge(model, case.x, reply))

    if FUZZ_SEED is not None:
        check = seed(int(FUZZ_SEED))(check)
    check()
    isa = os.environ.get("ONNX_SPARSIFY_CPU_ISA", "default")
    strategy = os.environ.get("ONNX_SPARSIFY_CPU_STRATEGY", "default")
    plugin = os.environ.get("ONNX_SPARSIFY_FUZZ_PLUGIN", "installed")
    print(f"\n{log.summary()} (worker restarts {fuzz_worker.restarts}; ISA {isa}, {strategy}; plugin {plugin})")
    assert not log.failures, log.report()
    compared = log.outcomes["compared"] / max(1, log.total)
    assert compared >= MIN_COMPARED_FRACTION, f"too few results compared against the reference: {log.summary()}"


# The reference itself, against ONNX Runtime's own Conv.


def _ort_conv(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, attrs: dict[str, Any], activation: str | None
) -> np.ndarray:
    params = params_for(activation)
    dense = conv_model(x.shape, weight, bias, attrs, activation, params)
    return session(dense, plugin=False).run(None, {"x": x})[0]


def _reference(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, attrs: dict[str, Any], activation: str | None
) -> ReferenceResult:
    params = params_for(activation)
    return sparse_conv_reference(sparse_conv_from_dense(x.shape, weight, bias, attrs, activation, params), x)


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
def test_same_padding_matches_onnxruntime(mode: str) -> None:
    """The reference's SAME padding equals ORT's Conv for every 1-D size, kernel and stride here,
    the total padding negative (stride longer than the kernel) included."""
    rng = np.random.default_rng(0)
    for size in range(1, 10):
        for kernel in range(1, 4):
            for stride in range(1, 6):
                weight = rng.standard_normal((2, 1, kernel)).astype(np.float32)
                x = (np.arange(size, dtype=np.float32) + 1).reshape(1, 1, size)
                attrs = {"strides": [stride], "auto_pad": mode}
                got, want = _reference(x, weight, None, attrs, None), _ort_conv(x, weight, None, attrs, None)
                problem = compare(want, got)
                assert problem is None, f"size {size} kernel {kernel} stride {stride} {mode}: {problem}"


@st.composite
def ort_conv_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Valid Conv configurations that ORT's Conv accepts (no SAME with dilations)."""
    g = draw(geometries(same_with_dilations=False))
    attrs: dict[str, Any] = {"strides": g.strides, "dilations": g.dilations, "group": g.group}
    attrs.update({"pads": g.pads} if g.auto_pad == "NOTSET" else {"auto_pad": g.auto_pad})
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weight = random_sparse_weight(rng, g.weight_shape(), draw(st.sampled_from([0.0, 0.5, 0.9])))
    return {
        "x": rng.standard_normal(g.x_shape).astype(np.float32),
        "weight": weight,
        "bias": rng.standard_normal(weight.shape[0]).astype(np.float32) if draw(st.booleans()) else None,
        "attrs": attrs,
        "activation": draw(st.sampled_from([None, *ACTIVATIONS])),
    }


@settings(max_examples=50, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ort_conv_configs())
def test_reference_matches_onnxruntime_conv(config: dict[str, Any]) -> None:
    """The fuzz test's reference equals ORT's Conv (+ activation) on random valid configurations,
    decoding the CSR that sparse_conv_from_dense writes."""
    want = _ort_conv(**config)
    problem = compare(want, _reference(**config))
    assert problem is None, f"{config['attrs']} x{list(config['x'].shape)} {config['activation']}: {problem}"


@pytest.mark.parametrize(
    ("name", "params", "y", "expected"),
    [
        ("Relu", (), [np.nan, -1.0, 2.0], [np.nan, 0.0, 2.0]),
        ("LeakyRelu", (0.1,), [np.nan, -1.0, np.inf], [np.nan, -0.1, np.inf]),
        ("Clip", (-0.5, 0.5), [np.nan, -np.inf, 0.25], [np.nan, -0.5, 0.25]),
        ("Sigmoid", (), [np.nan, -np.inf, 0.0], [np.nan, 0.0, 0.5]),
        ("HardSigmoid", (0.2, 0.5), [np.nan, 10.0, 0.0], [np.nan, 1.0, 0.5]),
        ("HardSwish", (), [np.nan, -np.inf, 1.5], [np.nan, np.nan, 1.125]),
        ("QuickGelu", (1.0,), [np.nan, -np.inf, 0.0], [np.nan, np.nan, 0.0]),
        ("Mish", (), [np.nan, -np.inf, np.inf], [np.nan, np.nan, np.inf]),
        ("PRelu", (), [np.nan, -2.0, 3.0], [np.nan, -2.0 * 0.25, 3.0]),
    ],
)
def test_reference_activations_propagate_nan(
    name: str, params: tuple[float, ...], y: list[float], expected: list[float]
) -> None:
    from conv_reference import apply_activation

    np.testing.assert_array_equal(apply_activation(np.array(y), name, params, 0.25), np.array(expected))


class _RunsWhenUnpickled:
    """Unpickling this in the worker calls `call(*args)`: makes the worker die in a chosen way."""

    def __init__(self, call: Callable[..., Any], *args: Any) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.call, self.args


@pytest.mark.parametrize(
    ("payload", "kind", "expect"),
    [
        (_RunsWhenUnpickled(os._exit, 3), "crash", "exit status 3"),
        (_RunsWhenUnpickled(os.abort), "crash", "SIGABRT"),
        (_RunsWhenUnpickled(time.sleep, 60), "timeout", "no reply within"),
    ],
)
def test_worker_death_is_reported_and_survived(tmp_path: Path, payload: Any, kind: str, expect: str) -> None:
    """The harness itself: a worker that exits, aborts or hangs is reported as such, and the
    next case runs in a fresh worker."""
    worker = FuzzWorker(tmp_path / "stderr.log")
    try:
        died = worker.run(b"", payload, timeout=3)
        assert isinstance(died, WorkerDied) and died.kind == kind and expect in died.detail, died
        x = np.ones((1, 1, 4), np.float32)
        model = sparse_conv_from_dense(x.shape, np.ones((1, 1, 3), np.float32), None, {})
        reply = worker.run(model.SerializeToString(), x)
        assert isinstance(reply, dict) and reply["outcome"] == "ok", reply
        np.testing.assert_array_equal(reply["y"], np.full((1, 1, 2), 3.0, np.float32))
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("actual", "expected", "verdict"),
    [
        ([1.0, np.nan, np.inf], [1.0, np.nan, np.inf], None),
        ([1.0 + 1e-7, 2.0, 3.0], [1.0, 2.0, 3.0], None),
        ([1.0, 0.0, 3.0], [1.0, np.nan, 3.0], "NaN at 0 positions, reference 1"),
        ([1.0, -np.inf, 3.0], [1.0, np.inf, 3.0], "+inf at 0 positions"),
        ([1.0, 2.1, 3.0], [1.0, 2.0, 3.0], "relative L2 error"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "output shape [2], reference [3]"),
    ],
)
def test_compare(actual: list[float], expected: list[float], verdict: str | None) -> None:
    """The judging rule: same shape, same NaN and infinities, relative L2 <= 1e-5 elsewhere."""
    result = compare(np.array(actual, np.float32), ReferenceResult(np.array(expected), magnitude=1.0))
    assert result == verdict if verdict is None else verdict in (result or ""), result


@pytest.mark.parametrize(
    ("error_type", "message", "clean"),
    [
        ("onnxruntime.capi.onnxruntime_pybind11_state.Fail", "SparseConv node 'n': W_row_ptr decreases", True),
        ("onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument", "Got invalid dimensions for input: x", True),
        ("onnxruntime.capi.onnxruntime_pybind11_state.Fail", "W_row_ptr decreases", False),
        ("onnxruntime.capi.onnxruntime_pybind11_state.Fail", "SparseConv node 'n': unknown error", False),
        ("onnxruntime.capi.onnxruntime_pybind11_state.Fail", "SparseConv node 'n': std::bad_alloc", False),
        ("onnxruntime.capi.onnxruntime_pybind11_state.Fail", " ", False),
        ("builtins.TypeError", "run(): incompatible function arguments", False),
    ],
)
def test_unclean_error(error_type: str, message: str, clean: bool) -> None:
    """Clean: an ONNX Runtime exception with a message, naming SparseConv when it is the plugin's."""
    assert (unclean_error(error_type, message) is None) == clean
