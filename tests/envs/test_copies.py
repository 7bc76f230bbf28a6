"""Copies of every environment and wrapper run what they report.

A copy (``pickle``, ``cloudpickle``, ``copy.deepcopy``, or shipped to a Ray task) of
an environment rebuilds the inner Gymnasium environment from its constructor, with
a fresh ``MjModel``. Each case here checks, at two moments (before any reset, and in
the middle of an episode), that the copy

- holds the physics and the task the original holds at that moment;
- from the same seeded reset, steps exactly as the original (observations, rewards,
  infos, the task, every physical field of the model), and the physics its
  ``info["physics"]`` reports are the ones in its model (recomputed independently,
  on a freshly made environment);
- from an unseeded reset, draws what the original draws (the wrappers' generators
  travel with the copy).
"""

from __future__ import annotations

import copy
import logging
import pickle
import sys
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import (
    TASK_ENVS,
    PhysicsParam,
    PhysicsRandomization,
    PhysicsSpace,
    Uniform,
    get_task,
    is_task_env,
    set_task,
    task_distribution,
)
from metarl.envs.base import layers
from metarl.envs.effects import apply_effects
from metarl.envs.mujoco_state import RecordState
from metarl.envs.physics_fields import DERIVED_FIELDS, PHYSICS_FIELDS, has_field, snapshot
from metarl.envs.wrappers import MultiTaskEnv, TaskInObservation
from metarl.tasks import PhysicsTask

COPIES: dict[str, Callable[[Any], Any]] = {
    "pickle": lambda env: pickle.loads(pickle.dumps(env)),
    "cloudpickle": lambda env: cloudpickle.loads(cloudpickle.dumps(env)),
    "deepcopy": copy.deepcopy,
}

HOPPER_PARAMS = {
    "torso_mass": PhysicsParam("body_mass", elements=["torso"], dist=Uniform(0.5, 2.0)),
    "gravity": PhysicsParam("gravity", components=["z"], dist=Uniform(0.8, 1.2)),
    "damping": PhysicsParam("dof_damping", dist=Uniform(0.5, 2.0), independent=True),
}
CHEETAH_PARAMS = {
    "friction": PhysicsParam("geom_friction", components=["sliding"], dist=Uniform(0.3, 1.5)),
    "thigh_mass": PhysicsParam("body_mass", elements=["bthigh", "fthigh"], dist=Uniform(0.7, 1.3)),
}


def _randomized_hopper(resample: str = "reset", every: int | None = None) -> gym.Env[Any, Any]:
    return PhysicsRandomization(
        gym.make("Hopper-v5"), HOPPER_PARAMS, resample=resample, every=every
    )


def _frozen_hopper() -> gym.Env[Any, Any]:
    env = _randomized_hopper()
    set_task(
        env,
        PhysicsTask(
            {"torso_mass": 1.7, "gravity": 0.85, "damping": (1.5, 0.6, 1.9, 1.0, 0.7, 1.2)}
        ),
    )
    return env


def _restored_hopper() -> gym.Env[Any, Any]:
    env = _randomized_hopper()
    env.reset(seed=11)
    env.restore_defaults()
    return env


def _hopper_with_new_params() -> gym.Env[Any, Any]:
    env = _randomized_hopper()
    env.reset(seed=11)
    env.set_params({"torso_mass": HOPPER_PARAMS["torso_mass"]})  # due at the next reset
    return env


def _randomized_task_env() -> gym.Env[Any, Any]:
    """Physics randomization over a metarl task env (its own task travels too)."""
    env = PhysicsRandomization(gym.make("metarl/HalfCheetahVel-v0"), CHEETAH_PARAMS)
    set_task(env.env, task_distribution(env.env).sample(np.random.default_rng(4), 1)[0])
    return env


def _multitask(env_id: str) -> gym.Env[Any, Any]:
    env = gym.make(env_id)
    return MultiTaskEnv(env, task_distribution(env).sample(np.random.default_rng(2), 5))


def _effects(specs: list[dict[str, Any]], base: Callable[[], gym.Env[Any, Any]]) -> Any:
    return lambda: apply_effects(base(), specs)


def _target() -> gym.Env[Any, Any]:
    from metarl.sim2real.targets import TargetConfig, make_target_env

    config = TargetConfig.model_validate(
        {
            "env": "InvertedPendulum-v5",
            "physics": {
                "pole_mass": {
                    "field": "body_mass",
                    "elements": ["pole"],
                    "dist": {"kind": "fixed", "value": 1.4},
                },
            },
            "effects": [{"name": "observation_noise", "std": 0.01, "bias_std": 0.02}],
        }
    )
    return make_target_env(config)


