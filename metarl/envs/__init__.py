"""Task distributions and the environments that realise them.

Importing this package registers the ``metarl/`` environments with Gymnasium,
so that ``gymnasium.make("metarl/HalfCheetahVel-v0")`` works after
``import metarl``. Each entry below gives the horizon of TASKS.md as
``max_episode_steps`` (a truncation, not a termination).
"""

from __future__ import annotations

import gymnasium as gym

from metarl.envs.base import (
    TaskEnv,
    get_task,
    get_tasks,
    is_task_env,
    sample_tasks,
    set_task,
    set_tasks,
    task_distribution,
)

# id -> (entry point, horizon, train tasks, test tasks)
TASK_ENVS: dict[str, tuple[str, int, int, int]] = {
    "metarl/PointRobot-v0": ("metarl.envs.point_robot:PointRobotEnv", 20, 80, 20),
    "metarl/PointRobotSparse-v0": ("metarl.envs.point_robot:PointRobotSparseEnv", 20, 80, 20),
    "metarl/HalfCheetahVel-v0": ("metarl.envs.half_cheetah:HalfCheetahVelEnv", 200, 100, 30),
    "metarl/HalfCheetahDir-v0": ("metarl.envs.half_cheetah:HalfCheetahDirEnv", 200, 2, 2),
    "metarl/AntDir-v0": ("metarl.envs.ant:AntDirEnv", 200, 2, 2),
    "metarl/AntGoal-v0": ("metarl.envs.ant:AntGoalEnv", 200, 150, 30),
    "metarl/HumanoidDir-v0": ("metarl.envs.humanoid:HumanoidDirEnv", 200, 100, 30),
    "metarl/HopperParams-v0": ("metarl.envs.params:HopperParamsEnv", 200, 40, 10),
    "metarl/Walker2dParams-v0": ("metarl.envs.params:Walker2dParamsEnv", 200, 40, 10),
}


def _register() -> None:
    for env_id, (entry_point, horizon, _, _) in TASK_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=horizon)


_register()

__all__ = [
    "TASK_ENVS",
    "TaskEnv",
    "get_task",
    "get_tasks",
    "is_task_env",
    "sample_tasks",
    "set_task",
    "set_tasks",
    "task_distribution",
]
