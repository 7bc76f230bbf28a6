"""Ant task families: walk forward or backward along x, or walk to a goal in the plane.

``AntDirEnv`` (``metarl/AntDir-v0``) and ``AntGoalEnv`` (``metarl/AntGoal-v0``)
subclass Gymnasium's v5 ``AntEnv``: its model, frame skip, reset noise,
observation layout (with contact forces) and contact-force clipping are kept,
and its reward and termination are replaced by those ``docs/tasks.md``
defines for each family. The two share one step (``_AntTaskEnv``) and differ in
the task term and in the defaults of the cost weights, survive bonus and
termination.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.utils import EzPickle

from metarl.envs.mujoco_task import MujocoTaskEnv
from metarl.tasks import ChoiceTasks, DirectionTask, DiscGoals, GoalTask, Task, TaskDistribution

__all__ = ["AntDirEnv", "AntGoalEnv"]


class _AntTaskEnv(MujocoTaskEnv, AntEnv):
    """The step both Ant families share; subclasses give the task term.

    ``reward = <task term> + reward_survive + reward_ctrl + reward_contact`` with
    ``reward_survive = healthy_reward`` on every step (also the terminal one),
    ``reward_ctrl = -ctrl_cost_weight * ||a||^2`` on the applied action and
    ``reward_contact = -contact_cost_weight * ||clip(cfrc_ext, contact_force_range)||^2``
    over all bodies, as Gymnasium v5 computes it. The task term is
    ``_task_reward(xy, xy_velocity)`` of the main body, stored in ``info`` under
    ``_task_reward_key``.
    """

    _task_reward_key = ""
    _task_info: dict[str, Any]

    def __init__(
        self,
        task: Task | dict[str, Any] | None,
        *,
        ctrl_cost_weight: float,
        healthy_reward: float,
        terminate_when_unhealthy: bool,
        **kwargs: Any,
    ):
        AntEnv.__init__(
            self,
            ctrl_cost_weight=ctrl_cost_weight,
            healthy_reward=healthy_reward,
            terminate_when_unhealthy=terminate_when_unhealthy,
            **kwargs,
        )
        # After AntEnv's own EzPickle call, so that unpickling rebuilds this class.
        EzPickle.__init__(
            self,
            task,
            ctrl_cost_weight=ctrl_cost_weight,
            healthy_reward=healthy_reward,
            terminate_when_unhealthy=terminate_when_unhealthy,
            **kwargs,
        )
        self._main_body_id: int = self.model.body(self._main_body).id
        self._use_float32_observations()
        self.task_distribution: TaskDistribution = self._make_distribution()
        self._init_task(task)

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        raise NotImplementedError

    def _task_reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        raise NotImplementedError

    # Gymnasium's MujocoEnv annotates float64 observations and rewards; ours are float32 / float.
    def step(  # type: ignore[override]
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        xpos = self.data.xpos
        body = self._main_body_id
        xy_before = xpos[body, :2].copy()
        self.do_simulation(action, self.frame_skip)
        xy_after = xpos[body, :2].copy()
        xy_velocity = (xy_after - xy_before) / self.dt
        reward_task = self._task_reward(xy_after, xy_velocity)
        reward_survive = float(self._healthy_reward)
        reward_ctrl = -self._ctrl_cost_weight * self._squared_norm(self._applied_action(action))
        reward_contact = -float(self.contact_cost)
        terminated = self._terminate_when_unhealthy and not self.is_healthy
        qpos = self.data.qpos
        info = {
            "x_position": float(qpos[0]),
            "y_position": float(qpos[1]),
            "distance_from_origin": float(np.hypot(qpos[0], qpos[1])),
            "x_velocity": float(xy_velocity[0]),
            "y_velocity": float(xy_velocity[1]),
            self._task_reward_key: reward_task,
            "reward_survive": reward_survive,
            "reward_ctrl": reward_ctrl,
            "reward_contact": reward_contact,
            **self._task_info,
        }
        if self.render_mode == "human":
            self.render()
        reward = reward_task + reward_survive + reward_ctrl + reward_contact
        # Truncation is the registered TimeLimit's.
        return self._get_obs(), reward, terminated, False, info

    def _get_reset_info(self) -> dict[str, Any]:
        info: dict[str, Any] = super()._get_reset_info()
        return {**info, **self._task_info}


class AntDirEnv(_AntTaskEnv):
    """The quadruped of Gymnasium's Ant-v5, asked to walk forward or backward along x.

    ## Description
    A 3-D ant (free-floating torso, four legs of two links each) moves by
    torques at its eight hinge joints. Each task is a direction ``d`` along x:
    ``+1`` (forward) or ``-1`` (backward); the agent does not observe it.

    ## Action space
    ``Box(-1, 1, (8,), float32)``: hip and ankle torques of the four legs
    (Gymnasium's layout). MuJoCo clamps controls to the control range; the
    control cost uses the clamped action.

    ## Observation space
    Gymnasium v5's default, as float32: ``Box(-inf, inf, (105,), float32)``,
    ``qpos[2:]`` (13; the torso's x and y are left out), ``qvel`` (14), and the
    contact forces ``clip(cfrc_ext, -1, 1)`` of every body but the world (78).

    ## Reward
    ``reward = reward_forward + reward_survive + reward_ctrl + reward_contact``:
    - ``reward_forward = forward_reward_weight * d * x_velocity``
    - ``reward_survive = healthy_reward`` (1), on every step
    - ``reward_ctrl = -ctrl_cost_weight * ||a||^2`` (weight 0.5)
    - ``reward_contact = -contact_cost_weight * ||clip(cfrc_ext, -1, 1)||^2``
      (weight 0.5e-3)

    ``x_velocity = (x_after - x_before) / dt`` of the torso body's position
    ``data.xpos`` (Gymnasium v5's ``main_body``), ``dt = frame_skip *
    opt.timestep`` (0.05 s). The contact term sums over all bodies, the world
    body included, as Gymnasium v5 does (its ``cfrc_ext`` is always zero, so
    this equals the sum over the robot's bodies). ``info`` holds every term,
    ``x_position``, ``y_position``, ``distance_from_origin``, ``x_velocity``,
    ``y_velocity`` and ``direction``.

    ## Success
    None: a direction to run in has no end state, so ``info`` has no ``"success"``
    flag and meta-tests report returns only.

    ## Task distribution
    ``DirectionTask(direction)`` with ``direction`` in ``{-1, +1}``; 2 train /
    2 test tasks (a set of two holds each direction once).

    ## Episode end
    Terminates when the state is not finite or the torso's z (``qpos[2]``)
    leaves ``[0.2, 1.0]`` (Gymnasium v5's health check); truncated after 200
    steps by the registered ``TimeLimit``.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (a ``DirectionTask`` or its dict); ``None``: a fixed draw |
    | ``forward_reward_weight`` | ``1.0`` | weight of the forward term |
    | ``ctrl_cost_weight`` | ``0.5`` | weight of the control cost |
    | ``contact_cost_weight`` | ``5e-4`` | weight of the contact cost |
    | ``healthy_reward`` | ``1.0`` | survive bonus per step |
    | ``terminate_when_unhealthy`` | ``True`` | end the episode when unhealthy |
    | ``healthy_z_range`` | ``(0.2, 1.0)`` | torso heights that do not end the episode |
    | other keywords | Gymnasium's | passed to ``AntEnv`` (``contact_force_range``, ...) |

    ## Source
    ProMP (Rothfuss et al. 2019, ``ant_rand_direc.py``). Deviation from
    Gymnasium v5: the survive bonus is also paid on the terminating step, as in
    ProMP (Gymnasium v5 pays it only while healthy). Not followed: oyster's
    config, which samples two random angles, and VariBAD's AntDir, which uses
    directions at +-1 rad.
    """

    n_train_tasks = 2
    n_test_tasks = 2
    _task_reward_key = "reward_forward"
    _direction: float

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        *,
        ctrl_cost_weight: float = 0.5,
        healthy_reward: float = 1.0,
        terminate_when_unhealthy: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            task,
            ctrl_cost_weight=ctrl_cost_weight,
            healthy_reward=healthy_reward,
            terminate_when_unhealthy=terminate_when_unhealthy,
            **kwargs,
        )

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        return ChoiceTasks(DirectionTask, "direction", [-1, 1])

    def _apply_task(self, task: Task) -> None:
        assert isinstance(task, DirectionTask)
        self._direction = float(task.direction)
        self._task_info = {"direction": task.direction}

    def _task_reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        return self._forward_reward_weight * self._direction * float(xy_velocity[0])


class AntGoalEnv(_AntTaskEnv):
    """The quadruped of Gymnasium's Ant-v5, asked to walk to a goal position in the plane.

    ## Description
    The ant of ``AntDirEnv``. Each task is a goal ``g`` in the plane; the agent
    does not observe it and is rewarded for bringing its torso close to it.

    ## Action space
    ``Box(-1, 1, (8,), float32)``, as ``AntDirEnv``.

    ## Observation space
    ``Box(-inf, inf, (105,), float32)``, as ``AntDirEnv``.

    ## Reward
    ``reward = reward_goal + reward_ctrl + reward_contact (+ reward_survive = 0)``:
    - ``reward_goal = -forward_reward_weight * ||xy - g||_1``, ``xy`` the torso
      body's position ``data.xpos`` after the step
    - ``reward_ctrl = -ctrl_cost_weight * ||a||^2`` (weight 0.1)
    - ``reward_contact = -contact_cost_weight * ||clip(cfrc_ext, -1, 1)||^2``
      (weight 0.5e-3, all bodies as Gymnasium v5: see ``AntDirEnv``)
    - no survive bonus: ``healthy_reward`` defaults to 0

    ``info`` holds every term, the positions and velocities of ``AntDirEnv``,
    and ``goal``.

    ## Success
    None: the reference codes (ProMP ``ant_rand_goal.py``, oyster ``ant_goal.py``)
    give the goal no radius, so ``info`` has no ``"success"`` flag;
    ``info["reward_goal"]`` is the distance term.

    ## Task distribution
    ``GoalTask(goal)`` uniform in the disc of radius 3: angle ``~ U[0, 2 pi)``,
    radius ``= 3 sqrt(U[0, 1])``; 150 train / 30 test tasks.

    ## Episode end
    Never terminates (``terminate_when_unhealthy`` defaults to ``False``);
    truncated after 200 steps by the registered ``TimeLimit``.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (a ``GoalTask`` or its dict); ``None``: a fixed draw |
    | ``forward_reward_weight`` | ``1.0`` | weight of the goal term |
    | ``ctrl_cost_weight`` | ``0.1`` | weight of the control cost |
    | ``contact_cost_weight`` | ``5e-4`` | weight of the contact cost |
    | ``healthy_reward`` | ``0.0`` | survive bonus per step |
    | ``terminate_when_unhealthy`` | ``False`` | end the episode when unhealthy |
    | other keywords | Gymnasium's | passed to ``AntEnv`` |

    ## Source
    ProMP (``ant_rand_goal.py``) and PEARL (oyster ``ant_goal.py``), on
    Gymnasium v5's model and observation layout.
    """

    n_train_tasks = 150
    n_test_tasks = 30
    _task_reward_key = "reward_goal"
    _goal: np.ndarray

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        *,
        ctrl_cost_weight: float = 0.1,
        healthy_reward: float = 0.0,
        terminate_when_unhealthy: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            task,
            ctrl_cost_weight=ctrl_cost_weight,
            healthy_reward=healthy_reward,
            terminate_when_unhealthy=terminate_when_unhealthy,
            **kwargs,
        )

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        return DiscGoals(3.0)

    def _apply_task(self, task: Task) -> None:
        assert isinstance(task, GoalTask)
        self._goal = task.array
        self._task_info = {"goal": task.goal}

    def _task_reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        return -self._forward_reward_weight * float(np.abs(xy - self._goal).sum())
