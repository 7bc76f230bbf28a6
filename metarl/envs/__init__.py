"""Task distributions and the environments that realise them.

Importing this package registers the ``metarl/`` environments with Gymnasium,
so that ``gymnasium.make("metarl/HalfCheetahVel-v0")`` works after
``import metarl``. Each entry below gives the family's horizon (``docs/tasks.md``)
as ``max_episode_steps`` (a truncation, not a termination). ``metarl/MJCF-v0``
(``MJCF_ENV_ID``) is registered beside them: any MuJoCo model file, not a task family.
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
from metarl.envs.checker import TaskEnvCheckError, check_task_env
from metarl.envs.physics import PhysicsSpace
from metarl.envs.physics_distributions import (
    Beta,
    Fixed,
    LogUniform,
    Normal,
    TruncatedNormal,
    Uniform,
)
from metarl.envs.physics_param import PhysicsParam, params_from_dicts
from metarl.envs.physics_wrapper import PhysicsRandomization

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

# Meta-World (the optional extra ``metarl[metaworld]``): id -> (constructor kwargs, train
# tasks, test tasks); horizon 500. Registering imports nothing of Meta-World: the entry
# point module imports it only when an environment is made. Importing that module here
# (and through it ``metaworld_tasks``) registers the "metaworld" task kind, so
# ``Task.from_dict`` reads Meta-World tasks.
from metarl.envs import metaworld as _metaworld  # noqa: E402

METAWORLD_ENVS: dict[str, tuple[dict[str, str], int, int]] = {
    "metarl/MetaWorld-ML1-v0": ({"benchmark": "ML1", "env_name": "reach-v3"}, 50, 50),
    "metarl/MetaWorld-ML10-v0": ({"benchmark": "ML10"}, 500, 250),
    "metarl/MetaWorld-ML25-v0": ({"benchmark": "ML25"}, 1250, 250),
    "metarl/MetaWorld-ML45-v0": ({"benchmark": "ML45"}, 2250, 250),
}


def _register_metaworld() -> None:
    for env_id, (kwargs, _, _) in METAWORLD_ENVS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="metarl.envs.metaworld:MetaWorldTaskEnv",
                max_episode_steps=_metaworld.HORIZON,
                kwargs=kwargs,
            )


_register_metaworld()


def _register() -> None:
    for env_id, (entry_point, horizon, _, _) in TASK_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=horizon)


_register()

# Not a task family (it has no tasks): any MuJoCo model file as an environment, for a
# user's own robot (metarl.envs.mjcf).
MJCF_ENV_ID = "metarl/MJCF-v0"
if MJCF_ENV_ID not in gym.registry:
    gym.register(MJCF_ENV_ID, entry_point="metarl.envs.mjcf:MJCFEnv", max_episode_steps=1000)


def task_env_ids() -> list[str]:
    """The ids of every registered task family: ``TASK_ENVS``, then ``METAWORLD_ENVS``."""
    return [*TASK_ENVS, *METAWORLD_ENVS]


def task_counts(env_id: str) -> tuple[int, int] | None:
    """The (train, test) task counts of a registered task family, or ``None``."""
    if env_id in TASK_ENVS:
        return TASK_ENVS[env_id][2], TASK_ENVS[env_id][3]
    if env_id in METAWORLD_ENVS:
        return METAWORLD_ENVS[env_id][1], METAWORLD_ENVS[env_id][2]
    return None


__all__ = [
    "METAWORLD_ENVS",
    "MJCF_ENV_ID",
    "TASK_ENVS",
    "Beta",
    "Fixed",
    "LogUniform",
    "Normal",
    "PhysicsParam",
    "PhysicsRandomization",
    "PhysicsSpace",
    "TaskEnv",
    "TaskEnvCheckError",
    "TruncatedNormal",
    "Uniform",
    "check_task_env",
    "get_task",
    "get_tasks",
    "is_task_env",
    "params_from_dicts",
    "sample_tasks",
    "set_task",
    "set_tasks",
    "task_counts",
    "task_distribution",
    "task_env_ids",
]
