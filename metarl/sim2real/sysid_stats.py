"""What a least-squares fit's residuals say: intervals, identifiability, the noise floor.

All in the fit's normalized coordinates ``x`` in [0, 1] per parameter (``low + x *
(high - low)``), from ``J`` (the Jacobian of the weighted residuals at the estimate,
``(M, d)``), the residuals ``r`` ``(M,)`` and a cluster label per residual row:

- Standard errors: the larger, per parameter, of the Gauss-Newton (Laplace) estimate
  ``s^2 (J^T J)^-1`` and the cluster-robust sandwich ``B^-1 (sum_c g_c g_c^T) B^-1``
  (``g_c = J_c^T r_c``; White 1980, Liang & Zeger 1986), clusters being blocks of
  consecutive steps of one episode. The first is right when residuals are independent
  and catches a direction the data do not touch (where the sandwich's ``0/0`` is not);
  the second stays right when consecutive residuals are correlated (sensor noise enters
  two consecutive transitions) or of unequal size. The larger is the cautious choice
  whose coverage ``benchmarks/sysid_coverage.py`` measures. A floor of
  ``NUMERICAL_FLOOR`` (normalized units) stands for the optimizer's convergence.
- 95% intervals: estimate +- t(0.975, clusters - 1) standard errors (``scipy.stats.t``),
  cut at the bounds, where the report says so.
- Not identified: a parameter whose 95% interval (before the cut) is at least half its
  bounds' width: the data do not determine it. Pairs with ``|correlation| >=
  TRADE_OFF`` are named: the data determine a combination of them better than each.
- The noise floor (``metarl.sim2real.sysid``): measurement noise of variance
  ``sigma^2`` on the recorded states enters a one-step residual twice: as the noise of
  the recorded next state, and through the dynamics as the noise of the start state
  (large where a contact turns a millimetre of position into a force).
  ``measurement_variance`` estimates ``sigma^2`` per entry from the residuals' lag-1
  autocovariance; the fit then predicts again from start states perturbed by noise of
  that size, and the floor is ``sigma^2`` plus the spread this adds. Residual structure
  from a wrong model has positive autocorrelation and lowers the estimate, so a fit
  that does not reproduce the data is not hidden by it; the part of the residuals the
  current and previous actions explain (a command delay the simulator lacks, whose
  residuals under white excitation have noise's lag-1 autocorrelation) is taken out
  first.

Why this and not a library posterior: simulation-based inference (``sbi``) would train
a neural posterior per robot and parameter set on thousands of simulated data sets,
minutes to hours on two cores, and its calibration would need the same check; the
pinned MuJoCo (3.3.0) ships no system-identification module. The local estimates here
need only the Jacobian the least-squares stage computes anyway (``d + 1`` batched
predictions), with scipy for the quantiles; where the local picture fails (a wrong
model, noise on the start states through contacts) the fit's warnings say so, and
``benchmarks/sysid_coverage.py`` measures the coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "NUMERICAL_FLOOR",
    "TRADE_OFF",
    "Uncertainty",
    "measurement_variance",
    "uncertainty",
]

NUMERICAL_FLOOR = 1e-6
TRADE_OFF = 0.95
UNIDENTIFIED_WIDTH = 0.5
LEVEL = 0.95
# The noise floor takes out what the actions explain only with this many rows per column.
_ROWS_PER_REGRESSOR = 4


@dataclass
class Uncertainty:
    """Standard errors ``se`` and 95% intervals ``low``/``high`` in normalized units (the
    intervals not yet cut at the bounds), ``correlation`` ``(d, d)``, ``not_identified``
    (bool per parameter), ``clusters`` and the interval's ``quantile``."""

    se: np.ndarray
    low: np.ndarray
    high: np.ndarray
    correlation: np.ndarray
    not_identified: np.ndarray
    clusters: int
    quantile: float

    def trade_offs(self, names: list[str]) -> list[tuple[str, str, float]]:
        """Pairs of parameters with ``|correlation| >= TRADE_OFF``."""
        d = len(names)
        return [
            (names[i], names[j], float(self.correlation[i, j]))
            for i in range(d)
            for j in range(i + 1, d)
            if abs(self.correlation[i, j]) >= TRADE_OFF
        ]


