"""The end-to-end check (onnx_sparsify/end_to_end.py): what the default rewrite keeps is
measured. The decision logic is tested with injected measurements (the profiler's per-node
times and the models' medians), so no assertion depends on this machine's timing; one test
runs the real profiler to check what the attribution assumes about ORT's optimized graph."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnx_sparsify
import pytest
from models import IR_VERSION, OPSET, conv_relu_conv, random_sparse_weight, rel_l2, session
from onnx import TensorProto, helper, numpy_helper
from onnx_sparsify import cli, end_to_end, speedup_stats
from onnx_sparsify._contract import DOMAIN, OP_TYPE
from onnx_sparsify.end_to_end import LayerCost, attribute_reorders, dense_scale, losers
from onnx_sparsify.result import Code


def _model(size: int = 32, dims=None) -> onnx.ModelProto:
    """conv1 3x3 (32 -> 32) -> Relu -> conv2 1x1 (32 -> 64), both 90% zeros: big enough that
    the cost model (the suite's reference rates, conftest.py) rewrites both."""
    return conv_relu_conv((32, 32, 64), 0.9, dims or [1, 32, size, size], seed=1)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


class Injected:
    """Stands in for the profiler and the model timer: `layer_us` is each SparseConv's time by
    layer name, `dense_conv_us` the dense model's Convs in total, `medians` what each timing
    round gives (original first, then each candidate: a median for every round, or a sequence of
    round medians, repeated as more rounds are timed)."""

    def __init__(self, monkeypatch, layer_us: dict[str, float], dense_conv_us: float, medians: list):
        self.layer_us, self.dense_conv_us = layer_us, dense_conv_us
        self.medians = [(m,) if isinstance(m, float) else tuple(m) for m in medians]
        self.timed: list[list[list[str]]] = []
        monkeypatch.setattr(end_to_end, "_profile", self.profile)
        monkeypatch.setattr(end_to_end, "model_rounds", self.model_rounds)

    def profile(self, model, feeds, plugin, threads, folder, tag):
        if not plugin:
            return {"conv1": ("Conv", self.dense_conv_us / 2), "conv2": ("FusedConv", self.dense_conv_us / 2)}, model
        labels = {}
        for node in model.graph.node:
            if node.op_type == OP_TYPE:
                layer = "conv1" if node.input[0] == "x" else "conv2"
                labels[node.name] = (OP_TYPE, self.layer_us[layer])
        return labels, model

    def model_rounds(self, original, candidates, feeds, threads):
        self.timed.append([_ops(m) for m in candidates])
        models = self.medians[: 1 + len(candidates)]
        for i in itertools.count():
            yield [m[i % len(m)] for m in models]


def test_losers_and_dense_scale() -> None:
    costs = [
        LayerCost(("main", "a"), 10.0, 0.0, 30.0),  # 3x
        LayerCost(("main", "b"), 10.0, 25.0, 30.0),  # layout conversions make it lose
        LayerCost(("main", "c"), 50.0, 0.0, None),  # no estimate: the model timing decides
    ]
    assert losers(costs) == [("main", "b")]
    assert costs[1].speedup == pytest.approx(30 / 35)
    assert dense_scale(200.0, [50.0, 50.0]) == 2.0
    assert dense_scale(200.0, [50.0, None]) == 1.0
    assert dense_scale(0.0, [50.0]) == 1.0


def test_reorders_are_charged_to_the_sparse_layers_they_serve() -> None:
    """ReorderOutput -> SparseConv -> Relu -> ReorderInput: both reorders serve that layer; a
    ReorderOutput feeding two SparseConvs is split between them; one between dense Convs is
    nobody's."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c0"], name="dense0", domain="com.microsoft.nchwc"),
        helper.make_node("ReorderOutput", ["c0"], ["r0"], name="out0", domain="com.microsoft.nchwc"),
        helper.make_node(OP_TYPE, ["r0"], ["s1"], name="L1", domain=DOMAIN),
        helper.make_node(OP_TYPE, ["r0"], ["s2"], name="L2", domain=DOMAIN),
        helper.make_node("Add", ["s1", "s2"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("ReorderInput", ["r"], ["i0"], name="in0", domain="com.microsoft.nchwc"),
        helper.make_node("Conv", ["i0", "w"], ["c1"], name="dense1", domain="com.microsoft.nchwc"),
        helper.make_node("ReorderOutput", ["c1"], ["y"], name="out1", domain="com.microsoft.nchwc"),
    ]
    graph = helper.make_graph(nodes, "g", [], [])
    model = helper.make_model(graph)
    labels = {"L1": ("main", "conv1"), "L2": ("main", "conv2")}
    served = attribute_reorders(model, labels)
    assert sorted(served["out0"]) == [("main", "conv1"), ("main", "conv2")]
    assert sorted(served["in0"]) == [("main", "conv1"), ("main", "conv2")]
    assert "out1" not in served
    profile = {"L1": (OP_TYPE, 10.0), "L2": (OP_TYPE, 20.0), "out0": ("ReorderOutput", 8.0), "in0": ("", 4.0)}
    costs = {c.key: c for c in end_to_end.layer_costs(profile, model, labels, {}, 1.0)}
    assert costs["main", "conv1"].reorder_us == pytest.approx(6.0)
    assert costs["main", "conv2"].sparse_us == 20.0


def test_a_layer_measured_slower_is_reverted(monkeypatch) -> None:
    """conv2's SparseConv costs far more than its share of the dense Convs: it goes back to
    Conv; the model with conv1 alone measures fastest and is kept."""
    fake = Injected(monkeypatch, {"conv1": 1.0, "conv2": 1000.0}, 100.0, [1.0, 1.2, 0.8])
    model, report = onnx_sparsify.sparsify(_model())
    assert fake.timed == [[[OP_TYPE, OP_TYPE], [OP_TYPE, "Conv"]]]
    assert _ops(model) == [OP_TYPE, "Conv"]  # Relu folded into conv1
    a, b = report.layers
    assert a.rewritten and not b.rewritten
    assert "reverted, measured in the model" in b.reason and "predicted" in b.reason
    assert b.measured_speedup < 1 < a.measured_speedup
    assert a.predicted_speedup > 1.1 and a.dense_us_estimate > 0
    e2e = report.end_to_end
    assert (e2e.original_ms, e2e.first_ms, e2e.rewritten_ms) == (1.0, 1.2, 0.8)
    assert e2e.reverted == ["conv2"] and e2e.kept and e2e.speedup == pytest.approx(1.25)
    assert e2e.best_ms == 0.8 and e2e.rounds_lost == 0
    assert b.code == Code.REVERTED and a.code == Code.COST_MODEL
    assert report.to_dict()["end_to_end"]["speedup"] == pytest.approx(1.25)
    assert "1.25x faster" in e2e.verdict  # the report's sentence says so
    assert "with 1 layer(s) reverted, 1.50x, 99% interval 1.50x to 1.50x" in e2e.verdict


def test_reverting_is_kept_only_when_it_measures_faster(monkeypatch) -> None:
    """The plan with the slow layer reverted replaces the plan only when its interval against
    the plan shows it faster: not when slower, nor when its rounds straddle the plan's."""
    Injected(monkeypatch, {"conv1": 1.0, "conv2": 1000.0}, 100.0, [1.0, 0.5, [0.45, 0.55, 0.47, 0.53]])
    model, report = onnx_sparsify.sparsify(_model())
    assert _ops(model) == [OP_TYPE, OP_TYPE] and report.end_to_end.reverted == []
    assert "reverted" not in report.end_to_end.verdict
    Injected(monkeypatch, {"conv1": 1.0, "conv2": 1000.0}, 100.0, [1.0, 0.5, 0.6])
    model, report = onnx_sparsify.sparsify(_model())
    assert _ops(model) == [OP_TYPE, OP_TYPE]
    assert all(layer.rewritten for layer in report.layers)
    assert report.end_to_end.reverted == [] and report.end_to_end.rewritten_ms == 0.5
    slow = report.layers[1]
    assert slow.measured_speedup < 1 and slow.code == Code.COST_MODEL
    assert slow.reason.endswith(
        "; kept although slower than its dense Conv in place: the model with it reverted was timed and was not faster"
    )


def test_a_rewrite_measured_slower_keeps_the_model_dense(monkeypatch, tmp_path) -> None:
    Injected(monkeypatch, {"conv1": 1.0, "conv2": 1.0}, 100.0, [1.0, 1.01])
    source = _model()
    model, report = onnx_sparsify.sparsify(source)
    assert _ops(model) == ["Conv", "Relu", "Conv"]
    assert model.graph == source.graph
    assert not report.rewritten and report.end_to_end.rewritten_ms == report.end_to_end.original_ms
    e2e = report.end_to_end
    assert not e2e.kept and e2e.best_ms == 1.01 and e2e.measured_speedup == pytest.approx(1 / 1.01)
    assert "kept dense" in e2e.verdict and "0.99x" in e2e.verdict
    assert all(layer.code == Code.KEPT_DENSE for layer in report.layers)
    assert all("the model kept dense (end to end)" in layer.reason for layer in report.layers)
    # The command exits 5 (nothing rewritten) and says why.
    path, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    onnx.save(source, path)
    assert cli.main([str(path), "-o", str(out), "-q"]) == cli.EXIT_NOTHING_REWRITTEN
    assert _ops(onnx.load(out)) == ["Conv", "Relu", "Conv"]


def test_unknown_sizes_keep_the_model_dense_and_say_how_to_measure(monkeypatch) -> None:
    fake = Injected(monkeypatch, {"conv1": 1.0, "conv2": 1.0}, 100.0, [1.0, 0.5])
    source = _model(dims=["N", 32, "H", "W"])
    model, report = onnx_sparsify.sparsify(source)
    assert not report.rewritten and fake.timed == []
    assert "--input-shape x:DIMS" in report.end_to_end_skipped and "--no-measure" in report.end_to_end_skipped
    model, report = onnx_sparsify.sparsify(source, input_shapes={"x": [1, 32, 32, 32]})
    assert report.rewritten == 2 and report.end_to_end.inputs == {"x": [1, 32, 32, 32]}
    model, report = onnx_sparsify.sparsify(source, measure=False)  # the cost model alone
    assert report.rewritten == 2 and report.end_to_end is None and "measure=False" in report.end_to_end_skipped


def test_a_rewrite_that_loses_a_round_is_kept_when_the_interval_shows_it_faster(monkeypatch) -> None:
    """Issue 23: a 2x rewrite lost 1 of 5 rounds on a busy machine and was kept dense. Now one
    round in 8 lost only widens the interval: more rounds are timed until it decides, and the
    verdict gives it."""
    original = [1.0] * 8
    lost_one = [0.5] * 7 + [1.05]
    Injected(monkeypatch, {"conv1": 1.0, "conv2": 1.0}, 100.0, [original, lost_one])
    source = _model()
    _, report = onnx_sparsify.sparsify(source)
    e2e = report.end_to_end
    assert report.rewritten == 2 and e2e.kept and e2e.decision == "keep"
    assert e2e.rounds > speedup_stats.MIN_ROUNDS and e2e.rounds_lost == 1
    assert e2e.speedup_low >= end_to_end.MODEL_MARGIN and e2e.speedup_high >= e2e.speedup_low
    assert e2e.confidence == speedup_stats.CONFIDENCE
    assert (
        "2.00x faster" in e2e.verdict and "99% interval" in e2e.verdict and f"over {e2e.rounds} paired" in e2e.verdict
    )


def test_an_undecided_measurement_keeps_the_original_and_says_so(monkeypatch) -> None:
    """Rounds spread evenly either side of the margin, 1.03x: the interval never clears the
    margin nor falls below it; when the budget ends the original, the safer plan, is kept."""
    spread = [np.exp(f) for f in (0.1, -0.1, 0.2, -0.2, 0.3, -0.3)]
    Injected(monkeypatch, {"conv1": 1.0, "conv2": 1.0}, 100.0, [1.0, [1 / 1.03 * f for f in spread]])
    source = _model()
    model, report = onnx_sparsify.sparsify(source)
    e2e = report.end_to_end
    assert model.graph == source.graph and not e2e.kept and e2e.decision == "undecided"
    assert e2e.rounds == speedup_stats.MAX_ROUNDS and e2e.speedup_low < end_to_end.MODEL_MARGIN < e2e.speedup_high
    assert "does not show it at least 1.03x faster within the timing budget" in e2e.verdict
    assert "the original is the safer plan" in e2e.verdict


class Noisy:
    """A busy machine for the model timer: each round a drift common to all models (20%), and
    each model's block of runs with 30% multiplicative noise, 5% of the runs 3x slower; a round
    gives each block's median. The rewrite is `speedup` times faster than the original."""

    RUNS = 5  # a block's runs (the real timer runs a block for 0.1 s, at least 3: a 20 ms model)

    def __init__(self, speedup: float, seed: int) -> None:
        self.speedup, self.rng = speedup, np.random.default_rng(seed)

    def model_rounds(self, original, candidates, feeds, threads):
        bases = [1.0] + [1.0 / self.speedup] * len(candidates)
        while True:
            drift = np.exp(self.rng.normal(0.0, 0.2))
            medians = []
            for base in bases:
                runs = base * drift * np.exp(self.rng.normal(0.0, 0.3, self.RUNS))
                runs[self.rng.random(self.RUNS) < 0.05] *= 3.0
                medians.append(float(np.median(runs)))
            yield medians


def _old_rule_keeps(rounds: list[list[float]]) -> bool:
    """The rule before issue 23, on the first 5 rounds: 1.03x faster overall, faster in each."""
    first = rounds[:5]
    original, rewrite = [r[0] for r in first], [r[1] for r in first]
    overall = float(np.median(original)) >= float(np.median(rewrite)) * 1.03
    return overall and all(o > c for o, c in zip(original, rewrite))


@pytest.mark.parametrize(("speedup", "least_kept", "most_kept"), [(1.3, 19, 20), (1.0, 0, 0), (0.95, 0, 0)])
def test_the_verdict_is_repeatable_on_a_noisy_machine(monkeypatch, speedup, least_kept, most_kept) -> None:
    """Issue 23: 20 seeds of the noise. A true 1.3x is kept in at least 19, a true 1.0x and
    0.95x never. The rule before the issue (1.03x overall and every one of 5 rounds won) fails
    each: it keeps the 1.3x in 9 of the 20, the 1.0x in 2, the 0.95x in 1."""
    Injected(monkeypatch, {"conv1": 1.0, "conv2": 1.0}, 100.0, [])
    source = _model()
    kept, old_kept = 0, 0
    for seed in range(20):
        noisy = Noisy(speedup, seed)
        timed: list[list[float]] = []

        def rounds(*args, noisy=noisy, timed=timed):
            for r in noisy.model_rounds(*args):
                timed.append(r)
                yield r

        monkeypatch.setattr(end_to_end, "model_rounds", rounds)
        _, report = onnx_sparsify.sparsify(source)
        e2e = report.end_to_end
        assert e2e.kept == bool(report.rewritten) and e2e.rounds == len(timed)
        kept += e2e.kept
        old_kept += _old_rule_keeps(timed)
    assert least_kept <= kept <= most_kept, kept
    assert not least_kept <= old_kept <= most_kept, old_kept


def test_the_model_timing_records_each_round(monkeypatch) -> None:
    """time_alternating gives each round's median, which the check compares round by round."""
    from onnx_sparsify import timing

    clock = iter(range(10**6))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock) * 1e-3)  # 1 ms per reading
    made = []
    timings, _ = timing.time_alternating([lambda: made.append(1) or (lambda: None)] * 2, rounds=4, block_s=0.0)
    assert len(made) == 8
    assert all(len(t.round_medians_ms) == 4 for t in timings)
    assert all(r == pytest.approx(1.0) for t in timings for r in t.round_medians_ms)


