"""``PhysicsRandomization``: domain randomization of any MuJoCo-based Gymnasium environment.

The wrapper draws ``PhysicsTask``s from a ``PhysicsSpace`` bound to the wrapped
environment's model (``env.unwrapped.model``; Gymnasium's own ``Hopper-v5``
works) and writes them into the model, on every reset, every N steps, or once.
It is itself a task environment (``sample_tasks`` / ``set_task`` / ``get_task``
and the ``task`` property), so a physics-randomized environment can be
meta-trained, evaluated on fixed physics, or vectorized like any other.

Semantics:

- ``resample="reset"``: a new draw before every ``reset``; ``"steps"``: a draw at
  the first reset, then a new one before every ``every``-th step (counted across
  episodes; resets in between keep the physics); ``"once"``: one draw at the
  first reset, kept afterwards. A seeded ``reset(seed=s)`` starts anew in every
  mode (a draw now, a fresh step count), so the same seed gives the same physics.
- Draws come from the wrapper's own generator, seeded by ``reset(seed=...)``
  (an independent stream derived from that seed, so the environment's own
  ``np_random`` is not consumed); never seeded, it takes fresh entropy, as
  Gymnasium does.
- ``set_task(task)`` applies ``task`` at once and stops resampling, so the
  physics stays fixed until ``resume_resampling()`` (the next reset then draws
  again). ``restore_defaults()`` writes back the model's defaults and also
  stops resampling; ``close()`` restores the defaults before closing.
- ``set_params(params)`` replaces the space (what a randomization schedule does
  between training iterations): the episode in progress keeps its physics; from the
  next reset on, draws come from the new space (bound to the model's defaults).
- ``reset`` puts the physics in force in ``info["physics"]`` (a dict name ->
  value of the ``PhysicsTask``); a step that drew new physics does too.
- Before the first draw the physics are the model's defaults and ``get_task``
  returns ``space.default_task()`` (1 for scale, 0 for add), which need not lie
  in the support.
- A copy (``pickle``, ``cloudpickle``, ``copy.deepcopy``, an env shipped to a Ray
  worker) keeps the wrapper's state as it was (resample mode, freeze, generator,
  step count, params due at the next reset), and the model of the rebuilt inner
  environment gets the physics in force in the original: a copy runs what its
  ``info["physics"]`` reports, and draws what the original would draw next.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from metarl.checks import is_integer
from metarl.envs.base import TaskEnv
from metarl.envs.physics import PhysicsSpace
from metarl.envs.physics_param import PhysicsParam, params_from_dicts
from metarl.tasks import PhysicsTask, Task

__all__ = ["RESAMPLE_MODES", "PhysicsRandomization"]

RESAMPLE_MODES = ("reset", "steps", "once")

# spawn key of the wrapper's stream: SeedSequence(seed, spawn_key=(_STREAM,)) differs from
# Gymnasium's SeedSequence(seed) and from the children of SeedSequence(seed).spawn().
_STREAM = 0x70687973


Params = (
    PhysicsSpace
    | Mapping[str, PhysicsParam | Mapping[str, Any]]
    | Sequence[PhysicsParam | Mapping[str, Any]]
)


def _bound_space(params: Params, model: Any) -> PhysicsSpace:
    """``params`` as a space bound to ``model`` (its current values are the defaults).

    Raises:
        ValueError: a bad param (a dict's message starts with its name).
    """
    if isinstance(params, PhysicsSpace):
        return params if params.model is model else params.bind(model)
    if isinstance(params, Mapping):
        built = params_from_dicts({n: p for n, p in params.items() if isinstance(p, Mapping)})
        named: dict[str, Any] = {n: built.get(n, p) for n, p in params.items()}
        return PhysicsSpace(named, model)
    if isinstance(params, Sequence) and not isinstance(params, str):
        listed = [PhysicsParam.from_dict(p) if isinstance(p, Mapping) else p for p in params]
        return PhysicsSpace(listed, model)
    return PhysicsSpace(params, model)


class PhysicsRandomization(
    TaskEnv, gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs
):
    """Randomize the physics of a MuJoCo environment from a ``PhysicsSpace``.

    Args:
        env: a Gymnasium environment whose ``unwrapped`` has a ``mujoco.MjModel``
            as ``model`` (every ``MujocoEnv``).
        params: a ``PhysicsSpace`` (re-bound to this environment's model if it was
            bound to another), or the params to build one from (a mapping name ->
            ``PhysicsParam`` or its ``to_dict`` form, or a sequence of them).
        resample: ``"reset"``, ``"steps"`` or ``"once"`` (see the module docstring).
        every: for ``resample="steps"``, the number of steps between draws.

    Raises:
        ValueError: an environment without a MuJoCo model, an unknown resample
            mode (the message lists the allowed ones), ``every`` missing for
            ``"steps"`` or given for another mode, or a bad param (from
            ``PhysicsSpace``).
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        params: Params,
        *,
        resample: str = "reset",
        every: int | None = None,
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, params=params, resample=resample, every=every
        )
        gym.Wrapper.__init__(self, env)
        model = getattr(env.unwrapped, "model", None)
        if model is None:
            raise ValueError(
                f"PhysicsRandomization needs a MuJoCo environment (env.unwrapped.model), got {env}"
            )
        if resample not in RESAMPLE_MODES:
            raise ValueError(f"resample must be one of {list(RESAMPLE_MODES)}, got {resample!r}")
        if resample == "steps":
            if not (is_integer(every) and every >= 1):
                raise ValueError(
                    f"resample='steps' needs every = a positive number of steps, got {every!r}"
                )
        elif every is not None:
            raise ValueError(f"every is only used with resample='steps', got every={every!r}")
        self.task_distribution: PhysicsSpace = _bound_space(params, model)
        self._model = model
        self._resample = resample
        self._every = None if every is None else int(every)
        self._rng: np.random.Generator | None = None
        self._frozen = False  # set_task or restore_defaults stopped resampling
        self._pending = True  # a draw is due at the next reset
        self._since_draw = 0
        self._next_params: dict[str, PhysicsParam] | None = None  # set_params, due at reset
        self._applied = False  # the model holds _task (a draw or set_task), not its defaults
        self._set_default_task()

    # ----------------------------------------------------------------- configuration

    @property
    def resample(self) -> str:
        """The resample mode: ``"reset"``, ``"steps"`` or ``"once"``."""
        return self._resample

    @property
    def every(self) -> int | None:
        """Steps between draws with ``resample="steps"``; ``None`` otherwise."""
        return self._every

    @property
    def resampling(self) -> bool:
        """Whether new physics are drawn (``False`` after ``set_task`` or ``restore_defaults``)."""
        return not self._frozen

    # ----------------------------------------------------------------- task API

    def set_task(self, task: Task) -> None:
        """Apply ``task`` now and stop resampling until ``resume_resampling()``.

        Raises:
            ValueError: ``task`` is not a ``PhysicsTask`` of this space (wrong
                names, shapes, or values outside the support).
        """
        super().set_task(task)
        self._applied = True
        self._frozen = True

    def get_task(self) -> Task:
        """The physics in force: the last draw or ``set_task``, or ``default_task()`` before any.

        Raises:
            RuntimeError: the defaults are in force and no task expresses them.
        """
        task = getattr(self, "_task", None)
        if task is None:
            raise RuntimeError(
                "the model holds its default physics and no PhysicsTask of this space "
                "expresses them; call reset() or set_task() first"
            )
        return task

    def _apply_task(self, task: Task) -> None:
        self.task_distribution.apply(self._model, task)

    def resume_resampling(self) -> None:
        """Draw new physics again, from the next reset on, as the resample mode says."""
        self._frozen = False
        self._pending = True
        self._since_draw = 0

    @property
    def next_params(self) -> dict[str, PhysicsParam]:
        """The params the next draw comes from (``set_params``'s, until the next reset)."""
        return dict(self._next_params or self.task_distribution.params)

    def set_params(self, params: Params) -> None:
        """Draw from ``params`` from the next reset on (a randomization schedule's update).

        The params are checked now (bound to a copy of the model);
        the episode in progress keeps its physics; at the next reset the model gets its
        defaults back, the new space binds to them and the draw comes from it. Resampling
        resumes (after ``set_task`` too). Accepts what the constructor accepts; params
        equal to those in force change nothing but the resumption.

        Raises:
            ValueError: a bad param (from ``PhysicsSpace``); nothing changes.
        """
        # Binding checks names and structure; a copy keeps the model (and its task) as is.
        checked = _bound_space(params, copy.deepcopy(self._model)).params
        self._next_params = None if checked == self.task_distribution.params else checked
        self.resume_resampling()

    def restore_defaults(self) -> None:
        """Write the model's default physics back (bit for bit) and stop resampling."""
        self.task_distribution.restore(self._model)
        self._applied = False
        self._frozen = True
        self._set_default_task()

    def _set_default_task(self) -> None:
        try:
            self._task = self.task_distribution.default_task()
        except ValueError:
            self.__dict__.pop("_task", None)

    def _draw(self) -> PhysicsTask:
        if self._rng is None:
            self._rng = np.random.default_rng()
        task = self.task_distribution.sample(self._rng, 1)[0]
        assert isinstance(task, PhysicsTask)
        self.task_distribution.apply(self._model, task)
        self._task = task
        self._applied = True
        self._pending = False
        self._since_draw = 0
        return task

    # ----------------------------------------------------------------- copies

    def __getstate__(self) -> dict[str, Any]:
        # The wrapper's own state as it is (resample mode, freeze, generator, step count):
        # restoring it through set_task (TaskEnv's default) would stop resampling.
        state = dict(self.__dict__)
        del state["_model"]  # the rebuilt inner environment brings its own model
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The inner environment is rebuilt from its constructor (Gymnasium's EzPickle), with
        # a model of its own: the space moves to that model, which then gets the physics in
        # force in the original, so that the copy runs what its info reports.
        self.__dict__.update(state)
        self._model = self.env.unwrapped.model  # type: ignore[attr-defined]
        self.task_distribution = self.task_distribution.attach(self._model)
        self.task_distribution.restore(self._model)
        if self._applied:
            self.task_distribution.apply(self._model, self._task)

    # ----------------------------------------------------------------- Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            # A seeded reset starts the draws anew, whatever came before: the same seed
            # gives the same physics in every mode (and a fresh count of steps).
            self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM,)))
            self._pending = True
            self._since_draw = 0
        if self._next_params is not None:  # set_params: the new space, bound to the defaults
            self.task_distribution.restore(self._model)
            self.task_distribution = PhysicsSpace(self._next_params, self._model)
            self._next_params = None
            self._applied = False
            self._set_default_task()
        if not self._frozen and (self._resample == "reset" or self._pending):
            self._draw()
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        task = getattr(self, "_task", None)
        if isinstance(task, PhysicsTask):
            info["physics"] = dict(task.values)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        drawn = None
        if (
            self._resample == "steps"
            and not self._frozen
            and self._every is not None
            and self._since_draw >= self._every
        ):
            drawn = self._draw()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._since_draw += 1
        if drawn is not None:
            info = {**info, "physics": dict(drawn.values)}
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Restore the model's defaults, then close the wrapped environment."""
        self.task_distribution.restore(self._model)
        super().close()
