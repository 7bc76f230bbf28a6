"""Real robots: the interface a user implements, and ``RealRobotEnv`` over it.

A robot is anything with this small interface (``Robot``, a protocol; no base class
needed): its ``observation_space`` and ``action_space`` (Gymnasium ``Box``es, the
specification of what it reads and takes), optional ``observation_names``, and

- ``connect()`` / ``disconnect()``;
- ``reset(seed=None) -> RobotReading``: bring the robot to its start state (a homing
  routine, or an operator) and return the first reading (a simulated robot seeds its
  episode with ``seed``; a real one ignores it);
- ``send_command(action)``: apply a command (returns at once);
- ``read() -> RobotReading``: the latest observation, with the reward and the end of
  the episode where the robot knows them (a simulated robot does; a real one may
  leave them to ``RealRobotEnv``'s ``reward_fn``).

A robot raises ``RobotDisconnected`` when its link is gone.

``RealRobotEnv`` makes any such robot a Gymnasium environment, so that every policy and
agent of the platform runs on it unchanged. Each ``step``: the command passes the
``SafetyLayer`` (``metarl.sim2real.safety``), is sent, the ``RateController`` waits for
the end of the control period, and the robot is read. ``info`` says, with the same keys
at every step and at reset (what recorders need; the state's keys below aside): the
command as sent (``command``), the step's timing (``timing.*``: period, lateness past
the deadline, overrun, time spent in ``send_command`` and in ``read``), the safety
layer's interventions on this command (``safety.interventions``, ``safety.kinds`` as a
bit mask of ``safety.KINDS``, ``safety.estop``), how often the watchdog sent the safe
action since the previous step (``safety.watchdog``) and whether the link was lost
(``disconnected``).

The state. A fitted simulator (``metarl.sim2real.sysid``) needs the robot's full
state at every recorded step, which its observation often is not (a velocity left out
or clipped, a position relative to the robot, float32). A robot that can measure it
puts it in each reading's ``info["state"]``: the state at the time of the reading, in
the layout of its MuJoCo model, ``[qpos, qvel, act]`` (``nq + nv + na`` numbers, the
order of ``metarl.envs.mujoco_state.state_labels``), e.g. joint encoders and their
velocities, and a base pose from motion capture or an estimator::

    def read(self) -> RobotReading:
        qpos, qvel = self.encoders()  # in the model's joint order and units
        return RobotReading(self.observe(), info={"state": np.concatenate([qpos, qvel])})

(``reset`` returns its reading the same way). ``RealRobotEnv`` turns consecutive
readings into the step infos ``state`` (the previous reading's; the reset reading's for
the first step) and ``next_state`` (this reading's), float64, and the reset's info
``state``; recorded (``metarl.sim2real.recording``) they reach the fits. A robot without
a state sends none (every reading, or none: a reading without one after a reset with
one, a state of another size, or a value that is not finite is an error naming the
step).

A lost link ends the episode cleanly: the step returns the last observation, reward 0,
``truncated=True`` and ``info["disconnected"] = True`` (and no state); the next
``reset`` reconnects. At the end of every episode the safe action is sent, so the robot
does not keep executing the last command.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarl.checks import check_int
from metarl.envs.mujoco_state import NEXT_STATE_KEY, STATE_KEY
from metarl.sim2real.rate import RateController, TimingStats, timing_stats
from metarl.sim2real.safety import (
    KINDS,
    EStopLatched,
    Intervention,
    SafetyConfig,
    SafetyLayer,
    Watchdog,
)

__all__ = ["RealRobotEnv", "Robot", "RobotDisconnected", "RobotReading"]


class RobotDisconnected(ConnectionError):
    """The robot's link is gone (raised by a ``Robot``'s methods)."""


@dataclass
class RobotReading:
    """What a robot reports: its observation, and where it knows them, the reward of
    the last control period, whether the episode ended, and extra ``info`` (numbers or
    numeric arrays, the same keys at every step), ``info["state"]`` among them for a
    robot that measures its state (module docstring)."""

    observation: np.ndarray
    reward: float | None = None
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Robot(Protocol):
    """The interface of a robot (module docstring)."""

    observation_space: spaces.Box
    action_space: spaces.Box

    def connect(self) -> None: ...

    def reset(self, seed: int | None = None) -> RobotReading: ...

    def send_command(self, action: np.ndarray) -> None: ...

    def read(self) -> RobotReading: ...

    def disconnect(self) -> None: ...


RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]

INFO_KEYS = (
    "timing.period",
    "timing.lateness",
    "timing.overrun",
    "timing.command_s",
    "timing.read_s",
    "safety.interventions",
    "safety.kinds",
    "safety.estop",
    "safety.watchdog",
    "disconnected",
)


def kinds_mask(events: Sequence[Intervention]) -> int:
    """The interventions' kinds as a bit mask: bit ``i`` for ``safety.KINDS[i]``."""
    mask = 0
    for e in events:
        mask |= 1 << KINDS.index(e.kind)
    return mask


