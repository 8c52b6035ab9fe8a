"""onnx_sparsify.timing: the alternation every figure comes from. No timing is asserted, only
the discipline: while one variant is timed, no other session lives (an idle ORT session's
spinning threads slowed a 2-thread model 2.6x when one did)."""

from __future__ import annotations

from onnx_sparsify.timing import time_alternating


class Runner:
    """Stands in for a session: counts how many exist."""

    alive = 0
    seen_beside: list[int] = []

    def __init__(self) -> None:
        Runner.seen_beside.append(Runner.alive)  # others alive when this one is made
        Runner.alive += 1

    def __del__(self) -> None:
        Runner.alive -= 1

    def __call__(self) -> None:
        pass


def test_one_session_lives_while_one_is_timed() -> None:
    Runner.alive, Runner.seen_beside = 0, []
    timings, last = time_alternating([Runner, Runner, Runner], rounds=2, block_s=0.0, min_runs=3, runners=True)
    timed = Runner.seen_beside[:6]  # 3 variants x 2 rounds, then one fresh runner of each
    assert timed == [0] * 6, timed
    assert [t.runs for t in timings] == [6, 6, 6] and len(last) == 3 and Runner.alive == 3


def test_without_runners_nothing_stays_alive() -> None:
    Runner.alive, Runner.seen_beside = 0, []
    timings, last = time_alternating([Runner, Runner], rounds=2, block_s=0.0, min_runs=3)
    assert last == [] and Runner.alive == 0 and Runner.seen_beside == [0] * 4
