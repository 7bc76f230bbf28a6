"""HopperParams and Walker2dParams: the rand_param_envs families on Gymnasium v5."""

from __future__ import annotations

import json
import pickle
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import get_task, set_task, set_tasks
from metarl.envs.params import HopperParamsEnv, Walker2dParamsEnv, rand_params_space
from metarl.envs.physics import PhysicsSpace
from metarl.tasks import PhysicsTask, Task, VelocityTask

FAMILIES = [
    ("metarl/HopperParams-v0", "Hopper-v5", HopperParamsEnv, 3, 11),
    ("metarl/Walker2dParams-v0", "Walker2d-v5", Walker2dParamsEnv, 6, 17),
]


def space_of(env: gym.Env[Any, Any]) -> PhysicsSpace:
    space = env.get_wrapper_attr("task_distribution")
    assert isinstance(space, PhysicsSpace)
    return space


@pytest.mark.parametrize(("env_id", "gym_id", "cls", "n_act", "n_obs"), FAMILIES)
def test_make_spaces_horizon_and_task_counts(
    env_id: str, gym_id: str, cls: type, n_act: int, n_obs: int
) -> None:
    env = gym.make(env_id)
    assert isinstance(env.unwrapped, cls)
    assert env.spec is not None and env.spec.max_episode_steps == 200
    assert (cls.n_train_tasks, cls.n_test_tasks) == (40, 10)
    assert env.action_space.shape == (n_act,)
    assert env.observation_space.shape == (n_obs,)
    assert env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)


@pytest.mark.parametrize(("env_id", "gym_id", "cls", "n_act", "n_obs"), FAMILIES)
def test_task_space_is_rand_param_envs(
    env_id: str, gym_id: str, cls: type, n_act: int, n_obs: int
) -> None:
    env = gym.make(env_id)
    model = env.unwrapped.model  # type: ignore[attr-defined]
    space = space_of(env)
    assert space.names == ["body_mass", "body_inertia", "dof_damping", "geom_friction"]
    assert space.shapes == {
        "body_mass": (model.nbody - 1,),
        "body_inertia": (model.nbody - 1, 3),
        "dof_damping": (model.nv,),
        "geom_friction": (model.ngeom, 3),
    }
    tasks = space.sample(np.random.default_rng(0), 200)
    values = {n: np.stack([t.array(n) for t in tasks]) for n in space.names}  # type: ignore[attr-defined]
    for name, base in [("body_mass", 1.5), ("body_inertia", 1.5), ("geom_friction", 1.5)]:
        exponents = np.log(values[name]) / np.log(base)
        assert exponents.min() >= -3 - 1e-9 and exponents.max() <= 3 + 1e-9
        assert exponents.min() < -2.9 and exponents.max() > 2.9
    damping = np.log(values["dof_damping"]) / np.log(1.3)
    assert damping.min() < -2.9 and damping.max() > 2.9 and np.abs(damping).max() <= 3 + 1e-9
    # independent draws per element and component
    assert len(np.unique(values["body_inertia"][0])) == values["body_inertia"][0].size


@pytest.mark.parametrize(("env_id", "gym_id", "cls", "n_act", "n_obs"), FAMILIES)
def test_set_task_scales_the_defaults_without_compounding(
    env_id: str, gym_id: str, cls: type, n_act: int, n_obs: int
) -> None:
    env = gym.make(env_id)
    model = env.unwrapped.model  # type: ignore[attr-defined]
    default = gym.make(gym_id).unwrapped.model  # type: ignore[attr-defined]
    a, b = space_of(env).sample(np.random.default_rng(1), 2)
    for task in (a, b, a, a):
        set_task(env, task)
    assert isinstance(a, PhysicsTask)
    np.testing.assert_array_equal(model.body_mass[1:], default.body_mass[1:] * a.array("body_mass"))
    assert model.body_mass[0] == 0.0
    np.testing.assert_array_equal(
        model.body_inertia[1:], default.body_inertia[1:] * a.array("body_inertia")
    )
    np.testing.assert_array_equal(model.dof_damping, default.dof_damping * a.array("dof_damping"))
    np.testing.assert_array_equal(
        model.geom_friction, default.geom_friction * a.array("geom_friction")
    )
    # MuJoCo's derived constants follow the masses
    np.testing.assert_allclose(model.body_subtreemass[0], model.body_mass.sum())
    assert get_task(env) == a


