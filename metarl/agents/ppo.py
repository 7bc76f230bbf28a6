"""PPO over a task distribution (domain randomization): the policy a user trains
without meta-learning, inside the meta-training loop.

A Markov Gaussian MLP policy and a separate MLP value function, trained with PPO
(Schulman et al. 2017; the update is ``ppo_update``'s, shared with RL2) on episodes
of tasks drawn from the training set at every iteration; the policy never sees the
task. With a ``*Params`` environment (or
``PhysicsRandomization``) this is domain randomization (Tobin et al. 2017; Peng et
al. 2018): the agent that randomization-width studies (``metarl sweep``) and the
sim-to-real schedules train. Unlike the Stable-Baselines3 multi-task baseline
(``metarl.agents.baselines``), it runs in the trainer: the Ray sampler, checkpoints
and resume, periodic evaluation, and task draws from the run's task sets.

Choices (the implementations that follow the PPO paper: OpenAI baselines' ``ppo2``
MuJoCo settings, CleanRL's ``ppo_continuous_action``, Stable-Baselines3):

- Observations are standardized by a running mean and variance (SB3's
  ``RunningMeanStd``, as ``VecNormalize``), updated from each batch before its
  update; the standardization is folded into the first layer of the policy that
  the samplers get, so acting costs nothing extra. No clipping of standardized
  observations (baselines clips at 10), because a folded layer cannot clip.
- The value function is trained on returns standardized by their running
  statistics (as RL2 here), in place of baselines' reward scaling.
- A truncated episode (time limit) bootstraps from the value of its final
  observation; a terminated one from 0 (Gymnasium 1.x semantics).
- Meta-test episodes use the mean action (``deterministic_eval``), as SB3's
  ``evaluate_policy`` and the SB3 baselines here do.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.running_mean_std import RunningMeanStd

from metarl.agents.base import BatchAgent, CollectFn
from metarl.agents.control_step import ControlStep, MarkovStep
from metarl.agents.mlp_policy import GaussianMLPPolicy
from metarl.agents.networks import (
    ACTIVATIONS,
    ActionScaling,
    Activation,
    GaussianHead,
    HiddenSizes,
    gaussian_entropy,
    gaussian_log_prob,
    mlp,
    torch_threads,
)
from metarl.agents.ppo_update import (
    PPO_UPDATE_METRICS,
    MinibatchEvaluation,
    compute_gae,
    explained_variance,
    load_running_stats,
    ppo_batch,
    ppo_update,
    return_scale,
    running_stats_state,
    standardize_returns,
)
from metarl.checks import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
    settings,
)
from metarl.episodes import EpisodeBatch
from metarl.tasks import Task

__all__ = ["PPOAgent", "PPOConfig"]


@settings
class PPOConfig:
    """Hyperparameters of PPO on a task distribution.

    Defaults are the PPO paper's MuJoCo settings (Schulman et al. 2017, Table 3:
    Adam 3e-4, 10 epochs, minibatches of 64, gamma 0.99, lambda 0.95, clip 0.2) with
    a (64, 64) tanh network as in the paper, and baselines'/CleanRL's value
    coefficient 0.5 and gradient-norm clip 0.5.
    """

    renamed_fields: ClassVar[Mapping[str, str]] = {
        "tasks_per_iteration": "meta_batch_size",
        "episodes_per_task": "episodes_per_trial",
    }

    seed: NonNegativeInt = 0
    """Seed of the agent's torch generator (initialization and minibatch order)."""

    meta_batch_size: PositiveInt = 20
    """Tasks per iteration, drawn afresh from the training set; the update learns from
    their trials."""

    episodes_per_trial: PositiveInt = 1
    """Episodes per trial: collected on each drawn task per iteration."""

    hidden_sizes: HiddenSizes = (64, 64)
    """Hidden layers of the policy and of the value function. PPO paper: (64, 64)."""

    activation: Activation = "tanh"
    """Hidden activation, ``tanh`` or ``relu``. PPO paper: tanh."""

    init_std: PositiveFloat = 1.0
    """Initial action standard deviation in the unit box (1.0: half the action range;
    SB3's ``log_std_init=0``)."""

    learning_rate: PositiveFloat = 3e-4
    """Adam step size. PPO paper (MuJoCo): 3e-4."""

    gamma: UnitInterval = 0.99
    """Discount. PPO paper: 0.99."""

    gae_lambda: UnitInterval = 0.95
    """GAE lambda. PPO paper: 0.95."""

    clip_range: PositiveFloat = 0.2
    """Ratio clip. PPO paper: 0.2."""

    epochs: PositiveInt = 10
    """Passes over each batch. PPO paper (MuJoCo): 10."""

    minibatch_size: PositiveInt = 64
    """Steps per minibatch. PPO paper (MuJoCo): 64."""

    value_coef: NonNegativeFloat = 0.5
    """Weight of the value loss (on standardized returns). baselines, CleanRL: 0.5."""

    entropy_coef: NonNegativeFloat = 0.0
    """Weight of the entropy bonus. PPO paper (MuJoCo): 0."""

    max_grad_norm: PositiveFloat = 0.5
    """Clip of the global gradient norm. baselines, CleanRL: 0.5."""

    normalize_advantages: bool = True
    """Standardize advantages over the whole batch (baselines and CleanRL do it per
    minibatch; over the batch every minibatch gets the same scale)."""

    normalize_observations: bool = True
    """Standardize observations by their running statistics (module docstring)."""

    deterministic_eval: bool = True
    """Meta-test with the mean action instead of sampling."""


