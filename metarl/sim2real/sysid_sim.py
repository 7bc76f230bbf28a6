"""The simulator a fit adjusts: a MuJoCo model, the named parameters to fit, and batched
predictions of recorded transitions.

``Simulator(env_id, params, env_kwargs, action_delay)`` builds the Gymnasium
environment ``env_id`` once for its model and control period (``frame_skip`` physics
steps of ``opt.timestep`` per action, the action written to ``ctrl`` as Gymnasium's
``MujocoEnv.do_simulation`` does). ``predict(values, states, actions)`` answers, for
``P`` parameter vectors at once, where the system goes from each recorded state under
the recorded actions: one call of ``mujoco.rollout`` over ``P x N`` rows, on one MjData
per thread (``threads``, default the machine's cores), each row on the model copy that
holds its parameter vector. A CMA-ES generation, a finite-difference Jacobian or
DROPO's draws are each one such call.

States are ``metarl.envs.mujoco_state`` states ``[qpos, qvel, act]``; predictions start
from them exactly (no observation in between), so on noise-free sim-to-sim data the
prediction at the true parameters equals the recorded next state to machine precision.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from mujoco import rollout

from metarl.checks import check_int
from metarl.envs import PhysicsParam, PhysicsSpace
from metarl.envs.mujoco_state import (
    full_physics,
    mujoco_model,
    physics_of_full,
    set_state,
    state_labels,
    state_size,
)
from metarl.tasks import PhysicsTask

__all__ = ["Simulator", "applied_actions"]

# Rows per mujoco.rollout call: bounds the memory of its output (rows x steps x state).
_CHUNK_ROWS = 4096


class Simulator:
    """The simulator whose parameters are fitted: ``gymnasium.make(env_id, **env_kwargs)``'s
    MuJoCo model and the named scalar ``params`` to fit (their distributions give the
    bounds).

    ``action_delay``: the system's known command delay in control steps (measured on
    the robot; ``metarl.envs.effects.ActionDelay`` models it in training): the fits then
    replay the action recorded ``action_delay`` steps earlier (zeros at an episode's
    start, as ``ActionDelay``'s default initial action).

    Raises:
        ValueError: an env that is not MuJoCo, actions that are not the model's controls,
            no param, a param with independent draws, an unbounded support, or a param
            the model does not have (named).
    """

    def __init__(
        self,
        env_id: str,
        params: Mapping[str, PhysicsParam],
        env_kwargs: Mapping[str, Any] | None = None,
        action_delay: int = 0,
        threads: int | None = None,
    ):
        self.action_delay = check_int("Simulator.action_delay", action_delay, ge=0)
        self.threads = check_int(
            "Simulator.threads", threads if threads is not None else os.cpu_count() or 1, ge=1
        )
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        env = gym.make(env_id, **self.env_kwargs)
        try:
            found = mujoco_model(env)
            if found is None or not hasattr(env.unwrapped, "frame_skip"):
                raise ValueError(f"Simulator needs a Gymnasium MuJoCo environment, got {env_id}")
            model = found[0]
            self.frame_skip = int(env.unwrapped.frame_skip)
            self.observation_space = env.observation_space
            self.action_space = env.action_space
            action_dim = int(np.prod(env.action_space.shape or ()))
            if action_dim != model.nu:
                raise ValueError(
                    f"Simulator: {env_id}'s actions ({action_dim}) are not its model's "
                    f"controls ({model.nu} actuators)"
                )
            self._env = env
        except BaseException:
            env.close()
            raise
        _check_params(params)
        self.model: mujoco.MjModel = copy.deepcopy(model)
        self.params = dict(params)
        self.space = PhysicsSpace(self.params, self.model)
        self.names = list(self.params)
        self.low = np.array([self.params[n].dist.support[0] for n in self.names])
        self.high = np.array([self.params[n].dist.support[1] for n in self.names])
        self.nstate = state_size(self.model)
        self.labels = state_labels(self.model)
        self.dt = float(self.model.opt.timestep) * self.frame_skip
        self.nominal = self._nominal()
        self._pool: list[mujoco.MjModel] = []
        self._datas = [mujoco.MjData(self.model) for _ in range(self.threads)]

    def _nominal(self) -> np.ndarray:
        """The parameter values of the unchanged model, clipped into the bounds."""
        default = self.space.default_task()
        values = np.array([float(np.asarray(default.values[n]).flat[0]) for n in self.names])
        return np.clip(values, self.low, self.high)

    def _models(self, values: np.ndarray) -> list[mujoco.MjModel]:
        """One model copy per row of ``values`` ``(P, d)``, holding those parameters."""
        while len(self._pool) < len(values):
            self._pool.append(copy.deepcopy(self.model))
        models = self._pool[: len(values)]
        for m, v in zip(models, values, strict=True):
            task = PhysicsTask({n: float(x) for n, x in zip(self.names, v, strict=True)})
            self.space.attach(m).apply(m, task)
        return models

    def predict(self, values: np.ndarray, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Predicted states ``(P, N, H, nstate)``: from each of the ``N`` ``states`` under
        the ``(N, H, nu)`` applied ``actions`` (one per control step), with each of the
        ``(P, d)`` parameter ``values``; entry ``[p, n, h]`` is the state after ``h + 1``
        control steps.

        Raises:
            ValueError: states or actions of the wrong shape or not finite.
        """
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        actions = np.asarray(actions, dtype=np.float64)
        starts = full_physics(self.model, states)
        if actions.ndim != 3 or len(actions) != len(starts) or actions.shape[2] != self.model.nu:
            raise ValueError(
                f"actions must be (N, H, {self.model.nu}) for {len(starts)} states, "
                f"got {actions.shape}"
            )
        if not np.all(np.isfinite(actions)):
            raise ValueError("an action is not finite (nan or inf)")
        n, horizon = len(starts), actions.shape[1]
        controls = np.repeat(actions, self.frame_skip, axis=1)  # (N, H * frame_skip, nu)
        out = np.empty((len(values), n, horizon, self.nstate))
        rows = max(1, _CHUNK_ROWS // max(1, horizon))
        for p, model in enumerate(self._models(values)):
            for lo in range(0, n, rows):
                hi = min(n, lo + rows)
                state, _ = rollout.rollout(
                    [model] * (hi - lo),
                    self._datas,
                    starts[lo:hi],
                    controls[lo:hi],
                    nstep=horizon * self.frame_skip,
                    # Every row starts the constraint solver from zero: a prediction
                    # then depends on its inputs only, not on the row run before it.
                    initial_warmstart=np.zeros((hi - lo, self.model.nv)),
                )
                ends = state[:, self.frame_skip - 1 :: self.frame_skip]
                out[p, lo:hi] = physics_of_full(self.model, ends)
        return out

    def observe(self, states: np.ndarray) -> np.ndarray:
        """The observations ``(N, obs_dim)`` float64 that the environment gives in each of
        ``states`` at the nominal parameters (its ``_get_obs``)."""
        base: Any = self._env.unwrapped
        out = []
        for s in np.asarray(states, dtype=np.float64):
            set_state(base.model, base.data, s)
            out.append(np.asarray(base._get_obs(), dtype=np.float64).ravel())
        return np.stack(out) if out else np.zeros((0, 0))

    def close(self) -> None:
        self._env.close()


def _check_params(params: Mapping[str, PhysicsParam]) -> None:
    if not params:
        raise ValueError("Simulator: give at least one parameter to fit")
    for name, p in params.items():
        if p.independent:
            raise ValueError(
                f"Simulator: parameter {name!r} draws each element independently; "
                "a fit estimates one shared value per parameter (independent: false)"
            )
        low, high = p.dist.support
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(
                f"Simulator: parameter {name!r} needs bounds, a finite support "
                f"(e.g. uniform), got {p.dist}"
            )


def applied_actions(actions: np.ndarray, delay: int) -> np.ndarray:
    """The actions a system that delays commands by ``delay`` control steps applied:
    the recorded action of step ``t - delay`` (zeros before the first), float64
    ``(T, action_dim)``."""
    acts = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
    if delay == 0:
        return acts
    out = np.zeros_like(acts)
    out[delay:] = acts[: len(acts) - delay]
    return out
