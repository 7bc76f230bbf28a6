"""A run folder: the files a run writes there, making one, what may be written into one,
the config a resumed run may use, and where a stopped run stands.

Besides the ``Trainer``'s files (``metrics.csv``, ``eval.csv``, ``eval/``, ``tb/``,
``columns.md``, ``checkpoints/``), a run folder holds:

- ``config.yaml``: the resolved config (``metarl train config.yaml`` reruns it);
- ``workers.json``: each Ray worker's node, process and peak memory (Ray runs only);
- ``baselines/<name>.pt``: the trained baselines (``metarl.baseline_cache``);
- ``results.json``, ``adaptation.png``, ``report.md``: the final meta-test
  (``metarl.runner``, ``metarl.report``);
- ``reevaluations/iteration<N>_episodes<K>_seed<S>/``: re-runs of the final meta-test
  (``metarl eval``).

A new run refuses a folder that holds another run's files (a run stopped before its
first checkpoint included): it never appends to another run's logs. A resumed run may
change only ``RESUMABLE_FIELDS`` of the config it was started with.
"""

from __future__ import annotations

import csv
import json
import logging
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from metarl.checkpoints import latest_checkpoint
from metarl.config import ConfigError, ExperimentConfig, config_to_yaml, load_config
from metarl.sampling import Sampler
from metarl.schema import RunFolderError
from metarl.trainer import TRAINER_FILES
from metarl.training_log import METRICS_FILE

__all__ = [
    "RESUMABLE_FIELDS",
    "RUN_FILES",
    "load_run_config",
    "make_run_dir",
    "open_run_dir",
    "record_workers",
    "reevaluation_dir",
    "stopped_message",
    "write_config",
]

CONFIG_FILE = "config.yaml"
WORKERS_FILE = "workers.json"  # Ray workers' nodes, processes and peak memory
RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
PLOT_FILE = "adaptation.png"
BASELINE_DIR = "baselines"
REEVALUATION_DIR = "reevaluations"
# Everything a run writes into its folder.
RUN_FILES = (
    CONFIG_FILE,
    WORKERS_FILE,
    RESULTS_FILE,
    REPORT_FILE,
    PLOT_FILE,
    BASELINE_DIR,
    REEVALUATION_DIR,
    *TRAINER_FILES,
)

# Config fields a resumed run may change: how long and how often, how it is
# evaluated, and where the sampler runs (the Ray and the local sampler give the
# same batches for the same ``num_envs``). Everything else would make the
# checkpoint mean something else.
RESUMABLE_FIELDS = (
    "trainer.iterations",
    "trainer.eval_every",
    "trainer.checkpoint_every",
    "trainer.keep_checkpoints",
    "trainer.progress",
    "sampler.kind",
    "sampler.num_workers",
    "sampler.cpus_per_worker",
    "sampler.placement",
    "ray.*",
    "sampler.vectorization",
    "evaluation.*",
    "run.root",
    "run.name",
)


log = logging.getLogger(__name__)


