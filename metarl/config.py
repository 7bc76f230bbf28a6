"""Experiment configs: YAML files validated into typed objects, with command-line overrides.

An experiment config has one small section per concern::

    env:        which task family, its keyword arguments, the train/test task sets
    sampler:    local or Ray, environments per process, workers, seed
    agent:      the algorithm's name and its hyperparameters (its config class)
    trainer:    iterations, evaluation and checkpoint intervals (``TrainerSection``)
    evaluation: K, the baselines to compare with and their budget
    run:        output folder, name, the run's seed

``load_config(path, overrides)`` reads the YAML (``yaml.safe_load`` semantics, plus
``1e-3`` read as a float as YAML 1.2 does, and a key given twice in one mapping
refused with both lines), applies overrides ``key.sub=value`` (the value read as
YAML) and validates with pydantic in strict mode: nothing is coerced (``"5"`` is not
an integer), unknown keys are errors, ranges are checked.
Every failure raises one ``ConfigError`` whose lines name the field path
(``agent.learning_rate``), the bad value and what is allowed.

The ``agent`` section is checked against the agent's own config class (a settings
class, ``metarl.checks.settings``, e.g. ``metarl.agents.rl2.RL2Config``): its fields
become the section's keys, with their types, constraints, defaults and docstrings,
and its checks of several fields together run too. The ``trainer`` section is
``metarl.trainer.TrainerSection`` itself. A key that a config class has renamed is
refused with its new name (``agent.tasks_per_iteration was renamed
agent.meta_batch_size``), except in a run folder's own ``config.yaml``
(``load_config(..., run_folder=True)``), which is read under the new names.
Agents are looked up in ``metarl.agent_registry.AGENTS`` (``register_agent`` adds
one; installed packages offer theirs through the entry-point group ``metarl.agents``),
which also builds the ``agent`` section; ``metarl.config_errors`` words the errors.

A validated config is *resolved*: seeds left out take ``run.seed``, task counts left
out take the family's counts (``TASK_ENVS``), the run name defaults to ``<agent>_<env>``.
``config_to_yaml`` writes it back so that loading it again gives the same config.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from metarl.agent_registry import AgentConfig, agent_model, translate_renamed
from metarl.checks import SettingsError, is_integer
from metarl.config_errors import format_errors
from metarl.envs import METAWORLD_ENVS, TASK_ENVS, params_from_dicts
from metarl.envs.effects import check_effect_specs
from metarl.envs.metaworld import ADAPTATION_EPISODES, EVALUATION_EPISODES
from metarl.schema import (
    STRICT_SECTION,
    ConfigError,
    PhysicsParamDicts,
    parse_yaml,
    read_yaml,
    validation_message,
)
from metarl.trainer import TrainerConfig, TrainerSection

__all__ = [
    "AgentConfig",
    "ConfigError",
    "EnvConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "PhysicsParamDicts",
    "RandomizationConfig",
    "RunConfig",
    "SamplerConfig",
    "TestSetConfig",
    "TrainerSection",
    "apply_overrides",
    "config_to_yaml",
    "load_config",
    "read_yaml",
    "validate_config",
    "validation_message",
]

BaselineName = Literal["random", "multitask", "oracle"]
BASELINES: tuple[BaselineName, ...] = typing.get_args(BaselineName)


_KEY = re.compile(r"^[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*$")


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``key.sub=value`` set (``value`` read as YAML).

    Missing sections on the way are created; whether a key exists is checked by
    ``validate_config``, which names the key.

    Raises:
        ConfigError: an override is not ``key.sub=value``, its value is not valid
            YAML, or a key on its path holds a value that is not a section.
    """
    data: dict[str, Any] = json.loads(json.dumps(raw, default=str))
    for text in overrides:
        key, sep, value_text = text.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ConfigError(
                f"override {text!r}: expected key.sub=value, e.g. trainer.iterations=50 "
                "(keys are dot-separated names)"
            )
        value = parse_yaml(value_text, f"override {text!r}")
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"override {text!r}: {where} is a value ({child!r}), not a section with keys"
                )
            node = child
        node[parts[-1]] = value
    return data


# --------------------------------------------------------------------------- sections


def _registered_envs() -> list[str]:
    return [*TASK_ENVS, *METAWORLD_ENVS]


def _gymnasium_env(env_id: str) -> bool:
    import gymnasium as gym

    return env_id in gym.registry


