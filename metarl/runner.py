"""Experiment runner: from a validated config to a run folder with metrics, plot and report.

``run_experiment(config)`` makes the run folder ``<run.root>/<run.name>-<timestamp>/``
(or uses the one given), writes the resolved config, builds the task sets, the
sampler (local or Ray) and the agent, runs the ``Trainer`` (continuing from the
folder's latest checkpoint when resuming), then runs the final meta-test:
the agent and the baselines (random, multi-task, oracle; the trained ones with
the agent's env-step budget) on the same held-out tasks, K episodes each.
``evaluate_run(run_dir)`` reloads the agent from the newest checkpoint that loads
and runs that final meta-test again, into a folder of its own (below).

Run folder (besides the ``Trainer``'s ``metrics.csv``, ``eval.csv``, ``eval/``,
``tb/`` and ``checkpoints/``):

- ``config.yaml``: the resolved config (``metarl train config.yaml`` reruns it);
- ``baselines/<name>.pt``: the trained baselines (reused by ``evaluate_run`` and by a
  resumed run);
- ``results.json``: every method's ``AdaptationResult`` (returns, and successes and
  the success rate of each episode k where the env gives a success flag), env steps
  and wall times; for Meta-World, Meta-World's score (``metaworld``);
- ``adaptation.png``: the adaptation curves of the agent and the baselines (return,
  and success rate where there is one);
- ``report.md``: what was run and what came out.

``evaluate_run`` (``metarl eval``) writes into
``reevaluations/iteration<N>_episodes<K>_seed<S>/``: a re-run of the final meta-test
of the checkpoint of iteration N with K episodes per task and the meta-test sampler
seed S, with its own ``results.json``, ``adaptation.png`` and ``report.md``; the
run's own stay as training left them. A new run refuses a folder that holds
another run's files (a run stopped before its first checkpoint included): it never
appends to another run's logs. Ctrl-C stops ``run_experiment`` with
``RunInterrupted`` (a ``KeyboardInterrupt``) after closing the samplers (Ray shut
down); its message says where the run stopped and how to resume it.

The final meta-test runs every method on a fresh ``LocalSampler`` with the same
seed and the same number of sub-environments, so every method meets the same
tasks with the same reset seeds, and ``evaluate_run`` reproduces the numbers of
the run it evaluates.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import torch

import metarl  # noqa: F401  (registers the environments)
from metarl.agents.base import Agent
from metarl.config import (
    AGENTS,
    ConfigError,
    ExperimentConfig,
    config_to_yaml,
    load_config,
)
from metarl.envs import METAWORLD_ENVS, PhysicsRandomization, task_distribution
from metarl.envs.effects import apply_effects, effect_wrappers
from metarl.envs.metaworld import ADAPTATION_EPISODES, EVALUATION_EPISODES, MetaWorldTask
from metarl.evaluation import AdaptationResult, evaluate_adaptation, plot_adaptation
from metarl.sampling import LocalSampler, Sampler
from metarl.schema import RunFolderError
from metarl.tasks import Task, TaskSets
from metarl.trainer import (
    CHECKPOINT_DIR,
    METRICS_FILE,
    TRAINER_FILES,
    Trainer,
    latest_checkpoint,
    load_latest_checkpoint,
    save_atomically,
)

__all__ = [
    "RESUMABLE_FIELDS",
    "RunFolderError",
    "RunInterrupted",
    "build_agent",
    "build_sampler",
    "evaluate_run",
    "load_run_config",
    "load_trained_agent",
    "make_run_dir",
    "run_experiment",
    "task_sets",
    "test_set_tasks",
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

LABELS = {"random": "random", "multitask": "multi-task", "oracle": "oracle"}

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- building


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


EnvWrapper = Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]


def _physics_wrappers(config: ExperimentConfig) -> list[EnvWrapper]:
    if config.randomization is None:
        return []
    params = config.randomization.physics_params()
    return [functools.partial(PhysicsRandomization, params=params)]


def run_wrappers(
    config: ExperimentConfig, effects: list[dict[str, Any]] | None = None
) -> list[EnvWrapper]:
    """The wrappers of every env of the run, innermost first (picklable): the physics
    randomization of ``randomization.params``, then the effects (default:
    ``env.effects``)."""
    return [
        *_physics_wrappers(config),
        *effect_wrappers(config.env.effects if effects is None else effects),
    ]


def _wrapped(
    config: ExperimentConfig,
    env: gym.Env[Any, Any],
    effects: list[dict[str, Any]],
    where: str,
) -> gym.Env[Any, Any]:
    """``env`` in the run's wrappers; what an env refuses is a ``ConfigError`` naming
    ``randomization.params`` or ``<where>.effects``."""
    try:
        for wrap in _physics_wrappers(config):
            env = wrap(env)
    except ValueError as err:
        env.close()
        raise ConfigError(f"invalid config:\n  randomization.params: {err}") from None
    try:
        return apply_effects(env, effects)
    except ValueError as err:
        env.close()
        raise ConfigError(f"invalid config:\n  {where}.{err}") from None


def _make_env(config: ExperimentConfig) -> gym.Env[Any, Any]:
    """One env of the run, in its wrappers (``run_wrappers``).

    Raises:
        ConfigError: the env refuses the randomization or an effect (the message names it).
    """
    return _wrapped(config, gym.make(config.env.id, **config.env.kwargs), config.env.effects, "env")


def task_sets(config: ExperimentConfig) -> TaskSets:
    """The run's reproducible train and test task sets."""
    env = _make_env(config)
    try:
        assert config.env.task_seed is not None
        return task_distribution(env).task_sets(
            config.env.task_seed, config.env.n_train, config.env.n_test
        )
    finally:
        env.close()