ALL_EFFECTS = [
    {"name": "action_delay", "steps": [0, 2]},
    {"name": "observation_delay", "steps": 1},
    {"name": "observation_noise", "std": 0.01, "bias_std": 0.05},
    {"name": "action_noise", "std": 0.1},
    {"name": "backlash", "width": 0.05},
    {"name": "saturation", "limit": 0.5},
    {"name": "push", "probability": 0.3, "force": 20.0, "duration": 2, "axes": "xz"},
]

BUILDS: dict[str, Callable[[], gym.Env[Any, Any]]] = {
    **{env_id: (lambda env_id=env_id: gym.make(env_id)) for env_id in sorted(TASK_ENVS)},
    "metarl/MetaWorld-ML1-v0": lambda: gym.make("metarl/MetaWorld-ML1-v0"),
    "physics[reset]": _randomized_hopper,
    "physics[steps]": lambda: _randomized_hopper("steps", 3),
    "physics[once]": lambda: _randomized_hopper("once"),
    "physics[set_task]": _frozen_hopper,
    "physics[restore_defaults]": _restored_hopper,
    "physics[set_params]": _hopper_with_new_params,
    "physics[over a task env]": _randomized_task_env,
    "multitask[point robot]": lambda: _multitask("metarl/PointRobot-v0"),
    "multitask[hopper params]": lambda: _multitask("metarl/HopperParams-v0"),
    "oracle[multitask]": lambda: TaskInObservation(_multitask("metarl/HalfCheetahDir-v0")),
    **{
        f"effect[{spec['name']}]": _effects([spec], lambda: gym.make("Hopper-v5"))
        for spec in ALL_EFFECTS
    },
    "effects[all over physics]": _effects(ALL_EFFECTS, lambda: _randomized_hopper("steps", 4)),
    "record_state": lambda: RecordState(gym.make("Walker2d-v5")),
    "effect[state_noise]": _effects(
        [{"name": "state_noise", "qpos_std": 0.01, "qvel_std": 0.1, "qvel_bias_std": 0.05}],
        lambda: RecordState(_randomized_hopper()),
    ),
    "target": _target,
}


# -- what an environment runs ---------------------------------------------------------------


def _model_physics(env: gym.Env[Any, Any]) -> dict[str, np.ndarray]:
    """Every physical field (and every constant MuJoCo derives) of the env's model."""
    model = getattr(env.unwrapped, "model", None)
    if model is None:
        return {}
    attrs = {f.attr for f in PHYSICS_FIELDS.values()} | set(DERIVED_FIELDS)
    return {a: snapshot(model, a).copy() for a in sorted(attrs) if has_field(model, a)}


def _state(env: gym.Env[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"physics": _model_physics(env)}
    if is_task_env(env):
        try:
            out["task"] = get_task(env)
        except RuntimeError:  # PhysicsRandomization before a draw, with no default task
            out["task"] = None
    return out


def _actions(env: gym.Env[Any, Any], n: int) -> Iterator[np.ndarray]:
    space = env.action_space
    assert isinstance(space, gym.spaces.Box)
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.uniform(space.low, space.high).astype(space.dtype)


def _rollout(env: gym.Env[Any, Any], seed: int | None, steps: int = 8) -> list[Any]:
    obs, info = env.reset(seed=seed)
    record: list[Any] = [obs, info, _state(env)]
    for action in _actions(env, steps):
        obs, reward, terminated, truncated, info = env.step(action)
        record += [obs, reward, terminated, truncated, info, _state(env)]
        if terminated or truncated:
            break
    return record


def _assert_same(got: Any, expected: Any, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key in expected:
            _assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)) and not isinstance(expected, str):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _assert_same(g, e, f"{where}[{i}]")
    elif isinstance(expected, (np.ndarray, np.generic, float, int)):
        np.testing.assert_array_equal(got, expected, err_msg=where)
    else:
        assert got == expected, where


def _physics_wrapper(env: gym.Env[Any, Any]) -> PhysicsRandomization | None:
    return next((x for x in layers(env) if isinstance(x, PhysicsRandomization)), None)


def _assert_spaces_bound_to_its_model(env: gym.Env[Any, Any], where: str) -> None:
    """Every physics space a layer holds (``task_distribution(env)`` too) is on the
    model the env runs, so that ``apply`` / ``restore`` through it reach that model."""
    model = getattr(env.unwrapped, "model", None)
    layer: Any = env
    while True:
        space = getattr(layer, "task_distribution", None)
        if isinstance(space, PhysicsSpace):
            assert space.model is model, f"{where}: {type(layer).__name__}'s space"
        if not isinstance(layer, gym.Wrapper):
            break
        layer = layer.env
    if is_task_env(env):
        space = task_distribution(env)
        if isinstance(space, PhysicsSpace):
            space.model_values(env.unwrapped.model)  # raises for a space on another model


