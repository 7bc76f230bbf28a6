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
info carries ``STATE_KEY``. ``RecordState`` adds them to any Gymnasium MuJoCo
environment (the targets of ``metarl.sim2real`` have it innermost). ``state_labels``
names every entry (``qpos:rootz``, ``qvel:thigh_joint``, ``act:<actuator>``),
``full_physics`` turns states into the ``mjSTATE_FULLPHYSICS`` rows that
``mujoco.rollout`` starts from.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import mujoco
import numpy as np

__all__ = [
    "NEXT_STATE_KEY",
    "STATE_KEY",
    "RecordState",
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


class RecordState(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """The system's true state in the infos of a Gymnasium MuJoCo environment: each
    step's ``info[STATE_KEY]`` (the state the action was applied in, read just before
    the step) and ``info[NEXT_STATE_KEY]`` (read just after), and the reset's
    ``info[STATE_KEY]``; float64 arrays of ``state_size`` values, read from the
    simulation's ``MjData`` at each call (so a copy of the wrapper reads its own
    copy's simulation).

    Raises:
        ValueError: an environment that is not MuJoCo (no ``model`` / ``data`` on its
            unwrapped env); at a reset or step, an env whose own info already has one
            of the keys (it would be overwritten).
    """

    def __init__(self, env: gym.Env[Any, Any]):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        if mujoco_model(env) is None:
            raise ValueError(
                "RecordState needs a Gymnasium MuJoCo environment (an unwrapped env with "
                f"a mujoco.MjModel `model` and mujoco.MjData `data`), got {env.unwrapped!r}"
            )

    def _state(self) -> np.ndarray:
        found = mujoco_model(self.env)
        assert found is not None  # checked when built
        return get_state(*found)

    def _own(self, info: dict[str, Any]) -> dict[str, Any]:
        clash = [k for k in (STATE_KEY, NEXT_STATE_KEY) if k in info]
        if clash:
            raise ValueError(
                f"RecordState: the env's info already has {clash}; RecordState would "
                "overwrite it (wrap an env only once, and one that does not use these keys)"
            )
        return dict(info)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        info = self._own(info)
        info[STATE_KEY] = self._state()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        state = self._state()
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = self._own(info)
        info[STATE_KEY], info[NEXT_STATE_KEY] = state, self._state()
        return obs, reward, terminated, truncated, info


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
