"""Rate control: a fixed control frequency, each step's timing recorded.

A ``RateController`` paces a control loop at ``hz``: ``wait()`` returns at each tick
of a fixed schedule (deadlines ``t0 + k / hz``), sleeping most of the way and
spinning the last ``spin_s`` (``time.sleep`` wakes up to a few hundred microseconds
late, a fifth of a 500 Hz period). A step that ends after its deadline is an
*overrun*: it is counted, and the schedule restarts from that moment instead of
firing the missed ticks in a burst (a robot must not get several commands at once
to catch up). Nothing is hidden: every period and overrun is recorded, and
``TimingStats`` summarizes them (jitter = period minus the nominal period).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from metarl.checks import check_number

__all__ = ["RateController", "Tick", "TimingStats", "timing_stats"]


@dataclass(frozen=True)
class Tick:
    """One control period as it happened.

    ``time``: when ``wait`` returned (the clock's seconds); ``period``: since the
    previous tick (the nominal period for the first); ``lateness``: how long after
    its deadline ``wait`` returned (>= 0; the spin's precision, or the overrun);
    ``overrun``: the step's work had passed the deadline before ``wait`` was called.
    """

    index: int
    time: float
    period: float
    lateness: float
    overrun: bool


class RateController:
    """Paces a loop at ``hz`` control steps per second (module docstring).

    ``clock``/``sleep`` are injectable for tests (defaults: ``time.perf_counter`` and
    ``time.sleep``).

    Raises:
        ValueError: ``hz`` not a finite positive number, or ``spin_s`` negative.
    """

    def __init__(
        self,
        hz: float,
        *,
        spin_s: float = 0.0005,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.hz = check_number("RateController.hz", hz, gt=0)
        check_number("RateController.spin_s", spin_s, ge=0)
        self.period = 1.0 / self.hz
        self.spin_s = float(spin_s)
        self._clock, self._sleep = clock, sleep
        self.ticks: list[Tick] = []
        self._deadline: float | None = None
        self._last: float | None = None

    def start(self) -> float:
        """Start (or restart) the schedule now: the next deadline is one period away.
        Returns the clock's time."""
        now = self._clock()
        self._deadline = now + self.period
        self._last = now
        return now

    def wait(self) -> Tick:
        """Return at the next deadline (at once if it has passed: an overrun) and record
        the tick. Starts the schedule if ``start`` was not called."""
        if self._deadline is None or self._last is None:
            self.start()
        assert self._deadline is not None and self._last is not None
        deadline = self._deadline
        now = self._clock()
        overrun = now > deadline
        if not overrun:
            if deadline - now > self.spin_s:
                self._sleep(deadline - now - self.spin_s)
            while (now := self._clock()) < deadline:
                pass
        tick = Tick(
            index=len(self.ticks),
            time=now,
            period=now - self._last,
            lateness=now - deadline,
            overrun=overrun,
        )
        self.ticks.append(tick)
        self._last = now
        # After an overrun the schedule restarts from now: no burst of missed ticks.
        self._deadline = (now if overrun else deadline) + self.period
        return tick

    def stats(self) -> TimingStats:
        """``timing_stats`` of the ticks so far."""
        return timing_stats(self.ticks, self.period)


@dataclass(frozen=True)
class TimingStats:
    """Summary of a run's ticks, in seconds (``jitter_*``: period - nominal period)."""

    hz: float
    steps: int
    overruns: int
    period_mean: float
    period_std: float
    jitter_p50: float
    jitter_p99: float
    jitter_max: float
    lateness_max: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def timing_stats(ticks: Sequence[Tick], period: float) -> TimingStats:
    """Summarize ``ticks`` of a loop whose nominal period is ``period`` seconds. The
    first tick (whose period is measured from ``start``) counts like the others.

    Raises:
        ValueError: no ticks.
    """
    if not ticks:
        raise ValueError("timing_stats: no ticks recorded")
    periods = np.array([t.period for t in ticks])
    jitter = np.abs(periods - period)
    return TimingStats(
        hz=1.0 / period,
        steps=len(ticks),
        overruns=sum(t.overrun for t in ticks),
        period_mean=float(periods.mean()),
        period_std=float(periods.std()),
        jitter_p50=float(np.percentile(jitter, 50)),
        jitter_p99=float(np.percentile(jitter, 99)),
        jitter_max=float(jitter.max()),
        lateness_max=float(max(t.lateness for t in ticks)),
    )