def _healthy(env_id: str, qpos: np.ndarray, qvel: np.ndarray) -> bool:
    z, angle = qpos[1], qpos[2]
    if env_id.startswith("metarl/Hopper"):
        state = np.concatenate([qpos, qvel])[2:]
        return bool(np.all(np.abs(state) < 100) and z > 0.7 and -0.2 < angle < 0.2)
    return bool(0.8 < z < 2.0 and -1.0 < angle < 1.0)


@pytest.mark.parametrize(("env_id", "gym_id", "cls", "n_act", "n_obs"), FAMILIES)
def test_reward_is_gymnasium_v5_formula_recomputed_from_state(
    env_id: str, gym_id: str, cls: type, n_act: int, n_obs: int
) -> None:
    env = gym.make(env_id)
    u: Any = env.unwrapped
    set_task(env, space_of(env).sample(np.random.default_rng(2), 1)[0])
    env.reset(seed=3)
    rng = np.random.default_rng(4)
    dt = u.frame_skip * u.model.opt.timestep
    for _ in range(200):
        action = rng.uniform(-1.3, 1.3, size=n_act).astype(np.float32)  # some saturate
        x_before = float(u.data.qpos[0])
        obs, reward, terminated, truncated, info = env.step(action)
        x_velocity = (float(u.data.qpos[0]) - x_before) / dt
        healthy = _healthy(env_id, u.data.qpos, u.data.qvel)
        applied = np.clip(action.astype(np.float64), -1.0, 1.0)
        ctrl = -1e-3 * float(np.sum(applied**2))
        assert info["x_velocity"] == pytest.approx(x_velocity)
        assert info["reward_forward"] == pytest.approx(x_velocity)
        assert info["reward_survive"] == 1.0  # docs/tasks.md: +1 on every step
        assert info["reward_ctrl"] == pytest.approx(ctrl)
        assert reward == pytest.approx(x_velocity + 1.0 + ctrl)
        assert terminated == (not healthy)
        np.testing.assert_array_equal(obs[:5], u.data.qpos[1:6].astype(np.float32))
        if terminated or truncated:
            break


@pytest.mark.parametrize(("env_id", "gym_id", "cls", "n_act", "n_obs"), FAMILIES)
def test_rollout_equals_gymnasium_v5_with_the_same_physics(
    env_id: str, gym_id: str, cls: type, n_act: int, n_obs: int
) -> None:
    env, plain = gym.make(env_id), gym.make(gym_id, max_episode_steps=200)
    task = space_of(env).sample(np.random.default_rng(5), 1)[0]
    set_task(env, task)
    rand_params_space(plain.unwrapped.model).apply(plain.unwrapped.model, task)  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=6)
    ref, _ = plain.reset(seed=6)
    np.testing.assert_array_equal(obs, ref.astype(np.float32))
    rng = np.random.default_rng(7)
    for _ in range(50):
        action = rng.uniform(-1, 1, size=n_act).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        ref, ref_reward, ref_terminated, ref_truncated, _ = plain.step(action)
        np.testing.assert_array_equal(obs, ref.astype(np.float32))
        # Gymnasium sums the squared float32 action in float32; metarl in float64. On the
        # terminating step Gymnasium pays no survive bonus; docs/tasks.md (and metarl) does.
        bonus_gap = 1.0 if terminated else 0.0
        assert reward == pytest.approx(ref_reward + bonus_gap, rel=1e-7, abs=1e-7)
        assert (terminated, truncated) == (ref_terminated, ref_truncated)
        if terminated or truncated:
            break


@pytest.mark.parametrize("env_id", [f[0] for f in FAMILIES])
def test_tasks_round_trip_through_json_and_task_sets_are_reproducible(env_id: str) -> None:
    env = gym.make(env_id)
    space = space_of(env)
    sets = space.task_sets(0, HopperParamsEnv.n_train_tasks, HopperParamsEnv.n_test_tasks)
    assert (len(sets.train), len(sets.test)) == (40, 10)
    assert sets == space.task_sets(0, 40, 10)
    assert sets.train != space.task_sets(1, 40, 10).train
    assert len(set(sets.train)) == 40
    for task in sets.train[:3] + sets.test[:3]:
        back = Task.from_dict(json.loads(json.dumps(task.to_dict())))
        assert back == task
        set_task(env, back)
        set_task(gym.make(env_id, task=task.to_dict()), task)


