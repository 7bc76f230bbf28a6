"""The global search of the fits: CMA-ES (the ``cma`` package) in the unit box, each
generation evaluated as one batch.

``cma`` draws from numpy's global generator; ``cma_minimize`` seeds it from ``seed`` and
restores its previous state afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["cma_minimize"]


class _GlobalNumpySeed:
    """Seed numpy's global generator (cma's) for a block, then restore it."""

    def __init__(self, seed: int):
        self.seed = seed

    # cma draws from the legacy global generator: these calls are the point here.
    def __enter__(self) -> None:
        self.saved = np.random.get_state()  # noqa: NPY002
        np.random.seed(self.seed)  # noqa: NPY002

    def __exit__(self, *exc: object) -> None:
        np.random.set_state(self.saved)  # noqa: NPY002


def cma_minimize(
    objective: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    sigma0: float,
    budget: int,
    popsize: int | None,
    seed: int,
) -> tuple[np.ndarray, float, int]:
    """Minimize a batched objective (``(P, d) -> (P,)``) with CMA-ES in the unit box;
    return the best x, its value and the evaluations used.

    cma does not run in one dimension (its ``tell`` fails there); a one-dimensional
    problem gets a second coordinate in [0, 1] that the objective ignores.
    """
    import cma

    d = len(x0)
    if d == 1:
        best, value, used = cma_minimize(
            lambda xs: objective(xs[:, :1]), np.array([x0[0], 0.5]), sigma0, budget, popsize, seed
        )
        return best[:1], value, used
    options: dict[str, Any] = {
        "bounds": [[0.0] * d, [1.0] * d],
        "maxfevals": budget,
        "seed": seed + 1,  # cma treats 0 as "time-based"
        "verbose": -9,
    }
    if popsize is not None:
        options["popsize"] = popsize
    with _GlobalNumpySeed(seed):
        es = cma.CMAEvolutionStrategy(list(x0), sigma0, options)
        best_x = np.asarray(x0, dtype=np.float64)
        best_f, used = float(objective(best_x[None])[0]), 1
        while not es.stop():
            xs = es.ask()
            fs = objective(np.asarray(xs))
            used += len(xs)
            es.tell(xs, [float(f) for f in fs])
            i = int(np.argmin(fs))
            if fs[i] < best_f:
                best_x, best_f = np.asarray(xs[i], dtype=np.float64), float(fs[i])
    return best_x, best_f, used
