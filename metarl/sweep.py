"""Studies: grid or random search over config fields with Ray Tune (``metarl sweep STUDY.yaml``).

A study file names an experiment config and the fields to vary::

    study:
      name: rl2_width                    # the study folder: <root>/<name>
      experiment: rl2_point_robot.yaml   # relative to the study file's folder
      overrides: [trainer.iterations=20] # fixed changes of the experiment config
      search: grid                       # grid: every combination; random: num_samples draws
      num_samples: 1                     # random: trials; grid: repeats of the grid
      parameters:                        # dotted config fields
        agent.hidden_size: [32, 64]      # a list: grid values (random search: a choice)
        agent.learning_rate: {loguniform: [1.0e-4, 1.0e-2]}  # random search only
        run.seed: [0, 1, 2]
      metric: agent.return_last          # what the report compares (see trial_metrics);
                                         # a list: a table and a plot for each
      mode: max
      cpus_per_trial: 1                  # CPUs Ray reserves per trial (trials run in parallel)
      max_concurrent: null               # at most this many at once (null: as CPUs allow)
      max_failures: 1                    # a failed trial is retried this many times
      root: runs/studies
      x: agent.hidden_size               # the report's x axis (default: first non-seed field)
      seed_field: run.seed               # averaged over in the report (CIs across seeds)

Every trial is a normal run folder, ``<study>/trials/<index>-<fields>``, made by
``metarl.runner.run_experiment``; a retried trial resumes from that folder's latest
checkpoint when it has one, so the attempt before the failure is not lost. The
study is resumable: running the same command again continues it (Tune's
``Tuner.restore``: finished trials are kept, unfinished and errored ones run again).
At the end, ``<study>/report.md``, ``trials.csv`` (one row per trial: its fields and
metrics), ``summary.csv`` (per combination of the non-seed fields: mean, standard
deviation, count and 95% confidence interval over seeds, Student t) and a plot of
the metric against ``x`` per combination of the other fields.

Before anything runs, every trial's config is built and validated, so that a bad
field or value stops the study with the config error (naming the field).
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from unittest import mock

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from metarl.checks import is_real
from metarl.config import ConfigError, load_config, read_yaml, validation_message

__all__ = [
    "StudyConfig",
    "load_study",
    "run_study",
    "study_report",
    "trial_metrics",
    "trial_name",
]

log = logging.getLogger(__name__)

TRIALS_DIR = "trials"
TUNE_DIR = "tune"
REPORT_FILE = "report.md"
SAMPLERS = ("uniform", "loguniform", "randint", "choice")


class StudyConfig(BaseModel):
    """The ``study`` section of a study file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=r"^[\w.+-]+$")
    """Study folder name under ``root`` (letters, digits, ``_.+-``)."""
    experiment: str
    """The experiment config (a path, relative to the study file's folder)."""
    overrides: list[str] = Field(default_factory=list)
    """``key.sub=value`` changes applied to the experiment config in every trial."""
    parameters: dict[str, list[Any] | dict[str, list[Any]]]
    """Dotted config field -> a list of values, or ``{SAMPLER: [...]}`` (see ``SAMPLERS``)."""
    search: Literal["grid", "random"] = "grid"
    num_samples: int = Field(default=1, ge=1)
    """Random search: trials drawn; grid: repeats of the whole grid."""
    metric: str | list[str] = "agent.return_last"
    """What the report compares (``trial_metrics``' keys); a list: a table and a plot
    for each, the first one deciding the best setting."""
    mode: Literal["max", "min"] = "max"
    cpus_per_trial: float = Field(default=1.0, gt=0)
    max_concurrent: int | None = Field(default=None, ge=1)
    max_failures: int = Field(default=1, ge=0)
    """Retries of a failed trial (0: none)."""
    root: str = "runs/studies"
    x: str | None = None
    """The report's x axis (a field of ``parameters``; default: the first non-seed one)."""
    seed_field: str = "run.seed"
    """The field the report averages over."""

    @property
    def metrics(self) -> list[str]:
        """``metric`` as a list."""
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    @field_validator("metric")
    @classmethod
    def _some_metric(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError(f"give one metric or a list of distinct ones, got {value!r}")
        return value

    @field_validator("parameters")
    @classmethod
    def _check_parameters(
        cls, value: dict[str, list[Any] | dict[str, list[Any]]]
    ) -> dict[str, list[Any] | dict[str, list[Any]]]:
        if not value:
            raise ValueError("give at least one field to vary")
        for key, spec in value.items():
            if isinstance(spec, list):
                if not spec:
                    raise ValueError(f"{key}: an empty list of values")
                continue
            if len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
                raise ValueError(
                    f"{key}: a list of values or one of {{{', '.join(SAMPLERS)}: [...]}}, "
                    f"got {spec!r}"
                )
            kind, args = next(iter(spec.items()))
            if kind != "choice" and len(args) != 2:
                raise ValueError(f"{key}: {kind} takes [low, high], got {args!r}")
            if kind == "choice" and not args:
                raise ValueError(f"{key}: choice needs at least one value")
        return value


def load_study(path: str | Path) -> tuple[StudyConfig, Path]:
    """The validated study of the file ``path`` and its experiment config's path.

    Raises:
        ConfigError: unreadable file, no ``study`` section, an invalid field (the
            message names it), a random-only sampler in a grid search, ``x`` or
            ``seed_field`` that is not varied... and any trial config that does not
            validate (the config error, naming the trial's field).
    """
    path = Path(path)
    raw = read_yaml(path)
    extra = sorted(set(raw) - {"study"})
    if "study" not in raw or extra:
        raise ConfigError(f"{path}: a study file holds one section, study (found {sorted(raw)})")
    try:
        study = StudyConfig.model_validate(raw["study"])
    except ValidationError as err:
        message = validation_message(err, "study", show_input=True)
        raise ConfigError(f"{path}: invalid study:\n  {message}") from None
    if study.search == "grid":
        bad = [k for k, v in study.parameters.items() if isinstance(v, dict)]
        if bad:
            raise ConfigError(
                f"{path}: study.parameters: {bad} draw at random; a grid search takes lists "
                "of values (or set study.search: random)"
            )
    if study.x is not None and study.x not in study.parameters:
        raise ConfigError(
            f"{path}: study.x: {study.x!r} is not varied; varied: {list(study.parameters)}"
        )
    if study.x is not None and study.x == study.seed_field:
        raise ConfigError(
            f"{path}: study.x: {study.x!r} is the seed_field, which the report averages "
            f"over; choose another varied field (varied: {list(study.parameters)})"
        )
    experiment = (path.parent / study.experiment).resolve()
    for point in _check_points(study):
        load_config(experiment, trial_overrides(study, point))
    return study, experiment


def _check_points(study: StudyConfig) -> list[dict[str, Any]]:
    """Trial settings that together use every value (grid) or range end (random) once."""
    values = {
        k: v
        if isinstance(v, list)
        else (v["choice"] if "choice" in v else list(next(iter(v.values()))))
        for k, v in study.parameters.items()
    }
    if study.search == "grid":
        return [
            dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())
        ]
    width = max(len(v) for v in values.values())
    return [{k: v[min(i, len(v) - 1)] for k, v in values.items()} for i in range(width)]


