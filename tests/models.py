"""Builders shared by the tests: the same convolution once as ONNX Conv (the reference, run by
ORT's own kernel) and once as SparseConv (run by the plugin)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnx_sparsify
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import layer_models
from onnx_sparsify._contract import ACTIVATIONS as CONTRACT_ACTIVATIONS

if TYPE_CHECKING:
    from isa import Variant
from onnx_sparsify.check import relative_l2
from onnx_sparsify.csr import dense_to_csr
from onnx_sparsify.epilogue import Activation, attributes
from onnx_sparsify.layer_models import IR_VERSION, OPSET, sparse_conv_model, x_input  # noqa: F401 (re-exported)

# The epilogues the tests run: SparseConv's `activation` (one step or a comma-separated chain) ->
# the activation_params they use (every step's, in order). PRelu's slopes come from prelu_slopes.
ACTIVATIONS: dict[str, Sequence[float]] = {
    "Relu": (),
    "LeakyRelu": (0.15,),
    "Clip": (-0.5, 0.75),
    "Sigmoid": (),
    "HardSigmoid": (0.3, 0.4),
    "HardSwish": (),
    "SiLU": (),
    "Tanh": (),
    "Gelu": (),
    "GeluTanh": (),
    "QuickGelu": (1.3,),
    "Mish": (),
    "PRelu": (),
    "LeakyRelu,Clip": (0.2, -0.25, np.inf),  # LeakyRelu then Max(x, -0.25), as TF exports write it
    "Mish,HardSigmoid,PRelu,Clip": (0.3, 0.4, -np.inf, 0.6),  # the longest chain
}


def params_for(activation: str | None) -> tuple[float, ...]:
    """The activation_params the tests use for `activation`: its entry in ACTIVATIONS, or for
    another chain, each step's entry in order (every step then has its parameters given)."""
    if not activation:
        return ()
    if activation in ACTIVATIONS:
        return tuple(ACTIVATIONS[activation])
    steps = activation.split(",")
    if not any(CONTRACT_ACTIVATIONS[s] for s in steps):
        return ()
    return tuple(p for s in steps for p in (ACTIVATIONS[s] or CONTRACT_ACTIVATIONS[s]))


def prelu_slopes(channels: int) -> tuple[float, ...]:
    """PRelu's slopes in the tests: a different one per channel, negative ones included."""
    return tuple(float(v) for v in np.linspace(-0.6, 1.4, channels, dtype=np.float32))


def epilogue_steps(activation: str | None, params: Sequence[float], channels: int) -> list[Activation]:
    """The chain of steps that SparseConv's `activation` / `activation_params` name."""
    if not activation:
        return []
    steps, rest = [], list(params)
    for name in activation.split(","):
        count = len(CONTRACT_ACTIVATIONS[name])
        taken, rest = (tuple(rest[:count]), rest[count:]) if params else ((), rest)
        steps.append(Activation(name, taken, prelu_slopes(channels) if name == "PRelu" else ()))
    return steps


def epilogue_attributes(activation: str | None, params: Sequence[float], channels: int) -> dict[str, Any]:
    """SparseConv's epilogue attributes (activation, activation_params, activation_slopes)."""
    return attributes(epilogue_steps(activation, params, channels))


def graph_model(
    nodes: Sequence[onnx.NodeProto],
    inits: Sequence[onnx.TensorProto],
    x_shape: Sequence[Any] = (1, 4, 8, 8),
    outputs: Sequence[str] = ("y",),
    output_shape: Sequence[Any] | None = None,
    opset: int = OPSET,
    ir: int = IR_VERSION,
    value_info: Sequence[onnx.ValueInfoProto] = (),
    functions: Sequence[onnx.FunctionProto] = (),
    extra_opsets: Sequence[onnx.OperatorSetIdProto] = (),
) -> onnx.ModelProto:
    """A model whose main graph is `nodes`, reading float input 'x' and writing `outputs` (of
    `output_shape`, None for none): the tests' builder for graphs around Convs."""
    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, output_shape) for o in outputs],
        list(inits),
        value_info=list(value_info),
    )
    opsets = [helper.make_opsetid("", opset), *extra_opsets]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir, functions=list(functions))


def conv_relu_conv(
    channels: Sequence[int],
    sparsity: float,
    x_dims: Sequence[Any],
    opset: int = OPSET,
    output_shape: Sequence[Any] | None = None,
    seed: int = 0,
) -> onnx.ModelProto:
    """x -> Conv 3x3 'conv1' (pads 1) -> Relu 'relu1' -> Conv 1x1 'conv2' -> y, channels
    c0 -> c1 -> c2, both weights with `sparsity` zeros: the tests' small two-layer network."""
    c0, c1, c2 = channels
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu1"),
        helper.make_node("Conv", ["b", "w2"], ["y"], name="conv2"),
    ]
    inits = [
        numpy_helper.from_array(random_sparse_weight(rng, (c1, c0, 3, 3), sparsity), "w1"),
        numpy_helper.from_array(random_sparse_weight(rng, (c2, c1, 1, 1), sparsity), "w2"),
    ]
    return graph_model(nodes, inits, x_dims, output_shape=output_shape, opset=opset)


def conv_model(
    x_shape: Sequence[int],
    weight: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict[str, Any],
    activation: str | None = None,
    activation_params: Sequence[float] = (),
    symbolic: Sequence[bool] = (),
) -> onnx.ModelProto:
    """Conv (+ activation) with ONNX's own ops: the reference (layer_models.conv_model)."""
    steps = epilogue_steps(activation, activation_params, weight.shape[0])
    return layer_models.conv_model(x_shape, weight, bias, attrs, steps, symbolic)


