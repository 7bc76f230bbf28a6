"""The shared pieces of the unmodeled effects (``metarl.envs.effects``): the ``Effect``
base wrapper (its own seeded generator stream, its record in ``info["effects"]``) and
the checks of the effects' arguments (delays, per-dimension sizes, Box spaces).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarl.checks import is_integer, is_real
from metarl.envs.base import layers

__all__ = [
    "Delay",
    "Effect",
    "Size",
    "check_box",
    "check_delay",
    "check_size",
    "is_numeric",
    "with_record",
]

Delay = int | Sequence[int]
Size = float | Sequence[float]


class Effect(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """An unmodeled effect: its own seeded generator and its record in ``info``."""

    name: ClassVar[str]
    _stream: ClassVar[int]  # spawn key of this effect's generator stream

    def __init__(self, env: gym.Env[Any, Any], **kwargs: Any):
        gym.utils.RecordConstructorArgs.__init__(self, **kwargs)
        gym.Wrapper.__init__(self, env)
        self._rng: np.random.Generator | None = None
        # Two effects of one kind in a stack get different streams (the inner keeps
        # the plain key, so a single effect draws as it always did).
        depth = sum(type(layer) is type(self) for layer in layers(env))
        self._spawn_key = (self._stream,) if depth == 0 else (self._stream, depth)

    @property
    def rng(self) -> np.random.Generator:
        """The effect's generator (fresh entropy until a seeded reset)."""
        if self._rng is None:
            self._rng = np.random.default_rng()
        return self._rng

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng(
                np.random.SeedSequence(seed, spawn_key=self._spawn_key)
            )
        obs, info = self.env.reset(seed=seed, options=options)
        self._start_episode()
        obs, record = self._reset_observation(obs)
        return obs, with_record(info, self.name, record)

    def _step_applied(
        self, applied: Any, record: dict[str, Any]
    ) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env with ``applied`` (the action the effect lets through) and
        record it, with ``record``, in ``info["effects"][name]``."""
        obs, reward, terminated, truncated, info = self.env.step(applied)
        record = {"applied_action": applied, **record}
        return obs, reward, terminated, truncated, with_record(info, self.name, record)

    def _start_episode(self) -> None:
        """Draw what the effect keeps for an episode."""

    def _reset_observation(self, obs: Any) -> tuple[Any, dict[str, Any]]:
        """The observation the agent gets at reset, and what to record."""
        return obs, {}


def with_record(info: dict[str, Any], name: str, record: dict[str, Any]) -> dict[str, Any]:
    """``info`` with ``record`` as ``info["effects"][name]`` (``info`` itself if there is
    nothing to record)."""
    if not record:
        return info
    effects = dict(info.get("effects", {}))
    effects[name] = record
    return {**info, "effects": effects}


def check_delay(name: str, steps: Any) -> tuple[int, int]:
    """``steps`` (an integer or ``[low, high]``) as an inclusive range of integers >= 0."""

    def ok(x: Any) -> bool:
        return is_integer(x) and bool(x >= 0)

    if ok(steps):
        return int(steps), int(steps)
    if (
        isinstance(steps, Sequence)
        and not isinstance(steps, str)
        and len(steps) == 2
        and all(ok(x) for x in steps)
        and steps[0] <= steps[1]
    ):
        return int(steps[0]), int(steps[1])
    raise ValueError(
        f"{name}.steps must be an integer >= 0 or [low, high] with 0 <= low <= high, got {steps!r}"
    )


def check_size(
    name: str, field: str, value: Any, dim: int, positive: bool = False, per: str = "dimension"
) -> np.ndarray:
    """A number or ``dim`` numbers (one ``per`` ...), each finite and >= 0 (> 0 if
    ``positive``), as ``dim`` float64 values."""
    arr = np.asarray(value, dtype=np.float64) if is_numeric(value) else None
    if arr is None or arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != dim):
        raise ValueError(
            f"{name}.{field} must be a number or a list of {dim} numbers (one per "
            f"{per}), got {value!r}"
        )
    bad = ~np.isfinite(arr) | (arr <= 0 if positive else arr < 0)
    if np.any(bad):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name}.{field} must be finite and {kind}, got {value!r}")
    return np.broadcast_to(arr, (dim,)).copy()


def is_numeric(value: Any) -> bool:
    """A real number or a non-empty sequence of them."""
    if is_real(value):
        return True
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(is_real(v) for v in value)
    )


def check_box(space: spaces.Space[Any], name: str, what: str) -> spaces.Box:
    """``space`` if it is a 1-D ``Box``.

    Raises:
        ValueError: another space (``name`` needs a 1-D Box ``what`` space).
    """
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{name} needs a 1-D Box {what} space, got {space!r}")
    return space
