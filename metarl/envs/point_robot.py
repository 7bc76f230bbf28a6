"""Point robots: a point in the plane moved by bounded displacements toward a goal.

``PointRobotEnv`` (``metarl/PointRobot-v0``) and ``PointRobotSparseEnv``
(``metarl/PointRobotSparse-v0``) as defined in PEARL's reference code
(``point_robot.py``), with the task distributions of ``docs/tasks.md``.
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
    | ``render_mode`` | ``None`` | ``"rgb_array"``: ``render()`` returns the plane as an image |

    ## Rendering
    ``render()`` in ``"rgb_array"`` mode: a ``RENDER_SIZE`` x ``RENDER_SIZE`` RGB image
    of the square ``[-RENDER_EXTENT, RENDER_EXTENT]^2`` (y up), the goal (its success
    radius where the family has one) in green, the point in blue.

    ## Source
    PEARL (Rakelly et al. 2019), oyster ``rlkit/envs/point_robot.py``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012
    n_train_tasks = 80
    n_test_tasks = 20
    goal_radius: float | None = None  # the success radius, where the family has one

    def __init__(self, task: Task | dict[str, Any] | None = None, render_mode: str | None = None):
        EzPickle.__init__(self, task, render_mode)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
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

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The plane as an RGB image (``"rgb_array"`` mode; see Rendering), else ``None``."""
        if self.render_mode != "rgb_array":
            return None
        n = RENDER_SIZE
        # Pixel centres in world coordinates; row 0 is the top (largest y).
        ticks = (np.arange(n) + 0.5) / n * 2 * RENDER_EXTENT - RENDER_EXTENT
        x, y = np.meshgrid(ticks, ticks[::-1])
        image = np.full((n, n, 3), 255, dtype=np.uint8)
        pixel = 2 * RENDER_EXTENT / n
        radius = self.goal_radius if self.goal_radius is not None else 2 * pixel
        image[np.hypot(x - self._goal[0], y - self._goal[1]) <= radius] = (60, 170, 60)
        image[np.hypot(x - self._position[0], y - self._position[1]) <= 2 * pixel] = (40, 80, 200)
        return image


# The rgb_array image: its size in pixels and the half-width of the square it shows.
RENDER_SIZE = 128
RENDER_EXTENT = 3.0


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
    80 train / 20 test tasks. (PEARL's code spaces the angles evenly; metarl
    draws them uniformly, ``docs/tasks.md``.)

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
