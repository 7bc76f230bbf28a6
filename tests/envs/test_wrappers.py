"""MultiTaskEnv and TaskInObservation: resampling, oracle observations, checkers, errors."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import check_task_env, get_task, get_tasks, sample_tasks, set_task, set_tasks
from metarl.envs.wrappers import MultiTaskEnv, TaskInObservation, task_feature_bounds
from metarl.tasks import (
    AngleTask,
    ArcGoals,
    ChoiceTasks,
    DirectionTask,
    GoalTask,
    TaskDistribution,
    UniformBoxGoals,
    UniformTasks,
    VelocityTask,
)

POINT = "metarl/PointRobot-v0"


def _train_tasks(n: int = 5) -> list[Any]:
    return sample_tasks(gym.make(POINT), n, np.random.default_rng(1))


def _tasks_seen(env: gym.Env[Any, Any], seed: int, resets: int) -> list[Any]:
    env.reset(seed=seed)
    seen = [get_task(env)]
    for _ in range(resets - 1):
        env.reset()
        seen.append(get_task(env))
    return seen


def _quiet_check_env(env: gym.Env[Any, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "wrapped env" and "infinite bounds" advice
        check_env(env, skip_render_check=True)


# --------------------------------------------------------------------------- MultiTaskEnv


def test_multitask_resamples_the_training_tasks_at_every_reset() -> None:
    train = _train_tasks(5)
    env = MultiTaskEnv(gym.make(POINT), train)
    seen = _tasks_seen(env, seed=0, resets=100)
    assert set(seen) == set(train)  # 100 uniform draws from 5 cover them all
    counts = np.array([seen.count(t) for t in train])
    assert counts.min() >= 8  # roughly uniform (expected 20 each)
    _, info = env.reset()
    index = int(info["task_index"])
    assert get_task(env) == train[index]
    np.testing.assert_array_equal(info["task_features"], train[index].features())


def test_multitask_same_seed_same_tasks() -> None:
    train = _train_tasks(5)
    first = _tasks_seen(MultiTaskEnv(gym.make(POINT), train), seed=3, resets=20)
    again = _tasks_seen(MultiTaskEnv(gym.make(POINT), train), seed=3, resets=20)
    other = _tasks_seen(MultiTaskEnv(gym.make(POINT), train), seed=4, resets=20)
    assert first == again
    assert first != other


def test_multitask_draws_fresh_tasks_from_a_distribution() -> None:
    dist = UniformBoxGoals(-0.5, 0.5)
    env = MultiTaskEnv(gym.make(POINT), dist)
    seen = _tasks_seen(env, seed=0, resets=10)
    assert len(set(seen)) == 10
    assert all(dist.contains(t) for t in seen)
    assert env.tasks is None and env.source is dist
    _, info = env.reset()
    assert "task_index" not in info


def test_multitask_set_task_fixes_the_task_until_resume() -> None:
    train = _train_tasks(5)
    env = MultiTaskEnv(gym.make(POINT), train)
    env.reset(seed=0)
    fixed = GoalTask((0.9, -0.9))  # not a training task: any task of the support is allowed
    set_task(env, fixed)
    assert not env.resampling
    assert _tasks_seen(env, seed=1, resets=5) == [fixed] * 5
    env.resume_resampling()
    assert set(_tasks_seen(env, seed=1, resets=20)) <= set(train)


def test_multitask_passes_the_checkers() -> None:
    _quiet_check_env(MultiTaskEnv(gym.make(POINT), _train_tasks()))
    check_task_env(MultiTaskEnv(gym.make(POINT), _train_tasks()), skip_gymnasium_checker=True)


def test_multitask_pickles() -> None:
    train = _train_tasks(3)
    env = MultiTaskEnv(gym.make(POINT), train)
    env.reset(seed=0)
    copy = pickle.loads(pickle.dumps(env))
    assert copy.resampling and copy.tasks == tuple(train)
    assert get_task(copy) == get_task(env)


def test_multitask_errors_name_the_field_and_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"tasks must not be empty.*GoalTask.*support"):
        MultiTaskEnv(gym.make(POINT), [])
    with pytest.raises(ValueError, match=r"tasks\[1\]: task must be a GoalTask"):
        MultiTaskEnv(gym.make(POINT), [GoalTask((0.0, 0.0)), VelocityTask(1.0)])
    with pytest.raises(ValueError, match=r"tasks\[0\]: .*outside the allowed range \[-1, 1\]"):
        MultiTaskEnv(gym.make(POINT), [GoalTask((3.0, 0.0))])
    with pytest.raises(ValueError, match="distribution of VelocityTasks cannot feed"):
        MultiTaskEnv(gym.make(POINT), UniformTasks(VelocityTask, "velocity", 0.0, 1.0))
    with pytest.raises(ValueError, match="sequence of tasks or a TaskDistribution"):
        MultiTaskEnv(gym.make(POINT), GoalTask((0.0, 0.0)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a task environment"):
        MultiTaskEnv(gym.make("Pendulum-v1"), [GoalTask((0.0, 0.0))])


# --------------------------------------------------------------------------- TaskInObservation


def test_oracle_observation_is_env_observation_plus_features() -> None:
    plain, oracle = gym.make(POINT), TaskInObservation(gym.make(POINT))
    task = GoalTask((0.25, -0.5))
    set_task(plain, task)
    set_task(oracle, task)
    inf = np.inf
    low, high = np.array([-inf, -inf, -1, -1], np.float32), np.array([inf, inf, 1, 1], np.float32)
    assert oracle.observation_space == gym.spaces.Box(low, high, dtype=np.float32)
    obs_p, _ = plain.reset(seed=5)
    obs_o, _ = oracle.reset(seed=5)
    np.testing.assert_array_equal(obs_o, np.concatenate([obs_p, task.features()]))
    action = np.array([0.05, -0.02], dtype=np.float32)
    obs_p, r_p, *_ = plain.step(action)
    obs_o, r_o, *_ = oracle.step(action)
    assert obs_o.dtype == np.float32 and r_o == r_p
    np.testing.assert_array_equal(obs_o, np.concatenate([obs_p, task.features()]))
    # A set_task between episodes shows in the next observation.
    new = GoalTask((-1.0, 1.0))
    set_task(oracle, new)
    obs_o, _ = oracle.reset(seed=6)
    np.testing.assert_array_equal(obs_o[2:], new.features())


def test_oracle_over_multitask_observes_each_drawn_task() -> None:
    env = TaskInObservation(MultiTaskEnv(gym.make(POINT), _train_tasks()))
    obs, info = env.reset(seed=0)
    for _ in range(5):
        np.testing.assert_array_equal(obs[2:], get_task(env).features())
        np.testing.assert_array_equal(obs[2:], info["task_features"])
        obs, info = env.reset()


def test_oracle_passes_the_checkers() -> None:
    _quiet_check_env(TaskInObservation(gym.make(POINT)))
    _quiet_check_env(TaskInObservation(MultiTaskEnv(gym.make(POINT), _train_tasks())))
    check_task_env(TaskInObservation(gym.make(POINT)))
    check_task_env(TaskInObservation(gym.make("metarl/HalfCheetahVel-v0")))


def _bounds(dist: TaskDistribution) -> tuple[list[float], list[float]]:
    bounds = task_feature_bounds(dist)
    assert bounds is not None
    return bounds[0].tolist(), bounds[1].tolist()


def test_feature_bounds_from_the_support() -> None:
    assert _bounds(UniformBoxGoals(-2.0, 3.0, dim=3)) == ([-2, -2, -2], [3, 3, 3])
    assert _bounds(UniformTasks(VelocityTask, "velocity", 0.0, 3.0)) == ([0], [3])
    assert _bounds(UniformTasks(AngleTask, "angle", 0.0, 6.3)) == ([-1, -1], [1, 1])
    assert _bounds(ChoiceTasks(DirectionTask, "direction", [-1, 1])) == ([-1], [1])
    assert _bounds(ArcGoals(2.0, 0.0, 3.14)) == ([-2, -2], [2, 2])
    # Every observation of a bounded oracle lies inside its space (the checker's test, by hand).
    env = TaskInObservation(gym.make("metarl/PointRobotSparse-v0"))
    assert np.isfinite(env.observation_space.low[2:]).all()
    for task in sample_tasks(env, 20, np.random.default_rng(0)):
        set_task(env, task)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)


def test_oracle_errors() -> None:
    with pytest.raises(TypeError, match="needs a task environment"):
        TaskInObservation(gym.make("Pendulum-v1"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wrappers_in_vector_envs(mode: str) -> None:
    train = _train_tasks(5)
    envs = gym.make_vec(
        POINT,
        num_envs=3,
        vectorization_mode=mode,
        wrappers=[lambda e: MultiTaskEnv(e, train), TaskInObservation],
    )
    try:
        assert envs.single_observation_space.shape == (4,)
        obs, info = envs.reset(seed=0)
        tasks = get_tasks(envs)
        assert set(tasks) <= set(train)
        np.testing.assert_array_equal(obs[:, 2:], np.stack([t.features() for t in tasks]))
        np.testing.assert_array_equal(info["task_features"], obs[:, 2:])
        # set_tasks reaches every sub-env through both wrappers and fixes its task.
        fixed = [GoalTask((0.1, 0.2)), GoalTask((0.3, 0.4)), GoalTask((-0.5, 0.6))]
        set_tasks(envs, fixed)
        obs, *_ = envs.step(np.zeros((3, 2), dtype=np.float32))
        np.testing.assert_array_equal(obs[:, 2:], np.stack([t.features() for t in fixed]))
        obs, _ = envs.reset(seed=1)
        assert get_tasks(envs) == fixed
    finally:
        envs.close()
