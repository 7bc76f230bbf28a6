"""The safety layer every command to a robot passes, and its watchdog.

``SafetyLayer.filter(action, observation)`` returns the command to send, checking in
this order:

1. the emergency-stop latch: once set (``trigger_estop``, or a state limit whose
   response is ``estop``) every command is the safe action until ``clear_estop`` is
   called explicitly; nothing else clears it;
2. limits on the robot's own state (observation dimensions, by index or by the
   robot's observation names), each with its response: ``safe_action`` (send the
   safe action this step), ``truncate`` (the safe action, and the episode ends),
   ``estop`` (latch);
3. a command with NaN or infinite entries: replaced by the safe action;
4. the action bounds: each entry brought into ``[action_low, action_high]``;
5. the largest change per step (``max_delta``) from the previous command sent.

Every change to a command is an ``Intervention`` with its cause, its episode and
step, kept in ``interventions``: a command is never changed silently. The log
(``logging``, logger ``metarl.sim2real.safety``) has each one at DEBUG and one line
per episode that had any (``end_episode``: its counts by kind), at INFO when the layer
only shaped commands as configured (``SHAPING``: bounds, change limit), at WARNING when
anything else happened; latching the e-stop is an ERROR at once. A command of the
wrong shape is a programming error and raises.

``Watchdog``: a thread that sends the safe action when no command arrived for
``timeout_s`` (a stalled policy, a lost network), and again every ``timeout_s``
while none arrives, each time recorded as an intervention.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, model_validator

from metarl.checks import check_number

__all__ = [
    "EStopLatched",
    "Intervention",
    "SafetyConfig",
    "SafetyLayer",
    "StateLimit",
    "Watchdog",
    "kind_counts",
]

log = logging.getLogger("metarl.sim2real.safety")

# The causes of an intervention, in the order the layer checks them.
KINDS = ("estop", "state_limit", "non_finite", "action_bounds", "max_delta", "watchdog")
# The kinds that shape a valid command as configured; the others say something went wrong.
SHAPING = ("action_bounds", "max_delta")


class EStopLatched(RuntimeError):
    """The emergency stop is latched: only ``clear_estop`` releases it."""


class StateLimit(BaseModel):
    """Bounds on one observation dimension and what to do outside them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dim: int | str
    """Observation index, or a name from the robot's ``observation_names``."""
    low: float = -math.inf
    high: float = math.inf
    response: Literal["safe_action", "truncate", "estop"] = "truncate"

    @model_validator(mode="after")
    def _ordered(self) -> StateLimit:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class SafetyConfig(BaseModel):
    """What the safety layer enforces (module docstring). Unset bounds default to
    the robot's action space; unset ``safe_action`` to zeros, which must lie inside
    the bounds."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action_low: list[float] | None = None
    action_high: list[float] | None = None
    max_delta: float | list[float] | None = Field(default=None)
    """Largest change of each command entry from one step to the next (None: any)."""
    safe_action: list[float] | None = None
    state_limits: list[StateLimit] = Field(default_factory=list)
    watchdog_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Send the safe action when no command came for this long (None: no watchdog)."""

    @model_validator(mode="after")
    def _finite(self) -> SafetyConfig:
        for name in ("action_low", "action_high", "max_delta", "safe_action"):
            value = getattr(self, name)
            if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float))):
                raise ValueError(f"{name} must be finite numbers, got {value}")
        return self


@dataclass(frozen=True)
class Intervention:
    """One change the safety layer made: in ``episode`` (counted from 0 by
    ``start_episode``; -1 before the first) at ``step`` of it (-1: outside a step),
    ``kind`` (one of ``KINDS``), a human-readable ``detail``, the command as given and
    as sent."""

    episode: int
    step: int
    time: float
    kind: str
    detail: str
    given: tuple[float, ...]
    sent: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode,
            "step": self.step,
            "time": self.time,
            "kind": self.kind,
            "detail": self.detail,
            "given": list(self.given),
            "sent": list(self.sent),
        }


def kind_counts(events: Sequence[Intervention | str]) -> dict[str, int]:
    """How many of ``events`` (interventions, or their kinds) there are of each kind, in
    the order of ``KINDS``."""
    kinds = [e if isinstance(e, str) else e.kind for e in events]
    counts = {kind: kinds.count(kind) for kind in KINDS}
    return {kind: n for kind, n in counts.items() if n}


def _vector(name: str, value: Any, size: int) -> np.ndarray:
    """``value`` (a number or ``size`` numbers) as a float64 vector of ``size``."""
    arr = (
        np.broadcast_to(np.asarray(value, dtype=np.float64), (size,))
        if np.ndim(value) == 0
        else np.asarray(value, dtype=np.float64)
    )
    if arr.shape != (size,):
        raise ValueError(f"safety.{name}: expected {size} numbers, got {list(np.ravel(value))}")
    return arr.copy()


