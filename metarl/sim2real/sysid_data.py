"""Recorded episodes as what a fit compares with: start states, applied actions and the
recorded states after each step, in windows of ``horizon`` control steps.

Where the states come from, in this order:

1. The episodes' own states (``env_infos["state"]`` and ``env_infos["next_state"]``,
   ``metarl.envs.mujoco_state``): what targets, simulated robots and robots that
   report a ``state`` record. Used as they are, in float64.
2. ``state_from_observation``: a user's function ``observation -> state`` (a robot whose
   observation holds the state in its own layout); an entry it returns as nan in every
   sample is one the observation does not hold (set to 0, left out of the comparison,
   ``StateSource.unobserved``).
3. The observation itself, when it is the state: ``[qpos, qvel]`` or ``[qpos[1:], qvel]``
   (Gymnasium's locomotion envs leave out the x position, which their dynamics do not
   depend on; it is set to 0 and, since the data do not hold it, left out of the
   comparison: ``StateSource.unobserved``). Every sample is checked: the simulator, put
   into the reconstructed state, must give the recorded observation back (to float32
   rounding), and put into that state pushed outward (each entry away from zero by
   ``_PUSH`` of its size plus ``_PUSH``) must observe the pushed state: an entry at a
   clip (a velocity at Hopper's or Walker2d's +-10) gives itself back unpushed but
   not pushed. A sample that fails either (clipped velocities, contact forces,
   left-out positions) is refused with the share of samples affected, never used as a
   wrong state. States rebuilt from float32 observations carry their rounding (about
   1e-7 relative), which the fit report names.

Refused with an error naming the problem: no episode, a state of the wrong size or not
finite, episodes that lack states when the observation is not the state.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from metarl.envs.mujoco_state import NEXT_STATE_KEY, STATE_KEY
from metarl.episodes import Episode
from metarl.sim2real.sysid_sim import Simulator, applied_actions

__all__ = ["StateSource", "Windows", "episode_states", "load_state_function", "make_windows"]

StateFunction = Callable[[np.ndarray], np.ndarray]

# How a state rebuilt from an observation may differ from the recorded observation:
# float32 rounding of values up to ~1e3.
_ROUNDING_RTOL, _ROUNDING_ATOL = 1e-5, 1e-5
# The outward push of the clip check: well above the rounding tolerance.
_PUSH = 1e-3


@dataclass(frozen=True)
class StateSource:
    """Where a fit's states came from: ``recorded`` (the episodes' states),
    ``function`` (``state_from_observation``) or ``observation`` (the observation is
    the state, float32); ``unobserved``: the state entries the data do not hold (set
    to 0 in the states; a fit leaves them out of its residuals)."""

    kind: str
    detail: str
    unobserved: tuple[int, ...] = ()


@dataclass
class Windows:
    """Windows of ``horizon`` control steps: ``starts`` ``(N, nstate)``, ``actions``
    ``(N, H, nu)`` (the applied actions), ``targets`` ``(N, H, nstate)`` (the recorded
    states after each step), ``mask`` ``(N, H)`` (False past an episode's end), and
    ``episode`` ``(N,)`` (the index of the window's episode)."""

    starts: np.ndarray
    actions: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def transitions(self) -> int:
        return int(self.mask.sum())

    def subset(self, keep: np.ndarray) -> Windows:
        """The windows ``keep`` selects (a boolean mask or indices)."""
        return Windows(*(getattr(self, f.name)[keep] for f in dataclasses.fields(self)))


def load_state_function(path: str) -> StateFunction:
    """The function ``"package.module:name"``.

    Raises:
        ValueError: not of that form, or the module or name cannot be imported (named).
    """
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"state_from_observation must be 'package.module:function', got {path!r}")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"state_from_observation {path!r} cannot be imported: {err}") from None
    if not callable(fn):
        raise ValueError(f"state_from_observation {path!r} is not a function")
    return fn


