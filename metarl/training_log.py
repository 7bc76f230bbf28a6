"""What the trainer logs into a run folder: ``metrics.csv``, ``eval.csv``, ``eval/``,
``tb/`` and ``columns.md``.

- ``metrics.csv``: one row per iteration (``TRAINER_COLUMNS`` and the agent's
  metrics);
- ``eval.csv``: one row per meta-test and episode k (``EVAL_COLUMNS``: return mean
  and std over test tasks, and the success rate where the env gives a success flag,
  empty otherwise); ``eval/iter_XXXXXX.json``: the full ``AdaptationResult``;
- ``tb/``: TensorBoard, the same scalars (``train/<column>``, ``eval/...``) at step
  ``env_steps``;
- ``columns.md``: what each column of ``metrics.csv`` and ``eval.csv`` holds
  (``TRAINER_COLUMNS``, the agent's ``metric_descriptions``,
  ``EVAL_COLUMN_DESCRIPTIONS``).

``TrainingLog.truncate`` drops what a stopped run logged after its checkpoint (rows
of the CSV files, TensorBoard events past the checkpoint's step), so that a resumed
run logs those iterations again in their place.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metarl.agents.base import Agent
from metarl.checkpoints import write_text_atomically
from metarl.evaluation import AdaptationResult

__all__ = [
    "EVAL_COLUMNS",
    "EVAL_COLUMN_DESCRIPTIONS",
    "LOG_FILES",
    "TRAINER_COLUMNS",
    "TrainingLog",
    "columns_doc",
    "describe_column",
]

METRICS_FILE = "metrics.csv"
EVAL_FILE = "eval.csv"
COLUMNS_FILE = "columns.md"
EVAL_DIR = "eval"
TB_DIR = "tb"
# What a training log writes into its run folder.
LOG_FILES = (METRICS_FILE, EVAL_FILE, COLUMNS_FILE, EVAL_DIR, TB_DIR)


EVAL_COLUMNS = ["iteration", "env_steps", "k", "return_mean", "return_std", "success_rate"]
"""The columns of ``eval.csv``."""

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


class TrainingLog:
    """The training logs of ``run_dir`` for ``agent`` (its metric names and their
    descriptions): ``metrics.csv``, ``eval.csv``, ``eval/``, ``tb/``, ``columns.md``.

    The TensorBoard writer opens on the first scalar; ``flush`` writes out its events.
    """

    def __init__(self, run_dir: Path, agent: Agent):
        self.run_dir = run_dir
        self.agent = agent
        self._metric_keys: list[str] | None = None
        self._writer: Any = None

    def _tensorboard(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / TB_DIR))
        return self._writer

    def flush(self) -> None:
        """Write out the TensorBoard events logged so far."""
        if self._writer is not None:
            self._writer.flush()

    def iteration(
        self, iteration: int, env_steps: int, wall_time: float, metrics: dict[str, float]
    ) -> None:
        """A row of ``metrics.csv`` and ``train/<metric>`` scalars at step ``env_steps``.

        The first row of a run fixes the columns (a resumed run's are those of its
        ``metrics.csv``, renamed by the agent's ``renamed_metrics`` where that gives
        this row's) and writes ``columns.md``.

        Raises:
            ValueError: the metrics' keys differ from the first row's.
        """
        path = self.run_dir / METRICS_FILE
        row = {
            "iteration": iteration,
            "env_steps": env_steps,
            "wall_time": round(wall_time, 3),
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
            write_text_atomically(
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
            tb.add_scalar(f"train/{key}", value, env_steps)

    def evaluation(self, iteration: int, env_steps: int, result: AdaptationResult) -> None:
        """A meta-test after ``iteration``: ``eval/iter_XXXXXX.json``, its rows of
        ``eval.csv`` and ``eval/return_k<k>`` (and ``eval/success_rate_k<k>``) scalars."""
        path = self.run_dir / EVAL_DIR / f"iter_{iteration:06d}.json"
        path.parent.mkdir(exist_ok=True)
        write_text_atomically(path, json.dumps(result.to_dict()))
        rate = result.success_rate
        rates = [""] * result.episodes if rate is None else rate.tolist()
        _append_csv(
            self.run_dir / EVAL_FILE,
            EVAL_COLUMNS,
            [
                [iteration, env_steps, k + 1, m, s, r]
                for k, (m, s, r) in enumerate(zip(result.mean, result.std, rates, strict=True))
            ],
        )
        tb = self._tensorboard()
        for k, m in enumerate(result.mean):
            tb.add_scalar(f"eval/return_k{k + 1}", m, env_steps)
        for k, r in enumerate([] if rate is None else rate):
            tb.add_scalar(f"eval/success_rate_k{k + 1}", r, env_steps)

    def truncate(self, iteration: int, env_steps: int) -> None:
        """Drop what was logged after a checkpoint of ``iteration`` at ``env_steps``: the
        rows of ``metrics.csv`` and ``eval.csv`` of later iterations and the TensorBoard
        events past ``env_steps`` (a run stopped between checkpoints wrote them; the
        resumed run writes them again)."""
        self._truncate_csv(iteration)
        self._truncate_tensorboard(env_steps)

    def _truncate_csv(self, iteration: int) -> None:
        for name in (METRICS_FILE, EVAL_FILE):
            path = self.run_dir / name
            if not path.exists():
                continue
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= iteration]
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows(kept)

    def _truncate_tensorboard(self, env_steps: int) -> None:
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        for path in sorted((self.run_dir / TB_DIR).glob("events.out.tfevents.*")):
            records = list(RawEventFileLoader(str(path)).Load())
            kept = [
                r
                for r in records
                if (event := Event.FromString(r)).step <= env_steps or event.file_version
            ]
            if len(kept) == len(records):
                continue
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            with open(tmp, "wb") as f:
                writer = RecordWriter(f)
                for record in kept:
                    writer.write(record)
            os.replace(tmp, path)
