"""Unmodeled effects: Gymnasium wrappers for what simulators leave out.

Policies trained in simulation meet, on hardware, effects that the simulator does
not model. Each wrapper here adds one of them to any Gymnasium environment (task
environments stay task environments: ``set_task`` and friends reach through):

- ``action_delay`` (``ActionDelay``): the action given at step t is applied at t + k;
- ``observation_delay`` (``ObservationDelay``): the observation at step t is that of t - k;
- ``observation_noise`` (``ObservationNoise``): Gaussian noise every step plus a bias
  drawn per episode;
- ``action_noise`` (``ActionNoise``): Gaussian noise on every applied action;
- ``backlash`` (``Backlash``): a dead band (play) between the command and what the
  actuator follows;
- ``saturation`` (``ActuatorSaturation``): commands limited to ``[-limit, limit]``;
- ``push`` (``RandomPush``): random external forces on a body (MuJoCo environments);
- ``state_noise`` (``metarl.envs.state_noise.StateNoise``): noise every step plus a
  bias drawn per episode on the measured state (``info["state"]``, MuJoCo environments
  wrapped in ``metarl.envs.mujoco_state.RecordState``).

Delays ``k`` are in control steps: a fixed integer, or ``[low, high]`` for a value
drawn uniformly (both ends included) at every reset. Per-dimension sizes
(``std``, ``width``, ``limit``) are a number or one value per dimension.

Randomness: each wrapper draws from its own generator, seeded by ``reset(seed=s)``
as an independent stream derived from ``s`` (so the environment's own
``np_random`` is not consumed, and two effects do not share draws); never seeded, it
takes fresh entropy, as Gymnasium does. What each effect did is in the step's
``info`` (``info["effects"][name]``), so recorded data shows it.

``EFFECTS`` maps the names to the wrappers; ``apply_effects(env, specs)`` applies
``[{name: ..., **arguments}, ...]`` (the ``env.effects`` list of a config) in order,
innermost first; ``effect_wrappers(specs)`` gives them as picklable ``env -> env``
functions (a sampler's ``wrappers``, shipped to Ray workers); ``check_effect_specs``
validates such a list without an env. The base wrapper and the argument checks they
share are in ``metarl.envs.effect_base``.
"""

from __future__ import annotations

import functools
import inspect
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from metarl.checks import check_int, check_number
from metarl.envs.base import EnvWrapper
from metarl.envs.effect_base import (
    Delay,
    Effect,
    Size,
    check_box,
    check_delay,
    check_size,
    is_numeric,
    with_record,
)
from metarl.envs.state_noise import StateNoise

__all__ = [
    "EFFECTS",
    "ActionDelay",
    "ActionNoise",
    "ActuatorSaturation",
    "Backlash",
    "ObservationDelay",
    "ObservationNoise",
    "RandomPush",
    "StateNoise",
    "apply_effects",
    "check_effect_specs",
    "effect_wrappers",
]

# --------------------------------------------------------------------------- delays


class ActionDelay(Effect):
    """The action given at step t is applied at step t + k.

    ``k`` (``steps``) is fixed or drawn per episode from ``[low, high]``. The first k
    steps of an episode apply ``initial_action`` (default: zeros, or the middle of
    the action space's bounds if zero lies outside them). ``info["effects"]
    ["action_delay"]``: ``steps`` (k) and ``applied_action``.

    Raises:
        ValueError: bad ``steps``, a non-Box action space, or an ``initial_action``
            of the wrong shape or outside the action space.
    """

    name = "action_delay"
    _stream = 0x61646C79

    def __init__(
        self, env: gym.Env[Any, Any], steps: Delay, initial_action: Sequence[float] | None = None
    ):
        super().__init__(env, steps=steps, initial_action=initial_action)
        self.range = check_delay(type(self).__name__, steps)
        box = check_box(env.action_space, type(self).__name__, "action")
        if initial_action is None:
            zero = np.zeros(box.shape, dtype=box.dtype)
            initial = zero if box.contains(zero) else ((box.low + box.high) / 2).astype(box.dtype)
        else:
            initial = np.asarray(initial_action, dtype=box.dtype)
            if initial.shape != box.shape or not box.contains(initial):
                raise ValueError(
                    f"ActionDelay.initial_action must lie in the action space {box}, "
                    f"got {initial_action!r}"
                )
        self.initial_action = initial
        self.delay = self.range[0]
        self._queue: deque[np.ndarray] = deque()

    def _start_episode(self) -> None:
        low, high = self.range
        self.delay = low if low == high else int(self.rng.integers(low, high + 1))
        self._queue = deque(self.initial_action.copy() for _ in range(self.delay))

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._queue.append(np.array(action, copy=True))
        return self._step_applied(self._queue.popleft(), {"steps": self.delay})


