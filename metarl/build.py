"""What an experiment config builds: the run's environments, task sets, agent and samplers.

Every env of a run (the meta-training sampler's, the meta-test samplers', the
baselines' training envs) is ``gymnasium.make(env.id, **env.kwargs)`` in the run's
wrappers (``run_wrappers``): the physics randomization of ``randomization.params``,
then the effects of ``env.effects``. What an env refuses is a ``ConfigError`` naming
the field. The meta-test sampler (``eval_sampler``) is local and apart from the
training sampler, so that evaluating during training does not change the
training's episodes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import gymnasium as gym

import metarl  # noqa: F401  (registers the environments)
from metarl.agent_registry import AGENTS
from metarl.agents.base import Agent
from metarl.config import ConfigError, ExperimentConfig
from metarl.envs import PhysicsRandomization, task_distribution
from metarl.envs.base import EnvWrapper
from metarl.envs.effects import apply_effects, effect_wrappers
from metarl.envs.metaworld_tasks import MetaWorldTask
from metarl.sampling import LocalSampler, Sampler
from metarl.tasks import Task, TaskSets

__all__ = [
    "TestSet",
    "build_agent",
    "build_sampler",
    "eval_sampler",
    "run_wrappers",
    "task_sets",
    "test_set_tasks",
]


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
        wrappers=[*run_wrappers(config, effects), *agent.env_wrappers],
    )