def trial_overrides(study: StudyConfig, point: Mapping[str, Any]) -> list[str]:
    """The overrides of one trial: the study's, then each varied field's value."""
    return [*study.overrides, *(f"{k}={json.dumps(v)}" for k, v in point.items())]


def trial_name(point: Mapping[str, Any]) -> str:
    """A folder name for a trial's settings, e.g. ``agent.hidden_size=32,run.seed=1``."""
    text = ",".join(f"{k}={_short(v)}" for k, v in sorted(point.items()))
    return re.sub(r"[^\w.,=+-]", "_", text)[:200]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_metrics(run_dir: Path) -> dict[str, float]:
    """The numbers a trial reports, from its ``results.json``.

    For each evaluated method ``m`` (``agent`` for the trained agent, and
    ``random`` / ``multitask`` / ``oracle``): ``m.return_first`` and ``m.return_last``
    (mean return over test tasks of the first and the last meta-test episode), and
    where the env gives a success flag ``m.success_first`` and ``m.success_last`` (the
    success rate of those episodes) and, for Meta-World, ``m.success_metaworld``
    (Meta-World's score: the success rate of the last 3 episodes); and
    ``oracle_gap_closed``, ``train_env_steps``, ``train_wall_time_s``, where defined;
    and for each further test set ``s`` of ``evaluation.test_sets``, ``s.m.return_first``
    and ``s.m.return_last`` (and ``s.m.success_first``, ``s.m.success_last``).
    """
    results = json.loads((run_dir / "results.json").read_text())
    out: dict[str, float] = {}
    sets = {"": results["methods"]}
    sets |= {f"{s}.": t["methods"] for s, t in results.get("test_sets", {}).items()}
    for prefix, methods in sets.items():
        for name, method in methods.items():
            key = prefix + ("agent" if name == results["agent"] else name)
            out[f"{key}.return_first"] = float(method["mean"][0])
            out[f"{key}.return_last"] = float(method["mean"][-1])
            if method.get("success_rate") is not None:
                out[f"{key}.success_first"] = float(method["success_rate"][0])
                out[f"{key}.success_last"] = float(method["success_rate"][-1])
    for name, rate in (results.get("metaworld") or {}).get("success_rate", {}).items():
        out[f"{'agent' if name == results['agent'] else name}.success_metaworld"] = float(rate)
    agent = results["methods"][results["agent"]]
    for key in ("train_env_steps", "train_wall_time_s"):
        if agent.get(key) is not None:
            out[key] = float(agent[key])
    if results.get("oracle_gap_closed") is not None:
        out["oracle_gap_closed"] = float(results["oracle_gap_closed"])
    return out


