"""Adaptive domain randomization without real data: automatic DR and DORAEMON.

Both are ``RandomizationSchedule``s over named scalar physical parameters (one
shared value each), each confined to hard ``limits``, that learn from how the
policy does on the physics it was trained with:

- ``sample_tasks(rng, n)``: the physics of the next ``n`` training episodes
  (``PhysicsTask``s, names as the params);
- ``record(tasks, returns)``: the return of each finished episode on its task;
- ``update(iteration, metrics)``: change the distribution (between iterations).

``params()`` gives the distribution in force as ``PhysicsParam``s, for any
environment that draws from it (``PhysicsRandomization.set_params``, RLlib via
``metarl.rllib.randomization_callbacks``). An episode *succeeds* when its return
reaches ``success_return``.

``AutomaticDR`` (OpenAI et al. 2019, "Solving Rubik's Cube with a Robot Hand",
Section 5): each parameter's range starts at its nominal value; an episode is, with
probability ``boundary_probability``, a boundary episode: one parameter (uniformly
chosen) is set to its lower or upper bound, the others drawn uniformly in their
ranges, and its return goes to that bound's buffer. When a buffer holds
``buffer_size`` returns, their mean decides: at least ``high_threshold`` moves the
bound outward by ``step`` (widen), at most ``low_threshold`` moves it inward (shrink,
never past the other bound); the buffer is then emptied. Bounds stay within the
limits. Returns stand in for the paper's task-specific performance (its thresholds
are in the units of the returns here). Decisions happen between iterations (the
trainer's ``update``), one full buffer at a time. For a meta-RL agent, whose trial
runs K episodes on one task, a boundary task's return is that of its trial's first
episode (the one recorded first).

``DORAEMON`` (Tiboni et al. 2024, "Domain Randomization via Entropy Maximization"):
each parameter ~ a Beta distribution on its limits; after each iteration, the
distribution's entropy is maximized subject to an estimated success rate of at
least ``success_rate`` (importance-weighted from the iteration's episodes) and a KL
divergence from the current distribution of at most ``kl_bound``; while the
estimated success rate is below ``success_rate``, the step instead maximizes it
within the same trust region. Solved with scipy's SLSQP over the log of the Beta
parameters. The first distribution is a Beta concentrated at the nominal values
(``init_concentration`` = a + b).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metarl.checks import check_int, check_number
from metarl.envs.physics_distributions import Beta, Fixed, Uniform
from metarl.envs.physics_param import PhysicsParam
from metarl.sim2real.schedules import RandomizationSchedule
from metarl.tasks import PhysicsTask

__all__ = ["DORAEMON", "AdaptiveSchedule", "AutomaticDR"]


class AdaptiveSchedule(RandomizationSchedule):
    """A schedule over scalar params within hard limits that learns from episode returns.

    Args:
        params: name -> ``PhysicsParam`` whose distribution's support gives the hard
            limits (a finite ``[low, high]``); its field, elements and operation are
            kept, the distribution is the schedule's.
        nominal: name -> the starting value (default: the middle of the limits).
        success_return: an episode succeeds when its return is at least this.

    Raises:
        ValueError: a param with independent draws or unbounded support, or a nominal
            value outside the limits (the message names the param).
    """

    def __init__(
        self,
        params: Mapping[str, PhysicsParam],
        success_return: float,
        nominal: Mapping[str, float] | None = None,
    ):
        cls = type(self).__name__
        if not params:
            raise ValueError(f"{cls}: give at least one parameter")
        self.templates = dict(params)
        self.names = list(params)
        self.limits = {}
        for name, p in params.items():
            if p.independent:
                raise ValueError(f"{cls}: parameter {name!r} must be shared (independent: false)")
            low, high = p.dist.support
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{cls}: parameter {name!r} needs finite limits, got {p.dist}")
            self.limits[name] = (float(low), float(high))
        nominal = dict(nominal or {})
        unknown = sorted(set(nominal) - set(self.names))
        if unknown:
            raise ValueError(f"{cls}.nominal: unknown parameter(s) {unknown}; known: {self.names}")
        self.nominal = {}
        for name in self.names:
            low, high = self.limits[name]
            value = check_number(f"{cls}.nominal.{name}", nominal.get(name, (low + high) / 2))
            if not low <= value <= high:
                raise ValueError(
                    f"{cls}.nominal.{name}: {value} lies outside the limits [{low}, {high}]"
                )
            self.nominal[name] = value
        self.success_return = check_number(f"{cls}.success_return", success_return)

    def _param(self, name: str, dist: Any) -> PhysicsParam:
        t = self.templates[name]
        return PhysicsParam(t.field, dist, elements=t.elements, components=t.components, op=t.op)

    @abstractmethod
    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[PhysicsTask]:
        """The physics of the next ``n`` training episodes."""

    @abstractmethod
    def record(self, tasks: Sequence[PhysicsTask], returns: Sequence[float]) -> None:
        """The return of each finished training episode on its task."""


# --------------------------------------------------------------------------- ADR


class AutomaticDR(AdaptiveSchedule):
    """Automatic domain randomization (module docstring).

    Args:
        params, success_return, nominal: as ``AdaptiveSchedule`` (``success_return``
            is only reported here; the thresholds decide).
        step: how far a bound moves, per parameter (a number for all, or name -> step).
        low_threshold, high_threshold: mean boundary return at most / at least which a
            bound shrinks / widens.
        buffer_size: boundary returns per decision.
        boundary_probability: share of episodes that are boundary episodes.

    Raises:
        ValueError: as ``AdaptiveSchedule``, or a value out of range (named).
    """

    def __init__(
        self,
        params: Mapping[str, PhysicsParam],
        step: float | Mapping[str, float],
        low_threshold: float,
        high_threshold: float,
        success_return: float | None = None,
        nominal: Mapping[str, float] | None = None,
        buffer_size: int = 20,
        boundary_probability: float = 0.5,
    ):
        super().__init__(
            params, high_threshold if success_return is None else success_return, nominal
        )
        steps = step if isinstance(step, Mapping) else dict.fromkeys(self.names, step)
        missing = [n for n in self.names if n not in steps]
        if missing or set(steps) - set(self.names):
            raise ValueError(f"AutomaticDR.step: give one step per parameter {self.names}")
        self.step = {n: check_number(f"AutomaticDR.step.{n}", steps[n], gt=0) for n in self.names}
        self.low_threshold = check_number("AutomaticDR.low_threshold", low_threshold)
        self.high_threshold = check_number("AutomaticDR.high_threshold", high_threshold)
        if not self.low_threshold < self.high_threshold:
            raise ValueError(
                f"AutomaticDR needs low_threshold < high_threshold, got {low_threshold}, "
                f"{high_threshold}"
            )
        self.buffer_size = check_int("AutomaticDR.buffer_size", buffer_size, ge=1)
        self.boundary_probability = check_number(
            "AutomaticDR.boundary_probability", boundary_probability, gt=0.0, le=1.0
        )
        self.bounds = {n: [self.nominal[n], self.nominal[n]] for n in self.names}
        self.buffers: dict[tuple[str, int], list[float]] = defaultdict(list)
        # Boundary episodes not yet recorded, by their values (FIFO per values).
        self._pending: dict[tuple[float, ...], deque[tuple[str, int]]] = defaultdict(deque)

    def _key(self, task: PhysicsTask) -> tuple[float, ...]:
        return tuple(float(np.asarray(task.values[n]).flat[0]) for n in self.names)

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[PhysicsTask]:
        tasks = []
        for _ in range(n):
            values = {
                k: float(rng.uniform(self.bounds[k][0], self.bounds[k][1])) for k in self.names
            }
            boundary = None
            if rng.random() < self.boundary_probability:
                name = self.names[int(rng.integers(len(self.names)))]
                side = int(rng.integers(2))  # 0: lower bound, 1: upper bound
                values[name] = self.bounds[name][side]
                boundary = (name, side)
            task = PhysicsTask(values)
            if boundary is not None:
                self._pending[self._key(task)].append(boundary)
            tasks.append(task)
        return tasks

    def record(self, tasks: Sequence[PhysicsTask], returns: Sequence[float]) -> None:
        for task, ret in zip(tasks, returns, strict=True):
            queue = self._pending.get(self._key(task))
            if queue:
                self.buffers[queue.popleft()].append(float(ret))

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> bool:
        changed = False
        for (name, side), returns in list(self.buffers.items()):
            # As in the paper, each full buffer of buffer_size returns decides once and
            # is emptied; an iteration may fill several. After a move, the returns left
            # were earned at the old bound: dropped.
            while len(returns) >= self.buffer_size:
                mean = float(np.mean(returns[: self.buffer_size]))
                returns = returns[self.buffer_size :]
                if self._decide(name, side, mean):
                    changed, returns = True, []
            self.buffers[(name, side)] = returns
        if changed:
            self._pending.clear()  # old boundary values no longer name a bound
        return changed

    def _decide(self, name: str, side: int, mean: float) -> bool:
        """Move bound ``side`` (0 low, 1 high) of ``name`` on the mean boundary return;
        True if it moved."""
        low_limit, high_limit = self.limits[name]
        lo, hi = self.bounds[name]
        outward = -1.0 if side == 0 else 1.0
        if mean >= self.high_threshold:
            move = outward * self.step[name]
        elif mean <= self.low_threshold:
            move = -outward * self.step[name]
        else:
            return False
        if side == 0:
            new = min(max(lo + move, low_limit), hi)
        else:
            new = max(min(hi + move, high_limit), lo)
        if new == self.bounds[name][side]:
            return False
        self.bounds[name][side] = new
        return True

    def params(self) -> dict[str, PhysicsParam]:
        out = {}
        for n in self.names:
            lo, hi = self.bounds[n]
            out[n] = self._param(n, Fixed(lo) if lo == hi else Uniform(lo, hi))
        return out

    def describe(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for n in self.names:
            lo, hi = self.bounds[n]
            out[f"{n}.low"], out[f"{n}.high"] = lo, hi
        return out


# --------------------------------------------------------------------------- DORAEMON


class DORAEMON(AdaptiveSchedule):
    """DORAEMON (module docstring).

    Each Beta's parameters stay >= ``MIN_AB`` = 1: the uniform (a = b = 1) is already the
    entropy's maximum, and below 1 a Beta's density is infinite at the limits, which
    makes the importance weights of the success estimate explode. A step is kept only
    if it lies in the trust region and (entropy step) keeps the estimated success
    rate at least ``success_rate``; else the distribution stays. ``describe`` gives the
    effective sample size of the last estimate (``ess``).

    Args:
        params, success_return, nominal: as ``AdaptiveSchedule``.
        success_rate: alpha, the success probability the distribution must keep.
        kl_bound: epsilon, the largest KL divergence of one update.
        init_concentration: a + b of the first Betas (their mode at the nominal values).
        min_episodes: an update waits until at least this many episodes were recorded.

    Raises:
        ValueError: as ``AdaptiveSchedule``, or a value out of range (named).
    """

    MIN_AB = 1.0

    def __init__(
        self,
        params: Mapping[str, PhysicsParam],
        success_return: float,
        success_rate: float = 0.5,
        kl_bound: float = 0.1,
        nominal: Mapping[str, float] | None = None,
        init_concentration: float = 100.0,
        min_episodes: int = 10,
    ):
        super().__init__(params, success_return, nominal)
        self.success_rate = check_number("DORAEMON.success_rate", success_rate, gt=0.0, lt=1.0)
        self.kl_bound = check_number("DORAEMON.kl_bound", kl_bound, gt=0)
        c = check_number("DORAEMON.init_concentration", init_concentration, gt=2)
        self.min_episodes = check_int("DORAEMON.min_episodes", min_episodes, ge=1)
        ab = []
        for n in self.names:
            low, high = self.limits[n]
            m = (self.nominal[n] - low) / (high - low)  # in [0, 1]: checked above
            # mode (a - 1) / (a + b - 2) = m with a + b = c; a, b >= 1
            a = 1 + m * (c - 2)
            ab.append((a, c - a))
        self.ab = np.array(ab, dtype=np.float64)  # (d, 2)
        self._values: list[np.ndarray] = []  # unit-box values of recorded episodes
        self._success: list[float] = []
        self.last_success_rate = math.nan
        self.last_ess = math.nan

    def _unit(self, task: PhysicsTask) -> np.ndarray:
        """``task``'s values in the unit box of the limits.

        Raises:
            ValueError: a value outside its parameter's limits (not a task of this
                schedule).
        """
        out = []
        for n in self.names:
            low, high = self.limits[n]
            value = float(np.asarray(task.values[n]).flat[0])
            if not low - 1e-9 * (high - low) <= value <= high + 1e-9 * (high - low):
                raise ValueError(
                    f"DORAEMON.record: {n} = {value} lies outside its limits [{low}, {high}]"
                )
            out.append((value - low) / (high - low))
        return np.clip(np.array(out), 1e-9, 1 - 1e-9)  # float rounding at the limits only

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[PhysicsTask]:
        tasks = []
        for _ in range(n):
            unit = rng.beta(self.ab[:, 0], self.ab[:, 1])
            values = {}
            for i, name in enumerate(self.names):
                low, high = self.limits[name]
                values[name] = float(low + (high - low) * unit[i])
            tasks.append(PhysicsTask(values))
        return tasks

    def record(self, tasks: Sequence[PhysicsTask], returns: Sequence[float]) -> None:
        for task, ret in zip(tasks, returns, strict=True):
            self._values.append(self._unit(task))
            self._success.append(1.0 if float(ret) >= self.success_return else 0.0)

    @staticmethod
    def _log_pdf(ab: np.ndarray, x: np.ndarray) -> np.ndarray:
        from scipy import stats

        return stats.beta.logpdf(x, ab[:, 0], ab[:, 1]).sum(-1)

    @staticmethod
    def entropy(ab: np.ndarray) -> float:
        """Entropy of the product of Betas on the unit box."""
        from scipy import stats

        return float(stats.beta.entropy(ab[:, 0], ab[:, 1]).sum())

    @staticmethod
    def kl(p: np.ndarray, q: np.ndarray) -> float:
        """KL(p || q) of products of Betas, ``(d, 2)`` parameter arrays."""
        from scipy.special import betaln, digamma

        a1, b1, a2, b2 = p[:, 0], p[:, 1], q[:, 0], q[:, 1]
        out = (
            betaln(a2, b2)
            - betaln(a1, b1)
            + (a1 - a2) * digamma(a1)
            + (b1 - b2) * digamma(b1)
            + (a2 - a1 + b2 - b1) * digamma(a1 + b1)
        )
        return float(out.sum())

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> bool:
        if len(self._values) < self.min_episodes:
            return False
        from scipy.optimize import minimize

        x = np.stack(self._values)
        success = np.array(self._success)
        self._values, self._success = [], []
        current = self.ab.copy()
        log_q = self._log_pdf(current, x)

        def weights(log_ab: np.ndarray) -> np.ndarray:
            return np.exp(self._log_pdf(np.exp(log_ab).reshape(-1, 2), x) - log_q)

        def success_rate(log_ab: np.ndarray) -> float:
            return float(np.mean(weights(log_ab) * success))

        def kl_margin(log_ab: np.ndarray) -> float:
            return self.kl_bound - self.kl(np.exp(log_ab).reshape(-1, 2), current)

        def max_entropy(start: np.ndarray) -> np.ndarray:
            return minimize(
                lambda v: -self.entropy(np.exp(v).reshape(-1, 2)),
                start,
                method="SLSQP",
                bounds=bounds,
                constraints=[
                    {"type": "ineq", "fun": kl_margin},
                    {"type": "ineq", "fun": lambda v: success_rate(v) - self.success_rate},
                ],
            ).x

        def within_trust_region(v: np.ndarray) -> bool:
            return bool(np.all(np.isfinite(v)) and kl_margin(v) >= -1e-3 * self.kl_bound)

        def feasible(v: np.ndarray) -> bool:
            return success_rate(v) >= self.success_rate * (1 - 1e-3)

        start = np.log(current).ravel()
        self.last_success_rate = float(success.mean())
        bounds = [(math.log(self.MIN_AB), math.log(1e4))] * len(start)
        if self.last_success_rate >= self.success_rate:
            candidate = max_entropy(start)
            accept = within_trust_region(candidate) and feasible(candidate)
        else:
            # The constraint fails: the most successful distribution in the trust
            # region; if that reaches alpha, the entropy step goes on from it.
            candidate = minimize(
                lambda v: -success_rate(v),
                start,
                method="SLSQP",
                bounds=bounds,
                constraints=[{"type": "ineq", "fun": kl_margin}],
            ).x
            accept = within_trust_region(candidate)
            if accept and feasible(candidate):
                wider = max_entropy(candidate)
                if within_trust_region(wider) and feasible(wider):
                    candidate = wider
        w = weights(candidate)
        self.last_ess = float(w.sum() ** 2 / max((w**2).sum(), 1e-300))
        if not accept:  # SLSQP ended outside the trust region or the constraint: keep
            return False
        new = np.exp(candidate).reshape(-1, 2)
        changed = not np.allclose(new, current)
        self.ab = new
        return changed

    def params(self) -> dict[str, PhysicsParam]:
        out = {}
        for i, n in enumerate(self.names):
            low, high = self.limits[n]
            out[n] = self._param(n, Beta(float(self.ab[i, 0]), float(self.ab[i, 1]), low, high))
        return out

    def describe(self) -> dict[str, float]:
        """Entropy, each parameter's mean and std, and the success rate of the episodes
        of the last update (the same keys every time: the trainer logs them)."""
        out: dict[str, float] = {"entropy": self.entropy(self.ab)}
        for i, n in enumerate(self.names):
            a, b = self.ab[i]
            low, high = self.limits[n]
            out[f"{n}.mean"] = float(low + (high - low) * a / (a + b))
            out[f"{n}.std"] = float((high - low) * math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))
        out["success_rate"] = self.last_success_rate  # NaN before the first update
        out["ess"] = self.last_ess  # importance sampling's effective sample size
        return out
