"""RateController: ticks on a fixed schedule, overruns counted without bursts."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.sim2real.rate import RateController, timing_stats


class FakeClock:
    """Time advances by what the loop sleeps or works, plus 1 us per clock read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_ticks_follow_the_schedule_and_the_spin_ends_at_the_deadline() -> None:
    clock = FakeClock()
    rate = RateController(100, clock=clock, sleep=clock.sleep)
    start = rate.start()
    ticks = [rate.wait() for _ in range(5)]
    for k, tick in enumerate(ticks, start=1):
        assert tick.time == pytest.approx(start + k * 0.01, abs=5e-6)
        assert 0 <= tick.lateness < 5e-6 and not tick.overrun
    assert [t.index for t in ticks] == [0, 1, 2, 3, 4]


def test_an_overrun_is_counted_and_the_schedule_restarts_without_a_burst() -> None:
    clock = FakeClock()
    rate = RateController(100, clock=clock, sleep=clock.sleep)
    rate.start()
    rate.wait()
    clock.sleep(0.025)  # the step's work takes 2.5 periods
    late = rate.wait()
    assert late.overrun and late.lateness == pytest.approx(0.015, abs=1e-5)
    after = rate.wait()  # one whole period after the overrun, not at once
    assert not after.overrun
    assert after.time - late.time == pytest.approx(0.01, abs=1e-5)
    stats = rate.stats()
    assert stats.steps == 3 and stats.overruns == 1
    assert stats.jitter_max == pytest.approx(0.015, abs=1e-5)


def test_a_real_clock_holds_100_hz() -> None:
    rate = RateController(100)
    rate.start()
    for _ in range(30):
        rate.wait()
    # The median period: a preemption on a loaded machine (the suite runs on two
    # workers) makes one period long, an overrun, and the schedule restarts after it.
    median = float(np.median([t.period for t in rate.ticks]))
    assert median == pytest.approx(0.01, rel=0.1)


@pytest.mark.parametrize("hz", [0, -5, float("inf"), True, "100"])
def test_bad_rates_are_named(hz: object) -> None:
    with pytest.raises(ValueError, match="RateController.hz must be a finite positive number"):
        RateController(hz)  # type: ignore[arg-type]


def test_stats_need_ticks() -> None:
    with pytest.raises(ValueError, match="no ticks"):
        timing_stats([], 0.01)
