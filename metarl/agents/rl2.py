"""RL2 (Duan et al. 2016, "RL^2: Fast Reinforcement Learning via Slow Reinforcement
Learning"; Wang et al. 2016, "Learning to reinforcement learn"): a recurrent agent
whose memory is its adaptation.

A GRU reads, at every step, the observation, the previous action, the previous
reward and an episode-boundary flag. Its hidden state is kept over the K episodes
of a trial on one task and reset between trials, so what it learns in episode 1
(where the goal is, how the dynamics feel) can shape episodes 2..K. The outer loop
is PPO (Schulman et al. 2017) over whole trials, as garage's ``RL2PPO``: a trial is
treated as one long episode, so returns and advantages flow across the episode
boundaries inside it, and back-propagation runs through the whole trial from the
zero state.

Choices (where the sources leave room):

- Policy and value function share one GRU, each with its own linear head, as the
  A3C LSTM of Wang et al. 2016 and VariBAD's RL2 baseline. The RL2 paper trains only
  a policy (TRPO with a baseline) and garage's RL2PPO uses a linear feature baseline,
  which cannot see the trial's history; a recurrent critic can. Sharing the core
  halves the cost of an update, which on a CPU is dominated by the GRU's step-by-step
  backward pass (benchmarks/RESULTS.md, "Figures quoted from development"). The
  value loss cannot swamp the shared features because its targets are standardized
  (``RL2Config.normalize_values``).
- An episode that ends by termination inside a trial does not end the trial: the
  next episode's first value is bootstrapped from, as for a truncation, because RL2
  treats the trial as one episode whose reward the agent maximizes. Only the end of
  the trial is terminal (bootstrap 0): the agent's lifetime on the task ends there.
- The Gaussian head works in the unit box; the sampled actions are mapped to the
  action space's bounds and stored unclipped, the environment clips what it applies.
  The previous action fed back to the network is the stored action, clipped to the
  bounds, i.e. the action the environment applied.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import nn

from metarl.agents.base import BatchAgent
from metarl.agents.control_step import ControlStep
from metarl.agents.networks import (
    ActionScaling,
    GaussianHead,
    GRUCore,
    gaussian_entropy,
    gaussian_log_prob,
    mlp,
    to_numpy,
    to_tensor,
    torch_threads,
)
from metarl.agents.policy import PolicyInput, PolicyOutput
from metarl.agents.ppo_update import (
    PPO_UPDATE_METRICS,
    MinibatchEvaluation,
    compute_gae,
    explained_variance,
    load_running_stats,
    ppo_batch,
    ppo_update,
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

__all__ = ["RL2Agent", "RL2Config", "RL2Policy", "RL2Step", "trial_gae"]


@settings
class RL2Config:
    """Hyperparameters of RL2 with PPO.

    Sources: "garage" is garage's ``examples/tf/rl2_ppo_halfcheetah.py`` with
    ``RL2PPO`` and its ``FirstOrderOptimizer`` defaults; "ProMP" is the RL2 config of
    the ProMP repository (``configs/rl2_config.json``); "PPO" is Schulman et al. 2017
    and the implementations that follow it (OpenAI baselines, CleanRL). Where a
    default was chosen on the point robot, the field's text says so; the measurements
    are in benchmarks/RESULTS.md, "Figures quoted from development".
    """

    seed: NonNegativeInt = 0
    """Seed of the agent's torch generator (initialization and minibatch order)."""

    episodes_per_trial: PositiveInt = 2
    """K, episodes per trial (hidden state kept across them). ProMP: 2; garage: 4. On
    the point robot (horizon 20) 2 suffices to show adaptation and halves the cost."""

    meta_batch_size: PositiveInt = 40
    """Tasks (trials) per iteration. garage: 10, ProMP: 200. Chosen on the point robot,
    where batches of 40 to 80 trials learned far more per CPU second than smaller ones
    (benchmarks/RESULTS.md, "Figures quoted from development")."""

    hidden_size: PositiveInt = 64
    """GRU hidden units (the core shared by the policy and value heads). garage and
    ProMP: 64."""

    init_std: PositiveFloat = 1.0
    """Initial action standard deviation in the unit box (1.0 = half the action
    range). garage's ``GaussianGRUPolicy``: ``init_std=1.0``."""

    learning_rate: PositiveFloat = 1e-3
    """Adam step size. garage's ``FirstOrderOptimizer`` and ProMP: 1e-3."""

    gamma: UnitInterval = 0.99
    """Discount over the steps of a trial. garage, ProMP and the RL2 paper: 0.99."""

    gae_lambda: UnitInterval = 0.95
    """GAE lambda. garage's RL2PPO example: 0.95 (ProMP: 1.0)."""

    clip_range: PositiveFloat = 0.2
    """PPO ratio clip. garage's RL2PPO example and PPO: 0.2."""

    epochs: PositiveInt = 5
    """Passes over the batch per update. ProMP: 5 (garage's RL2PPO example: 10)."""

    num_minibatches: PositiveInt = 1
    """Minibatches per epoch, each of whole trials (back-propagation runs through
    every full trial). ProMP: 1. An update's cost on a CPU grows with the number of
    minibatches, hardly with their size: the GRU steps through time one step at a
    time (benchmarks/RESULTS.md, "Figures quoted from development")."""

    value_coef: NonNegativeFloat = 0.5
    """Weight of the value loss (on standardized returns). PPO: 0.5."""

    entropy_coef: NonNegativeFloat = 0.0
    """Weight of the entropy bonus. PPO (MuJoCo): 0.0."""

    max_grad_norm: PositiveFloat = 0.5
    """Clip of the global gradient norm. PPO implementations (baselines, CleanRL): 0.5."""

    normalize_advantages: bool = True
    """Standardize advantages over the batch. ProMP: ``normalize_adv=True``; PPO."""

    normalize_values: bool = True
    """Train the value head on returns standardized by their running mean and
    standard deviation (stable_baselines3's ``RunningMeanStd``), the value
    normalization of rl_games / PopArt (van Hasselt et al. 2016) without PopArt's
    output correction. Why: a value head on tanh-bounded GRU features is slow to reach
    the scale of the point robot's trial returns without it (benchmarks/RESULTS.md,
    "Figures quoted from development")."""

    ablate_prev_reward: bool = False
    """Ablation: feed 0 instead of the previous reward. The agent can then no longer
    identify a task that only the reward reveals (the point robot's goal); the
    learning test uses it to show that it can fail."""


