"""Proximal policy optimization pieces shared by the on-policy agents.

Generalized advantage estimation (Schulman et al. 2016) in numpy, and the terms
of the PPO objective (Schulman et al. 2017) in torch: the clipped surrogate, the
value loss and the entropy bonus, each with an optional mask so that padded
sequences (RL2's trials of different lengths) can share a batch. Each agent
writes its own update loop from these; none of them knows about episodes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd

__all__ = [
    "PPO_UPDATE_METRICS",
    "SurrogateStats",
    "clipped_surrogate_loss",
    "compute_gae",
    "explained_variance",
    "load_running_stats",
    "masked_mean",
    "normalize_advantages",
    "running_stats_state",
    "value_loss",
]


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    last_value: np.ndarray | float,
    dones: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimates and their value targets (``advantages + values``).

    Arrays are time-major, ``(T,)`` or ``(T, *batch)``. ``dones[t]`` is True when the
    sequence ends after step ``t``: neither the value of step ``t + 1`` nor its
    advantage flows back into step ``t`` (bootstrap 0). ``last_value`` (shape
    ``batch``) is the value after the last step, used where ``dones[-1]`` is False.
    A caller that wants to bootstrap a truncated end adds ``gamma * V(final obs)`` to
    that step's reward and marks it done.

        delta_t = r_t + gamma * (1 - done_t) * V_{t+1} - V_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    Returns ``(advantages, returns)`` as float64 arrays of the shape of ``rewards``.

    Raises:
        ValueError: shapes differ, or ``gamma`` / ``lam`` outside ``[0, 1]``.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    dones = np.asarray(dones, dtype=bool)
    if rewards.shape != values.shape or rewards.shape != dones.shape or rewards.ndim == 0:
        raise ValueError(
            f"compute_gae: rewards {rewards.shape}, values {values.shape} and dones "
            f"{dones.shape} must have one shape (T, ...)"
        )
    for name, x in (("gamma", gamma), ("lam", lam)):
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"compute_gae: {name} must be in [0, 1], got {x!r}")
    next_value = np.broadcast_to(np.asarray(last_value, dtype=np.float64), rewards.shape[1:])
    advantages = np.zeros_like(rewards)
    next_advantage = np.zeros(rewards.shape[1:])
    for t in range(len(rewards) - 1, -1, -1):
        keep = 1.0 - dones[t]
        delta = rewards[t] + gamma * keep * next_value - values[t]
        next_advantage = delta + gamma * lam * keep * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is True (all entries when ``None``)."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def normalize_advantages(
    advantages: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8
) -> torch.Tensor:
    """Advantages shifted and scaled to mean 0 and standard deviation 1 over ``mask``.

    Masked-out entries come back as 0.
    """
    mean = masked_mean(advantages, mask)
    var = masked_mean((advantages - mean) ** 2, mask)
    out = (advantages - mean) / (var.sqrt() + eps)
    return out if mask is None else out * mask.to(out.dtype)


# The metrics of a PPO update (means over its minibatches unless said otherwise).
PPO_UPDATE_METRICS: dict[str, str] = {
    "policy_loss": "PPO's clipped surrogate loss (mean over the update's minibatches)",
    "value_loss": "squared error of the value head (mean over the update's minibatches)",
    "entropy": "entropy of the policy's action distribution (mean over minibatches)",
    "approx_kl": "estimated KL(old || new policy), mean over the update's minibatches",
    "clip_fraction": "share of steps whose probability ratio lies outside the clip range",
    "explained_variance": "1 - Var(return - value) / Var(return) of the values collected",
    "action_std": "mean standard deviation of the Gaussian policy (in the unit action box)",
}


class SurrogateStats(NamedTuple):
    """Diagnostics of one surrogate evaluation (detached scalars).

    ``approx_kl`` is the estimator ``E[(r - 1) - log r]`` of KL(old || new)
    (Schulman, "Approximating KL divergence", 2020), ``clip_fraction`` the share of
    steps whose ratio lies outside ``[1 - clip, 1 + clip]``.
    """

    approx_kl: float
    clip_fraction: float


def clipped_surrogate_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SurrogateStats]:
    """PPO's clipped surrogate, as a loss to minimize, and its diagnostics.

    ``-E[min(r A, clip(r, 1 - eps, 1 + eps) A)]`` with ``r = exp(log_prob - old_log_prob)``.
    """
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    loss = -masked_mean(torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        kl = masked_mean((ratio - 1.0) - log_ratio, mask)
        outside = ((ratio - 1.0).abs() > clip_range).to(ratio.dtype)
        frac = masked_mean(outside, mask)
    return loss, SurrogateStats(float(kl), float(frac))


def value_loss(
    values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Half the mean squared error between predicted values and their targets."""
    return 0.5 * masked_mean((values - returns) ** 2, mask)


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """``1 - Var(target - predicted) / Var(target)``; NaN when the target is constant.

    1 is a perfect prediction, 0 no better than the mean, negative worse.
    """
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    var = float(np.var(target))
    if var == 0.0:
        return float("nan")
    return 1.0 - float(np.var(target - predicted)) / var


def running_stats_state(stats: RunningMeanStd) -> dict[str, Any]:
    """A checkpointable copy of a running mean and variance (SB3's ``RunningMeanStd``)."""
    return {"mean": np.array(stats.mean), "var": np.array(stats.var), "count": float(stats.count)}


def load_running_stats(stats: RunningMeanStd, state: dict[str, Any]) -> None:
    """Restore what ``running_stats_state`` returned into ``stats``."""
    stats.mean = np.array(state["mean"], dtype=np.float64)
    stats.var = np.array(state["var"], dtype=np.float64)
    stats.count = float(state["count"])