def uncertainty(
    x: np.ndarray, jac: np.ndarray, resid: np.ndarray, cluster: np.ndarray
) -> Uncertainty:
    """Standard errors, intervals and identifiability at the estimate ``x`` (module
    docstring); ``cluster`` labels each row of ``jac`` and ``resid``."""
    m, d = jac.shape
    bread = jac.T @ jac
    inv = np.linalg.pinv(bread)
    # A direction with no information has an infinite variance, not pinv's zero.
    eigval, eigvec = np.linalg.eigh(bread)
    flat = eigval <= max(eigval.max(), 0.0) * 1e-12 + 1e-300
    s2 = float(resid @ resid) / max(m - d, 1)
    naive = s2 * inv
    grads = jac * resid[:, None]
    labels, index = np.unique(cluster, return_inverse=True)
    per_cluster = np.zeros((len(labels), d))
    np.add.at(per_cluster, index, grads)
    meat = per_cluster.T @ per_cluster
    robust = inv @ meat @ inv
    var = np.maximum(np.diag(naive), np.diag(robust))
    if flat.any():
        touched = (np.abs(eigvec[:, flat]) > 1e-6).any(1)
        var = np.where(touched, np.inf, var)
    se = np.maximum(np.sqrt(var), NUMERICAL_FLOOR)
    q = float(stats.t.ppf(0.5 + LEVEL / 2, max(len(labels) - 1, 1)))
    cov = robust if np.all(np.isfinite(robust)) else naive
    scale = np.sqrt(np.maximum(np.diag(cov), 1e-300))
    corr = np.clip(cov / np.outer(scale, scale), -1.0, 1.0)
    low, high = x - q * se, x + q * se
    return Uncertainty(
        se=se,
        low=low,
        high=high,
        correlation=corr,
        not_identified=(high - low) >= UNIDENTIFIED_WIDTH,
        clusters=len(labels),
        quantile=q,
    )


def measurement_variance(
    resid: np.ndarray, episode: np.ndarray, actions: np.ndarray | None = None
) -> np.ndarray:
    """Per state entry, the variance of measurement noise that one-step residuals
    ``(T, nstate)`` show: minus their lag-1 autocovariance within episodes (``episode``
    labels each row; rows in time order), at least 0. The noise of the recorded next
    state enters a residual and, through the dynamics, the next one with opposite
    sign; for an entry the dynamics carry over unchanged (a velocity over one step)
    this is its variance.

    ``actions`` ``(T, nu)``, the applied action of each row: the part of the residuals
    that this and the previous step's action explain (least squares) is taken out
    first, scaled back for the fitted columns. Measurement noise does not depend on the
    actions; a command delay the simulator lacks leaves residuals ``B (a_{t-1} - a_t)``,
    whose lag-1 autocorrelation under white excitation is that of noise (-1/2).
    Left out when there are fewer than ``_ROWS_PER_REGRESSOR`` rows per column."""
    same = episode[1:] == episode[:-1]
    if not same.any():
        return np.zeros(resid.shape[1])
    centred = resid - resid.mean(0)
    if actions is not None:
        acts = np.asarray(actions, dtype=np.float64).reshape(len(resid), -1)
        previous = np.zeros_like(acts)
        previous[1:][same] = acts[:-1][same]
        design = np.column_stack([np.ones(len(acts)), acts, previous])
        columns = design.shape[1]
        if len(resid) >= _ROWS_PER_REGRESSOR * columns:
            coef, *_ = np.linalg.lstsq(design, resid, rcond=None)
            centred = (resid - design @ coef) * np.sqrt(len(resid) / (len(resid) - columns))
    gamma1 = (centred[1:][same] * centred[:-1][same]).mean(0)
    return np.maximum(-gamma1, 0.0)
