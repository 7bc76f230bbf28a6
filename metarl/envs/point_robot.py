"""Point robots: a point in the plane moved by bounded displacements toward a goal.

``PointRobotEnv`` (``metarl/PointRobot-v0``) and ``PointRobotSparseEnv``
(``metarl/PointRobotSparse-v0``) as defined in PEARL's reference code
(``point_robot.py``), with the task distributions of ``shared/TASKS.md``.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from metarl.envs.base import TaskEnv
from metarl.tasks import SUCCESS_KEY, ArcGoals, GoalTask, Task, TaskDistribution, UniformBoxGoals


class PointRobotEnv(TaskEnv, gym.Env[np.ndarray, np.ndarray], EzPickle):
    """A point in the plane that must reach a goal position.

    ## Description
    The state is the position ``p`` of a point, starting uniformly at random in
    ``[-1, 1]^2`` (from ``np_random``, as PEARL's ``PointEnv.reset_model``). Each
    action is a displacement added to ``p``. The task is a goal position ``g``;
    the agent does not observe it.

    ## Action space
    ``Box(-0.1, 0.1, (2,), float32)``: the displacement ``(dx, dy)``. Like a
    MuJoCo actuator with a control range, the point saturates: the displacement
    applied is the action clipped to the box, and ``info["action_applied"]``
    holds it.

    ## Observation space
    ``Box(-inf, inf, (2,), float32)``: the position ``p``.

    ## Reward
    ``-||p - g||_2`` after the move, also in ``info["reward_goal"]``.
    ``info["distance"]`` holds ``||p - g||_2``.

    ## Success
    None: PEARL's dense point robot defines no goal region, so ``info`` has no
    ``"success"`` flag and its meta-tests report returns only (the sparse variant
    below has one).

    ## Task distribution
    ``GoalTask(goal)`` with ``goal ~ U[-1, 1]^2``; 80 train / 20 test tasks.

    ## Episode end
    Never terminates; truncated after 20 steps by the registered ``TimeLimit``.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (a ``GoalTask`` or its dict); ``None``: a fixed draw |

    ## Source
    PEARL (Rakelly et al. 2019), oyster ``rlkit/envs/point_robot.py``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)
    n_train_tasks = 80
    n_test_tasks = 20

    def __init__(self, task: Task | dict[str, Any] | None = None):
        EzPickle.__init__(self, task)
        self.action_space = spaces.Box(-0.1, 0.1, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.task_distribution: TaskDistribution = self._make_distribution()
        self._position = np.zeros(2)
        self._goal = np.zeros(2)
        self._init_task(task)

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        return UniformBoxGoals(-1.0, 1.0, dim=2)

    def _apply_task(self, task: Task) -> None:
        assert isinstance(task, GoalTask)
        self._goal = task.array

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = self._start_position()
        return self._position.astype(np.float32), {"distance": self._distance()}

    def _start_position(self) -> np.ndarray:
        return self.np_random.uniform(-1.0, 1.0, size=2)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        applied = np.clip(np.asarray(action, dtype=np.float64), -0.1, 0.1)
        self._position = self._position + applied
        distance = self._distance()
        reward, info = self._reward(distance)
        info["distance"] = distance
        info["action_applied"] = applied
        return self._position.astype(np.float32), reward, False, False, info

    def _distance(self) -> float:
        d = self._position - self._goal
        return math.sqrt(d[0] * d[0] + d[1] * d[1])

    def _reward(self, distance: float) -> tuple[float, dict[str, Any]]:
        return -distance, {"reward_goal": -distance}


class PointRobotSparseEnv(PointRobotEnv):
    """The point robot with sparse rewards and goals on the unit half circle.

    ## Description
    As ``PointRobotEnv`` (same spaces and dynamics), but the point starts at the
    origin, and the
    goal lies on the upper half of the unit circle and the reward is only given
    within ``goal_radius = 0.2`` of it.

    ## Reward
    ``1 - ||p - g||_2`` if ``||p - g||_2 <= 0.2``, else ``0``
    (``info["sparse_reward"]``). The dense reward ``-||p - g||_2`` is in
    ``info["dense_reward"]``: PEARL's critic trains on it while its encoder sees
    the sparse one.

    ## Success
    ``info["success"]`` (``metarl.tasks.SUCCESS_KEY``) is 1.0 at a step that ends within
    ``goal_radius`` of the goal (where the sparse reward is given), else 0.0; an
    episode succeeds if it is 1.0 at any step.

    ## Task distribution
    ``GoalTask(goal)`` with ``goal = (cos a, sin a)``, ``a ~ U[0, pi]``;
    80 train / 20 test tasks. (PEARL's code spaces the angles evenly; TASKS.md
    draws them uniformly.)

    ## Episode end
    Never terminates; truncated after 20 steps.

    ## Source
    PEARL (Rakelly et al. 2019), oyster ``SparsePointEnv``.
    """

    goal_radius = 0.2

    def _start_position(self) -> np.ndarray:
        return np.zeros(2)  # PEARL's SparsePointEnv starts at the origin

    @staticmethod
    def _make_distribution() -> TaskDistribution:
        return ArcGoals(radius=1.0, angle_low=0.0, angle_high=math.pi)

    def _reward(self, distance: float) -> tuple[float, dict[str, Any]]:
        reached = distance <= self.goal_radius
        sparse = 1.0 - distance if reached else 0.0
        return sparse, {
            "sparse_reward": sparse,
            "dense_reward": -distance,
            SUCCESS_KEY: float(reached),
        }