class TestSet(NamedTuple):
    """One of ``evaluation.test_sets``, resolved: the env keyword arguments (over
    ``env.kwargs``), the effects (the set's or ``env.effects``) and the tasks."""

    env_kwargs: dict[str, Any]
    effects: list[dict[str, Any]]
    tasks: list[Task]


def test_set_tasks(config: ExperimentConfig) -> dict[str, TestSet]:
    """Each of ``evaluation.test_sets``, its tasks drawn from the family that its env
    keyword arguments build.

    Raises:
        ConfigError: the env refuses a set's keyword arguments or effects (the message
            names the field).
    """
    out: dict[str, TestSet] = {}
    for name, test_set in config.evaluation.test_sets.items():
        kwargs = {**config.env.kwargs, **test_set.env_kwargs}
        effects = config.env.effects if test_set.effects is None else test_set.effects
        assert test_set.tasks is not None and test_set.task_seed is not None
        where = f"evaluation.test_sets.{name}"
        try:
            env = gym.make(config.env.id, **kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"invalid config:\n  {where}.env_kwargs: {config.env.id} refuses {kwargs}: {err}"
            ) from None
        env = _wrapped(config, env, effects, where)
        try:
            tasks = task_distribution(env).task_sets(test_set.task_seed, 0, test_set.tasks).test
        finally:
            env.close()
        out[name] = TestSet(kwargs, list(effects), list(tasks))
    return out


def build_agent(config: ExperimentConfig) -> Agent:
    """The agent the config names, for the env's spaces, with its hyperparameters."""
    env = _make_env(config)
    try:
        agent_cls = AGENTS[config.agent.name].agent_class()
        agent = agent_cls(env.observation_space, env.action_space, config.agent.to_dataclass())
    finally:
        env.close()
    if not isinstance(agent, Agent):
        raise TypeError(f"agent {config.agent.name!r} built a {type(agent).__name__}, not an Agent")
    return agent


