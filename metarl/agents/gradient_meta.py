"""Gradient-based meta-RL (MAML, Finn et al. 2017): what MAML-TRPO and ProMP share.

The meta-policy is a Gaussian MLP with parameters theta. On each task of a
meta-batch it collects a trial of ``episodes_per_trial`` episodes (pre-update), takes
``num_inner_steps`` policy-gradient steps on them,

    theta'_i = theta - inner_lr * grad L_inner(theta; D_i),

and collects again with theta'_i (post-update). The outer loop (TRPO in
``maml_trpo``, ProMP's clipped objective in ``promp``) improves theta for the
post-update return, differentiating through the inner step.

What lives here:

- ``GradientMetaConfig``: the fields both algorithms have (each algorithm's
  config extends it);
- ``GradientMetaAgent.network``: the Gaussian MLP (``networks.GaussianHead`` on
  observations), used functionally (``torch.func.functional_call``) so that one set
  of modules serves theta and every theta'_i; the samplers run it as a
  ``mlp_policy.GaussianMLPPolicy`` holding one parameter set per task;
- ``TaskData`` / ``process_episodes``: a batch turned into per-task padded tensors
  with advantages from a linear feature baseline fitted per task (Duan et al.
  2016), as MAML does;
- ``GradientMetaAgent``: collection before and after the inner steps
  (``train_step``), the differentiable inner update vectorized over tasks
  (``torch.func.vmap`` of ``torch.func.grad``, second order unless
  ``first_order``), and the meta-test protocol (``adapt``).

Choices (where the sources leave room):

- The inner objective is MAML's log-likelihood surrogate ``-mean(log pi * A)``
  or ProMP's low-variance curvature (LVC) surrogate ``-mean(pi / pi_old * A)``;
  both have the same gradient at the sampling parameters and differ in their
  Hessians, which is what the outer gradient sees.
- Every task's loss is the mean over its valid steps; the meta-batch's loss is
  the mean over tasks (ProMP's ``reduce_mean`` per task, then over tasks).
- Advantages are GAE with ``gae_lambda`` (1.0 in the published configs: the
  discounted return minus the baseline), standardized per task. The time limit
  is not bootstrapped (the baseline's time features model it), as in rllab,
  ProMP and garage.
- Log-probabilities and distributions of the sampling policies are recomputed
  from the stored parameters at the update, so the first ratio of an update is
  exactly 1; the samplers' ``log_prob`` infos are kept for inspection.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch.func import functional_call, grad, vmap

from metarl.agents.base import CollectFn, TrainStep, TrainStepAgent, return_metrics
from metarl.agents.linear_baseline import LinearFeatureBaseline, discounted_returns
from metarl.agents.mlp_policy import GaussianMLPPolicy
from metarl.agents.networks import (
    ACTIVATIONS,
    ActionScaling,
    Activation,
    GaussianHead,
    HiddenSizes,
    gaussian_log_prob,
)
from metarl.agents.ppo_update import compute_gae
from metarl.checks import NonNegativeInt, PositiveFloat, PositiveInt, UnitInterval, settings
from metarl.episodes import EpisodeBatch
from metarl.tasks import Task

__all__ = [
    "INNER_OBJECTIVES",
    "GradientMetaAgent",
    "GradientMetaConfig",
    "InnerObjective",
    "Params",
    "TaskData",
    "masked_ratio",
    "mean_over_tasks",
    "process_episodes",
]

Params = dict[str, torch.Tensor]
InnerObjective = Literal["log_likelihood", "lvc"]
INNER_OBJECTIVES: tuple[str, ...] = typing.get_args(InnerObjective)


@settings
class GradientMetaConfig:
    """Hyperparameters shared by MAML-TRPO and ProMP.

    Sources: "ProMP" is the ProMP repository's run scripts
    (``run_scripts/maml_run_mujoco.py``, ``pro-mp_run_mujoco.py``); "MAML" is Finn et
    al. 2017, Section 5.3 and Appendix A.2.
    """

    renamed_fields: ClassVar[Mapping[str, str]] = {"episodes_per_task": "episodes_per_trial"}

    seed: NonNegativeInt = 0
    """Seed of the agent's torch generator (initialization)."""

    meta_batch_size: PositiveInt = 40
    """Tasks per iteration: one trial is collected on each before and after every inner
    step, and the outer update learns from all of them. ProMP and MAML (locomotion): 40;
    MAML (2D navigation): 20."""

    episodes_per_trial: PositiveInt = 20
    """Episodes per trial: collected on each task for each inner step and for the outer
    update (ProMP's ``rollouts_per_meta_task``, MAML's 20 trajectories per gradient
    step)."""

    hidden_sizes: HiddenSizes = (64, 64)
    """Hidden layers of the policy's mean network (``[]``: a linear policy). ProMP:
    (64, 64); MAML: (100, 100)."""

    activation: Activation = "tanh"
    """Hidden activation, ``tanh`` or ``relu``. ProMP: tanh; MAML: ReLU."""

    init_std: PositiveFloat = 1.0
    """Initial action standard deviation in the unit box (the log-std is learned and
    adapted with the rest of theta). ProMP: 1.0."""

    inner_lr: PositiveFloat = 0.1
    """Step size of the inner policy-gradient step. ProMP and MAML: 0.1."""

    num_inner_steps: PositiveInt = 1
    """Inner policy-gradient steps during meta-training. ProMP and MAML: 1."""

    first_order: bool = False
    """Treat the inner gradient as a constant in the outer gradient (first-order MAML,
    Finn et al. 2017, Section 5.2). Default: the full second-order meta-gradient."""

    inner_objective: InnerObjective = "log_likelihood"
    """``log_likelihood``: MAML's ``-mean(log pi * A)``; ``lvc``: ProMP's low-variance
    curvature surrogate ``-mean(pi / pi_sampling * A)``."""

    gamma: UnitInterval = 0.99
    """Discount. ProMP and MAML: 0.99."""

    gae_lambda: UnitInterval = 1.0
    """GAE lambda. ProMP: 1.0 (discounted return minus the linear baseline)."""

    normalize_advantages: bool = True
    """Standardize advantages per task. ProMP: ``normalize_adv=True``."""

    baseline_reg: PositiveFloat = 1e-5
    """Initial ridge coefficient of the linear feature baseline. rllab, ProMP: 1e-5."""

    adapt_episodes: PositiveInt | None = None
    """Meta-test: episodes per task between two inner steps (default:
    ``episodes_per_trial``, as in training)."""

    ablate_inner_lr: bool = False
    """Ablation: no inner step at all (theta' = theta), during training and at
    meta-test; the learning test uses it to show that adaptation is what it measures."""


