"""The PPO update (Schulman et al. 2017), written once for the agents that use it
(``ppo.PPOAgent``, ``rl2.RL2Agent``), and its pieces.

- ``ppo_update``: epochs of shuffled minibatches, each one step of the clipped
  surrogate plus the weighted value loss minus the weighted entropy bonus, with the
  global gradient norm clipped. An agent passes its own minibatch evaluation (a
  callable from the minibatch's row indices to log-probabilities, entropies and
  values: PPO's rows are steps, RL2's whole trials) and its own split of the rows
  into minibatches; none of it knows about episodes.
- ``PPOBatch`` / ``ppo_batch``: what the update compares against, with the
  advantages standardized over the batch and an optional mask so that padded
  sequences (RL2's trials of different lengths) can share a batch.
- ``standardize_returns``: value targets standardized by running statistics
  (stable_baselines3's ``RunningMeanStd``), checkpointed with
  ``running_stats_state`` / ``load_running_stats``.
- Generalized advantage estimation (Schulman et al. 2016) in numpy (also the
  gradient-based meta-learners' advantages), the loss terms in torch, and
  ``explained_variance``; ``PPO_UPDATE_METRICS`` names what an update reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import nn

__all__ = [
    "PPO_UPDATE_METRICS",
    "MinibatchEvaluation",
    "PPOBatch",
    "PPOSettings",
    "SurrogateStats",
    "clipped_surrogate_loss",
    "compute_gae",
    "explained_variance",
    "load_running_stats",
    "masked_mean",
    "normalize_advantages",
    "ppo_batch",
    "ppo_update",
    "return_scale",
    "running_stats_state",
    "standardize_returns",
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


def return_scale(stats: RunningMeanStd) -> tuple[float, float]:
    """The mean and standard deviation (``sqrt(var + 1e-8)``) of running return
    statistics: a standardized value ``v`` is ``v * scale + loc`` in return units."""
    return float(stats.mean), math.sqrt(stats.var + 1e-8)


def standardize_returns(
    stats: RunningMeanStd, returns: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """Update ``stats`` with the ``valid`` entries of ``returns`` (all when ``None``),
    then standardize ``returns`` by them.

    Returns ``((returns - loc) / scale, loc, scale)`` (``return_scale``), float64.
    """
    stats.update(returns if valid is None else returns[valid])
    loc, scale = return_scale(stats)
    return (returns - loc) / scale, loc, scale


def running_stats_state(stats: RunningMeanStd) -> dict[str, Any]:
    """A checkpointable copy of a running mean and variance (SB3's ``RunningMeanStd``)."""
    return {"mean": np.array(stats.mean), "var": np.array(stats.var), "count": float(stats.count)}


def load_running_stats(stats: RunningMeanStd, state: dict[str, Any]) -> None:
    """Restore what ``running_stats_state`` returned into ``stats``."""
    stats.mean = np.array(state["mean"], dtype=np.float64)
    stats.var = np.array(state["var"], dtype=np.float64)
    stats.count = float(state["count"])


# ----------------------------------------------------------------------------- the update


class MinibatchEvaluation(NamedTuple):
    """What an agent's networks give on one minibatch, each of the minibatch's shape
    (``(m,)`` steps, or ``(m, T)`` trials): the log-probabilities of the stored actions,
    the policy's entropies and the value predictions (in the units of the targets)."""

    log_prob: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor


class PPOBatch(NamedTuple):
    """An update's fixed inputs; the first axis indexes the rows minibatches are drawn
    from. ``old_log_prob`` is under the policy that collected, ``advantages`` as the
    surrogate uses them, ``value_targets`` what the value loss fits, ``mask`` False on
    padding (``None``: no padding)."""

    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    value_targets: torch.Tensor
    mask: torch.Tensor | None


def ppo_batch(
    old_log_prob: torch.Tensor,
    advantages: np.ndarray,
    value_targets: np.ndarray,
    normalize: bool,
    mask: np.ndarray | None = None,
) -> PPOBatch:
    """A ``PPOBatch``: advantages and targets as float32 tensors, the advantages
    standardized over the valid entries if ``normalize`` (``normalize_advantages``),
    zero on padding either way."""
    m = None if mask is None else torch.from_numpy(mask)
    adv = torch.from_numpy(advantages.astype(np.float32))
    if normalize:
        adv = normalize_advantages(adv, m)
    elif m is not None:
        adv = adv * m
    return PPOBatch(old_log_prob, adv, torch.from_numpy(value_targets.astype(np.float32)), m)


class PPOSettings(Protocol):
    """The hyperparameters ``ppo_update`` reads (fields of the agents' configs)."""

    @property
    def epochs(self) -> int: ...
    @property
    def clip_range(self) -> float: ...
    @property
    def value_coef(self) -> float: ...
    @property
    def entropy_coef(self) -> float: ...
    @property
    def max_grad_norm(self) -> float: ...


# The means over an update's minibatches that ``ppo_update`` returns.
_LOOP_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")


def ppo_update(
    evaluate: Callable[[torch.Tensor], MinibatchEvaluation],
    batch: PPOBatch,
    settings: PPOSettings,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    split: Callable[[torch.Tensor], Sequence[torch.Tensor]],
) -> dict[str, float]:
    """``settings.epochs`` passes over ``batch``, one optimizer step per minibatch.

    Each epoch draws a permutation of the rows from ``generator`` and cuts it into
    minibatches with ``split`` (e.g. ``lambda order: order.split(64)``). On a minibatch
    ``idx``, ``evaluate(idx)`` gives the current log-probabilities, entropies and
    values; the loss is

        clipped_surrogate_loss + value_coef * value_loss - entropy_coef * entropy

    (each a mean over the valid entries), and its gradient, with the global norm over
    the optimizer's parameters clipped to ``max_grad_norm``, takes one step.

    Returns ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` and
    ``clip_fraction``, each the mean over the update's minibatches
    (``PPO_UPDATE_METRICS``).
    """
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    sums = dict.fromkeys(_LOOP_METRICS, 0.0)
    count = 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(batch.old_log_prob), generator=generator)
        for idx in split(order):
            mask = None if batch.mask is None else batch.mask[idx]
            out = evaluate(idx)
            pg_loss, stats = clipped_surrogate_loss(
                out.log_prob,
                batch.old_log_prob[idx],
                batch.advantages[idx],
                settings.clip_range,
                mask,
            )
            v_loss = value_loss(out.values, batch.value_targets[idx], mask)
            entropy = masked_mean(out.entropy, mask)
            loss = pg_loss + settings.value_coef * v_loss - settings.entropy_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
            optimizer.step()
            sums["policy_loss"] += pg_loss.item()
            sums["value_loss"] += v_loss.item()
            sums["entropy"] += entropy.item()
            sums["approx_kl"] += stats.approx_kl
            sums["clip_fraction"] += stats.clip_fraction
            count += 1
    return {k: v / count for k, v in sums.items()}