def episode_states(
    sim: Simulator,
    episodes: Sequence[Episode],
    state_from_observation: StateFunction | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], StateSource]:
    """Per episode, ``(states, next_states)`` ``(T, nstate)`` float64, and their source
    (module docstring).

    Raises:
        ValueError: no episode; states of the wrong size or not finite; observations
            that are not the state (with the share of samples affected).
    """
    if not episodes:
        raise ValueError("a fit needs at least one recorded episode")
    have = [STATE_KEY in e.env_infos and NEXT_STATE_KEY in e.env_infos for e in episodes]
    if all(have):
        out = [
            (
                _checked(sim, e.env_infos[STATE_KEY], f"episode {i}: {STATE_KEY}"),
                _checked(sim, e.env_infos[NEXT_STATE_KEY], f"episode {i}: {NEXT_STATE_KEY}"),
            )
            for i, e in enumerate(episodes)
        ]
        return out, StateSource("recorded", "the episodes' recorded states (float64)")
    if any(have):
        missing = [i for i, h in enumerate(have) if not h]
        raise ValueError(
            f"episodes {missing} carry no state ({STATE_KEY!r}, {NEXT_STATE_KEY!r} in their "
            "infos) while the others do; fit on episodes of one kind"
        )
    if state_from_observation is not None:
        out = []
        for i, e in enumerate(episodes):
            pair = []
            for field in ("observations", "next_observations"):
                obs = getattr(e, field).reshape(len(e), -1)
                try:
                    states = np.stack([np.asarray(state_from_observation(o)) for o in obs])
                except Exception as err:  # a user's function: name it with its error
                    raise ValueError(
                        f"state_from_observation failed on episode {i}'s {field}: "
                        f"{type(err).__name__}: {err}"
                    ) from None
                pair.append(np.asarray(states, dtype=np.float64))
            out.append((pair[0], pair[1]))
        return _unknown_entries(sim, out)
    return _from_observations(sim, episodes)


