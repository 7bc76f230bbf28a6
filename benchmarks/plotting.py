"""The line plots of the benchmark scripts: one axes, labelled, gridded, with a
legend, written as a PNG (matplotlib's Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def line_plot(
    path: Path, xlabel: str, ylabel: str, title: str, legend_size: int = 8
) -> Iterator[Any]:
    """Yields a matplotlib ``Axes`` to draw on; labels it and writes ``path`` after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        yield ax
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
