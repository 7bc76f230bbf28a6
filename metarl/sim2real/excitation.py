"""Excitation signals for system identification: what drives a system while the data that
a fit uses are recorded (the ``excitation`` section of a sysid file, ``metarl sysid``).

A fit can only determine what the recorded motion exercises: uniform random actions make
Hopper, Walker2d and Ant fall within tens of steps, and a parameter that acts only when
the system moves (a friction, a damping, a leg's mass) stays undetermined. The kinds:

- ``random``: a uniform draw over the action space at every step.
- ``multisine``: per actuator, a sum of cosines at every frequency ``k / T`` in
  ``[f_min, f_max]`` Hz (``T = length * dt``, the episode's duration, so that the signal
  is periodic over ``length`` steps and its spectrum lies on the FFT's lines), with phases
  drawn uniformly in ``[0, 2 pi)`` independently per actuator and per episode: a
  random-phase multisine (Pintelon & Schoukens, *System Identification: A Frequency
  Domain Approach*, 2nd ed., Wiley-IEEE Press 2012, on periodic excitations and
  random-phase multisines). Random rather than Schroeder phases: Schroeder's formula
  gives every actuator the same phases, so the actuators would move together and their
  effects could not be told apart; independent random phases make them uncorrelated
  in expectation. Each actuator's signal is scaled so that its peak over the period is
  ``amplitude`` times the half-range of the actuator's control range, around the
  range's centre: within the range by construction.
- ``chirp``: per actuator a swept cosine from ``f_min`` to ``f_max`` over ``length``
  steps (``scipy.signal.chirp``, ``method`` as scipy names it), with a random phase and
  a random circular shift of the sweep per actuator and episode (so that at any step the
  actuators are at different frequencies); amplitude as for ``multisine``.
- ``pd_hold``: a PD controller holding the pose of the reset (the joint positions at
  step 0) on the joints the actuators drive (hinge and slide joints through a joint
  transmission), ``kp * (q0 - q) - kd * qdot`` in action units per rad (per m) and per
  rad/s (m/s), its sign following the actuator's gear, plus Gaussian noise of standard
  deviation ``noise_std`` times the half-range. The command saturates at the action
  space (the controller's own limit, as a servo's), so what is recorded is what the
  actuators got. It reads the joint positions and velocities from the MuJoCo data of
  the environment it drives (the simulated system's state, as a robot's encoders give
  it). Its defaults (``kp = 4``, ``kd = 0.1``, ``noise_std = 0.3``): a controller that
  holds a robot still records little motion, and a fit to that sees mostly the
  sensors' noise; noise of 0.3 of the half-range moves the joints, and these gains
  still keep Hopper and Walker2d up for most of a 200-step episode, where random
  actions topple them within tens of steps (``benchmarks/RESULTS.md``, "Excitation for
  system identification").
- ``policy``: a policy exported by ``metarl export`` (an ONNX file) plus Gaussian noise
  of ``noise_std`` times the half-range. Its output is not clipped: the system applies
  its own limits as it does for every action. A policy that reads the previous reward
  (a meta-RL agent's input) is refused: an excitation does not see rewards.

Defaults: ``f_min = 0.5`` and ``f_max = 5`` Hz, for robots controlled at 20 to 125 Hz
(Gymnasium's Ant runs at 20 Hz, Hopper and Walker2d at 125 Hz): 5 Hz keeps at least four
control steps per period at 20 Hz and lies within the bandwidth of torque-controlled
joints and the rigid-body modes of legged robots; 0.5 Hz moves the joints slowly enough
to load gravity and the masses quasi-statically. A sysid file's episodes at 125 Hz
for 200 steps last 1.6 s, so the lowest line is then ``1 / 1.6 s``.

The interface: ``config.build(env, length)`` (``ExcitationConfig``, one of the config
classes below) returns an ``Excitation`` for ``env`` (a Gymnasium environment under
any wrappers: its action space, its control period ``dt`` and, for ``pd_hold``, its
MuJoCo model and data), for episodes of ``length`` steps (the sysid file's
``max_steps``; ``multisine`` and ``chirp`` need it, and repeat after it). Then, per
episode, ``excitation.episode(rng)`` returns the episode's controller, a function
``(observation, step) -> action`` with ``step`` the index of the control step in the
episode (0 for the observation of the reset), called once per step in order. Every
draw comes from ``rng`` (a ``numpy.random.Generator``; no global random state): the
episode's phases when ``episode`` is called, the noise and the random actions at each
call. ``metarl sysid`` passes the same generator to every episode in turn, seeded
``SeedSequence(seed).spawn(1)[0]``, so that ``random`` draws the actions it always drew.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Annotated, Any, Literal

import gymnasium as gym
import mujoco
import numpy as np
from pydantic import BaseModel, BeforeValidator, Field, model_validator
from scipy.signal import chirp

from metarl.envs.mujoco_state import mujoco_model
from metarl.schema import STRICT_SECTION

__all__ = [
    "EXCITATION_KINDS",
    "ChirpExcitation",
    "EpisodeController",
    "Excitation",
    "ExcitationConfig",
    "MultisineExcitation",
    "PdHoldExcitation",
    "PolicyExcitation",
    "RandomExcitation",
    "excite",
]

# (observation, step index in the episode) -> action
EpisodeController = Callable[[np.ndarray, int], np.ndarray]


class Excitation(ABC):
    """An excitation bound to the system it drives; ``episode(rng)`` gives each episode's
    controller (module docstring)."""

    def __init__(self, space: gym.spaces.Box):
        self.space = space
        self.low = np.asarray(space.low, dtype=np.float64)
        self.high = np.asarray(space.high, dtype=np.float64)
        self.centre = (self.low + self.high) / 2
        self.half = (self.high - self.low) / 2

    @abstractmethod
    def episode(self, rng: np.random.Generator) -> EpisodeController:
        """The controller of one episode, drawing from ``rng``."""

    def _action(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values).astype(self.space.dtype)


class _Uniform(Excitation):
    def episode(self, rng: np.random.Generator) -> EpisodeController:
        low, high = self.space.low, self.space.high

        def act(observation: np.ndarray, step: int) -> np.ndarray:
            return self._action(rng.uniform(low, high))

        return act


class _Periodic(Excitation):
    """A signal tabulated over one period of ``length`` steps, one column per actuator,
    in ``[-1, 1]``; the action is ``centre + amplitude * half * signal``."""

    def __init__(
        self,
        space: gym.spaces.Box,
        amplitude: float,
        draw: Callable[[np.random.Generator], np.ndarray],
    ):
        super().__init__(space)
        self.amplitude = amplitude
        self.draw = draw

    def episode(self, rng: np.random.Generator) -> EpisodeController:
        signal = self.draw(rng)
        # centre + half * s with |s| <= 1 lies in [low, high]; the clip only removes the
        # rounding of that sum in float64 (at most an ulp).
        table = np.clip(self.centre + self.amplitude * self.half * signal, self.low, self.high)
        table = table.astype(self.space.dtype)

        def act(observation: np.ndarray, step: int) -> np.ndarray:
            return table[step % len(table)].copy()

        return act


class _PdHold(Excitation):
    def __init__(
        self,
        space: gym.spaces.Box,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        kp: float,
        kd: float,
        noise_std: float,
    ):
        super().__init__(space)
        joints = _driven_joints(model)
        self.data = data
        self.qpos_index = np.array([model.jnt_qposadr[j] for j in joints])
        self.qvel_index = np.array([model.jnt_dofadr[j] for j in joints])
        self.sign = np.sign(model.actuator_gear[:, 0])
        self.kp, self.kd, self.noise_std = kp, kd, noise_std

    def episode(self, rng: np.random.Generator) -> EpisodeController:
        hold: list[np.ndarray] = []

        def act(observation: np.ndarray, step: int) -> np.ndarray:
            q = self.data.qpos[self.qpos_index]
            if step == 0:
                hold[:] = [q.copy()]
            elif not hold:
                raise ValueError(
                    f"pd_hold: step {step} before step 0: the pose to hold is the reset's"
                )
            qdot = self.data.qvel[self.qvel_index]
            command = self.sign * (self.kp * (hold[0] - q) - self.kd * qdot)
            command += self.noise_std * self.half * rng.standard_normal(len(command))
            return self._action(np.clip(command, self.low, self.high))  # saturation

        return act


class _Policy(Excitation):
    def __init__(self, space: gym.spaces.Box, policy: Any, noise_std: float):
        super().__init__(space)
        self.policy = policy
        self.noise_std = noise_std

    def episode(self, rng: np.random.Generator) -> EpisodeController:
        policy = self.policy
        policy.start_episode()

        def act(observation: np.ndarray, step: int) -> np.ndarray:
            action = np.asarray(policy(observation), dtype=np.float64)
            action = action + self.noise_std * self.half * rng.standard_normal(action.shape)
            sent = self._action(action)
            policy.prev_action = sent.reshape(1, -1).astype(np.float32)  # what was sent
            return sent

        return act


# --------------------------------------------------------------------------- configs


class _Config(BaseModel, ABC):
    """What every excitation config has: its ``kind``, ``build`` and ``label``; each kind
    implements ``_build``."""

    model_config = STRICT_SECTION

    kind: str

    def build(self, env: gym.Env[Any, Any], length: int | None) -> Excitation:
        """This excitation for ``env`` and episodes of ``length`` steps.

        Raises:
            ValueError: what ``env`` cannot take, named (module docstring).
        """
        return self._build(_box(env), env, length)

    @abstractmethod
    def _build(
        self, space: gym.spaces.Box, env: gym.Env[Any, Any], length: int | None
    ) -> Excitation:
        """This kind's excitation for an action space ``space`` of ``env``."""

    def label(self) -> str:
        """The kind and its settings in one line (``multisine f_min=0.5 f_max=5.0 ...``)."""
        fields = self.model_dump(exclude={"kind"})
        return " ".join([self.kind, *(f"{k}={v}" for k, v in fields.items())])


