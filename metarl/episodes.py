"""Episodes and batches of episodes: typed numpy containers tagged with their task,
and the words the whole package counts them in.

``Episode`` holds one episode's arrays; ``EpisodeBatch`` holds the episodes one
``Sampler.collect`` call returns, grouped in trials. Like ``metarl.tasks`` this is a
bottom-layer types module: samplers (core) produce these objects and agents
(``metarl.agents``) consume them, so it imports nothing of metarl but the task types.

Vocabulary (every agent, config, sampler and report uses these names, and only these):

- *task*: one MDP of a task family (``metarl.tasks.Task``).
- *trial*: consecutive episodes on one task in one collection, over which an agent
  keeps what it has learned about the task (RL2's memory, PEARL's posterior; MAML's
  inner step learns from the whole trial); an ``EpisodeBatch`` holds one per task.
- ``episodes_per_trial``: a trial's length in meta-training (the sampler's
  ``collect(policy, tasks, episodes_per_trial)``, ``BatchAgent.episodes_per_trial``, the
  agents' config field). The meta-test's trial length is *K*,
  ``evaluation.episodes``.
- *iteration*: one step of the outer loop (``trainer.iterations``): the trainer
  draws ``tasks_per_iteration`` training tasks (``Agent.tasks_per_iteration``), the
  agent collects on them and updates.
- *meta-batch*, ``meta_batch_size``: the tasks one update learns from. The agents
  that update on what they have just collected (RL2, MAML-TRPO, ProMP, PPO) collect
  one trial on each of ``meta_batch_size`` tasks per iteration, so for them
  ``tasks_per_iteration`` is ``meta_batch_size``; PEARL updates from its replay
  buffers, drawing ``meta_batch_size`` tasks per gradient step, and collects on
  ``tasks_per_iteration`` tasks per iteration, a setting of its own.

Names these replaced, refused with the new name in configs and constructors
(``renamed_fields`` of the config classes): ``episodes_per_task`` (MAML-TRPO, ProMP,
PPO) is ``episodes_per_trial``; PPO's ``tasks_per_iteration`` is ``meta_batch_size``;
PEARL's ``num_tasks_sample`` is ``tasks_per_iteration``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from metarl.tasks import SUCCESS_KEY, Task

__all__ = ["Episode", "EpisodeBatch"]


@dataclass(frozen=True, eq=False)
class Episode:
    """One episode on one task.

    Arrays have the episode's length ``T`` as first axis:

    - ``observations``: ``(T, *obs_shape)`` float32, the observation each action was taken in;
    - ``next_observations``: ``(T, *obs_shape)`` float32, the observation after each step
      (for the last step: the final observation, before any reset);
    - ``actions``: ``(T, *act_shape)``, the actions as sent to the environment;
    - ``rewards``: ``(T,)`` float64; ``terminations`` / ``truncations``: ``(T,)`` bool;
    - ``env_infos``: numeric entries of the step infos, each ``(T, ...)``;
    - ``agent_infos``: what the policy returned with each action (log-probabilities,
      values, ...), each ``(T, ...)``.

    ``trial`` is the index of the episode's trial in its batch, ``index_in_trial`` its
    position ``k = 0..K-1`` inside the trial. ``success`` says whether the environment's
    success flag (``env_infos["success"]``, ``metarl.tasks.SUCCESS_KEY``) fired at any step.
    """

    task: Task
    observations: np.ndarray
    next_observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    env_infos: Mapping[str, np.ndarray] = field(default_factory=dict)
    agent_infos: Mapping[str, np.ndarray] = field(default_factory=dict)
    trial: int = 0
    index_in_trial: int = 0

    def __post_init__(self) -> None:
        n = len(self.rewards)
        arrays = {
            "observations": self.observations,
            "next_observations": self.next_observations,
            "actions": self.actions,
            "terminations": self.terminations,
            "truncations": self.truncations,
            **{f"env_infos[{k!r}]": v for k, v in self.env_infos.items()},
            **{f"agent_infos[{k!r}]": v for k, v in self.agent_infos.items()},
        }
        for name, array in arrays.items():
            if len(array) != n:
                raise ValueError(f"Episode.{name} has length {len(array)}; rewards have {n}")

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def total_return(self) -> float:
        """Sum of the rewards."""
        return float(np.sum(self.rewards))

    @property
    def success(self) -> bool | None:
        """Whether the success flag was set at any step; ``None`` if the env gives no flag."""
        flags = self.env_infos.get(SUCCESS_KEY)
        return None if flags is None else bool(np.any(flags))

    @property
    def terminated(self) -> bool:
        """Whether the episode ended by termination (not by truncation)."""
        return bool(len(self) and self.terminations[-1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Episode):
            return NotImplemented
        return (
            self.task == other.task
            and self.trial == other.trial
            and self.index_in_trial == other.index_in_trial
            and _same_arrays(self._arrays(), other._arrays())
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "observations": self.observations,
            "next_observations": self.next_observations,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminations": self.terminations,
            "truncations": self.truncations,
            **{"env_infos." + k: v for k, v in self.env_infos.items()},
            **{"agent_infos." + k: v for k, v in self.agent_infos.items()},
        }


def _same_arrays(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).shape == np.asarray(b[k]).shape and np.array_equal(a[k], b[k]) for k in a
    )


@dataclass(frozen=True, eq=False)
class EpisodeBatch:
    """The episodes of one collection, ordered by trial, then by position in the trial.

    ``tasks[i]`` is the task of trial ``i``; trial ``i`` holds ``episodes_per_trial``
    episodes.
    """

    episodes: tuple[Episode, ...]
    tasks: tuple[Task, ...]
    episodes_per_trial: int

    def __post_init__(self) -> None:
        expected = len(self.tasks) * self.episodes_per_trial
        if len(self.episodes) != expected:
            raise ValueError(
                f"EpisodeBatch has {len(self.episodes)} episodes; {len(self.tasks)} tasks x "
                f"{self.episodes_per_trial} episodes per trial = {expected}"
            )
        for i, ep in enumerate(self.episodes):
            trial, k = divmod(i, self.episodes_per_trial)
            if (ep.trial, ep.index_in_trial) != (trial, k) or ep.task != self.tasks[trial]:
                raise ValueError(
                    f"EpisodeBatch.episodes[{i}] is (trial {ep.trial}, k {ep.index_in_trial}, "
                    f"{ep.task}); expected (trial {trial}, k {k}, {self.tasks[trial]})"
                )

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EpisodeBatch):
            return NotImplemented
        return (
            self.tasks == other.tasks
            and self.episodes_per_trial == other.episodes_per_trial
            and all(a == b for a, b in zip(self.episodes, other.episodes, strict=True))
        )

    @property
    def num_steps(self) -> int:
        """Total environment steps in the batch."""
        return sum(len(ep) for ep in self.episodes)

    def trials(self) -> list[tuple[Episode, ...]]:
        """The episodes grouped by trial: ``trials()[i][k]`` is episode ``k`` on ``tasks[i]``."""
        k = self.episodes_per_trial
        return [self.episodes[i * k : (i + 1) * k] for i in range(len(self.tasks))]

    def returns(self) -> np.ndarray:
        """Episode returns as an array of shape ``(len(tasks), episodes_per_trial)``."""
        out = np.array([ep.total_return for ep in self.episodes], dtype=np.float64)
        return out.reshape(len(self.tasks), self.episodes_per_trial)

    def successes(self) -> np.ndarray | None:
        """Episode successes (flag set at any step) as a bool array shaped like ``returns()``;
        ``None`` if the environment gives no success flag.

        Raises:
            ValueError: some episodes carry the flag and others do not (an environment
                must give it at every step of every episode or never).
        """
        flags = [ep.success for ep in self.episodes]
        missing = [i for i, flag in enumerate(flags) if flag is None]
        if len(missing) == len(flags):
            return None
        if missing:
            ep = self.episodes[missing[0]]
            raise ValueError(
                f"{len(missing)} of {len(flags)} episodes have no info[{SUCCESS_KEY!r}] at every "
                f"step (first: trial {ep.trial}, k {ep.index_in_trial}, {ep.task}); a success "
                "flag must be given at every step of every episode, or never"
            )
        return np.array(flags, dtype=bool).reshape(len(self.tasks), self.episodes_per_trial)

    @staticmethod
    def concatenate(batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
        """Join batches with the same ``episodes_per_trial``, renumbering the trials in order.

        Raises:
            ValueError: no batches, or batches with different ``episodes_per_trial``.
        """
        if not batches:
            raise ValueError("EpisodeBatch.concatenate needs at least one batch")
        k = batches[0].episodes_per_trial
        if any(b.episodes_per_trial != k for b in batches):
            raise ValueError(
                "EpisodeBatch.concatenate: episodes_per_trial differs: "
                f"{[b.episodes_per_trial for b in batches]}"
            )
        episodes: list[Episode] = []
        tasks: list[Task] = []
        for batch in batches:
            offset = len(tasks)
            tasks.extend(batch.tasks)
            for ep in batch.episodes:
                episodes.append(dataclasses.replace(ep, trial=ep.trial + offset))
        return EpisodeBatch(tuple(episodes), tuple(tasks), k)

    @staticmethod
    def chain(batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
        """Join batches collected one after another on the same tasks, trial by trial.

        Trial ``i`` of the result holds the episodes of trial ``i`` of ``batches[0]``,
        then those of ``batches[1]``, ... (renumbered ``k = 0, 1, ...``): e.g. a
        gradient-based agent's meta-test episodes before and after each inner step.

        Raises:
            ValueError: no batches, or batches on different tasks.
        """
        if not batches:
            raise ValueError("EpisodeBatch.chain needs at least one batch")
        tasks = batches[0].tasks
        if any(b.tasks != tasks for b in batches):
            raise ValueError("EpisodeBatch.chain: the batches were collected on different tasks")
        grouped = [b.trials() for b in batches]
        episodes: list[Episode] = []
        for i in range(len(tasks)):
            k = 0
            for trials in grouped:
                for ep in trials[i]:
                    episodes.append(dataclasses.replace(ep, trial=i, index_in_trial=k))
                    k += 1
        return EpisodeBatch(tuple(episodes), tasks, sum(b.episodes_per_trial for b in batches))
