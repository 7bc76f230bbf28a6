"""The meta-test protocol: ``evaluate_adaptation(agent, env, tasks, K)``.

On each held-out task the agent runs ``K`` consecutive episodes in which it
adapts (its memory, posterior or parameters carry over from episode to
episode: ``Agent.adapt``). The result holds the return of every episode
``k = 1..K`` on every task, their mean and standard deviation over tasks, and
plots as an adaptation curve. Where the environment gives a success flag
(``info["success"]``, ``metarl.tasks.SUCCESS_KEY``: Meta-World, the sparse point
robot) it also holds whether each episode succeeded (the flag set at any step, as
Meta-World's protocol counts it) and the success rate of each episode ``k`` over
tasks. Every agent and baseline is measured by this one function, so that their
numbers compare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metarl.agents.base import Agent
from metarl.checks import check_int
from metarl.sampling import LocalSampler, Sampler
from metarl.tasks import Task

__all__ = ["AdaptationResult", "evaluate_adaptation", "plot_adaptation"]


@dataclass(frozen=True)
class AdaptationResult:
    """Returns of ``K`` consecutive episodes on each task: ``returns[task, k]``.

    ``stage_size`` is the number of consecutive episodes that share one adaptation
    state (``Agent.adaptation_batch``: MAML's episodes between inner steps; 1 for
    agents that adapt after every episode); ``stage_returns`` averages over them.
    ``successes[task, k]`` (bool) says whether episode ``k`` on the task succeeded (the
    environment's success flag set at any step); ``None`` where the environment gives
    no success flag, so that "no flag" never reads as a success rate of 0.
    """

    tasks: tuple[Task, ...]
    returns: np.ndarray
    env_steps: int = 0
    stage_size: int = 1
    successes: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.returns.shape[0] != len(self.tasks) or self.returns.ndim != 2:
            raise ValueError(
                f"AdaptationResult.returns must have shape ({len(self.tasks)}, K), "
                f"got {self.returns.shape}"
            )
        check_int("AdaptationResult.stage_size", self.stage_size, ge=1)
        if self.successes is not None and (
            self.successes.shape != self.returns.shape or self.successes.dtype != bool
        ):
            raise ValueError(
                "AdaptationResult.successes must be None or a bool array shaped like returns "
                f"{self.returns.shape}, got {self.successes.dtype} {self.successes.shape}"
            )

    def stages(self, size: int | None = None) -> list[range]:
        """The episode indices of each stage of ``size`` (default ``stage_size``)
        episodes; the last stage may be shorter."""
        size = size or self.stage_size
        return [range(a, min(a + size, self.episodes)) for a in range(0, self.episodes, size)]

    def stage_returns(self, size: int | None = None) -> np.ndarray:
        """Mean return over each stage's episodes, per task: ``(tasks, stages)``."""
        return self._stage_means(self.returns, size)

    def stage_successes(self, size: int | None = None) -> np.ndarray | None:
        """Share of each stage's episodes that succeeded, per task: ``(tasks, stages)``;
        ``None`` without a success flag."""
        return None if self.successes is None else self._stage_means(self.successes, size)

    def _stage_means(self, values: np.ndarray, size: int | None) -> np.ndarray:
        return np.stack(
            [values[:, list(r)].mean(axis=1, dtype=np.float64) for r in self.stages(size)], axis=1
        )

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

    @property
    def success_rate(self) -> np.ndarray | None:
        """Share of tasks on which episode ``k`` succeeded, shape ``(K,)``; ``None`` without
        a success flag."""
        if self.successes is None:
            return None
        return np.asarray(self.successes.mean(axis=0, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tasks as dicts, returns and successes as nested lists;
        ``successes`` and ``success_rate`` are ``null`` without a success flag)."""
        rate = self.success_rate
        return {
            "tasks": [t.to_dict() for t in self.tasks],
            "returns": self.returns.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "successes": None if self.successes is None else self.successes.tolist(),
            "success_rate": None if rate is None else rate.tolist(),
            "env_steps": self.env_steps,
            "stage_size": self.stage_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptationResult:
        """Inverse of ``to_dict``."""
        successes = data.get("successes")
        return cls(
            tuple(Task.from_dict(t) for t in data["tasks"]),
            np.asarray(data["returns"], dtype=np.float64),
            int(data.get("env_steps", 0)),
            int(data.get("stage_size", 1)),
            None if successes is None else np.asarray(successes, dtype=bool),
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

    Returns:
        The returns of every episode, and their successes where the environment
        gives a success flag (``AdaptationResult.successes``).

    Raises:
        ValueError: ``K < 1`` or no tasks; or the environment gives a success flag in
            some episodes and not in others.
    """
    check_int("K (episodes per task)", K, ge=1)
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
            wrappers=agent.env_wrappers,
        )
        if isinstance(env, str)
        else env
    )
    try:
        batch = agent.adapt(sampler.collect, list(tasks), K)
    finally:
        if own:
            sampler.close()
    stage = min(int(agent.adaptation_batch), K)
    return AdaptationResult(
        tuple(batch.tasks), batch.returns(), batch.num_steps, stage, batch.successes()
    )


def plot_adaptation(
    results: Mapping[str, AdaptationResult], path: str | Path, title: str = ""
) -> None:
    """Write a PNG of the adaptation curves: mean return of episode k, with +- one std
    band; where a result has successes, a second panel beside it gives the success rate
    of episode k (results without a success flag are left out of that panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = {label: r.success_rate for label, r in results.items() if r.success_rate is not None}
    fig, axes = plt.subplots(1, 2 if rated else 1, figsize=(11 if rated else 6, 4), squeeze=False)
    ax = axes[0, 0]
    ticks = np.arange(1, max(r.episodes for r in results.values()) + 1)
    colors = {}
    for label, result in results.items():
        k = np.arange(1, result.episodes + 1)
        (line,) = ax.plot(k, result.mean, marker="o", label=label)
        colors[label] = line.get_color()
        ax.fill_between(k, result.mean - result.std, result.mean + result.std, alpha=0.2)
    ax.set_xlabel("episode k on the task")
    ax.set_ylabel("return (mean over test tasks, +- std)")
    ax.set_xticks(ticks)
    ax.set_title(title or "Adaptation on held-out tasks")
    ax.legend()
    if rated:
        ax = axes[0, 1]
        for label, rate in rated.items():
            k = np.arange(1, len(rate) + 1)
            ax.plot(k, rate, marker="o", label=label, color=colors[label])
        ax.set_xlabel("episode k on the task")
        ax.set_ylabel("success rate (share of test tasks)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xticks(ticks)
        ax.set_title("Success: flag set at any step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
