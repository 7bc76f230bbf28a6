"""The figures of a fit's folder: estimates with their 95% intervals, and held-out
episodes predicted open loop, simulated against real (``metarl sysid``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from metarl.sim2real.sysid_result import FitResult

__all__ = ["plot_estimates", "plot_held_out"]

# State entries shown in the held-out figure: those the fit moved most.
_SHOWN = 4


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_estimates(result: FitResult, truth: dict[str, float], path: Path) -> None:
    """Each parameter's estimate with its 95% interval, and the hidden truth if known."""
    plt = _pyplot()
    names = result.names
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(names), 3.5))
    x = np.arange(len(names))
    est = np.array([result.estimates[n] for n in names])
    lo = np.array([result.interval[n][0] for n in names])
    hi = np.array([result.interval[n][1] for n in names])
    ax.errorbar(
        x,
        est,
        yerr=[est - lo, hi - est],
        fmt="o",
        capsize=4,
        label=f"{result.method} estimate, 95% interval",
    )
    for i, n in enumerate(names):
        if n in result.not_identified:
            ax.annotate("not identified", (x[i], hi[i]), fontsize=7, ha="center", va="bottom")
    if truth:
        ax.plot(x, [truth.get(n, np.nan) for n in names], "kx", label="hidden truth")
    ax.set_xticks(x, names)
    ax.set_ylabel("parameter value")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_held_out(result: FitResult, labels: list[str], path: Path) -> None:
    """The first held-out episode: recorded states against the open-loop predictions at
    the nominal and the fitted parameters, for the state entries where those two
    differ most."""
    trace = result.held_out["traces"][0]
    real, nominal, fitted = trace["real"], trace["nominal"], trace["fitted"]
    spread = real.std(0)
    spread[spread < 1e-12] = 1.0
    gap = (np.abs(nominal - fitted) / spread).max(0)
    shown = np.argsort(gap)[::-1][:_SHOWN]
    plt = _pyplot()
    fig, axes = plt.subplots(len(shown), 1, figsize=(6.4, 1.7 * len(shown)), sharex=True)
    axes = np.atleast_1d(axes)
    steps = np.arange(1, len(real) + 1)
    for ax, d in zip(axes, shown, strict=True):
        ax.plot(steps, real[:, d], "k-", label="real")
        ax.plot(steps, nominal[:, d], "C1--", label="simulated, nominal")
        ax.plot(steps, fitted[:, d], "C0-", alpha=0.8, label="simulated, fitted")
        ax.set_ylabel(labels[d] if d < len(labels) else str(d), fontsize=7)
    axes[0].legend(fontsize=7)
    axes[0].set_title(
        f"held-out episode, open loop from its first state ({len(real)} steps)", fontsize=9
    )
    axes[-1].set_xlabel("control step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
