"""PEARL (Rakelly et al. 2019, "Efficient Off-Policy Meta-Reinforcement Learning via
Probabilistic Context Variables"): a SAC agent conditioned on a latent task
variable z inferred from a context of transitions.

- Context encoder: an MLP maps each context transition (s, a, r[, s']) to the mean
  and variance of a Gaussian factor over z; the posterior is their product
  (``product_of_gaussians``), regularized by ``kl_lambda * KL(q(z|c) || N(0, I))``
  summed over the meta-batch's tasks. The encoder and the policy the samplers run
  are in ``metarl.agents.pearl_networks``.
- SAC with twin Q-functions, a state-value function V and its Polyak-averaged
  target (the structure of the paper's code): the Q loss trains the encoder
  through z; the V and policy losses see z detached, so that the actor does not
  shape the task inference.
- Per-task replay buffers for the RL losses and separate encoder buffers holding
  each task's most recent prior data, from which contexts are sampled.
- Collection per iteration on ``tasks_per_iteration`` tasks (the paper's
  ``num_tasks_sample`` and ``collect_data`` phases): the encoder buffer of the task is
  emptied, ``num_steps_prior`` steps with z from the prior go to both buffers,
  ``num_steps_posterior`` steps go to both and ``num_extra_rl_steps_posterior`` steps
  to the RL buffer only; each of these two phases starts with z from the prior and
  draws z from the posterior of a context sampled from the encoder buffer after every
  episode (on a sparse task, a goal found once is exploited in the phase's next
  episodes). Before the first iteration (``prepare``, which the trainer calls) every
  training task gets ``num_initial_steps`` steps with z from the prior.
- Meta-test (``adapt``): the first ``num_exp_traj_eval`` episodes with z from the
  prior, then after each episode z from the posterior of all context gathered on
  the task so far.

Steps are collected as whole episodes through the sampler, ``ceil(steps / horizon)``
episodes per task, one trial per episode (z is drawn per episode, as the paper's
``resample_z_rate = 1``). Defaults are the paper's configs (``oyster/configs/default.py``).

Two choices differ from the paper's code, both shared with the platform's other agents
(``metarl.agents.networks``, ``metarl.agents.sac``): weights are initialized
orthogonally (gain sqrt(2) in hidden layers, 1 at the output) where rlkit draws hidden
weights uniformly within 1/sqrt(fan-in) with biases of 0.1 and output weights within
3e-3; and the tanh log-density correction is the exact
``2 (log 2 - u - softplus(-2u))`` where rlkit uses ``log(1 - tanh(u)^2 + 1e-6)``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from gymnasium import spaces
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from metarl.agents.base import CollectFn, TrainStep, TrainStepAgent, return_metrics
from metarl.agents.networks import ActionScaling, HiddenSizes, mlp, to_numpy, torch_threads
from metarl.agents.pearl_networks import ContextEncoder, PEARLPolicy
from metarl.agents.replay import TaskReplayBuffers, Transitions
from metarl.agents.sac import TanhGaussianPolicy, soft_update
from metarl.checks import (
    CrossFieldError,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
    settings,
)
from metarl.episodes import Episode, EpisodeBatch
from metarl.tasks import Task

__all__ = ["TASK_VARIABLES", "PEARLAgent", "PEARLConfig"]

TaskVariable = Literal["inferred", "none", "oracle"]
"""Values of ``PEARLConfig.task_variable``."""
TASK_VARIABLES: tuple[str, ...] = typing.get_args(TaskVariable)


@settings
class PEARLConfig:
    """Hyperparameters of PEARL. Defaults: the paper's ``configs/default.py`` (oyster)."""

    renamed_fields: ClassVar[Mapping[str, str]] = {"num_tasks_sample": "tasks_per_iteration"}

    seed: NonNegativeInt = 0
    """Seed of the agent's generators (initialization, minibatches, z draws)."""
    max_path_length: PositiveInt = 200
    """Episode length the step counts below are divided by (``ceil(steps / length)``
    episodes per collection). Paper: 200 (the point robots: 20)."""
    latent_size: PositiveInt = 5
    """Size of z. Paper: 5."""
    encoder_hidden_sizes: Annotated[HiddenSizes, Field(min_length=1)] = (200, 200, 200)
    """Context encoder's hidden layers. Paper: three of 200."""
    hidden_sizes: Annotated[HiddenSizes, Field(min_length=1)] = (300, 300, 300)
    """Policy, Q and V networks' hidden layers. Paper: three of 300."""
    use_next_obs_in_context: bool = False
    """Put s' into context transitions. Paper: False."""
    kl_lambda: NonNegativeFloat = 0.1
    """Weight of the KL of the posterior to the prior. Paper: 0.1."""
    reward_scale: PositiveFloat = 5.0
    """Scale of the reward in the Q target. Paper: 5 (the per-env configs change it)."""
    discount: UnitInterval = 0.99
    """Paper: 0.99."""
    soft_target_tau: UnitInterval = 0.005
    """Polyak rate of the target V. Paper: 0.005."""
    learning_rate: PositiveFloat = 3e-4
    """Adam step size of the policy, Q and V. Paper: 3e-4."""
    context_learning_rate: PositiveFloat = 3e-4
    """Adam step size of the encoder. Paper: 3e-4."""
    batch_size: PositiveInt = 256
    """RL transitions per task per gradient step. Paper: 256."""
    embedding_batch_size: PositiveInt = 64
    """Context transitions per task per gradient step. Paper: 64 (default), 100 or 256
    in the per-family configs."""
    meta_batch_size: PositiveInt = 16
    """Tasks per gradient step (its meta-batch), drawn with replacement from the tasks
    whose replay buffers hold data. Paper: 16."""
    num_initial_steps: NonNegativeInt = 2000
    """Prior-z steps on every training task before training. Paper: 2000."""
    tasks_per_iteration: PositiveInt = 5
    """Tasks collected on per iteration (the paper's ``num_tasks_sample``). Paper: 5."""
    num_steps_prior: NonNegativeInt = 400
    """Steps with z from the prior per sampled task. Paper: 400."""
    num_steps_posterior: NonNegativeInt = 0
    """Steps with z from the posterior, into both buffers. Paper: 0."""
    num_extra_rl_steps_posterior: NonNegativeInt = 400
    """Steps with z from the posterior, into the RL buffer only. Paper: 400."""
    num_train_steps_per_itr: PositiveInt = 2000
    """Gradient steps per iteration. Paper: 2000."""
    policy_mean_reg: NonNegativeFloat = 1e-3
    """Weight of the squared pre-tanh mean in the policy loss. Paper: 1e-3."""
    policy_std_reg: NonNegativeFloat = 1e-3
    """Weight of the squared log-std in the policy loss. Paper: 1e-3."""
    replay_buffer_size: PositiveInt = 1_000_000
    """Transitions kept per task. Paper: 1e6."""
    critic_reward: Annotated[str, Field(min_length=1)] | None = None
    """``env_infos`` key the critic trains on instead of the env reward (the sparse
    point robot: ``dense_reward``; the encoder still sees the sparse reward)."""
    num_exp_traj_eval: PositiveInt = 1
    """Meta-test: episodes with z from the prior before the posterior is used. Paper:
    1 (default), 2 in the locomotion configs, 5 for the sparse point robot."""
    eval_deterministic: bool = True
    """Meta-test with the policy's mean action (exploration comes from z). Paper: True."""
    ablate_context: bool = False
    """Ablation: the encoder sees zeros (a broken encoder); for the learning test."""
    task_variable: TaskVariable = "inferred"
    """What the actor and critics are conditioned on: ``"inferred"`` (PEARL: z from the
    encoder), ``"none"`` (z = 0 everywhere, the encoder unused: multi-task SAC with the
    same networks, data collection and budget, the baseline without task information)
    or ``"oracle"`` (z = the true task's ``Task.features()``, which must have
    ``latent_size`` entries: SAC that is told the task)."""

    @model_validator(mode="after")
    def _refills_the_encoder_buffer(self) -> PEARLConfig:
        if self.num_steps_prior + self.num_steps_posterior < 1:
            raise CrossFieldError(
                ("num_steps_prior", "num_steps_posterior"),
                "num_steps_prior + num_steps_posterior must be positive (the encoder buffer "
                f"is refilled from them), got {self.num_steps_prior} + {self.num_steps_posterior}",
            )
        return self


