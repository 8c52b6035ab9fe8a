"""The statistics of the end-to-end decision: a confidence interval on a model's speedup from
paired, interleaved timing rounds, and a sequential rule that times more rounds until the
interval decides.

Each round times the original and the rewrite one after the other, so a drift of the machine's
speed touches both; the round's speedup is original_median / rewritten_median (paired). The
interval is on the median of the rounds' log-speedups: the Hodges-Lehmann estimate with its exact
Wilcoxon signed-rank interval. With the two models' noise alike, a round's log-speedup is
symmetric around the true one (the difference of two like errors), which is all the interval
assumes; it has no assumption of normality, and a round spoiled by an outlier (the machine busy
for one block) counts as one rank, not by its size: it widens the interval while few rounds are
timed, and not at all once the interval drops more than the n Walsh means that pair with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

CONFIDENCE = 0.99  # two-sided, at each look; looks are many, so each is strict
MIN_ROUNDS = 8  # the fewest rounds whose exact 99% interval is finite (2 ** -8 <= 0.005)
MAX_ROUNDS = 40
BUDGET_S = 10.0  # after MIN_ROUNDS, no new round starts once the timing has taken this long


@dataclass(frozen=True)
class Interval:
    """The speedup's estimate and its interval (original time / rewritten time, so > 1 is
    faster), from `rounds` paired rounds."""

    estimate: float
    low: float
    high: float
    rounds: int
    confidence: float = CONFIDENCE

    def verdict(self, threshold: float) -> str:
        """'keep' when the whole interval is at or above `threshold`, 'reject' when it is below,
        else 'undecided'."""
        if self.low >= threshold:
            return "keep"
        if self.high < threshold:
            return "reject"
        return "undecided"

    def __str__(self) -> str:
        high = "inf" if math.isinf(self.high) else f"{self.high:.2f}x"
        return (
            f"{self.estimate:.2f}x, {self.confidence:.0%} interval {self.low:.2f}x to {high} over {self.rounds} "
            "paired rounds"
        )


def log_ratios(original: Sequence[float], rewritten: Sequence[float]) -> list[float]:
    """Each round's log-speedup: log(original / rewritten), round by round."""
    return [math.log(o / r) for o, r in zip(original, rewritten)]


@lru_cache(maxsize=None)
def _signed_rank_cdf(n: int) -> tuple[float, ...]:
    """P(T <= t) for t = 0 .. n(n+1)/2, T the Wilcoxon signed-rank statistic of n rounds under
    the null (each rank's sign a fair coin): the subsets of {1..n} counted by their sum."""
    top = n * (n + 1) // 2
    counts = [1] + [0] * top
    for rank in range(1, n + 1):
        for s in range(top, rank - 1, -1):
            counts[s] += counts[s - rank]
    total, cdf, running = 2**n, [], 0
    for c in counts:
        running += c
        cdf.append(running / total)
    return tuple(cdf)


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The Hodges-Lehmann estimate of the center of `values` (the median of the pairwise means)
    and its exact Wilcoxon signed-rank interval, as (estimate, low, high); the interval is
    (-inf, inf) when too few values can reach `confidence`."""
    n = len(values)
    if n == 0:
        return 0.0, -math.inf, math.inf
    walsh = sorted((values[i] + values[j]) / 2 for i in range(n) for j in range(i, n))
    mid = len(walsh) // 2
    estimate = walsh[mid] if len(walsh) % 2 else (walsh[mid - 1] + walsh[mid]) / 2
    tail = (1 - confidence) / 2
    cdf = _signed_rank_cdf(n)
    k = 0  # the largest k with P(T <= k - 1) <= tail: the interval drops k Walsh means at each end
    while k < len(cdf) and cdf[k] <= tail:
        k += 1
    if k == 0:
        return estimate, -math.inf, math.inf
    return estimate, walsh[k - 1], walsh[len(walsh) - k]


def speedup_interval(original: Sequence[float], rewritten: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The speedup of `rewritten` over `original` from their paired round medians."""
    estimate, low, high = median_interval(log_ratios(original, rewritten), confidence)
    return Interval(math.exp(estimate), math.exp(low), math.exp(high), len(original), confidence)


@dataclass
class Sampled:
    """What the sequential rule timed: each model's round medians (the original first) and the
    interval of the candidate it decided on."""

    rounds: list[list[float]]  # rounds[i]: each model's median in round i
    best: int  # the candidate (0-based, the original not counted) chosen: choose()
    interval: Interval
    decision: str  # 'keep', 'reject' or 'undecided' (the budget ran out)
    versus: Interval | None = None  # the chosen candidate's speedup over the first, when not the first

    def medians(self, model: int) -> list[float]:
        return [r[model] for r in self.rounds]


def choose(candidates: Sequence[Sequence[float]], confidence: float = CONFIDENCE) -> tuple[int, Interval | None]:
    """The candidate to decide on, from each one's round medians, in order of preference: the first
    unless a later one's interval against the one chosen so far lies wholly above 1x (it is shown
    faster), with that interval (None for the first)."""
    best, versus = 0, None
    for c in range(1, len(candidates)):
        interval = speedup_interval(candidates[best], candidates[c], confidence)
        if interval.low > 1.0:
            best, versus = c, interval
    return best, versus


def look_schedule(min_rounds: int, max_rounds: int) -> list[int]:
    """The round counts at which the interval is looked at: `min_rounds`, then each about a quarter
    more, and `max_rounds`. Every look is a chance of a wrong decision; few looks keep that small."""
    looks = [min_rounds]
    while looks[-1] < max_rounds:
        looks.append(min(max_rounds, max(looks[-1] + 1, round(looks[-1] * 1.25))))
    return looks


def sample_until_decided(
    next_round: Callable[[], Sequence[float]],
    threshold: float,
    clock: Callable[[], float],
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    budget_s: float = BUDGET_S,
    confidence: float = CONFIDENCE,
) -> Sampled:
    """Times rounds (`next_round()`: each model's median, the original first, then one or more
    candidates, in order of preference) until the interval of the chosen candidate (choose())
    against the original lies wholly at or above `threshold` (keep) or below it (reject), or
    until `max_rounds`, or `budget_s` of `clock()` after `min_rounds` (undecided)."""
    start = clock()
    looks = set(look_schedule(min_rounds, max_rounds))
    rounds: list[list[float]] = []
    while True:
        rounds.append(list(next_round()))
        over = len(rounds) >= max_rounds or clock() - start >= budget_s
        if len(rounds) < min_rounds or (len(rounds) not in looks and not over):
            continue
        original = [r[0] for r in rounds]
        intervals = [speedup_interval(original, [r[c] for r in rounds], confidence) for c in range(1, len(rounds[0]))]
        best, versus = choose([[r[c] for r in rounds] for c in range(1, len(rounds[0]))], confidence)
        decision = intervals[best].verdict(threshold)
        if decision != "undecided" or over:
            return Sampled(rounds, best, intervals[best], decision, versus)
