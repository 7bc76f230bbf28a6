"""The task-env checker over every registered environment, and on broken environments."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import TASK_ENVS
from metarl.envs.checker import TaskEnvCheckError, check_task_env
from metarl.envs.point_robot import PointRobotEnv
from metarl.tasks import Task


@pytest.mark.parametrize("env_id", sorted(TASK_ENVS))
def test_registered_env_passes_the_checker(env_id: str) -> None:
    env = gym.make(env_id)
    check_task_env(env)
    assert env.spec is not None and env.spec.max_episode_steps == TASK_ENVS[env_id][1]


class _IgnoresTask(PointRobotEnv):
    def _apply_task(self, task: Task) -> None:
        pass  # the goal never changes: the task has no effect


class _RewardIgnoresTask(PointRobotEnv):
    def _reward(self, distance: float) -> tuple[float, dict[str, Any]]:
        # The task still shows up in info (distance), but nothing the agent gets depends on it.
        return 0.0, {}


class _ForgetsTask(PointRobotEnv):
    def get_task(self) -> Task:
        return self.task_distribution.sample(np.random.default_rng(1), 1)[0]


class _NotDeterministic(PointRobotEnv):
    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward + np.random.default_rng().normal(), terminated, truncated, info


class _FlagsSomeSteps(PointRobotEnv):
    """Gives the flag only at steps where it holds (here: every third step)."""

    def reset(self, **kwargs: Any) -> Any:
        self._steps = 0
        return super().reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = super().step(action)
        self._steps += 1
        if self._steps % 3 == 0:
            info["success"] = 1.0
        return obs, reward, terminated, truncated, info


class _FlagsAFraction(PointRobotEnv):
    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "success": 0.5}


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_FlagsSomeSteps, r"info\['success'\] was given at 6 of 20 steps"),
        (_FlagsAFraction, r"info\['success'\] must be 0 or 1 .* got \[0.5, 0.5, 0.5\]"),
        (_IgnoresTask, "the task has no effect"),
        (_RewardIgnoresTask, "the task has no effect"),
        (_ForgetsTask, r"get_task\(\) returned"),
        (_NotDeterministic, "same seed, task and actions gave different rollouts"),
    ],
)
def test_checker_catches_broken_envs(cls: type[PointRobotEnv], message: str) -> None:
    with pytest.raises(TaskEnvCheckError, match=message):
        check_task_env(cls(), skip_gymnasium_checker=True)


def test_checker_rejects_a_plain_env() -> None:
    with pytest.raises(TaskEnvCheckError, match="not a task environment"):
        check_task_env(gym.make("Pendulum-v1"))


@pytest.mark.parametrize("env_id", sorted(TASK_ENVS))
def test_pickling_keeps_the_current_task(env_id: str) -> None:
    import pickle

    from metarl.envs import get_task, sample_tasks, set_task

    env = gym.make(env_id).unwrapped
    task = sample_tasks(env, 1, np.random.default_rng(5))[0]
    set_task(env, task)
    copy = pickle.loads(pickle.dumps(env))
    assert type(copy) is type(env)
    assert get_task(copy) == task


def _hopper_wrapper(resample: str, every: int | None = None) -> Any:
    from metarl.envs import PhysicsParam, PhysicsRandomization, Uniform

    params = {
        "torso_mass": PhysicsParam("body_mass", elements=["torso"], dist=Uniform(0.5, 2.0)),
        "damping": PhysicsParam("dof_damping", dist=Uniform(0.5, 2.0), independent=True),
    }
    return PhysicsRandomization(gym.make("Hopper-v5"), params, resample=resample, every=every)


@pytest.mark.parametrize(("resample", "every"), [("reset", None), ("steps", 5), ("once", None)])
def test_physics_wrapper_on_gymnasium_hopper_passes_the_checker(
    resample: str, every: int | None
) -> None:
    check_task_env(_hopper_wrapper(resample, every))


@pytest.mark.parametrize(("resample", "every"), [("reset", None), ("steps", 3), ("once", None)])
def test_physics_wrapper_same_seed_same_physics(resample: str, every: int | None) -> None:
    env = _hopper_wrapper(resample, every)
    _, first = env.reset(seed=7)
    for _ in range(10):
        env.step(env.action_space.sample())
    env.reset(seed=11)
    _, again = env.reset(seed=7)
    _, fresh = _hopper_wrapper(resample, every).reset(seed=7)
    assert first["physics"] == again["physics"] == fresh["physics"]