class EnvConfig(BaseModel):
    """The task family and the reproducible train/test task sets."""

    model_config = STRICT_SECTION

    id: str
    """A registered task environment, e.g. ``metarl/PointRobot-v0`` (``metarl envs``), or
    any Gymnasium MuJoCo environment (``Hopper-v5``) made a task environment by a
    ``randomization`` section."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``gymnasium.make``."""
    task_seed: int | None = Field(default=None, ge=0)
    """Seed of the train/test task sets (default: ``run.seed``)."""
    train_tasks: int | None = Field(default=None, ge=1)
    """Number of meta-training tasks (default: the family's count)."""
    test_tasks: int | None = Field(default=None, ge=1)
    """Number of held-out meta-test tasks (default: the family's count)."""
    effects: list[dict[str, Any]] = Field(default_factory=list)
    """Unmodeled effects on every env of the run, innermost first:
    ``[{name: action_delay, steps: 2}, ...]`` (``metarl.envs.effects.EFFECTS``)."""

    @field_validator("effects")
    @classmethod
    def _known_effects(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return check_effect_specs(value)

    @field_validator("id")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in _registered_envs() and not _gymnasium_env(value):
            raise ValueError(
                f"unknown environment {value!r}; task environments: "
                f"{', '.join(_registered_envs())}; or a Gymnasium id with a randomization section"
            )
        return value

    @model_validator(mode="after")
    def _family_counts(self) -> EnvConfig:
        if self.id in TASK_ENVS:
            n_train, n_test = TASK_ENVS[self.id][2:]
        elif self.id in METAWORLD_ENVS:
            n_train, n_test = METAWORLD_ENVS[self.id][1:]
        else:  # physics randomization of a plain Gymnasium env
            n_train, n_test = PHYSICS_TASK_COUNTS
        if self.train_tasks is None:
            self.train_tasks = n_train
        if self.test_tasks is None:
            self.test_tasks = n_test
        return self

    @property
    def n_train(self) -> int:
        """Meta-training task count (resolved)."""
        assert self.train_tasks is not None
        return self.train_tasks

    @property
    def n_test(self) -> int:
        """Meta-test task count (resolved)."""
        assert self.test_tasks is not None
        return self.test_tasks


# Train / test task counts of a plain Gymnasium env randomized by a ``randomization`` section.
PHYSICS_TASK_COUNTS = (100, 20)

# Adaptive randomization schedules by name (``randomization.schedule``), imported when
# used: sim2real sits above the core, which names them here without importing them.
SCHEDULES: dict[str, str] = {
    "adr": "metarl.sim2real.adaptive:AutomaticDR",
    "doraemon": "metarl.sim2real.adaptive:DORAEMON",
}


class RandomizationConfig(BaseModel):
    """Physics randomization of every env of the run, and how it adapts.

    ``params``: name -> ``PhysicsParam`` dict (``PhysicsParam.to_dict``); every env is
    wrapped in ``PhysicsRandomization`` over them, and the run's tasks are their
    ``PhysicsTask``s. ``schedule``: ``uniform`` (tasks drawn from the params'
    distributions), or an adaptive schedule (``SCHEDULES``: ``adr``, ``doraemon``)
    that draws each iteration's tasks within the params' supports (the hard limits)
    and learns from the episodes' returns; ``options`` are its keyword arguments.
    """

    model_config = STRICT_SECTION

    schedule: Literal["uniform", "adr", "doraemon"] = "uniform"
    params: PhysicsParamDicts = Field(min_length=1)
    """name -> ``PhysicsParam`` dict; the distribution's support is the hard limit."""
    nominal: dict[str, float] = Field(default_factory=dict)
    """Starting values of an adaptive schedule (default: the middle of the limits)."""
    success_return: float | None = None
    """An episode succeeds when its return reaches this (``doraemon``: required)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the schedule (``adr``: step, low_threshold, high_threshold,
    buffer_size, boundary_probability; ``doraemon``: success_rate, kl_bound,
    init_concentration, min_episodes)."""

    @model_validator(mode="after")
    def _schedule(self) -> RandomizationConfig:
        self.build_schedule()  # the schedule's own checks, now
        return self

    def physics_params(self) -> dict[str, Any]:
        """The params as ``PhysicsParam``s."""
        return params_from_dicts(self.params)

    def build_schedule(self) -> Any:
        """The adaptive schedule (``None`` for ``uniform``).

        Raises:
            ValueError: unknown options (the message lists the allowed ones), or values
                the schedule refuses.
        """
        if self.schedule == "uniform":
            if self.options or self.nominal:
                raise ValueError("options and nominal are for an adaptive schedule (adr, doraemon)")
            return None
        module, _, name = SCHEDULES[self.schedule].partition(":")
        cls = getattr(importlib.import_module(module), name)
        params = inspect.signature(cls.__init__).parameters
        allowed = [p for p in params if p not in ("self", "params", "nominal", "success_return")]
        unknown = [k for k in self.options if k not in allowed]
        if unknown:
            raise ValueError(
                f"options: unknown argument(s) {', '.join(map(repr, unknown))} of "
                f"{self.schedule}; allowed: {', '.join(allowed)}"
            )
        kwargs = dict(self.options)
        if self.success_return is not None:
            kwargs["success_return"] = self.success_return
        try:
            return cls(self.physics_params(), nominal=self.nominal or None, **kwargs)
        except TypeError as err:
            raise ValueError(f"{self.schedule}: {err}") from None


class SamplerConfig(BaseModel):
    """Who collects the episodes: this process, or Ray workers."""

    model_config = STRICT_SECTION

    kind: Literal["local", "ray"] = "local"
    """``local``: one vector env in this process; ``ray``: Ray actors, each with a vector env."""
    num_envs: int = Field(default=8, ge=1)
    """Sub-environments per process: the local vector env's, or each Ray worker's."""
    num_workers: int = Field(default=2, ge=1)
    """Ray workers (``kind: ray`` only)."""
    cpus_per_worker: float = Field(default=1.0, gt=0)
    """CPUs each Ray worker reserves (``kind: ray`` only; fractions allowed)."""
    placement: Literal["pack", "spread"] = "pack"
    """Where Ray puts the workers (``kind: ray`` only): ``pack``, Ray's default (fill a
    node first); ``spread``, across the cluster's nodes as evenly as it can."""
    vectorization: Literal["sync", "async"] = "sync"
    """Gymnasium vector env mode inside each process."""
    seed: int | None = Field(default=None, ge=0)
    """Root seed of every trial's reset and action noise (default: ``run.seed``)."""


class RayConfig(BaseModel):
    """Which Ray instance the run's workers (``sampler.kind: ray``) use."""

    model_config = STRICT_SECTION

    address: str | None = None
    """``null``: start a private local instance; ``auto``: the cluster that ``ray start``
    started on this machine (or ``RAY_ADDRESS``); ``HOST:6379``: that cluster's head;
    ``ray://HOST:10001``: Ray Client."""
    num_cpus: int | None = Field(default=None, ge=1)
    """CPUs of a local instance (``address: null``; default: all of this machine's)."""
    object_store_memory: int = Field(default=512 * 1024**2, ge=78643200)
    """Bytes of a local instance's object store (at least Ray's minimum, 75 MiB)."""
    runtime_env: dict[str, Any] | None = None
    """Ray runtime environment of the workers, e.g. ``{pip: [metarl]}`` or
    ``{working_dir: .}`` on a cluster whose nodes lack metarl."""


_SET_BY_TRAINER = ("policy", "env", "seed", "device")


class BaselineTraining(BaseModel):
    """Training of the multi-task and oracle baselines (``metarl.agents.baselines``)."""

    model_config = STRICT_SECTION

    steps: int | None = Field(default=None, ge=1)
    """Env steps each trained baseline trains for (default: the agent's env steps, the
    same budget as docs/benchmarks.md#baselines asks)."""
    algorithm: Literal["ppo", "sac"] = "ppo"
    """Stable-Baselines3 algorithm."""
    algo_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the algorithm's constructor (SB3's defaults otherwise)."""
    num_envs: int = Field(default=8, ge=1)
    """Envs SB3 steps together."""
    deterministic: bool = True
    """Evaluate with the policy's mean action (as SB3's ``evaluate_policy`` does)."""

    @field_validator("algo_kwargs")
    @classmethod
    def _known_kwargs(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        algorithm = info.data.get("algorithm")
        if not value or algorithm is None:
            return value
        from metarl.agents.baselines import ALGORITHMS

        params = inspect.signature(ALGORITHMS[algorithm].__init__).parameters
        allowed = [p for p in params if p not in ("self", *_SET_BY_TRAINER)]
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ValueError(
                f"unknown {algorithm} argument(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed)}"
            )
        return value


_METHOD_NAMES = ("agent", *BASELINES)


class TestSetConfig(BaseModel):
    """A further set of test tasks for the final meta-test, drawn from the task family
    built with other env keyword arguments (e.g. a fixed shifted-physics set, or the
    nominal model, whatever width the agent was trained with)."""

    model_config = STRICT_SECTION

    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``gymnasium.make`` for this set, over ``env.kwargs``."""
    tasks: int | None = Field(default=None, ge=1)
    """Number of tasks (default: ``env.test_tasks``)."""
    task_seed: int | None = Field(default=None, ge=0)
    """Seed of the set's tasks (default: ``env.task_seed``)."""
    effects: list[dict[str, Any]] | None = None
    """Unmodeled effects of this set's envs (default: ``env.effects``; ``[]``: none)."""

    @field_validator("effects")
    @classmethod
    def _known_effects(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if value is None else check_effect_specs(value)


class EvaluationConfig(BaseModel):
    """The final meta-test: K episodes per held-out task, for the agent and its baselines."""

    model_config = STRICT_SECTION

    episodes: int = Field(default=3, ge=1)
    """K, consecutive episodes per test task (docs/benchmarks.md#the-meta-test: K >= 3,
    2 for PEARL). Default 3; for Meta-World envs 13, Meta-World's own protocol
    (``metalearning_evaluation`` in ``metaworld/evaluation.py``): 10 adaptation episodes,
    then 3 scored ones, whose success rate the report gives as Meta-World's score (for
    MAML, ``agent.adapt_episodes: 10`` puts its one inner step where Meta-World's is)."""
    baselines: list[BaselineName] = Field(default_factory=lambda: list(BASELINES))
    """Baselines evaluated on the same test tasks: ``random``, ``multitask`` (no task
    information), ``oracle`` (the task in its observation)."""
    baseline_training: BaselineTraining = Field(default_factory=lambda: BaselineTraining())
    """How the multi-task and oracle baselines are trained (Stable-Baselines3)."""
    baseline_dir: str | None = Field(default=None, min_length=1)
    """Folder where trained baselines are saved and looked up (default: the run
    folder's ``baselines/``). Share one between runs that compare agents on the same
    env, tasks, seed and budget: a baseline is reused only if all of these match."""
    test_sets: dict[str, TestSetConfig] = Field(default_factory=dict)
    """Further test sets, by name (letters, digits, ``_``; not a method's name), on
    which the agent and the baselines run the same final meta-test; their returns go
    into ``results.json`` and the report (``<name>.agent.return_last`` in studies)."""

    @field_validator("test_sets")
    @classmethod
    def _set_names(cls, value: dict[str, TestSetConfig]) -> dict[str, TestSetConfig]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z]\w*", name) or name in _METHOD_NAMES:
                raise ValueError(
                    f"test set name {name!r}: use letters, digits and _, starting with a "
                    f"letter, and none of {', '.join(_METHOD_NAMES)}"
                )
        return value

    @field_validator("baselines")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({b for b in value if value.count(b) > 1})
        if repeated:
            raise ValueError(f"baselines listed twice: {', '.join(repeated)}")
        return value