def _unknown_entries(
    sim: Simulator, pairs: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[list[tuple[np.ndarray, np.ndarray]], StateSource]:
    """A user's function's states: an entry that is nan in every sample is one the
    observation does not hold (set to 0, left out of the comparison); nan in some
    samples only is refused."""
    for i, (s, s_next) in enumerate(pairs):
        for states in (s, s_next):
            if states.ndim != 2 or states.shape[1] != sim.nstate:
                _checked(sim, states, f"state_from_observation of episode {i}")
    stacked = np.concatenate([np.concatenate(p) for p in pairs])
    unknown = np.isnan(stacked).all(0)
    partly = np.isnan(stacked).any(0) & ~unknown
    if partly.any():
        names = [sim.labels[j] for j in np.nonzero(partly)[0]]
        raise ValueError(
            f"state_from_observation gives nan for {', '.join(names[:6])} in some samples "
            "only: nan is for an entry the observation never holds (nan in every sample)"
        )
    out = []
    for i, (s, s_next) in enumerate(pairs):
        fixed = [np.where(unknown, 0.0, x) for x in (s, s_next)]
        out.append(
            (
                _checked(sim, fixed[0], f"state_from_observation of episode {i}"),
                _checked(sim, fixed[1], f"state_from_observation of episode {i}"),
            )
        )
    hidden = tuple(int(j) for j in np.nonzero(unknown)[0])
    detail = "state_from_observation" + (
        f" ({', '.join(sim.labels[j] for j in hidden)} not observed: set to 0, not compared)"
        if hidden
        else ""
    )
    return out, StateSource("function", detail, hidden)


def _checked(sim: Simulator, states: np.ndarray, what: str) -> np.ndarray:
    states = np.asarray(states)
    if states.ndim != 2 or states.shape[1] != sim.nstate:
        model = sim.model
        raise ValueError(
            f"{what} has shape {states.shape}; a state of {sim.env_id} has {sim.nstate} "
            f"values [qpos ({model.nq}), qvel ({model.nv}), act ({model.na})] per step"
        )
    if not np.all(np.isfinite(states)):
        raise ValueError(f"{what} holds values that are not finite (nan or inf)")
    return states.astype(np.float64)


def _from_observations(
    sim: Simulator, episodes: Sequence[Episode]
) -> tuple[list[tuple[np.ndarray, np.ndarray]], StateSource]:
    model = sim.model
    dim = int(np.prod(episodes[0].observations.shape[1:]))
    skip = {model.nq + model.nv: 0, model.nq - 1 + model.nv: 1}.get(dim)
    if skip is None or model.na:
        raise ValueError(
            f"the episodes carry no state ({STATE_KEY!r} in their infos) and {sim.env_id}'s "
            f"observation ({dim} values) is not its state [qpos ({model.nq}), qvel "
            f"({model.nv})" + (f", act ({model.na})" if model.na else "") + "]: record "
            "the state (targets and simulated robots do; a robot puts 'state' in its "
            "readings) or give state_from_observation"
        )
    out: list[tuple[np.ndarray, np.ndarray]] = []
    bad = total = 0
    first_bad: tuple[int, list[str]] | None = None
    for i, e in enumerate(episodes):
        pair = []
        for field in ("observations", "next_observations"):
            obs = getattr(e, field).reshape(len(e), -1).astype(np.float64)
            states = np.zeros((len(obs), sim.nstate))
            states[:, skip:] = obs[:, : sim.nstate - skip]
            wrong = ~np.isclose(sim.observe(states), obs, rtol=_ROUNDING_RTOL, atol=_ROUNDING_ATOL)
            pushed = states.copy()
            pushed[:, skip:] += np.sign(obs) * _PUSH * (1.0 + np.abs(obs))
            wrong |= ~np.isclose(
                sim.observe(pushed), pushed[:, skip:], rtol=_ROUNDING_RTOL, atol=_ROUNDING_ATOL
            )
            rows = wrong.any(1)
            bad += int(rows.sum())
            total += len(rows)
            if rows.any() and first_bad is None:
                labels = sim.labels[skip:]
                dims = sorted(
                    {labels[d] if d < len(labels) else str(d) for d in np.nonzero(wrong)[1]}
                )
                first_bad = (i, dims)
            pair.append(states)
        out.append((pair[0], pair[1]))
    if bad:
        assert first_bad is not None
        peak = float(np.max([np.abs(e.observations).max() for e in episodes]))
        raise ValueError(
            f"the episodes carry no state and {bad} of {total} observations "
            f"({bad / total:.0%}) are not the system's state: the simulator put into the "
            f"state they give observes something else (first in episode {first_bad[0]}, "
            f"entries {', '.join(first_bad[1][:6])}; largest observed magnitude {peak:.3g}: "
            "clipped velocities, e.g. Hopper's and Walker2d's +-10, give this). A fit from "
            "them would reset the simulator to wrong states: record the state (targets and "
            "simulated robots do; a robot puts 'state' in its readings) or give "
            "state_from_observation"
        )
    return out, StateSource(
        "observation",
        "states rebuilt from float32 observations"
        + (" (x position set to 0)" if skip else "")
        + "; their rounding (~1e-7 relative) is a noise floor",
        tuple(range(skip)),
    )


def make_windows(
    sim: Simulator,
    episodes: Sequence[Episode],
    states: Sequence[tuple[np.ndarray, np.ndarray]],
    horizon: int,
    episode_ids: Sequence[int] | None = None,
) -> Windows:
    """Consecutive windows of ``horizon`` steps over every episode, each starting from
    its recorded state; the actions are those applied under ``sim.action_delay``."""
    starts, actions, targets, masks, owners = [], [], [], [], []
    ids = range(len(episodes)) if episode_ids is None else episode_ids
    for e, (s, s_next), owner in zip(episodes, states, ids, strict=True):
        acts = applied_actions(e.actions, sim.action_delay)
        for first in range(0, len(e), horizon):
            last = min(len(e), first + horizon)
            pad = horizon - (last - first)
            a = acts[first:last]
            t = s_next[first:last]
            starts.append(s[first])
            actions.append(np.concatenate([a, np.repeat(a[-1:], pad, 0)]))
            targets.append(np.concatenate([t, np.repeat(t[-1:], pad, 0)]))
            masks.append(np.arange(horizon) < last - first)
            owners.append(owner)
    if not starts:
        raise ValueError("the recorded episodes hold no step")
    return Windows(
        np.stack(starts),
        np.stack(actions),
        np.stack(targets),
        np.stack(masks),
        np.asarray(owners),
    )