class RL2Policy(nn.Module):
    """The RL2 network and the ``Policy`` the samplers collect with.

    Input at each step: ``concat(observation, previous action in the unit box,
    previous reward, episode-start flag)`` into one GRU, whose output feeds a Gaussian
    head (state-independent learned log-std) and a value head. The recurrent state is
    the GRU's hidden state, a float32 array ``(n, hidden_size)``. ``act`` returns the
    actions (in the action space's units, unclipped) with infos ``log_prob`` (of the
    unit-box action, under the policy that acted) and ``value``. Picklable (a torch
    module of plain tensors and numpy arrays); inference runs without gradients on
    one thread.
    """

    value_loc: torch.Tensor
    value_scale: torch.Tensor

    def __init__(
        self,
        observation_space: spaces.Space[np.ndarray],
        action_space: spaces.Space[np.ndarray],
        hidden_size: int,
        init_std: float,
        generator: torch.Generator,
        ablate_prev_reward: bool = False,
    ):
        super().__init__()
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(
                f"observation space must be a gymnasium.spaces.Box, got {observation_space!r}"
            )
        self.scaling = ActionScaling(action_space)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.action_dim = self.scaling.dim
        self.action_shape = tuple(action_space.shape or ())
        self.hidden_size = hidden_size
        self.ablate_prev_reward = ablate_prev_reward
        self.core = GRUCore(self.obs_dim + self.action_dim + 2, hidden_size, generator)
        self.policy_head = GaussianHead(hidden_size, self.action_dim, generator, init_std=init_std)
        self.value_head = mlp(hidden_size, (), 1, generator, output_gain=1.0)
        # The value head predicts standardized returns; value = head * scale + loc.
        self.register_buffer("value_loc", torch.zeros(()))
        self.register_buffer("value_scale", torch.ones(()))

    # -- inputs, shared by acting and training ---------------------------------------

    def input_features(
        self,
        observations: np.ndarray,
        prev_actions: np.ndarray,
        prev_rewards: np.ndarray,
        episode_starts: np.ndarray,
    ) -> np.ndarray:
        """The network input ``(..., obs_dim + action_dim + 2)`` float32 for arrays with
        leading axes ``...`` (``(n,)`` when acting, ``(B, T)`` when training)."""
        lead = np.shape(prev_rewards)
        obs = np.asarray(observations, dtype=np.float32).reshape(*lead, self.obs_dim)
        act = self.scaling.to_unit(np.asarray(prev_actions).reshape(*lead, self.action_dim))
        if self.scaling.bounded:
            act = np.clip(act, -1.0, 1.0)
        rew = np.asarray(prev_rewards, dtype=np.float32).reshape(*lead, 1)
        if self.ablate_prev_reward:
            rew = np.zeros_like(rew)
        start = np.asarray(episode_starts, dtype=np.float32).reshape(*lead, 1)
        return np.concatenate([obs, act, rew, start], axis=-1)

    # -- the Policy protocol ----------------------------------------------------------

    def initial_state(self, n: int) -> np.ndarray:
        """Zero hidden states ``(n, hidden_size)`` (the sampler calls this at each trial start)."""
        return np.zeros((n, self.hidden_size), dtype=np.float32)

    def act(
        self, inputs: PolicyInput, state: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        """Sample one action per row; row ``i``'s noise is standard normal from ``rngs[i]``.

        The state is never reset here (not at ``episode_starts`` either): RL2 keeps its
        memory over the whole trial.

        Raises:
            ValueError: ``len(rngs)`` or the state's rows differ from the number of rows.
        """
        n = len(inputs.prev_rewards)
        if len(rngs) != n or len(state) != n:
            raise ValueError(f"act got {len(rngs)} generators and {len(state)} states for {n} rows")
        x = self.input_features(
            inputs.observations, inputs.prev_actions, inputs.prev_rewards, inputs.episode_starts
        )
        noise = np.stack([rng.standard_normal(self.action_dim) for rng in rngs])
        with torch.no_grad(), torch_threads(1):
            h = self.core.step(torch.from_numpy(x), torch.from_numpy(np.asarray(state)))
            mean, log_std = self.policy_head(h)
            unit = mean + torch.exp(log_std) * to_tensor(noise)
            actions = self.scaling.to_env(to_numpy(unit))
            # The log-probability of the action as stored, read back as training reads it.
            stored_unit = torch.from_numpy(self.scaling.to_unit(actions))
            log_prob = gaussian_log_prob(mean, log_std, stored_unit)
            value = self.value_head(h).squeeze(-1) * self.value_scale + self.value_loc
        return PolicyOutput(
            actions=actions.reshape(n, *self.action_shape),
            state=to_numpy(h),
            infos={"log_prob": to_numpy(log_prob), "value": to_numpy(value)},
        )

    # -- training ---------------------------------------------------------------------

    def evaluate(self, features: torch.Tensor, unit_actions: torch.Tensor) -> MinibatchEvaluation:
        """Run whole trials ``(B, T, input)`` from the zero state.

        Returns the log-probabilities of ``unit_actions`` ``(B, T, action_dim)``, the
        policy's entropies and the standardized values (before ``value_scale`` and
        ``value_loc``), each ``(B, T)``.
        """
        h, _ = self.core(features)
        mean, log_std = self.policy_head(h)
        values = self.value_head(h).squeeze(-1)
        return MinibatchEvaluation(
            gaussian_log_prob(mean, log_std, unit_actions), gaussian_entropy(log_std), values
        )

    def set_value_normalization(self, loc: float, scale: float) -> None:
        """Set the mean and standard deviation of returns that the value head's output
        is scaled back by: ``value = head * scale + loc``."""
        self.value_loc.fill_(loc)
        self.value_scale.fill_(scale)


class RL2Step(nn.Module):
    """RL2's deterministic control step, for export: ``(observation, prev_action,
    prev_reward, episode_start, state) -> (action, state_out)``, the mean action, with
    actions in the action space's units (``metarl.agents.control_step``). The input is
    built as ``RL2Policy.input_features`` builds it."""

    action_center: torch.Tensor
    action_half: torch.Tensor

    def __init__(self, policy: RL2Policy):
        super().__init__()
        self.core = copy.deepcopy(policy.core)
        self.head = copy.deepcopy(policy.policy_head)
        scaling = policy.scaling
        self.register_buffer("action_center", torch.from_numpy(scaling.center))
        self.register_buffer("action_half", torch.from_numpy(scaling.half_range))
        self.bounded = scaling.bounded
        self.reward_gain = 0.0 if policy.ablate_prev_reward else 1.0

    def forward(
        self,
        observation: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        episode_start: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The action ``(batch, action_dim)`` and the new state ``(batch, hidden_size)``;
        ``prev_reward`` and ``episode_start`` are ``(batch, 1)``."""
        unit = (prev_action - self.action_center) / self.action_half
        if self.bounded:
            unit = torch.clamp(unit, -1.0, 1.0)
        x = torch.cat([observation, unit, prev_reward * self.reward_gain, episode_start], -1)
        h = self.core.step(x, state)
        mean, _ = self.head(h)
        return self.action_center + self.action_half * mean, h


class _Trials(NamedTuple):
    """A batch's trials, each its K episodes concatenated, padded to the longest.

    Arrays are ``(B, T, ...)``; ``mask`` is False on padding.
    """

    features: np.ndarray
    unit_actions: np.ndarray
    rewards: np.ndarray
    old_log_probs: np.ndarray
    old_values: np.ndarray
    mask: np.ndarray


def trial_gae(
    rewards: np.ndarray, values: np.ndarray, mask: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """GAE over whole trials: arrays ``(B, T)``, one row per trial, ``mask`` False on padding.

    Each row is one sequence through all the trial's episodes: advantages and
    returns flow across the episode boundaries inside it (after a truncation or a
    termination alike), and the trial's last step is terminal (bootstrap 0).
    Nothing flows between rows. Returns ``(advantages, returns)``, ``(B, T)``
    float64, zero on padding.
    """
    mask = np.asarray(mask, dtype=bool)
    done = ~mask
    done[np.arange(len(mask)), mask.sum(1) - 1] = True
    values = np.where(mask, values, 0.0)
    rewards = np.where(mask, rewards, 0.0)
    advantages, returns = compute_gae(rewards.T, values.T, 0.0, done.T, gamma, lam)
    return advantages.T * mask, returns.T * mask


class RL2Agent(BatchAgent):
    """RL2 with PPO over whole trials.

    Args:
        observation_space: a ``Box`` (flattened into the network input).
        action_space: a ``Box``, bounded on every axis or on none.
        config: hyperparameters (defaults and their sources in ``RL2Config``).

    ``episodes_per_trial`` and ``tasks_per_iteration`` come from the config. Meta-test
    adaptation is the base class's: one trial of the requested episodes per task.
    """

    metric_descriptions: ClassVar[Mapping[str, str]] = {
        **BatchAgent.metric_descriptions,
        **PPO_UPDATE_METRICS,
    }

    def __init__(
        self,
        observation_space: spaces.Space[np.ndarray],
        action_space: spaces.Space[np.ndarray],
        config: RL2Config | None = None,
    ):
        self.config = config if config is not None else RL2Config()
        self.episodes_per_trial = self.config.episodes_per_trial
        self.tasks_per_iteration = self.config.meta_batch_size
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.network = RL2Policy(
            observation_space,
            action_space,
            hidden_size=self.config.hidden_size,
            init_std=self.config.init_std,
            generator=self.generator,
            ablate_prev_reward=self.config.ablate_prev_reward,
        )
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=self.config.learning_rate)
        self.return_stats = RunningMeanStd(shape=())
        self.iterations = 0

    def policy(self) -> RL2Policy:
        """A copy of the current networks, detached from training (safe to ship)."""
        snapshot = copy.deepcopy(self.network)
        snapshot.requires_grad_(False)
        return snapshot.eval()

    def control_step(self) -> ControlStep:
        """The GRU step with the mean action, for export (``metarl.agents.control_step``):
        the state goes in and out, so an exported agent adapts within a trial."""
        policy = self.policy()
        return ControlStep(
            RL2Step(policy),
            inputs=("observation", "prev_action", "prev_reward", "episode_start", "state"),
            outputs=("action", "state_out"),
            obs_dim=policy.obs_dim,
            action_dim=policy.action_dim,
            state_dim=policy.hidden_size,
            scaling=policy.scaling,
            policy=policy,
            observation_mean=np.zeros(policy.obs_dim),
            observation_std=np.ones(policy.obs_dim),
        )

    # -- update -----------------------------------------------------------------------

    def _trials(self, batch: EpisodeBatch) -> _Trials:
        trials = batch.trials()
        lengths = [sum(len(ep) for ep in trial) for trial in trials]
        b, t = len(trials), max(lengths)
        obs_dim, act_dim = self.network.obs_dim, self.network.action_dim
        obs = np.zeros((b, t, obs_dim), dtype=np.float32)
        actions = np.zeros((b, t, act_dim), dtype=np.float32)
        rewards = np.zeros((b, t), dtype=np.float64)
        starts = np.zeros((b, t), dtype=bool)
        log_probs = np.zeros((b, t), dtype=np.float32)
        values = np.zeros((b, t), dtype=np.float32)
        mask = np.zeros((b, t), dtype=bool)
        for i, trial in enumerate(trials):
            pos = 0
            for ep in trial:
                for key in ("log_prob", "value"):
                    if key not in ep.agent_infos:
                        raise ValueError(
                            f"RL2Agent.update: episode {ep.index_in_trial} of trial {ep.trial} "
                            f"has no agent_infos[{key!r}]; collect with RL2Agent.policy()"
                        )
                end = pos + len(ep)
                obs[i, pos:end] = ep.observations.reshape(len(ep), obs_dim)
                actions[i, pos:end] = ep.actions.reshape(len(ep), act_dim)
                rewards[i, pos:end] = ep.rewards
                starts[i, pos] = True
                log_probs[i, pos:end] = ep.agent_infos["log_prob"]
                values[i, pos:end] = ep.agent_infos["value"]
                mask[i, pos:end] = True
                pos = end
        # What the policy saw as "previous": the step before in the same trial (across
        # episode boundaries), zeros at the trial's first step, as the samplers feed it.
        prev_actions = np.zeros_like(actions)
        prev_actions[:, 1:] = actions[:, :-1]
        prev_rewards = np.zeros((b, t), dtype=np.float32)
        prev_rewards[:, 1:] = rewards[:, :-1].astype(np.float32)
        features = self.network.input_features(obs, prev_actions, prev_rewards, starts)
        unit_actions = self.network.scaling.to_unit(actions)
        return _Trials(features, unit_actions, rewards, log_probs, values, mask)

    def trial_targets(self, batch: EpisodeBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The advantages and returns the update would use, before normalization.

        Returns ``(advantages, returns, mask)``, arrays ``(len(batch.tasks), T)`` with
        row ``i`` the concatenated episodes of trial ``i`` (``T`` the longest trial)
        and ``mask`` False on padding.
        """
        data = self._trials(batch)
        advantages, returns = trial_gae(
            data.rewards, data.old_values, data.mask, self.config.gamma, self.config.gae_lambda
        )
        return advantages, returns, data.mask

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """PPO epochs over minibatches of whole trials; returns the update's metrics.

        Metrics: ``PPO_UPDATE_METRICS``; the trainer adds the batch's returns
        (``return_metrics``: ``return_mean`` and ``return_k{k}``).

        Raises:
            ValueError: the batch's episodes lack the ``log_prob`` / ``value`` infos.
        """
        # One intra-op thread: on these small GRUs two OpenMP threads were measured 60 to
        # 200 times slower on 2 cores shared with other processes (forward + backward of a
        # 64-unit GRU over 5 trials x 40 steps: 20 ms on one thread, 1.2-3.3 s on two),
        # and the update's bits then do not depend on the process's thread count.
        with torch_threads(1):
            return self._update(batch)

    def _update(self, batch: EpisodeBatch) -> dict[str, float]:
        cfg = self.config
        data = self._trials(batch)
        advantages, returns = trial_gae(
            data.rewards, data.old_values, data.mask, cfg.gamma, cfg.gae_lambda
        )
        features = torch.from_numpy(data.features)
        unit_actions = torch.from_numpy(data.unit_actions)
        targets = returns
        if cfg.normalize_values:
            targets, loc, scale = standardize_returns(self.return_stats, returns, data.mask)
            self.network.set_value_normalization(loc, scale)
        num_trials = len(features)
        metrics = ppo_update(
            lambda idx: self.network.evaluate(features[idx], unit_actions[idx]),
            ppo_batch(
                torch.from_numpy(data.old_log_probs),
                advantages,
                targets,
                cfg.normalize_advantages,
                data.mask,
            ),
            cfg,
            self.optimizer,
            self.generator,
            lambda order: order.tensor_split(min(cfg.num_minibatches, num_trials)),
        )
        self.iterations += 1
        valid = data.mask
        metrics["explained_variance"] = explained_variance(data.old_values[valid], returns[valid])
        metrics["action_std"] = self.network.policy_head.action_std()
        return metrics

    # -- checkpoints ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizer, generator state and iteration count (copies)."""
        return copy.deepcopy(
            {
                "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "iterations": self.iterations,
                "return_stats": running_stats_state(self.return_stats),
                "config": dataclasses.asdict(self.config),
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (the config must have the same shapes).

        Raises:
            KeyError: an entry is missing.
            RuntimeError: the networks' shapes differ (torch's message names the tensor).
        """
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.iterations = int(state["iterations"])
        load_running_stats(self.return_stats, state["return_stats"])
