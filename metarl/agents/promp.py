"""ProMP (Rothfuss et al. 2019, "ProMP: Proximal Meta-Policy Search"): MAML whose
meta-gradient assigns credit to the pre-update (exploration) policy correctly and
with low variance, optimized with a PPO-style proximal objective.

Two changes to MAML-TRPO (``metarl.agents.maml_trpo``), everything else shared
(``metarl.agents.maml``):

- the inner step uses the low-variance curvature (LVC) surrogate
  ``-mean(pi_theta(a|s) / pi_theta_o(a|s) * A)`` over the pre-update episodes
  (``theta_o`` the parameters that collected them), whose Hessian is the
  unbiased, low-variance curvature estimate of the paper's Section 5
  (``inner_objective = "lvc"``);
- the outer objective, maximized with ``num_steps`` Adam steps on the same data,
  is PPO's clipped surrogate of the post-update policies minus a KL penalty that
  keeps each pre-update policy near the one that sampled (paper, Eq. 11):

      J(theta) = mean_tasks [ J_clip(theta'_i) ] - eta * mean_tasks KL(pi_theta_o || pi_theta)

  with one coefficient ``eta_j`` per inner step, fixed or adapted towards
  ``target_inner_kl`` (ProMP's ``adaptive_inner_kl_penalty``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metarl.agents.maml import (
    GradientMetaAgent,
    GradientMetaConfig,
    TaskData,
    _check_positive_int,
    _check_real,
    gaussian_kl,
    mean_over_tasks,
)

__all__ = ["ProMPAgent", "ProMPConfig"]


@dataclass(frozen=True)
class ProMPConfig(GradientMetaConfig):
    """ProMP: the shared fields (``GradientMetaConfig``, with the LVC inner objective)
    and the proximal outer loop's.

    Source: ProMP's ``run_scripts/pro-mp_run_mujoco.py`` (the defaults below).
    """

    inner_objective: str = "lvc"
    """The LVC surrogate (ProMP's ``inner_type='likelihood_ratio'``)."""

    learning_rate: float = 1e-3
    """Adam step size of the outer loop. ProMP: 1e-3."""

    num_steps: int = 5
    """Outer Adam steps on each meta-batch (ProMP's ``num_promp_steps``): 5."""

    clip_range: float = 0.3
    """Clip of the post-update likelihood ratio. ProMP: ``clip_eps=0.3``."""

    inner_kl_penalty: float = 5e-4
    """Initial eta, the weight of the pre-update KL penalty. ProMP: 5e-4."""

    adaptive_inner_kl_penalty: bool = False
    """Halve / double eta_j when step j's KL is under / over ``target_inner_kl`` by a
    factor 1.5 (PPO's adaptive penalty). ProMP: False."""

    target_inner_kl: float = 0.01
    """KL target of the adaptive penalty. ProMP: ``target_inner_step=0.01``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        _check_positive_int(name, "num_steps", self.num_steps)
        for key in ("learning_rate", "clip_range", "target_inner_kl"):
            _check_real(name, key, getattr(self, key), positive=True)
        if _check_real(name, "inner_kl_penalty", self.inner_kl_penalty) < 0:
            raise ValueError(
                f"{name}.inner_kl_penalty must be non-negative, got {self.inner_kl_penalty!r}"
            )
        if not isinstance(self.adaptive_inner_kl_penalty, bool):
            raise ValueError(
                f"{name}.adaptive_inner_kl_penalty must be True or False, "
                f"got {self.adaptive_inner_kl_penalty!r}"
            )


class ProMPAgent(GradientMetaAgent):
    """ProMP: LVC inner step, clipped outer objective with the inner KL penalty.

    Args:
        observation_space: a ``Box`` (flattened into the network input).
        action_space: a ``Box``, bounded on every axis or on none.
        config: hyperparameters (defaults and sources in ``ProMPConfig``).
    """

    config: ProMPConfig

    def __init__(
        self, observation_space: Any, action_space: Any, config: ProMPConfig | None = None
    ):
        super().__init__(observation_space, action_space, config or ProMPConfig())
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=self.config.learning_rate)
        self.kl_penalties = [self.config.inner_kl_penalty] * self.config.num_inner_steps

    def outer_update(self, steps: Sequence[TaskData], post: TaskData) -> dict[str, float]:
        """``num_steps`` Adam steps on the ProMP objective. Metrics: ``loss`` and
        ``clip_objective`` (first step), ``clip_fraction``, ``outer_kl`` (approximate KL
        of the post-update policies after the update), ``inner_kl`` (mean over inner
        steps after the update) and ``kl_penalty`` (mean eta)."""
        cfg = self.config
        sampling = self.sampling_log_probs(steps)
        with torch.no_grad():
            # Copies: views of the live parameters would be changed by the optimizer.
            theta_old = {k: v.detach().clone() for k, v in self.params().items()}
            adapted_old, before_old = self.adapted_params(theta_old, steps, sampling)
            old_log_prob = self.batched_log_prob(adapted_old, post)
            old_dists = [
                self.step_distribution(p, d, j > 0)
                for j, (p, d) in enumerate(zip(before_old, steps, strict=True))
            ]
        first: dict[str, float] = {}
        for _ in range(cfg.num_steps):
            adapted, before = self.adapted_params(self.params(), steps, sampling)
            log_ratio = self.batched_log_prob(adapted, post) - old_log_prob
            ratio = torch.exp(log_ratio)
            clipped = torch.clamp(ratio, 1 - cfg.clip_range, 1 + cfg.clip_range)
            clip_objective = mean_over_tasks(
                torch.minimum(ratio * post.advantages, clipped * post.advantages), post.mask
            )
            inner_kls = []
            for j, (p, d, old) in enumerate(zip(before, steps, old_dists, strict=True)):
                mean, log_std = self.step_distribution(p, d, j > 0)
                inner_kls.append(
                    mean_over_tasks(gaussian_kl(old[0], old[1], mean, log_std), d.mask)
                )
            penalty = sum(eta * kl for eta, kl in zip(self.kl_penalties, inner_kls, strict=True))
            loss = -clip_objective + penalty
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if not first:
                first = {
                    "loss": float(loss.detach()),
                    "clip_objective": float(clip_objective.detach()),
                }

        with torch.no_grad():
            adapted, before = self.adapted_params(self.params(), steps, sampling)
            log_ratio = self.batched_log_prob(adapted, post) - old_log_prob
            ratio = torch.exp(log_ratio)
            outer_kl = mean_over_tasks((ratio - 1) - log_ratio, post.mask)
            clip_fraction = mean_over_tasks(
                ((ratio - 1).abs() > cfg.clip_range).to(ratio.dtype), post.mask
            )
            final_kls = []
            for j, (p, d, old) in enumerate(zip(before, steps, old_dists, strict=True)):
                mean, log_std = self.step_distribution(p, d, j > 0)
                final_kls.append(
                    float(mean_over_tasks(gaussian_kl(old[0], old[1], mean, log_std), d.mask))
                )
        if cfg.adaptive_inner_kl_penalty:
            for j, kl in enumerate(final_kls):
                if kl < cfg.target_inner_kl / 1.5:
                    self.kl_penalties[j] /= 2
                elif kl > cfg.target_inner_kl * 1.5:
                    self.kl_penalties[j] *= 2
        return {
            **first,
            "clip_fraction": float(clip_fraction),
            "outer_kl": float(outer_kl),
            "inner_kl": sum(final_kls) / len(final_kls),
            "kl_penalty": sum(self.kl_penalties) / len(self.kl_penalties),
        }

    def extra_state(self) -> dict[str, Any]:
        """Adam's state and the KL penalty coefficients."""
        return {"optimizer": self.optimizer.state_dict(), "kl_penalties": list(self.kl_penalties)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore ``extra_state``."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_penalties = [float(x) for x in state["kl_penalties"]]
