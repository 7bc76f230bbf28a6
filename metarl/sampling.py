"""Samplers: collect episodes of a policy on given tasks, ``collect(policy, tasks, K)``.

``Sampler`` is the contract every agent collects through; ``LocalSampler`` runs it
in this process over a Gymnasium vector env (one task per sub-environment), and
``metarl.ray_sampling.RaySampler`` spreads the same work over Ray actors. Both
run the same function, ``run_trials``, so they give the same batch for the same
seed, policy and ``num_envs`` (per worker).

Semantics, stated once here:

- A *trial* is ``episodes_per_task`` consecutive episodes on one task in one
  sub-environment; the policy's recurrent state (``Policy.initial_state``) is
  reset at the start of each trial only.
- Trials run in waves of ``num_envs`` (a wave's sub-environments start together;
  one that finishes its trial early keeps stepping with its data ignored, so
  that the batch shape never changes).
- Gymnasium 1.x vector envs in ``AutoresetMode.SAME_STEP``: an episode's last
  step returns the next episode's first observation, and the final observation
  and info are read from ``info["final_obs"]`` / ``info["final_info"]``.
- Randomness: trial ``i`` of collect call ``c`` draws from
  ``SeedSequence(seed, spawn_key=(c, i))``: the seed of its first ``reset`` and the
  generator of its action noise. Nothing depends on which other trials share a
  wave except the policy's batched arithmetic, which is why samplers match only
  for the same ``num_envs``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from metarl.agents.policy import Policy, PolicyInput
from metarl.envs import set_tasks
from metarl.episodes import Episode, EpisodeBatch
from metarl.tasks import Task

__all__ = ["LocalSampler", "Sampler", "make_vector_env", "run_trials", "trial_seed"]

VECTORIZATION_MODES = ("sync", "async")


class Sampler(ABC):
    """Collects ``episodes_per_task`` consecutive episodes (one trial) on each task."""

    @abstractmethod
    def collect(
        self, policy: Policy, tasks: Sequence[Task], episodes_per_task: int
    ) -> EpisodeBatch:
        """Return the batch of ``len(tasks) * episodes_per_task`` episodes, in task order.

        Raises:
            ValueError: no tasks, ``episodes_per_task < 1``, or a task outside the
                environment's task distribution.
        """

    @abstractmethod
    def close(self) -> None:
        """Release environments and workers."""

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trial_seed(seed: int, call_index: int, trial_index: int) -> np.random.SeedSequence:
    """The seed sequence of trial ``trial_index`` of collect call ``call_index``."""
    return np.random.SeedSequence(seed, spawn_key=(call_index, trial_index))


def make_vector_env(
    env_id: str,
    num_envs: int,
    vectorization: str = "sync",
    env_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]] = (),
) -> gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv:
    """A vector env of ``num_envs`` copies of ``env_id`` in ``SAME_STEP`` autoreset mode.

    ``wrappers`` are applied to each copy, innermost first (``gymnasium.make_vec``'s
    ``wrappers``), e.g. ``TaskInObservation`` for an oracle baseline.

    Raises:
        ValueError: ``num_envs < 1`` or an unknown ``vectorization``.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
    if vectorization not in VECTORIZATION_MODES:
        raise ValueError(
            f"vectorization must be one of {list(VECTORIZATION_MODES)}, got {vectorization!r}"
        )
    # make_vec calls each wrapper as a plain function env -> env; its annotation is narrower.
    wrapper_fns: Any = list(wrappers)
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=vectorization,
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        wrappers=wrapper_fns,
        **(env_kwargs or {}),
    )
    assert isinstance(envs, gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv)
    return envs


def _check_request(tasks: Sequence[Task], episodes_per_task: int) -> None:
    if len(tasks) == 0:
        raise ValueError("collect needs at least one task")
    if (
        isinstance(episodes_per_task, bool)
        or not isinstance(episodes_per_task, int)
        or episodes_per_task < 1
    ):
        raise ValueError(f"episodes_per_task must be a positive integer, got {episodes_per_task!r}")


def _numeric_info(info: dict[str, Any], i: int) -> dict[str, np.ndarray]:
    """The numeric entries of sub-env ``i`` in a vectorized info dict."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = info.get("_" + key)
        if mask is not None and not mask[i]:
            continue
        array = np.asarray(value[i]) if isinstance(value, np.ndarray) else None
        if array is not None and array.dtype.kind in "biuf":
            out[key] = array
    return out


class _EpisodeBuffer:
    """The steps of one sub-environment's current episode."""

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.next_obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terms: list[bool] = []
        self.truncs: list[bool] = []
        self.env_infos: list[dict[str, np.ndarray]] = []
        self.agent_infos: list[dict[str, np.ndarray]] = []

    def episode(self, task: Task, trial: int, k: int) -> Episode:
        return Episode(
            task=task,
            observations=np.stack(self.obs),
            next_observations=np.stack(self.next_obs),
            actions=np.stack(self.actions),
            rewards=np.asarray(self.rewards, dtype=np.float64),
            terminations=np.asarray(self.terms, dtype=bool),
            truncations=np.asarray(self.truncs, dtype=bool),
            env_infos=_stack_dicts(self.env_infos),
            agent_infos=_stack_dicts(self.agent_infos),
            trial=trial,
            index_in_trial=k,
        )