class SafetyLayer:
    """Filters every command (module docstring).

    Raises:
        ValueError: a bound, ``max_delta`` or ``safe_action`` of the wrong size, bounds
            outside the action space or not ordered, a safe action outside the bounds,
            or a state limit on an unknown dimension (each names the field).
    """

    def __init__(
        self,
        config: SafetyConfig,
        action_space: spaces.Box,
        observation_size: int,
        observation_names: Sequence[str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        n = int(np.prod(action_space.shape))
        self.shape = action_space.shape
        space_low = np.asarray(action_space.low, dtype=np.float64).ravel()
        space_high = np.asarray(action_space.high, dtype=np.float64).ravel()
        self.low = (
            space_low if config.action_low is None else _vector("action_low", config.action_low, n)
        )
        self.high = (
            space_high
            if config.action_high is None
            else _vector("action_high", config.action_high, n)
        )
        if not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))):
            raise ValueError(
                "safety.action_low/action_high: the robot's action space is unbounded "
                f"([{space_low.tolist()}, {space_high.tolist()}]); give finite bounds"
            )
        if np.any(self.low < space_low) or np.any(self.high > space_high):
            raise ValueError(
                f"safety.action_low/action_high must lie inside the robot's action space "
                f"[{space_low.tolist()}, {space_high.tolist()}]"
            )
        if not np.all(self.low <= self.high):
            raise ValueError(
                f"safety.action_low {self.low.tolist()} exceeds action_high {self.high.tolist()}"
            )
        self.max_delta = (
            None if config.max_delta is None else _vector("max_delta", config.max_delta, n)
        )
        if self.max_delta is not None and not np.all(self.max_delta > 0):
            raise ValueError(f"safety.max_delta must be positive, got {self.max_delta.tolist()}")
        safe = (
            np.zeros(n)
            if config.safe_action is None
            else _vector("safe_action", config.safe_action, n)
        )
        if np.any(safe < self.low) or np.any(safe > self.high):
            raise ValueError(
                f"safety.safe_action {safe.tolist()} must lie inside the bounds "
                f"[{self.low.tolist()}, {self.high.tolist()}]"
            )
        self.safe_action = safe
        names = list(observation_names or [])
        self.limits: list[tuple[int, StateLimit]] = []
        for i, limit in enumerate(config.state_limits):
            if isinstance(limit.dim, str):
                if limit.dim not in names:
                    raise ValueError(
                        f"safety.state_limits[{i}].dim: {limit.dim!r} is not an observation "
                        f"name; the robot's are {names}"
                    )
                index = names.index(limit.dim)
            else:
                index = limit.dim
                if not 0 <= index < observation_size:
                    raise ValueError(
                        f"safety.state_limits[{i}].dim must be in [0, {observation_size}), "
                        f"got {index}"
                    )
            self.limits.append((index, limit))
        self.dtype = action_space.dtype
        self._clock = clock
        self._lock = threading.Lock()
        self.estopped = False
        self.estop_cause = ""
        self.interventions: list[Intervention] = []
        self.episode = -1
        self.step = -1
        self._last: np.ndarray | None = None
        self._reported = 0  # interventions[:_reported] are in a logged summary

    # ------------------------------------------------------------------ e-stop

    def trigger_estop(self, cause: str) -> None:
        """Latch the emergency stop (every command becomes the safe action)."""
        with self._lock:
            if not self.estopped:
                self.estopped, self.estop_cause = True, cause
                log.error("e-stop latched: %s", cause)

    def clear_estop(self) -> None:
        """Release the latch: the one way to end an emergency stop."""
        with self._lock:
            if self.estopped:
                log.warning("e-stop cleared (was: %s)", self.estop_cause)
            self.estopped, self.estop_cause = False, ""

    # ------------------------------------------------------------------ filtering

    def start_episode(self) -> None:
        """A new episode: the previous one summarized (``end_episode``), steps count
        from 0, the change limit restarts (the first command is not limited by the last
        one of the previous episode)."""
        self.end_episode()
        with self._lock:
            self.episode += 1
            self.step, self._last = -1, None

    def end_episode(self) -> dict[str, int]:
        """Log one line (module docstring) with the counts by kind of the interventions
        not yet summarized (this episode's, and any since the last summary), if there
        are any; return the counts."""
        with self._lock:
            events = self.interventions[self._reported :]
            self._reported = len(self.interventions)
            steps = self.step + 1
        counts = kind_counts(events)
        if counts:
            log.log(
                logging.INFO if set(counts) <= set(SHAPING) else logging.WARNING,
                "safety: episode %d: %d intervention(s) in %d step(s): %s",
                self.episode,
                len(events),
                steps,
                ", ".join(f"{kind} {n}" for kind, n in counts.items()),
            )
        return counts

    def _record(self, kind: str, detail: str, given: np.ndarray, sent: np.ndarray) -> Intervention:
        event = Intervention(
            self.episode,
            self.step,
            self._clock(),
            kind,
            detail,
            tuple(float(x) for x in np.ravel(given)),
            tuple(float(x) for x in np.ravel(sent)),
        )
        self.interventions.append(event)
        log.debug("safety: episode %d step %d: %s: %s", self.episode, self.step, kind, detail)
        return event

    def filter(
        self, action: Any, observation: np.ndarray
    ) -> tuple[np.ndarray, list[Intervention], bool]:
        """The command to send for ``action`` given the latest ``observation``; the
        interventions made; whether the episode must end (a ``truncate`` limit or the
        e-stop).

        Raises:
            ValueError: ``action`` of the wrong shape.
        """
        given = np.asarray(action, dtype=np.float64)
        if given.shape != self.shape:
            raise ValueError(
                f"safety: command of shape {given.shape}, the robot takes {self.shape}"
            )
        flat = given.ravel()
        with self._lock:
            self.step += 1
            events: list[Intervention] = []
            end = False
            sent = flat.copy()
            safe = self.safe_action
            obs = np.asarray(observation, dtype=np.float64).ravel()
            for index, limit in self.limits:
                value = obs[index]
                if limit.low <= value <= limit.high:
                    continue
                label = "" if isinstance(limit.dim, int) else f" ({limit.dim})"
                bounds = f"[{limit.low:g}, {limit.high:g}]"
                detail = f"observation[{index}]{label} = {value:.6g} outside {bounds}: "
                detail += limit.response
                if limit.response == "estop" and not self.estopped:
                    self.estopped, self.estop_cause = True, detail
                    log.error("e-stop latched: %s", detail)
                end = end or limit.response == "truncate"
                events.append(self._record("state_limit", detail, flat, safe))
                sent = safe.copy()
            if self.estopped:
                end = True
                if not events:
                    events.append(self._record("estop", f"latched: {self.estop_cause}", flat, safe))
                sent = safe.copy()
            elif not events:
                if not np.all(np.isfinite(flat)):
                    events.append(
                        self._record("non_finite", f"command {flat.tolist()}", flat, safe)
                    )
                    sent = safe.copy()
                else:
                    sent = self._limit(events, "action_bounds", flat, sent, self.low, self.high)
                    if self.max_delta is not None and self._last is not None:
                        low, high = self._last - self.max_delta, self._last + self.max_delta
                        sent = self._limit(events, "max_delta", flat, sent, low, high)
            self._last = sent
            return sent.reshape(self.shape).astype(self.dtype), events, end

    def _limit(
        self,
        events: list[Intervention],
        kind: str,
        given: np.ndarray,
        sent: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
    ) -> np.ndarray:
        """``sent`` brought into ``[low, high]``; a change is recorded as ``kind``."""
        limited = np.clip(sent, low, high)
        if np.any(limited != sent):
            dims = np.flatnonzero(limited != sent).tolist()
            what = "brought into bounds" if kind == "action_bounds" else "changed too fast"
            events.append(self._record(kind, f"entries {dims} {what}", given, limited))
        return limited

    def record_watchdog(self, waited_s: float, cause: str = "") -> np.ndarray:
        """Record that the watchdog sends the safe action after ``waited_s`` without a
        command (or for ``cause``); returns the safe action (what it sends)."""
        with self._lock:
            self._last = self.safe_action.copy()
            self._record(
                "watchdog",
                cause or f"no command for {waited_s * 1e3:.1f} ms: safe action sent",
                np.full_like(self.safe_action, np.nan),
                self.safe_action,
            )
        return self.safe_action.reshape(self.shape).astype(self.dtype)


