"""MAML-TRPO (Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of
Deep Networks", Section 3.2 and 5.3): a policy initialization from which one
vanilla policy-gradient step adapts to a new task, meta-trained with TRPO.

The inner step and the data pipeline are ``metarl.agents.gradient_meta``'s. The outer
update is TRPO (Schulman et al. 2015) on the post-update episodes: the surrogate

    L(theta) = -mean_tasks mean_steps [pi_theta'_i(a|s) / pi_old'_i(a|s) * A]

with theta'_i the inner step from theta, maximized under

    mean_tasks mean_steps KL(pi_old'_i || pi_theta'_i) <= max_kl,

both differentiated through the inner step. The search direction solves
``H x = -grad L`` by conjugate gradient, ``H`` the Hessian of the KL constraint
at theta; its products are exact (double back-propagation through the inner
step, itself a gradient: third derivatives), where MAML used finite differences
"to avoid computing third derivatives" and ProMP's TRPO-MAML the same
approximation. The step is scaled to the constraint's boundary and backtracked
until the surrogate improves within the KL bound (rllab's line search).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, ClassVar

import torch
from pydantic import Field

from metarl.agents.gradient_meta import (
    GradientMetaAgent,
    GradientMetaConfig,
    Params,
    TaskData,
    masked_ratio,
    mean_over_tasks,
)
from metarl.agents.networks import gaussian_kl
from metarl.agents.trpo import backtracking_line_search, conjugate_gradient
from metarl.checks import PositiveFloat, PositiveInt, settings

__all__ = ["MAMLTRPOAgent", "MAMLTRPOConfig"]


@settings
class MAMLTRPOConfig(GradientMetaConfig):
    """MAML-TRPO: the shared fields (``GradientMetaConfig``) and TRPO's.

    Sources: ProMP's ``run_scripts/maml_run_mujoco.py`` (step size 0.01) and rllab's
    ``ConjugateGradientOptimizer`` (the CG and line-search constants).
    """

    max_kl: PositiveFloat = 0.01
    """TRPO's trust region: bound on the mean KL of the post-update policies. MAML and
    ProMP: 0.01."""

    cg_iterations: PositiveInt = 10
    """Conjugate-gradient iterations. rllab: 10."""

    cg_damping: PositiveFloat = 1e-5
    """Damping added to the KL Hessian (``H + damping * I``). rllab: ``reg_coeff=1e-5``."""

    backtrack_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.8
    """Line-search shrink factor. rllab: 0.8."""

    max_backtracks: PositiveInt = 15
    """Line-search steps before giving up (theta then stays). rllab: 15."""


class MAMLTRPOAgent(GradientMetaAgent):
    """MAML with a TRPO outer loop (arguments: ``GradientMetaAgent``'s)."""

    config: MAMLTRPOConfig
    config_class = MAMLTRPOConfig
    metric_descriptions: ClassVar[Mapping[str, str]] = {
        **GradientMetaAgent.metric_descriptions,
        "surrogate_before": "TRPO surrogate loss of the post-update episodes before the step",
        "surrogate_after": "the surrogate loss after the accepted step (the line search's)",
        "outer_kl": "mean KL (exact, of the Gaussians) of the post-update policies, before "
        "vs after the step",
        "backtracks": "line-search backtracking steps taken",
        "step_accepted": "1 if the line search accepted a step (KL and loss constraints "
        "met), else 0",
        "grad_norm": "norm of the meta-gradient of the surrogate",
    }
    renamed_metrics: ClassVar[Mapping[str, str]] = {"kl": "outer_kl"}

    def _objectives(
        self,
        params: Params,
        steps: Sequence[TaskData],
        sampling: Sequence[torch.Tensor],
        post: TaskData,
        old_log_prob: torch.Tensor,
        old_dist: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The surrogate loss and the mean KL at ``params``, through the inner steps."""
        adapted, _ = self.adapted_params(params, steps, sampling)
        log_prob = self.batched_log_prob(adapted, post)
        ratio = masked_ratio(log_prob - old_log_prob, post.mask)
        loss = -mean_over_tasks(ratio * post.advantages, post.mask)
        mean, log_std = self.batched_distribution(adapted, post)
        kl = mean_over_tasks(gaussian_kl(old_dist[0], old_dist[1], mean, log_std), post.mask)
        return loss, kl

    def outer_update(self, steps: Sequence[TaskData], post: TaskData) -> dict[str, float]:
        """One TRPO step on theta; its metrics are in ``metric_descriptions``."""
        cfg = self.config
        sampling = self.sampling_log_probs(steps)
        theta = self.flat_params()
        with torch.no_grad():
            adapted_old, _ = self.adapted_params(self.unflatten(theta), steps, sampling)
            old_log_prob = self.batched_log_prob(adapted_old, post)
            old_dist = self.batched_distribution(adapted_old, post)

        def objectives(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self._objectives(
                self.unflatten(flat), steps, sampling, post, old_log_prob, old_dist
            )

        # One pass through the inner step gives the surrogate's gradient and the KL's,
        # the latter with its graph: each Hessian-vector product back-propagates it.
        y = theta.clone().requires_grad_(True)
        loss, kl = objectives(y)
        (g,) = torch.autograd.grad(loss, y, retain_graph=True)
        (kl_grad,) = torch.autograd.grad(kl, y, create_graph=True)

        def hvp(v: torch.Tensor) -> torch.Tensor:
            (hv,) = torch.autograd.grad(torch.dot(kl_grad, v), y, retain_graph=True)
            return hv + cfg.cg_damping * v

        direction = conjugate_gradient(hvp, -g, cfg.cg_iterations)
        curvature = float(torch.dot(direction, hvp(direction)))
        scale = math.sqrt(2.0 * cfg.max_kl / curvature) if curvature > 0 else 0.0

        def evaluate(flat: torch.Tensor) -> tuple[float, float]:
            with torch.no_grad():
                loss_value, kl_value = objectives(flat)
            return float(loss_value), float(kl_value)

        result = backtracking_line_search(
            evaluate,
            theta,
            scale * direction,
            float(loss.detach()),
            cfg.max_kl,
            cfg.backtrack_ratio,
            cfg.max_backtracks,
        )
        self.set_flat_params(result.params)
        return {
            "surrogate_before": float(loss.detach()),
            "surrogate_after": result.loss,
            "outer_kl": result.kl,
            "backtracks": float(result.backtracks),
            "step_accepted": float(result.accepted),
            "grad_norm": float(g.norm()),
        }
