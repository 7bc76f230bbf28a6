"""The policy contract between agents and samplers.

A sampler steps ``n`` environments in lock step and asks the policy for ``n``
actions at a time. ``PolicyInput`` is what the policy sees at one step;
``Policy`` is what it must offer. A recurrent policy (RL2) keeps a state over
the ``episodes_per_trial`` episodes of a trial; the sampler calls
``initial_state`` at the start of every trial and never between the episodes of
a trial. Randomness: row ``i`` draws its action noise from ``rngs[i]``, the
generator of the trial that env ``i`` is running, so that the actions of a
trial do not depend on which other trials share its batch (this is what makes
the local and the Ray sampler give the same batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

__all__ = ["Policy", "PolicyInput", "PolicyOutput"]


class PolicyInput(NamedTuple):
    """What a policy sees at one step of ``n`` environments.

    - ``observations``: ``(n, *obs_shape)`` float32;
    - ``prev_actions``: ``(n, *act_shape)``, the previous action in the trial
      (zeros at the first step of a trial);
    - ``prev_rewards``: ``(n,)`` float32, the previous reward in the trial (0 at
      the first step of a trial);
    - ``episode_starts``: ``(n,)`` bool, True at the first step of each episode
      (RL2's episode-boundary flag);
    - ``active``: ``(n,)`` bool, False for envs whose trial has ended (their
      action is ignored; the row keeps the batch shape constant);
    - ``trials``: ``(n,)`` int, the trial each row runs, as the index of its task in
      the ``tasks`` of the collect call (rows without a trial repeat the last trial
      of their wave). A policy that acts differently per task (MAML's adapted
      parameters, PEARL's per-task posterior) selects by it; others ignore it.
    """

    observations: np.ndarray
    prev_actions: np.ndarray
    prev_rewards: np.ndarray
    episode_starts: np.ndarray
    active: np.ndarray
    trials: np.ndarray


class PolicyOutput(NamedTuple):
    """The policy's answer: ``actions`` ``(n, *act_shape)``, its new recurrent ``state``
    (``None`` for a stateless policy) and ``infos``, arrays with first axis ``n``
    stored in ``Episode.agent_infos`` (e.g. ``log_prob``, ``value``)."""

    actions: np.ndarray
    state: Any
    infos: dict[str, np.ndarray]


@runtime_checkable
class Policy(Protocol):
    """What a sampler needs from an agent's policy.

    A policy must be picklable (a Ray sampler ships it to its workers once per
    ``collect`` through the object store).
    """

    def initial_state(self, n: int) -> Any:
        """The recurrent state for ``n`` environments at the start of a trial (or ``None``)."""
        ...

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        """Actions for ``n`` environments; row ``i`` draws its noise from ``rngs[i]``."""
        ...