class RunConfig(BaseModel):
    """Where the run folder goes and the run's seed."""

    model_config = STRICT_SECTION

    root: str = "runs"
    """Folder under which run folders ``<name>-<timestamp>`` are made."""
    name: str | None = Field(default=None, min_length=1, pattern=r"^[\w.+-]+$")
    """Run name (letters, digits, ``_.+-``; default: ``<agent>_<env>``)."""
    seed: int = Field(default=0, ge=0)
    """The run's seed: the default of every other seed."""


class ExperimentConfig(BaseModel):
    """A whole experiment. Build it with ``load_config`` or ``validate_config``."""

    model_config = STRICT_SECTION

    env: EnvConfig
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    trainer: TrainerSection = Field(default_factory=TrainerSection)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    randomization: RandomizationConfig | None = None

    @model_validator(mode="after")
    def _resolve(self) -> ExperimentConfig:
        if self.randomization is None and self.env.id not in _registered_envs():
            raise ValueError(
                f"env.id: {self.env.id} is not a task environment; add a randomization "
                "section (physics params) to train on it"
            )
        if self.run.name is None:
            self.run.name = f"{self.agent.name}_{self.env.id.rsplit('/', 1)[-1]}"
        if self.env.id in METAWORLD_ENVS and "episodes" not in self.evaluation.model_fields_set:
            self.evaluation.episodes = ADAPTATION_EPISODES + EVALUATION_EPISODES
            self.evaluation.model_fields_set.add("episodes")
        for test_set in self.evaluation.test_sets.values():
            if test_set.tasks is None:
                test_set.tasks = self.env.n_test
            if test_set.task_seed is None:
                test_set.task_seed = self.env.task_seed
        return self

    def trainer_config(self) -> TrainerConfig:
        """The ``TrainerConfig`` of this experiment: the ``trainer`` section and K of
        the evaluations, ``evaluation.episodes``."""
        return TrainerConfig(
            **dataclasses.asdict(self.trainer), eval_episodes=self.evaluation.episodes
        )

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what ``config_to_yaml`` writes)."""
        return self.model_dump(mode="json")


# The experiment model of each agent section model (a re-registered agent gets a new one).
_model_cache: dict[type[AgentConfig], type[ExperimentConfig]] = {}


def experiment_model(agent_name: str) -> type[ExperimentConfig]:
    """``ExperimentConfig`` whose ``agent`` section is agent ``agent_name``'s."""
    section = agent_model(agent_name)
    if section in _model_cache:
        return _model_cache[section]
    model: type[ExperimentConfig] = create_model(
        f"ExperimentConfig_{agent_name}",
        __base__=ExperimentConfig,
        agent=(section, Field(default_factory=section)),
    )
    _model_cache[section] = model
    return model


