"""Point robots: dynamics, dense and sparse rewards recomputed from docs/tasks.md."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import get_task, set_task
from metarl.tasks import GoalTask, VelocityTask


def test_dense_reward_is_minus_distance_and_actions_saturate() -> None:
    env = gym.make("metarl/PointRobot-v0")
    set_task(env, GoalTask((0.5, -0.25)))
    obs, _ = env.reset(seed=0)
    assert np.all(np.abs(obs) <= 1.0)  # PEARL's PointEnv: start uniform in [-1, 1]^2
    position = obs.astype(np.float64)
    rng = np.random.default_rng(0)
    for t in range(20):
        action = rng.uniform(-0.3, 0.3, size=2).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        position = position + np.clip(action.astype(np.float64), -0.1, 0.1)
        np.testing.assert_allclose(obs, position, rtol=1e-6, atol=1e-6)
        assert reward == pytest.approx(-math.dist(position, (0.5, -0.25)), abs=1e-6)
        assert info["reward_goal"] == reward
        assert not terminated
        assert truncated == (t == 19)  # horizon 20


def test_sparse_reward_inside_goal_radius_only() -> None:
    env = gym.make("metarl/PointRobotSparse-v0")
    goal = (math.cos(1.0), math.sin(1.0))
    set_task(env, GoalTask(goal))
    env.reset(seed=0)
    direction = np.array(goal) / 10.0  # 0.1 per step straight to the goal
    position = np.zeros(2)
    seen_inside = False
    for _ in range(12):
        _, reward, _, _, info = env.step(direction.astype(np.float32))
        position = position + direction.astype(np.float32).astype(np.float64)
        dist = math.dist(position, goal)
        expected = 1.0 - dist if dist <= 0.2 else 0.0
        assert reward == pytest.approx(expected)
        assert info["sparse_reward"] == reward
        assert info["dense_reward"] == pytest.approx(-dist)
        seen_inside |= dist <= 0.2
    assert seen_inside


def test_goals_follow_tasks_md() -> None:
    dense = gym.make("metarl/PointRobot-v0").unwrapped
    sparse = gym.make("metarl/PointRobotSparse-v0").unwrapped
    g = np.array([t.goal for t in dense.sample_tasks(500, np.random.default_rng(0))])
    assert g.min() >= -1 and g.max() <= 1 and g.min() < -0.95 and g.max() > 0.95
    s = np.array([t.goal for t in sparse.sample_tasks(500, np.random.default_rng(0))])
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0)
    assert s[:, 1].min() >= 0.0


def test_bad_tasks_are_rejected_with_the_field_named() -> None:
    env = gym.make("metarl/PointRobotSparse-v0")
    before = get_task(env)
    with pytest.raises(ValueError, match="task must be a GoalTask"):
        set_task(env, VelocityTask(1.0))
    with pytest.raises(ValueError, match="GoalTask.goal .* has angle"):
        set_task(env, GoalTask((0.0, -1.0)))
    assert get_task(env) == before
    with pytest.raises(ValueError, match=r"GoalTask.goal\[0\] = 2 is outside"):
        set_task(gym.make("metarl/PointRobot-v0"), GoalTask((2.0, 0.0)))


def test_task_given_at_construction() -> None:
    env = gym.make("metarl/PointRobot-v0", task={"kind": "goal", "goal": [0.1, 0.2]})
    assert get_task(env) == GoalTask((0.1, 0.2))


@pytest.mark.parametrize("env_id", ["metarl/PointRobot-v0", "metarl/PointRobotSparse-v0"])
def test_rgb_array_shows_the_goal_and_the_point(env_id: str) -> None:
    from metarl.envs.point_robot import RENDER_EXTENT, RENDER_SIZE

    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([0.1, -0.1], np.float32))
    image = env.render()
    assert image.shape == (RENDER_SIZE, RENDER_SIZE, 3) and image.dtype == np.uint8

    def pixel(xy: np.ndarray) -> tuple[int, ...]:
        col = int((xy[0] + RENDER_EXTENT) / (2 * RENDER_EXTENT) * RENDER_SIZE)
        row = int((RENDER_EXTENT - xy[1]) / (2 * RENDER_EXTENT) * RENDER_SIZE)
        return tuple(int(v) for v in image[row, col])

    assert pixel(get_task(env).array) == (60, 170, 60)  # the goal, green
    assert pixel(env.unwrapped._position) == (40, 80, 200)  # the point, blue
    plain = gym.make(env_id)
    plain.reset(seed=0)
    assert plain.render() is None  # no render mode: nothing drawn
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        env.unwrapped.__class__(render_mode="depth_array")


def test_stable_baselines3_makes_point_robots_without_warnings() -> None:
    from stable_baselines3.common.env_util import make_vec_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3 asks for rgb_array rendering by default
        make_vec_env("metarl/PointRobot-v0", n_envs=2).close()