def test_tasks_drive_a_vector_env_and_survive_pickling() -> None:
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("metarl/HopperParams-v0")] * 2)
    tasks = space_of(envs.envs[0]).sample(np.random.default_rng(8), 2)
    set_tasks(envs, tasks)
    masses = [e.unwrapped.model.body_mass.copy() for e in envs.envs]  # type: ignore[attr-defined]
    assert not np.array_equal(masses[0], masses[1])
    env = HopperParamsEnv(task=tasks[1])
    clone = pickle.loads(pickle.dumps(env))
    assert clone.get_task() == tasks[1]
    np.testing.assert_array_equal(clone.model.body_mass, masses[1])


def test_restore_defaults_and_bad_tasks() -> None:
    env = gym.make("metarl/HopperParams-v0")
    model = env.unwrapped.model  # type: ignore[attr-defined]
    pristine = gym.make("Hopper-v5").unwrapped.model  # type: ignore[attr-defined]
    env.get_wrapper_attr("restore_defaults")()
    for name in ("body_mass", "body_inertia", "dof_damping", "geom_friction", "dof_M0"):
        np.testing.assert_array_equal(getattr(model, name), getattr(pristine, name))
    assert get_task(env) == space_of(env).default_task()
    with pytest.raises(ValueError, match="must be a PhysicsTask"):
        set_task(env, VelocityTask(1.0))
    with pytest.raises(ValueError, match=r"missing \['body_inertia', 'dof_damping'"):
        set_task(env, PhysicsTask({"body_mass": (1.0,) * 4, "geom_friction": ((1.0,) * 3,) * 5}))
    good = space_of(env).sample(np.random.default_rng(9), 1)[0]
    assert isinstance(good, PhysicsTask)
    bad = PhysicsTask({**good.values, "body_mass": (1.0, 1.0, 1.0, 4.0)})
    with pytest.raises(ValueError, match=r"'body_mass' = 4 is outside the allowed range \[0.296"):
        set_task(env, bad)
    short = PhysicsTask({**good.values, "body_mass": (1.0, 1.0, 1.0)})
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(4,\)"):
        set_task(env, short)


@pytest.mark.parametrize("env_id", ["metarl/HopperParams-v0", "metarl/Walker2dParams-v0"])
def test_width_and_params_keywords_narrow_the_task_space(env_id: str) -> None:
    """A domain-randomization study's knobs: which fields vary, and over what range."""
    env = gym.make(env_id, log_scale_limit=0.5, params=["body_mass", "geom_friction"])
    space = env.unwrapped.task_distribution  # type: ignore[attr-defined]
    assert space.names == ["body_mass", "geom_friction"]
    tasks = space.sample(np.random.default_rng(0), 20)
    values = np.concatenate([np.ravel(t.values[n]) for t in tasks for n in space.names])
    assert values.min() >= 1.5**-0.5 and values.max() <= 1.5**0.5 and np.ptp(values) > 0.1
    env.unwrapped.set_task(tasks[0])  # type: ignore[attr-defined]
    clone = pickle.loads(pickle.dumps(env.unwrapped))  # EzPickle keeps the keywords
    assert clone.task_distribution.names == ["body_mass", "geom_friction"]
    nominal = gym.make(env_id, log_scale_limit=0, params=["body_mass"]).unwrapped
    task = nominal.task_distribution.sample(np.random.default_rng(0), 1)[0]  # type: ignore[attr-defined]
    assert np.all(np.asarray(task.values["body_mass"]) == 1.0)  # width 0: the nominal model
    for kwargs, match in (
        ({"params": ["mass"]}, r"params must be distinct names among \['body_mass'"),
        ({"params": []}, "params must be distinct names"),
        ({"log_scale_limit": -0.5}, "log_scale_limit must be a finite non-negative number"),
        (
            {"log_scale_limit": float("inf")},
            "log_scale_limit must be a finite non-negative number, got inf",
        ),
    ):
        with pytest.raises(ValueError, match=match):
            gym.make(env_id, **kwargs)
