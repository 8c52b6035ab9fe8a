"""Property-based: random Conv configurations, SparseConv against ORT's Conv (onnx.reference
where ORT deviates from ONNX). The draws are derandomized, the same every run (the hypothesis
profiles in conftest.py); CI draws more of them."""

from __future__ import annotations

import isa as isas
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from models import ACTIVATIONS, assert_sparse_matches_dense
from onnx_sparsify._contract import MAX_EPILOGUE_STEPS

SINGLE_STEPS = sorted(name for name in ACTIVATIONS if "," not in name)


@st.composite
def epilogue_chains(draw: st.DrawFn) -> str | None:
    """None, or a chain of 1 to 4 steps (at most one PRelu), comma-separated."""
    steps = draw(st.lists(st.sampled_from(SINGLE_STEPS), min_size=0, max_size=MAX_EPILOGUE_STEPS))
    while steps.count("PRelu") > 1:
        steps.remove("PRelu")
    return ",".join(steps) or None


@st.composite
def conv_configs(draw):
    k = draw(st.integers(1, 3))
    group = draw(st.sampled_from(["one", "two", "depthwise", "depthwise_multiplier"]))
    cg = draw(st.integers(1, 4))
    groups = {
        "one": 1,
        "two": 2,
        "depthwise": draw(st.integers(1, 6)),
        "depthwise_multiplier": draw(st.integers(1, 4)),
    }[group]
    if group in ("depthwise", "depthwise_multiplier"):
        cg = 1
    mult = draw(st.integers(2, 3)) if group == "depthwise_multiplier" else draw(st.integers(1, 3))
    c, m = cg * groups, mult * groups
    max_size = {1: 40, 2: 14, 3: 7}[k]
    kernel = draw(st.lists(st.integers(1, 5 if k < 3 else 3), min_size=k, max_size=k))
    strides = draw(st.lists(st.integers(1, 3), min_size=k, max_size=k))
    dilations = draw(st.lists(st.integers(1, 3), min_size=k, max_size=k))
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    pads = draw(st.lists(st.integers(0, 3), min_size=2 * k, max_size=2 * k))
    dilated = [(kk - 1) * d + 1 for kk, d in zip(kernel, dilations)]
    # Spatial sizes for which the dilated kernel fits the padded input.
    sizes = []
    for i in range(k):
        padding = pads[i] + pads[i + k] if auto_pad == "NOTSET" else 0
        low = max(1, dilated[i] - padding) if auto_pad in ("NOTSET", "VALID") else 1
        sizes.append(draw(st.integers(low, max(low, max_size))))
    attrs = {"strides": strides, "dilations": dilations, "group": groups}
    if auto_pad == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto_pad
    batch = draw(st.integers(1, 3))
    return {
        "x_shape": (batch, c, *sizes),
        "w_shape": (m, cg, *kernel),
        "attrs": attrs,
        "sparsity": draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])),
        "bias": draw(st.booleans()),
        "activation": draw(epilogue_chains()),
        "symbolic": tuple(draw(st.lists(st.booleans(), min_size=k + 2, max_size=k + 2))),
        "index_dtype": draw(st.sampled_from([np.int32, np.int64])),
        "threads": draw(st.sampled_from([1, 2])),
        "empty_rows": draw(st.integers(0, 2)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@pytest.mark.parametrize("isa", isas.PARAMS)
@given(config=conv_configs())
def test_sparse_conv_equals_conv(isa, config) -> None:
    seed = config.pop("seed")
    assert_sparse_matches_dense(np.random.default_rng(seed), **config, isa=isa)
