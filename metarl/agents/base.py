"""The agent contracts: what the trainer and the meta-test protocol need from a learner.

``Agent`` is what the meta-test protocol and the run folder use: a policy to collect
with, adaptation to new tasks from episodes it collects itself (``adapt``), and its
checkpoint state. A learner is one of two kinds, and the trainer runs each its way:

- ``BatchAgent`` learns from one batch per iteration: the trainer collects one trial
  of ``episodes_per_trial`` episodes on each task with ``policy()`` and hands the
  batch to ``update`` (RL2, PPO).
- ``TrainStepAgent`` drives its own iteration, ``train_step(collect, tasks)``: it
  collects as often as it needs (MAML-TRPO and ProMP before and after their inner
  steps, PEARL in its prior and posterior phases) and updates.

An agent of neither kind (the baselines, which Stable-Baselines3 trains) is evaluated
only. No agent sees a sampler: each gets a ``collect`` function, so that no agent
knows whether its episodes come from this process or from Ray workers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from metarl.agents.policy import Policy
from metarl.envs.base import EnvWrapper
from metarl.episodes import EpisodeBatch
from metarl.tasks import Task

__all__ = [
    "RETURN_METRICS",
    "Agent",
    "BatchAgent",
    "CollectFn",
    "TrainStep",
    "TrainStepAgent",
    "return_metrics",
]

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
    """A meta-RL agent as the meta-test protocol sees it: a policy, adaptation, state.

    Learners subclass ``BatchAgent`` or ``TrainStepAgent`` (the two kinds the trainer
    runs) and set ``tasks_per_iteration`` (the tasks the trainer draws per iteration:
    the ``meta_batch_size`` of an agent that updates on what it has just collected);
    the words are defined in ``metarl.episodes``.
    """

    tasks_per_iteration: int = 1
    # Meta-test episodes that share one adaptation state, in order: MAML's episodes
    # between two inner steps; 1 for agents that adapt from episode to episode (RL2,
    # PEARL) or not at all. Reports average the meta-test returns over these groups.
    adaptation_batch: int = 1
    # What each metric of an iteration holds: metric name (or a template such as
    # ``return_k{k}``) -> description. The trainer writes them into the run folder's
    # columns.md, beside metrics.csv.
    metric_descriptions: ClassVar[Mapping[str, str]] = RETURN_METRICS
    # Metric names that run folders of earlier versions of the agent hold -> the name
    # now; the trainer renames those columns of metrics.csv when it resumes such a run.
    renamed_metrics: ClassVar[Mapping[str, str]] = {}

    @property
    def env_wrappers(self) -> tuple[EnvWrapper, ...]:
        """The wrappers the environments this agent acts in need, innermost first: an
        agent that observes more than the task environment gives (the oracle baseline
        sees the task) names them, and the meta-test's samplers apply them. None by
        default."""
        return ()

    @abstractmethod
    def policy(self) -> Policy:
        """The policy to collect meta-training episodes with (current parameters)."""

    def prepare(self, collect: CollectFn, train_tasks: Sequence[Task]) -> int:
        """Called once by the trainer before the first iteration with all training
        tasks (PEARL fills its replay buffers here); returns the env steps collected.
        The default does nothing."""
        return 0

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


class BatchAgent(Agent):
    """A learner that learns from one batch per iteration (RL2, PPO).

    Each iteration the trainer collects one trial of ``episodes_per_trial`` episodes
    on each of ``tasks_per_iteration`` tasks with ``policy()`` and calls ``update``;
    the iteration's metrics are the batch's returns (``return_metrics``) and the
    update's.
    """

    # Episodes per task in each meta-training collection (RL2's trial length).
    episodes_per_trial: int = 1

    @abstractmethod
    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """One outer-loop update from ``batch``; returns scalar metrics to log."""


class TrainStepAgent(Agent):
    """A learner that drives its own meta-training iteration (MAML-TRPO, ProMP, PEARL):
    the trainer calls ``train_step`` with the sampler's ``collect``."""

    @abstractmethod
    def train_step(self, collect: CollectFn, tasks: Sequence[Task]) -> TrainStep:
        """One meta-training iteration on ``tasks`` (``tasks_per_iteration`` of them):
        collect through ``collect`` as often as the algorithm needs and update.
        Returns the env steps collected and the metrics (the same keys at every
        iteration)."""
