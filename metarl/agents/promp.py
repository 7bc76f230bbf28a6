"""ProMP (Rothfuss et al. 2019, "ProMP: Proximal Meta-Policy Search"): MAML whose
meta-gradient assigns credit to the pre-update (exploration) policy correctly and
with low variance, optimized with a PPO-style proximal objective.

Two changes to MAML-TRPO (``metarl.agents.maml_trpo``), everything else shared
(``metarl.agents.gradient_meta``):

- the inner step uses the low-variance curvature (LVC) surrogate
  ``-mean(pi_theta(a|s) / pi_theta_o(a|s) * A)`` over the pre-update episodes
  (``theta_o`` the parameters that collected them), whose Hessian is the
  unbiased, low-variance curvature estimate of the paper's Section 5
  (``inner_objective = "lvc"``);
- the outer objective, maximized with ``num_steps`` Adam steps on the same data,
  is PPO's clipped surrogate of the post-update policies minus a KL penalty that
  keeps each pre-update policy near the one that sampled (paper, Eq. 11):

      J(theta) = mean_tasks [ J_clip(theta'_i) ] - eta * mean_tasks KL(pi_theta_o || pi_theta)

  with one coefficient ``eta_j`` per inner step (the KL of step j's pre-update
  policy on step j's episodes), the penalty being the mean over steps of
  ``eta_j * KL_j`` as in ProMP's code, each ``eta_j`` fixed or adapted towards
  ``target_inner_kl`` (ProMP's ``adaptive_inner_kl_penalty``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import torch

from metarl.agents.gradient_meta import (
    GradientMetaAgent,
    GradientMetaConfig,
    InnerObjective,
    Params,
    TaskData,
    masked_ratio,
    mean_over_tasks,
)
from metarl.agents.networks import gaussian_kl
from metarl.checks import NonNegativeFloat, PositiveFloat, PositiveInt, settings

__all__ = ["ProMPAgent", "ProMPConfig"]


class _Reference(NamedTuple):
    """What an update compares against: the pre-update data of each inner step, the
    log-probabilities of its actions under its sampling policy, the post-update data
    and the log-probabilities and distributions of the sampling policies there."""

    steps: list[TaskData]
    sampling: list[torch.Tensor]
    post: TaskData
    old_log_prob: torch.Tensor
    old_dists: list[tuple[torch.Tensor, torch.Tensor]]


class _Objective(NamedTuple):
    loss: torch.Tensor
    clip_objective: torch.Tensor
    inner_kls: list[torch.Tensor]
    outer_kl: torch.Tensor
    clip_fraction: torch.Tensor


@settings
class ProMPConfig(GradientMetaConfig):
    """ProMP: the shared fields (``GradientMetaConfig``, with the LVC inner objective)
    and the proximal outer loop's.

    Source: ProMP's ``run_scripts/pro-mp_run_mujoco.py`` (the defaults below).
    """

    inner_objective: InnerObjective = "lvc"
    """The LVC surrogate (ProMP's ``inner_type='likelihood_ratio'``)."""

    learning_rate: PositiveFloat = 1e-3
    """Adam step size of the outer loop. ProMP: 1e-3."""

    num_steps: PositiveInt = 5
    """Outer Adam steps on each meta-batch (ProMP's ``num_promp_steps``): 5."""

    clip_range: PositiveFloat = 0.3
    """Clip of the post-update likelihood ratio. ProMP: ``clip_eps=0.3``."""

    inner_kl_penalty: NonNegativeFloat = 5e-4
    """Initial eta, the weight of the pre-update KL penalty. ProMP: 5e-4."""

    adaptive_inner_kl_penalty: bool = False
    """Halve / double eta_j when step j's KL is under / over ``target_inner_kl`` by a
    factor 1.5 (PPO's adaptive penalty). ProMP: False."""

    target_inner_kl: PositiveFloat = 0.01
    """KL target of the adaptive penalty. ProMP: ``target_inner_step=0.01``."""


class ProMPAgent(GradientMetaAgent):
    """ProMP: LVC inner step, clipped outer objective with the inner KL penalty
    (arguments: ``GradientMetaAgent``'s)."""

    config: ProMPConfig
    config_class = ProMPConfig
    metric_descriptions: ClassVar[Mapping[str, str]] = {
        **GradientMetaAgent.metric_descriptions,
        "loss": "the ProMP objective as a loss, at the update's first Adam step",
        "clip_objective": "its clipped-likelihood-ratio term, at the first Adam step",
        "clip_fraction": "share of post-update steps whose ratio lies outside the clip "
        "range, after the update",
        "outer_kl": "approximate KL of the post-update policies, before vs after the update",
        "inner_kl": "KL between pre- and post-inner-step policies after the update, mean "
        "over inner steps",
        "kl_penalty": "the inner KL penalty coefficient eta, mean over inner steps",
    }

    def __init__(
        self, observation_space: Any, action_space: Any, config: ProMPConfig | None = None
    ):
        super().__init__(observation_space, action_space, config)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=self.config.learning_rate)
        self.kl_penalties = [self.config.inner_kl_penalty] * self.config.num_inner_steps

    def objective(self, params: Params, ref: _Reference) -> _Objective:
        """The ProMP loss at ``params`` (shared theta), through the inner steps.

        ``loss = -mean_tasks J_clip(theta') + mean_j eta_j * KL_j`` with ``KL_j`` the
        mean over tasks of KL(step j's sampling policy || step j's policy at
        ``params``) on step j's episodes.
        """
        cfg = self.config
        adapted, before = self.adapted_params(params, ref.steps, ref.sampling)
        log_ratio = (self.batched_log_prob(adapted, ref.post) - ref.old_log_prob) * ref.post.mask
        ratio = masked_ratio(log_ratio, ref.post.mask)
        adv = ref.post.advantages
        clipped = torch.clamp(ratio, 1 - cfg.clip_range, 1 + cfg.clip_range)
        clip_objective = mean_over_tasks(torch.minimum(ratio * adv, clipped * adv), ref.post.mask)
        inner_kls = []
        for j, (p, d, old) in enumerate(zip(before, ref.steps, ref.old_dists, strict=True)):
            mean, log_std = self.step_distribution(p, d, j > 0)
            inner_kls.append(mean_over_tasks(gaussian_kl(old[0], old[1], mean, log_std), d.mask))
        # The mean over inner steps of eta_j * KL_j (ProMP's reduce_mean).
        penalty = sum(eta * kl for eta, kl in zip(self.kl_penalties, inner_kls, strict=True)) / len(
            inner_kls
        )
        loss = -clip_objective + penalty
        with torch.no_grad():
            outer_kl = mean_over_tasks((ratio - 1) - log_ratio, ref.post.mask)
            clip_fraction = mean_over_tasks(
                ((ratio - 1).abs() > cfg.clip_range).to(ratio.dtype), ref.post.mask
            )
        return _Objective(loss, clip_objective, inner_kls, outer_kl, clip_fraction)

    def reference(self, steps: Sequence[TaskData], post: TaskData) -> _Reference:
        """The sampling policies' quantities the objective compares against (detached)."""
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
        return _Reference(list(steps), sampling, post, old_log_prob, old_dists)

    def outer_update(self, steps: Sequence[TaskData], post: TaskData) -> dict[str, float]:
        """``num_steps`` Adam steps on the ProMP objective; its metrics are in
        ``metric_descriptions``."""
        cfg = self.config
        ref = self.reference(steps, post)
        first: dict[str, float] = {}
        for _ in range(cfg.num_steps):
            obj = self.objective(self.params(), ref)
            self.optimizer.zero_grad(set_to_none=True)
            obj.loss.backward()
            self.optimizer.step()
            if not first:
                first = {
                    "loss": float(obj.loss.detach()),
                    "clip_objective": float(obj.clip_objective.detach()),
                }
        with torch.no_grad():
            final = self.objective(self.params(), ref)
        final_kls = [float(kl) for kl in final.inner_kls]
        if cfg.adaptive_inner_kl_penalty:
            for j, kl in enumerate(final_kls):
                if kl < cfg.target_inner_kl / 1.5:
                    self.kl_penalties[j] /= 2
                elif kl > cfg.target_inner_kl * 1.5:
                    self.kl_penalties[j] *= 2
        return {
            **first,
            "clip_fraction": float(final.clip_fraction),
            "outer_kl": float(final.outer_kl),
            "inner_kl": sum(final_kls) / len(final_kls),
            "kl_penalty": sum(self.kl_penalties) / len(self.kl_penalties),
        }

    def extra_state(self) -> dict[str, Any]:
        """Adam's state and the KL penalty coefficients."""
        return {"optimizer": self.optimizer.state_dict(), "kl_penalties": list(self.kl_penalties)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore ``extra_state``."""
        penalties = [float(x) for x in state["kl_penalties"]]
        if len(penalties) != self.config.num_inner_steps:
            raise ValueError(
                f"checkpoint has {len(penalties)} kl_penalties; this agent's "
                f"num_inner_steps is {self.config.num_inner_steps}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_penalties = penalties
