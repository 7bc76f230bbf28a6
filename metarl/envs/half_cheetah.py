"""HalfCheetah task families: run at a target velocity, or run forward or backward.

``HalfCheetahVelEnv`` (``metarl/HalfCheetahVel-v0``) and ``HalfCheetahDirEnv``
(``metarl/HalfCheetahDir-v0``) subclass Gymnasium's v5 ``HalfCheetahEnv``: its
model, frame skip, reset noise and observation layout are kept, and its reward
is replaced by the one ``docs/tasks.md`` defines for each family. The two
share one step (``_HalfCheetahTaskEnv``) and differ only in the forward term.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils import EzPickle

from metarl.envs.mujoco_task import MujocoTaskEnv
from metarl.tasks import (
    ChoiceTasks,
    DirectionTask,
    Task,
    TaskDistribution,
    UniformTasks,
    VelocityTask,
)

__all__ = ["HalfCheetahDirEnv", "HalfCheetahVelEnv"]


class _HalfCheetahTaskEnv(MujocoTaskEnv, HalfCheetahEnv):
    """The step both HalfCheetah families share; subclasses give the forward term.

    ``reward = reward_forward + reward_ctrl`` with ``reward_ctrl = -ctrl_cost_weight
    * ||a||^2`` on the applied action; ``reward_forward`` comes from
    ``_forward_reward(x_velocity)``. The info of a step also holds
    ``x_position``, ``x_velocity`` and the task's target (``_task_info``).
    """

    _task_info: dict[str, Any]

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        *,
        forward_reward_weight: float = 1.0,
        ctrl_cost_weight: float = 0.05,
        **kwargs: Any,
    ):
        HalfCheetahEnv.__init__(
            self,
            forward_reward_weight=forward_reward_weight,
            ctrl_cost_weight=ctrl_cost_weight,
            **kwargs,
        )
        # After HalfCheetahEnv's own EzPickle call, so that unpickling rebuilds this class.
        EzPickle.__init__(
            self,
            task,
            forward_reward_weight=forward_reward_weight,
            ctrl_cost_weight=ctrl_cost_weight,
            **kwargs,
        )
        self._use_float32_observations()
        self.task_distribution: TaskDistribution = self._make_distribution()
        self._init_task(task)

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        raise NotImplementedError

    def _forward_reward(self, x_velocity: float) -> float:
        raise NotImplementedError

    # Gymnasium's MujocoEnv annotates float64 observations and rewards; ours are float32 / float.
    def step(  # type: ignore[override]
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        qpos = self.data.qpos
        x_before = float(qpos[0])
        self.do_simulation(action, self.frame_skip)
        x_after = float(qpos[0])
        x_velocity = (x_after - x_before) / self.dt
        reward_forward = self._forward_reward(x_velocity)
        reward_ctrl = -self._ctrl_cost_weight * self._squared_norm(self._applied_action(action))
        info = {
            "x_position": x_after,
            "x_velocity": x_velocity,
            "reward_forward": reward_forward,
            "reward_ctrl": reward_ctrl,
            **self._task_info,
        }
        if self.render_mode == "human":
            self.render()
        # Never terminates; the registered TimeLimit truncates.
        return self._get_obs(), reward_forward + reward_ctrl, False, False, info

    def _get_reset_info(self) -> dict[str, Any]:
        info: dict[str, Any] = super()._get_reset_info()
        return {**info, **self._task_info}


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):
    """The 2-D cheetah of Gymnasium's HalfCheetah-v5, asked to run at a target velocity.

    ## Description
    A planar cheetah (torso, two legs of three links each) moves along x by
    torques at its six hinge joints. Each task is a target forward velocity
    ``v*``; the agent does not observe it and must find it from rewards.

    ## Action space
    ``Box(-1, 1, (6,), float32)``: torques at the back and front thigh, shin and
    foot (Gymnasium's layout). MuJoCo clamps controls to the control range; the
    control cost uses the clamped action.

    ## Observation space
    Gymnasium v5's default, as float32: ``Box(-inf, inf, (17,), float32)``,
    ``qpos[1:]`` (the x position is left out) then ``qvel``.

    ## Reward
    ``reward = reward_forward + reward_ctrl`` with
    - ``reward_forward = -forward_reward_weight * |x_velocity - v*|``
    - ``reward_ctrl = -ctrl_cost_weight * ||a||^2``

    ``x_velocity = (x_after - x_before) / dt`` on the root slider ``qpos[0]``,
    ``dt = frame_skip * opt.timestep`` (0.05 s). ``info`` holds both terms,
    ``x_position``, ``x_velocity`` and ``target_velocity``.

    ## Success
    None: a target velocity is tracked, never reached once and for all, so ``info``
    has no ``"success"`` flag.

    ## Task distribution
    ``VelocityTask(velocity)`` with ``velocity ~ U[0, 3]``; 100 train / 30 test
    tasks. MAML and garage draw ``U[0, 2]`` instead.

    ## Episode end
    Never terminates; truncated after 200 steps by the registered ``TimeLimit``.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (a ``VelocityTask`` or its dict); ``None``: a fixed draw |
    | ``forward_reward_weight`` | ``1.0`` | weight of the velocity-tracking term |
    | ``ctrl_cost_weight`` | ``0.05`` | weight of the control cost (Gymnasium: 0.1) |
    | other keywords | Gymnasium's | passed to ``HalfCheetahEnv`` (``reset_noise_scale``, ...) |

    ## Source
    PEARL (Rakelly et al. 2019, oyster ``half_cheetah_vel.py``), ProMP and
    VariBAD; the velocity range follows PEARL. Differences from those codebases:
    Gymnasium v5's model and observation layout instead of gym's v2 ones.
    """

    n_train_tasks = 100
    n_test_tasks = 30
    _target_velocity: float

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        return UniformTasks(VelocityTask, "velocity", 0.0, 3.0)

    def _apply_task(self, task: Task) -> None:
        assert isinstance(task, VelocityTask)
        self._target_velocity = task.velocity
        self._task_info = {"target_velocity": task.velocity}

    def _forward_reward(self, x_velocity: float) -> float:
        return -self._forward_reward_weight * abs(x_velocity - self._target_velocity)


class HalfCheetahDirEnv(_HalfCheetahTaskEnv):
    """The 2-D cheetah of Gymnasium's HalfCheetah-v5, asked to run forward or backward.

    ## Description
    The cheetah of ``HalfCheetahVelEnv``. Each task is a direction ``d`` along x:
    ``+1`` (forward) or ``-1`` (backward); the agent does not observe it.

    ## Action space
    ``Box(-1, 1, (6,), float32)``, as ``HalfCheetahVelEnv``.

    ## Observation space
    ``Box(-inf, inf, (17,), float32)``, as ``HalfCheetahVelEnv``.

    ## Reward
    ``reward = reward_forward + reward_ctrl`` with
    - ``reward_forward = forward_reward_weight * d * x_velocity``
    - ``reward_ctrl = -ctrl_cost_weight * ||a||^2``

    ``x_velocity`` as in ``HalfCheetahVelEnv``. ``info`` holds both terms,
    ``x_position``, ``x_velocity`` and ``direction``.

    ## Success
    None: a direction to run in has no end state, so ``info`` has no ``"success"``
    flag.

    ## Task distribution
    ``DirectionTask(direction)`` with ``direction`` in ``{-1, +1}``; 2 train /
    2 test tasks (a set of two holds each direction once).

    ## Episode end
    Never terminates; truncated after 200 steps by the registered ``TimeLimit``.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (a ``DirectionTask`` or its dict); ``None``: a fixed draw |
    | ``forward_reward_weight`` | ``1.0`` | weight of the forward term |
    | ``ctrl_cost_weight`` | ``0.05`` | weight of the control cost (Gymnasium: 0.1) |
    | other keywords | Gymnasium's | passed to ``HalfCheetahEnv`` |

    ## Source
    MAML (Finn et al. 2017, ``rllab`` ``half_cheetah_env_rand_direc.py``) and
    PEARL (oyster ``half_cheetah_dir.py``), on Gymnasium v5's model.
    """

    n_train_tasks = 2
    n_test_tasks = 2
    _direction: float

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        return ChoiceTasks(DirectionTask, "direction", [-1, 1])

    def _apply_task(self, task: Task) -> None:
        assert isinstance(task, DirectionTask)
        self._direction = float(task.direction)
        self._task_info = {"direction": task.direction}

    def _forward_reward(self, x_velocity: float) -> float:
        return self._forward_reward_weight * self._direction * x_velocity
