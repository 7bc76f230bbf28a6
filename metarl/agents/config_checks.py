"""Range checks of the agents' config dataclasses (their ``__post_init__``), each raising
``ValueError`` naming ``Config.field`` and what it allows; ``check_positive_int`` also
serves the sim-to-real schedules."""

from __future__ import annotations

import math
import numbers
from typing import Any

from metarl.agents.networks import ACTIVATIONS

__all__ = ["check_mlp_fields", "check_positive_int", "check_real"]


def check_mlp_fields(config: Any) -> None:
    """Check the ``seed``, ``hidden_sizes`` and ``activation`` fields of a frozen config
    dataclass of an MLP agent (``ValueError`` naming the field); store
    ``hidden_sizes`` as a tuple."""
    name = type(config).__name__
    seed = config.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{name}.seed must be a non-negative integer, got {seed!r}")
    sizes = config.hidden_sizes
    if not isinstance(sizes, tuple | list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes
    ):
        raise ValueError(f"{name}.hidden_sizes must be positive integers, got {sizes!r}")
    object.__setattr__(config, "hidden_sizes", tuple(sizes))
    if config.activation not in ACTIVATIONS:
        raise ValueError(
            f"{name}.activation must be one of {list(ACTIVATIONS)}, got {config.activation!r}"
        )


def check_positive_int(cls: str, key: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``cls.key`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{cls}.{key} must be a positive integer, got {value!r}")


def check_real(cls: str, key: str, value: Any, positive: bool = False) -> float:
    """``value`` as a float; raises unless it is a finite real (and positive if asked)."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or (positive and not value > 0):
        kind = "a positive number" if positive else "a finite number"
        raise ValueError(f"{cls}.{key} must be {kind}, got {value!r}")
    return float(value)
