"""Experiment configs: validation errors name the field, overrides, resolution, YAML round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import Field, model_validator

from metarl.agent_registry import AGENTS, register_agent
from metarl.checks import CrossFieldError, settings
from metarl.config import (
    ConfigError,
    ExperimentConfig,
    TrainerSection,
    config_to_yaml,
    load_config,
    validate_config,
)
from metarl.envs import TASK_ENVS
from metarl.trainer import TrainerConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = "metarl/PointRobot-v0"


def _config(**sections: Any) -> dict[str, Any]:
    return {"env": {"id": ENV}, **sections}


def _error(raw: dict[str, Any], overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        if overrides:
            load_config(None, ("env.id=" + ENV, *overrides))
        else:
            validate_config(raw)
    return str(info.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_unknown_keys_are_named_with_the_allowed_ones() -> None:
    msg = _error(_config(trainer={"iteratons": 5}))
    assert "trainer.iteratons: unknown key" in msg and "iterations" in msg
    msg = _error(_config(samplr={}))
    assert "samplr: unknown key" in msg and "sampler" in msg


def test_wrong_type_is_not_coerced() -> None:
    msg = _error(_config(trainer={"iterations": "5"}))
    assert "trainer.iterations" in msg and "'5'" in msg and "a positive integer" in msg
    msg = _error(_config(trainer={"progress": "yes"}))
    assert "trainer.progress" in msg and "true or false" in msg
    msg = _error(_config(sampler={"num_envs": 2.5}))
    assert "sampler.num_envs" in msg


def test_out_of_range_and_literal_values() -> None:
    msg = _error(_config(sampler={"num_envs": 0, "kind": "gpu"}))
    assert "sampler.num_envs" in msg and "got 0" in msg and "a positive integer" in msg
    assert "sampler.kind" in msg and "'local'" in msg and "'ray'" in msg
    msg = _error(_config(evaluation={"episodes": 0, "baselines": ["random", "expert"]}))
    assert "evaluation.episodes" in msg and "evaluation.baselines.1" in msg
    assert msg.startswith("invalid config (2 errors)")


def test_unknown_env_lists_the_registered_ones() -> None:
    msg = _error({"env": {"id": "metarl/Nope-v0"}})
    assert "env.id" in msg and "'metarl/Nope-v0'" in msg
    assert all(env_id in msg for env_id in TASK_ENVS)
    assert "env.id: required" in _error({"env": {}})


def test_agent_hyperparameters_are_checked_against_its_dataclass() -> None:
    msg = _error(_config(agent={"name": "rl2", "lr": 1e-3}))
    assert "agent.lr: unknown key" in msg and "learning_rate" in msg and "hidden_size" in msg
    msg = _error(_config(agent={"hidden_size": 1.5}))
    assert "agent.hidden_size" in msg and "1.5" in msg
    # The dataclass's own checks (__post_init__) run too, named by the field.
    msg = _error(_config(agent={"gamma": 2.0}))
    assert "agent.gamma" in msg and "2.0" in msg
    msg = _error(_config(agent={"name": "maml"}))
    assert "agent.name" in msg and "'maml'" in msg and "rl2" in msg


@settings
class _ToyConfig:
    """A settings class registered from outside: its constraints sit on its fields."""

    steps: int = 3
    scale: Annotated[float, Field(gt=0)] = 0.5
    sizes: tuple[int, ...] = (4, 4)

    @model_validator(mode="after")
    def _bounded(self) -> _ToyConfig:
        if self.steps > 10 and self.scale > 1:
            raise CrossFieldError(
                ("steps", "scale"), f"steps > 10 needs scale <= 1, got {self.steps}, {self.scale}"
            )
        return self


def test_registered_agent_gets_its_settings_schema() -> None:
    register_agent("toy", _ToyConfig, "unused:Agent")
    try:
        config = validate_config(_config(agent={"name": "toy", "sizes": [8], "scale": 2.0}))
        assert config.agent.to_dataclass() == _ToyConfig(steps=3, scale=2.0, sizes=(8,))
        assert "agent.scale" in _error(_config(agent={"name": "toy", "scale": -1.0}))
        msg = _error(_config(agent={"name": "toy", "seed": 1}))
        assert "agent.seed: unknown key" in msg and "steps, scale, sizes" in msg
        # A check of several fields together names them by their paths.
        msg = _error(_config(agent={"name": "toy", "steps": 11, "scale": 2.0}))
        assert "agent.steps, agent.scale: steps > 10 needs scale <= 1, got 11, 2.0" in msg
    finally:
        del AGENTS["toy"]


@dataclasses.dataclass(frozen=True)
class _PlainConfig:
    """A plain dataclass: not a settings class."""

    width: int = 2


def test_an_agent_config_must_be_a_settings_class() -> None:
    """A plain dataclass is refused when registered, and when a config names an agent
    registered by a ``"module:Name"`` string that turns out to be one."""
    with pytest.raises(TypeError, match=r"must be a settings class \(decorated with "):
        register_agent("toy", _PlainConfig, "unused:Agent")
    assert "toy" not in AGENTS
    register_agent("toy", f"{__name__}:_PlainConfig", "unused:Agent")
    try:
        msg = _error(_config(agent={"name": "toy"}))
        assert "agent.name: agent 'toy': an agent's config class must be a settings" in msg
        assert "@metarl.checks.settings" in msg
    finally:
        del AGENTS["toy"]


@settings
class _OtherToyConfig:
    """Another config registered under the name of ``_ToyConfig``."""

    width: int = 2


def test_registering_an_agent_again_replaces_its_section() -> None:
    """The section models made for a name are not reused after it is registered again."""
    register_agent("toy", _ToyConfig, "unused:Agent")
    try:
        assert validate_config(_config(agent={"name": "toy"})).agent.to_dataclass() == (
            _ToyConfig()
        )
        register_agent("toy", _OtherToyConfig, "unused:Agent")
        config = validate_config(_config(agent={"name": "toy", "width": 5}))
        assert config.agent.to_dataclass() == _OtherToyConfig(width=5)
        assert "agent.steps: unknown key" in _error(_config(agent={"name": "toy", "steps": 1}))
    finally:
        del AGENTS["toy"]


def test_overrides_apply_as_yaml_values(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_config(trainer={"iterations": 7})))
    config = load_config(
        path,
        [
            "trainer.iterations=9",
            "agent.learning_rate=3e-4",  # YAML 1.1 would read this as a string
            "evaluation.baselines=[random]",
            "env.kwargs.task={kind: goal, goal: [0.5, 0.5]}",
            "run.name=my-run",
        ],
    )
    assert config.trainer.iterations == 9
    assert config.agent.learning_rate == pytest.approx(3e-4)  # type: ignore[attr-defined]
    assert config.evaluation.baselines == ["random"]
    assert config.env.kwargs == {"task": {"kind": "goal", "goal": [0.5, 0.5]}}
    assert config.run.name == "my-run"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.iterations", "expected key.sub=value"),
        ("=5", "expected key.sub=value"),
        ("trainer..iterations=5", "expected key.sub=value"),
        ("trainer.iterations=[1", "not valid YAML"),
        ("env.id.name=x", "env.id is a value"),
        ("trainer.iteratons=5", "trainer.iteratons: unknown key"),
        ("sampler.num_envs=-1", "sampler.num_envs"),
    ],
)
def test_bad_overrides(override: str, expected: str) -> None:
    msg = _error({}, (override,))
    assert expected in msg
    assert override.partition("=")[0] in msg or "key.sub=value" in msg


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(bad)
    bad.write_text(yaml.safe_dump({"env": {"id": ENV, "train_tasks": 0}}))
    with pytest.raises(ConfigError, match=r"(?s)bad\.yaml: invalid config .*env\.train_tasks"):
        load_config(bad)


def test_resolution_fills_defaults_from_the_family_and_the_run_seed() -> None:
    config = validate_config({"env": {"id": ENV}, "run": {"seed": 7}})
    assert (config.env.n_train, config.env.n_test) == TASK_ENVS[ENV][2:]
    assert config.env.task_seed == config.sampler.seed == config.trainer.seed == 7
    assert config.agent.seed == 7  # type: ignore[attr-defined]
    assert config.run.name == "rl2_PointRobot-v0"
    explicit = validate_config(
        {"env": {"id": ENV, "task_seed": 1}, "agent": {"seed": 2}, "run": {"seed": 7}}
    )
    assert explicit.env.task_seed == 1 and explicit.agent.seed == 2  # type: ignore[attr-defined]
    tc = config.trainer_config()
    assert tc.seed == 7 and tc.eval_episodes == config.evaluation.episodes


def test_resolved_config_round_trips_through_yaml(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "rl2_point_robot.yaml", ["agent.learning_rate=1e-5"])
    path = tmp_path / "resolved.yaml"
    path.write_text(config_to_yaml(config))
    again = load_config(path)
    assert again == config
    assert again.to_dict() == config.to_dict()
    assert yaml.safe_load(path.read_text())["agent"]["learning_rate"] == pytest.approx(1e-5)


def test_every_config_in_configs_is_valid() -> None:
    paths = sorted((ROOT / "configs").glob("*.yaml"))
    assert paths
    for path in paths:
        assert isinstance(load_config(path), ExperimentConfig)
        assert path.read_text().startswith("#"), f"{path.name} needs a comment saying what it runs"


def test_trainer_section_is_the_trainer_settings_class() -> None:
    """The trainer's settings are declared once (``TrainerSection``, which
    ``TrainerConfig`` extends by K); the YAML section is that class, K comes from
    ``evaluation.episodes``."""
    assert ExperimentConfig.model_fields["trainer"].annotation is TrainerSection
    assert issubclass(TrainerConfig, TrainerSection)
    section = {f.name for f in dataclasses.fields(TrainerSection)}
    assert {f.name for f in dataclasses.fields(TrainerConfig)} == section | {"eval_episodes"}
    config = validate_config(_config(trainer={"iterations": 7}, evaluation={"episodes": 4}))
    assert config.trainer_config() == TrainerConfig(iterations=7, eval_episodes=4)
    msg = _error(_config(trainer={"eval_episodes": 4}))
    assert "trainer.eval_episodes: unknown key" in msg and "iterations" in msg


def test_baseline_algorithm_arguments_are_checked() -> None:
    msg = _error(_config(evaluation={"baseline_training": {"algo_kwargs": {"n_step": 64}}}))
    assert "evaluation.baseline_training.algo_kwargs" in msg and "n_steps" in msg
    msg = _error(_config(evaluation={"baseline_training": {"algo_kwargs": {"seed": 1}}}))
    assert "'seed'" in msg


def test_ray_section_and_placement_errors_name_the_field() -> None:
    msg = _error(_config(sampler={"placement": "wide"}))
    assert "sampler.placement" in msg and "'pack', 'spread'" in msg
    msg = _error(_config(ray={"num_cpus": 0}))
    assert "ray.num_cpus" in msg and "a positive integer" in msg
    msg = _error(_config(ray={"object_store_memory": 1000}))
    assert "ray.object_store_memory" in msg
    msg = _error(_config(ray={"adress": "auto"}))
    assert "ray.adress: unknown key" in msg and "address" in msg
    msg = _error(_config(sampler={"address": "auto"}))  # moved to ray.address
    assert "sampler.address: unknown key" in msg


def test_effects_are_checked_by_name_in_the_env_and_test_set_sections() -> None:
    msg = _error({"env": {"id": ENV, "effects": [{"name": "delay", "steps": 1}]}})
    assert "env.effects" in msg and "unknown effect 'delay'; known: action_delay" in msg
    msg = _error({"env": {"id": ENV, "effects": [{"name": "backlash", "gap": 1}]}})
    assert "env.effects" in msg and "allowed: width, initial" in msg
    sets = {"test_sets": {"real": {"effects": [{"name": "push"}]}}}
    msg = _error(_config(evaluation=sets))
    assert "evaluation.test_sets.real.effects" in msg and "missing argument(s) probability" in msg
    ok = validate_config(
        {"env": {"id": ENV, "effects": [{"name": "action_delay", "steps": [0, 2]}]}}
    )
    assert ok.env.effects == [{"name": "action_delay", "steps": [0, 2]}]


def test_randomization_section_is_checked() -> None:
    mass = {
        "field": "body_mass",
        "elements": ["torso"],
        "dist": {"kind": "uniform", "low": 0.5, "high": 2},
    }
    base = {"env": {"id": "Hopper-v5"}}
    msg = _error(base)
    assert "Hopper-v5 is not a task environment; add a randomization section" in msg
    msg = _error(
        {**base, "randomization": {"schedule": "adr", "params": {"m": mass}, "options": {"stp": 1}}}
    )
    assert "randomization" in msg and "unknown argument(s) 'stp' of adr; allowed: step" in msg
    msg = _error({**base, "randomization": {"params": {"m": {**mass, "field": "mass"}}}})
    assert "randomization.params" in msg and "m:" in msg
    msg = _error({**base, "randomization": {"schedule": "doraemon", "params": {"m": mass}}})
    assert "success_return" in msg
    msg = _error({**base, "randomization": {"params": {"m": mass}, "options": {"step": 1}}})
    assert "options and nominal are for an adaptive schedule" in msg
    msg = _error(
        {
            **base,
            "randomization": {
                "schedule": "adr",
                "params": {"m": mass},
                "nominal": {"m": 5.0},
                "options": {"step": 0.1, "low_threshold": 0, "high_threshold": 1},
            },
        }
    )
    assert "nominal.m: 5.0 lies outside the limits" in msg
    ok = validate_config({**base, "randomization": {"params": {"m": mass}}})
    assert ok.env.n_train == 100 and ok.randomization is not None


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    """YAML keys are unique: a second ``trainer:`` section (or key) is an error naming
    the key and its lines, in every file the project reads, not a silent replacement."""
    path = tmp_path / "twice.yaml"
    path.write_text(
        f"env:\n  id: {ENV}\ntrainer:\n  iterations: 3\nrun:\n  seed: 1\n"
        "trainer:\n  iterations: 50\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: not valid YAML: duplicate key 'trainer' on lines 3 and 7"
    path.write_text(f"env:\n  id: {ENV}\nagent:\n  hidden_size: 8\n  hidden_size: 16\n")
    with pytest.raises(ConfigError, match="duplicate key 'hidden_size' on lines 4 and 5"):
        load_config(path)
    with pytest.raises(ConfigError, match="override .*duplicate key 'epochs' on line 1"):
        load_config(None, ["env.id=" + ENV, "agent={epochs: 1, epochs: 2}"])
    # YAML merge keys may repeat a merged key: that is what they are for.
    path.write_text(f"env:\n  id: {ENV}\nbase: &b {{epochs: 1}}\nagent:\n  <<: *b\n  epochs: 2\n")
    with pytest.raises(ConfigError, match="base: unknown key"):
        load_config(path)  # parsed; only the unknown section is refused

    # The other files: a study, a sysid file, a robot file.
    from metarl.sim2real.robot_commands import load_robot_file
    from metarl.sim2real.sysid_command import load_sysid
    from metarl.sweep import load_study

    for load, section in (
        (load_study, "study"),
        (load_sysid, "sysid"),
        (lambda p: load_robot_file(p, "record"), "record"),
    ):
        path.write_text(f"{section}:\n  name: a\n  name: b\n")
        with pytest.raises(ConfigError, match="duplicate key 'name' on lines 2 and 3"):
            load(path)


# --------------------------------------------------------------------------- one declaration


def test_agent_sections_take_the_constraints_of_the_config_classes() -> None:
    """Each agent's settings are declared once, in its config class: the ``agent``
    section has the class's fields with their constraints, so YAML and Python refuse a
    value in the same words."""
    from metarl.agent_registry import agent_model
    from metarl.checks import settings_fields

    for name, entry in AGENTS.items():
        cls = entry.config_class()
        section = agent_model(name).model_fields
        for field, info in settings_fields(cls).items():
            assert section[field].metadata == info.metadata, (name, field)
            assert section[field].description == info.description, (name, field)
    msg = _error(_config(agent={"name": "ppo", "gamma": 2.0, "hidden_sizes": [8, 0]}))
    assert "agent.gamma: Input should be less than or equal to 1, got 2.0" in msg
    assert "allowed: in [0, 1]" in msg and "agent.hidden_sizes.1" in msg
    with pytest.raises(ValueError, match=r"PPOConfig.gamma must be in \[0, 1\], got 2.0"):
        AGENTS["ppo"].config_class()(gamma=2.0)
    # A check of several fields together is the class's own, named by their paths.
    msg = _error(_config(agent={"name": "pearl", "num_steps_prior": 0, "num_steps_posterior": 0}))
    assert (
        "agent.num_steps_prior, agent.num_steps_posterior: num_steps_prior + "
        "num_steps_posterior must be positive" in msg
    )


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ("agent.name=ppo", "agent.init_std=.inf"),
            "agent.init_std: Input should be a finite number, got inf; allowed: a finite "
            "positive number (set by the override agent.init_std=...)",
        ),
        (
            ("agent.name=rl2", "agent.learning_rate=-.inf"),
            "agent.learning_rate: Input should be a finite number, got -inf; allowed: a finite "
            "positive number (set by the override agent.learning_rate=...)",
        ),
        (
            ("agent.name=ppo", "agent.hidden_sizes=[64, 0]"),
            "agent.hidden_sizes.1: Input should be greater than or equal to 1, got 0; allowed: "
            "a positive integer (set by the override agent.hidden_sizes=...)",
        ),
        (
            ("agent.name=pearl", "agent.num_steps_prior=0", "agent.num_steps_posterior=0"),
            "agent.num_steps_prior, agent.num_steps_posterior: num_steps_prior + "
            "num_steps_posterior must be positive (the encoder buffer is refilled from them), "
            "got 0 + 0 (set by the override agent.num_steps_prior=...)",
        ),
        (  # not the agent's: an item of another section's list, and a float outside one
            ("evaluation.baselines=[random, expert]",),
            "evaluation.baselines.1: Input should be 'random', 'multitask' or 'oracle', got "
            "'expert'; allowed: one of ['random', 'multitask', 'oracle'] (set by the "
            "override evaluation.baselines=...)",
        ),
        (
            ("sampler.cpus_per_worker=.inf",),
            "sampler.cpus_per_worker: Input should be a finite number, got inf; allowed: a "
            "finite positive number (set by the override sampler.cpus_per_worker=...)",
        ),
    ],
)
def test_every_error_names_its_path_what_is_allowed_and_its_override(
    overrides: tuple[str, ...], line: str
) -> None:
    msg = _error({}, overrides)
    assert msg.splitlines()[1:] == [f"  {line}"], msg


# --------------------------------------------------------------------------- one vocabulary

RENAMED = [
    ("ppo", "tasks_per_iteration", "meta_batch_size"),
    ("ppo", "episodes_per_task", "episodes_per_trial"),
    ("maml_trpo", "episodes_per_task", "episodes_per_trial"),
    ("promp", "episodes_per_task", "episodes_per_trial"),
    ("pearl", "num_tasks_sample", "tasks_per_iteration"),
]


@pytest.mark.parametrize(("agent", "old", "new"), RENAMED)
def test_an_old_name_is_refused_with_the_new_one(agent: str, old: str, new: str) -> None:
    msg = _error(_config(agent={"name": agent, old: 3}))
    assert f"agent.{old} was renamed agent.{new}" in msg
    msg = _error({}, (f"agent.name={agent}", f"agent.{old}=3"))
    assert f"agent.{old} was renamed agent.{new} (set by the override" in msg
    cls = AGENTS[agent].config_class()
    with pytest.raises(ConfigError, match=f"{cls.__name__}.{old} was renamed {cls.__name__}.{new}"):
        cls(**{old: 3})


def test_the_agents_count_in_one_vocabulary() -> None:
    """The trial length is ``episodes_per_trial`` and the tasks of an update
    ``meta_batch_size`` in every agent that has them; PEARL, which updates from replay,
    names the tasks it collects on per iteration ``tasks_per_iteration``."""
    from metarl.checks import settings_fields

    fields = {name: set(settings_fields(e.config_class())) for name, e in AGENTS.items()}
    old = {"episodes_per_task", "num_tasks_sample"}
    assert all(not f & old for f in fields.values()), fields
    for name in ("rl2", "maml_trpo", "promp", "ppo"):
        assert {"meta_batch_size", "episodes_per_trial"} <= fields[name], name
        assert "tasks_per_iteration" not in fields[name], name
    assert {"meta_batch_size", "tasks_per_iteration"} <= fields["pearl"]


def test_a_run_folder_config_is_read_under_the_new_names(tmp_path: Path) -> None:
    """A run folder's own config.yaml, written before a rename, loads as the config
    with the new names (``run_folder=True``); the same file given as a user's config
    is refused with the new names."""
    config = load_config(ROOT / "configs" / "ppo_hopper_params_dr.yaml")
    data = config.to_dict()
    agent = data["agent"]
    agent["tasks_per_iteration"] = agent.pop("meta_batch_size")
    agent["episodes_per_task"] = agent.pop("episodes_per_trial")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_config(path, run_folder=True) == config
    with pytest.raises(ConfigError, match="agent.tasks_per_iteration was renamed"):
        load_config(path)
    with pytest.raises(ConfigError, match="agent.episodes_per_task was renamed"):
        load_config(path, ["agent.episodes_per_task=2"], run_folder=True)