def build_sampler(config: ExperimentConfig) -> Sampler:
    """The meta-training sampler: ``LocalSampler`` or ``RaySampler`` as ``sampler.kind`` says."""
    s = config.sampler
    assert s.seed is not None
    if s.kind == "local":
        return LocalSampler(
            config.env.id,
            num_envs=s.num_envs,
            seed=s.seed,
            vectorization=s.vectorization,
            env_kwargs=dict(config.env.kwargs),
            wrappers=run_wrappers(config),
        )
    from metarl.ray_sampling import RaySampler

    return RaySampler(
        config.env.id,
        num_workers=s.num_workers,
        envs_per_worker=s.num_envs,
        seed=s.seed,
        vectorization=s.vectorization,
        env_kwargs=dict(config.env.kwargs),
        wrappers=run_wrappers(config),
        address=config.ray.address,
        cpus_per_worker=s.cpus_per_worker,
        placement=s.placement,
        num_cpus=config.ray.num_cpus,
        object_store_memory=config.ray.object_store_memory,
        runtime_env=config.ray.runtime_env,
    )


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


# --------------------------------------------------------------------------- running


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``run_experiment``; the message says at which iteration, the
    newest checkpoint and the command that resumes the run."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


def _stopped_message(config: ExperimentConfig, run_dir: Path) -> str:
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
    if resume:
        if run_dir is None or latest_checkpoint(run_dir) is None:
            raise RunFolderError(f"nothing to resume: {run_dir} holds no checkpoint")
        run_dir = Path(run_dir)
    elif run_dir is None:
        run_dir = make_run_dir(config)
    else:
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
    try:
        return _run(config, run_dir, resume)
    except KeyboardInterrupt:
        raise RunInterrupted(_stopped_message(config, run_dir), run_dir) from None


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
        (run_dir / CONFIG_FILE).write_text(
            "# The resolved config of this run (every default filled in); "
            f"`metarl train {CONFIG_FILE}` reruns it.\n" + config_to_yaml(config)
        )
        trainer.train()
    finally:
        _record_workers(sampler, run_dir)
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


