"""Replay buffers of transitions, one per task, for the off-policy agents (PEARL).

``ReplayBuffer`` is a ring buffer of fixed capacity over numpy arrays: observations,
actions, rewards, next observations, terminations, and any extra per-step fields
named at construction (e.g. a sparse-reward env's dense reward, which PEARL's
critic trains on while its encoder sees the sparse one). ``TaskReplayBuffers``
keeps one per task. Storage grows by doubling up to the capacity, so that a
million-transition capacity per task (PEARL's) costs only what is stored.
Sampling draws from an explicit ``numpy.random.Generator``; ``state_dict`` holds
every stored transition, so that a resumed run continues with all the data it had
collected.

Episodes go in whole (``add_episode``): a truncated episode's last transition keeps
``termination = False``, so that a critic bootstraps through a time limit.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from metarl.checks import check_int
from metarl.episodes import Episode

__all__ = ["ReplayBuffer", "TaskReplayBuffers", "Transitions"]


class Transitions(NamedTuple):
    """A batch of transitions: arrays with the batch as first axis (``extras`` by name)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    extras: dict[str, np.ndarray]


class ReplayBuffer:
    """The most recent ``capacity`` transitions of one task.

    Args:
        obs_dim: flattened observation size.
        action_dim: flattened action size.
        capacity: transitions kept; the oldest are overwritten first.
        extras: names of further per-step scalars, read from each episode's
            ``env_infos`` (e.g. ``("dense_reward",)``).

    Raises:
        ValueError: a non-positive size.
    """

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, extras: Sequence[str] = ()):
        for name, value in (
            ("obs_dim", obs_dim),
            ("action_dim", action_dim),
            ("capacity", capacity),
        ):
            check_int(f"ReplayBuffer.{name}", value, ge=1)
        self.capacity = capacity
        self.extra_names = tuple(extras)
        self._allocate(min(capacity, 1024), obs_dim, action_dim)
        self.size = 0
        self.next_index = 0

    def _allocate(self, n: int, obs_dim: int, action_dim: int) -> None:
        self.observations = np.zeros((n, obs_dim), dtype=np.float32)
        self.actions = np.zeros((n, action_dim), dtype=np.float32)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.next_observations = np.zeros((n, obs_dim), dtype=np.float32)
        self.terminations = np.zeros(n, dtype=bool)
        self.extras = {name: np.zeros(n, dtype=np.float32) for name in self.extra_names}

    def _reserve(self, n: int) -> None:
        """Grow the arrays (doubling, at most to ``capacity``) to hold ``n`` transitions.
        Only called before the ring first wraps, when the data is ``[0, size)``."""
        allocated = len(self.rewards)
        if n <= allocated or allocated == self.capacity:
            return
        new = min(self.capacity, max(n, 2 * allocated))
        old = (
            self.observations,
            self.actions,
            self.rewards,
            self.next_observations,
            self.terminations,
            self.extras,
        )
        self._allocate(new, self.observations.shape[1], self.actions.shape[1])
        keep = slice(0, self.size)
        self.observations[keep] = old[0][keep]
        self.actions[keep] = old[1][keep]
        self.rewards[keep] = old[2][keep]
        self.next_observations[keep] = old[3][keep]
        self.terminations[keep] = old[4][keep]
        for name in self.extra_names:
            self.extras[name][keep] = old[5][name][keep]

    def __len__(self) -> int:
        return self.size

    def add_episode(self, episode: Episode) -> None:
        """Append an episode's transitions (wrapping around when full).

        Raises:
            ValueError: the episode lacks one of the buffer's ``extras`` in its
                ``env_infos``, or its arrays do not have the buffer's sizes.
        """
        n = len(episode)
        missing = [name for name in self.extra_names if name not in episode.env_infos]
        if missing:
            raise ValueError(
                f"episode has no env_infos {missing} (the buffer stores {list(self.extra_names)}; "
                f"the episode has {sorted(episode.env_infos)})"
            )
        obs = episode.observations.reshape(n, -1)
        actions = episode.actions.reshape(n, -1)
        if obs.shape[1] != self.observations.shape[1] or actions.shape[1] != self.actions.shape[1]:
            raise ValueError(
                f"episode has observations of size {obs.shape[1]} and actions of size "
                f"{actions.shape[1]}; the buffer stores {self.observations.shape[1]} and "
                f"{self.actions.shape[1]}"
            )
        self._reserve(self.size + n)
        idx = (self.next_index + np.arange(n)) % self.capacity
        self.observations[idx] = obs
        self.actions[idx] = actions
        self.rewards[idx] = episode.rewards
        self.next_observations[idx] = episode.next_observations.reshape(n, -1)
        self.terminations[idx] = episode.terminations
        for name in self.extra_names:
            self.extras[name][idx] = np.asarray(episode.env_infos[name]).reshape(n)
        self.next_index = int((self.next_index + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def clear(self) -> None:
        """Forget every transition (PEARL empties a task's encoder buffer before new data)."""
        self.size = 0
        self.next_index = 0

    def sample(self, rng: np.random.Generator, n: int) -> Transitions:
        """``n`` transitions drawn uniformly with replacement.

        Raises:
            ValueError: the buffer is empty.
        """
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self._take(rng.integers(self.size, size=n))

    def _take(self, idx: np.ndarray) -> Transitions:
        return Transitions(
            self.observations[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_observations[idx],
            self.terminations[idx],
            {name: values[idx] for name, values in self.extras.items()},
        )

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions and the ring's position (copies of the filled part)."""
        keep = slice(0, self.size)
        return {
            "capacity": self.capacity,
            "size": self.size,
            "next_index": self.next_index,
            "observations": self.observations[keep].copy(),
            "actions": self.actions[keep].copy(),
            "rewards": self.rewards[keep].copy(),
            "next_observations": self.next_observations[keep].copy(),
            "terminations": self.terminations[keep].copy(),
            "extras": {k: v[keep].copy() for k, v in self.extras.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned.

        Raises:
            ValueError: a different capacity or different extra fields.
        """
        if int(state["capacity"]) != self.capacity or set(state["extras"]) != set(self.extras):
            raise ValueError(
                f"replay state has capacity {state['capacity']} and extras "
                f"{sorted(state['extras'])}; this buffer has {self.capacity} and "
                f"{sorted(self.extras)}"
            )
        size = int(state["size"])
        self.size = 0
        self._reserve(size)
        keep = slice(0, size)
        self.observations[keep] = state["observations"]
        self.actions[keep] = state["actions"]
        self.rewards[keep] = state["rewards"]
        self.next_observations[keep] = state["next_observations"]
        self.terminations[keep] = state["terminations"]
        for name, values in state["extras"].items():
            self.extras[name][keep] = values
        self.size = size
        self.next_index = int(state["next_index"])


class TaskReplayBuffers:
    """One ``ReplayBuffer`` per task, made when a task's first episode arrives.

    Tasks are keyed by any hashable (PEARL uses the index of the training task).
    """

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, extras: Sequence[str] = ()):
        self._make = lambda: ReplayBuffer(obs_dim, action_dim, capacity, extras)
        ReplayBuffer(obs_dim, action_dim, 1, extras)  # validates the sizes now
        self.buffers: dict[Hashable, ReplayBuffer] = {}

    def __getitem__(self, task: Hashable) -> ReplayBuffer:
        if task not in self.buffers:
            self.buffers[task] = self._make()
        return self.buffers[task]

    def __contains__(self, task: Hashable) -> bool:
        return task in self.buffers and len(self.buffers[task]) > 0

    def add_episodes(self, task: Hashable, episodes: Sequence[Episode]) -> None:
        """Append ``episodes`` to ``task``'s buffer."""
        for ep in episodes:
            self[task].add_episode(ep)

    def num_transitions(self) -> int:
        """Transitions stored over all tasks."""
        return sum(len(b) for b in self.buffers.values())

    def state_dict(self) -> dict[Hashable, dict[str, Any]]:
        """Each task's buffer state."""
        return {task: buf.state_dict() for task, buf in self.buffers.items()}

    def load_state_dict(self, state: Mapping[Hashable, Mapping[str, Any]]) -> None:
        """Restore every task's buffer (tasks not in ``state`` are dropped)."""
        self.buffers = {}
        for task, buf_state in state.items():
            self[task].load_state_dict(buf_state)
