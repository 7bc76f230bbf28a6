"""Task environments inside Gymnasium's vector envs, a different task per sub-environment."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import get_tasks, sample_tasks, set_task, set_tasks
from metarl.tasks import GoalTask


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", ["metarl/PointRobot-v0", "metarl/HalfCheetahVel-v0"])
def test_each_sub_env_gets_its_own_task(env_id: str, mode: str) -> None:
    single = gym.make(env_id)
    tasks = sample_tasks(single, 3, np.random.default_rng(0))
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode=mode)
    try:
        set_tasks(envs, tasks)
        assert get_tasks(envs) == tasks
        envs.reset(seed=[10, 11, 12])
        actions = np.stack([single.action_space.sample() for _ in range(5)])
        rewards = []
        for action in actions:
            _obs, reward, _, _, _ = envs.step(np.stack([action] * 3))
            rewards.append(reward)
        # Each sub-env reproduces the single env given the same task, seed and actions.
        for i, task in enumerate(tasks):
            set_task(single, task)
            single.reset(seed=10 + i)
            for t, action in enumerate(actions):
                _, r, _, _, _ = single.step(action)
                assert r == pytest.approx(rewards[t][i], rel=1e-6, abs=1e-9)
    finally:
        envs.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_set_tasks_checks_count_and_support(mode: str) -> None:
    envs = gym.make_vec("metarl/PointRobot-v0", num_envs=2, vectorization_mode=mode)
    try:
        before = [GoalTask((0.1, 0.1)), GoalTask((0.2, 0.2))]
        set_tasks(envs, before)
        with pytest.raises(ValueError, match="got 1 tasks for a vector env of 2 envs"):
            set_tasks(envs, [GoalTask((0.0, 0.0))])
        with pytest.raises(ValueError, match=r"tasks\[1\]: .*outside the allowed range"):
            set_tasks(envs, [GoalTask((0.0, 0.0)), GoalTask((5.0, 0.0))])
        # Nothing was set, and the (async) vector env still works.
        assert get_tasks(envs) == before
        envs.reset(seed=0)
        envs.step(envs.action_space.sample())
    finally:
        envs.close()


def _point_tasks(n: int) -> list[GoalTask]:
    tasks = sample_tasks(gym.make("metarl/PointRobot-v0"), n, np.random.default_rng(1))
    assert all(isinstance(t, GoalTask) for t in tasks)
    return tasks  # type: ignore[return-value]


@pytest.mark.parametrize("kind", ["DummyVecEnv", "SubprocVecEnv", "VecNormalize(DummyVecEnv)"])
def test_set_tasks_on_stable_baselines3_vec_envs(kind: str) -> None:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    cls = SubprocVecEnv if kind == "SubprocVecEnv" else DummyVecEnv
    # "metarl:" makes Gymnasium import metarl first: SubprocVecEnv's fresh processes need it.
    vec = make_vec_env("metarl:metarl/PointRobot-v0", n_envs=2, vec_env_cls=cls)
    envs = VecNormalize(vec) if kind.startswith("VecNormalize") else vec
    try:
        tasks = _point_tasks(2)
        set_tasks(envs, tasks)
        assert get_tasks(envs) == tasks
        # The tasks reach the environments that step, not an attribute of SB3's Monitor.
        assert vec.env_method("get_task") == tasks
        with pytest.raises(ValueError, match=r"tasks\[1\]"):
            set_tasks(envs, [tasks[0], GoalTask((9.0, 9.0))])
        assert get_tasks(envs) == tasks  # a refused list changes nothing
    finally:
        envs.close()


def test_set_tasks_through_gymnasium_vector_wrappers() -> None:
    from gymnasium.wrappers.vector import NormalizeObservation, RecordEpisodeStatistics

    envs = gym.make_vec("metarl/PointRobot-v0", num_envs=2, vectorization_mode="sync")
    wrapped = RecordEpisodeStatistics(NormalizeObservation(envs))
    tasks = _point_tasks(2)
    set_tasks(wrapped, tasks)
    assert get_tasks(wrapped) == tasks
    assert get_tasks(envs) == tasks
    wrapped.close()


def test_set_tasks_refuses_what_it_cannot_set_and_says_what_to_pass() -> None:
    with pytest.raises(
        TypeError, match="SyncVectorEnv or AsyncVectorEnv.*Stable-Baselines3.*set_task"
    ):
        set_tasks(gym.make("metarl/PointRobot-v0"), _point_tasks(1))
    with pytest.raises(TypeError, match="got list"):
        get_tasks([gym.make("metarl/PointRobot-v0")])


def test_assigning_task_on_a_made_env_is_refused_not_ignored() -> None:
    from metarl.envs import get_task

    env = gym.make("metarl/PointRobot-v0")
    first, second = _point_tasks(2)
    set_task(env, first)
    env.task = second  # lands on Gymnasium's TimeLimit, which keeps it
    with pytest.raises(ValueError, match="TimeLimit.*metarl.envs.set_task"):
        get_task(env)
    with pytest.raises(ValueError, match="TimeLimit"):
        set_task(env, second)
    del env.task
    set_task(env, second)
    assert get_task(env) == second
    # On the task env itself and on metarl's task wrappers, assignment is set_task.
    env.unwrapped.task = first
    assert get_task(env) == first
    from metarl.envs.wrappers import MultiTaskEnv

    multi = MultiTaskEnv(gym.make("metarl/PointRobot-v0"), [first, second])
    multi.task = second
    assert get_task(multi) == second and not multi.resampling


def test_a_vector_env_with_a_stray_task_attribute_is_refused() -> None:
    envs = gym.make_vec("metarl/PointRobot-v0", num_envs=2, vectorization_mode="sync")
    envs.envs[1].task = _point_tasks(1)[0]  # the user's assignment on the made env
    with pytest.raises(ValueError, match="TimeLimit"):
        set_tasks(envs, _point_tasks(2))
    envs.close()
