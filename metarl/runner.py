"""Experiment runner: from a validated config to a run folder with metrics, plot and report.

``run_experiment(config)`` makes the run folder ``<run.root>/<run.name>-<timestamp>/``
(or uses the one given; ``metarl.run_folder``), writes the resolved config, builds
the task sets, the sampler (local or Ray) and the agent (``metarl.build``), runs the
``Trainer`` (continuing from the folder's latest checkpoint when resuming), then runs
the final meta-test: the agent and the baselines (random, multi-task, oracle; the
trained ones with the agent's env-step budget, ``metarl.baseline_cache``) on the same
held-out tasks, K episodes each. It writes

- ``results.json``: every method's ``AdaptationResult`` (returns, and successes and
  the success rate of each episode k where the env gives a success flag), env steps
  and wall times; for Meta-World, Meta-World's score (``metaworld``);
- ``adaptation.png`` and ``report.md`` (``metarl.report``).

``evaluate_run(run_dir)`` (``metarl eval``) reloads the agent from the newest
checkpoint that loads and runs that final meta-test again, into
``reevaluations/iteration<N>_episodes<K>_seed<S>/`` with its own ``results.json``,
``adaptation.png`` and ``report.md``; the run's own stay as training left them.
Ctrl-C stops ``run_experiment`` with ``RunInterrupted`` (a ``KeyboardInterrupt``)
after closing the samplers (Ray shut down); its message says where the run stopped
and how to resume it.

The final meta-test runs every method on a fresh ``LocalSampler`` with the same
seed and the same number of sub-environments, so every method meets the same
tasks with the same reset seeds, and ``evaluate_run`` reproduces the numbers of
the run it evaluates.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import metarl  # noqa: F401  (registers the environments)
from metarl.agent_registry import AGENTS
from metarl.agents.base import Agent
from metarl.baseline_cache import load_or_train_baseline
from metarl.build import (
    TestSet,
    build_agent,
    build_sampler,
    eval_sampler,
    task_sets,
    test_set_tasks,
)
from metarl.checkpoints import CHECKPOINT_DIR, load_latest_checkpoint
from metarl.config import ConfigError, ExperimentConfig
from metarl.evaluation import AdaptationResult, evaluate_adaptation
from metarl.report import (
    BASELINE_LABELS,
    MethodResult,
    metaworld_score,
    oracle_gap_closed,
    plot_methods,
    render_report,
)
from metarl.run_folder import (
    PLOT_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    load_run_config,
    open_run_dir,
    record_workers,
    reevaluation_dir,
    stopped_message,
    write_config,
)
from metarl.schema import RunFolderError
from metarl.tasks import Task, TaskSets
from metarl.trainer import Trainer

__all__ = [
    "RunInterrupted",
    "evaluate_run",
    "load_trained_agent",
    "run_experiment",
]

log = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``run_experiment``; the message says at which iteration, the
    newest checkpoint and the command that resumes the run."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


def run_experiment(
    config: ExperimentConfig, run_dir: str | Path | None = None, *, resume: bool = False
) -> Path:
    """Meta-train, evaluate against the baselines, write the report; return the run folder.

    Args:
        config: a validated config (``load_config``).
        run_dir: the run folder (default: a new ``make_run_dir`` folder).
        resume: continue the run in ``run_dir`` from its latest checkpoint.

    Raises:
        RunFolderError: ``resume`` without a ``run_dir`` that holds a checkpoint that
            loads, or a new run in a folder that holds another run's files.
        ConfigError: resuming with fewer ``trainer.iterations`` than the run has done.
        RunInterrupted: Ctrl-C (after the samplers are closed).
    """
    run_dir = open_run_dir(config, run_dir, resume)
    try:
        return _run(config, run_dir, resume)
    except KeyboardInterrupt:
        raise RunInterrupted(stopped_message(config, run_dir), run_dir) from None


def _run(config: ExperimentConfig, run_dir: Path, resume: bool) -> Path:
    log.info("run folder: %s", run_dir)
    sets = task_sets(config)
    other_sets = test_set_tasks(config)  # a set the env refuses stops the run before training
    agent = build_agent(config)
    sampler = build_sampler(config)
    evaluator = eval_sampler(config, agent, sets.test)
    schedule = None if config.randomization is None else config.randomization.build_schedule()
    try:
        trainer = Trainer(
            agent,
            sampler,
            sets.train,
            sets.test,
            run_dir,
            config.trainer_config(),
            eval_sampler=evaluator,
            schedule=schedule,
        )
        if resume:
            trainer.resume()
            if trainer.iteration > config.trainer.iterations:
                raise ConfigError(
                    f"trainer.iterations: the run in {run_dir} has done {trainer.iteration} "
                    f"iterations, more than the {config.trainer.iterations} given"
                )
        write_config(config, run_dir)
        trainer.train()
    finally:
        record_workers(sampler, run_dir)
        sampler.close()
        evaluator.close()
    _final_evaluation(
        config,
        run_dir,
        agent,
        sets,
        env_steps=trainer.env_steps,
        wall_time=trainer.wall_time,
        iteration=trainer.iteration,
        schedule=trainer.schedule,
        test_sets=other_sets,
    )
    return run_dir


def load_trained_agent(
    run_dir: str | Path, overrides: Sequence[str] = ()
) -> tuple[ExperimentConfig, Agent, dict[str, Any]]:
    """The config of ``run_dir`` (with ``overrides``), its agent restored from the latest
    checkpoint, and that checkpoint's state.

    The checkpoint is the newest one that loads: a damaged one, or one that
    ``checkpoints/latest`` names but that is missing, is named in a warning and the
    next older one is used (``load_latest_checkpoint``).

    Raises:
        RunFolderError: ``run_dir`` does not exist, has no ``config.yaml`` or no
            checkpoint that loads.
    """
    config = load_run_config(run_dir, overrides=overrides)
    found = load_latest_checkpoint(run_dir)
    if found is None:
        folder = Path(run_dir) / CHECKPOINT_DIR
        where = "is empty" if folder.is_dir() else "does not exist"
        raise RunFolderError(f"{run_dir} holds no checkpoint ({CHECKPOINT_DIR}/ {where})")
    _, state = found
    agent = build_agent(config)
    agent.load_state_dict(state["agent"])
    return config, agent, state


def evaluate_run(run_dir: str | Path, episodes: int | None = None) -> Path:
    """Re-run the final meta-test of ``run_dir`` with its newest checkpoint that loads;
    write ``results.json``, ``adaptation.png`` and ``report.md`` into
    ``run_dir/reevaluations/iteration<N>_episodes<K>_seed<S>/`` (N: the checkpoint's
    iteration, K: episodes per task, S: the meta-test sampler seed) and return that
    folder. The run's own files are left as training wrote them.

    ``episodes``: K (default: the config's ``evaluation.episodes``). Baselines saved
    in the run folder are reused; missing ones are trained (and saved) first.

    Raises:
        RunFolderError: ``run_dir`` does not exist, or has no ``config.yaml`` or no
            checkpoint that loads.
        ConfigError: ``episodes < 1``.
    """
    run_dir = Path(run_dir)
    overrides = [] if episodes is None else [f"evaluation.episodes={episodes}"]
    config, agent, state = load_trained_agent(run_dir, overrides)
    iteration = int(state["iteration"])
    out_dir = reevaluation_dir(run_dir, iteration, config.evaluation.episodes, config.sampler.seed)
    _final_evaluation(
        config,
        run_dir,
        agent,
        task_sets(config),
        env_steps=int(state["env_steps"]),
        wall_time=float(state["wall_time"]),
        iteration=iteration,
        schedule=state.get("schedule"),
        out_dir=out_dir,
    )
    return out_dir


# --------------------------------------------------------------------------- final meta-test


def _evaluate(
    config: ExperimentConfig,
    agent: Agent,
    tasks: Sequence[Task],
    test_set: TestSet | None = None,
) -> AdaptationResult:
    sampler = eval_sampler(config, agent, tasks, test_set=test_set)
    try:
        return evaluate_adaptation(agent, sampler, tasks, config.evaluation.episodes)
    finally:
        sampler.close()


def _final_evaluation(
    config: ExperimentConfig,
    run_dir: Path,
    agent: Agent,
    sets: TaskSets,
    *,
    env_steps: int,
    wall_time: float,
    iteration: int,
    schedule: Any = None,
    test_sets: Mapping[str, TestSet] | None = None,
    out_dir: Path | None = None,
) -> None:
    """Run the final meta-test; write results, plot and report into ``out_dir``
    (default: ``run_dir``, which holds the baselines and the logs)."""
    out_dir = run_dir if out_dir is None else out_dir
    log.info(
        "final meta-test: K = %d episodes on %d test tasks",
        config.evaluation.episodes,
        len(sets.test),
    )
    start = time.perf_counter()
    methods = {
        config.agent.name: MethodResult(
            AGENTS[config.agent.name].label or config.agent.name,
            _evaluate(config, agent, sets.test),
            env_steps,
            wall_time,
        )
    }
    steps = config.evaluation.baseline_training.steps or max(env_steps, 1)
    agents = {config.agent.name: agent}
    trained: dict[str, float] = {}  # baselines trained now: their wall time
    for name in config.evaluation.baselines:
        baseline = load_or_train_baseline(name, config, run_dir, sets.train, steps)
        label = BASELINE_LABELS[name]
        if baseline.trained_now:
            trained[label] = float(baseline.train_wall_time or 0.0)
        agents[name] = baseline.agent
        methods[name] = MethodResult(
            label,
            _evaluate(config, baseline.agent, sets.test),
            baseline.train_env_steps,
            baseline.train_wall_time,
        )
    other_sets: dict[str, dict[str, Any]] = {}
    if test_sets is None:
        test_sets = test_set_tasks(config)
    for set_name, test_set in test_sets.items():
        tasks = test_set.tasks
        log.info("final meta-test on test set %s: %d tasks", set_name, len(tasks))
        other_sets[set_name] = {
            "env_kwargs": test_set.env_kwargs,
            "effects": test_set.effects,
            "tasks": len(tasks),
            "task_seed": config.evaluation.test_sets[set_name].task_seed,
            "methods": {
                name: _evaluate(config, method, tasks, test_set) for name, method in agents.items()
            },
        }
    eval_time = time.perf_counter() - start

    plot_methods(config, methods, out_dir / PLOT_FILE)
    gap = oracle_gap_closed(methods[config.agent.name].result, methods)
    metaworld = metaworld_score(config, {name: m.result for name, m in methods.items()})
    randomization = _randomization(config, schedule)
    results = {
        "env": config.env.id,
        "agent": config.agent.name,
        "episodes": config.evaluation.episodes,
        "iteration": iteration,
        "train_tasks": len(sets.train),
        "test_tasks": len(sets.test),
        "oracle_gap_closed": gap,
        "metaworld": metaworld,
        "final_evaluation_wall_time_s": eval_time,
        "baseline_training_wall_time_s": sum(trained.values()),
        "methods": {
            name: {
                "label": m.label,
                "train_env_steps": m.train_env_steps,
                "train_wall_time_s": m.train_wall_time,
                **m.result.to_dict(),
            }
            for name, m in methods.items()
        },
        "randomization": randomization,
        "test_sets": {
            set_name: {
                **{k: v for k, v in test_set.items() if k != "methods"},
                "methods": {
                    name: {"label": methods[name].label, **result.to_dict()}
                    for name, result in test_set["methods"].items()
                },
            }
            for set_name, test_set in other_sets.items()
        },
    }
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    report = render_report(
        config,
        methods,
        gap,
        other_sets,
        iteration=iteration,
        eval_time=eval_time,
        trained=trained,
        run_dir=os.path.relpath(run_dir, out_dir),
        run_has_report=(Path(run_dir) / REPORT_FILE).is_file(),
        randomization=randomization,
    )
    (out_dir / REPORT_FILE).write_text(report)


def _randomization(config: ExperimentConfig, schedule: Any) -> dict[str, Any] | None:
    """The randomization at the end of training: the schedule's state and distribution."""
    if config.randomization is None:
        return None
    if schedule is None:  # uniform: the configured params throughout
        params = config.randomization.params
        state: dict[str, float] = {}
    else:
        params = {n: p.to_dict() for n, p in schedule.params().items()}
        state = schedule.describe()
    return {"schedule": config.randomization.schedule, "state": state, "params": params}