class Watchdog:
    """Calls ``on_timeout(waited_s)`` when ``kick`` was not called for ``timeout_s``,
    then again every ``timeout_s`` until the next ``kick``. A daemon thread; ``stop``
    ends it. ``pause``/``resume`` suspend it between episodes."""

    def __init__(self, timeout_s: float, on_timeout: Callable[[float], None]):
        self.timeout_s = check_number("Watchdog.timeout_s", timeout_s, gt=0)
        self._on_timeout = on_timeout
        self._kicked = threading.Event()
        self._stop = threading.Event()
        self._active = threading.Event()
        self.fired = 0
        self._thread = threading.Thread(target=self._run, name="metarl-watchdog", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """A command was sent: the timeout restarts."""
        self._kicked.set()

    def resume(self) -> None:
        self._kicked.set()
        self._active.set()

    def pause(self) -> None:
        self._active.clear()
        self._kicked.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._active.wait(timeout=0.05):
                continue
            start = time.perf_counter()
            if self._kicked.wait(timeout=self.timeout_s):
                self._kicked.clear()
                continue
            if self._stop.is_set() or not self._active.is_set():
                continue
            self.fired += 1
            try:
                self._on_timeout(time.perf_counter() - start)
            except Exception:  # the watchdog must keep running: log and go on
                log.exception("watchdog: sending the safe action failed")

    def stop(self) -> None:
        self._stop.set()
        self._kicked.set()
        self._active.set()
        self._thread.join(timeout=1.0)
