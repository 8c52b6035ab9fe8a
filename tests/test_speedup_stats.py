"""onnx_sparsify.speedup_stats: the interval on a model's speedup and the sequential rule."""

from __future__ import annotations

import itertools
import math

import pytest
from onnx_sparsify.speedup_stats import choose, look_schedule, median_interval, sample_until_decided, speedup_interval


def test_the_signed_rank_interval_drops_the_right_walsh_means() -> None:
    # n = 10 at 99%: P(T <= 3) = 5/1024 <= 0.005 < P(T <= 4), so 4 Walsh means go at each end.
    values = [float(v) for v in range(10)]
    walsh = sorted((values[i] + values[j]) / 2 for i in range(10) for j in range(i, 10))
    estimate, low, high = median_interval(values)
    assert (estimate, low, high) == (4.5, walsh[3], walsh[-4])
    assert median_interval(values[:7]) == (3.0, -math.inf, math.inf)  # 2 ** -7 > 0.005: too few
    assert median_interval(values[:7], confidence=0.95)[1] == 1.0  # P(T <= 2) = 3/128 <= 0.025: 3 dropped


def test_an_outlier_round_weighs_as_a_rank_not_by_its_size() -> None:
    """Once the interval drops more Walsh means than the n that pair with the outlier, it does not
    move the interval at all."""
    steady = speedup_interval([1.0] * 20, [0.5] * 19 + [0.55])
    spoiled = speedup_interval([1.0] * 20, [0.5] * 19 + [50.0])  # one round 100x slower
    assert steady.low == pytest.approx(spoiled.low) and spoiled.estimate == pytest.approx(2.0)
    assert spoiled.verdict(1.03) == "keep" and "99% interval 2.00x to 2.00x over 20 paired rounds" in str(spoiled)


def test_the_rule_times_more_rounds_until_it_decides_or_the_budget_ends() -> None:
    assert look_schedule(8, 40) == [8, 10, 12, 15, 19, 24, 30, 38, 40]
    clock = itertools.count()
    res = sample_until_decided(lambda: [1.0, 0.5, 0.4], 1.03, lambda: float(next(clock)))
    assert (res.decision, res.best, len(res.rounds)) == ("keep", 1, 8) and res.interval.estimate == 2.5
    res = sample_until_decided(lambda: [1.0, 1.5], 1.03, lambda: 0.0)
    assert res.decision == "reject" and len(res.rounds) == 8
    flip = itertools.cycle([[1.0, 0.5], [1.0, 2.0]])
    res = sample_until_decided(lambda: next(flip), 1.03, lambda: float(next(clock)), budget_s=5.0)
    assert res.decision == "undecided" and len(res.rounds) == 8  # the budget ended at the first look


def test_a_later_candidate_is_chosen_only_when_shown_faster_than_the_first() -> None:
    plan = [0.5] * 10
    assert choose([plan, [0.45, 0.55] * 5]) == (0, None)  # straddles the plan: the plan stands
    assert choose([plan, [0.6] * 10]) == (0, None)
    best, versus = choose([plan, [0.4, 0.42] * 5])
    assert best == 1 and versus is not None and versus.low > 1.0