def _param_space(study: StudyConfig) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {}
    for key, spec in study.parameters.items():
        if isinstance(spec, list):
            space[key] = tune.grid_search(spec) if study.search == "grid" else tune.choice(spec)
            continue
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            space[key] = tune.choice(args)
        elif kind == "randint":
            space[key] = tune.randint(int(args[0]), int(args[1]) + 1)  # both ends included
        else:
            space[key] = getattr(tune, kind)(float(args[0]), float(args[1]))
    return space


TrialFn = Callable[[dict[str, Any], StudyConfig, str, Path], dict[str, float]]


def run_trial(
    point: dict[str, Any], study: StudyConfig, experiment: str, run_dir: Path
) -> dict[str, float]:
    """Run (or resume) one trial's experiment in ``run_dir``; return its metrics.

    A folder left by an attempt that failed before its first checkpoint is moved
    aside (``<run_dir>.failed-<n>``, kept) and the trial starts afresh.
    """
    from metarl.checkpoints import latest_checkpoint
    from metarl.runner import run_experiment

    config = load_config(experiment, trial_overrides(study, point))
    resume = latest_checkpoint(run_dir) is not None
    if run_dir.exists() and not resume:
        n = 1
        while run_dir.with_name(f"{run_dir.name}.failed-{n}").exists():
            n += 1
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.failed-{n}"))
    run_experiment(config, run_dir, resume=resume)
    return trial_metrics(run_dir)


