"""Baselines every meta-RL result is compared with: random, multi-task and oracle policies.

The benchmark protocol (docs/benchmarks.md#baselines) puts three rows next to every
meta-RL agent, on the same
budget and the same held-out tasks:

- ``RandomAgent``: uniform random actions;
- the multi-task (domain-randomization) policy, ``train_multitask``: one
  Stable-Baselines3 policy trained on ``MultiTaskEnv`` (a new training task at
  every reset, no task information in the observation);
- the oracle, ``train_oracle``: the same, on ``TaskInObservation(MultiTaskEnv)``
  (the true task's features appended to the observation).

``SB3Baseline`` wraps a trained SB3 model (PPO or SAC) as an ``Agent``, so that
``metarl.evaluation.evaluate_adaptation`` measures it like any meta-RL agent.
It does not adapt: every episode of a trial runs the same policy. SB3 trains
it (``model.learn``), not the meta-training loop: it is an ``Agent`` of neither
learner kind (``metarl.agents.base``), which the trainer refuses.

Evaluating the oracle: its policy reads the task features from the
observation, so its envs must be wrapped the way it was trained. Every
baseline says how in ``env_wrappers``; give them to the sampler::

    sampler = LocalSampler(env_id, num_envs=8, seed=0, wrappers=oracle.env_wrappers)
    evaluate_adaptation(oracle, sampler, test_tasks, K=2)

(``env_wrappers`` is empty for the multi-task policy and the random agent.)

Randomness: the policies draw their action noise from the sampler's per-trial
generators (``rngs[i]``), so evaluation is reproducible. Training uses SB3's
``seed=``: SB3 then calls ``set_random_seed``, which seeds Python's ``random``,
numpy's global generator and torch's global generator. That is SB3's doing, not
this module's (which seeds nothing globally); a caller that needs its global
streams untouched should save and restore them around ``train_*``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.sac.policies import SACPolicy

from metarl.agents.base import Agent
from metarl.agents.policy import PolicyInput, PolicyOutput
from metarl.checks import check_int
from metarl.envs.base import EnvWrapper
from metarl.envs.wrappers import MultiTaskEnv, TaskInObservation
from metarl.tasks import Task, TaskDistribution

__all__ = [
    "ALGORITHMS",
    "SHORT_HORIZON_PPO",
    "RandomAgent",
    "SB3Baseline",
    "SB3Policy",
    "UniformPolicy",
    "train_multitask",
    "train_oracle",
]

# The SB3 algorithms a baseline may be trained with, by the name used in configs.
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}

# PPO settings for short-horizon tasks (the point robots, 20 steps, actions in [-0.1, 0.1]),
# with n_envs=8. SB3's defaults (n_steps=2048 per env, initial std 1) spend a 30k-step budget
# on two updates and saturate the actions; these update every 1024 steps and start with an
# std of exp(-2) = 0.14. Measured on metarl/PointRobot-v0 (80 train / 20 test tasks, seeds
# 0-2): after 20k steps the oracle returns about -7.5 per episode, the multi-task policy
# about -15 and random actions about -19.6; after 30k, -6.0 and -14.5.
SHORT_HORIZON_PPO: dict[str, Any] = {
    "n_steps": 128,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "policy_kwargs": {"log_std_init": -2.0},
}


# --------------------------------------------------------------------------- random


class UniformPolicy:
    """Uniform random actions in a bounded ``Box``; row ``i`` draws from ``rngs[i]``."""

    def __init__(self, action_space: spaces.Box):
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        self.dtype = action_space.dtype

    def initial_state(self, n: int) -> None:
        return None

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        actions = np.stack([rng.uniform(self.low, self.high) for rng in rngs])
        return PolicyOutput(actions.astype(self.dtype), None, {})


class RandomAgent(Agent):
    """The "random policy" row: uniform actions over a bounded ``Box`` action space.

    Raises:
        ValueError: ``action_space`` is not a ``Box`` with finite bounds.
    """

    def __init__(self, action_space: spaces.Space[Any]):
        if not isinstance(action_space, spaces.Box) or not action_space.is_bounded("both"):
            raise ValueError(
                f"RandomAgent needs a bounded gymnasium.spaces.Box action space, got {action_space}"
            )
        self.action_space = action_space

    @classmethod
    def for_env(cls, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> RandomAgent:
        """A random agent for the action space of the registered environment ``env_id``."""
        env = gym.make(env_id, **(env_kwargs or {}))
        try:
            return cls(env.action_space)
        finally:
            env.close()

    def policy(self) -> UniformPolicy:
        return UniformPolicy(self.action_space)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"RandomAgent has no state; got keys {sorted(state)}")


# --------------------------------------------------------------------------- SB3 policies


class SB3Policy:
    """A ``Policy`` over a Stable-Baselines3 policy network, batched over ``n`` envs.

    One forward pass of ``policy`` on the ``n`` observations gives the Gaussian's
    mean and standard deviation; row ``i`` draws its standard-normal noise from
    ``rngs[i]`` with numpy (so the sampler's per-trial generators make it
    reproducible), or takes the mean with ``deterministic=True``. Then, as SB3
    does when it acts:

    - PPO (``ActorCriticPolicy``, diagonal Gaussian): the action is clipped to
      the action space's bounds (what SB3 sends to the env in ``collect_rollouts``
      and returns from ``predict``);
    - SAC (``SACPolicy``, squashed Gaussian): ``tanh`` of the sample, rescaled
      from ``[-1, 1]`` to the action space's bounds.

    ``infos`` holds ``mean``, the pre-noise action (before clip or squash).

    Raises:
        ValueError: a policy this adapter does not cover (gSDE, a non-Gaussian
            distribution, a non-``Box`` action space).
    """

    def __init__(
        self,
        policy: BasePolicy,
        *,
        deterministic: bool = False,
        hint: str = "",
    ):
        action_space = policy.action_space
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"SB3Policy supports Box action spaces only, got {action_space}")
        if isinstance(policy, SACPolicy):
            if policy.actor.use_sde:
                raise ValueError("SB3Policy does not support SAC with use_sde=True")
            self.squash = True
        elif isinstance(policy, ActorCriticPolicy):
            if policy.use_sde:
                raise ValueError("SB3Policy does not support PPO with use_sde=True")
            self.squash = False
        else:
            raise ValueError(
                f"SB3Policy supports PPO's ActorCriticPolicy and SAC's SACPolicy, "
                f"got {type(policy).__name__}"
            )
        self.policy = policy
        self.action_space = action_space
        obs_space = policy.observation_space
        assert isinstance(obs_space, spaces.Box)
        self.obs_shape = tuple(obs_space.shape)
        self.deterministic = bool(deterministic)
        self.hint = hint

    def initial_state(self, n: int) -> None:
        return None

    def _mean_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.squash:
            assert isinstance(self.policy, SACPolicy)
            mean, log_std, _ = self.policy.actor.get_action_dist_params(obs)
            return mean, log_std.exp()
        assert isinstance(self.policy, ActorCriticPolicy)
        dist = self.policy.get_distribution(obs)
        if not isinstance(dist, DiagGaussianDistribution):
            raise ValueError(
                f"SB3Policy needs a diagonal Gaussian policy, got {type(dist).__name__}"
            )
        return dist.distribution.mean, dist.distribution.stddev

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        obs = np.asarray(inputs.observations, dtype=np.float32)
        if obs.shape[1:] != self.obs_shape:
            raise ValueError(
                f"the policy expects observations of shape {self.obs_shape}, got {obs.shape[1:]}"
                + (f"; {self.hint}" if self.hint else "")
            )
        with torch.no_grad():
            mean_t, std_t = self._mean_std(torch.as_tensor(obs, device=self.policy.device))
        mean = mean_t.cpu().numpy().astype(np.float64)
        if self.deterministic:
            raw = mean
        else:
            std = std_t.cpu().numpy().astype(np.float64)
            noise = np.stack([rng.standard_normal(mean.shape[1:]) for rng in rngs])
            raw = mean + std * noise
        low, high = self.action_space.low, self.action_space.high
        if self.squash:
            actions = low + 0.5 * (np.tanh(raw) + 1.0) * (high - low)
        else:
            actions = np.clip(raw, low, high)
        return PolicyOutput(
            actions.astype(self.action_space.dtype), None, {"mean": mean.astype(np.float32)}
        )


# --------------------------------------------------------------------------- agents


class SB3Baseline(Agent):
    """A trained Stable-Baselines3 model as an ``Agent`` that does not adapt.

    Args:
        model: a PPO or SAC model (trained, e.g., by ``train_multitask``).
        observe_task: whether the model observes the task (the oracle): its envs
            must then be wrapped with ``TaskInObservation`` (``env_wrappers``).
        deterministic: act with the policy's mean instead of sampling.

    Raises:
        ValueError: a model of another algorithm than those in ``ALGORITHMS``.
    """

    def __init__(
        self, model: BaseAlgorithm, *, observe_task: bool = False, deterministic: bool = False
    ):
        self.algo = _algo_name(model)
        self.model = model
        self.observe_task = bool(observe_task)
        self.deterministic = bool(deterministic)

    @property
    def env_wrappers(self) -> tuple[EnvWrapper, ...]:
        """The wrappers the evaluation envs need, innermost first (``TaskInObservation``
        for the oracle, none otherwise): pass them as a sampler's ``wrappers``."""
        return (TaskInObservation,) if self.observe_task else ()

    def policy(self) -> SB3Policy:
        hint = (
            "the oracle observes the task: evaluate it on envs wrapped with TaskInObservation, "
            "e.g. LocalSampler(env_id, wrappers=agent.env_wrappers)"
            if self.observe_task
            else ""
        )
        return SB3Policy(self.model.policy, deterministic=self.deterministic, hint=hint)

    def state_dict(self) -> dict[str, Any]:
        """``{"algo", "model" (SB3's zip archive as bytes), "observe_task", "deterministic"}``."""
        buffer = io.BytesIO()
        self.model.save(buffer)
        return {
            "algo": self.algo,
            "model": buffer.getvalue(),
            "observe_task": self.observe_task,
            "deterministic": self.deterministic,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``'s output (the model is loaded on the CPU).

        Raises:
            ValueError: missing keys or an unknown ``algo``.
        """
        model, observe_task, deterministic = _load_state(state)
        self.model, self.algo = model, _algo_name(model)
        self.observe_task, self.deterministic = observe_task, deterministic

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SB3Baseline:
        """A baseline rebuilt from ``state_dict``'s output (on the CPU)."""
        model, observe_task, deterministic = _load_state(state)
        return cls(model, observe_task=observe_task, deterministic=deterministic)


def _algo_name(model: BaseAlgorithm) -> str:
    for name, cls in ALGORITHMS.items():
        if type(model) is cls:
            return name
    raise ValueError(
        f"SB3Baseline supports the algorithms {sorted(ALGORITHMS)} "
        f"({', '.join(c.__name__ for c in ALGORITHMS.values())}), got {type(model).__name__}"
    )


def _load_state(state: Mapping[str, Any]) -> tuple[BaseAlgorithm, bool, bool]:
    missing = sorted({"algo", "model", "observe_task", "deterministic"} - set(state))
    if missing:
        raise ValueError(f"SB3Baseline state is missing {missing}")
    cls = _algorithm(state["algo"])
    model = cls.load(io.BytesIO(state["model"]), device="cpu")
    return model, bool(state["observe_task"]), bool(state["deterministic"])


def _algorithm(algo: str) -> type[BaseAlgorithm]:
    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {sorted(ALGORITHMS)}, got {algo!r}")
    return ALGORITHMS[algo]


# --------------------------------------------------------------------------- training


def train_multitask(
    env_id: str,
    train_tasks: Sequence[Task] | TaskDistribution,
    total_steps: int,
    seed: int,
    *,
    algo: str = "ppo",
    algo_kwargs: Mapping[str, Any] | None = None,
    n_envs: int = 8,
    env_kwargs: Mapping[str, Any] | None = None,
    wrappers: Sequence[EnvWrapper] = (),
    device: str = "cpu",
    deterministic: bool = False,
    torch_threads: int | None = 1,
) -> SB3Baseline:
    """Train the multi-task (domain-randomization) baseline: no task information.

    Each of ``n_envs`` envs is ``MultiTaskEnv(gymnasium.make(env_id), train_tasks)``
    (a training task drawn at every reset), in SB3's ``DummyVecEnv``, env ``i``
    seeded with ``seed + i``; the model is ``ALGORITHMS[algo]("MlpPolicy", ...,
    seed=seed, **algo_kwargs)`` (SB3's defaults where ``algo_kwargs`` says
    nothing), trained for ``total_steps`` env steps.

    Args:
        env_id: a registered task environment.
        train_tasks: the training tasks, or a distribution to draw fresh ones from.
        total_steps: env steps of training (all envs together).
        seed: SB3's seed (see the module docstring on global seeding).
        algo: ``"ppo"`` or ``"sac"``.
        algo_kwargs: keyword arguments of the SB3 algorithm's constructor.
        n_envs: envs stepped together.
        env_kwargs: keyword arguments of ``gymnasium.make``.
        wrappers: applied to each env before ``MultiTaskEnv``, innermost first (e.g.
            unmodeled effects, ``metarl.envs.effects.effect_wrappers``).
        device: torch device of the model (small MLPs are fastest on the CPU).
        deterministic: the returned agent acts with the policy's mean.
        torch_threads: torch's intra-op threads during training, restored afterwards
            (``None``: leave torch's setting). One by default: for SB3's small MLPs
            more threads only contend (benchmarks/RESULTS.md, "Figures quoted from
            development").

    Raises:
        ValueError: unknown ``algo``, non-positive ``total_steps`` or ``n_envs``,
            or bad ``train_tasks`` (from ``MultiTaskEnv``).
    """
    return _train(
        env_id,
        train_tasks,
        total_steps,
        seed,
        observe_task=False,
        algo=algo,
        algo_kwargs=algo_kwargs,
        n_envs=n_envs,
        env_kwargs=env_kwargs,
        wrappers=wrappers,
        device=device,
        deterministic=deterministic,
        torch_threads=torch_threads,
    )


def train_oracle(
    env_id: str,
    train_tasks: Sequence[Task] | TaskDistribution,
    total_steps: int,
    seed: int,
    *,
    algo: str = "ppo",
    algo_kwargs: Mapping[str, Any] | None = None,
    n_envs: int = 8,
    env_kwargs: Mapping[str, Any] | None = None,
    wrappers: Sequence[EnvWrapper] = (),
    device: str = "cpu",
    deterministic: bool = False,
    torch_threads: int | None = 1,
) -> SB3Baseline:
    """Train the oracle: as ``train_multitask``, on ``TaskInObservation(MultiTaskEnv(...))``.

    The returned agent has ``observe_task=True``: evaluate it on envs wrapped
    with its ``env_wrappers``. Arguments and errors as ``train_multitask``.
    """
    return _train(
        env_id,
        train_tasks,
        total_steps,
        seed,
        observe_task=True,
        algo=algo,
        algo_kwargs=algo_kwargs,
        n_envs=n_envs,
        env_kwargs=env_kwargs,
        wrappers=wrappers,
        device=device,
        deterministic=deterministic,
        torch_threads=torch_threads,
    )


def _train(
    env_id: str,
    train_tasks: Sequence[Task] | TaskDistribution,
    total_steps: int,
    seed: int,
    *,
    observe_task: bool,
    algo: str,
    algo_kwargs: Mapping[str, Any] | None,
    n_envs: int,
    env_kwargs: Mapping[str, Any] | None,
    wrappers: Sequence[EnvWrapper],
    device: str,
    deterministic: bool,
    torch_threads: int | None,
) -> SB3Baseline:
    cls = _algorithm(algo)
    total_steps = check_int("total_steps", total_steps, ge=1)
    n_envs = check_int("n_envs", n_envs, ge=1)
    make_kwargs = dict(env_kwargs or {})

    def make_env() -> gym.Env[Any, Any]:
        env: gym.Env[Any, Any] = gym.make(env_id, **make_kwargs)
        for wrap in wrappers:
            env = wrap(env)
        env = MultiTaskEnv(env, train_tasks)
        return TaskInObservation(env) if observe_task else env

    vec_env = make_vec_env(make_env, n_envs=n_envs, seed=seed)
    with _torch_threads(torch_threads):
        model = cls("MlpPolicy", vec_env, seed=seed, device=device, **dict(algo_kwargs or {}))
        # SB3's default logger makes an empty folder in the system temp dir per call
        # (hundreds over a test run); a logger with no outputs writes nothing.
        model.set_logger(Logger(folder=None, output_formats=[]))
        model.learn(total_timesteps=total_steps)
    return SB3Baseline(model, observe_task=observe_task, deterministic=deterministic)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (``None``: unchanged), then restore the setting."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(check_int("torch_threads", n, ge=1))
    try:
        yield
    finally:
        torch.set_num_threads(before)
