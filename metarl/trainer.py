"""The outer loop of meta-training: sample training tasks, collect, update; log, evaluate, save.

``Trainer`` runs an agent with a ``Sampler`` for a number of iterations. Each
iteration draws ``agent.tasks_per_iteration`` tasks from the training set (with
replacement, from the trainer's own generator) and runs one iteration of the agent
as its kind says (``metarl.agents.base``): for a ``BatchAgent``, one trial of
``agent.episodes_per_trial`` episodes on each task through the sampler's ``collect``,
then ``agent.update``; for a ``TrainStepAgent``, ``agent.train_step`` with the
sampler's ``collect``. Every ``eval_every`` iterations it runs the meta-test protocol
on the test tasks; every ``checkpoint_every`` iterations (and at the end) it writes a
checkpoint atomically. ``Trainer.resume`` continues a run from its latest checkpoint,
with the same generator states and sampler call counters, so that a resumed run
gives the numbers an uninterrupted run would have.

Run folder (``run_dir``): the logs of ``metarl.training_log`` (``metrics.csv``,
``eval.csv``, ``eval/``, ``tb/``, ``columns.md``) and the checkpoints of
``metarl.checkpoints`` (``checkpoints/iter_XXXXXX.pt`` and ``latest``). A resumed run
drops what the stopped run logged after its checkpoint before it logs those
iterations again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from tqdm import tqdm

from metarl.agents.base import (
    Agent,
    BatchAgent,
    CollectFn,
    TrainStep,
    TrainStepAgent,
    return_metrics,
)
from metarl.checkpoints import CHECKPOINT_DIR, load_newest, set_aside, write_checkpoint
from metarl.checks import NonNegativeInt, PositiveInt, settings
from metarl.episodes import EpisodeBatch
from metarl.evaluation import AdaptationResult, evaluate_adaptation
from metarl.sampling import Sampler
from metarl.tasks import Task
from metarl.training_log import LOG_FILES, TrainingLog

__all__ = [
    "TRAINER_FILES",
    "TaskSchedule",
    "Trainer",
    "TrainerConfig",
    "TrainerSection",
]

# What a trainer writes into its run folder.
TRAINER_FILES = (*LOG_FILES, CHECKPOINT_DIR)


@settings
class TrainerSection:
    """How long to train and how often to evaluate and save: the ``trainer`` section of
    an experiment config (``TrainerConfig`` adds K of the evaluations, which the
    experiment takes from ``evaluation.episodes``)."""

    iterations: PositiveInt = 100
    """Outer-loop iterations in total (a resumed run stops at the same number)."""
    eval_every: NonNegativeInt = 10
    """Run the meta-test protocol every this many iterations (0: only at the end)."""
    checkpoint_every: NonNegativeInt = 10
    """Write a checkpoint every this many iterations (and always at the end)."""
    keep_checkpoints: PositiveInt = 2
    """How many of the newest checkpoints to keep."""
    seed: NonNegativeInt = 0
    """Seed of the trainer's generator (which training tasks each iteration uses; in an
    experiment config, default: ``run.seed``)."""
    progress: bool = True
    """Show a progress bar (env steps, iteration, latest returns)."""


@settings
class TrainerConfig(TrainerSection):
    """How long to train and how often to evaluate and save."""

    eval_episodes: PositiveInt = 3
    """K: consecutive episodes per test task in the meta-test protocol."""


@runtime_checkable
class TaskSchedule(Protocol):
    """Where the training tasks come from when they adapt to the agent's results
    (``metarl.sim2real.adaptive``: automatic DR, DORAEMON): the trainer draws each
    iteration's tasks from it, records every training episode's return on its task,
    and updates it after the iteration."""

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[Any]: ...

    def record(self, tasks: Sequence[Any], returns: Sequence[float]) -> None: ...

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> bool: ...

    def describe(self) -> dict[str, float]: ...


class Trainer:
    """Meta-trains ``agent`` on ``train_tasks``, evaluating on ``test_tasks``.

    Args:
        agent: the learner, a ``BatchAgent`` or a ``TrainStepAgent``.
        sampler: collects meta-training episodes.
        train_tasks, test_tasks: the task sets (e.g. ``TaskDistribution.task_sets``).
        run_dir: the run folder (created).
        config: iterations, evaluation and checkpoint intervals, seed.
        eval_sampler: collects meta-test episodes (default: ``sampler``).
        callbacks: called as ``callback(trainer, metrics)`` after every iteration.
        schedule: draw the training tasks from this ``TaskSchedule`` instead of
            ``train_tasks``, record every training episode in it and update it after
            each iteration; its ``describe()`` is logged as ``randomization.<key>``
            metrics, and it is saved in checkpoints.

    Raises:
        TypeError: ``agent`` is of neither learner kind (a baseline).
        ValueError: no training task or no test task.
    """

    def __init__(
        self,
        agent: Agent,
        sampler: Sampler,
        train_tasks: Sequence[Task],
        test_tasks: Sequence[Task],
        run_dir: str | Path,
        config: TrainerConfig | None = None,
        *,
        eval_sampler: Sampler | None = None,
        callbacks: Sequence[Callable[[Trainer, dict[str, float]], None]] = (),
        schedule: TaskSchedule | None = None,
    ):
        if not isinstance(agent, BatchAgent | TrainStepAgent):
            raise TypeError(
                f"Trainer needs a BatchAgent (it learns from one batch per iteration, "
                f"update) or a TrainStepAgent (it drives its own train_step); "
                f"{type(agent).__name__} is neither"
            )
        if len(train_tasks) == 0 or len(test_tasks) == 0:
            raise ValueError("Trainer needs at least one training task and one test task")
        self.agent = agent
        self.sampler = sampler
        self.eval_sampler = eval_sampler or sampler
        self.train_tasks = list(train_tasks)
        self.test_tasks = list(test_tasks)
        self.run_dir = Path(run_dir)
        self.config = config or TrainerConfig()
        self.callbacks = list(callbacks)
        self.schedule = schedule
        self.rng = np.random.default_rng(self.config.seed)
        self.iteration = 0
        self.env_steps = 0
        self.wall_time = 0.0
        self.evaluations: dict[int, AdaptationResult] = {}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.training_log = TrainingLog(self.run_dir, agent)

    # ------------------------------------------------------------------ loop

    def train(self) -> dict[str, float]:
        """Run the remaining iterations; return the last iteration's metrics."""
        cfg = self.config
        metrics: dict[str, float] = {}
        bar = tqdm(
            total=cfg.iterations,
            initial=self.iteration,
            disable=not cfg.progress,
            unit="it",
            dynamic_ncols=True,
        )
        try:
            if self.iteration == 0 and self.env_steps == 0:
                start = time.perf_counter()
                self.env_steps += int(self.agent.prepare(self.sampler.collect, self.train_tasks))
                self.wall_time += time.perf_counter() - start
            while self.iteration < cfg.iterations:
                start = time.perf_counter()
                n = self.agent.tasks_per_iteration
                if self.schedule is None:
                    tasks = [
                        self.train_tasks[i]
                        for i in self.rng.integers(len(self.train_tasks), size=n)
                    ]
                    step = self._step(self.sampler.collect, tasks)
                else:
                    step = self._scheduled_step(n)
                self.iteration += 1
                self.env_steps += int(step.env_steps)
                metrics = {k: float(v) for k, v in step.metrics.items()}
                if self.schedule is not None:
                    self.schedule.update(self.iteration, metrics)
                    metrics |= {
                        f"randomization.{k}": v for k, v in self.schedule.describe().items()
                    }
                self.wall_time += time.perf_counter() - start
                self.training_log.iteration(self.iteration, self.env_steps, self.wall_time, metrics)
                bar.update(1)
                bar.set_postfix(
                    env_steps=self.env_steps, ret=f"{metrics.get('return_mean', np.nan):.2f}"
                )
                last = self.iteration == cfg.iterations
                if (cfg.eval_every and self.iteration % cfg.eval_every == 0) or last:
                    result = self.evaluate()
                    bar.set_postfix(
                        env_steps=self.env_steps,
                        ret=f"{metrics.get('return_mean', np.nan):.2f}",
                        test=" ".join(f"{m:.1f}" for m in result.mean),
                    )
                if (cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0) or last:
                    self.save_checkpoint()
                for callback in self.callbacks:
                    callback(self, metrics)
        finally:
            bar.close()
            self.training_log.flush()
        return metrics

    def _step(self, collect: CollectFn, tasks: Sequence[Task]) -> TrainStep:
        """One iteration of the agent on ``tasks``, as its kind runs: a ``BatchAgent``
        gets one trial of ``episodes_per_trial`` episodes per task collected with its
        policy and updates from it (metrics: the batch's returns and the update's); a
        ``TrainStepAgent`` runs its ``train_step``."""
        agent = self.agent
        if isinstance(agent, BatchAgent):
            batch = collect(agent.policy(), tasks, agent.episodes_per_trial)
            update = agent.update(batch)
            return TrainStep(batch.num_steps, {**return_metrics(batch), **update})
        assert isinstance(agent, TrainStepAgent)
        return agent.train_step(collect, tasks)

    def _scheduled_step(self, n: int) -> TrainStep:
        """One iteration on tasks from the schedule; every episode collected goes back to it."""
        assert self.schedule is not None
        schedule = self.schedule
        tasks = schedule.sample_tasks(self.rng, n)

        def collect(policy: Any, tasks: Sequence[Task], episodes_per_trial: int) -> EpisodeBatch:
            batch = self.sampler.collect(policy, tasks, episodes_per_trial)
            schedule.record(
                [e.task for e in batch.episodes], [float(e.rewards.sum()) for e in batch.episodes]
            )
            return batch

        return self._step(collect, tasks)

    def evaluate(self) -> AdaptationResult:
        """Run the meta-test protocol on the test tasks now; log and keep the result."""
        result = evaluate_adaptation(
            self.agent, self.eval_sampler, self.test_tasks, self.config.eval_episodes
        )
        self.evaluations[self.iteration] = result
        self.training_log.evaluation(self.iteration, self.env_steps, result)
        return result

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The trainer's and the agent's state, as a checkpoint holds it."""
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "wall_time": self.wall_time,
            "rng": self.rng.bit_generator.state,
            "sampler_calls": self.sampler.calls,
            "eval_sampler_calls": self.eval_sampler.calls,
            "config": asdict(self.config),
            "agent": self.agent.state_dict(),
            "evaluations": {i: r.to_dict() for i, r in self.evaluations.items()},
            "schedule": self.schedule,
        }

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/iter_XXXXXX.pt`` atomically and point ``latest`` at it."""
        return write_checkpoint(
            self.run_dir, self.iteration, self.state_dict(), self.config.keep_checkpoints
        )

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore the trainer, the agent and the samplers' call counters from ``path``.

        The run folder is left as it is (``resume`` also drops what was logged after
        the checkpoint).
        """
        self._restore(torch.load(path, map_location="cpu", weights_only=False), path)

    def _restore(self, state: dict[str, Any], path: str | Path) -> None:
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.wall_time = float(state["wall_time"])
        self.rng.bit_generator.state = state["rng"]
        # None: the checkpoint's sampler counted no calls; this one keeps its own count.
        if state["sampler_calls"] is not None:
            self.sampler.calls = state["sampler_calls"]
        if state["eval_sampler_calls"] is not None and self.eval_sampler is not self.sampler:
            self.eval_sampler.calls = state["eval_sampler_calls"]
        self.agent.load_state_dict(state["agent"])
        if self.schedule is not None:
            if state.get("schedule") is None:
                raise ValueError(f"{path} was saved without a task schedule; this trainer has one")
            self.schedule = state["schedule"]
        self.evaluations = {
            int(i): AdaptationResult.from_dict(r) for i, r in state["evaluations"].items()
        }

    def resume(self) -> bool:
        """Load the newest checkpoint of ``run_dir`` that loads (``load_latest_checkpoint``)
        if there is one; return whether it did. The run folder's logs lose the rows and
        TensorBoard events written after that checkpoint, and newer checkpoint files
        that do not load are renamed ``<name>.damaged``.

        Raises:
            RunFolderError: checkpoint files exist but none loads.
        """
        found = load_newest(self.run_dir)
        if found is None:
            return False
        path, state, damaged = found
        self._restore(state, path)
        # The run goes on from here: what was logged after the checkpoint is written
        # again, and newer files that do not load are set aside (kept, renamed).
        self.training_log.truncate(self.iteration, self.env_steps)
        set_aside(damaged)
        return True
