"""The state of a MuJoCo system as the platform records and restores it.

A system's *state* is the vector ``[qpos, qvel, act]`` in float64 (``nq + nv + na``
values: MuJoCo's ``mjSTATE_PHYSICS`` without time): everything the next step of the
physics depends on besides the controls and the model. It is what a fitted
simulator must be reset to in order to predict a recorded transition, which an
observation often cannot give (Gymnasium's Hopper and Walker2d clip the velocities
they observe to [-10, 10], the locomotion envs leave out the x position, Ant adds
contact forces, and observations are float32).

Recorded episodes carry it in their step infos under ``STATE_KEY`` (the state the
action was applied in) and ``NEXT_STATE_KEY`` (the state after the step); a reset's
info carries ``STATE_KEY``. ``state_labels`` names every entry (``qpos:rootz``,
``qvel:thigh_joint``, ``act:<actuator>``), ``full_physics`` turns states into the
``mjSTATE_FULLPHYSICS`` rows that ``mujoco.rollout`` starts from.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

__all__ = [
    "NEXT_STATE_KEY",
    "STATE_KEY",
    "full_physics",
    "get_state",
    "mujoco_model",
    "physics_of_full",
    "set_state",
    "state_labels",
    "state_size",
]

STATE_KEY = "state"
NEXT_STATE_KEY = "next_state"

_PHYSICS = mujoco.mjtState.mjSTATE_PHYSICS  # qpos, qvel, act
_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


def mujoco_model(env: Any) -> tuple[mujoco.MjModel, mujoco.MjData] | None:
    """The ``(model, data)`` of a Gymnasium MuJoCo environment under any wrappers;
    ``None`` for an environment that is not MuJoCo."""
    base = getattr(env, "unwrapped", env)
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
        return model, data
    return None


def state_size(model: mujoco.MjModel) -> int:
    """``nq + nv + na``: the length of a state of ``model``."""
    return int(mujoco.mj_stateSize(model, _PHYSICS))


def get_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The state ``[qpos, qvel, act]`` of ``data``, float64 (a copy)."""
    out = np.empty(state_size(model))
    mujoco.mj_getState(model, data, out, _PHYSICS)
    return out


def set_state(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> None:
    """Put ``state`` into ``data`` and recompute what depends on it (``mj_forward``).

    Raises:
        ValueError: ``state`` of the wrong length.
    """
    state = _checked(model, np.asarray(state, dtype=np.float64)[None])[0]
    mujoco.mj_setState(model, data, state, _PHYSICS)
    mujoco.mj_forward(model, data)


def state_labels(model: mujoco.MjModel) -> list[str]:
    """A name per state entry: ``qpos:<joint>`` (``:x``/``:y``/... and quaternion parts
    for free and ball joints), ``qvel:<joint>``, ``act:<actuator>``."""
    qpos: list[str] = []
    qvel: list[str] = []
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        kind = model.jnt_type[j]
        if kind == mujoco.mjtJoint.mjJNT_FREE:
            qpos += [f"qpos:{name}:{c}" for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]
            qvel += [f"qvel:{name}:{c}" for c in ("vx", "vy", "vz", "wx", "wy", "wz")]
        elif kind == mujoco.mjtJoint.mjJNT_BALL:
            qpos += [f"qpos:{name}:{c}" for c in ("qw", "qx", "qy", "qz")]
            qvel += [f"qvel:{name}:{c}" for c in ("wx", "wy", "wz")]
        else:
            qpos.append(f"qpos:{name}")
            qvel.append(f"qvel:{name}")
    act = []
    for a in range(model.nu):
        if model.actuator_dyntype[a] != mujoco.mjtDyn.mjDYN_NONE:
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a) or f"actuator{a}"
            act.append(f"act:{name}")
    return qpos + qvel + act


def full_physics(model: mujoco.MjModel, states: np.ndarray) -> np.ndarray:
    """``(N, nfull)`` ``mjSTATE_FULLPHYSICS`` rows (time 0, mocap and user data at the
    model's defaults) for ``(N, state_size)`` states: the initial states of
    ``mujoco.rollout.rollout``.

    Raises:
        ValueError: states of the wrong shape.
    """
    states = _checked(model, np.asarray(states, dtype=np.float64))
    data = mujoco.MjData(model)
    out = np.empty((len(states), int(mujoco.mj_stateSize(model, _FULL))))
    for i, s in enumerate(states):
        mujoco.mj_setState(model, data, s, _PHYSICS)
        mujoco.mj_getState(model, data, out[i], _FULL)
    return out


def physics_of_full(model: mujoco.MjModel, full: np.ndarray) -> np.ndarray:
    """The ``[qpos, qvel, act]`` part of ``mjSTATE_FULLPHYSICS`` rows ``(..., nfull)``."""
    # FULLPHYSICS lays out time, qpos, qvel, act, ... in that order.
    return np.asarray(full)[..., 1 : 1 + state_size(model)]


def _checked(model: mujoco.MjModel, states: np.ndarray) -> np.ndarray:
    n = state_size(model)
    if states.ndim != 2 or states.shape[1] != n:
        raise ValueError(
            f"a state of this model has {n} values [qpos ({model.nq}), qvel ({model.nv}), "
            f"act ({model.na})]; got shape {states.shape[1:] if states.ndim == 2 else states.shape}"
        )
    if not np.all(np.isfinite(states)):
        raise ValueError("a state holds a value that is not finite (nan or inf)")
    return states
