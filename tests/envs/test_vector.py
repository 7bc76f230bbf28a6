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
