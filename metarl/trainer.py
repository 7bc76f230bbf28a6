"""The outer loop of meta-training: sample training tasks, collect, update; log, evaluate, save.

``Trainer`` runs an ``Agent`` with a ``Sampler`` for a number of iterations. Each
iteration draws ``agent.tasks_per_iteration`` tasks from the training set (with
replacement, from the trainer's own generator) and calls ``agent.train_step`` with
the sampler's ``collect`` (by default: one trial of ``agent.episodes_per_trial``
episodes on each task, then ``agent.update``). Every
``eval_every`` iterations it runs the meta-test protocol on the test tasks;
every ``checkpoint_every`` iterations (and at the end) it writes a checkpoint
atomically. ``Trainer.resume`` continues a run from its latest checkpoint, with
the same generator states, so that a resumed run gives the numbers an
uninterrupted run would have.

Besides the files below, ``columns.md`` says what each column of ``metrics.csv``
and ``eval.csv`` holds (``TRAINER_COLUMNS``, the agent's ``metric_descriptions``,
``EVAL_COLUMN_DESCRIPTIONS``); TensorBoard gets the same scalars
(``train/<column>``, ``eval/...``) at step ``env_steps``; ``checkpoints/`` holds
``iter_XXXXXX.pt`` and ``latest``, the name of the newest. A resumed run drops what
the stopped run logged after its checkpoint (rows of the CSV files, TensorBoard
events past the checkpoint's step) before it logs those iterations again.
``load_latest_checkpoint`` skips a checkpoint that does not load (a truncated file)
or that ``latest`` names but that is missing, with a warning naming it, and uses
the newest one that loads.

Run folder (``run_dir``): ``metrics.csv`` (one row per iteration), ``eval.csv``
(one row per evaluation and episode k: return mean and std over test tasks, and the
success rate where the env gives a success flag, empty otherwise),
``eval/iter_XXXXXX.json`` (the full ``AdaptationResult``), ``tb/`` (TensorBoard),
``checkpoints/``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pickle
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from tqdm import tqdm

from metarl.agents.base import Agent
from metarl.checks import NonNegativeInt, PositiveInt, settings
from metarl.episodes import EpisodeBatch
from metarl.evaluation import AdaptationResult, evaluate_adaptation
from metarl.sampling import Sampler
from metarl.schema import RunFolderError
from metarl.tasks import Task

__all__ = [
    "EVAL_COLUMNS",
    "EVAL_COLUMN_DESCRIPTIONS",
    "TRAINER_COLUMNS",
    "TRAINER_FILES",
    "TaskSchedule",
    "Trainer",
    "TrainerConfig",
    "TrainerSection",
    "latest_checkpoint",
    "load_latest_checkpoint",
    "save_atomically",
]

METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.csv"
COLUMNS_FILE = "columns.md"
EVAL_DIR = "eval"
TB_DIR = "tb"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"


EVAL_COLUMNS = ["iteration", "env_steps", "k", "return_mean", "return_std", "success_rate"]
"""The columns of ``eval.csv``."""


def _append_csv(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    """Append ``rows`` to the CSV ``path`` with header ``columns``, writing the header to
    a new file. A file whose header is a prefix of ``columns`` (written before the
    later columns existed) is rewritten first with the full header and those columns
    empty in its rows."""
    if path.exists():
        with open(path, newline="") as f:
            old = list(csv.reader(f))
        if old and old[0] != columns:
            if old[0] != columns[: len(old[0])]:
                raise ValueError(f"{path} has the columns {old[0]}, expected {columns}")
            pad = [""] * (len(columns) - len(old[0]))
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows([columns, *(row + pad for row in old[1:])])
    else:
        rows = [columns, *rows]
    with open(path, "a", newline="") as f:
        csv.writer(f).writerows(rows)


def _rename_columns(path: Path, columns: list[str]) -> None:
    """Replace the header of the CSV ``path`` by ``columns`` (as many), keeping its rows."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([columns, *rows[1:]])
    os.replace(tmp, path)


# What a trainer writes into its run folder.
TRAINER_FILES = (METRICS_FILE, EVAL_FILE, COLUMNS_FILE, EVAL_DIR, TB_DIR, CHECKPOINT_DIR)