# --------------------------------------------------------------------------- entry points


def _with_seeds(raw: Mapping[str, Any], model: type[ExperimentConfig]) -> dict[str, Any]:
    """``raw`` with the seeds it leaves out (or sets to null) set to ``run.seed``:
    ``env.task_seed``, ``sampler.seed``, ``trainer.seed`` and the agent's ``seed`` if it
    has one. Filled before validation because the trainer section is frozen; an
    invalid ``run.seed`` is left for its own error."""
    run = raw.get("run", {})
    default = RunConfig.model_fields["seed"].default
    seed = run.get("seed", default) if isinstance(run, Mapping) else None
    if not (is_integer(seed) and seed >= 0):
        return dict(raw)
    keys = [("env", "task_seed"), ("sampler", "seed"), ("trainer", "seed")]
    if "seed" in model.model_fields["agent"].annotation.model_fields:  # type: ignore[union-attr]
        keys.append(("agent", "seed"))
    data = dict(raw)
    for section, key in keys:
        if section not in data and model.model_fields[section].is_required():
            continue  # reported as missing
        values = data.get(section, {})
        if isinstance(values, Mapping) and values.get(key) is None:
            data[section] = {**values, key: seed}
    return data


def validate_config(raw: Mapping[str, Any], overridden: Sequence[str] = ()) -> ExperimentConfig:
    """Validate and resolve a config given as plain data (e.g. from YAML).

    ``overridden``: dotted keys set by overrides (named as such in errors).

    Raises:
        ConfigError: every problem found, one line each, naming the field path.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    agent = raw.get("agent")
    name = (
        agent.get("name", AgentConfig.model_fields["name"].default)
        if isinstance(agent, Mapping)
        else AgentConfig.model_fields["name"].default
    )
    if not isinstance(name, str):
        raise ConfigError(f"invalid config:\n  agent.name: must be a string, got {name!r}")
    model = experiment_model(name)
    try:
        config = model.model_validate_json(json.dumps(_with_seeds(raw, model), default=str))
        config.agent.to_dataclass()  # the config class's checks of several fields together
    except ValidationError as err:
        errors = err.errors()
    except SettingsError as err:
        errors = [{**e, "loc": ("agent", *e["loc"])} for e in err.errors]
    else:
        return config
    raise ConfigError(format_errors(errors, model, set(overridden)))


def load_config(
    path: str | Path | None, overrides: Sequence[str] = (), *, run_folder: bool = False
) -> ExperimentConfig:
    """Read the YAML config ``path`` (``None``: start from ``{}``), apply overrides, validate.

    ``run_folder``: ``path`` is a run folder's own ``config.yaml``, written by metarl:
    keys renamed since it was written are read under their new names
    (``translate_renamed``); an old key in the overrides is still an error.

    Raises:
        ConfigError: unreadable file, bad YAML, bad override or invalid config; the
            message names the field path, the value and what is allowed.
    """
    raw = read_yaml(path) if path is not None else {}
    if run_folder:
        raw = translate_renamed(raw)
    data = apply_overrides(raw, overrides)
    keys = [o.partition("=")[0].strip() for o in overrides]
    try:
        return validate_config(data, keys)
    except ConfigError as err:
        if path is None:
            raise
        raise ConfigError(f"{path}: {err}") from None


def config_to_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML (sections in schema order)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