class RandomExcitation(_Config):
    """Uniform random actions over the action space."""

    kind: Literal["random"] = "random"

    def _build(self, space: gym.spaces.Box, env: Any, length: int | None) -> Excitation:
        return _Uniform(space)


class _Band(_Config):
    f_min: float = Field(default=0.5, gt=0)
    """The lowest frequency in Hz."""
    f_max: float = Field(default=5.0, gt=0)
    """The highest frequency in Hz (below the Nyquist frequency ``1 / (2 dt)``)."""
    amplitude: float = Field(default=0.5, gt=0, le=1)
    """The peak deviation from the centre of each actuator's range, as a share of its
    half-range (1: the signal reaches the range's ends)."""

    @model_validator(mode="after")
    def _band(self) -> Any:
        if self.f_max <= self.f_min:
            raise ValueError(f"f_max ({self.f_max:g} Hz) must exceed f_min ({self.f_min:g} Hz)")
        return self

    def _timing(self, env: gym.Env[Any, Any], length: int | None) -> tuple[float, int]:
        """``(dt, length)``, checked against the band."""
        dt = getattr(env.unwrapped, "dt", None)
        if dt is None or not dt > 0:
            raise ValueError(f"{self.kind}: the environment has no control period dt")
        if length is None:
            raise ValueError(f"{self.kind}: the signal's length is the episode's: give max_steps")
        nyquist = 1 / (2 * dt)
        if self.f_max >= nyquist:
            raise ValueError(
                f"{self.kind}.f_max ({self.f_max:g} Hz) must lie below the Nyquist frequency "
                f"of the control rate, 1 / (2 dt) = {nyquist:g} Hz (dt = {dt:g} s)"
            )
        return float(dt), int(length)