# The columns of metrics.csv that the trainer adds to the agent's metrics
# (``{name}``: any text; the agent's own are its ``metric_descriptions``).
TRAINER_COLUMNS: dict[str, str] = {
    "iteration": "outer-loop iteration (1 for the first)",
    "env_steps": "env steps collected for meta-training so far, this iteration's included "
    "(the TensorBoard step)",
    "wall_time": "seconds of collection and updates so far (evaluations and checkpoints "
    "not counted)",
    "randomization.{name}": "the task schedule's state after this iteration's update "
    "(its ``describe()``, e.g. a bound of automatic domain randomization)",
}
# What each of ``EVAL_COLUMNS`` holds (one row per meta-test and episode k).
EVAL_COLUMN_DESCRIPTIONS: dict[str, str] = {
    "iteration": "the iteration after which the meta-test ran",
    "env_steps": "meta-training env steps at that point",
    "k": "episode k of the K consecutive episodes on each test task (1 = before any adaptation)",
    "return_mean": "mean over the test tasks of episode k's undiscounted return",
    "return_std": "standard deviation over the test tasks of episode k's return",
    "success_rate": "share of the test tasks whose episode k succeeded (the success flag "
    "fired at any step); empty where the env gives no success flag",
}

log = logging.getLogger(__name__)


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


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _checkpoint_files(run_dir: str | Path) -> tuple[list[Path], str | None]:
    """The checkpoint files of a run folder, newest first (the one ``latest`` names
    first), and the name ``latest`` gives when that file is missing."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    files = sorted(folder.glob("iter_*.pt"), key=lambda p: (len(p.name), p.name), reverse=True)
    pointer = folder / LATEST
    if not pointer.is_file():
        return files, None
    named = folder / pointer.read_text().strip()
    if named not in files:
        return files, named.name
    return [named, *(p for p in files if p != named)], None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint file of a run folder (the one ``checkpoints/latest`` names,
    or the highest iteration when that one is missing), or ``None``. Whether it loads
    is ``load_latest_checkpoint``'s to find out."""
    files, _ = _checkpoint_files(run_dir)
    return files[0] if files else None


# What ``torch.load`` raises for a file that is not a whole checkpoint: a truncated
# zip archive (RuntimeError from PytorchStreamReader), an empty or cut pickle.
_DAMAGED = (RuntimeError, EOFError, pickle.UnpicklingError, OSError)