def _record_workers(sampler: Sampler, run_dir: Path) -> None:
    """Write ``workers.json``: each Ray worker's node, process and peak memory."""
    worker_info = getattr(sampler, "worker_info", None)  # RaySampler's; not imported here
    if worker_info is None:
        return
    try:
        workers = worker_info()
    except Exception as err:  # a failed run: its own error matters more than this record
        log.warning("could not record the Ray workers: %s: %s", type(err).__name__, err)
        return
    (run_dir / WORKERS_FILE).write_text(json.dumps([w._asdict() for w in workers], indent=2) + "\n")


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
    out_dir = (
        run_dir
        / REEVALUATION_DIR
        / f"iteration{iteration}_episodes{config.evaluation.episodes}_seed{config.sampler.seed}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
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


@dataclass
class _Method:
    """One row of the final comparison."""

    label: str
    result: AdaptationResult
    train_env_steps: int | None
    train_wall_time: float | None


def eval_sampler(
    config: ExperimentConfig,
    agent: Agent,
    tasks: Sequence[Task],
    seed: int | None = None,
    test_set: TestSet | None = None,
) -> LocalSampler:
    """The sampler of meta-tests: local, apart from the training sampler, so that
    evaluating during training does not change the training's episodes. ``seed``:
    the root seed of its episodes (default: the run's ``sampler.seed``);
    ``test_set``: envs with its keyword arguments and effects (default: the run's).
    The agent's own wrappers (an oracle's) go outside the effects. Meta-World tasks
    get envs of their split (Meta-World's test tasks need a test-split env)."""
    assert config.sampler.seed is not None
    kwargs = dict(config.env.kwargs if test_set is None else test_set.env_kwargs)
    effects = config.env.effects if test_set is None else test_set.effects
    splits = {t.split for t in tasks if isinstance(t, MetaWorldTask)}
    if len(splits) == 1:
        kwargs["split"] = splits.pop()
    return LocalSampler(
        config.env.id,
        num_envs=min(config.sampler.num_envs, len(tasks)),
        seed=config.sampler.seed if seed is None else seed,
        env_kwargs=kwargs,
        wrappers=[*run_wrappers(config, effects), *getattr(agent, "env_wrappers", ())],
    )


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


def _baseline(
    name: str, config: ExperimentConfig, run_dir: Path, train_tasks: Sequence[Task], steps: int
) -> tuple[Agent, int | None, float | None, bool]:
    """The baseline ``name``, its training env steps and wall time, and whether it was
    trained now: loaded from ``run_dir/baselines`` or trained (and saved)."""
    from metarl.agents import baselines

    if name == "random":
        return baselines.RandomAgent.for_env(config.env.id, config.env.kwargs), None, None, False
    bt = config.evaluation.baseline_training
    if config.evaluation.baseline_dir is None:
        path = run_dir / BASELINE_DIR / f"{name}.pt"
    else:  # a folder shared between runs: name the file by env and seed too
        env_slug = config.env.id.replace("/", "_")
        path = Path(config.evaluation.baseline_dir) / f"{env_slug}_seed{config.run.seed}_{name}.pt"
    # Reuse a saved baseline only if it was trained as asked now (a resumed run that
    # trained longer gives its baselines a larger budget; a shared folder may hold
    # baselines of other tasks or seeds).
    setup = {
        "steps": steps,
        "training": bt.model_dump(mode="json", exclude={"deterministic"}),
        "env": config.env.id,
        "env_kwargs": dict(config.env.kwargs),
        "effects": list(config.env.effects),
        "train_tasks": [t.to_dict() for t in train_tasks],
        "seed": config.run.seed,
    }
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("setup") == setup:
            agent = baselines.SB3Baseline.from_state_dict(saved["agent"])
            agent.deterministic = bt.deterministic
            return agent, int(saved["env_steps"]), float(saved["wall_time"]), False
    train = baselines.train_oracle if name == "oracle" else baselines.train_multitask
    log.info("training the %s baseline: SB3 %s, %d env steps", name, bt.algorithm, steps)
    start = time.perf_counter()
    agent = train(
        config.env.id,
        list(train_tasks),
        steps,
        config.run.seed,
        algo=bt.algorithm,
        algo_kwargs=bt.algo_kwargs,
        n_envs=bt.num_envs,
        env_kwargs=config.env.kwargs,
        wrappers=run_wrappers(config),
        deterministic=bt.deterministic,
    )
    wall_time = time.perf_counter() - start
    env_steps = int(agent.model.num_timesteps)
    save_atomically(
        {
            "agent": agent.state_dict(),
            "setup": setup,
            "env_steps": env_steps,
            "wall_time": wall_time,
        },
        path,
    )
    return agent, env_steps, wall_time, True


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
        config.agent.name: _Method(
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
        baseline, b_steps, b_time, now = _baseline(name, config, run_dir, sets.train, steps)
        if now:
            trained[LABELS[name]] = float(b_time or 0.0)
        agents[name] = baseline
        methods[name] = _Method(
            LABELS[name], _evaluate(config, baseline, sets.test), b_steps, b_time
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

    plot_adaptation(
        {m.label: m.result for m in methods.values()},
        out_dir / PLOT_FILE,
        title=f"{methods[config.agent.name].label} on {config.env.id}: held-out tasks",
    )
    gap = oracle_gap_closed(methods[config.agent.name].result, methods)
    metaworld = metaworld_score(config, {name: m.result for name, m in methods.items()})
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
        "randomization": _randomization(config, schedule),
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
    report = _report(
        config,
        methods,
        gap,
        other_sets,
        iteration=iteration,
        eval_time=eval_time,
        trained=trained,
        run_dir=os.path.relpath(run_dir, out_dir),
        run_has_report=(Path(run_dir) / REPORT_FILE).is_file(),
    )
    r = _randomization(config, schedule)
    if r is not None:
        report += (
            f"\n## Randomization\n\nSchedule `{r['schedule']}`; at the end: "
            + ", ".join(f"{k} = {v:.4g}" for k, v in r["state"].items())
            + f". The final distribution is in [{RESULTS_FILE}]({RESULTS_FILE}) "
            "(`randomization.params`, PhysicsParam dicts).\n"
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


def oracle_gap_closed(agent: AdaptationResult, methods: Mapping[str, Any]) -> float | None:
    """(agent after adapting - multi-task) / (oracle - multi-task), as
    docs/benchmarks.md#oracle-gap-closed defines it.

    "After adapting" is the agent's last stage: its episode K, or the mean of its last
    ``stage_size`` episodes (MAML: the episodes after the last inner step). The
    baselines do not adapt, so each is its mean over all K episodes. ``None``
    without both baselines or when oracle and multi-task tie.
    """
    if "multitask" not in methods or "oracle" not in methods:
        return None
    multitask = float(methods["multitask"].result.returns.mean())
    oracle = float(methods["oracle"].result.returns.mean())
    if math.isclose(oracle, multitask):
        return None
    final = float(agent.stage_returns()[:, -1].mean())
    return (final - multitask) / (oracle - multitask)


def metaworld_score(
    config: ExperimentConfig, results: Mapping[str, AdaptationResult]
) -> dict[str, Any] | None:
    """Meta-World's score of each method: its success rate over the last
    ``EVALUATION_EPISODES`` episodes of the meta-test (after ``K - 3`` adaptation
    episodes), averaged over tasks, as ``metalearning_evaluation`` computes it
    (``metaworld/evaluation.py``). ``None`` for other envs, or when ``K`` leaves no
    adaptation episode."""
    K = config.evaluation.episodes
    if config.env.id not in METAWORLD_ENVS or K <= EVALUATION_EPISODES:
        return None
    return {
        "adaptation_episodes": K - EVALUATION_EPISODES,
        "evaluation_episodes": EVALUATION_EPISODES,
        "success_rate": {
            name: float(r.successes[:, -EVALUATION_EPISODES:].mean())
            for name, r in results.items()
            if r.successes is not None
        },
    }


def _fmt_steps(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t < 10:
        return f"{t:.2f} s" if t < 1 else f"{t:.1f} s"
    return f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min"


def _stage_cells(result: AdaptationResult, stage_size: int) -> str:
    """``mean ± std`` over tasks of each stage's return, as table cells."""
    per_stage = result.stage_returns(stage_size)
    return " | ".join(
        f"{mu:.2f} ± {sd:.2f}" for mu, sd in zip(per_stage.mean(0), per_stage.std(0), strict=True)
    )


def _success_cells(result: AdaptationResult, stage_size: int) -> str:
    """Success rate of each stage (its episodes on every test task), as table cells."""
    per_stage = result.stage_successes(stage_size)
    if per_stage is None:
        return " | ".join("-" for _ in result.stages(stage_size))
    return " | ".join(f"{100 * r:.0f}%" for r in per_stage.mean(0))


def _stage_labels(result: AdaptationResult) -> list[str]:
    """Column labels of ``result``'s stages: ``k=3`` or ``k=1-10``."""
    return [
        f"k={r.start + 1}" if len(r) == 1 else f"k={r.start + 1}-{r.stop}" for r in result.stages()
    ]


def _success_lines(
    config: ExperimentConfig,
    methods: Mapping[str, _Method],
    other_sets: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """The report's section on success rates, where the env gives a success flag (none
    otherwise), with Meta-World's score for Meta-World runs."""
    main = methods[config.agent.name].result
    if main.successes is None:
        return []
    labels = _stage_labels(main)
    header = ["| method | " + " | ".join(labels) + " |", "| --- |" + " ---: |" * len(labels)]
    lines = [
        "",
        "## Success rate of episode k (share of test tasks)",
        "",
        "An episode succeeds if the env's success flag (`info['success']`) is set at any "
        "of its steps.",
        "",
        *header,
        *(f"| {m.label} | {_success_cells(m.result, main.stage_size)} |" for m in methods.values()),
    ]
    for set_name, test_set in other_sets.items():
        lines += ["", f"Test set `{set_name}`:", "", *header]
        lines += [
            f"| {methods[name].label} | {_success_cells(result, main.stage_size)} |"
            for name, result in test_set["methods"].items()
        ]
    score = metaworld_score(config, {name: m.result for name, m in methods.items()})
    if score is not None:
        n_adapt, K = score["adaptation_episodes"], config.evaluation.episodes
        rates = ", ".join(
            f"{methods[name].label} {100 * rate:.1f}%"
            for name, rate in score["success_rate"].items()
        )
        lines += [
            "",
            f"Meta-World's score (`metalearning_evaluation` in `metaworld/evaluation.py`): "
            f"the success rate of episodes {n_adapt + 1}-{K}, after {n_adapt} adaptation "
            f"episodes, over the test tasks: {rates}."
            + (
                ""
                if n_adapt == ADAPTATION_EPISODES
                else f" Meta-World adapts for {ADAPTATION_EPISODES} episodes, this run for "
                f"{n_adapt} (K = {K})."
            ),
        ]
    return lines


def _baselines_line(config: ExperimentConfig) -> str:
    """The report's line on the baselines: which, and how the trained ones were trained."""
    names = config.evaluation.baselines
    line = f"- Baselines: {', '.join(LABELS[b] for b in names) or 'none'}"
    trained = [LABELS[b] for b in names if b in ("multitask", "oracle")]
    if not trained:
        return line + "."
    bt = config.evaluation.baseline_training
    budget = (
        " with the agent's env-step budget" if bt.steps is None else f" for {bt.steps:,} env steps"
    )
    action = "with the mean action" if bt.deterministic else "sampling actions"
    return (
        f"{line}; {' and '.join(trained)} trained with Stable-Baselines3 "
        f"{bt.algorithm.upper()} on the same training tasks{budget}, evaluated {action}."
    )


def _report(
    config: ExperimentConfig,
    methods: Mapping[str, _Method],
    gap: float | None,
    other_sets: Mapping[str, Mapping[str, Any]],
    *,
    iteration: int,
    eval_time: float,
    trained: Mapping[str, float],
    run_dir: str = ".",
    run_has_report: bool = True,
) -> str:
    """The report; ``trained``: label -> wall time of the baselines trained in this call;
    ``run_dir``: the run folder relative to the report's (a re-evaluation's is ``../..``);
    ``run_has_report``: whether that folder has a report of its own (a run that stopped
    before its end has none)."""
    agent_name = config.agent.name
    main = methods[agent_name]
    K = config.evaluation.episodes
    stages = main.result.stages()
    labels = _stage_labels(main.result)
    final = labels[-1].replace("k=", "episode " if len(stages[-1]) == 1 else "episodes ")
    s = config.sampler
    sampler = (
        f"Ray, {s.num_workers} workers x {s.num_envs} envs"
        if s.kind == "ray"
        else f"local, {s.num_envs} envs"
    )
    hyper = ", ".join(f"{k}={v}" for k, v in config.agent.hyperparameters().items())
    lines = [
        f"# {main.label} on {config.env.id}",
        "",
        f"Run `{config.run.name}`, written {datetime.now().isoformat(timespec='seconds')}.",
        *(
            []
            if run_dir == "."
            else [
                "",
                f"A re-evaluation (`metarl eval`) of the run in [{run_dir}]({run_dir}/): its "
                f"checkpoint of iteration {iteration}, K = {K} episodes per task; "
                + (
                    f"the run's own results and report are in "
                    f"[{run_dir}/{REPORT_FILE}]({run_dir}/{REPORT_FILE})."
                    if run_has_report
                    else "the run has no report of its own (it stopped before its end)."
                ),
            ]
        ),
        "",
        "## What was run",
        "",
        f"- Environment: `{config.env.id}`"
        + (f" with {config.env.kwargs}" if config.env.kwargs else "")
        + f"; {config.env.n_train} training tasks, {config.env.n_test} held-out test tasks "
        f"(task seed {config.env.task_seed}).",
        f"- Agent: `{agent_name}` ({hyper}).",
        f"- Meta-training: {iteration} of {config.trainer.iterations} iterations, "
        f"{_fmt_steps(main.train_env_steps)} env steps, {_fmt_time(main.train_wall_time)} "
        f"of collection and updates; sampler: {sampler}.",
        _baselines_line(config),
        f"- Meta-test: K = {K} consecutive episode{'s' if K != 1 else ''} on each of the "
        f"{config.env.n_test} test tasks, every method on the same tasks and reset seeds "
        f"({_fmt_time(eval_time)}"
        + (
            ", of which "
            + " and ".join(f"{_fmt_time(t)} training the {n} baseline" for n, t in trained.items())
            if trained
            else ""
        )
        + ").",
        f"- Seeds: run {config.run.seed}, tasks {config.env.task_seed}, sampler "
        f"{config.sampler.seed}, trainer {config.trainer.seed}. One seed: "
        "docs/benchmarks.md#seeds asks for >= 3 for a published number.",
        "",
        "## Return of episode k (mean ± std over test tasks)",
        "",
        "Every method meets the same start states on each (task, k), so the differences "
        "between methods are paired; a trend over k that all of them share"
        + (", random included," if "random" in methods else "")
        + " comes from those start states, not from adaptation."
        + (
            f" A column `k=a-b` is the mean return of episodes a..b, the {main.result.stage_size} "
            f"episodes that {main.label} runs between two adaptation steps."
            if main.result.stage_size > 1
            else ""
        ),
        "",
        "| method | " + " | ".join(labels) + " | env steps | wall time |",
        "| --- | " + " | ".join("---:" for _ in labels) + " | ---: | ---: |",
    ]
    for m in methods.values():
        lines.append(
            f"| {m.label} | {_stage_cells(m.result, main.result.stage_size)} | "
            f"{_fmt_steps(m.train_env_steps)} | {_fmt_time(m.train_wall_time)} |"
        )
    for set_name, test_set in other_sets.items():
        lines += [
            "",
            f"## Test set `{set_name}`",
            "",
            f"{test_set['tasks']} tasks (task seed {test_set['task_seed']}) of `{config.env.id}` "
            f"with {test_set['env_kwargs']}"
            + (f" and effects {test_set['effects']}" if test_set["effects"] else "")
            + "; the same meta-test.",
            "",
            "| method | " + " | ".join(labels) + " |",
            "| --- | " + " | ".join("---:" for _ in labels) + " |",
        ]
        for name, result in test_set["methods"].items():
            lines.append(
                f"| {methods[name].label} | {_stage_cells(result, main.result.stage_size)} |"
            )
    lines += _success_lines(config, methods, other_sets)
    lines += ["", "## Oracle gap closed", ""]
    if gap is None:
        lines.append(
            "Not defined: it needs both the multi-task and the oracle baseline, with "
            "different returns."
        )
    else:
        lines.append(
            f"**{gap:.2f}** = ({main.label} {final} - multi-task) / (oracle - multi-task), "
            "docs/benchmarks.md#oracle-gap-closed; the baselines do not adapt, so each counts "
            "as its mean over "
            f"the {K} episodes. 1 means the agent matches the oracle after {K} episodes; 0 "
            "means it does no better than the multi-task policy."
        )
    run = "" if run_dir == "." else f"{run_dir}/"
    lines += [
        "",
        "## Files",
        "",
        f"- [{PLOT_FILE}]({PLOT_FILE}): adaptation curves.",
        f"- [{RESULTS_FILE}]({RESULTS_FILE}): every method's returns per task and episode.",
        f"- [metrics.csv]({run}metrics.csv) (per iteration), [eval.csv]({run}eval.csv) "
        f"(periodic meta-tests), their columns explained in [columns.md]({run}columns.md); "
        f"`{run}tb/` (TensorBoard), `{run}checkpoints/`.",
        f"- [{CONFIG_FILE}]({run}{CONFIG_FILE}): the resolved config "
        f"(`metarl train {CONFIG_FILE}` reruns it).",
        "",
    ]
    return "\n".join(lines)
