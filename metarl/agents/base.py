"""The agent contract: what the trainer and the meta-test protocol need from a learner.

An agent offers a policy to collect with, an update from a batch of episodes,
one meta-training iteration on given tasks (``train_step``: by default one
collection and one update; MAML collects before and after its inner steps), and
adaptation to new tasks from episodes it collects itself (``adapt``). It never
sees a sampler: it gets a ``collect`` function, so that no agent knows whether
its episodes come from this process or from Ray workers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from metarl.agents.policy import Policy
from metarl.episodes import EpisodeBatch
from metarl.tasks import Task

__all__ = ["RETURN_METRICS", "Agent", "CollectFn", "TrainStep", "return_metrics"]

# ``collect(policy, tasks, episodes_per_trial) -> EpisodeBatch``: a sampler's collect.
CollectFn = Callable[[Policy, Sequence[Task], int], EpisodeBatch]


class TrainStep(NamedTuple):
    """What one meta-training iteration reports: the env steps it collected and its
    scalar metrics (the same keys at every iteration)."""

    env_steps: int
    metrics: dict[str, float]


# What ``return_metrics`` gives (``{k}``: any episode number).
RETURN_METRICS: dict[str, str] = {
    "return_mean": "mean undiscounted return of the iteration's training episodes",
    "return_k{k}": "mean undiscounted return of episode {k} of each trial (task) in the "
    "iteration's training batch",
}


def return_metrics(batch: EpisodeBatch, prefix: str = "") -> dict[str, float]:
    """``{prefix}return_mean`` and ``{prefix}return_k{k}`` (mean return of the k-th
    episode of each trial) of a batch (``RETURN_METRICS``)."""
    returns = batch.returns()
    metrics = {f"{prefix}return_mean": float(returns.mean())}
    for k in range(returns.shape[1]):
        metrics[f"{prefix}return_k{k + 1}"] = float(returns[:, k].mean())
    return metrics


class Agent(ABC):
    """A meta-RL learner.

    Subclasses set ``episodes_per_trial`` (the trial length of meta-training) and
    ``tasks_per_iteration`` (the tasks the trainer draws per iteration: the
    ``meta_batch_size`` of an agent that updates on what it has just collected); the
    words are defined in ``metarl.episodes``.
    """

    episodes_per_trial: int = 1
    tasks_per_iteration: int = 1
    # Meta-test episodes that share one adaptation state, in order: MAML's episodes
    # between two inner steps; 1 for agents that adapt from episode to episode (RL2,
    # PEARL) or not at all. Reports average the meta-test returns over these groups.
    adaptation_batch: int = 1
    # What each metric of ``train_step`` holds: metric name (or a template such as
    # ``return_k{k}``) -> description. The trainer writes them into the run folder's
    # columns.md, beside metrics.csv.
    metric_descriptions: ClassVar[Mapping[str, str]] = RETURN_METRICS
    # Metric names that run folders of earlier versions of the agent hold -> the name
    # now; the trainer renames those columns of metrics.csv when it resumes such a run.
    renamed_metrics: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def policy(self) -> Policy:
        """The policy to collect meta-training episodes with (current parameters)."""

    @abstractmethod
    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """One outer-loop update from ``batch``; returns scalar metrics to log."""

    def prepare(self, collect: CollectFn, train_tasks: Sequence[Task]) -> int:
        """Called once by the trainer before the first iteration with all training
        tasks (PEARL fills its replay buffers here); returns the env steps collected.
        The default does nothing."""
        return 0

    def train_step(self, collect: CollectFn, tasks: Sequence[Task]) -> TrainStep:
        """One meta-training iteration on ``tasks`` (``tasks_per_iteration`` of them).

        The default collects one trial of ``episodes_per_trial`` episodes per task with
        ``policy()`` and calls ``update``; its metrics are the batch's returns
        (``return_metrics``) and the update's. Agents that collect more than once per
        iteration (MAML: before and after the inner steps) override it.
        """
        batch = collect(self.policy(), tasks, self.episodes_per_trial)
        update = self.update(batch)
        return TrainStep(batch.num_steps, {**return_metrics(batch), **update})

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
