"""Humanoid task family: run in a direction of the plane given by an angle.

``HumanoidDirEnv`` (``metarl/HumanoidDir-v0``) subclasses Gymnasium's v5
``HumanoidEnv``: its model, frame skip, reset noise, observation layout and
contact-cost cap are kept, and its forward term, survive bonus and
termination are replaced by those ``docs/tasks.md`` defines.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv, mass_center
from gymnasium.utils import EzPickle

from metarl.envs.mujoco_task import MujocoTaskEnv
from metarl.tasks import AngleTask, Task, TaskDistribution, UniformTasks

__all__ = ["HumanoidDirEnv"]


class HumanoidDirEnv(MujocoTaskEnv, HumanoidEnv):
    """The biped of Gymnasium's Humanoid-v5, asked to run in the direction of an angle.

    ## Description
    A 3-D humanoid (free-floating torso, abdomen, legs and arms) moves by
    torques at its 17 hinge joints. Each task is an angle ``theta``; the robot
    is rewarded for moving its centre of mass along ``(cos theta, sin theta)``
    and does not observe ``theta``.

    ## Action space
    ``Box(-0.4, 0.4, (17,), float32)``: joint torques (Gymnasium's layout).
    MuJoCo clamps controls to the control range; the control cost uses the
    clamped action.

    ## Observation space
    Gymnasium v5's default, as float32: ``Box(-inf, inf, (348,), float32)``,
    ``qpos[2:]`` (22), ``qvel`` (23), ``cinert`` (130), ``cvel`` (78),
    ``qfrc_actuator`` of the hinge joints (17) and ``cfrc_ext`` (78), the last
    four without the world body.

    ## Reward
    ``reward = reward_forward + reward_survive + reward_ctrl + reward_contact``:
    - ``reward_forward = forward_reward_weight * v_com . (cos theta, sin theta)``
      (weight 1.25)
    - ``reward_survive = healthy_reward`` (5), on every step
    - ``reward_ctrl = -ctrl_cost_weight * ||a||^2`` (weight 0.1)
    - ``reward_contact = -min(contact_cost_weight * ||cfrc_ext||^2, 10)``
      (weight 5e-7; the sum runs over all bodies, the world body included, as
      Gymnasium v5 computes it; the world body's ``cfrc_ext`` is always zero)

    ``v_com = (c_after - c_before) / dt`` where ``c`` is the horizontal position
    of the centre of mass (``body_mass``-weighted mean of ``data.xipos``) and
    ``dt = frame_skip * opt.timestep`` (0.015 s). ``info`` holds every term,
    ``x_position``, ``y_position``, ``distance_from_origin``, ``x_velocity`` and
    ``y_velocity`` (of the centre of mass) and ``angle``.

    ## Success
    None: a direction to run in has no end state, so ``info`` has no ``"success"``
    flag.

    ## Task distribution
    ``AngleTask(angle)`` with ``angle ~ U[0, 2 pi)``; 100 train / 30 test tasks.

    ## Episode end
    Terminates when the torso's z (``qpos[2]``) leaves ``[1.0, 2.0]``
    (Gymnasium v5's healthy range, bounds included as in PEARL); truncated
    after 200 steps by the registered ``TimeLimit``.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (an ``AngleTask`` or its dict); ``None``: a fixed draw |
    | ``forward_reward_weight`` | ``1.25`` | weight of the direction term |
    | ``ctrl_cost_weight`` | ``0.1`` | weight of the control cost |
    | ``contact_cost_weight`` | ``5e-7`` | weight of the contact cost |
    | ``contact_cost_range`` | ``(-inf, 10)`` | bounds of the contact cost |
    | ``healthy_reward`` | ``5.0`` | survive bonus per step |
    | ``healthy_z_range`` | ``(1.0, 2.0)`` | torso heights that do not end the episode |
    | ``terminate_when_unhealthy`` | ``True`` | end the episode when unhealthy |
    | other keywords | Gymnasium's | passed to ``HumanoidEnv`` |

    ## Source
    PEARL (Rakelly et al. 2019, oyster ``humanoid_dir.py``; its ``0.25 *
    delta / timestep`` over a 5-frame step is ``1.25 * v_com``). Deviations
    from Gymnasium v5: the survive bonus is also paid on the terminating step
    and the healthy range includes its bounds, both as in PEARL; the control
    cost uses the clamped action (Gymnasium squares ``data.ctrl``, equal for
    actions inside the action space).
    """

    n_train_tasks = 100
    n_test_tasks = 30
    _cos: float
    _sin: float
    _task_info: dict[str, Any]

    def __init__(self, task: Task | dict[str, Any] | None = None, **kwargs: Any):
        HumanoidEnv.__init__(self, **kwargs)
        # After HumanoidEnv's own EzPickle call, so that unpickling rebuilds this class.
        EzPickle.__init__(self, task, **kwargs)
        self._use_float32_observations()
        self.task_distribution: TaskDistribution = UniformTasks(
            AngleTask, "angle", 0.0, 2 * math.pi
        )
        self._init_task(task)

    def _apply_task(self, task: Task) -> None:
        assert isinstance(task, AngleTask)
        self._cos, self._sin = math.cos(task.angle), math.sin(task.angle)
        self._task_info = {"angle": task.angle}

    # Gymnasium's MujocoEnv annotates float64 observations and rewards; ours are float32 / float.
    def step(  # type: ignore[override]
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        model, data = self.model, self.data
        com_before = mass_center(model, data)
        self.do_simulation(action, self.frame_skip)
        com_after = mass_center(model, data)
        vx, vy = ((com_after - com_before) / self.dt).tolist()
        reward_forward = self._forward_reward_weight * (vx * self._cos + vy * self._sin)
        reward_survive = float(self._healthy_reward)
        reward_ctrl = -self._ctrl_cost_weight * self._squared_norm(self._applied_action(action))
        reward_contact = -float(self.contact_cost)
        qpos = data.qpos
        z = qpos[2]
        min_z, max_z = self._healthy_z_range
        terminated = self._terminate_when_unhealthy and not min_z <= z <= max_z
        info = {
            "x_position": float(qpos[0]),
            "y_position": float(qpos[1]),
            "distance_from_origin": float(np.hypot(qpos[0], qpos[1])),
            "x_velocity": vx,
            "y_velocity": vy,
            "reward_forward": reward_forward,
            "reward_survive": reward_survive,
            "reward_ctrl": reward_ctrl,
            "reward_contact": reward_contact,
            **self._task_info,
        }
        if self.render_mode == "human":
            self.render()
        reward = reward_forward + reward_survive + reward_ctrl + reward_contact
        # Truncation is the registered TimeLimit's.
        return self._get_obs(), reward, bool(terminated), False, info

    def _get_reset_info(self) -> dict[str, Any]:
        info: dict[str, Any] = super()._get_reset_info()
        return {**info, **self._task_info}
