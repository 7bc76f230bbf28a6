"""Trust-region pieces (Schulman et al. 2015, "Trust Region Policy Optimization"):
conjugate gradient on a Hessian-vector product and the backtracking line search
under a KL constraint.

They work on flat parameter vectors and know nothing of policies: the agent
passes closures that evaluate its surrogate and KL at given parameters. The
defaults (10 conjugate-gradient iterations, damping 1e-5, backtracking ratio
0.8, 15 backtracks) are those of rllab's ``ConjugateGradientOptimizer``, kept by
MAML, ProMP and garage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = ["LineSearchResult", "backtracking_line_search", "conjugate_gradient"]


def conjugate_gradient(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iterations: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Approximately solve ``H x = b`` for symmetric positive definite ``H``.

    Args:
        hvp: ``v -> H v``.
        b: the right-hand side (1-D).
        iterations: at most this many iterations.
        residual_tol: stop when the squared residual norm falls below it.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iterations):
        if rr < residual_tol:
            break
        hp = hvp(p)
        alpha = rr / torch.dot(p, hp)
        x += alpha * p
        r -= alpha * hp
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


class LineSearchResult(NamedTuple):
    """The accepted parameters (the start if nothing was accepted), the surrogate loss
    and KL there, how many backtracks were taken and whether a step was accepted."""

    params: torch.Tensor
    loss: float
    kl: float
    backtracks: int
    accepted: bool


def backtracking_line_search(
    evaluate: Callable[[torch.Tensor], tuple[float, float]],
    start: torch.Tensor,
    step: torch.Tensor,
    loss_before: float,
    max_kl: float,
    ratio: float = 0.8,
    max_backtracks: int = 15,
) -> LineSearchResult:
    """Try ``start + ratio**j * step`` for ``j = 0, 1, ...``; accept the first that lowers
    the surrogate loss and keeps the KL within ``max_kl`` (both finite).

    ``evaluate(params) -> (loss, kl)``. If no candidate passes, the start is kept
    (``accepted`` False), as rllab and garage do.
    """
    for j in range(max_backtracks):
        candidate = start + (ratio**j) * step
        loss, kl = evaluate(candidate)
        finite = torch.isfinite(torch.tensor([loss, kl])).all()
        if finite and loss < loss_before and kl <= max_kl:
            return LineSearchResult(candidate, loss, kl, j, True)
    loss, kl = evaluate(start)
    return LineSearchResult(start, loss, kl, max_backtracks, False)