def load_latest_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``run_dir`` that loads, and its state; ``None`` if the
    folder holds no checkpoint file.

    A file that does not load, or a ``checkpoints/latest`` naming a missing file, is
    reported as a warning (naming the file and torch's error) and the next older
    checkpoint is used; the warning names the one used. The folder is not changed.

    Raises:
        RunFolderError: checkpoint files exist but none loads (each named, with its error).
    """
    found = _load_newest(run_dir)
    return None if found is None else found[:2]


def _load_newest(run_dir: str | Path) -> tuple[Path, dict[str, Any], list[Path]] | None:
    """``load_latest_checkpoint``'s result and the newer files that did not load."""
    files, missing = _checkpoint_files(run_dir)
    skipped, damaged = [], []
    if missing is not None:
        skipped.append(
            f"{Path(run_dir) / CHECKPOINT_DIR / LATEST} names {missing}, which is missing"
        )
    for path in files:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except _DAMAGED as err:
            skipped.append(f"{path} does not load ({type(err).__name__}: {err})")
            damaged.append(path)
            continue
        if skipped:
            log.warning(
                "%s; using %s (iteration %s), the newest checkpoint that loads",
                "; ".join(skipped),
                path,
                state.get("iteration", "?"),
            )
        return path, state, damaged
    if skipped:
        raise RunFolderError(f"{run_dir} holds no checkpoint that loads: " + "; ".join(skipped))
    return None


def _template_regex(template: str) -> re.Pattern[str]:
    """``return_k{k}`` -> a regex matching ``return_k3`` with the group ``k``."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+)" for i, p in enumerate(parts))
    )


def describe_column(name: str, descriptions: Mapping[str, str]) -> str | None:
    """The description of the column ``name`` in ``descriptions`` (keys may be templates
    such as ``return_k{k}``, whose fields fill the text), or ``None``."""
    if name in descriptions:
        return descriptions[name]
    for template, text in descriptions.items():
        match = _template_regex(template).fullmatch(name)
        if match and "{" in template:
            return text.format(**match.groupdict())
    return None


def columns_doc(metric_columns: Sequence[str], agent: Agent) -> str:
    """``columns.md``: a table of each column of ``metrics.csv`` and ``eval.csv``."""
    agent_name = type(agent).__name__
    lines = [
        "# Columns of metrics.csv and eval.csv",
        "",
        f"## {METRICS_FILE}: one row per meta-training iteration ({agent_name})",
        "",
        "Means over the iteration's training batch unless said otherwise.",
        "",
        "| column | what it holds |",
        "| --- | --- |",
    ]
    for name in metric_columns:
        text = describe_column(name, TRAINER_COLUMNS) or describe_column(
            name, agent.metric_descriptions
        )
        lines.append(
            f"| `{name}` | {text or f'not described by {agent_name}.metric_descriptions'} |"
        )
    lines += [
        "",
        f"## {EVAL_FILE}: one row per meta-test (every `eval_every` iterations and at the "
        "end) and episode k",
        "",
        "Each meta-test here starts its episodes where the previous one's random stream "
        "ended, so two rows differ in start states as well as in the policy. The final "
        "meta-test of `report.md` and `results.json` runs on start states that every "
        "method (the baselines too) shares, and so differs from the last row here.",
        "",
        "| column | what it holds |",
        "| --- | --- |",
        *(
            f"| `{name}` | {EVAL_COLUMN_DESCRIPTIONS.get(name, 'not described')} |"
            for name in EVAL_COLUMNS
        ),
        "",
    ]
    return "\n".join(lines)


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
        agent: the learner.
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
        self._metric_keys: list[str] | None = None
        self._writer: Any = None

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
                    step = self.agent.train_step(self.sampler.collect, tasks)
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
                self._log(metrics)
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
            if self._writer is not None:
                self._writer.flush()
        return metrics

    def _scheduled_step(self, n: int) -> Any:
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

        return self.agent.train_step(collect, tasks)

    def evaluate(self) -> AdaptationResult:
        """Run the meta-test protocol on the test tasks now; log and keep the result."""
        result = evaluate_adaptation(
            self.agent, self.eval_sampler, self.test_tasks, self.config.eval_episodes
        )
        self.evaluations[self.iteration] = result
        path = self.run_dir / "eval" / f"iter_{self.iteration:06d}.json"
        path.parent.mkdir(exist_ok=True)
        _write_text_atomically(path, json.dumps(result.to_dict()))
        rate = result.success_rate
        rates = [""] * result.episodes if rate is None else rate.tolist()
        _append_csv(
            self.run_dir / EVAL_FILE,
            EVAL_COLUMNS,
            [
                [self.iteration, self.env_steps, k + 1, m, s, r]
                for k, (m, s, r) in enumerate(zip(result.mean, result.std, rates, strict=True))
            ],
        )
        tb = self._tensorboard()
        for k, m in enumerate(result.mean):
            tb.add_scalar(f"eval/return_k{k + 1}", m, self.env_steps)
        for k, r in enumerate([] if rate is None else rate):
            tb.add_scalar(f"eval/success_rate_k{k + 1}", r, self.env_steps)
        return result

    # ------------------------------------------------------------------ logging

    def _tensorboard(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / TB_DIR))
        return self._writer

    def _log(self, metrics: dict[str, float]) -> None:
        path = self.run_dir / METRICS_FILE
        row = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "wall_time": round(self.wall_time, 3),
            **metrics,
        }
        if self._metric_keys is None:
            if path.exists():
                with open(path, newline="") as f:
                    self._metric_keys = next(csv.reader(f))
                renamed = [self.agent.renamed_metrics.get(k, k) for k in self._metric_keys]
                if renamed != self._metric_keys and set(renamed) == set(row):
                    _rename_columns(path, renamed)
                    self._metric_keys = renamed
            else:
                self._metric_keys = list(row)
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerow(self._metric_keys)
            _write_text_atomically(
                self.run_dir / COLUMNS_FILE, columns_doc(self._metric_keys, self.agent)
            )
        if set(row) != set(self._metric_keys):
            raise ValueError(
                f"metrics changed keys between iterations: {sorted(row)} vs "
                f"{sorted(self._metric_keys)} (an agent must return the same metrics every update)"
            )
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in self._metric_keys])
        tb = self._tensorboard()
        for key, value in metrics.items():
            tb.add_scalar(f"train/{key}", value, self.env_steps)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The trainer's and the agent's state, as a checkpoint holds it."""
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "wall_time": self.wall_time,
            "rng": self.rng.bit_generator.state,
            "sampler_calls": getattr(self.sampler, "calls", None),
            "eval_sampler_calls": getattr(self.eval_sampler, "calls", None),
            "config": asdict(self.config),
            "agent": self.agent.state_dict(),
            "evaluations": {i: r.to_dict() for i, r in self.evaluations.items()},
            "schedule": self.schedule,
        }

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/iter_XXXXXX.pt`` atomically and point ``latest`` at it."""
        folder = self.run_dir / CHECKPOINT_DIR
        path = folder / f"iter_{self.iteration:06d}.pt"
        save_atomically(self.state_dict(), path)
        _write_text_atomically(folder / LATEST, path.name)
        for old in sorted(folder.glob("iter_*.pt"))[: -self.config.keep_checkpoints]:
            old.unlink()
        return path

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
        if state["sampler_calls"] is not None:
            self.sampler.calls = state["sampler_calls"]  # type: ignore[attr-defined]
        if state["eval_sampler_calls"] is not None and self.eval_sampler is not self.sampler:
            self.eval_sampler.calls = state["eval_sampler_calls"]  # type: ignore[attr-defined]
        self.agent.load_state_dict(state["agent"])
        if self.schedule is not None:
            if state.get("schedule") is None:
                raise ValueError(f"{path} was saved without a task schedule; this trainer has one")
            self.schedule = state["schedule"]
        self.evaluations = {
            int(i): AdaptationResult.from_dict(r) for i, r in state["evaluations"].items()
        }

    def _truncate_logs(self) -> None:
        """Drop log rows written after the checkpoint (a run stopped between checkpoints)."""
        for name in (METRICS_FILE, EVAL_FILE):
            path = self.run_dir / name
            if not path.exists():
                continue
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= self.iteration]
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows(kept)

    def _truncate_tensorboard(self) -> None:
        """Drop the TensorBoard events after the checkpoint's step from the event files
        (a run stopped between checkpoints wrote them; this run writes them again)."""
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        for path in sorted((self.run_dir / TB_DIR).glob("events.out.tfevents.*")):
            records = list(RawEventFileLoader(str(path)).Load())
            kept = [
                r
                for r in records
                if (event := Event.FromString(r)).step <= self.env_steps or event.file_version
            ]
            if len(kept) == len(records):
                continue
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            with open(tmp, "wb") as f:
                writer = RecordWriter(f)
                for record in kept:
                    writer.write(record)
            os.replace(tmp, path)

    def resume(self) -> bool:
        """Load the newest checkpoint of ``run_dir`` that loads (``load_latest_checkpoint``)
        if there is one; return whether it did. The run folder's logs lose the rows and
        TensorBoard events written after that checkpoint, and newer checkpoint files
        that do not load are renamed ``<name>.damaged``.

        Raises:
            RunFolderError: checkpoint files exist but none loads.
        """
        found = _load_newest(self.run_dir)
        if found is None:
            return False
        path, state, damaged = found
        self._restore(state, path)
        # The run goes on from here: what was logged after the checkpoint is written
        # again, and newer files that do not load are set aside (kept, renamed), so that
        # they are neither loaded again nor kept by pruning in place of good ones.
        self._truncate_logs()
        self._truncate_tensorboard()
        for bad in damaged:
            aside = bad.with_name(bad.name + ".damaged")
            os.replace(bad, aside)
            log.warning("%s set aside as %s", bad, aside.name)
        return True