def run_study(
    study_file: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    trial_fn: TrialFn = run_trial,
) -> Path:
    """Run (or continue) the study of ``study_file``; write its report; return its folder.

    Args:
        study_file: the study YAML.
        address: a Ray cluster to run the trials on (``None``: a new local instance of
            this process, or the Ray this process is already connected to).
        num_cpus: CPUs of a local instance (``None``: all of this machine's).
        trial_fn: what a trial runs (``run_trial``); tests wrap it.

    Raises:
        ConfigError: an invalid study or trial config (before anything runs).
        RuntimeError: trials that still failed after ``max_failures`` retries (the study's
            report is written first, from the trials that finished).
    """
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    study, experiment = load_study(study_file)
    study_dir = (Path(study.root) / study.name).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    owns_ray = not ray.is_initialized()
    if owns_ray and address is None:
        from metarl.ray_sampling import init_local_ray

        init_local_ray(num_cpus=num_cpus)
    elif owns_ray:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    try:

        def trainable(point: dict[str, Any]) -> None:
            # <index>-<fields>: the index (Tune's, kept across restores) tells repeats apart.
            index = tune.get_context().get_trial_id().rsplit("_", 1)[-1]
            run_dir = study_dir / TRIALS_DIR / f"{index}-{trial_name(point)}"
            tune.report(trial_fn(dict(point), study, str(experiment), run_dir))

        resources = tune.with_resources(trainable, {"cpu": study.cpus_per_trial})
        tune_path = study_dir / TUNE_DIR
        if tune.Tuner.can_restore(str(tune_path)):
            log.info("continuing the study in %s", study_dir)
            tuner = tune.Tuner.restore(str(tune_path), resources, resume_errored=True)
        else:
            tuner = tune.Tuner(
                resources,
                param_space=_param_space(study),
                tune_config=tune.TuneConfig(
                    num_samples=study.num_samples,
                    max_concurrent_trials=study.max_concurrent,
                    trial_dirname_creator=lambda trial: trial_name(
                        {k: trial.config[k] for k in study.parameters}
                    ),
                ),
                run_config=tune.RunConfig(
                    name=TUNE_DIR,
                    storage_path=str(study_dir),
                    failure_config=tune.FailureConfig(max_failures=study.max_failures),
                    verbose=0,
                    callbacks=[CSVLoggerCallback(), JsonLoggerCallback()],
                ),
            )
        # Tune's loggers are the two above, without its TensorBoard one, which prints a
        # hint to its files at every start: each trial's run folder has its own tb/.
        with mock.patch.dict(os.environ, {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}):
            grid = tuner.fit()
    finally:
        if owns_ray:
            ray.shutdown()
    study_report(study, study_dir)
    failed = [grid[i] for i in range(len(grid)) if grid[i].error is not None]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(grid)} trials failed after {study.max_failures} retries; "
            f"first error: {failed[0].error}; the report of the others: {study_dir / REPORT_FILE}"
        )
    return study_dir


# --------------------------------------------------------------------------- report


