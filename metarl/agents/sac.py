"""Soft actor-critic pieces (Haarnoja et al. 2018) shared by the off-policy agents (PEARL).

- ``TanhGaussianPolicy``: an MLP trunk with a mean head and a log-std head (the
  log-std clamped to [-20, 2], as rlkit and PEARL's reference code), actions
  ``tanh(mean + std * noise)`` in the unit box. Noise is passed in, so that a
  sampler can draw each row's noise from that row's generator and training can
  draw it from the agent's torch generator.
- ``squashed_log_prob``: the log-density of a tanh-squashed Gaussian sample, with
  the change of variables computed stably: ``log(1 - tanh(u)^2) = 2 (log 2 - u -
  softplus(-2u))``.
- ``soft_update``: Polyak averaging of target networks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from metarl.agents.networks import gaussian_log_prob, mlp

__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "TanhGaussianPolicy", "soft_update", "squashed_log_prob"]

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


def squashed_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor
) -> torch.Tensor:
    """Log-density of ``tanh(pre_tanh)`` where ``pre_tanh ~ N(mean, exp(log_std))``,
    summed over the last axis."""
    correction = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return gaussian_log_prob(mean, log_std, pre_tanh) - correction.sum(-1)


class TanhGaussianPolicy(nn.Module):
    """``x -> (mean, log_std)`` of a Gaussian squashed by tanh into the unit box.

    Args:
        in_dim: input size (PEARL: observation and latent task variable).
        action_dim: action size.
        hidden_sizes: the trunk's hidden layers (PEARL: three of 300).
        generator: initialization randomness.
        activation: the trunk's activation (PEARL: ReLU).
    """

    def __init__(
        self,
        in_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        generator: torch.Generator,
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("TanhGaussianPolicy needs at least one hidden layer")
        *trunk, last = hidden_sizes
        self.trunk = nn.Sequential(
            mlp(in_dim, trunk, last, generator, activation=activation), activation()
        )
        self.mean = mlp(last, (), action_dim, generator, output_gain=0.01)
        self.log_std = mlp(last, (), action_dim, generator, output_gain=0.01)
        self.action_dim = action_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pre-squash mean and the clamped log-std, each ``(..., action_dim)``."""
        h = self.trunk(x)
        log_std = torch.clamp(self.log_std(h), LOG_STD_MIN, LOG_STD_MAX)
        return self.mean(h), log_std

    def sample(
        self, x: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A reparameterized sample ``tanh(mean + std * noise)``.

        Returns the action (unit box), its log-probability, the mean and the log-std.
        """
        mean, log_std = self(x)
        pre_tanh = mean + torch.exp(log_std) * noise
        return torch.tanh(pre_tanh), squashed_log_prob(mean, log_std, pre_tanh), mean, log_std


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source``, parameter by parameter.

    Raises:
        ValueError: ``tau`` outside ``[0, 1]``.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"soft_update: tau must be in [0, 1], got {tau!r}")
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)
