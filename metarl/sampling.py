"""Samplers: collect episodes of a policy on given tasks, ``collect(policy, tasks, K)``.

``Sampler`` is the contract every agent collects through; ``LocalSampler`` runs it
in this process over a Gymnasium vector env (one task per sub-environment), and
``metarl.ray_sampling.RaySampler`` spreads the same work over Ray actors. Both
run the same function, ``run_trials``, so they give the same batch for the same
seed, policy and ``num_envs`` (per worker).

Semantics, stated once here:

- A *trial* is ``episodes_per_trial`` consecutive episodes on one task in one
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
from collections.abc import Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from metarl.agents.policy import Policy, PolicyInput
from metarl.checks import check_int
from metarl.envs import set_tasks
from metarl.envs.base import EnvWrapper
from metarl.episodes import Episode, EpisodeBatch
from metarl.tasks import Task

__all__ = [
    "LocalSampler",
    "Sampler",
    "WorkerInfo",
    "check_collect_request",
    "make_vector_env",
    "run_trials",
    "trial_seed",
]

VECTORIZATION_MODES = ("sync", "async")


class WorkerInfo(NamedTuple):
    """A worker's process, its Ray node and its peak resident memory (``ru_maxrss``)."""

    pid: int
    node_id: str
    peak_rss_bytes: int


class Sampler(ABC):
    """Collects ``episodes_per_trial`` consecutive episodes (one trial) on each task.

    Besides ``collect`` and ``close``, the trainer and the runner use ``calls`` (saved
    in checkpoints and restored on resume) and ``worker_info`` (recorded in the run
    folder).
    """

    calls: int = 0
    """How many ``collect`` calls the sampler has served: the call index ``c`` of the
    next call's trial seeds (``trial_seed``). The trainer saves it in checkpoints and
    sets it when it resumes a run, so that the resumed run collects the episodes an
    uninterrupted one would; an implementation counts every ``collect`` call."""

    @abstractmethod
    def collect(
        self, policy: Policy, tasks: Sequence[Task], episodes_per_trial: int
    ) -> EpisodeBatch:
        """Return the batch of ``len(tasks) * episodes_per_trial`` episodes, in task order.

        Raises:
            ValueError: no tasks, ``episodes_per_trial`` not a positive integer
                (``check_collect_request``), or a task outside the environment's task
                distribution.
        """

    @abstractmethod
    def close(self) -> None:
        """Release environments and workers."""

    def worker_info(self) -> list[WorkerInfo]:
        """Each worker process that collects for this sampler: its process, node and
        peak memory (the runner writes them to the run folder's ``workers.json``).
        Empty for a sampler that collects in this process (the default)."""
        return []

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
    wrappers: Sequence[EnvWrapper] = (),
) -> gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv:
    """A vector env of ``num_envs`` copies of ``env_id`` in ``SAME_STEP`` autoreset mode.

    ``wrappers`` are applied to each copy, innermost first (``gymnasium.make_vec``'s
    ``wrappers``), e.g. ``TaskInObservation`` for an oracle baseline.

    Raises:
        ValueError: ``num_envs < 1`` or an unknown ``vectorization``.
    """
    check_int("num_envs", num_envs, ge=1)
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


def check_collect_request(tasks: Sequence[Task], episodes_per_trial: int) -> None:
    """The check of ``Sampler.collect``'s arguments that every sampler makes first.

    Raises:
        ValueError: no tasks, or ``episodes_per_trial`` not a positive integer.
    """
    if len(tasks) == 0:
        raise ValueError("collect needs at least one task")
    check_int("episodes_per_trial", episodes_per_trial, ge=1)