def _collect(study: StudyConfig, study_dir: Path) -> list[dict[str, Any]]:
    """One row per finished trial: its varied fields and its metrics."""
    rows = []
    for run_dir in sorted((study_dir / TRIALS_DIR).glob("*")):
        config_file, results = run_dir / "config.yaml", run_dir / "results.json"
        if ".failed-" in run_dir.name or not results.exists():
            continue
        config = read_yaml(config_file)
        point = {k: _lookup(config, k) for k in study.parameters}
        rows.append({"trial": run_dir.name, **point, **trial_metrics(run_dir)})
    return rows


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _order(value: Any) -> tuple[int, float, str]:
    """Sort key: numbers by value, before anything else by its text."""
    if is_real(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _t_quantile(dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def summarize(
    rows: Sequence[Mapping[str, Any]], fields: Sequence[str], metric: str
) -> list[dict[str, Any]]:
    """Per combination of ``fields``: mean, std (ddof 1), n and 95% CI half-width of ``metric``."""
    groups: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        if metric in row:
            groups.setdefault(tuple(row[f] for f in fields), []).append(float(row[metric]))
    out = []
    for key in sorted(groups, key=lambda k: tuple(_order(v) for v in k)):
        values = groups[key]
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
        ci = _t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
        out.append(
            {**dict(zip(fields, key, strict=True)), "mean": mean, "std": std, "n": n, "ci95": ci}
        )
    return out


def study_report(study: StudyConfig, study_dir: Path) -> Path:
    """Write ``trials.csv``, ``summary.csv``, the plot and ``report.md``; return the report."""
    rows = _collect(study, study_dir)
    fields = [k for k in study.parameters if k != study.seed_field]
    metrics = sorted({k for row in rows for k in row} - {"trial", *study.parameters})
    _write_csv(study_dir / "trials.csv", ["trial", *study.parameters, *metrics], rows)
    summaries = {m: summarize(rows, fields, m) for m in study.metrics}
    _write_csv(
        study_dir / "summary.csv",
        ["metric", *fields, "mean", "std", "n", "ci95"],
        [{"metric": m, **s} for m, summary in summaries.items() for s in summary],
    )
    x = study.x or (fields[0] if fields else None)
    lines = [
        f"# Study {study.name}",
        "",
        f"- experiment: `{study.experiment}`, overrides: {study.overrides or 'none'}",
        f"- search: {study.search}, fields: {', '.join(study.parameters)}",
        f"- trials finished: {len(rows)} (run folders in `{TRIALS_DIR}/`)",
        f"- metrics: {', '.join(f'`{m}`' for m in study.metrics)} ({study.mode}), mean over "
        f"`{study.seed_field}` with a 95% confidence interval (Student t)",
    ]
    for metric, summary in summaries.items():
        lines += [
            "",
            f"## {metric}",
            "",
            "| " + " | ".join([*fields, "mean", "std", "n", "95% CI"]) + " |",
            "|" + "---|" * (len(fields) + 4),
        ]
        for s in summary:
            cells = [_short(s[f]) for f in fields]
            cells += [f"{s['mean']:.2f}", f"{s['std']:.2f}", str(s["n"]), f"± {s['ci95']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        if summary:
            best = (max if study.mode == "max" else min)(summary, key=lambda s: s["mean"])
            setting = ", ".join(f"{f}={_short(best[f])}" for f in fields) or "(the only setting)"
            lines += ["", f"Best by mean: {setting} ({best['mean']:.2f})."]
        if summary and x is not None:
            plot = _plot(study, study_dir, {metric: summary}, fields, x)
            lines += ["", f"![{metric} against {x}]({plot.name})"]
    if len(summaries) > 1 and x is not None and rows:
        plot = _plot(study, study_dir, summaries, fields, x)
        lines += ["", "## All metrics", "", f"![the metrics against {x}]({plot.name})"]
    report = study_dir / REPORT_FILE
    report.write_text("\n".join(lines) + "\n")
    return report


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _plot(
    study: StudyConfig,
    study_dir: Path,
    summaries: Mapping[str, Sequence[Mapping[str, Any]]],
    fields: Sequence[str],
    x: str,
) -> Path:
    """Each metric of ``summaries`` against ``x``, one line per combination of the
    other fields, with 95% CI error bars; one metric: ``<metric>.png``, several (one
    axis, for metrics in the same units such as returns on two test sets):
    ``metrics.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [f for f in fields if f != x]
    fig, ax = plt.subplots(figsize=(6, 4))
    for metric, summary in summaries.items():
        lines: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
        for s in summary:
            lines.setdefault(tuple(s[f] for f in others), []).append(s)
        numeric = all(is_real(s[x]) for s in summary)
        for key, points in lines.items():
            points = sorted(points, key=lambda s: s[x] if numeric else str(s[x]))
            xs = [s[x] if numeric else str(s[x]) for s in points]
            errors = [0.0 if math.isnan(s["ci95"]) else s["ci95"] for s in points]
            parts = [metric] if len(summaries) > 1 else []
            parts += [f"{f}={_short(v)}" for f, v in zip(others, key, strict=True)]
            ax.errorbar(
                xs,
                [s["mean"] for s in points],
                yerr=errors,
                marker="o",
                capsize=3,
                label=", ".join(parts) or None,
            )
    ax.set_xlabel(x)
    what = next(iter(summaries)) if len(summaries) == 1 else "metric"
    ax.set_ylabel(f"{what} (mean, 95% CI over {study.seed_field})")
    ax.set_title(study.name)
    if others or len(summaries) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    name = next(iter(summaries)) if len(summaries) == 1 else "metrics"
    path = study_dir / (re.sub(r"[^\w.-]", "_", name) + ".png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
