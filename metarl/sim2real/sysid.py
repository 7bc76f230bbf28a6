"""Learned simulators from real data: trajectory matching with calibrated intervals, and DROPO.

Both fit named scalar physical parameters (``PhysicsParam``s, one shared value each)
of a ``Simulator`` (``metarl.sim2real.sysid_sim``) to recorded real episodes, searching
inside each parameter's bounds (the support of its distribution, which must be
finite). Both start every prediction from a recorded *state*
(``metarl.sim2real.sysid_data``: the episodes' own states, a user's function, or the
observation where it is the state, checked sample by sample), never from an
observation that is not one. Both return a ``FitResult``
(``metarl.sim2real.sysid_result``) with estimates, 95% intervals, the parameters the
data do not determine, the discrepancy beside the noise floor, held-out predictions
and warnings.

- ``fit_trajectory_matching``: weighted least squares on the recorded states. The
  simulator replays the applied actions from the recorded state of each window of
  ``horizon`` control steps (multiple shooting; ``horizon=1``, the default, is
  one-step prediction error). A global stage (CMA-ES, the ``cma`` package, each
  generation one batched prediction) on a subsample of windows, then Levenberg-
  Marquardt-style trust-region least squares (``scipy.optimize.least_squares``) on all
  of them; the residual of each state entry is weighted by the inverse of its residual
  spread at the previous stage (feasible generalized least squares), and the last
  stage is repeated once with the new weights. Intervals and identifiability come from
  the residuals and their Jacobian at the estimate (``metarl.sim2real.sysid_stats``).
  The fitted distribution for training is a ``TruncatedNormal`` per parameter: the
  estimate, its standard error, cut at the search bounds.
- ``fit_dropo`` (Tiboni et al. 2023, "DROPO: Sim-to-real transfer with offline
  domain randomization"): parameters ~ a truncated Gaussian whose means and standard
  deviations CMA-ES optimizes; the objective is the likelihood of each recorded next
  state under the simulator reset to the recorded state and stepped with the
  recorded action, for K parameter draws, with a diagonal Gaussian fitted to the K
  predictions (their sample variance plus ``epsilon``). CMA-ES searches the means
  and the log standard deviations, each mapped to [0, 1] (means over each
  parameter's bounds, log std over [1e-3, 0.25] x the bounds' width). The draws use
  common random numbers (the same uniforms for every candidate), so the objective is
  deterministic. Differences from the paper and its code: a diagonal covariance; one-
  step transitions (the paper's lambda = 1); K fixed draws (default 10). Its
  ``uncertainty`` is the fitted standard deviation, the spread of the randomization the
  data support, and its "interval" the mean +- 1.96 of it: not a confidence interval.

``cma`` draws from numpy's global generator; the fits seed it from ``seed`` and
restore its previous state afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from metarl.checks import check_int, check_number
from metarl.envs import PhysicsParam
from metarl.envs.physics_distributions import TruncatedNormal
from metarl.episodes import Episode
from metarl.sim2real.sysid_data import StateFunction, Windows, episode_states, make_windows
from metarl.sim2real.sysid_result import (
    NUMERICAL_DISCREPANCY,
    FitResult,
    fit_warnings,
    param_mismatches,
    relative_errors,
)
from metarl.sim2real.sysid_search import cma_minimize
from metarl.sim2real.sysid_sim import Simulator, applied_actions
from metarl.sim2real.sysid_stats import measurement_variance, uncertainty

__all__ = [
    "FitResult",
    "Simulator",
    "applied_actions",
    "fit_dropo",
    "fit_trajectory_matching",
    "param_mismatches",
    "relative_errors",
]

# A residual's weight is at most 1 / (this x the spread of its state entry): the
# numerical floor of float64 predictions.
_WEIGHT_FLOOR = 1e-9
# Windows the global stage evaluates per candidate.
_GLOBAL_WINDOWS = 400
# The rough-window check compares difference quotients at steps this far apart.
_ROUGH_RATIO = 1000.0
# Steps per cluster of residuals for the standard errors (sysid_stats).
CLUSTER_STEPS = 20
# An estimate this close to a bound (share of the range) is "at the bound".
_AT_BOUND = 1e-3


@dataclass
class _Prepared:
    fit: Windows  # the fit's windows (horizon of the fit)
    one_step: Windows  # the fit episodes' one-step windows (diagnostics)
    held_out: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # start, actions, states
    scale: np.ndarray  # (nstate,) spread of the recorded states; inf: not in the data
    episodes: int
    source: str


def _prepare(
    sim: Simulator,
    episodes: Sequence[Episode],
    horizon: int,
    held_out_episodes: int | None,
    state_from_observation: StateFunction | None,
) -> _Prepared:
    states, source = episode_states(sim, episodes, state_from_observation)
    n = len(episodes)
    held = (1 if n >= 3 else 0) if held_out_episodes is None else held_out_episodes
    check_int("held_out_episodes", held, ge=0)
    if held >= n:
        raise ValueError(
            f"held_out_episodes={held} leaves no episode to fit ({n} recorded); "
            f"allowed: 0 to {n - 1}"
        )
    fit_eps, fit_states = list(episodes[: n - held]), states[: n - held]
    ids = list(range(n - held))
    fit = make_windows(sim, fit_eps, fit_states, horizon, ids)
    one = fit if horizon == 1 else make_windows(sim, fit_eps, fit_states, 1, ids)
    held_out = [
        (s[0], applied_actions(e.actions, sim.action_delay), s_next)
        for e, (s, s_next) in zip(episodes[n - held :], states[n - held :], strict=True)
    ]
    targets = one.targets[:, 0]
    scale = targets.std(0)
    scale[scale < 1e-8] = 1.0
    # Entries the data do not hold weigh nothing: every weight is 1 / (a multiple of scale).
    scale[list(source.unobserved)] = np.inf
    return _Prepared(fit, one, held_out, scale, n - held, source.detail)


def _residuals(
    sim: Simulator, w: Windows, values: np.ndarray, weight: np.ndarray | float
) -> np.ndarray:
    """Weighted residuals ``(P, N, H, nstate)`` (zero past an episode's end)."""
    pred = sim.predict(values, w.starts, w.actions)
    return (pred - w.targets[None]) * weight * w.mask[None, :, :, None]


def _discrepancy(sim: Simulator, w: Windows, values: np.ndarray, scale: np.ndarray) -> float:
    r = _residuals(sim, w, values[None], 1.0 / scale)[0]
    return float((r**2).sum() / (w.mask.sum() * np.isfinite(scale).sum()))


# --------------------------------------------------------------------------- trajectory matching


def fit_trajectory_matching(
    sim: Simulator,
    episodes: Sequence[Episode],
    *,
    horizon: int = 1,
    budget: int = 200,
    popsize: int | None = None,
    held_out_episodes: int | None = None,
    held_out_horizon: int = 50,
    state_from_observation: StateFunction | None = None,
    seed: int = 0,
) -> FitResult:
    """Weighted least squares on the recorded states, with 95% intervals and
    identifiability (module docstring).

    Args:
        sim: the simulator and the parameters to fit.
        episodes: recorded real episodes (with states, or observations that are states).
        horizon: control steps per window (1: one-step prediction error).
        budget: objective evaluations of the global stage (CMA-ES).
        popsize: CMA-ES population (default: cma's, 4 + 3 ln(d)).
        held_out_episodes: the last this many episodes are kept out of the fit and
            predicted open loop in the report (default: 1 from 3 episodes on, else 0).
        held_out_horizon: open-loop steps of the held-out predictions.
        state_from_observation: a function ``observation -> state`` for episodes
            without states whose observation is not the state.
        seed: the fit's randomness (the global stage's subsample and CMA-ES).

    Raises:
        ValueError: no episodes, states that are missing or wrong (named), or an
            option out of range.
    """
    check_int("horizon", horizon, ge=1)
    check_int("budget", budget, ge=2)
    check_int("held_out_horizon", held_out_horizon, ge=1)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    data = _prepare(sim, episodes, horizon, held_out_episodes, state_from_observation)
    w = data.fit
    span = sim.high - sim.low
    d = len(sim.names)

    def values(x: np.ndarray) -> np.ndarray:
        return sim.low + np.atleast_2d(x) * span

    # Stage 1: global, on a subsample, each entry weighted by its state's spread.
    weight = 1.0 / data.scale
    sub = (
        w
        if len(w) <= _GLOBAL_WINDOWS
        else w.subset(np.sort(rng.choice(len(w), _GLOBAL_WINDOWS, replace=False)))
    )

    def cost(xs: np.ndarray) -> np.ndarray:
        r = _residuals(sim, sub, values(xs), weight)
        return (r**2).reshape(len(xs), -1).sum(1)

    x0 = (sim.nominal - sim.low) / span
    x, _, used = cma_minimize(cost, x0, 0.3, budget, popsize, seed)

    # Stage 2: trust-region least squares on every window, reweighted once.
    def fun(xv: np.ndarray) -> np.ndarray:
        return _residuals(sim, w, values(xv), weight).ravel()

    step = 1e-7

    def jac(xv: np.ndarray) -> np.ndarray:
        # Forward differences, inward at the upper bound: d + 1 predictions in one batch.
        h = np.where(xv + step <= 1.0, step, -step)
        pts = np.vstack([xv, xv + np.diag(h)])
        r = _residuals(sim, w, values(pts), weight).reshape(d + 1, -1)
        return ((r[1:] - r[0]) / h[:, None]).T

    def rough(xv: np.ndarray) -> np.ndarray:
        # Windows whose residuals do not change smoothly with the parameters: their
        # difference quotients at two steps 1000x apart disagree (a constraint solver
        # that flips between outcomes on a state with deep contact, say).
        # Both steps inward at the upper bound: a value past a bound is refused.
        h2 = np.where(xv + step * _ROUGH_RATIO <= 1.0, 1.0, -1.0) * step * _ROUGH_RATIO
        h1 = h2 / _ROUGH_RATIO
        pts = np.vstack([xv, xv + np.diag(h1), xv + np.diag(h2)])
        r = _residuals(sim, w, values(pts), weight).reshape(2 * d + 1, len(w), -1)
        q1 = (r[1 : d + 1] - r[0]) / h1[:, None, None]
        q2 = (r[d + 1 :] - r[0]) / h2[:, None, None]
        return (np.abs(q1 - q2) > 0.1 * np.abs(q2) + 1.0).any((0, 2))

    left_out = 0
    for _ in range(2):
        solution = optimize.least_squares(
            fun,
            np.clip(x, 0.0, 1.0),
            jac=jac,
            bounds=(0.0, 1.0),
            xtol=1e-12,
            ftol=1e-12,
            gtol=1e-12,
            max_nfev=100,
            tr_solver="lsmr",
        )
        x, used = solution.x, used + int(solution.nfev) + (d + 1) * int(solution.njev or 0)
        resid = _residuals(sim, w, values(x), 1.0).reshape(-1, sim.nstate)[w.mask.ravel()]
        spread = np.sqrt((resid**2).mean(0))
        weight = 1.0 / np.maximum(spread, _WEIGHT_FLOOR * data.scale)
        bad = rough(x)
        if bad.all():
            raise ValueError(
                "the simulator's predictions of every recorded step jump when the "
                "parameters change by 1e-7 of their range: no local fit is possible"
            )
        left_out += int(w.subset(bad).transitions)
        w = w.subset(~bad)
        used += 2 * d + 1
    r = fun(x)
    J = jac(x)
    window_rows = np.repeat(np.arange(len(w)), horizon * sim.nstate)
    steps_into_episode = (
        np.concatenate([np.arange((w.episode == e).sum()) for e in np.unique(w.episode)]) * horizon
    )
    cluster = (w.episode * 1_000_000 + steps_into_episode // CLUSTER_STEPS)[window_rows]
    keep = np.repeat(w.mask.ravel(), sim.nstate) & np.tile(np.isfinite(data.scale), w.mask.size)
    unc = uncertainty(x, J[keep], r[keep], cluster[keep])
    estimates = values(x)[0]
    result = _result(
        "trajectory matching",
        sim,
        data,
        estimates,
        unc.se * span,
        sim.low + unc.low * span,
        sim.low + unc.high * span,
        start,
        used,
        float(solution.cost),
        {
            "horizon": horizon,
            "windows": len(w),
            "clusters": unc.clusters,
            "held_out_horizon": held_out_horizon,
            "rough_transitions_left_out": left_out,
        },
    )
    result.not_identified = [
        n for n, flag in zip(sim.names, unc.not_identified, strict=True) if flag
    ]
    result.inert = [n for i, n in enumerate(sim.names) if not np.any(J[keep][:, i])]
    result.trade_offs = unc.trade_offs(sim.names)
    result.warnings = fit_warnings(result)
    if solution.status == 0:
        result.warnings.insert(
            0,
            f"the least-squares stage stopped at its limit of {solution.nfev} evaluations "
            "before converging: the estimates may not be the best fit",
        )
    return result


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
    held_out_episodes: int | None = None,
    held_out_horizon: int = 50,
    state_from_observation: StateFunction | None = None,
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
        held_out_episodes, held_out_horizon, state_from_observation: as
            ``fit_trajectory_matching``.
        seed: the fit's randomness (subsampling, the common random numbers, CMA-ES).

    Raises:
        ValueError: no episodes, states that are missing or wrong, or a count or
            ``epsilon`` out of range.
    """
    from scipy import stats

    check_int("samples", samples, ge=2)
    check_int("budget", budget, ge=2)
    check_int("held_out_horizon", held_out_horizon, ge=1)
    check_number("epsilon", epsilon, gt=0)
    if max_transitions is not None:
        check_int("max_transitions", max_transitions, ge=1)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    data = _prepare(sim, episodes, 1, held_out_episodes, state_from_observation)
    w = data.fit
    if max_transitions is not None and len(w) > max_transitions:
        w = w.subset(np.sort(rng.choice(len(w), max_transitions, replace=False)))
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

    target = w.targets[:, 0] / data.scale

    def objective(xs: np.ndarray) -> np.ndarray:
        out = []
        for x in xs:
            preds = sim.predict(draws(x), w.starts, w.actions)[:, :, 0] / data.scale
            mean, var = preds.mean(0), preds.var(0, ddof=1) + epsilon
            nll = 0.5 * (np.log(2 * np.pi * var) + (target - mean) ** 2 / var)
            out.append(float(nll.sum(1).mean()))
        return np.asarray(out)

    # Start at the bounds' middle with std = 1/8 of their width.
    start_sigma = (math.log(0.125) - log_min) / (log_max - log_min)
    x0 = np.concatenate([np.full(d, 0.5), np.full(d, start_sigma)])
    best, value, used = cma_minimize(objective, x0, 0.3, budget, popsize, seed)
    means = sim.low + best[:d] * span
    stds = unit_sigma(best[d:]) * span
    result = _result(
        "DROPO",
        sim,
        data,
        means,
        stds,
        means - 1.96 * stds,
        means + 1.96 * stds,
        start,
        used,
        value,
        {"samples": samples, "epsilon": epsilon, "held_out_horizon": held_out_horizon},
    )
    result.confidence = False
    result.not_identified = [
        n
        for i, n in enumerate(sim.names)
        if result.interval[n][1] - result.interval[n][0] >= 0.5 * span[i]
    ]
    result.warnings = fit_warnings(result)
    return result


def _result(
    method: str,
    sim: Simulator,
    data: _Prepared,
    estimates: np.ndarray,
    spread: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    start: float,
    evaluations: int,
    objective: float,
    extra: dict[str, Any],
) -> FitResult:
    """The ``FitResult`` of a fit with its diagnostics: per parameter the estimate, its
    ``spread`` (standard error, or DROPO's randomization std), the interval
    ``[low, high]`` (cut here at the search bounds), the fitted distribution
    ``TruncatedNormal(estimate, spread)`` within the bounds, and whether the estimate
    sits at a bound. The caller adds what only it knows and then the warnings."""
    interval = [
        (float(max(sim.low[i], low[i])), float(min(sim.high[i], high[i])))
        for i in range(len(sim.names))
    ]
    span = sim.high - sim.low
    laws = [
        TruncatedNormal(
            float(estimates[i]),
            float(min(spread[i], 1e3 * span[i])),  # an infinite spread: flat in the bounds
            float(sim.low[i]),
            float(sim.high[i]),
        )
        for i in range(len(sim.names))
    ]
    unit = (estimates - sim.low) / span
    one = data.one_step
    nominal = _discrepancy(sim, one, sim.nominal, data.scale)
    fitted = _discrepancy(sim, one, estimates, data.scale)
    resid = _residuals(sim, one, estimates[None], 1.0)[0, :, 0]
    on_next, through_start = _noise_floor(sim, one, estimates, resid, data.scale)
    floor = on_next + through_start + NUMERICAL_DISCREPANCY
    return FitResult(
        method=method,
        names=list(sim.names),
        estimates={n: float(estimates[i]) for i, n in enumerate(sim.names)},
        uncertainty={n: float(spread[i]) for i, n in enumerate(sim.names)},
        interval={n: interval[i] for i, n in enumerate(sim.names)},
        distribution={
            n: PhysicsParam(p.field, laws[i], elements=p.elements, components=p.components, op=p.op)
            for i, (n, p) in enumerate(sim.params.items())
        },
        discrepancy_nominal=nominal,
        discrepancy_fitted=fitted,
        noise_floor=floor,
        episodes=data.episodes,
        transitions=one.transitions,
        seconds_of_data=one.transitions * sim.dt,
        wall_time_s=time.perf_counter() - start,
        evaluations=evaluations,
        objective=objective,
        state_source=data.source,
        held_out=_held_out(sim, data, estimates, extra.get("held_out_horizon", 50)),
        at_bound=[n for i, n in enumerate(sim.names) if min(unit[i], 1.0 - unit[i]) < _AT_BOUND],
        start_noise_share=through_start / max(on_next + through_start, 1e-300),
        extra=extra,
    )


def _noise_floor(
    sim: Simulator, one: Windows, estimates: np.ndarray, resid: np.ndarray, scale: np.ndarray
) -> tuple[float, float]:
    """The discrepancy that measurement noise alone would leave (``sysid_stats``), in two
    parts: its variance on the next state, and what the same noise on the start state
    makes of the prediction through the simulator (start states perturbed with a fixed
    seed)."""
    sigma2 = measurement_variance(resid, one.episode, one.actions[:, 0])
    if not np.any(sigma2 > 0):
        return 0.0, 0.0
    rng = np.random.default_rng(0)
    moved = one.starts + rng.normal(size=one.starts.shape) * np.sqrt(sigma2)
    pred = sim.predict(
        estimates[None],
        np.concatenate([one.starts, moved]),
        np.concatenate([one.actions, one.actions]),
    )[0, :, 0]
    spread = (pred[len(one) :] - pred[: len(one)]) ** 2
    through = spread[one.mask[:, 0]].mean(0)
    observed = np.isfinite(scale)  # an entry the data leave out counts for nothing
    return (
        float((sigma2 / scale**2)[observed].mean()),
        float((through / scale**2)[observed].mean()),
    )


def _held_out(
    sim: Simulator, data: _Prepared, estimates: np.ndarray, horizon: int
) -> dict[str, Any]:
    """Open-loop predictions of the held-out episodes from their first state."""
    if not data.held_out:
        return {}
    out: dict[str, Any] = {
        "episodes": len(data.held_out),
        "steps": sum(len(actions) for _, actions, _ in data.held_out),
        "predicted_steps": sum(min(horizon, len(actions)) for _, actions, _ in data.held_out),
        "horizon": horizon,
        "traces": [],
    }
    totals = {"nominal": 0.0, "fitted": 0.0}
    count = 0
    for first, actions, states in data.held_out:
        steps = min(horizon, len(actions))
        pred = sim.predict(np.stack([sim.nominal, estimates]), first[None], actions[None, :steps])[
            :, 0
        ]
        real = states[:steps]
        for key, p in zip(("nominal", "fitted"), pred, strict=True):
            totals[key] += float((((p - real) / data.scale) ** 2).sum())
        count += steps * int(np.isfinite(data.scale).sum())
        out["traces"].append({"real": real, "nominal": pred[0], "fitted": pred[1]})
    out["discrepancy_nominal"] = totals["nominal"] / count
    out["discrepancy_fitted"] = totals["fitted"] / count
    return out