def _numeric_entries(
    info: dict[str, Any], prefix: str = ""
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Numeric entries of a vectorized info dict: key -> (values ``(n, ...)``, present ``(n,)``).

    Nested dicts (the unmodeled effects' ``info["effects"][name]``) give ``a.b.c`` keys,
    the form ``metarl.sim2real.targets`` records too.
    """
    out = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        if isinstance(value, dict):
            out.update(_numeric_entries(value, f"{prefix}{key}."))
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            mask = info.get("_" + key)
            present = np.ones(len(value), bool) if mask is None else np.asarray(mask, bool)
            out[prefix + key] = (value, present)
    return out


def _step_infos(info: dict[str, Any], done: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One step's numeric infos per sub-env: the ``final_info`` of a sub-env whose episode
    ended at this step (its last step's info), the step's ``info`` for the others."""
    current = _numeric_entries(info)
    if not done.any():
        return current
    final = _numeric_entries(info.get("final_info", {}))
    merged = {}
    for key in current.keys() | final.keys():
        cur, fin = current.get(key), final.get(key)
        if cur is None:
            assert fin is not None
            merged[key] = (fin[0], fin[1] & done)
        elif fin is None:
            merged[key] = (cur[0], cur[1] & ~done)
        elif cur[0].shape == fin[0].shape:
            rows = done.reshape(-1, *([1] * (cur[0].ndim - 1)))
            merged[key] = (np.where(rows, fin[0], cur[0]), np.where(done, fin[1], cur[1]))
        else:  # shapes differ between the two dicts: keep the key where it is current
            merged[key] = (cur[0], cur[1] & ~done)
    return merged


class _WaveRecord:
    """The steps of one wave, whole-wave arrays per step, split into episodes at the end.

    Recording a step costs a few list appends whatever the number of sub-envs; the
    per-sub-env work (slicing episodes out) happens once per episode, in
    ``episodes``. An info key enters an episode's ``env_infos`` only if it is present
    at every step of that episode (as ``Episode`` documents).
    """

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.next_obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[np.ndarray] = []
        self.terms: list[np.ndarray] = []
        self.truncs: list[np.ndarray] = []
        self.env_infos: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
        self.agent_infos: list[dict[str, np.ndarray]] = []

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terms: np.ndarray,
        truncs: np.ndarray,
        env_infos: dict[str, tuple[np.ndarray, np.ndarray]],
        agent_infos: dict[str, np.ndarray],
    ) -> None:
        self.obs.append(obs)
        self.next_obs.append(next_obs)
        self.actions.append(actions)
        self.rewards.append(np.asarray(rewards, dtype=np.float64))
        self.terms.append(np.asarray(terms, dtype=bool))
        self.truncs.append(np.asarray(truncs, dtype=bool))
        self.env_infos.append(env_infos)
        self.agent_infos.append({k: np.asarray(v) for k, v in agent_infos.items()})

    def _stacked_infos(
        self, rows: list[dict[str, tuple[np.ndarray, np.ndarray]]]
    ) -> dict[str, tuple[np.ndarray | list[np.ndarray | None], np.ndarray]]:
        """key -> (values ``(T, n, ...)``, or per-step arrays if shapes vary; present (T, n))."""
        n = len(self.rewards[0])
        out: dict[str, tuple[np.ndarray | list[np.ndarray | None], np.ndarray]] = {}
        keys = set().union(*(row.keys() for row in rows)) if rows else set()
        for key in sorted(keys):
            values = [row[key][0] if key in row else None for row in rows]
            present = np.stack([row[key][1] if key in row else np.zeros(n, bool) for row in rows])
            shapes = {(v.shape, v.dtype) for v in values if v is not None}
            if len(shapes) == 1:
                shape, dtype = shapes.pop()
                filler = np.zeros(shape, dtype)
                out[key] = (np.stack([filler if v is None else v for v in values]), present)
            else:
                out[key] = (values, present)
        return out

    def episodes(
        self, tasks: list[Task], trials: list[int], lengths: list[list[int]]
    ) -> list[Episode]:
        """Episodes of sub-envs ``0..len(tasks)-1``; ``lengths[i]`` their step counts, in order."""
        obs, next_obs = np.stack(self.obs), np.stack(self.next_obs)
        actions, rewards = np.stack(self.actions), np.stack(self.rewards)
        terms, truncs = np.stack(self.terms), np.stack(self.truncs)
        env_infos = self._stacked_infos(self.env_infos)
        common = set(self.agent_infos[0]).intersection(*self.agent_infos[1:])
        agent_infos = {k: np.stack([row[k] for row in self.agent_infos]) for k in sorted(common)}
        out = []
        for i, (task, trial) in enumerate(zip(tasks, trials, strict=True)):
            start = 0
            for k, length in enumerate(lengths[i]):
                span = slice(start, start + length)
                start += length
                infos = {}
                for key, (values, present) in env_infos.items():
                    if not present[span, i].all():
                        continue
                    if isinstance(values, np.ndarray):
                        infos[key] = np.array(values[span, i])
                    else:
                        infos[key] = np.stack([np.asarray(v[i]) for v in values[span]])  # type: ignore[index]
                out.append(
                    Episode(
                        task=task,
                        observations=np.array(obs[span, i]),
                        next_observations=np.array(next_obs[span, i]),
                        actions=np.array(actions[span, i]),
                        rewards=np.array(rewards[span, i]),
                        terminations=np.array(terms[span, i]),
                        truncations=np.array(truncs[span, i]),
                        env_infos=infos,
                        agent_infos={kk: np.array(v[span, i]) for kk, v in agent_infos.items()},
                        trial=trial,
                        index_in_trial=k,
                    )
                )
        return out


def run_trials(
    envs: gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv,
    policy: Policy,
    tasks: Sequence[Task],
    trial_indices: Sequence[int],
    episodes_per_trial: int,
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
                episodes_per_trial,
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
    episodes_per_trial: int,
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
    steps_in_episode = np.zeros(n, dtype=int)
    lengths: list[list[int]] = [[] for _ in range(m)]
    record = _WaveRecord()
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
        done = np.logical_or(terms, truncs)
        stored_next = next_obs
        if done.any():
            final_obs: Any = info["final_obs"]
            stored_next = np.array(next_obs)
            for i in np.flatnonzero(done):
                stored_next[i] = final_obs[i]
        # Rows of inactive sub-envs are recorded too (one append per step, not per env)
        # and never read: only the first sum(lengths[i]) steps of sub-env i are episodes.
        record.add(
            obs, stored_next, actions, rewards, terms, truncs, _step_infos(info, done), out.infos
        )
        steps_in_episode += active
        for i in np.flatnonzero(done & active):
            lengths[i].append(int(steps_in_episode[i]))
            steps_in_episode[i] = 0
            done_count[i] += 1
            if done_count[i] == episodes_per_trial:
                active[i] = False
        starts = done
        prev_actions = actions.astype(act_space.dtype, copy=False)
        prev_rewards = np.asarray(rewards, dtype=np.float32)
        obs = next_obs
        state = out.state
    return record.episodes(tasks, trials, lengths)


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
        wrappers: Sequence[EnvWrapper] = (),
    ):
        self.env_id = env_id
        self.seed = int(seed)
        self.envs = make_vector_env(env_id, num_envs, vectorization, env_kwargs, wrappers)
        self.calls = 0

    def collect(
        self, policy: Policy, tasks: Sequence[Task], episodes_per_trial: int
    ) -> EpisodeBatch:
        check_collect_request(tasks, episodes_per_trial)
        tasks = list(tasks)
        episodes = run_trials(
            self.envs,
            policy,
            tasks,
            list(range(len(tasks))),
            episodes_per_trial,
            self.seed,
            self.calls,
        )
        self.calls += 1
        return EpisodeBatch(tuple(episodes), tuple(tasks), episodes_per_trial)

    def close(self) -> None:
        self.envs.close()
