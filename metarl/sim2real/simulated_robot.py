"""A simulated robot: a sim-to-sim target behind the ``Robot`` interface.

``SimulatedRobot`` holds a target's environment (``TargetConfig``: hidden physics and
unmodeled effects) and answers as a robot does: ``reset`` starts an episode, each
``send_command`` advances the simulation by one control period with that command,
``read`` returns the latest reading (observation, reward, end of episode, the env's
numeric step infos; not the effects' records, which a robot would not report). A
MuJoCo target's readings carry ``info["state"]``, the state at the time of the reading
(the step's ``next_state``; the reset's state in the reset reading; measured, with the
``state_noise`` effect), as a robot that measures its state reports it.
Time in the simulation advances per command, not by the wall clock: a command the
watchdog sends is a control period too.

It is what the tests, the demo and the robot server use in place of hardware; the
platform reaches it only through the ``Robot`` interface (or the network bridge).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from metarl.envs.mujoco_state import NEXT_STATE_KEY, STATE_KEY
from metarl.sim2real.robot import RobotDisconnected, RobotReading
from metarl.sim2real.targets import (
    TargetConfig,
    flatten_info,
    make_target_env,
    split_effect_records,
)

__all__ = ["SimulatedRobot"]


def _numeric(value: Any) -> bool:
    return np.asarray(value).dtype.kind in "biuf"


class SimulatedRobot:
    """A ``Robot`` over a target's environment (module docstring).

    Raises:
        ValueError: the target's env has no ``Box`` spaces, or refuses its physics or
            effects.
    """

    def __init__(self, config: TargetConfig):
        self.config = config
        self._env = make_target_env(config)
        obs_space, act_space = self._env.observation_space, self._env.action_space
        if not (isinstance(obs_space, spaces.Box) and isinstance(act_space, spaces.Box)):
            self._env.close()
            raise ValueError(f"SimulatedRobot: {config.env}'s spaces are not Boxes")
        self.observation_space: spaces.Box = obs_space
        self.action_space: spaces.Box = act_space
        self._seeds = np.random.SeedSequence(config.seed)
        self.connected = False
        self.commands = 0
        self._reading: RobotReading | None = None
        self._done = True

    def connect(self) -> None:
        self.connected = True

    def _check(self) -> None:
        if not self.connected:
            raise RobotDisconnected("SimulatedRobot: not connected")

    def reset(self, seed: int | None = None) -> RobotReading:
        """Start an episode: the env's reset with ``seed`` (default: the next seed of
        the target's own sequence)."""
        self._check()
        if seed is None:
            seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
        obs, info = self._env.reset(seed=seed)
        state = {STATE_KEY: info[STATE_KEY]} if STATE_KEY in info else {}
        self._reading = RobotReading(np.asarray(obs), info=state)
        self._done = False
        return self._reading

    def send_command(self, action: np.ndarray) -> None:
        """One control period with ``action``. After the episode ended (a robot at rest
        waiting for its reset) commands are accepted and change nothing."""
        self._check()
        self.commands += 1
        if self._done or self._reading is None:
            return
        obs, reward, terminated, truncated, info = self._env.step(np.asarray(action))
        visible, _ = split_effect_records(flatten_info(info))  # a robot does not say them
        numeric = {k: np.asarray(v) for k, v in visible.items() if _numeric(v)}
        if NEXT_STATE_KEY in numeric:  # a robot reads the state now, its next_state
            numeric[STATE_KEY] = numeric.pop(NEXT_STATE_KEY)
        self._reading = RobotReading(np.asarray(obs), float(reward), terminated, truncated, numeric)
        self._done = bool(terminated or truncated)

    def read(self) -> RobotReading:
        self._check()
        if self._reading is None:
            raise RuntimeError("SimulatedRobot.read before reset")
        return self._reading

    def disconnect(self) -> None:
        self.connected = False

    def close(self) -> None:
        self.connected = False
        self._env.close()