def test_sample_inputs_are_what_is_timed(monkeypatch) -> None:
    seen = []
    Injected(monkeypatch, {"conv1": 1.0, "conv2": 1.0}, 100.0, [1.0, 0.5])
    monkeypatch.setattr(
        end_to_end, "model_rounds", lambda o, c, feeds, t: seen.append(feeds) or itertools.repeat([1.0, 0.5])
    )
    x = np.full((1, 32, 40, 40), 0.5, np.float32)
    _, report = onnx_sparsify.sparsify(_model(dims=["N", 32, "H", "W"]), sample_inputs={"x": x})
    assert report.rewritten == 2 and seen[0]["x"] is x


def test_a_model_that_fails_to_run_stays_dense(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("ORT refused it")

    monkeypatch.setattr(end_to_end, "_profile", broken)
    model, report = onnx_sparsify.sparsify(_model())
    assert not report.rewritten and "ORT refused it" in report.end_to_end_skipped


def test_forced_and_cuda_decisions_are_not_measured(monkeypatch) -> None:
    fake = Injected(monkeypatch, {"conv1": 1.0, "conv2": 1.0}, 100.0, [1.0, 2.0])
    _, report = onnx_sparsify.sparsify(_model(), min_sparsity=0.5)
    assert report.rewritten == 2 and report.end_to_end is None
    _, report = onnx_sparsify.sparsify(_model(), provider="cuda", min_sparsity=0.5)
    assert report.rewritten == 2 and fake.timed == []


def test_the_real_check_keeps_a_model_that_computes_the_same(tmp_path) -> None:
    """Unpatched: the profiler, ORT's optimized graph and the timer for real. Whatever this
    machine measures, the kept model is consistent with the verdict and right."""
    source = _model(size=48)
    model, report = onnx_sparsify.sparsify(source)
    e2e = report.end_to_end
    assert e2e is not None and e2e.original_ms > 0 and e2e.first_ms > 0 and e2e.seconds > 0
    if report.rewritten:
        assert e2e.kept and e2e.decision == "keep" and e2e.speedup_low >= end_to_end.MODEL_MARGIN
        assert any(layer.measured_speedup is not None for layer in report.layers)
    else:
        assert not e2e.kept and e2e.decision in ("reject", "undecided") and model.graph == source.graph
    x = np.random.default_rng(0).standard_normal((1, 32, 48, 48)).astype(np.float32)
    expected = session(source, plugin=False).run(None, {"x": x})[0]
    assert rel_l2(session(model, plugin=True).run(None, {"x": x})[0], expected) < 1e-5


def test_layout_conversions_around_a_sparse_conv_are_found_in_ort_graph(tmp_path) -> None:
    """ORT keeps dense Convs in its blocked NCHWc layout; a SparseConv between two of them needs
    a ReorderOutput before and a ReorderInput after. The attribution finds both in the graph ORT
    really optimizes (a new ORT naming them otherwise would fail here)."""
    rng = np.random.default_rng(2)
    w = [rng.standard_normal((32, 32, 3, 3)).astype(np.float32) for _ in range(3)]
    w[1] = random_sparse_weight(rng, (32, 32, 3, 3), 0.95)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w0"], ["a"], name="dense_in", pads=[1, 1, 1, 1]),
            helper.make_node("Conv", ["a", "w1"], ["b"], name="sparse", pads=[1, 1, 1, 1]),
            helper.make_node("Conv", ["b", "w2"], ["y"], name="dense_out", pads=[1, 1, 1, 1]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, f"w{i}") for i, v in enumerate(w)],
    )
    source = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    rewritten, report = onnx_sparsify.sparsify(source, min_sparsity=0.9)
    assert [layer.rewritten for layer in report.layers] == [False, True, False]
    labels = end_to_end.label_sparse_nodes(rewritten, {"b": ("main", "sparse")})
    feeds = {"x": rng.standard_normal((1, 32, 28, 28)).astype(np.float32)}
    profile, optimized = end_to_end._profile(rewritten, feeds, True, 1, str(tmp_path), "sparse")
    served = attribute_reorders(optimized, labels)
    kinds = sorted(profile[name][0] for name in served)
    assert kinds == ["ReorderInput", "ReorderOutput"], (kinds, [n.op_type for n in optimized.graph.node])
    (cost,) = end_to_end.layer_costs(profile, optimized, labels, {("main", "sparse"): 100.0}, 1.0)
    assert cost.sparse_us > 0 and cost.reorder_us > 0


