"""The linear feature baseline of Duan et al. 2016 ("Benchmarking deep reinforcement
learning for continuous control"), the state-value estimate of MAML and ProMP.

A least-squares fit of discounted returns on hand-made features of each step:
the observation clipped to [-10, 10], its square, and the time step ``t / 100``
with its square and cube, plus a constant. MAML (Finn et al. 2017) fits one per
task at each iteration, on that task's episodes only, as do rllab, ProMP and
garage. The fit is ridge regression; if the normal equations are singular to
the point of giving non-finite coefficients, the ridge term grows tenfold, up to
five times (the published implementations do the same).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LinearFeatureBaseline", "discounted_returns"]


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``R_t = sum_{j >= t} gamma^(j - t) r_j`` over one episode (float64)."""
    out = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


class LinearFeatureBaseline:
    """Value estimates linear in per-step features, fitted to observed returns.

    Args:
        reg_coeff: the initial ridge coefficient (1e-5 in rllab, ProMP and garage).
    """

    def __init__(self, reg_coeff: float = 1e-5):
        if not reg_coeff > 0:
            raise ValueError(f"reg_coeff must be positive, got {reg_coeff!r}")
        self.reg_coeff = float(reg_coeff)
        self.coeffs: np.ndarray | None = None

    @staticmethod
    def features(observations: np.ndarray) -> np.ndarray:
        """The ``(T, 2 * obs_dim + 4)`` features of one episode's observations ``(T, ...)``."""
        obs = np.clip(
            np.asarray(observations, dtype=np.float64).reshape(len(observations), -1), -10.0, 10.0
        )
        t = np.arange(len(obs), dtype=np.float64)[:, None] / 100.0
        return np.concatenate([obs, obs**2, t, t**2, t**3, np.ones_like(t)], axis=1)

    def fit(self, observations: Sequence[np.ndarray], returns: Sequence[np.ndarray]) -> None:
        """Fit to episodes: ``observations[i]`` ``(T_i, ...)`` and ``returns[i]`` ``(T_i,)``.

        Raises:
            ValueError: no episodes, or lengths that differ.
        """
        if len(observations) == 0 or len(observations) != len(returns):
            raise ValueError(
                f"fit needs matching, non-empty episodes: {len(observations)} observation "
                f"arrays and {len(returns)} return arrays"
            )
        feats = np.concatenate([self.features(o) for o in observations])
        targets = np.concatenate([np.asarray(r, dtype=np.float64) for r in returns])
        if len(feats) != len(targets):
            raise ValueError(f"fit got {len(feats)} steps of features and {len(targets)} returns")
        gram = feats.T @ feats
        rhs = feats.T @ targets
        reg = self.reg_coeff
        for _ in range(5):
            coeffs = np.linalg.lstsq(gram + reg * np.eye(len(gram)), rhs, rcond=None)[0]
            if np.all(np.isfinite(coeffs)):
                break
            reg *= 10.0
        self.coeffs = coeffs

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """Value estimates ``(T,)`` for one episode's observations (zeros before a fit)."""
        if self.coeffs is None:
            return np.zeros(len(observations))
        return self.features(observations) @ self.coeffs