class PPOAgent(BatchAgent):
    """PPO with a Markov Gaussian MLP policy over a task distribution (no adaptation).

    Raises:
        TypeError: ``config`` is not a ``PPOConfig``.
        ValueError: the observation space is not a ``Box`` or the action space is not
            a ``Box`` (bounded on every axis or on none).
    """

    metric_descriptions: ClassVar[Mapping[str, str]] = {
        **BatchAgent.metric_descriptions,
        **PPO_UPDATE_METRICS,
        "episode_length": "mean length (steps) of the iteration's training episodes",
    }

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        config: PPOConfig | None = None,
    ):
        if config is not None and not isinstance(config, PPOConfig):
            raise TypeError(f"PPOAgent needs a PPOConfig, got {type(config).__name__}")
        self.config = config or PPOConfig()
        cfg = self.config
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(f"PPOAgent needs a Box observation space, got {observation_space!r}")
        self.scaling = ActionScaling(action_space)
        self.action_shape = tuple(action_space.shape or ())
        self.tasks_per_iteration = cfg.meta_batch_size
        self.episodes_per_trial = cfg.episodes_per_trial
        obs_dim = int(np.prod(observation_space.shape))
        self.generator = torch.Generator().manual_seed(cfg.seed)
        activation = ACTIVATIONS[cfg.activation]
        self.network = GaussianHead(
            obs_dim,
            self.scaling.dim,
            self.generator,
            cfg.hidden_sizes,
            cfg.init_std,
            activation=activation,
        )
        self.value_net = mlp(obs_dim, cfg.hidden_sizes, 1, self.generator, activation=activation)
        self.optimizer = torch.optim.Adam(
            [*self.network.parameters(), *self.value_net.parameters()], lr=cfg.learning_rate
        )
        self.obs_stats = RunningMeanStd(shape=(obs_dim,))
        self.return_stats = RunningMeanStd(shape=())
        self.iterations = 0

    # -- acting -------------------------------------------------------------------------

    def _obs_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation that standardize observations (0 and 1 if off)."""
        if not self.config.normalize_observations:
            dim = self.obs_stats.mean.shape[0]
            return np.zeros(dim), np.ones(dim)
        return self.obs_stats.mean, np.sqrt(self.obs_stats.var + 1e-8)

    def _normalize(self, obs: np.ndarray) -> torch.Tensor:
        mean, std = self._obs_scale()
        return torch.from_numpy(((obs - mean) / std).astype(np.float32))

    def _policy(self, deterministic: bool) -> GaussianMLPPolicy:
        """The current policy on raw observations: the standardization folded into the
        first linear layer (``W (x - m) / s + b = (W / s) x + (b - W m / s)``)."""
        mean, std = self._obs_scale()
        params = {k: v.detach().clone() for k, v in self.network.named_parameters()}
        w = params["mean.0.weight"].double()
        scale = torch.from_numpy(1.0 / std)
        params["mean.0.bias"] = (
            params["mean.0.bias"].double() - w @ (scale * torch.from_numpy(mean))
        ).float()
        params["mean.0.weight"] = (w * scale).float()
        stacked = {k: v.unsqueeze(0) for k, v in params.items()}
        return GaussianMLPPolicy(
            self.network, stacked, self.scaling, self.action_shape, deterministic=deterministic
        )

    def policy(self) -> GaussianMLPPolicy:
        """The sampling policy with the current parameters (a detached copy)."""
        return self._policy(deterministic=False)

    def adapt(self, collect: CollectFn, tasks: Sequence[Task], episodes: int) -> EpisodeBatch:
        """Meta-test: ``episodes`` episodes per task with the same policy (no adaptation),
        the mean action if ``deterministic_eval``."""
        return collect(self._policy(self.config.deterministic_eval), tasks, episodes)

    def control_step(self) -> ControlStep:
        """The mean action on raw observations (the standardization folded into the first
        layer, as in ``policy()``), for export (``metarl.agents.control_step``)."""
        policy = self._policy(deterministic=True)
        network = copy.deepcopy(self.network)
        network.load_state_dict({k: v[0] for k, v in policy.params.items()})
        scaling = self.scaling
        mean, std = self._obs_scale()
        return ControlStep(
            MarkovStep(network.mean, scaling.center, scaling.half_range),
            inputs=("observation",),
            outputs=("action",),
            obs_dim=int(self.obs_stats.mean.shape[0]),
            action_dim=scaling.dim,
            state_dim=0,
            scaling=scaling,
            policy=policy,
            observation_mean=mean,
            observation_std=std,
        )

    # -- update -------------------------------------------------------------------------

    def _values(self, obs: torch.Tensor) -> np.ndarray:
        """Value estimates in return units (the head predicts standardized returns)."""
        with torch.no_grad():
            v = self.value_net(obs).squeeze(-1).double().numpy()
        loc, scale = return_scale(self.return_stats)
        return v * scale + loc

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """One PPO update (``epochs`` passes of minibatches) from ``batch``; its metrics
        are in ``metric_descriptions``."""
        cfg = self.config
        episodes = batch.episodes
        obs_raw = np.concatenate([ep.observations for ep in episodes]).reshape(batch.num_steps, -1)
        if cfg.normalize_observations:
            self.obs_stats.update(obs_raw.astype(np.float64))
        with torch_threads():
            obs = self._normalize(obs_raw)
            ends = np.cumsum([len(ep) for ep in episodes]) - 1
            final = self._normalize(
                np.stack([ep.next_observations[-1] for ep in episodes]).reshape(len(episodes), -1)
            )
            values = self._values(obs)
            final_values = self._values(final)
            rewards = np.concatenate([ep.rewards for ep in episodes]).astype(np.float64)
            truncated = np.array(
                [bool(ep.truncations[-1] and not ep.terminations[-1]) for ep in episodes]
            )
            rewards[ends[truncated]] += cfg.gamma * final_values[truncated]
            dones = np.zeros(len(rewards), dtype=bool)
            dones[ends] = True
            advantages, returns = compute_gae(
                rewards, values, 0.0, dones, cfg.gamma, cfg.gae_lambda
            )
            targets, _, _ = standardize_returns(self.return_stats, returns)
            actions = np.concatenate([ep.actions for ep in episodes]).reshape(batch.num_steps, -1)
            unit = torch.from_numpy(self.scaling.to_unit(actions))
            with torch.no_grad():
                mean, log_std = self.network(obs)
                old_log_prob = gaussian_log_prob(mean, log_std, unit)

            def evaluate(idx: torch.Tensor) -> MinibatchEvaluation:
                mean, log_std = self.network(obs[idx])
                return MinibatchEvaluation(
                    gaussian_log_prob(mean, log_std, unit[idx]),
                    gaussian_entropy(log_std),
                    self.value_net(obs[idx]).squeeze(-1),
                )

            metrics = ppo_update(
                evaluate,
                ppo_batch(old_log_prob, advantages, targets, cfg.normalize_advantages),
                cfg,
                self.optimizer,
                self.generator,
                lambda order: order.split(cfg.minibatch_size),
            )
        self.iterations += 1
        metrics["explained_variance"] = explained_variance(values, returns)
        metrics["action_std"] = self.network.action_std()
        metrics["episode_length"] = float(batch.num_steps / len(episodes))
        return metrics

    # -- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizer, generator, running statistics, iterations (copies)."""
        return copy.deepcopy(
            {
                "network": self.network.state_dict(),
                "value_net": self.value_net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "obs_stats": running_stats_state(self.obs_stats),
                "return_stats": running_stats_state(self.return_stats),
                "iterations": self.iterations,
                "config": dataclasses.asdict(self.config),
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned.

        Raises:
            KeyError: an entry is missing.
            RuntimeError: the networks' shapes differ (torch's message names the tensor).
        """
        self.network.load_state_dict(state["network"])
        self.value_net.load_state_dict(state["value_net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        load_running_stats(self.obs_stats, state["obs_stats"])
        load_running_stats(self.return_stats, state["return_stats"])
        self.iterations = int(state["iterations"])