def make_run_dir(config: ExperimentConfig, now: datetime | None = None) -> Path:
    """Create and return ``<run.root>/<run.name>-<YYYYmmdd-HHMMSS>`` (``-2``, ... if taken)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(config.run.root) / f"{config.run.name}-{stamp}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def open_run_dir(config: ExperimentConfig, run_dir: str | Path | None, resume: bool) -> Path:
    """The folder a run writes into: ``run_dir`` (created if missing), or a new
    ``make_run_dir`` folder when ``run_dir`` is ``None``; with ``resume``, ``run_dir``
    as it is.

    Raises:
        RunFolderError: ``resume`` without a ``run_dir`` that holds a checkpoint, or a
            new run in a folder that holds another run's files (or in a file).
    """
    if resume:
        if run_dir is None or latest_checkpoint(run_dir) is None:
            raise RunFolderError(f"nothing to resume: {run_dir} holds no checkpoint")
        return Path(run_dir)
    if run_dir is None:
        return make_run_dir(config)
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a folder for a run")
    if latest_checkpoint(run_dir) is not None:
        raise RunFolderError(
            f"{run_dir} already holds a run; resume it (metarl train --resume {run_dir}) "
            "or choose another folder"
        )
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        raise RunFolderError(
            f"{run_dir} holds files of a run that has no checkpoint ({', '.join(found)}): "
            "nothing to resume, and a new run would mix its logs with them; delete "
            "the folder or choose another one"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_config(config: ExperimentConfig, run_dir: Path) -> None:
    """Write ``config.yaml``: the resolved config, every default filled in."""
    (run_dir / CONFIG_FILE).write_text(
        "# The resolved config of this run (every default filled in); "
        f"`metarl train {CONFIG_FILE}` reruns it.\n" + config_to_yaml(config)
    )


def reevaluation_dir(run_dir: Path, iteration: int, episodes: int, seed: int | None) -> Path:
    """``run_dir/reevaluations/iteration<N>_episodes<K>_seed<S>/`` (created): where
    ``metarl eval`` writes its re-run of the final meta-test of the checkpoint of
    iteration N with K episodes per task and the meta-test sampler seed S."""
    out_dir = run_dir / REEVALUATION_DIR / f"iteration{iteration}_episodes{episodes}_seed{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


# --------------------------------------------------------------------------- configs of runs


def load_run_config(
    run_dir: str | Path, config_path: str | Path | None = None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """The config to resume ``run_dir`` with: its ``config.yaml`` (or ``config_path``)
    with ``overrides``, which may change only ``RESUMABLE_FIELDS``. The run's own
    ``config.yaml`` is read with keys renamed since it was written under their new names.

    Raises:
        RunFolderError: ``run_dir`` does not exist or has no ``config.yaml``.
        ConfigError: an invalid config, or a change to a field that a resumed run
            cannot change (named, with both values).
    """
    run_dir = Path(run_dir)
    saved_path = run_dir / CONFIG_FILE
    if not run_dir.exists():
        raise RunFolderError(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is not a run folder: it is a file")
    if not saved_path.is_file():
        raise RunFolderError(f"{run_dir} is not a run folder: it has no {CONFIG_FILE}")
    saved = load_config(saved_path, run_folder=True)
    given = saved_path if config_path is None else config_path
    config = load_config(given, overrides, run_folder=config_path is None)
    changed = [
        f"{key}: the run has {old!r}, given {new!r}"
        for key, (old, new) in _differences(saved.to_dict(), config.to_dict()).items()
        if not _resumable(key)
    ]
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir} with a different config:\n  "
            + "\n  ".join(changed)
            + f"\n  (a resumed run may change only {', '.join(RESUMABLE_FIELDS)})"
        )
    return config


def _resumable(key: str) -> bool:
    return any(
        key == field or (field.endswith(".*") and key.startswith(field[:-1]))
        for field in RESUMABLE_FIELDS
    )


def _differences(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping) and path != "env.kwargs":
            out.update(_differences(a, b, path + "."))
        elif a != b:
            out[path] = (a, b)
    return out


# --------------------------------------------------------------------------- stopped runs


def stopped_message(config: ExperimentConfig, run_dir: Path) -> str:
    """Where a run stopped by Ctrl-C stands, from its folder, and what to do next."""
    done = 0
    if (run_dir / METRICS_FILE).is_file():
        with open(run_dir / METRICS_FILE, newline="") as f:
            rows = [row for row in csv.reader(f) if row]
        done = int(rows[-1][0]) if len(rows) > 1 else 0
    where = f"at iteration {done} of {config.trainer.iterations}"
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return (
            f"stopped (Ctrl-C) {where}, before the run's first checkpoint: nothing to "
            f"resume; delete {run_dir} to start the run there again"
        )
    saved = checkpoint.relative_to(run_dir)
    if done == config.trainer.iterations and not (run_dir / RESULTS_FILE).exists():
        where = f"in the final meta-test, after iteration {done} of {done}"
    # The command as the user typed it (.venv/bin/metarl), where the command line runs.
    program = sys.argv[0] if Path(sys.argv[0]).name == "metarl" else "metarl"
    return (
        f"stopped (Ctrl-C) {where}; newest checkpoint: {saved}; resume with: "
        f"{shlex.quote(program)} train --resume {shlex.quote(str(run_dir))}"
    )


def record_workers(sampler: Sampler, run_dir: Path) -> None:
    """Write ``workers.json``: each worker's node, process and peak memory
    (``Sampler.worker_info``); nothing for a sampler without workers. A sampler that
    cannot say (a failed run's) is named in a warning: the run's own error matters more
    than this record."""
    try:
        workers = sampler.worker_info()
    except Exception as err:
        log.warning("could not record the Ray workers: %s: %s", type(err).__name__, err)
        return
    if workers:
        (run_dir / WORKERS_FILE).write_text(
            json.dumps([w._asdict() for w in workers], indent=2) + "\n"
        )
