"""Learned simulators from real data: a DROPO fit and trajectory-matching system identification.

Both fit named scalar physical parameters (``PhysicsParam``s, one shared value each)
of a simulator to recorded real episodes (``Episode``s from a robot or a
``Target``), searching inside each parameter's bounds (the support of its
distribution, which must be finite: ``Uniform``, ``LogUniform``, ...). Both return
a ``FitResult``: the fitted distribution (``PhysicsParam``s that training consumes as
domain randomization), per-parameter estimates with an uncertainty, the
discrepancy between simulated and real transitions before and after the fit, and the
real data used.

- ``fit_dropo`` (Tiboni et al. 2023, "DROPO: Sim-to-real transfer with offline
  domain randomization"): parameters ~ a truncated Gaussian whose means and standard
  deviations CMA-ES optimizes; the objective is the likelihood of each recorded real
  next state under the simulator reset to the real state and stepped with the real
  action, for K parameter draws, with a diagonal Gaussian fitted to the K
  predictions (their sample variance plus ``epsilon``). CMA-ES searches the means
  and the log standard deviations, each mapped to [0, 1] (means over each
  parameter's bounds, log std over [1e-3, 0.25] x the bounds' width), so one step
  size suits both. The draws use common random numbers (the same uniforms for every
  candidate), so the objective is deterministic. Differences from the paper and its
  code: a diagonal covariance instead of a full one; one-step transitions (the
  paper's lambda = 1); K fixed draws (default 10) instead of fresh ones, fewer
  because a CPU pays for each. The estimate of a parameter is its Gaussian's mean
  (the location of the truncated law), its uncertainty the fitted standard
  deviation: the spread of the randomization the data supports, not an error bar.
- ``fit_trajectory_matching``: point estimates minimizing the discrepancy between
  real and simulated trajectories when the simulator replays the real actions from
  the real state, over windows of ``horizon`` steps (multiple shooting: each window
  starts from the recorded state, so a long replay cannot diverge); CMA-ES on the
  normalized parameters. The uncertainty is CMA-ES's final standard deviation of each
  coordinate, a measure of how flat the discrepancy is around the estimate.

Discrepancy, in both reports: the mean squared error of one-step predictions, per
observation dimension divided by the variance of the real next observations (1 =
as wrong as predicting their mean), at the simulator's nominal parameters and at
the fitted ones (DROPO: the means).

Resetting the simulator to a recorded observation needs the full state in it:
observations ``[qpos, qvel]``, or ``[qpos[1:], qvel]`` (Gymnasium's locomotion envs,
which leave out the x position; it is set to 0, which the dynamics do not depend
on). Known limit: Hopper-v5 and Walker2d-v5 clip the velocities they observe to
[-10, 10], so a recorded state beyond the clip resets the simulator to a wrong
state; random excitation rarely gets there, a fast gait does.

``cma`` draws from numpy's global generator; the fits seed it from ``seed`` and
restore its previous state afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.checks import check_int, check_number
from metarl.envs import PhysicsParam, PhysicsSpace
from metarl.envs.physics_distributions import Fixed, TruncatedNormal
from metarl.episodes import Episode
from metarl.tasks import PhysicsTask

__all__ = [
    "FitResult",
    "Simulator",
    "applied_actions",
    "fit_dropo",
    "fit_trajectory_matching",
    "param_mismatches",
    "relative_errors",
]


class Simulator:
    """The simulator whose parameters are fitted: ``gymnasium.make(env_id, **env_kwargs)``
    and the named scalar ``params`` to fit (their distributions give the bounds).

    ``action_delay``: the system's known command delay in control steps (measured on
    the robot; ``metarl.envs.effects.ActionDelay`` models it in training): the fits then
    replay the action recorded ``action_delay`` steps earlier (zeros at an episode's
    start, as ``ActionDelay``'s default initial action).

    Raises:
        ValueError: a param with independent draws or an unbounded support, an env
            that is not MuJoCo, or observations that do not hold the full state.
    """

    def __init__(
        self,
        env_id: str,
        params: Mapping[str, PhysicsParam],
        env_kwargs: Mapping[str, Any] | None = None,
        action_delay: int = 0,
    ):
        self.action_delay = check_int("Simulator.action_delay", action_delay, ge=0)
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.env = gym.make(env_id, **self.env_kwargs)
        self.sim: Any = self.env.unwrapped
        if not hasattr(self.sim, "model") or not hasattr(self.sim, "do_simulation"):
            raise ValueError(f"Simulator needs a MuJoCo environment, got {env_id}")
        if not params:
            raise ValueError("Simulator: give at least one parameter to fit")
        for name, p in params.items():
            if p.independent:
                raise ValueError(
                    f"Simulator: parameter {name!r} draws each element independently; "
                    "a fit estimates one shared value per parameter (independent: false)"
                )
            low, high = p.dist.support
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(
                    f"Simulator: parameter {name!r} needs bounds, a finite support "
                    f"(e.g. uniform), got {p.dist}"
                )
        self.params = dict(params)
        self.space = PhysicsSpace(self.params, self.sim.model)
        self.names = list(self.params)
        self.low = np.array([self.params[n].dist.support[0] for n in self.names])
        self.high = np.array([self.params[n].dist.support[1] for n in self.names])
        model = self.sim.model
        obs_dim = int(np.prod(self.env.observation_space.shape or ()))
        if obs_dim == model.nq + model.nv:
            self._skip = 0
        elif obs_dim == model.nq - 1 + model.nv:
            self._skip = 1
        else:
            raise ValueError(
                f"Simulator: {env_id}'s observations ({obs_dim}) are not its state "
                f"[qpos, qvel] ({model.nq} + {model.nv}) or [qpos[1:], qvel]"
            )
        self.nominal = self._nominal()

    def _nominal(self) -> np.ndarray:
        """The parameter values of the unchanged model, clipped into the bounds."""
        default = self.space.default_task()
        values = np.array([float(np.asarray(default.values[n]).flat[0]) for n in self.names])
        return np.clip(values, self.low, self.high)

    def set_params(self, values: Sequence[float] | np.ndarray) -> None:
        """Write ``values`` (one per param, in ``names`` order) into the model."""
        task = PhysicsTask({n: float(v) for n, v in zip(self.names, values, strict=True)})
        self.space.apply(self.sim.model, task)

    def step_from(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The observation after ``action`` from the state of observation ``obs``."""
        model = self.sim.model
        nq = model.nq
        qpos = np.zeros(nq)
        qpos[self._skip :] = obs[: nq - self._skip]
        qvel = np.asarray(obs[nq - self._skip : nq - self._skip + model.nv], dtype=np.float64)
        self.sim.set_state(qpos, qvel)
        self.sim.do_simulation(action, self.sim.frame_skip)
        return np.asarray(self.sim._get_obs(), dtype=np.float64)

    def close(self) -> None:
        self.space.restore(self.sim.model)
        self.env.close()


def param_mismatches(fitted: Mapping[str, Any], truth: Mapping[str, Any]) -> list[str]:
    """Names in both ``PhysicsParam`` dict mappings whose field, elements, components
    or operation differ, each with the difference: a recovery error would compare
    values of different quantities."""
    out = []
    for name in sorted(set(fitted) & set(truth)):
        for key in ("field", "elements", "components", "op"):
            a, b = fitted[name].get(key), truth[name].get(key)
            if a != b:
                out.append(f"{name}: {key} {a!r} vs {b!r}")
    return out


def relative_errors(estimates: Mapping[str, float], truth: Mapping[str, Any]) -> dict[str, float]:
    """``|estimate - truth| / |truth|`` for each estimated name with a scalar truth."""
    return {
        n: abs(float(v) - float(truth[n])) / abs(float(truth[n]))
        for n, v in estimates.items()
        if n in truth and np.ndim(truth[n]) == 0
    }


@dataclass
class FitResult:
    """What a fit found (see the module docstring)."""

    method: str
    names: list[str]
    estimates: dict[str, float]
    uncertainty: dict[str, float]
    distribution: dict[str, PhysicsParam]
    discrepancy_nominal: float
    discrepancy_fitted: float
    episodes: int
    transitions: int
    seconds_of_data: float
    wall_time_s: float
    evaluations: int
    objective: float
    extra: dict[str, Any] = field(default_factory=dict)

    def recovery_error(self, truth: Mapping[str, float]) -> dict[str, float]:
        """Relative error ``|estimate - truth| / |truth|`` per parameter of ``truth``."""
        return relative_errors(self.estimates, truth)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON): the distribution as ``PhysicsParam`` dicts."""
        return {
            "method": self.method,
            "estimates": self.estimates,
            "uncertainty": self.uncertainty,
            "distribution": {n: p.to_dict() for n, p in self.distribution.items()},
            "discrepancy_nominal": self.discrepancy_nominal,
            "discrepancy_fitted": self.discrepancy_fitted,
            "episodes": self.episodes,
            "transitions": self.transitions,
            "seconds_of_data": self.seconds_of_data,
            "wall_time_s": self.wall_time_s,
            "evaluations": self.evaluations,
            "objective": self.objective,
            **self.extra,
        }

    def report(self, truth: Mapping[str, float] | None = None) -> str:
        """A Markdown fit report; with ``truth`` (sim-to-sim), the recovery errors."""
        errors = self.recovery_error(truth) if truth else {}
        lines = [
            f"# {self.method} fit",
            "",
            f"- real data: {self.episodes} episodes, {self.transitions} transitions "
            f"({self.seconds_of_data:.1f} s of control)",
            f"- wall time: {self.wall_time_s:.1f} s, {self.evaluations} objective evaluations",
            f"- discrepancy (normalized one-step MSE): nominal {self.discrepancy_nominal:.4f}"
            f" -> fitted {self.discrepancy_fitted:.4f}",
            "",
            "| parameter | estimate | uncertainty (std) | fitted distribution"
            + (" | truth | relative error |" if errors else " |"),
            "|---|---:|---:|---" + ("|---:|---:|" if errors else "|"),
        ]
        for n in self.names:
            row = (
                f"| {n} | {self.estimates[n]:.4g} | {self.uncertainty[n]:.3g} | "
                f"{self.distribution[n].dist}"
            )
            if errors and n in errors:
                row += f" | {float(truth[n]):.4g} | {errors[n]:.3f} |"  # type: ignore[index]
            elif errors:
                row += " | n/a | n/a |"  # no scalar truth for this parameter
            else:
                row += " |"
            lines.append(row)
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- data


@dataclass
class _Data:
    obs: np.ndarray  # (T, D)
    actions: np.ndarray  # (T, A)
    next_obs: np.ndarray  # (T, D)
    scale: np.ndarray  # (D,) std of the real next observations
    episodes: int
    starts: np.ndarray  # (T,) True where an episode starts


def applied_actions(episode: Episode, delay: int) -> np.ndarray:
    """The actions the system applied in ``episode`` if it delays commands by ``delay``
    steps: the recorded action of step ``t - delay`` (zeros before the first), float64
    ``(T, action_dim)``."""
    acts = episode.actions.reshape(len(episode), -1).astype(np.float64)
    if delay == 0:
        return acts
    out = np.zeros_like(acts)
    out[delay:] = acts[: len(acts) - delay]
    return out


def _transitions(
    episodes: Sequence[Episode], max_transitions: int | None, rng: np.random.Generator, delay: int
) -> _Data:
    if not episodes:
        raise ValueError("a fit needs at least one recorded episode")
    obs = np.concatenate([e.observations for e in episodes]).astype(np.float64)
    actions = np.concatenate([applied_actions(e, delay) for e in episodes])
    next_obs = np.concatenate([e.next_observations for e in episodes]).astype(np.float64)
    starts = np.concatenate([np.arange(len(e)) == 0 for e in episodes])
    obs, next_obs = obs.reshape(len(obs), -1), next_obs.reshape(len(next_obs), -1)
    actions = actions.reshape(len(actions), -1)
    if max_transitions is not None and len(obs) > max_transitions:
        keep = np.sort(rng.choice(len(obs), max_transitions, replace=False))
        obs, actions, next_obs, starts = obs[keep], actions[keep], next_obs[keep], starts[keep]
    scale = next_obs.std(0)
    scale[scale < 1e-8] = 1.0
    return _Data(obs, actions, next_obs, scale, len(episodes), starts)


def _one_step(sim: Simulator, data: _Data, values: np.ndarray) -> np.ndarray:
    """Predicted next observations ``(T, D)`` with parameters ``values``."""
    sim.set_params(values)
    return np.stack([sim.step_from(o, a) for o, a in zip(data.obs, data.actions, strict=True)])


def _discrepancy(sim: Simulator, data: _Data, values: np.ndarray) -> float:
    err = (_one_step(sim, data, values) - data.next_obs) / data.scale
    return float(np.mean(err**2))


class _GlobalNumpySeed:
    """Seed numpy's global generator (cma's) for a block, then restore it."""

    def __init__(self, seed: int):
        self.seed = seed

    # cma draws from the legacy global generator: these calls are the point here.
    def __enter__(self) -> None:
        self.saved = np.random.get_state()  # noqa: NPY002
        np.random.seed(self.seed)  # noqa: NPY002

    def __exit__(self, *exc: object) -> None:
        np.random.set_state(self.saved)  # noqa: NPY002


def _cma(
    objective: Any,
    x0: np.ndarray,
    sigma0: float,
    lower: np.ndarray,
    upper: np.ndarray,
    budget: int,
    popsize: int | None,
    seed: int,
) -> tuple[np.ndarray, float, np.ndarray, int]:
    """Minimize with CMA-ES in a box; return the best x, its value, CMA's final
    per-coordinate standard deviations and the evaluations used.

    cma does not run in one dimension (its ``tell`` fails there); a one-dimensional
    problem gets a second coordinate in [0, 1] that the objective ignores.
    """
    import cma

    if len(x0) == 1:
        best, value, stds, used = _cma(
            lambda x: objective(x[:1]),
            np.array([x0[0], 0.5]),
            sigma0,
            np.array([lower[0], 0.0]),
            np.array([upper[0], 1.0]),
            budget,
            popsize,
            seed,
        )
        return best[:1], value, stds[:1], used

    options: dict[str, Any] = {
        "bounds": [list(lower), list(upper)],
        "maxfevals": budget,
        "seed": seed + 1,  # cma treats 0 as "time-based"
        "verbose": -9,
    }
    if popsize is not None:
        options["popsize"] = popsize
    with _GlobalNumpySeed(seed):
        es = cma.CMAEvolutionStrategy(list(x0), sigma0, options)
        best_x, best_f, used = np.array(x0, dtype=np.float64), objective(np.asarray(x0)), 1
        while not es.stop():
            xs = es.ask()
            fs = [objective(np.asarray(x)) for x in xs]
            used += len(xs)
            es.tell(xs, fs)
            i = int(np.argmin(fs))
            if fs[i] < best_f:
                best_x, best_f = np.asarray(xs[i], dtype=np.float64), float(fs[i])
        stds = np.asarray(es.result.stds, dtype=np.float64)
    return best_x, best_f, stds, used


# --------------------------------------------------------------------------- DROPO


def fit_dropo(
    sim: Simulator,
    episodes: Sequence[Episode],
    *,
    samples: int = 10,
    epsilon: float = 1e-3,
    max_transitions: int | None = 500,
    budget: int = 400,
    popsize: int | None = None,
    seed: int = 0,
) -> FitResult:
    """DROPO: a truncated Gaussian per parameter maximizing the likelihood of the real
    transitions (module docstring).

    Args:
        sim: the simulator and the parameters to fit.
        episodes: recorded real episodes.
        samples: K, parameter draws per objective evaluation.
        epsilon: variance added to the K predictions' variance (normalized units).
        max_transitions: at most this many transitions, drawn at random (``None``: all).
        budget: objective evaluations of CMA-ES.
        popsize: CMA-ES population (default: cma's, 4 + 3 ln(2 d)).
        seed: the fit's randomness (subsampling, the common random numbers, CMA-ES).

    Raises:
        ValueError: no episodes, or a count or ``epsilon`` out of range.
    """
    from scipy import stats

    check_int("samples", samples, ge=2)
    check_int("budget", budget, ge=2)
    check_number("epsilon", epsilon, gt=0)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    data = _transitions(episodes, max_transitions, rng, sim.action_delay)
    d = len(sim.names)
    uniforms = rng.uniform(size=(samples, d))
    span = sim.high - sim.low
    log_min, log_max = math.log(1e-3), math.log(0.25)

    def unit_sigma(x: np.ndarray) -> np.ndarray:
        """The std (as a share of the bounds' width) of CMA-ES coordinates in [0, 1]."""
        return np.exp(log_min + np.asarray(x) * (log_max - log_min))

    def draws(x: np.ndarray) -> np.ndarray:
        mu, sigma = x[:d], unit_sigma(x[d:])
        a, b = (0.0 - mu) / sigma, (1.0 - mu) / sigma
        unit = stats.truncnorm.ppf(uniforms, a, b, loc=mu, scale=sigma)
        return sim.low + np.clip(unit, 0.0, 1.0) * span

    def objective(x: np.ndarray) -> float:
        preds = np.stack([_one_step(sim, data, v) for v in draws(x)])  # (K, T, D)
        preds = preds / data.scale
        target = data.next_obs / data.scale
        mean, var = preds.mean(0), preds.var(0, ddof=1) + epsilon
        nll = 0.5 * (np.log(2 * np.pi * var) + (target - mean) ** 2 / var)
        return float(nll.sum(1).mean())

    # Start at the bounds' middle with std = 1/8 of their width.
    start_sigma = (math.log(0.125) - log_min) / (log_max - log_min)
    x0 = np.concatenate([np.full(d, 0.5), np.full(d, start_sigma)])
    lower, upper = np.zeros(2 * d), np.ones(2 * d)
    best, value, _, used = _cma(objective, x0, 0.3, lower, upper, budget, popsize, seed)
    mu_unit, sigma_unit = best[:d], unit_sigma(best[d:])
    means = sim.low + mu_unit * span
    stds = sigma_unit * span
    laws = [
        TruncatedNormal(float(means[i]), float(stds[i]), float(sim.low[i]), float(sim.high[i]))
        for i in range(d)
    ]
    return _result(
        "DROPO",
        sim,
        data,
        means,
        stds,
        laws,
        start,
        used,
        value,
        {"samples": samples, "epsilon": epsilon},
    )


def _result(
    method: str,
    sim: Simulator,
    data: _Data,
    estimates: np.ndarray,
    uncertainty: np.ndarray,
    laws: Sequence[Any],
    start: float,
    evaluations: int,
    objective: float,
    extra: dict[str, Any],
) -> FitResult:
    """The ``FitResult`` of a fit: ``laws[i]`` is the fitted distribution of param ``i``."""
    return FitResult(
        method=method,
        names=list(sim.names),
        estimates={n: float(estimates[i]) for i, n in enumerate(sim.names)},
        uncertainty={n: float(uncertainty[i]) for i, n in enumerate(sim.names)},
        distribution={
            n: PhysicsParam(p.field, laws[i], elements=p.elements, components=p.components, op=p.op)
            for i, (n, p) in enumerate(sim.params.items())
        },
        discrepancy_nominal=_discrepancy(sim, data, sim.nominal),
        discrepancy_fitted=_discrepancy(sim, data, estimates),
        episodes=data.episodes,
        transitions=len(data.obs),
        seconds_of_data=len(data.obs) * float(sim.sim.dt),
        wall_time_s=time.perf_counter() - start,
        evaluations=evaluations,
        objective=objective,
        extra=extra,
    )


# --------------------------------------------------------------------------- trajectory matching


def fit_trajectory_matching(
    sim: Simulator,
    episodes: Sequence[Episode],
    *,
    horizon: int = 10,
    budget: int = 300,
    popsize: int | None = None,
    seed: int = 0,
) -> FitResult:
    """Point estimates: the real actions replayed in windows of ``horizon`` steps from
    the real states, the normalized squared error of the simulated trajectories
    minimized with CMA-ES (module docstring).

    The fitted distribution is ``Fixed(estimate)`` per parameter (train on it as is,
    or widen it by the uncertainty for domain randomization).

    Raises:
        ValueError: no episodes, or ``horizon`` / ``budget`` out of range.
    """
    check_int("horizon", horizon, ge=1)
    check_int("budget", budget, ge=2)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    data = _transitions(episodes, None, rng, sim.action_delay)
    windows = _windows(episodes, horizon, sim.action_delay)
    span = sim.high - sim.low

    def objective(x: np.ndarray) -> float:
        sim.set_params(sim.low + x * span)
        total, count = 0.0, 0
        for obs0, acts, real in windows:
            o = obs0
            for a, r in zip(acts, real, strict=True):
                o = sim.step_from(o, a)
                total += float(np.sum(((o - r) / data.scale) ** 2))
                count += 1
        return total / (count * len(data.scale))

    d = len(sim.names)
    x0 = np.full(d, 0.5)
    best, value, stds, used = _cma(
        objective, x0, 0.3, np.zeros(d), np.ones(d), budget, popsize, seed
    )
    estimates = sim.low + best * span
    uncertainty = stds * span
    laws = [Fixed(float(v)) for v in estimates]
    return _result(
        "trajectory matching",
        sim,
        data,
        estimates,
        uncertainty,
        laws,
        start,
        used,
        value,
        {"horizon": horizon, "windows": len(windows)},
    )


def _windows(
    episodes: Sequence[Episode], horizon: int, delay: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(start observation, applied actions, real next observations)`` of consecutive
    windows."""
    out = []
    for e in episodes:
        obs = e.observations.reshape(len(e), -1).astype(np.float64)
        acts = applied_actions(e, delay)
        nxt = e.next_observations.reshape(len(e), -1).astype(np.float64)
        for s in range(0, len(e), horizon):
            out.append((obs[s], acts[s : s + horizon], nxt[s : s + horizon]))
    return out
