"""PEARL's networks: the context encoder and the policy the samplers run.

- ``product_of_gaussians``: the posterior over the latent task variable z as the
  product of one Gaussian factor per context transition (Rakelly et al. 2019).
- ``ContextEncoder``: an MLP that maps each context transition to its factor's mean
  and variance, and their product.
- ``PEARLPolicy``: SAC's tanh-Gaussian actor on ``[observation, z]`` with one z per
  trial, mapped to the action space; picklable, for the samplers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from metarl.agents.networks import ActionScaling, mlp, to_numpy, to_tensor, torch_threads
from metarl.agents.policy import PolicyInput, PolicyOutput
from metarl.agents.sac import TanhGaussianPolicy

__all__ = ["ContextEncoder", "PEARLPolicy", "product_of_gaussians"]


def product_of_gaussians(
    means: torch.Tensor, variances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The product of Gaussian factors ``(..., N, L)`` over the ``N`` axis: the mean and
    variance ``(..., L)`` with ``1 / var = sum 1 / var_n`` and
    ``mean = var * sum mean_n / var_n``."""
    variances = variances.clamp_min(1e-7)
    var = 1.0 / (1.0 / variances).sum(-2)
    return var * (means / variances).sum(-2), var


class ContextEncoder(nn.Module):
    """Context transitions ``(..., N, context_dim)`` -> the posterior over z."""

    def __init__(
        self, context_dim: int, latent_size: int, hidden: Sequence[int], generator: torch.Generator
    ):
        super().__init__()
        self.latent_size = latent_size
        self.net = mlp(context_dim, hidden, 2 * latent_size, generator, activation=nn.ReLU)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance ``(..., latent_size)``."""
        out = self.net(context)
        means, raw = out[..., : self.latent_size], out[..., self.latent_size :]
        return product_of_gaussians(means, F.softplus(raw))


class PEARLPolicy:
    """The ``Policy`` the samplers run: SAC's actor on ``[observation, z]``, with one z
    per trial (``z[assignment[trial]]``); the tanh-squashed action is mapped to the
    action space. ``deterministic``: the mean action (noise is still drawn)."""

    def __init__(
        self,
        actor: TanhGaussianPolicy,
        z: np.ndarray,
        assignment: np.ndarray,
        scaling: ActionScaling,
        action_shape: tuple[int, ...],
        deterministic: bool,
    ):
        self.actor = actor
        self.z = np.asarray(z, dtype=np.float32)
        self.assignment = np.asarray(assignment, dtype=np.int64)
        self.scaling = scaling
        self.action_shape = action_shape
        self.deterministic = deterministic

    def initial_state(self, n: int) -> None:
        """Stateless: ``None``."""
        return None

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        """One action per row with its trial's z.

        Raises:
            ValueError: a trial without a z, or ``len(rngs)`` differs from the rows.
        """
        n = len(inputs.observations)
        if len(rngs) != n:
            raise ValueError(f"act got {len(rngs)} generators for {n} rows")
        trials = np.asarray(inputs.trials, dtype=np.int64)
        if trials.min(initial=0) < 0 or trials.max(initial=0) >= len(self.assignment):
            raise ValueError(
                f"PEARLPolicy has z for trials 0..{len(self.assignment) - 1}, got {trials.tolist()}"
            )
        z = self.z[self.assignment[trials]]
        x = np.concatenate([np.asarray(inputs.observations, np.float32).reshape(n, -1), z], 1)
        noise = np.stack([rng.standard_normal(self.scaling.dim) for rng in rngs])
        with torch.no_grad(), torch_threads(1):
            mean, log_std = self.actor(torch.from_numpy(x))
            pre = mean if self.deterministic else mean + torch.exp(log_std) * to_tensor(noise)
            unit = torch.tanh(pre)
        actions = self.scaling.to_env(to_numpy(unit))
        return PolicyOutput(actions.reshape(n, *self.action_shape), None, {})
