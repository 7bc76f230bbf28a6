"""Shared pieces of the task environments built on Gymnasium's v5 MuJoCo environments.

``MujocoTaskEnv`` is mixed in before the Gymnasium class (``class
HalfCheetahVelEnv(MujocoTaskEnv, HalfCheetahEnv)``). It turns observations into
float32 (the platform's convention at the environment boundary) and gives the
action actually applied, clipped to the actuators' control range the way MuJoCo
clamps ``ctrl`` of a ctrl-limited actuator, for the control cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from metarl.envs.base import TaskEnv


class MujocoTaskEnv(TaskEnv):
    """Mixin for a task environment over a Gymnasium ``MujocoEnv`` subclass."""

    model: Any
    data: Any
    observation_space: spaces.Space[Any]

    def _use_float32_observations(self) -> None:
        """Replace the float64 observation space set by Gymnasium with a float32 one."""
        space = self.observation_space
        assert isinstance(space, spaces.Box)
        self.observation_space = spaces.Box(
            low=space.low.astype(np.float32),
            high=space.high.astype(np.float32),
            shape=space.shape,
            dtype=np.float32,
        )

    def _get_obs(self) -> np.ndarray:
        obs: np.ndarray = super()._get_obs()  # type: ignore[misc]
        return obs.astype(np.float32)

    def _applied_action(self, action: np.ndarray) -> np.ndarray:
        """The control MuJoCo applies for ``action``: clipped to ``actuator_ctrlrange``.

        Read from the model on every call, so a randomized control range counts.
        """
        action = np.asarray(action, dtype=np.float64)
        limited = self.model.actuator_ctrllimited
        if not limited.any():
            return action
        rng = self.model.actuator_ctrlrange
        clipped = np.clip(action, rng[:, 0], rng[:, 1])
        return np.where(limited.astype(bool), clipped, action)

    @staticmethod
    def _squared_norm(x: np.ndarray) -> float:
        return float(np.dot(x.ravel(), x.ravel()))