class PEARLAgent(TrainStepAgent):
    """PEARL: SAC conditioned on a latent task variable inferred from context.

    Args:
        observation_space: a ``Box``.
        action_space: a bounded ``Box`` (the actor's tanh output is mapped onto it).
        config: hyperparameters (defaults and sources in ``PEARLConfig``).
    """

    metric_descriptions: ClassVar[Mapping[str, str]] = {
        "return_mean": "mean undiscounted return of the episodes collected this iteration "
        "(prior, posterior and extra-RL phases together)",
        "qf_loss": "squared TD error of the two Q functions (mean over the gradient steps)",
        "vf_loss": "squared error of the V function against min Q - log pi",
        "policy_loss": "the actor's loss, log pi - min Q plus the mean and std regularizers",
        "posterior_kl": "KL of the context posterior q(z | c) from the prior N(0, I), per task",
        "z_mean_abs": "mean absolute value of the posterior means of z",
        "z_var": "mean posterior variance of z",
    }
    renamed_metrics: ClassVar[Mapping[str, str]] = {"kl": "posterior_kl"}

    def __init__(
        self,
        observation_space: spaces.Space[np.ndarray],
        action_space: spaces.Space[np.ndarray],
        config: PEARLConfig | None = None,
    ):
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(
                f"observation space must be a gymnasium.spaces.Box, got {observation_space!r}"
            )
        self.scaling = ActionScaling(action_space)
        if not self.scaling.bounded:
            raise ValueError(f"PEARL needs a bounded action space, got {action_space!r}")
        cfg = self.config = config if config is not None else PEARLConfig()
        self.obs_dim = int(np.prod(observation_space.shape))
        self.action_dim = self.scaling.dim
        self.action_shape = tuple(action_space.shape or ())
        self.tasks_per_iteration = cfg.tasks_per_iteration
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        latent, hidden = cfg.latent_size, cfg.hidden_sizes
        context_dim = (
            2 * self.obs_dim + self.action_dim + 1
            if cfg.use_next_obs_in_context
            else self.obs_dim + self.action_dim + 1
        )
        g = self.generator
        self.encoder = ContextEncoder(context_dim, latent, cfg.encoder_hidden_sizes, g)
        self.actor = TanhGaussianPolicy(self.obs_dim + latent, self.action_dim, hidden, g)
        self.qf1 = mlp(self.obs_dim + self.action_dim + latent, hidden, 1, g, activation=nn.ReLU)
        self.qf2 = mlp(self.obs_dim + self.action_dim + latent, hidden, 1, g, activation=nn.ReLU)
        self.vf = mlp(self.obs_dim + latent, hidden, 1, g, activation=nn.ReLU)
        self.target_vf = copy.deepcopy(self.vf).requires_grad_(False)
        lr = cfg.learning_rate
        self.optimizers = {
            "actor": torch.optim.Adam(self.actor.parameters(), lr=lr),
            "qf": torch.optim.Adam([*self.qf1.parameters(), *self.qf2.parameters()], lr=lr),
            "vf": torch.optim.Adam(self.vf.parameters(), lr=lr),
            "encoder": torch.optim.Adam(self.encoder.parameters(), lr=cfg.context_learning_rate),
        }
        extras = (cfg.critic_reward,) if cfg.critic_reward else ()
        self.replay = TaskReplayBuffers(
            self.obs_dim, self.action_dim, cfg.replay_buffer_size, extras
        )
        self.encoder_replay = TaskReplayBuffers(
            self.obs_dim, self.action_dim, cfg.replay_buffer_size, extras
        )
        self.iterations = 0

    # -- context and z ----------------------------------------------------------------

    def context_features(self, t: Transitions) -> np.ndarray:
        """Context vectors ``(n, context_dim)``: observation, unit-box action, the env
        reward (the sparse one on a sparse env) and, if configured, s'."""
        parts = [
            t.observations,
            np.clip(self.scaling.to_unit(t.actions), -1, 1),
            t.rewards.reshape(-1, 1),
        ]
        if self.config.use_next_obs_in_context:
            parts.append(t.next_observations)
        out = np.concatenate(parts, axis=1).astype(np.float32)
        return np.zeros_like(out) if self.config.ablate_context else out

    def episode_context(self, episodes: Sequence[Episode]) -> np.ndarray:
        """Context vectors of whole episodes (meta-test: all the task's data so far)."""
        rows = []
        for ep in episodes:
            n = len(ep)
            rows.append(
                self.context_features(
                    Transitions(
                        ep.observations.reshape(n, -1).astype(np.float32),
                        ep.actions.reshape(n, -1).astype(np.float32),
                        ep.rewards.astype(np.float32),
                        ep.next_observations.reshape(n, -1).astype(np.float32),
                        ep.terminations,
                        {},
                    )
                )
            )
        return np.concatenate(rows)

    def _sample_z(self, mean: torch.Tensor, var: torch.Tensor) -> np.ndarray:
        eps = torch.randn(mean.shape, generator=self.generator)
        return to_numpy(mean + var.sqrt() * eps)

    def prior_z(self, n: int) -> np.ndarray:
        """``n`` draws of z from the prior N(0, I)."""
        return self._sample_z(
            torch.zeros(n, self.config.latent_size), torch.ones(n, self.config.latent_size)
        )

    def posterior_z(self, contexts: Sequence[np.ndarray]) -> np.ndarray:
        """One draw of z per context ``(N_i, context_dim)`` from its posterior."""
        with torch.no_grad():
            draws = [self._sample_z(*self.encoder(torch.from_numpy(c))) for c in contexts]
        return np.stack(draws)

    def fixed_z(self, tasks: Sequence[Task]) -> np.ndarray | None:
        """z of each task where it is not inferred (``task_variable``): zeros
        (``"none"``) or the task's features (``"oracle"``); ``None`` for PEARL.

        Raises:
            ValueError: ``"oracle"`` with task features of another size than
                ``latent_size``.
        """
        mode, size = self.config.task_variable, self.config.latent_size
        if mode == "inferred":
            return None
        if mode == "none":
            return np.zeros((len(tasks), size), np.float32)
        feats = [np.asarray(t.features(), np.float32).reshape(-1) for t in tasks]
        for task, f in zip(tasks, feats, strict=True):
            if f.shape != (size,):
                raise ValueError(
                    f"PEARLConfig.latent_size must be the size of the task features with "
                    f"task_variable='oracle': {task!r} has {f.size}, latent_size is {size}"
                )
        return np.stack(feats) if feats else np.zeros((0, size), np.float32)

    def _policy(self, z: np.ndarray, assignment: np.ndarray, deterministic: bool) -> PEARLPolicy:
        actor = copy.deepcopy(self.actor).requires_grad_(False).eval()
        return PEARLPolicy(actor, z, assignment, self.scaling, self.action_shape, deterministic)

    def policy(self) -> PEARLPolicy:
        """The actor with z from the prior, one z per trial of up to 1024 trials."""
        return self._policy(self.prior_z(1024), np.arange(1024), deterministic=False)

    # -- collection ------------------------------------------------------------------

    def _episodes_for(self, steps: int) -> int:
        return math.ceil(steps / self.config.max_path_length)

    def _collect(
        self, collect: CollectFn, tasks: Sequence[Task], episodes: int, z_source: str
    ) -> EpisodeBatch:
        """``episodes`` episodes per task, each its own trial with its own z (from the
        prior, or from the posterior of the task's encoder buffer)."""
        per_trial = [t for t in tasks for _ in range(episodes)]
        fixed = self.fixed_z(per_trial)
        if fixed is not None:
            z = fixed
        elif z_source == "prior":
            z = self.prior_z(len(per_trial))
        else:
            contexts = []
            for task in per_trial:
                buf = self.encoder_replay[task]
                sample = buf.sample(self.rng, self.config.embedding_batch_size)
                contexts.append(self.context_features(sample))
            z = self.posterior_z(contexts)
        return collect(self._policy(z, np.arange(len(per_trial)), False), per_trial, 1)

    def _store(self, batch: EpisodeBatch, encoder_too: bool) -> None:
        for ep in batch.episodes:
            self.replay[ep.task].add_episode(ep)
            if encoder_too:
                self.encoder_replay[ep.task].add_episode(ep)

    def prepare(self, collect: CollectFn, train_tasks: Sequence[Task]) -> int:
        """Before the first iteration: ``num_initial_steps`` of prior-z data on every
        training task (the paper's initial collection). Returns the env steps."""
        if self.config.num_initial_steps == 0:
            return 0
        tasks = list(dict.fromkeys(train_tasks))
        episodes = self._episodes_for(self.config.num_initial_steps)
        batch = self._collect(collect, tasks, episodes, "prior")
        self._store(batch, encoder_too=True)
        return batch.num_steps

    def _collect_phase(
        self,
        collect: CollectFn,
        tasks: Sequence[Task],
        steps: int,
        z_source: str,
        encoder_too: bool,
    ) -> list[EpisodeBatch]:
        """One collection phase (the paper's ``collect_data``) on all ``tasks`` at once:
        ``ceil(steps / max_path_length)`` episodes per task, one z per episode, stored
        in the RL buffers and, if ``encoder_too``, the encoder buffers.

        ``"prior"``: every z from the prior. ``"posterior"``: as the paper, the phase
        starts from the prior (its ``clear_z``) and after each episode z is inferred
        again from a context sampled from the task's encoder buffer, which already
        holds the episodes before if they go there (``update_post_train = 1``): the
        episodes run in rounds, one per task per collect call.
        """
        episodes = self._episodes_for(steps)
        if z_source == "prior" or self.config.task_variable != "inferred":
            rounds = [(episodes, "prior")]
        else:
            rounds = [(1, "prior")] + [(1, "posterior")] * (episodes - 1)
        batches = []
        for count, source in rounds:
            batch = self._collect(collect, tasks, count, source)
            self._store(batch, encoder_too)
            batches.append(batch)
        return batches

    def train_step(self, collect: CollectFn, tasks: Sequence[Task]) -> TrainStep:
        """Collect on ``tasks`` (each task's encoder buffer emptied, then its prior,
        posterior and extra-RL phases) and take ``num_train_steps_per_itr`` gradient
        steps on tasks with data. The tasks' phases run side by side: the collection
        of one task does not depend on another's. A task drawn twice is collected on
        again after the first draw's phases, its encoder buffer emptied again (as the
        paper's loop over draws): its encoder buffer holds the last draw's data."""
        cfg = self.config
        waves: list[list[Task]] = []  # each task at most once per wave, in draw order
        for task in tasks:
            wave = next((w for w in waves if task not in w), None)
            if wave is None:
                waves.append(wave := [])
            wave.append(task)
        batches: list[EpisodeBatch] = []
        phases = (
            (cfg.num_steps_prior, "prior", True),
            (cfg.num_steps_posterior, "posterior", True),
            (cfg.num_extra_rl_steps_posterior, "posterior", False),
        )
        for wave in waves:
            for task in wave:
                self.encoder_replay[task].clear()
            for steps, source, encoder_too in phases:
                if steps:
                    batches += self._collect_phase(collect, wave, steps, source, encoder_too)
        losses = self.train(cfg.num_train_steps_per_itr)
        self.iterations += 1
        env_steps = sum(b.num_steps for b in batches)
        collected = EpisodeBatch.concatenate(batches) if batches else None
        metrics = return_metrics(collected) if collected else {"return_mean": float("nan")}
        return TrainStep(env_steps, {"return_mean": metrics["return_mean"], **losses})

    # -- gradient steps ----------------------------------------------------------------

    def _sample_batch(self, tasks: Sequence[Task]) -> tuple[torch.Tensor, ...]:
        cfg = self.config
        ctx, obs, act, rew, nxt, term = [], [], [], [], [], []
        for task in tasks:
            c = self.encoder_replay[task].sample(self.rng, cfg.embedding_batch_size)
            ctx.append(self.context_features(c))
            t = self.replay[task].sample(self.rng, cfg.batch_size)
            obs.append(t.observations)
            act.append(np.clip(self.scaling.to_unit(t.actions), -1 + 1e-6, 1 - 1e-6))
            rew.append(t.extras[cfg.critic_reward] if cfg.critic_reward else t.rewards)
            nxt.append(t.next_observations)
            term.append(t.terminations.astype(np.float32))
        return tuple(
            torch.from_numpy(np.stack(x).astype(np.float32))
            for x in (ctx, obs, act, rew, nxt, term)
        )

    def train(self, steps: int) -> dict[str, float]:
        """``steps`` gradient steps on meta-batches of tasks with data; mean losses.

        Runs on one intra-op thread, as RL2's update: with two processes on 2 cores
        (two runs, or a run beside Ray workers) torch's default of one OpenMP thread
        per core stalled both (seen while developing; not a benchmark figure), and one
        thread each keeps runs side by side independent.
        """
        with torch_threads(1):
            return self._train(steps)

    def _train(self, steps: int) -> dict[str, float]:
        tasks = [t for t in self.replay.buffers if t in self.replay and t in self.encoder_replay]
        if not tasks:
            raise ValueError("PEARL has no task with data to train on")
        sums: dict[str, float] = {}
        for _ in range(steps):
            # With replacement, as the paper (always meta_batch_size tasks, also when
            # fewer tasks have data, e.g. the two of HalfCheetahDir).
            idx = self.rng.choice(len(tasks), size=self.config.meta_batch_size)
            for k, v in self.gradient_step([tasks[i] for i in idx]).items():
                sums[k] = sums.get(k, 0.0) + v
        return {k: v / steps for k, v in sums.items()}

    def gradient_step(self, tasks: Sequence[Task]) -> dict[str, float]:
        """One step of the encoder, Q, V and the actor on a meta-batch (paper's order)."""
        cfg = self.config
        context, obs, act, rew, nxt, term = self._sample_batch(tasks)
        fixed = self.fixed_z(tasks)
        if fixed is None:
            mean, var = self.encoder(context)  # (T, L)
            z_task = mean + var.sqrt() * torch.randn(mean.shape, generator=self.generator)
            kl = 0.5 * (var + mean**2 - 1.0 - torch.log(var)).sum(-1).sum()
        else:  # baselines: no inference, no KL
            mean = z_task = torch.from_numpy(fixed)
            var, kl = torch.zeros_like(mean), torch.zeros(())
        b = obs.shape[1]
        z = z_task.unsqueeze(1).expand(-1, b, -1)  # (T, B, L)
        q1 = self.qf1(torch.cat([obs, act, z], -1)).squeeze(-1)
        q2 = self.qf2(torch.cat([obs, act, z], -1)).squeeze(-1)
        with torch.no_grad():
            target_v = self.target_vf(torch.cat([nxt, z], -1)).squeeze(-1)
            q_target = rew * cfg.reward_scale + (1.0 - term) * cfg.discount * target_v
        qf_loss = F.mse_loss(q1, q_target) + F.mse_loss(q2, q_target)
        self.optimizers["encoder"].zero_grad(set_to_none=True)
        self.optimizers["qf"].zero_grad(set_to_none=True)
        (cfg.kl_lambda * kl + qf_loss).backward()
        self.optimizers["qf"].step()
        self.optimizers["encoder"].step()
        # Cleared now: the V and actor losses below must leave the encoder without
        # gradients (z is detached for them); the tests check that it stays so.
        self.optimizers["encoder"].zero_grad(set_to_none=True)

        obs_zd = torch.cat([obs, z.detach()], -1)
        noise = torch.randn((*obs.shape[:2], self.action_dim), generator=self.generator)
        new_act, log_pi, pre_mean, log_std = self.actor.sample(obs_zd, noise)
        sa = torch.cat([obs, new_act, z.detach()], -1)
        min_q = torch.minimum(self.qf1(sa), self.qf2(sa)).squeeze(-1)
        v = self.vf(obs_zd).squeeze(-1)
        vf_loss = F.mse_loss(v, (min_q - log_pi).detach())
        self.optimizers["vf"].zero_grad(set_to_none=True)
        vf_loss.backward()
        self.optimizers["vf"].step()
        soft_update(self.target_vf, self.vf, cfg.soft_target_tau)

        policy_loss = (log_pi - min_q).mean()
        policy_loss = (
            policy_loss
            + cfg.policy_mean_reg * (pre_mean**2).mean()
            + cfg.policy_std_reg * (log_std**2).mean()
        )
        self.optimizers["actor"].zero_grad(set_to_none=True)
        policy_loss.backward()
        self.optimizers["actor"].step()
        return {
            "qf_loss": float(qf_loss.detach()),
            "vf_loss": float(vf_loss.detach()),
            "policy_loss": float(policy_loss.detach()),
            "posterior_kl": float(kl.detach()) / len(tasks),
            "z_mean_abs": float(mean.detach().abs().mean()),
            "z_var": float(var.detach().mean()),
        }

    # -- meta-test ----------------------------------------------------------------------

    def adapt(self, collect: CollectFn, tasks: Sequence[Task], episodes: int) -> EpisodeBatch:
        """Episodes 1..``num_exp_traj_eval`` with z drawn from the prior; episode k + 1
        after them with z drawn from the posterior of the task's episodes 1..k (the
        paper's ``collect_paths`` with ``accum_context``). One trial per task.

        The agent's generators are restored afterwards: evaluating leaves training
        unchanged (a run evaluated every iteration collects and trains as one that is
        not evaluated)."""
        state, rng_state = self.generator.get_state(), self.rng.bit_generator.state
        try:
            return self._adapt(collect, tasks, episodes)
        finally:
            self.generator.set_state(state)
            self.rng.bit_generator.state = rng_state

    def _adapt(self, collect: CollectFn, tasks: Sequence[Task], episodes: int) -> EpisodeBatch:
        stages: list[EpisodeBatch] = []
        n = len(tasks)
        fixed = self.fixed_z(tasks)
        for k in range(episodes):
            if fixed is not None:
                z = fixed
            elif k < self.config.num_exp_traj_eval:
                z = self.prior_z(n)
            else:
                z = self.posterior_z(
                    [self.episode_context([s.trials()[i][0] for s in stages]) for i in range(n)]
                )
            policy = self._policy(z, np.arange(n), self.config.eval_deterministic)
            stages.append(collect(policy, tasks, 1))
        return EpisodeBatch.chain(stages)

    # -- checkpoints ------------------------------------------------------------------

    def _modules(self) -> dict[str, nn.Module]:
        return {
            "encoder": self.encoder,
            "actor": self.actor,
            "qf1": self.qf1,
            "qf2": self.qf2,
            "vf": self.vf,
            "target_vf": self.target_vf,
        }

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, generator states, both replay buffers, tasks seen."""
        return copy.deepcopy(
            {
                "modules": {k: m.state_dict() for k, m in self._modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "generator": self.generator.get_state(),
                "rng": self.rng.bit_generator.state,
                "replay": self.replay.state_dict(),
                "encoder_replay": self.encoder_replay.state_dict(),
                "iterations": self.iterations,
                "config": dataclasses.asdict(self.config),
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (replay buffers included)."""
        for k, m in self._modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.replay.load_state_dict(state["replay"])
        self.encoder_replay.load_state_dict(state["encoder_replay"])
        self.iterations = int(state["iterations"])