# ----------------------------------------------------------------------------- data


class TaskData(NamedTuple):
    """One collection's episodes as per-task tensors, padded to the longest task.

    ``obs`` ``(T, N, obs_dim)``, ``actions`` ``(T, N, action_dim)`` (unit box),
    ``advantages`` ``(T, N)``, ``mask`` ``(T, N)`` (1.0 on data, 0.0 on padding);
    ``returns`` ``(T, K)`` are the episode returns, for metrics.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    returns: np.ndarray


def process_episodes(
    batch: EpisodeBatch,
    scaling: ActionScaling,
    gamma: float,
    gae_lambda: float,
    normalize: bool,
    baseline_reg: float = 1e-5,
) -> TaskData:
    """Advantages per task from a linear feature baseline fitted on that task's episodes.

    The baseline is fitted to the discounted returns of the trial's episodes; each
    episode's advantages are GAE over its steps with the episode's end terminal.
    With ``normalize`` they are standardized over the task's steps.
    """
    if len(batch) == 0:
        raise ValueError("process_episodes needs a batch with at least one episode")
    trials = batch.trials()
    lengths = [sum(len(ep) for ep in trial) for trial in trials]
    t, n = len(trials), max(lengths)
    obs_dim = int(np.prod(batch.episodes[0].observations.shape[1:]))
    obs = np.zeros((t, n, obs_dim), dtype=np.float32)
    actions = np.zeros((t, n, scaling.dim), dtype=np.float32)
    advantages = np.zeros((t, n), dtype=np.float32)
    mask = np.zeros((t, n), dtype=np.float32)
    for i, trial in enumerate(trials):
        episode_obs = [ep.observations.reshape(len(ep), obs_dim) for ep in trial]
        baseline = LinearFeatureBaseline(baseline_reg)
        baseline.fit(episode_obs, [discounted_returns(ep.rewards, gamma) for ep in trial])
        adv = []
        for ep, o in zip(trial, episode_obs, strict=True):
            dones = np.zeros(len(ep), dtype=bool)
            dones[-1] = True
            a, _ = compute_gae(ep.rewards, baseline.predict(o), 0.0, dones, gamma, gae_lambda)
            adv.append(a)
        task_adv = np.concatenate(adv)
        if normalize:
            task_adv = (task_adv - task_adv.mean()) / (task_adv.std() + 1e-8)
        m = lengths[i]
        obs[i, :m] = np.concatenate(episode_obs)
        actions[i, :m] = scaling.to_unit(
            np.concatenate([ep.actions.reshape(len(ep), scaling.dim) for ep in trial])
        )
        advantages[i, :m] = task_adv
        mask[i, :m] = 1.0
    return TaskData(
        torch.from_numpy(obs),
        torch.from_numpy(actions),
        torch.from_numpy(advantages),
        torch.from_numpy(mask),
        batch.returns(),
    )


def masked_ratio(log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``exp(log_ratio)`` on data and 1 on padding (where an overflow would turn the
    masked-out ``inf * 0`` into NaN)."""
    return torch.exp(torch.where(mask > 0, log_ratio, torch.zeros_like(log_ratio)))