class MultisineExcitation(_Band):
    """A random-phase multisine per actuator (module docstring)."""

    kind: Literal["multisine"] = "multisine"

    def _build(self, space: gym.spaces.Box, env: Any, length: int | None) -> Excitation:
        dt, steps = self._timing(env, length)
        lines = multisine_lines(self.f_min, self.f_max, dt, steps)
        n_actuators = space.shape[0]

        def draw(rng: np.random.Generator) -> np.ndarray:
            phases = rng.uniform(0, 2 * np.pi, size=(len(lines), n_actuators))
            spectrum = np.zeros((steps // 2 + 1, n_actuators), dtype=complex)
            spectrum[lines] = np.exp(1j * phases) * (steps / 2)
            # irfft of that spectrum: sum over the lines of cos(2 pi k n / steps + phase)
            signal = np.fft.irfft(spectrum, n=steps, axis=0)
            return signal / np.abs(signal).max(axis=0)

        return _Periodic(space, self.amplitude, draw)


def multisine_lines(f_min: float, f_max: float, dt: float, length: int) -> np.ndarray:
    """The FFT lines ``k`` (frequency ``k / (length * dt)``) in ``[f_min, f_max]``.

    Raises:
        ValueError: no line in the band (the band narrower than the lines' spacing).
    """
    duration = length * dt
    first = math.ceil(f_min * duration - 1e-9)
    last = math.floor(f_max * duration + 1e-9)
    if last < first:
        raise ValueError(
            f"multisine: no frequency k / T lies in [{f_min:g}, {f_max:g}] Hz, with T = "
            f"max_steps * dt = {duration:g} s (lines {1 / duration:g} Hz apart): widen the "
            "band or lengthen the episodes"
        )
    return np.arange(max(first, 1), last + 1)


class ChirpExcitation(_Band):
    """A swept cosine per actuator, randomly phased and shifted (module docstring)."""

    kind: Literal["chirp"] = "chirp"
    method: Literal["linear", "quadratic", "logarithmic", "hyperbolic"] = "logarithmic"
    """How the frequency sweeps (``scipy.signal.chirp``): logarithmic spends as long on
    each octave, the usual choice for a band spanning a decade."""

    def _build(self, space: gym.spaces.Box, env: Any, length: int | None) -> Excitation:
        dt, steps = self._timing(env, length)
        n_actuators = space.shape[0]
        duration = steps * dt

        def draw(rng: np.random.Generator) -> np.ndarray:
            phases = rng.uniform(0, 360, size=n_actuators)
            shifts = rng.integers(0, steps, size=n_actuators)
            n = (np.arange(steps)[:, None] + shifts[None, :]) % steps
            return np.asarray(
                chirp(n * dt, self.f_min, duration, self.f_max, self.method, phases[None, :])
            )

        return _Periodic(space, self.amplitude, draw)


class _Noisy(_Config):
    noise_std: float = Field(default=0.3, ge=0)
    """The Gaussian noise's standard deviation, as a share of each actuator's half-range."""


class PdHoldExcitation(_Noisy):
    """A PD controller holding the reset pose, plus noise (module docstring)."""

    kind: Literal["pd_hold"] = "pd_hold"
    kp: float = Field(default=4.0, ge=0)
    """Proportional gain: action units per rad (hinge) or per m (slide)."""
    kd: float = Field(default=0.1, ge=0)
    """Derivative gain: action units per rad/s or per m/s."""

    def _build(self, space: gym.spaces.Box, env: Any, length: int | None) -> Excitation:
        found = mujoco_model(env)
        if found is None:
            raise ValueError("pd_hold: the environment is not a MuJoCo one (no model and data)")
        model, data = found
        return _PdHold(space, model, data, self.kp, self.kd, self.noise_std)


class PolicyExcitation(_Noisy):
    """An exported policy plus noise (module docstring)."""

    kind: Literal["policy"] = "policy"
    path: str = Field(min_length=1)
    """The ONNX file ``metarl export`` wrote."""

    def _build(self, space: gym.spaces.Box, env: Any, length: int | None) -> Excitation:
        from metarl.sim2real.onnx_policy import load_policy

        try:
            policy = load_policy(self.path)
            policy.check_spaces(env.observation_space, space)
        except ValueError as err:
            raise ValueError(f"policy.path: {err}") from None
        if "prev_reward" in policy.inputs:
            raise ValueError(
                f"policy.path: {self.path} reads the previous reward (a meta-RL agent's "
                "input), which an excitation does not see; record it with metarl deploy "
                "and fit to that recording (sysid.data) instead"
            )
        return _Policy(space, policy, self.noise_std)


EXCITATION_KINDS: dict[str, type[_Config]] = {
    c.model_fields["kind"].default: c
    for c in (
        RandomExcitation,
        MultisineExcitation,
        ChirpExcitation,
        PdHoldExcitation,
        PolicyExcitation,
    )
}


def _kind_alone(value: Any) -> Any:
    """``excitation: multisine`` is ``{kind: multisine}`` (the kind's defaults); a
    missing or unknown kind is named with the kinds there are."""
    kinds = ", ".join(EXCITATION_KINDS)
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise ValueError(f"an excitation is a kind ({kinds}) or a mapping with a kind")
    if "kind" not in value:
        raise ValueError(f"the excitation has no kind; kinds: {kinds}")
    if not isinstance(value["kind"], str) or value["kind"] not in EXCITATION_KINDS:
        raise ValueError(f"kind {value['kind']!r} is not an excitation; kinds: {kinds}")
    return value


ExcitationConfig = Annotated[
    RandomExcitation | MultisineExcitation | ChirpExcitation | PdHoldExcitation | PolicyExcitation,
    Field(discriminator="kind"),
    BeforeValidator(_kind_alone),
]
"""One excitation's config, told apart by ``kind`` (a bare kind: its defaults)."""


def _box(env: gym.Env[Any, Any]) -> gym.spaces.Box:
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"an excitation drives a 1-D Box action space; got {space}")
    bounded = np.isfinite(space.low) & np.isfinite(space.high)
    if not bounded.all():
        raise ValueError(
            "an excitation needs finite action bounds (its amplitude and noise are shares "
            f"of the half-range); actions {np.flatnonzero(~bounded).tolist()} are unbounded"
        )
    return space


def _driven_joints(model: mujoco.MjModel) -> list[int]:
    """The joint each actuator drives.

    Raises:
        ValueError: an actuator without a joint transmission to a hinge or slide joint.
    """
    joints, wrong = [], []
    for a in range(model.nu):
        joint = int(model.actuator_trnid[a, 0])
        ok = model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and model.jnt_type[joint] in (
            mujoco.mjtJoint.mjJNT_HINGE,
            mujoco.mjtJoint.mjJNT_SLIDE,
        )
        if ok:
            joints.append(joint)
        else:
            wrong.append(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a) or f"#{a}")
    if wrong:
        raise ValueError(
            f"pd_hold: actuator(s) {', '.join(wrong)} drive no hinge or slide joint "
            "directly (a tendon, a site, a ball or free joint); pd_hold holds joints driven "
            "through a joint transmission: use random, multisine or chirp"
        )
    return joints


def excite(
    target: Any,
    excitation: Excitation,
    episodes: int,
    max_steps: int | None,
    rng: np.random.Generator,
) -> list[Any]:
    """``episodes`` recorded episodes of ``target`` (a ``metarl.sim2real.targets.Target``)
    driven by ``excitation``, one controller per episode drawn from ``rng``, each for at
    most ``max_steps`` steps."""
    out: list[Any] = []
    for _ in range(episodes):
        controller = excitation.episode(rng)
        steps = itertools.count()
        out += target.rollout(
            lambda observation, c=controller, n=steps: c(observation, next(n)), 1, max_steps
        )
    return out