def test_min_sparsity_rewrite_is_timed_for_the_report(tmp_path, capsys) -> None:
    """--min-sparsity decides instead of the measurement, but the report still gives the
    end-to-end time (it printed none): timed for real here, nothing reverted; --no-measure
    (measure=False) skips it, and the library's default (timed=False) too."""
    model, report = onnx_sparsify.sparsify(_model(), min_sparsity=0, timed=True)
    e2e = report.end_to_end
    assert report.rewritten == 2 and _ops(model) == [OP_TYPE, OP_TYPE]
    assert e2e.kept and e2e.original_ms > 0 and e2e.rewritten_ms > 0 and e2e.reverted == []
    assert e2e.rounds == speedup_stats.MIN_ROUNDS and e2e.speedup == pytest.approx(e2e.original_ms / e2e.rewritten_ms)
    assert e2e.verdict.endswith("--min-sparsity decided, nothing reverted")
    assert onnx_sparsify.sparsify(_model(), min_sparsity=0, timed=True, measure=False)[1].end_to_end is None
    assert onnx_sparsify.sparsify(_model(), min_sparsity=0)[1].end_to_end is None
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    assert cli.main([str(path), "-o", str(tmp_path / "out.onnx"), "--min-sparsity", "0"]) == cli.EXIT_OK
    assert "end to end (1 thread(s), x 1x32x32x32): original " in capsys.readouterr().err
