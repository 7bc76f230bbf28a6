"""Shared pieces of the agent tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from metarl.agents.policy import PolicyInput

PolicyInputFn = Callable[..., PolicyInput]


def _policy_input(obs: np.ndarray, trials: np.ndarray | None = None) -> PolicyInput:
    """One step of ``len(obs)`` point-robot rows (2-D actions): episode starts, all
    active, row ``i`` in trial ``trials[i]`` (default: ``i``)."""
    n = len(obs)
    return PolicyInput(
        obs.astype(np.float32),
        np.zeros((n, 2), np.float32),
        np.zeros(n, np.float32),
        np.ones(n, bool),
        np.ones(n, bool),
        np.arange(n) if trials is None else trials,
    )


@pytest.fixture
def policy_input() -> PolicyInputFn:
    """``policy_input(obs, trials=None)``: a ``PolicyInput`` for the point robot."""
    return _policy_input
