"""What a learned-simulator fit found, and its report: estimates with 95% intervals, the
parameters the data do not determine, the discrepancy beside the noise floor, and
held-out predictions.

Discrepancy (every figure of the report): the mean squared error of predicted
against recorded states, per state entry divided by the variance of the recorded
states (1 = as wrong as predicting their mean), over one-step predictions of the
fit's episodes, at the simulator's nominal parameters and at the estimates. The noise
floor is the discrepancy that measurement noise alone would leave
(``metarl.sim2real.sysid_stats``: measurement noise on the next and on the start
state, through the simulator) plus the numerical floor; the
share explained is ``(nominal - fitted) / (nominal - floor)``. Held-out episodes
(not used by the fit) are predicted open loop from their first state over
``held_out_horizon`` steps, at both parameter sets.

Warnings (``FitResult.warnings``, at the top of the report and printed by ``metarl
sysid``): the fitted simulator does not reproduce the data (discrepancy above
``MISMATCH`` x the floor and above ``REPRODUCED``), an estimate at a bound of its
search range, noise on the start states that dominates the floor (``START_NOISE``:
errors in variables bias the estimates), a parameter the data do not determine, a
held-out prediction no better than the nominal one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metarl.envs import PhysicsParam

__all__ = ["MISMATCH", "FitResult", "param_mismatches", "relative_errors"]

# A fitted discrepancy above this multiple of the noise floor: the model misses something.
MISMATCH = 3.0
# Discrepancies below this are at the numerical floor (float64 states, solver tolerance).
NUMERICAL_DISCREPANCY = 1e-10
# Above this share of the noise floor, noise on the start states dominates: errors in
# the variables a one-step prediction starts from bias the estimates.
START_NOISE = 0.75
# Held-out predictions this much worse with the fitted parameters than with the nominal
# ones get a warning (smaller differences are rounding).
HELD_OUT_WORSE = 1.05
# A fitted discrepancy below this (one-step errors within 0.1% rms of the states'
# spread) reproduces the data whatever the floor.
REPRODUCED = 1e-6


def param_mismatches(fitted: Mapping[str, Any], truth: Mapping[str, Any]) -> list[str]:
    """Names in both ``PhysicsParam`` dict mappings whose field, elements, components
    or operation differ, each with the difference: a recovery error would compare
    values of different quantities."""
    out = []
    for name in sorted(set(fitted) & set(truth)):
        for key in ("field", "elements", "components", "op"):
            a, b = fitted[name].get(key), truth[name].get(key)
            if a != b:
                out.append(f"{name}: {key} {a!r} vs {b!r}")
    return out


def relative_errors(estimates: Mapping[str, float], truth: Mapping[str, Any]) -> dict[str, float]:
    """``|estimate - truth| / |truth|`` for each estimated name with a scalar truth."""
    return {
        n: abs(float(v) - float(truth[n])) / abs(float(truth[n]))
        for n, v in estimates.items()
        if n in truth and np.ndim(truth[n]) == 0
    }


@dataclass
class FitResult:
    """What a fit found (module docstring). ``uncertainty``: the standard error of each
    estimate (DROPO: the fitted randomization's standard deviation); ``interval``: the
    95% interval, cut at the search bounds; ``not_identified``: the parameters the data
    do not determine; ``trade_offs``: pairs the data determine only together."""

    method: str
    names: list[str]
    estimates: dict[str, float]
    uncertainty: dict[str, float]
    interval: dict[str, tuple[float, float]]
    distribution: dict[str, PhysicsParam]
    discrepancy_nominal: float
    discrepancy_fitted: float
    noise_floor: float
    episodes: int
    transitions: int
    seconds_of_data: float
    wall_time_s: float
    evaluations: int
    objective: float
    state_source: str
    start_noise_share: float = 0.0
    confidence: bool = True
    inert: list[str] = field(default_factory=list)
    not_identified: list[str] = field(default_factory=list)
    at_bound: list[str] = field(default_factory=list)
    trade_offs: list[tuple[str, str, float]] = field(default_factory=list)
    held_out: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def share_explained(self) -> float:
        """``(nominal - fitted) / (nominal - floor)``; nan when nominal is at the floor."""
        room = self.discrepancy_nominal - self.noise_floor
        if room <= 0:
            return float("nan")
        return (self.discrepancy_nominal - self.discrepancy_fitted) / room

    def recovery_error(self, truth: Mapping[str, float]) -> dict[str, float]:
        """Relative error ``|estimate - truth| / |truth|`` per parameter of ``truth``."""
        return relative_errors(self.estimates, truth)

    def covers(self, truth: Mapping[str, Any]) -> dict[str, bool]:
        """Whether each scalar truth lies inside its parameter's 95% interval."""
        return {
            n: self.interval[n][0] <= float(truth[n]) <= self.interval[n][1]
            for n in self.names
            if n in truth and np.ndim(truth[n]) == 0
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON): the distribution as ``PhysicsParam`` dicts."""
        return {
            "method": self.method,
            "estimates": self.estimates,
            "uncertainty": self.uncertainty,
            "interval": {n: list(v) for n, v in self.interval.items()},
            "not_identified": self.not_identified,
            "at_bound": self.at_bound,
            "trade_offs": [list(t) for t in self.trade_offs],
            "inert": self.inert,
            "interval_is_confidence": self.confidence,
            "distribution": {n: p.to_dict() for n, p in self.distribution.items()},
            "discrepancy_nominal": self.discrepancy_nominal,
            "discrepancy_fitted": self.discrepancy_fitted,
            "noise_floor": self.noise_floor,
            "start_noise_share": self.start_noise_share,
            "share_explained": self.share_explained,
            "held_out": {k: v for k, v in self.held_out.items() if k != "traces"},
            "warnings": self.warnings,
            "state_source": self.state_source,
            "episodes": self.episodes,
            "transitions": self.transitions,
            "seconds_of_data": self.seconds_of_data,
            "wall_time_s": self.wall_time_s,
            "evaluations": self.evaluations,
            "objective": self.objective,
            **self.extra,
        }

    def report(self, truth: Mapping[str, float] | None = None) -> str:
        """A Markdown fit report; with ``truth`` (sim-to-sim), the recovery errors and
        whether each interval holds the truth."""
        errors = self.recovery_error(truth) if truth else {}
        inside = self.covers(truth) if truth else {}
        lines = [f"# {self.method} fit", ""]
        if self.warnings:
            lines += ["**Warnings**", ""] + [f"- **{w}**" for w in self.warnings] + [""]
        share = self.share_explained
        lines += [
            f"- real data: {self.episodes} episodes, {self.transitions} transitions "
            f"({self.seconds_of_data:.1f} s of control); states: {self.state_source}",
            f"- wall time: {self.wall_time_s:.1f} s, {self.evaluations} objective evaluations",
            f"- discrepancy (normalized one-step MSE): nominal {self.discrepancy_nominal:.3g}"
            f" -> fitted {self.discrepancy_fitted:.3g}; noise floor {self.noise_floor:.3g}; "
            + ("share explained n/a" if np.isnan(share) else f"share explained {share:.1%}"),
        ]
        if self.held_out:
            h = self.held_out
            lines.append(
                f"- held-out: {h['episodes']} episode(s), open loop from the first state for "
                f"up to {h['horizon']} steps ({h['predicted_steps']} predicted): discrepancy "
                f"nominal {h['discrepancy_nominal']:.3g} "
                f"-> fitted {h['discrepancy_fitted']:.3g}"
            )
        else:
            lines.append("- held-out: none (too few episodes to keep one out)")
        spread, interval = (
            ("std error", "95% interval")
            if self.confidence
            else ("randomization std", "mean +- 1.96 std (not a confidence interval)")
        )
        if not self.confidence:
            lines.append(
                f"- {self.method}'s spread is the width of the randomization the data "
                "support, not the uncertainty of the estimate: its range is no confidence "
                "interval (trajectory matching gives calibrated ones)"
            )
        lines += [
            "",
            f"| parameter | estimate | {spread} | {interval} | identified | fitted "
            "distribution"
            + (" | truth | relative error | truth in interval |" if errors else " |"),
            "|---|---:|---:|---|---|---" + ("|---:|---:|---|" if errors else "|"),
        ]
        for n in self.names:
            lo, hi = self.interval[n]
            status = "**no**" if n in self.not_identified else "yes"
            if n in self.at_bound:
                status += " (at a bound)"
            row = (
                f"| {n} | {self.estimates[n]:.4g} | {self.uncertainty[n]:.3g} | "
                f"[{lo:.4g}, {hi:.4g}] | {status} | {self.distribution[n].dist}"
            )
            if errors and n in errors:
                row += f" | {float(truth[n]):.4g} | {errors[n]:.3f} | {inside[n]} |"  # type: ignore[index]
            elif errors:
                row += " | n/a | n/a | n/a |"  # no scalar truth for this parameter
            else:
                row += " |"
            lines.append(row)
        if self.trade_offs:
            lines += ["", "Parameters the data determine together more than apart:"]
            lines += [f"- {a} and {b}: correlation {r:+.3f}" for a, b, r in self.trade_offs]
        return "\n".join(lines) + "\n"


def fit_warnings(result: FitResult) -> list[str]:
    """The warnings of the module docstring, worded for a reader of the report."""
    out = []
    floor = result.noise_floor
    if result.discrepancy_fitted > max(MISMATCH * floor, REPRODUCED):
        out.append(
            f"the fitted simulator does not reproduce the data: discrepancy "
            f"{result.discrepancy_fitted:.3g} is "
            f"{result.discrepancy_fitted / max(floor, 1e-300):.3g}x the noise floor "
            f"{floor:.3g}; something the simulator leaves out (a delay, friction, a "
            "wrong parameter set) shapes the data, and the intervals below assume it "
            "does not"
        )
    if result.start_noise_share > START_NOISE and floor > REPRODUCED:
        out.append(
            f"noise on the recorded start states makes {result.start_noise_share:.0%} of the "
            "noise floor (through the dynamics: contacts turn small position errors into "
            "large forces): errors in the variables the predictions start from bias the "
            "estimates, and the intervals do not include that bias; record less noisy "
            "states or data with fewer contacts"
        )
    for n in result.inert:
        out.append(
            f"{n} changes no prediction of these data at all: it does not act on them "
            "(a friction of a geom that touches nothing, a torsional friction of contacts "
            "that use the sliding one only, a value a larger one overrides); fix it or "
            "leave it out"
        )
    for n in [m for m in result.not_identified if m not in result.inert]:
        out.append(
            f"{n} is not determined by the data: its 95% interval covers half or more of "
            "its search range (excite what it affects, or fix it)"
        )
    for n in result.at_bound:
        out.append(f"{n}'s estimate sits at a bound of its search range: widen the range")
    h = result.held_out
    if h and h["discrepancy_fitted"] > HELD_OUT_WORSE * h["discrepancy_nominal"]:
        out.append(
            "the held-out episodes are predicted worse with the fitted parameters than with "
            "the nominal ones"
        )
    return out