def _assert_runs_what_info_reports(env: gym.Env[Any, Any], build: str) -> None:
    """The model's physics equal what ``info["physics"]`` reports, rebuilt on a fresh env."""
    _, info = env.reset(seed=3)
    wrapper = _physics_wrapper(env)
    if wrapper is None:
        return
    reported = PhysicsTask(info["physics"])
    fresh = _physics_wrapper(BUILDS[build]())
    assert fresh is not None
    fresh.restore_defaults()
    space = PhysicsSpace(wrapper.task_distribution.params, fresh.env.unwrapped.model)
    space.apply(fresh.env.unwrapped.model, reported)
    _assert_same(_model_physics(env), _model_physics(fresh.env), "physics")


def _moments(build: str) -> Iterator[tuple[str, gym.Env[Any, Any]]]:
    """The original at each moment a copy is taken: before any reset, mid-episode."""
    yield "before reset", BUILDS[build]()
    env = BUILDS[build]()
    env.reset(seed=1)
    for action in _actions(env, 3):
        env.step(action)
    yield "mid-episode", env


@pytest.mark.parametrize("route", sorted(COPIES))
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_a_copy_runs_the_physics_it_reports(build: str, route: str) -> None:
    for moment, original in _moments(build):
        where = f"{build}, copied {moment} by {route}"
        clone = COPIES[route](original)
        _assert_same(_state(clone), _state(original), f"{where}: at the copy")
        _assert_spaces_bound_to_its_model(clone, where)
        _assert_same(_rollout(clone, seed=3), _rollout(original, seed=3), f"{where}: seeded")
        _, info = original.reset()
        _, clone_info = clone.reset()
        if "physics" in info:
            _assert_same(clone_info["physics"], info["physics"], f"{where}: unseeded draw")
        _assert_same(_state(clone), _state(original), f"{where}: unseeded draw")
        _assert_runs_what_info_reports(clone, build)


def test_a_copy_taken_before_any_reset_keeps_resampling() -> None:
    env = _randomized_hopper()
    clone = pickle.loads(pickle.dumps(env))
    masses = {clone.reset(seed=s)[1]["physics"]["torso_mass"] for s in range(4)}
    assert len(masses) == 4 and 1.0 not in masses
    assert clone.resampling


def test_a_frozen_copy_stays_frozen_and_resumes() -> None:
    clone = copy.deepcopy(_frozen_hopper())
    assert not clone.resampling
    assert clone.reset(seed=5)[1]["physics"]["torso_mass"] == 1.7
    mass = clone.env.unwrapped.model.body("torso").mass[0]
    assert mass == pytest.approx(1.7 * _nominal_torso_mass())
    clone.resume_resampling()
    assert clone.reset(seed=5)[1]["physics"]["torso_mass"] != 1.7


def _nominal_torso_mass() -> float:
    return float(gym.make("Hopper-v5").unwrapped.model.body("torso").mass[0])


def test_attach_refuses_a_model_of_another_structure() -> None:
    space = PhysicsSpace(HOPPER_PARAMS, gym.make("Hopper-v5").unwrapped.model)
    with pytest.raises(ValueError, match="differ in structure|unknown|no body"):
        space.attach(gym.make("Walker2d-v5").unwrapped.model)


# -- Ray ------------------------------------------------------------------------------------

RAY_BUILDS = [
    "physics[reset]",
    "physics[set_task]",
    "physics[over a task env]",
    "multitask[hopper params]",
    "metarl/HopperParams-v0",
    "effects[all over physics]",
]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    import ray
    import ray.cloudpickle

    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level=logging.WARNING)
    # The remote function below travels by value: the workers do not import test files.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def test_a_copy_shipped_to_a_ray_task_runs_the_physics_it_reports(ray_instance: Any) -> None:
    ray = ray_instance

    @ray.remote
    def run_there(env: gym.Env[Any, Any]) -> tuple[list[Any], dict[str, Any]]:
        state = _state(env)
        return _rollout(env, seed=3), state

    for build in RAY_BUILDS:
        for moment, original in _moments(build):
            where = f"{build}, shipped {moment}"
            rollout, state = ray.get(run_there.remote(original))
            _assert_same(state, _state(original), f"{where}: on arrival")
            _assert_same(rollout, _rollout(original, seed=3), f"{where}: seeded")
            back = ray.get(ray.put(original))
            _assert_runs_what_info_reports(back, build)
