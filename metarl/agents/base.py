"""The agent contract: what the trainer and the meta-test protocol need from a learner.

An agent offers a policy to collect with, an update from a batch of episodes,
and adaptation to new tasks from episodes it collects itself (``adapt``). It never
sees a sampler: it gets a ``collect`` function, so that no agent knows whether
its episodes come from this process or from Ray workers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from metarl.agents.policy import Policy
from metarl.episodes import EpisodeBatch
from metarl.tasks import Task

__all__ = ["Agent", "CollectFn"]

# ``collect(policy, tasks, episodes_per_task) -> EpisodeBatch``: a sampler's collect.
CollectFn = Callable[[Policy, Sequence[Task], int], EpisodeBatch]


class Agent(ABC):
    """A meta-RL learner.

    Subclasses set ``episodes_per_trial`` (episodes per task in each meta-training
    collection; RL2's trial length) and ``tasks_per_iteration`` (meta-batch size).
    """

    episodes_per_trial: int = 1
    tasks_per_iteration: int = 1

    @abstractmethod
    def policy(self) -> Policy:
        """The policy to collect meta-training episodes with (current parameters)."""

    @abstractmethod
    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """One outer-loop update from ``batch``; returns scalar metrics to log."""

    def adapt(self, collect: CollectFn, tasks: Sequence[Task], episodes: int) -> EpisodeBatch:
        """Meta-test on ``tasks``: ``episodes`` consecutive episodes per task, adapting.

        The default suits agents whose adaptation is their memory (RL2) and agents
        that do not adapt (baselines): one trial of ``episodes`` episodes per task.
        Gradient-based agents (MAML) and posterior-sampling agents (PEARL) override it.
        """
        return collect(self.policy(), tasks, episodes)

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: parameters, optimizer states, generator states."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
