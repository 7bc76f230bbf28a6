"""The effect ``state_noise`` (``StateNoise``): sensor noise and bias on the recorded state.

A robot that measures its state (encoders, an IMU, motion capture) gives it with noise
and a calibration offset. ``StateNoise`` turns the true states that ``RecordState``
puts in the infos (``metarl.envs.mujoco_state``) into such measurements; it is
registered in ``metarl.envs.effects.EFFECTS``.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from metarl.envs.base import layers
from metarl.envs.effect_base import Effect, Size, check_size, with_record
from metarl.envs.mujoco_state import NEXT_STATE_KEY, STATE_KEY, RecordState, mujoco_model

__all__ = ["StateNoise"]


class StateNoise(Effect):
    """The state as sensors give it: truth + bias + N(0, std^2) on the ``qpos`` and
    ``qvel`` parts of ``info["state"]`` / ``info["next_state"]`` (the ``act`` part, an
    actuator's internal activation, passes exact). The bias is drawn per episode from
    N(0, bias_std^2).

    ``qpos_std`` and ``qpos_bias_std`` are a number or ``nq`` values (one per ``qpos``
    entry), ``qvel_std`` and ``qvel_bias_std`` a number or ``nv`` values; all default to 0.

    One measurement per time point: the reset's ``state`` is the first; each step's
    ``next_state`` is a new one, and the next step's ``state`` is that same
    measurement. The observation is left as it is (``observation_noise`` is for it).
    ``info["effects"]["state_noise"]``: the true ``state`` (and ``next_state`` at a
    step) and the episode's ``bias`` (a full state vector, zeros on ``act``).

    Raises:
        ValueError: an env that is not MuJoCo or whose infos carry no state (wrap it in
            ``RecordState`` first; a target's env has it), or a size that is not a
            non-negative number or one per entry of its part.
    """

    name = "state_noise"
    _stream = 0x73746E73

    def __init__(
        self,
        env: gym.Env[Any, Any],
        qpos_std: Size = 0.0,
        qvel_std: Size = 0.0,
        qpos_bias_std: Size = 0.0,
        qvel_bias_std: Size = 0.0,
    ):
        super().__init__(
            env,
            qpos_std=qpos_std,
            qvel_std=qvel_std,
            qpos_bias_std=qpos_bias_std,
            qvel_bias_std=qvel_bias_std,
        )
        found = mujoco_model(env)
        if found is None:
            raise ValueError(f"StateNoise needs a MuJoCo environment, got {env.unwrapped!r}")
        if not _records_state(env):
            raise ValueError(
                "StateNoise needs the state in the env's infos: wrap the env in "
                "metarl.envs.mujoco_state.RecordState first (a target's env has it)"
            )
        model = found[0]

        def sizes(qpos: Size, qvel: Size, kind: str) -> np.ndarray:
            return np.concatenate(
                [
                    check_size("StateNoise", f"qpos_{kind}", qpos, model.nq, per="qpos entry"),
                    check_size("StateNoise", f"qvel_{kind}", qvel, model.nv, per="qvel entry"),
                    np.zeros(model.na),
                ]
            )

        self.std = sizes(qpos_std, qvel_std, "std")
        self.bias_std = sizes(qpos_bias_std, qvel_bias_std, "bias_std")
        self.bias = np.zeros_like(self.std)
        self._measured: np.ndarray | None = None  # the latest measurement

    def _start_episode(self) -> None:
        self.bias = self.rng.normal(0.0, 1.0, self.bias_std.shape) * self.bias_std

    def _measure(self, truth: Any) -> np.ndarray:
        noise = self.rng.normal(0.0, 1.0, self.std.shape) * self.std
        self._measured = np.asarray(truth, dtype=np.float64) + self.bias + noise
        return self._measured.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        truth = info[STATE_KEY]
        info = {**info, STATE_KEY: self._measure(truth)}
        return obs, with_record(info, self.name, {"state": truth, "bias": self.bias.copy()})

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._measured is None:
            raise RuntimeError("StateNoise.step before reset")
        before = self._measured.copy()
        obs, reward, terminated, truncated, info = self.env.step(action)
        record = {"state": info[STATE_KEY], "next_state": info[NEXT_STATE_KEY]}
        info = {**info, STATE_KEY: before, NEXT_STATE_KEY: self._measure(info[NEXT_STATE_KEY])}
        record["bias"] = self.bias.copy()
        return obs, reward, terminated, truncated, with_record(info, self.name, record)


def _records_state(env: gym.Env[Any, Any]) -> bool:
    return any(isinstance(layer, RecordState) for layer in layers(env))