def _masked_task_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis where ``mask`` is 1 (per task for ``(T, N)``)."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


# ----------------------------------------------------------------------------- agent


class GradientMetaAgent(TrainStepAgent):
    """Collection, inner update and meta-test shared by MAML-TRPO and ProMP.

    Args:
        observation_space: a ``Box`` (flattened into the network input).
        action_space: a ``Box``, bounded on every axis or on none.
        config: hyperparameters, an instance of the subclass's ``config_class``
            (default: its defaults, with their sources in its docstring).

    Subclasses set ``config_class`` and implement ``outer_update(steps, post)``:
    ``steps[j]`` is the data collected before inner step ``j``, ``post`` the
    post-update data.
    """

    config: GradientMetaConfig
    config_class: type[GradientMetaConfig] = GradientMetaConfig
    # ``train_step``'s metrics; subclasses add their ``outer_update``'s.
    metric_descriptions: ClassVar[Mapping[str, str]] = {
        "return_mean": "mean undiscounted return of the post-update episodes (after the "
        "last inner step)",
        "return_step{j}": "mean undiscounted return of the episodes collected after {j} "
        "inner steps (0: with the meta-parameters)",
        "adaptation_gain": "return after the last inner step minus return before any "
        "(return_step<last> - return_step0)",
        "action_std": "mean standard deviation of the Gaussian policy (unit action box)",
    }

    def __init__(
        self,
        observation_space: spaces.Space[np.ndarray],
        action_space: spaces.Space[np.ndarray],
        config: GradientMetaConfig | None = None,
    ):
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(
                f"observation space must be a gymnasium.spaces.Box, got {observation_space!r}"
            )
        self.config = config
        self.scaling = ActionScaling(action_space)
        self.action_shape = tuple(action_space.shape or ())
        self.obs_dim = int(np.prod(observation_space.shape))
        self.tasks_per_iteration = config.meta_batch_size
        self.generator = torch.Generator().manual_seed(config.seed)
        self.network = GaussianHead(
            self.obs_dim,
            self.scaling.dim,
            self.generator,
            config.hidden_sizes,
            config.init_std,
            activation=ACTIVATIONS[config.activation],
        )
        self.iterations = 0

    @property
    def adaptation_batch(self) -> int:  # type: ignore[override]
        """Meta-test episodes per inner step (``adapt_episodes`` or ``episodes_per_trial``)."""
        return self.config.adapt_episodes or self.config.episodes_per_trial

    # -- parameters -------------------------------------------------------------------

    def params(self) -> Params:
        """The meta-parameters theta (the live tensors, requiring gradients)."""
        return dict(self.network.named_parameters())

    def flat_params(self) -> torch.Tensor:
        """theta as one detached vector."""
        return torch.cat([p.detach().reshape(-1) for p in self.network.parameters()])

    def unflatten(self, flat: torch.Tensor) -> Params:
        """A parameter dict of ``flat``'s values in theta's shapes (views of ``flat``)."""
        out: Params = {}
        offset = 0
        for name, p in self.network.named_parameters():
            out[name] = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return out

    def set_flat_params(self, flat: torch.Tensor) -> None:
        """Write ``flat`` into theta."""
        with torch.no_grad():
            for name, value in self.unflatten(flat).items():
                self.network.get_parameter(name).copy_(value)

    # -- the functional policy --------------------------------------------------------

    def distribution(self, params: Params, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std of the policy with ``params`` at ``obs``."""
        return functional_call(self.network, params, (obs,))

    def log_prob(self, params: Params, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of unit-box ``actions`` under the policy with ``params``."""
        mean, log_std = self.distribution(params, obs)
        return gaussian_log_prob(mean, log_std, actions)

    def inner_loss(
        self,
        params: Params,
        obs: torch.Tensor,
        actions: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        sampling_log_prob: torch.Tensor,
    ) -> torch.Tensor:
        """One task's inner objective (a loss) at ``params`` (arrays ``(N, ...)``)."""
        log_prob = self.log_prob(params, obs, actions)
        if self.config.inner_objective == "lvc":
            surrogate = masked_ratio(log_prob - sampling_log_prob, mask) * advantages
        else:
            surrogate = log_prob * advantages
        return -_masked_task_mean(surrogate, mask)

    def inner_step(
        self, params: Params, data: TaskData, sampling_log_prob: torch.Tensor, batched: bool
    ) -> Params:
        """theta'_i = theta_i - inner_lr * grad L_inner(theta_i; D_i) for every task i.

        ``params`` is one set shared by the tasks (``batched`` False) or one set per
        task (``(T, ...)``). The result is one set per task, differentiable in
        ``params`` to second order (or first order with ``config.first_order``).
        """
        cfg = self.config
        if cfg.ablate_inner_lr:
            t = len(data.obs)
            return params if batched else {k: v.expand(t, *v.shape) for k, v in params.items()}

        def one_task(p: Params, *task: torch.Tensor) -> Params:
            g = grad(self.inner_loss)(p, *task)
            if cfg.first_order:
                g = {k: v.detach() for k, v in g.items()}
            return {k: p[k] - cfg.inner_lr * g[k] for k in p}

        in_dims = (0 if batched else None, 0, 0, 0, 0, 0)
        adapted: Params = vmap(one_task, in_dims=in_dims)(
            params, data.obs, data.actions, data.advantages, data.mask, sampling_log_prob
        )
        return adapted

    def batched_log_prob(self, params: Params, data: TaskData) -> torch.Tensor:
        """Log-probabilities ``(T, N)`` of each task's actions under its parameter set."""
        return vmap(self.log_prob)(params, data.obs, data.actions)

    def batched_distribution(
        self, params: Params, data: TaskData
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-stds ``(T, N, action_dim)`` under each task's parameter set."""
        return vmap(self.distribution)(params, data.obs)

    def shared_log_prob(self, params: Params, data: TaskData) -> torch.Tensor:
        """Log-probabilities ``(T, N)`` under one parameter set shared by all tasks."""
        return self.log_prob(params, data.obs, data.actions)

    def adapted_params(
        self, params: Params, steps: Sequence[TaskData], sampling: Sequence[torch.Tensor]
    ) -> tuple[Params, list[Params]]:
        """Run the inner steps from ``params`` (shared) on the stored pre-update data.

        ``sampling[j]`` is the log-probability ``(T, N)`` of ``steps[j]``'s actions under
        the policy that collected them (the LVC objective's denominator). Returns the
        final per-task parameters and the per-task parameters before each step
        (entry 0 is ``params`` itself, shared).
        """
        before: list[Params] = []
        current, batched = params, False
        for data, logp in zip(steps, sampling, strict=True):
            before.append(current)
            current = self.inner_step(current, data, logp, batched)
            batched = True
        return current, before

    def step_log_prob(self, params: Params, data: TaskData, batched: bool) -> torch.Tensor:
        """Log-probabilities ``(T, N)`` of ``data`` under shared or per-task ``params``."""
        return (
            self.batched_log_prob(params, data) if batched else self.shared_log_prob(params, data)
        )

    def step_distribution(
        self, params: Params, data: TaskData, batched: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-stds of ``data`` under shared or per-task ``params``."""
        if batched:
            return self.batched_distribution(params, data)
        return self.distribution(params, data.obs)

    # -- collection -------------------------------------------------------------------

    def _policy_for(self, params: Params, batched: bool, num_tasks: int) -> GaussianMLPPolicy:
        if batched:
            stacked, assignment = params, np.arange(num_tasks)
        else:
            stacked, assignment = {k: v.unsqueeze(0) for k, v in params.items()}, None
        return GaussianMLPPolicy(self.network, stacked, self.scaling, self.action_shape, assignment)

    def policy(self) -> GaussianMLPPolicy:
        """The pre-update policy theta (a detached copy, safe to ship)."""
        return self._policy_for(self.params(), False, 1)

    def process(self, batch: EpisodeBatch) -> TaskData:
        """``process_episodes`` with this agent's discount, GAE and baseline settings."""
        cfg = self.config
        return process_episodes(
            batch,
            self.scaling,
            cfg.gamma,
            cfg.gae_lambda,
            cfg.normalize_advantages,
            cfg.baseline_reg,
        )

    def _collect_and_adapt(
        self, collect: CollectFn, tasks: Sequence[Task], stages: Sequence[int]
    ) -> tuple[list[EpisodeBatch], list[TaskData]]:
        """Collect ``stages[j]`` episodes per task with the parameters after ``j`` inner
        steps (an inner step follows every stage but the last). Returns the batches and
        their ``TaskData`` (the last stage's is processed too)."""
        batches: list[EpisodeBatch] = []
        datas: list[TaskData] = []
        params: Params = {k: v.detach() for k, v in self.params().items()}
        batched = False
        for j, episodes in enumerate(stages):
            batch = collect(self._policy_for(params, batched, len(tasks)), tasks, episodes)
            data = self.process(batch)
            batches.append(batch)
            datas.append(data)
            if j + 1 < len(stages):
                with torch.no_grad():
                    logp = self.step_log_prob(params, data, batched)
                params = {
                    k: v.detach() for k, v in self.inner_step(params, data, logp, batched).items()
                }
                batched = True
        return batches, datas

    def train_step(self, collect: CollectFn, tasks: Sequence[Task]) -> TrainStep:
        """Collect pre-update episodes, take the inner steps, collect post-update
        episodes, and run the outer update.

        Metrics: ``metric_descriptions`` (the returns, the adaptation gain and the
        outer update's metrics).
        """
        cfg = self.config
        stages = [cfg.episodes_per_trial] * (cfg.num_inner_steps + 1)
        batches, datas = self._collect_and_adapt(collect, tasks, stages)
        metrics = return_metrics(batches[-1])
        metrics = {"return_mean": metrics["return_mean"]}
        for j, batch in enumerate(batches):
            metrics[f"return_step{j}"] = float(batch.returns().mean())
        metrics["adaptation_gain"] = (
            metrics[f"return_step{len(batches) - 1}"] - metrics["return_step0"]
        )
        metrics.update(self.outer_update(datas[:-1], datas[-1]))
        metrics["action_std"] = self.network.action_std()
        self.iterations += 1
        return TrainStep(sum(b.num_steps for b in batches), metrics)

    def adapt(self, collect: CollectFn, tasks: Sequence[Task], episodes: int) -> EpisodeBatch:
        """Meta-test: ``episodes`` episodes per task, an inner step after every
        ``adapt_episodes`` (default ``episodes_per_trial``) of them.

        The result is one trial per task, episodes in the order collected: with
        ``adapt_episodes = B``, episodes ``1..B`` use theta, ``B+1..2B`` the parameters
        after one inner step, and so on (more steps than in training if asked).
        """
        per_step = self.adaptation_batch
        stages = [per_step] * (episodes // per_step)
        if episodes % per_step:
            stages.append(episodes % per_step)
        batches, _ = self._collect_and_adapt(collect, tasks, stages)
        return EpisodeBatch.chain(batches)

    # -- the outer update ---------------------------------------------------------------

    @abstractmethod
    def outer_update(self, steps: Sequence[TaskData], post: TaskData) -> dict[str, float]:
        """Update theta from the pre-update data of each inner step and the post-update data."""

    def sampling_log_probs(self, steps: Sequence[TaskData]) -> list[torch.Tensor]:
        """Log-probabilities of each stage's actions under the parameters that collected
        them, recomputed from theta before the update (detached)."""
        out: list[torch.Tensor] = []
        with torch.no_grad():
            params: Params = {k: v.detach() for k, v in self.params().items()}
            batched = False
            for data in steps:
                logp = self.step_log_prob(params, data, batched)
                out.append(logp)
                params = self.inner_step(params, data, logp, batched)
                batched = True
        return out

    # -- checkpoints --------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        """Subclasses: state beyond the network (optimizers, penalty coefficients)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Subclasses: restore ``extra_state``."""

    def state_dict(self) -> dict[str, Any]:
        """Network, iteration count, config and the subclass's extra state (copies)."""
        return copy.deepcopy(
            {
                "network": self.network.state_dict(),
                "iterations": self.iterations,
                "config": dataclasses.asdict(self.config),
                "extra": self.extra_state(),
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned.

        Raises:
            KeyError: an entry is missing.
            RuntimeError: the network's shapes differ (torch's message names the tensor).
        """
        self.network.load_state_dict(state["network"])
        self.iterations = int(state["iterations"])
        self.load_extra_state(state["extra"])


def mean_over_tasks(per_step: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over tasks of each task's mean over its valid steps (``(T, N)`` inputs)."""
    return _masked_task_mean(per_step, mask).mean()
