"""Latency: round-trip times summarized, and a robot's effective action delay estimated.

``latency_stats(seconds)`` summarizes per-step times (a bridge's round trips,
``info["bridge.rtt_s"]``; ``RealRobotEnv``'s ``timing.*``) as their distribution.

``estimate_delay(env)`` measures how many control steps pass before a command shows
in the observations, on any Gymnasium env over a robot (``RealRobotEnv``, a target):
it excites one action dimension with a random binary sequence (each step the centre
of the action's range plus or minus ``amplitude``, independently: a white input) and
cross-correlates the command of step t (as given, even where a safety layer's change
limit alters what is sent: see the loop) with the change of each observation
dimension from step t + lag to t + lag + 1. A command applied k steps late first changes a
velocity (and the observation's difference) k steps later: the delay is the first lag
whose normalized correlation (the largest over the observation dimensions) reaches
half of the largest one, the onset of the response. White excitation keeps the
correlation before the onset at the noise floor (about 1/sqrt(transitions)); after
it the system's own dynamics (a joint's spring, damping) may make a later lag's
correlation as large, which is why the onset and not the peak is taken. Pairs never
span an episode's end. The result configures the delay effect of simulation
(``DelayEstimate.effect_spec``) and the fits (``Simulator(action_delay=...)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.checks import check_int

__all__ = ["DelayEstimate", "estimate_delay", "latency_stats"]


def latency_stats(seconds: Any) -> dict[str, float]:
    """Count, mean, std, median, 90th/99th percentile and max of per-step times
    (seconds).

    Raises:
        ValueError: no values, or values not finite and >= 0.
    """
    x = np.asarray(seconds, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("latency_stats: no times given")
    if not np.all(np.isfinite(x) & (x >= 0)):
        raise ValueError("latency_stats: times must be finite and >= 0")
    return {
        "count": float(x.size),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "p50": float(np.percentile(x, 50)),
        "p90": float(np.percentile(x, 90)),
        "p99": float(np.percentile(x, 99)),
        "max": float(x.max()),
    }


@dataclass(frozen=True)
class DelayEstimate:
    """The estimated delay (control steps), the correlation score of each lag
    (``scores[lag]``: the largest |correlation| over observation dimensions), the
    dimension that gave the estimate's score, and the data used."""

    steps: int
    scores: tuple[float, ...]
    observation_dim: int
    transitions: int
    episodes: int

    @property
    def margin(self) -> float:
        """The estimate's score over the largest score before it (the noise floor): a
        clear onset has a large margin; near 2 or below, the estimate is doubtful."""
        if self.steps == 0:
            return float("inf")  # nothing before the onset to compare with
        return self.scores[self.steps] / max(max(self.scores[: self.steps]), 1e-12)

    def effect_spec(self) -> dict[str, Any]:
        """The ``action_delay`` effect (``metarl.envs.effects``) of this delay."""
        return {"name": "action_delay", "steps": self.steps}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scores": list(self.scores), "margin": self.margin}


def estimate_delay(
    env: gym.Env[Any, Any],
    *,
    dim: int = 0,
    amplitude: float | None = None,
    transitions: int = 400,
    max_lag: int = 10,
    seed: int = 0,
) -> DelayEstimate:
    """Excite ``env`` and estimate its action delay (module docstring).

    Args:
        env: a Gymnasium env with a 1-D ``Box`` action space (bounded in ``dim``).
        dim: the action dimension to excite (the others stay at their range's centre).
        amplitude: half the excitation's swing (default: a quarter of the range).
        transitions: how many steps to record in all (episodes are restarted).
        max_lag: the largest delay considered, in control steps.
        seed: the excitation's random sequence and the resets' seeds.

    Raises:
        ValueError: a non-Box or unbounded action space, ``dim`` out of range, a
            non-positive ``amplitude`` or one leaving the range, counts too small, or
            no response above the noise at any lag.
    """
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError("estimate_delay needs a 1-D Box action space")
    if not 0 <= dim < space.shape[0]:
        raise ValueError(f"estimate_delay: dim must be in [0, {space.shape[0]}), got {dim}")
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if not (np.isfinite(low[dim]) and np.isfinite(high[dim])):
        raise ValueError(f"estimate_delay: action dimension {dim} is unbounded")
    centre = (low + high) / 2
    half_range = (high[dim] - low[dim]) / 2
    swing = half_range / 2 if amplitude is None else float(amplitude)
    if not 0 < swing <= half_range:
        raise ValueError(
            f"estimate_delay: amplitude must be in (0, {half_range:g}] (half the range of "
            f"action dimension {dim}), got {amplitude}"
        )
    check_int("estimate_delay: max_lag", max_lag, ge=1)
    if not isinstance(transitions, int) or transitions < 10 * (max_lag + 2):
        raise ValueError(
            f"estimate_delay: transitions must be at least {10 * (max_lag + 2)} "
            f"(10 x (max_lag + 2)), got {transitions!r}"
        )
    rng = np.random.default_rng(seed)
    episodes: list[tuple[np.ndarray, np.ndarray]] = []  # (commands u_t, observations o_0..T)
    recorded, index = 0, 0
    while recorded < transitions:
        obs, _ = env.reset(seed=seed + index)
        index += 1
        commands, observations = [], [np.asarray(obs, dtype=np.float64).ravel()]
        while recorded < transitions:
            u = rng.choice([-swing, swing])
            action = centre.copy()
            action[dim] += u
            obs, _, terminated, truncated, _ = env.step(action.astype(space.dtype))
            # The excitation as given, not as a safety layer may have sent it: a change
            # limit filters it causally (the sent command depends on earlier ones), which
            # spreads the response to later lags only, while correlating with the
            # filtered, no longer white, input would show it at earlier ones.
            commands.append(u)
            observations.append(np.asarray(obs, dtype=np.float64).ravel())
            recorded += 1
            if terminated or truncated:
                break
        episodes.append((np.array(commands), np.stack(observations)))
    scores, dims = [], []
    for lag in range(max_lag + 1):
        u_parts, d_parts = [], []
        for sent, seen in episodes:
            change = np.diff(seen, axis=0)  # change[t] = o[t+1] - o[t]
            n = len(sent) - lag
            if n > 0:
                u_parts.append(sent[:n])
                d_parts.append(change[lag : lag + n])
        if not u_parts:
            scores.append(0.0)
            dims.append(0)
            continue
        u = np.concatenate(u_parts)
        d = np.concatenate(d_parts)
        u = u - u.mean()
        d = d - d.mean(0)
        denom = np.sqrt((u**2).sum() * (d**2).sum(0))
        corr = np.abs(u @ d) / np.where(denom > 0, denom, np.inf)
        scores.append(float(corr.max()))
        dims.append(int(corr.argmax()))
    floor = 4 / np.sqrt(recorded)  # well above the noise of a correlation of N pairs
    if max(scores) < floor:
        raise ValueError(
            f"estimate_delay: no lag up to {max_lag} shows a response to action dimension "
            f"{dim} above the noise (largest correlation {max(scores):.3f} < {floor:.3f}); "
            "excite another dimension, with a larger amplitude, or raise max_lag"
        )
    threshold = max(0.5 * max(scores), floor)
    best = next(lag for lag, score in enumerate(scores) if score >= threshold)
    return DelayEstimate(
        steps=best,
        scores=tuple(scores),
        observation_dim=dims[best],
        transitions=recorded,
        episodes=len(episodes),
    )
