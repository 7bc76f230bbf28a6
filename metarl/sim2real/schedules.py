"""Randomization schedules: what domain-randomized training draws physics from, over time.

A schedule holds the current physics params (name -> ``PhysicsParam``, the input of
``PhysicsRandomization.set_params``) and is updated by an outer loop between
training iterations: ``update(iteration, metrics)`` after iteration ``iteration``
(1-based) with that iteration's metrics, returning whether the params changed.
Whoever trains pushes ``params()`` to every environment that draws from them
(``metarl.rllib.randomization_callbacks`` does it on RLlib's env runners).

Here: ``FixedRandomization`` (a constant distribution, e.g. uniform domain
randomization) and ``LinearWidening`` (a curriculum: the log-uniform range of each
param widens linearly with the iterations). Schedules driven by the policy's
success (automatic DR, DORAEMON) subclass ``RandomizationSchedule`` as well.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from metarl.checks import check_int, check_number
from metarl.envs.physics_distributions import Fixed, LogUniform
from metarl.envs.physics_param import PhysicsParam

__all__ = ["FixedRandomization", "LinearWidening", "RandomizationSchedule"]


class RandomizationSchedule(ABC):
    """The physics params to draw from now, and how they change between iterations."""

    @abstractmethod
    def params(self) -> dict[str, PhysicsParam]:
        """The params in force (a fresh dict; ``PhysicsParam``s are frozen)."""

    @abstractmethod
    def update(self, iteration: int, metrics: Mapping[str, Any]) -> bool:
        """Move to the params of the iterations after ``iteration``; True if they changed."""

    def describe(self) -> dict[str, float]:
        """Numbers that summarize the current params, for logs (e.g. ``{"width": 1.5}``)."""
        return {}


class FixedRandomization(RandomizationSchedule):
    """The same params at every iteration."""

    def __init__(self, params: Mapping[str, PhysicsParam]):
        self._params = dict(params)

    def params(self) -> dict[str, PhysicsParam]:
        return dict(self._params)

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> bool:
        return False


class LinearWidening(RandomizationSchedule):
    """Each field's multiplier ``base ** U(-w, w)`` of its default, ``w`` growing linearly.

    ``w`` is ``start`` before the first update and reaches ``end`` after
    ``iterations`` updates (``w = start + (end - start) * min(i, iterations) /
    iterations`` after iteration ``i``), rand_param_envs' form of a range
    (``1.5 ** U(-3, 3)`` is ``w = 3``). At ``w = 0`` the multiplier is fixed at 1.

    Args:
        fields: physics fields to randomize (``"body_mass"``, ``"geom_friction"``, ...),
            every element (``"all"``), each element drawn independently.
        start, end: the exponent range at the first and at the last iteration (>= 0).
        iterations: updates over which ``w`` goes from ``start`` to ``end`` (>= 1).
        base: the multiplier's base (> 1).

    Raises:
        ValueError: a bad field (the message lists the known ones) or a value out of
            range (the message names it).
    """

    def __init__(
        self,
        fields: Sequence[str],
        start: float,
        end: float,
        iterations: int,
        base: float = 1.5,
    ):
        if isinstance(fields, str) or not fields:
            raise ValueError(f"LinearWidening.fields must be a non-empty list, got {fields!r}")
        for name, value in (("start", start), ("end", end)):
            check_number(f"LinearWidening.{name}", value, ge=0)
        check_int("LinearWidening.iterations", iterations, ge=1)
        check_number("LinearWidening.base", base, gt=1)
        self.fields = list(fields)
        self.start, self.end, self.iterations, self.base = (
            float(start),
            float(end),
            int(iterations),
            float(base),
        )
        self.width = self.start
        self.params()  # check the fields now, not at the first update

    def width_after(self, iteration: int) -> float:
        """``w`` after ``iteration`` updates."""
        done = min(max(iteration, 0), self.iterations)
        return self.start + (self.end - self.start) * done / self.iterations

    def params(self) -> dict[str, PhysicsParam]:
        w = self.width
        dist = Fixed(1.0) if w == 0 else LogUniform.power(self.base, -w, w)
        return {f: PhysicsParam(f, dist, independent=True) for f in self.fields}

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> bool:
        old, self.width = self.width, self.width_after(iteration)
        return self.width != old

    def describe(self) -> dict[str, float]:
        return {"width": self.width}