class ObservationDelay(Effect):
    """The observation returned at step t is the one of step t - k (the reset
    observation while t < k); rewards and episode ends are not delayed.

    ``info["effects"]["observation_delay"]``: ``steps`` (k).

    Raises:
        ValueError: bad ``steps``.
    """

    name = "observation_delay"
    _stream = 0x6F646C79

    def __init__(self, env: gym.Env[Any, Any], steps: Delay):
        super().__init__(env, steps=steps)
        self.range = check_delay(type(self).__name__, steps)
        self.delay = self.range[0]
        self._queue: deque[Any] = deque()

    def _start_episode(self) -> None:
        low, high = self.range
        self.delay = low if low == high else int(self.rng.integers(low, high + 1))

    def _reset_observation(self, obs: Any) -> tuple[Any, dict[str, Any]]:
        self._queue = deque(obs for _ in range(self.delay))
        return obs, {"steps": self.delay}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._queue.append(obs)
        delayed = self._queue.popleft()
        return (
            delayed,
            reward,
            terminated,
            truncated,
            with_record(info, self.name, {"steps": self.delay}),
        )


# --------------------------------------------------------------------------- noise


class ObservationNoise(Effect):
    """Observation + bias + N(0, std^2) per step, the bias drawn per episode from
    N(0, bias_std^2) (per dimension), as a miscalibrated sensor.

    ``info["effects"]["observation_noise"]``: ``bias`` of the episode.

    Raises:
        ValueError: a non-1-D-Box observation space, or ``std`` / ``bias_std`` not a
            non-negative number or one per dimension.
    """

    name = "observation_noise"
    _stream = 0x6F6E7365

    def __init__(self, env: gym.Env[Any, Any], std: Size = 0.0, bias_std: Size = 0.0):
        super().__init__(env, std=std, bias_std=bias_std)
        box = check_box(env.observation_space, "ObservationNoise", "observation")
        dim = box.shape[0]
        self.std = check_size("ObservationNoise", "std", std, dim)
        self.bias_std = check_size("ObservationNoise", "bias_std", bias_std, dim)
        self.dtype = box.dtype
        self.bias = np.zeros(dim)

    def _start_episode(self) -> None:
        self.bias = self.rng.normal(0.0, 1.0, self.bias_std.shape) * self.bias_std

    def _noisy(self, obs: Any) -> np.ndarray:
        noise = self.rng.normal(0.0, 1.0, self.std.shape) * self.std
        return (np.asarray(obs) + self.bias + noise).astype(self.dtype)

    def _reset_observation(self, obs: Any) -> tuple[Any, dict[str, Any]]:
        return self._noisy(obs), {"bias": self.bias.copy()}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        record = {"bias": self.bias.copy()}
        return (
            self._noisy(obs),
            reward,
            terminated,
            truncated,
            with_record(info, self.name, record),
        )


class ActionNoise(Effect):
    """Action + N(0, std^2) per step and dimension (in the action's units). The wrapper
    does not clip; the environment applies its own limits (MuJoCo's control range).

    ``info["effects"]["action_noise"]``: ``applied_action``.

    Raises:
        ValueError: a non-1-D-Box action space, or ``std`` not a non-negative number or
            one per dimension.
    """

    name = "action_noise"
    _stream = 0x616E7365

    def __init__(self, env: gym.Env[Any, Any], std: Size):
        super().__init__(env, std=std)
        box = check_box(env.action_space, "ActionNoise", "action")
        self.std = check_size("ActionNoise", "std", std, box.shape[0])
        self.dtype = box.dtype

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        noise = self.rng.normal(0.0, 1.0, self.std.shape) * self.std
        return self._step_applied((np.asarray(action) + noise).astype(self.dtype), {})


# --------------------------------------------------------------------------- actuators