class RealRobotEnv(gym.Env[np.ndarray, np.ndarray]):
    """A Gymnasium environment over a ``Robot`` (module docstring).

    Args:
        robot: the robot.
        hz: control frequency.
        safety: what the safety layer enforces (default: the action space's bounds,
            zeros as the safe action, no state limits, no watchdog).
        reward_fn: ``(obs, command, next_obs) -> reward``, for robots whose readings
            carry no reward.
        max_episode_steps: truncate episodes at this many steps (None: the robot or
            the safety layer ends them).

    Raises:
        ValueError: a robot without Box spaces, a bad ``hz`` or ``max_episode_steps``,
            or an invalid safety configuration (named).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        robot: Robot,
        hz: float,
        safety: SafetyConfig | None = None,
        reward_fn: RewardFn | None = None,
        max_episode_steps: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        for name in ("observation_space", "action_space"):
            if not isinstance(getattr(robot, name, None), spaces.Box):
                raise ValueError(f"RealRobotEnv: the robot's {name} must be a gymnasium Box")
        if max_episode_steps is not None:
            check_int("RealRobotEnv.max_episode_steps", max_episode_steps, ge=1)
        self.robot = robot
        self.observation_space = robot.observation_space
        self.action_space = robot.action_space
        self.rate = RateController(hz, clock=clock)
        names = getattr(robot, "observation_names", None)
        self.safety = SafetyLayer(
            safety or SafetyConfig(),
            robot.action_space,
            int(np.prod(robot.observation_space.shape)),
            names,
            clock=clock,
        )
        self.reward_fn = reward_fn
        self.max_episode_steps = max_episode_steps
        self._clock = clock
        self._lock = threading.Lock()  # the env's thread and the watchdog's share the robot
        self._connected = False
        self._obs: np.ndarray | None = None
        self._state: np.ndarray | None = None  # the latest reading's state, if it has one
        self._state_size: int | None = None  # the robot's, once a reset reading had one
        self._steps = 0
        self._episode_ticks = 0
        self._watchdog_fires = 0  # since the last step: reported in its info
        self._last_command = -math.inf  # when the env last sent a command (clock seconds)
        self.episode_interventions: list[Intervention] = []
        timeout = (safety or SafetyConfig()).watchdog_s
        if timeout is not None and not timeout > self.rate.period:
            raise ValueError(
                f"safety.watchdog_s ({timeout} s) must exceed the control period "
                f"({self.rate.period:g} s at {hz:g} Hz)"
            )
        self.watchdog = None if timeout is None else Watchdog(timeout, self._watchdog_fired)

    # ------------------------------------------------------------------ helpers

    def _watchdog_fired(self, waited_s: float) -> None:
        assert self.watchdog is not None
        with self._lock:
            # A command that went out while this firing waited for the lock wins.
            if self._clock() - self._last_command < self.watchdog.timeout_s:
                return
            command = self.safety.safe_action.reshape(self.action_space.shape)
            self.robot.send_command(command)
            self.safety.record_watchdog(waited_s)
            self._watchdog_fires += 1

    def _info(self, sent: np.ndarray, **values: float) -> dict[str, Any]:
        info: dict[str, Any] = {"command": np.asarray(sent, dtype=np.float64).copy()}
        info.update({k: values.get(k.replace(".", "_"), 0) for k in INFO_KEYS})
        return info

    def _safe_stop(self) -> None:
        """Send the safe action (an episode's end: its interventions summarized in the
        log); a lost link is not an error here."""
        if self.watchdog is not None:
            self.watchdog.pause()
        self.safety.end_episode()
        if not self._connected:
            return
        try:
            with self._lock:
                self.robot.send_command(self.safety.safe_action.reshape(self.action_space.shape))
        except RobotDisconnected:
            self._connected = False

    # ------------------------------------------------------------------ gymnasium

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Connect if needed, bring the robot to its start state, start the clock.

        Raises:
            EStopLatched: the emergency stop is latched (``clear_estop`` first).
        """
        super().reset(seed=seed)
        if self.safety.estopped:
            raise EStopLatched(
                f"e-stop latched ({self.safety.estop_cause}): check the robot, then call "
                "env.clear_estop()"
            )
        if self.watchdog is not None:
            self.watchdog.pause()  # no safe action lands between the reset and step 1
        with self._lock:
            if not self._connected:
                self.robot.connect()
                self._connected = True
            reading = self.robot.reset(seed)
            self._watchdog_fires = 0
        self._obs = self._observation(reading)
        self._state = self._reading_state(reading, None)
        self._steps = 0
        self.episode_interventions = []
        self.safety.start_episode()
        self.rate.start()
        self._episode_ticks = len(self.rate.ticks)
        if self.watchdog is not None:
            self.watchdog.resume()
        info = self._info(self.safety.safe_action)
        if self._state is not None:
            info[STATE_KEY] = self._state.copy()
        return self._obs.copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One control period (module docstring).

        Raises:
            RuntimeError: ``step`` before ``reset``, or neither the robot nor
                ``reward_fn`` gives a reward.
            ValueError: an action of the wrong shape.
        """
        if self._obs is None:
            raise RuntimeError("RealRobotEnv.step before reset")
        sent, events, end = self.safety.filter(action, self._obs)
        self.episode_interventions.extend(events)
        with self._lock:
            fired, self._watchdog_fires = self._watchdog_fires, 0
        values: dict[str, float] = {
            "safety_interventions": len(events),
            "safety_kinds": kinds_mask(events),
            "safety_estop": self.safety.estopped,
            "safety_watchdog": fired,
        }
        try:
            if self.watchdog is not None:
                self.watchdog.kick()
            t0 = self._clock()
            with self._lock:
                self._last_command = t0
                self.robot.send_command(sent)
            t1 = self._clock()
            tick = self.rate.wait()
            t2 = self._clock()
            with self._lock:
                reading = self.robot.read()
            t3 = self._clock()
        except RobotDisconnected:
            self._connected = False
            self._safe_stop()
            info = self._info(sent, disconnected=1, **values)
            return self._obs.copy(), 0.0, False, True, info
        except BaseException:  # the command went out: leave the robot safe, then raise
            self._safe_stop()
            raise
        try:
            next_obs = self._observation(reading)
            if reading.reward is not None:
                reward = float(reading.reward)
            elif self.reward_fn is not None:
                reward = float(self.reward_fn(self._obs, sent, next_obs))
            else:
                raise RuntimeError(
                    "RealRobotEnv: the robot's readings carry no reward; pass reward_fn"
                )
            clash = sorted(set(reading.info) & {"command", NEXT_STATE_KEY, *INFO_KEYS})
            if clash:
                raise ValueError(f"RealRobotEnv: the robot's info reuses the env's keys {clash}")
            state = self._reading_state(reading, self._steps + 1)
        except BaseException:
            self._safe_stop()
            raise
        self._obs = next_obs
        self._steps += 1
        limit = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        terminated = bool(reading.terminated)
        truncated = bool(reading.truncated or end or limit) and not terminated
        info = self._info(
            sent,
            timing_period=tick.period,
            timing_lateness=tick.lateness,
            timing_overrun=tick.overrun,
            timing_command_s=t1 - t0,
            timing_read_s=t3 - t2,
            **values,
        )
        info.update({k: v for k, v in reading.info.items() if k != STATE_KEY})
        if state is not None:
            assert self._state is not None  # the reset reading had one
            info[STATE_KEY], info[NEXT_STATE_KEY] = self._state, state
            self._state = state.copy()
        if terminated or truncated:
            self._safe_stop()
        return next_obs.copy(), reward, terminated, truncated, info

    def _observation(self, reading: RobotReading) -> np.ndarray:
        """The reading's observation, checked against the observation space's shape.

        Raises:
            ValueError: an observation of another size.
        """
        obs = np.asarray(reading.observation, dtype=self.observation_space.dtype)
        shape = self.robot.observation_space.shape
        if obs.size != int(np.prod(shape)):
            raise ValueError(
                f"RealRobotEnv: the robot sent an observation of {obs.size} numbers; its "
                f"observation space has shape {shape}"
            )
        return obs.reshape(shape)

    def _reading_state(self, reading: RobotReading, step: int | None) -> np.ndarray | None:
        """The reading's ``info["state"]`` as float64 (``None`` for a robot without
        states), checked; ``step``: the step it ends (``None``: the reset).

        Raises:
            ValueError: a state of another size than the robot's first one, one with a
                value that is not finite, or a reading without a state where the reset
                reading had one (or the other way round); named with the step.
        """
        where = "the reset reading" if step is None else f"the reading of step {step}"
        value = reading.info.get(STATE_KEY)
        if value is None:
            if self._state_size is not None and (step is None or self._state is not None):
                raise ValueError(
                    f"RealRobotEnv: {where} has no 'state'; the robot's readings had one "
                    f"({self._state_size} numbers): a robot reports its state in every "
                    "reading or in none"
                )
            return None
        state = np.asarray(value, dtype=np.float64)
        if step is not None and self._state is None:
            raise ValueError(
                f"RealRobotEnv: {where} has a 'state' and the reset reading had none: a "
                "robot reports its state in every reading or in none"
            )
        size = self._state_size
        if state.ndim != 1 or state.size == 0 or size not in (None, state.size):
            expected = "numbers" if size is None else f"{size} numbers"
            raise ValueError(
                f"RealRobotEnv: {where} has a 'state' of shape {state.shape}; the robot's "
                f"state is a vector of {expected} ([qpos, qvel, act] of its model)"
            )
        bad = np.flatnonzero(~np.isfinite(state))
        if bad.size:
            raise ValueError(
                f"RealRobotEnv: {where} has a 'state' that is not finite at entries "
                f"{bad.tolist()} ({state[bad].tolist()}); a state must be finite numbers"
            )
        self._state_size = state.size
        return state

    def clear_estop(self) -> None:
        """Release the emergency stop (after checking the robot)."""
        self.safety.clear_estop()

    def timing(self) -> TimingStats:
        """Timing of the current (or last) episode's control periods."""
        return timing_stats(self.rate.ticks[self._episode_ticks :], self.rate.period)

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        self._safe_stop()
        if self._connected:
            try:
                self.robot.disconnect()
            finally:
                self._connected = False
        super().close()