def _stack_dicts(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack the keys present at every step (a key missing at some step is left out)."""
    if not rows:
        return {}
    keys = set(rows[0])
    for row in rows[1:]:
        keys &= set(row)
    return {k: np.stack([row[k] for row in rows]) for k in sorted(keys)}


def run_trials(
    envs: gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv,
    policy: Policy,
    tasks: Sequence[Task],
    trial_indices: Sequence[int],
    episodes_per_task: int,
    seed: int,
    call_index: int,
) -> list[Episode]:
    """Run one trial per task on ``envs`` in waves of ``envs.num_envs``.

    ``trial_indices[j]`` is the global index of ``tasks[j]`` in the collect call
    (its seed and its ``Episode.trial``). Returns the episodes trial by trial.
    """
    n = envs.num_envs
    episodes: list[Episode] = []
    for start in range(0, len(tasks), n):
        wave = list(range(start, min(start + n, len(tasks))))
        episodes.extend(
            _run_wave(
                envs,
                policy,
                [tasks[j] for j in wave],
                [trial_indices[j] for j in wave],
                episodes_per_task,
                seed,
                call_index,
            )
        )
    return episodes


def _run_wave(
    envs: gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv,
    policy: Policy,
    tasks: list[Task],
    trials: list[int],
    episodes_per_task: int,
    seed: int,
    call_index: int,
) -> list[Episode]:
    vec: Any = envs  # Gymnasium's vector annotations are looser than what they return
    n, m = envs.num_envs, len(tasks)
    seqs = [trial_seed(seed, call_index, t) for t in trials]
    # Sub-envs past m have no trial: they repeat the last task and their data is dropped.
    set_tasks(envs, tasks + [tasks[-1]] * (n - m))
    reset_seeds: list[int | None] = [int(s.generate_state(1)[0]) for s in seqs]
    reset_seeds += [0] * (n - m)
    rngs = [np.random.default_rng(s) for s in seqs] + [
        np.random.default_rng(0) for _ in range(n - m)
    ]
    obs, _ = vec.reset(seed=reset_seeds)
    act_space: Any = vec.single_action_space
    prev_actions = np.zeros((n, *act_space.shape), dtype=act_space.dtype)
    prev_rewards = np.zeros(n, dtype=np.float32)
    starts = np.ones(n, dtype=bool)
    active = np.arange(n) < m
    done_count = np.zeros(n, dtype=int)
    buffers = [_EpisodeBuffer() for _ in range(n)]
    results: list[list[Episode]] = [[] for _ in range(m)]
    state = policy.initial_state(n)
    row_trials = np.asarray(trials + [trials[-1]] * (n - m), dtype=np.int64)

    while active.any():
        out = policy.act(
            PolicyInput(obs, prev_actions, prev_rewards, starts, active.copy(), row_trials.copy()),
            state,
            rngs,
        )
        actions = np.asarray(out.actions)
        next_obs, rewards, terms, truncs, info = vec.step(actions)
        final_obs: Any = info.get("final_obs")
        final_info = info.get("final_info", {})
        for i in np.flatnonzero(active):
            done = bool(terms[i] or truncs[i])
            buf = buffers[i]
            buf.obs.append(obs[i])
            buf.next_obs.append(np.asarray(final_obs[i]) if done else next_obs[i])
            buf.actions.append(actions[i])
            buf.rewards.append(float(rewards[i]))
            buf.terms.append(bool(terms[i]))
            buf.truncs.append(bool(truncs[i]))
            buf.env_infos.append(_numeric_info(final_info if done else info, int(i)))
            buf.agent_infos.append({k: np.asarray(v[i]) for k, v in out.infos.items()})
            if done:
                results[i].append(buf.episode(tasks[i], trials[i], int(done_count[i])))
                buffers[i] = _EpisodeBuffer()
                done_count[i] += 1
                if done_count[i] == episodes_per_task:
                    active[i] = False
        starts = np.logical_or(terms, truncs)
        prev_actions = actions.astype(act_space.dtype, copy=False)
        prev_rewards = np.asarray(rewards, dtype=np.float32)
        obs = next_obs
        state = out.state
    return [ep for trial in results for ep in trial]


class LocalSampler(Sampler):
    """Collects in this process over one Gymnasium vector env of ``num_envs`` sub-envs.

    Args:
        env_id: a registered task environment (e.g. ``"metarl/PointRobot-v0"``).
        num_envs: sub-environments stepped in lock step (trials per wave).
        seed: the root of every trial's seed (see the module docstring).
        vectorization: ``"sync"`` (in process) or ``"async"`` (one process per sub-env).
        env_kwargs: keyword arguments of ``gymnasium.make``.
        wrappers: applied to each sub-environment, innermost first (e.g. an oracle
            baseline's ``env_wrappers``).
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 4,
        seed: int = 0,
        vectorization: str = "sync",
        env_kwargs: dict[str, Any] | None = None,
        wrappers: Sequence[Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]] = (),
    ):
        self.env_id = env_id
        self.seed = int(seed)
        self.envs = make_vector_env(env_id, num_envs, vectorization, env_kwargs, wrappers)
        self.calls = 0

    def collect(
        self, policy: Policy, tasks: Sequence[Task], episodes_per_task: int
    ) -> EpisodeBatch:
        _check_request(tasks, episodes_per_task)
        tasks = list(tasks)
        episodes = run_trials(
            self.envs,
            policy,
            tasks,
            list(range(len(tasks))),
            episodes_per_task,
            self.seed,
            self.calls,
        )
        self.calls += 1
        return EpisodeBatch(tuple(episodes), tuple(tasks), episodes_per_task)

    def close(self) -> None:
        self.envs.close()