class Backlash(Effect):
    """A dead band of ``width`` between the command and what the actuator follows (the
    play operator of gear backlash, on position targets or torques alike):

        y_t = u_t - w/2   if u_t > y_{t-1} + w/2
        y_t = u_t + w/2   if u_t < y_{t-1} - w/2
        y_t = y_{t-1}     otherwise

    with ``y`` starting at ``initial`` (default 0) each episode. The environment gets
    ``y``. ``info["effects"]["backlash"]``: ``applied_action``.

    Raises:
        ValueError: a non-1-D-Box action space, or ``width`` not a non-negative number or
            one per dimension.
    """

    name = "backlash"
    _stream = 0x626C6173

    def __init__(self, env: gym.Env[Any, Any], width: Size, initial: Size = 0.0):
        super().__init__(env, width=width, initial=initial)
        box = check_box(env.action_space, "Backlash", "action")
        dim = box.shape[0]
        self.half = check_size("Backlash", "width", width, dim) / 2
        start = np.asarray(initial, dtype=np.float64) if is_numeric(initial) else None
        if (
            start is None
            or start.ndim > 1
            or (start.ndim == 1 and start.shape[0] != dim)
            or not np.all(np.isfinite(start))
        ):
            raise ValueError(
                f"Backlash.initial must be a finite number or a list of {dim} finite numbers, "
                f"got {initial!r}"
            )
        self.initial = np.broadcast_to(start, (dim,)).copy()
        self.dtype = box.dtype
        self.output = self.initial.copy()

    def _start_episode(self) -> None:
        self.output = self.initial.copy()

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        u = np.asarray(action, dtype=np.float64)
        self.output = np.clip(self.output, u - self.half, u + self.half)
        return self._step_applied(self.output.astype(self.dtype), {})


class ActuatorSaturation(Effect):
    """Commands limited to ``[-limit, limit]`` per dimension (an actuator weaker than
    the model's). ``info["effects"]["saturation"]``: ``applied_action`` and
    ``saturated`` (which dimensions hit the limit).

    Raises:
        ValueError: a non-1-D-Box action space, or ``limit`` not a positive number or
            one per dimension.
    """

    name = "saturation"
    _stream = 0x73617475

    def __init__(self, env: gym.Env[Any, Any], limit: Size):
        super().__init__(env, limit=limit)
        box = check_box(env.action_space, "ActuatorSaturation", "action")
        self.limit = check_size("ActuatorSaturation", "limit", limit, box.shape[0], True)
        self.dtype = box.dtype

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        u = np.asarray(action, dtype=np.float64)
        applied = np.clip(u, -self.limit, self.limit)
        return self._step_applied(applied.astype(self.dtype), {"saturated": applied != u})


# --------------------------------------------------------------------------- pushes


class RandomPush(Effect):
    """Random external forces on a body of a MuJoCo environment.

    At each step, with ``probability``, a push starts: a force of ``force`` newtons in
    a random direction within the ``axes`` (e.g. ``"x"`` or ``"xz"`` for a planar
    robot, ``"xyz"``), held on ``body`` (default: the first body after the world)
    for ``duration`` steps (``data.xfrc_applied``). ``info["effects"]["push"]``:
    ``force`` (the 3-D force in effect during the step, zeros without a push).

    Raises:
        ValueError: not a MuJoCo environment, an unknown ``body`` (the message lists
            the bodies), ``probability`` outside [0, 1], ``force`` not positive,
            ``duration`` not a positive integer, or ``axes`` not a non-empty subset of
            ``xyz``.
    """

    name = "push"
    _stream = 0x70757368

    def __init__(
        self,
        env: gym.Env[Any, Any],
        probability: float,
        force: float,
        duration: int = 1,
        body: str | None = None,
        axes: str = "xyz",
    ):
        super().__init__(
            env, probability=probability, force=force, duration=duration, body=body, axes=axes
        )
        model = getattr(env.unwrapped, "model", None)
        if model is None or not hasattr(env.unwrapped, "data"):
            raise ValueError(f"RandomPush needs a MuJoCo environment, got {env.unwrapped!r}")
        import mujoco

        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(model.nbody)]
        if body is None:
            if model.nbody < 2:
                raise ValueError("RandomPush: the model has no body besides the world")
            self.body_id = 1
        elif body in names[1:]:
            self.body_id = names.index(body)
        else:
            raise ValueError(f"RandomPush.body must be one of {names[1:]}, got {body!r}")
        self.body = names[self.body_id]
        probability = check_number("RandomPush.probability", probability, ge=0.0, le=1.0)
        force = check_number("RandomPush.force", force, gt=0.0)
        duration = check_int("RandomPush.duration", duration, ge=1)
        if (
            not isinstance(axes, str)
            or not axes
            or set(axes) - set("xyz")
            or len(set(axes)) != len(axes)
        ):
            raise ValueError(f"RandomPush.axes must be distinct letters of 'xyz', got {axes!r}")
        self.probability = float(probability)
        self.force = float(force)
        self.duration = duration
        self.mask = np.array([a in axes for a in "xyz"], dtype=np.float64)
        self._left = 0
        self._vector = np.zeros(3)

    def _start_episode(self) -> None:
        self._left = 0
        self._apply(np.zeros(3))

    def _apply(self, force: np.ndarray) -> None:
        self.env.unwrapped.data.xfrc_applied[self.body_id, :3] = force  # type: ignore[attr-defined]

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._left == 0 and self.rng.random() < self.probability:
            direction = self.rng.normal(size=3) * self.mask
            norm = float(np.linalg.norm(direction))
            if norm > 0:
                self._vector = self.force * direction / norm
                self._left = self.duration
        force = self._vector if self._left > 0 else np.zeros(3)
        self._apply(force)
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._left > 0:
            self._left -= 1
            if self._left == 0:
                self._apply(np.zeros(3))
        record = {"force": force.copy()}
        return obs, reward, terminated, truncated, with_record(info, self.name, record)


