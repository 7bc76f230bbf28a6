"""The meta-test protocol: ``evaluate_adaptation(agent, env, tasks, K)``.

On each held-out task the agent runs ``K`` consecutive episodes in which it
adapts (its memory, posterior or parameters carry over from episode to
episode: ``Agent.adapt``). The result holds the return of every episode
``k = 1..K`` on every task, their mean and standard deviation over tasks, and
plots as an adaptation curve. Every agent and baseline is measured by this one
function, so that their numbers compare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metarl.agents.base import Agent
from metarl.sampling import LocalSampler, Sampler
from metarl.tasks import Task

__all__ = ["AdaptationResult", "evaluate_adaptation", "plot_adaptation"]


@dataclass(frozen=True)
class AdaptationResult:
    """Returns of ``K`` consecutive episodes on each task: ``returns[task, k]``.

    ``stage_size`` is the number of consecutive episodes that share one adaptation
    state (``Agent.adaptation_batch``: MAML's episodes between inner steps; 1 for
    agents that adapt after every episode); ``stage_returns`` averages over them.
    """

    tasks: tuple[Task, ...]
    returns: np.ndarray
    env_steps: int = 0
    stage_size: int = 1

    def __post_init__(self) -> None:
        if self.returns.shape[0] != len(self.tasks) or self.returns.ndim != 2:
            raise ValueError(
                f"AdaptationResult.returns must have shape ({len(self.tasks)}, K), "
                f"got {self.returns.shape}"
            )
        if (
            isinstance(self.stage_size, bool)
            or not isinstance(self.stage_size, int)
            or not (1 <= self.stage_size)
        ):
            raise ValueError(
                f"AdaptationResult.stage_size must be a positive integer, got {self.stage_size!r}"
            )

    def stages(self, size: int | None = None) -> list[range]:
        """The episode indices of each stage of ``size`` (default ``stage_size``)
        episodes; the last stage may be shorter."""
        size = size or self.stage_size
        return [range(a, min(a + size, self.episodes)) for a in range(0, self.episodes, size)]

    def stage_returns(self, size: int | None = None) -> np.ndarray:
        """Mean return over each stage's episodes, per task: ``(tasks, stages)``."""
        return np.stack([self.returns[:, list(r)].mean(axis=1) for r in self.stages(size)], axis=1)

    @property
    def episodes(self) -> int:
        """K, the number of consecutive episodes per task."""
        return int(self.returns.shape[1])

    @property
    def mean(self) -> np.ndarray:
        """Mean return of episode ``k`` over tasks, shape ``(K,)``."""
        return np.asarray(self.returns.mean(axis=0))

    @property
    def std(self) -> np.ndarray:
        """Standard deviation over tasks of the return of episode ``k``, shape ``(K,)``."""
        return np.asarray(self.returns.std(axis=0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tasks as dicts, returns as nested lists)."""
        return {
            "tasks": [t.to_dict() for t in self.tasks],
            "returns": self.returns.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "env_steps": self.env_steps,
            "stage_size": self.stage_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptationResult:
        """Inverse of ``to_dict``."""
        return cls(
            tuple(Task.from_dict(t) for t in data["tasks"]),
            np.asarray(data["returns"], dtype=np.float64),
            int(data.get("env_steps", 0)),
            int(data.get("stage_size", 1)),
        )


def evaluate_adaptation(
    agent: Agent,
    env: str | Sampler,
    tasks: Sequence[Task],
    K: int,
    *,
    seed: int = 0,
    num_envs: int | None = None,
) -> AdaptationResult:
    """Run the meta-test protocol: ``K`` consecutive adapting episodes on each task.

    Args:
        agent: the agent; its ``adapt`` runs the episodes.
        env: a registered task-environment id (a ``LocalSampler`` seeded with
            ``seed`` is made and closed, its envs wrapped with the agent's
            ``env_wrappers`` if it has any), or a sampler to use as it is.
        tasks: the held-out tasks.
        K: episodes per task.
        num_envs: sub-environments of the sampler made from an id (default:
            ``min(len(tasks), 16)``).

    Raises:
        ValueError: ``K < 1`` or no tasks.
    """
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"K (episodes per task) must be a positive integer, got {K!r}")
    if len(tasks) == 0:
        raise ValueError("evaluate_adaptation needs at least one task")
    own = isinstance(env, str)
    sampler = (
        LocalSampler(
            env,
            num_envs=num_envs or min(len(tasks), 16),
            seed=seed,
            # An agent that observes more than the task env gives (the oracle baseline
            # sees the task) names the wrappers its environments need.
            wrappers=getattr(agent, "env_wrappers", ()),
        )
        if isinstance(env, str)
        else env
    )
    try:
        batch = agent.adapt(sampler.collect, list(tasks), K)
    finally:
        if own:
            sampler.close()
    stage = min(int(getattr(agent, "adaptation_batch", 1)), K)
    return AdaptationResult(tuple(batch.tasks), batch.returns(), batch.num_steps, stage)


def plot_adaptation(
    results: Mapping[str, AdaptationResult], path: str | Path, title: str = ""
) -> None:
    """Write a PNG of the adaptation curves: mean return of episode k, with +- one std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, result in results.items():
        k = np.arange(1, result.episodes + 1)
        ax.plot(k, result.mean, marker="o", label=label)
        ax.fill_between(k, result.mean - result.std, result.mean + result.std, alpha=0.2)
    ax.set_xlabel("episode k on the task")
    ax.set_ylabel("return (mean over test tasks, +- std)")
    ax.set_xticks(np.arange(1, max(r.episodes for r in results.values()) + 1))
    ax.set_title(title or "Adaptation on held-out tasks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
