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

        The range is read from the model on every call, so a randomized control
        range counts. Kept lean (``np.minimum``/``np.maximum`` rather than
        ``np.clip`` and masks) because it runs every step (the measurement behind
        this choice: ``benchmarks/RESULTS.md``, "Figures quoted from development").
        """
        model = self.model
        ctrlrange = model.actuator_ctrlrange
        clipped: np.ndarray = np.minimum(np.maximum(action, ctrlrange[:, 0]), ctrlrange[:, 1])
        if self._all_ctrl_limited(model):
            return clipped
        limited = model.actuator_ctrllimited.astype(bool)
        out: np.ndarray = np.where(limited, clipped, np.asarray(action, dtype=np.float64))
        return out

    def _all_ctrl_limited(self, model: Any) -> bool:
        cached: tuple[Any, bool] | None = getattr(self, "_ctrl_limited_cache", None)
        if cached is None or cached[0] is not model:
            cached = (model, bool(model.actuator_ctrllimited.all()))
            self._ctrl_limited_cache = cached
        return cached[1]

    @staticmethod
    def _squared_norm(x: np.ndarray) -> float:
        """``||x||^2`` of a 1-D array."""
        return float(np.dot(x, x))