# --------------------------------------------------------------------------- by name

EFFECTS: dict[str, type[Effect]] = {
    cls.name: cls
    for cls in (
        ActionDelay,
        ObservationDelay,
        ObservationNoise,
        ActionNoise,
        Backlash,
        ActuatorSaturation,
        RandomPush,
        StateNoise,
    )
}


def check_effect_specs(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check the names and argument names of ``[{name: ..., **arguments}, ...]``
    (values are checked when the wrappers are built on an env).

    Raises:
        ValueError: a spec without ``name``, an unknown name (the message lists the
            effects), an unknown or missing argument (the message lists the allowed
            ones), naming the spec's position.
    """
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"effects[{i}]: a mapping with a name, got {spec!r}")
        name = spec["name"]
        if name not in EFFECTS:
            raise ValueError(
                f"effects[{i}].name: unknown effect {name!r}; known: {', '.join(EFFECTS)}"
            )
        params = inspect.signature(EFFECTS[name].__init__).parameters
        allowed = [p for p in params if p not in ("self", "env")]
        required = [p for p in allowed if params[p].default is inspect.Parameter.empty]
        args = {k: v for k, v in spec.items() if k != "name"}
        unknown = [k for k in args if k not in allowed]
        if unknown:
            raise ValueError(
                f"effects[{i}] ({name}): unknown argument(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed)}"
            )
        missing = [k for k in required if k not in args]
        if missing:
            raise ValueError(f"effects[{i}] ({name}): missing argument(s) {', '.join(missing)}")
        out.append({"name": name, **args})
    return out


def apply_effects(env: gym.Env[Any, Any], specs: Sequence[Mapping[str, Any]]) -> gym.Env[Any, Any]:
    """``env`` wrapped in the effects of ``specs``, in order (the first innermost).

    Raises:
        ValueError: as ``check_effect_specs``, or a value a wrapper refuses (prefixed
            with the spec's position).
    """
    for wrap in effect_wrappers(specs):
        env = wrap(env)
    return env


def _apply_one(env: gym.Env[Any, Any], index: int, name: str, **args: Any) -> gym.Env[Any, Any]:
    try:
        return EFFECTS[name](env, **args)
    except ValueError as err:
        raise ValueError(f"effects[{index}] ({name}): {err}") from None


def effect_wrappers(
    specs: Sequence[Mapping[str, Any]],
) -> list[EnvWrapper]:
    """The effects of ``specs`` as ``env -> env`` functions, in order (picklable).

    Raises:
        ValueError: as ``check_effect_specs`` (values are checked when applied).
    """
    return [
        functools.partial(_apply_one, index=i, **spec)
        for i, spec in enumerate(check_effect_specs(specs))
    ]