def sparse_conv_from_dense(
    x_shape: Sequence[int],
    weight: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict[str, Any],
    activation: str | None = None,
    activation_params: Sequence[float] = (),
    symbolic: Sequence[bool] = (),
    index_dtype: type = np.int32,
) -> onnx.ModelProto:
    """conv_model's layer as one SparseConv node (layer_models.sparse_conv_from_dense)."""
    steps = epilogue_steps(activation, activation_params, weight.shape[0])
    return layer_models.sparse_conv_from_dense(x_shape, weight, bias, attrs, steps, symbolic, index_dtype)


def session(model: onnx.ModelProto, plugin: bool, threads: int = 1) -> ort.InferenceSession:
    options = onnx_sparsify.session_options() if plugin else ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_nan_prefilled(sess: ort.InferenceSession, x: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
    """Runs with the output bound to a NaN-filled buffer, so an element the kernel never
    writes shows up as NaN."""
    y = np.full(out_shape, np.nan, dtype=np.float32)
    binding = sess.io_binding()
    binding.bind_cpu_input(sess.get_inputs()[0].name, np.ascontiguousarray(x))
    binding.bind_output(sess.get_outputs()[0].name, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
    sess.run_with_iobinding(binding)
    return y


rel_l2 = relative_l2  # the library's error measure, float64


def stable_seed(*parts: object) -> int:
    """A seed for np.random.default_rng that is the same in every process for the same `parts`
    (ints, floats, strings and tuples of them): hash() of a string changes with PYTHONHASHSEED."""
    return zlib.crc32(repr(parts).encode())


def seeded_rng(*parts: object) -> np.random.Generator:
    """A generator seeded from `parts` (stable_seed): one test case, one fixed stream."""
    return np.random.default_rng(stable_seed(*parts))


def random_sparse_weight(
    rng: np.random.Generator, shape: Sequence[int], sparsity: float, empty_rows: int = 0
) -> np.ndarray:
    """A float32 weight with about `sparsity` zeros, unstructured, and `empty_rows` output
    channels with no nonzero at all."""
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) < sparsity] = 0.0
    if empty_rows:
        w[rng.choice(shape[0], size=min(empty_rows, shape[0]), replace=False)] = 0.0
    return w


def ort_deviates_from_onnx(x_shape: Sequence[int], attrs: dict[str, Any], kernel_shape: Sequence[int]) -> bool:
    """True where ORT's Conv does not run ONNX's definition: SAME padding with dilations, which it
    refuses (SparseConv follows onnx.reference there). Elsewhere, SAME with a stride longer than
    the kernel included, ORT's Conv is the reference."""
    auto_pad = attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return False
    return any(d != 1 for d in attrs.get("dilations", [1] * len(kernel_shape)))


def dense_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """ORT's own Conv, or onnx.reference where ORT deviates from ONNX's definition."""
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    weight = next(t for t in model.graph.initializer if t.name == conv.input[1])
    if ort_deviates_from_onnx(x.shape, attrs, list(weight.dims)[2:]):
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.float32)
    return session(model, plugin=False).run(None, {"x": x})[0]


def assert_sparse_matches_dense(
    rng: np.random.Generator,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    attrs: dict[str, Any],
    sparsity: float = 0.9,
    bias: bool = True,
    activation: str | None = None,
    symbolic: Sequence[bool] = (),
    index_dtype: type = np.int32,
    threads: int = 1,
    empty_rows: int = 0,
    isa: Variant | None = None,
) -> None:
    """SparseConv through the plugin (and through the pybind11 module) equals ORT's Conv with
    the same dense weight, within float32 rounding; every output element is written. `isa`
    forces the CPU kernel's variant (tests/isa.py)."""
    from isa import core_args, forced_isa
    from onnx_sparsify import _core

    weight = random_sparse_weight(rng, w_shape, sparsity, empty_rows)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    x = rng.standard_normal(x_shape).astype(np.float32)
    params = params_for(activation)

    dense = conv_model(x_shape, weight, b, attrs, activation, params, symbolic)
    expected = dense_reference(dense, x)

    model = sparse_conv_from_dense(x_shape, weight, b, attrs, activation, params, symbolic, index_dtype)
    with forced_isa(isa):
        sparse_session = session(model, plugin=True, threads=threads)
    actual = run_nan_prefilled(sparse_session, x, expected.shape)
    assert not np.isnan(actual).any(), "SparseConv left output elements unwritten"
    err = rel_l2(actual, expected)
    assert err <= 1e-5, f"relative L2 error {err:.3g} against ORT Conv"

    csr = dense_to_csr(weight, index_dtype)
    direct_attrs = dict(attrs, kernel_shape=list(w_shape[2:]), **epilogue_attributes(activation, params, w_shape[0]))
    out = np.full(expected.shape, np.nan, np.float32)
    _core.sparse_conv(
        x,
        csr.values,
        csr.col_indices,
        csr.row_ptr,
        b,
        attributes=direct_attrs,
        threads=threads,
        out=out,
        **core_args(isa),
    )
    assert not np.isnan(out).any(), "pybind11 kernel left output elements unwritten"
    err = rel_l2(out, expected)
    assert err <= 1e-5, f"pybind11 kernel: relative L2 error {err:.3g} against ORT Conv"
