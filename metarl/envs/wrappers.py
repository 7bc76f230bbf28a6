"""Baseline wrappers over task environments: multi-task training and the task oracle.

Two Gymnasium wrappers that every meta-RL result is compared with, usable on
their own (with Stable-Baselines3 or any other library):

- ``MultiTaskEnv(env, tasks)``: domain randomization over tasks. At every
  ``reset`` a new task is drawn uniformly from a fixed training set (or fresh
  from a ``TaskDistribution``); the observation carries no task information.
- ``TaskInObservation(env)``: the oracle. The current task's features
  (``Task.features()``) are appended to every observation.

They stack: ``TaskInObservation(MultiTaskEnv(env, train_tasks))`` is what an
oracle policy trains on. Both stay task environments (``set_task`` /
``get_task`` / the ``task`` property reach the wrapped environment), so they
work inside Gymnasium's vector envs, through ``gymnasium.make_vec(...,
wrappers=[...])`` and through metarl's samplers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarl.envs.base import TaskEnv, get_task, is_task_env, set_task, task_distribution
from metarl.tasks import (
    AngleTask,
    ArcGoals,
    ChoiceTasks,
    DiscGoals,
    Task,
    TaskDistribution,
    UniformBoxGoals,
    UniformTasks,
)

__all__ = ["MultiTaskEnv", "TaskInObservation", "task_feature_bounds"]

# spawn key of MultiTaskEnv's stream: SeedSequence(seed, spawn_key=(_STREAM,)) is independent
# of the wrapped environment's own generator, which Gymnasium seeds with SeedSequence(seed).
_STREAM = 0x6D756C74


def _require_task_env(env: gym.Env[Any, Any], wrapper: str) -> None:
    if not isinstance(env, gym.Env):
        raise TypeError(f"{wrapper} wraps a gymnasium.Env, got {type(env).__name__}")
    if not is_task_env(env):
        raise TypeError(
            f"{wrapper} needs a task environment (one with set_task/get_task, e.g. "
            f"gymnasium.make('metarl/PointRobot-v0')), got {env}"
        )


class MultiTaskEnv(TaskEnv, gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Draw a new task at every reset: multi-task training / domain randomization.

    Args:
        env: a task environment (possibly wrapped, e.g. by ``gymnasium.make``).
        tasks: the training tasks (a non-empty sequence of tasks or their
            ``to_dict`` form; each reset draws one of them uniformly), or a
            ``TaskDistribution`` whose tasks are of the environment's task type (each
            reset draws a fresh task from it).

    Semantics:

    - Draws come from the wrapper's own generator, seeded by ``reset(seed=...)``
      (a stream derived from that seed and independent of the wrapped
      environment's ``np_random``); never seeded, it takes fresh entropy, as
      Gymnasium does. The same seed gives the same sequence of tasks.
    - ``reset`` sets the drawn task on the wrapped environment before resetting
      it. Its info holds ``task_features`` (``Task.features()`` of the new task,
      left out for tasks without numeric features) and, when drawing from a
      list, ``task_index`` (the task's position in ``tasks``). The task object
      itself is ``get_task(env)``; info stays numeric so that vector envs and
      samplers can stack it.
    - ``set_task(task)`` sets ``task`` at once and stops resampling (any task in
      the environment's support, not only training tasks), so that a sampler or
      an evaluation can fix the task; ``resume_resampling()`` draws again from
      the next reset on.

    Raises:
        TypeError: ``env`` is not a task environment.
        ValueError: ``tasks`` is empty, holds something that is not a task of the
            environment's distribution (the message names the index, the type and
            the allowed values), or is a distribution of another task type.
    """

    def __init__(
        self, env: gym.Env[Any, Any], tasks: Sequence[Task | Mapping[str, Any]] | TaskDistribution
    ):
        _require_task_env(env, "MultiTaskEnv")
        # Recorded in env.spec, so that spec.make() (Gymnasium's checker) rebuilds the stack.
        gym.utils.RecordConstructorArgs.__init__(self, tasks=tasks)
        gym.Wrapper.__init__(self, env)
        dist = task_distribution(env)
        self.task_distribution: TaskDistribution = dist
        self._tasks: tuple[Task, ...] | None
        self._source: TaskDistribution | None
        if isinstance(tasks, TaskDistribution):
            if not issubclass(tasks.task_type, dist.task_type):
                raise ValueError(
                    f"MultiTaskEnv tasks: a distribution of {tasks.task_type.__name__}s cannot "
                    f"feed an environment of {dist.task_type.__name__}s (support: {dist.support})"
                )
            self._tasks, self._source = None, tasks
        else:
            self._tasks, self._source = _check_tasks(tasks, dist), None
        self._rng: np.random.Generator | None = None
        self._frozen = False
        self._index = -1

    @property
    def tasks(self) -> tuple[Task, ...] | None:
        """The training tasks drawn from, or ``None`` when drawing from a distribution."""
        return self._tasks

    @property
    def source(self) -> TaskDistribution | None:
        """The distribution drawn from, or ``None`` when drawing from a list of tasks."""
        return self._source

    @property
    def resampling(self) -> bool:
        """Whether a new task is drawn at every reset (``False`` after ``set_task``)."""
        return not self._frozen

    def resume_resampling(self) -> None:
        """Draw a new task at every reset again (undoes the freeze of ``set_task``)."""
        self._frozen = False

    # ----------------------------------------------------------------- task API

    def set_task(self, task: Task) -> None:
        """Set ``task`` now and stop resampling until ``resume_resampling()``.

        Raises:
            ValueError: ``task`` is outside the environment's task distribution.
        """
        super().set_task(task)
        self._frozen = True
        self._index = -1

    def get_task(self) -> Task:
        """The task of the wrapped environment (the last draw or ``set_task``)."""
        return get_task(self.env)

    def _apply_task(self, task: Task) -> None:
        set_task(self.env, task)

    def __getstate__(self) -> dict[str, Any]:
        # The wrapped environment pickles its own task; restoring it here through
        # set_task (TaskEnv's default) would wrongly stop resampling.
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The distribution is the wrapped environment's own, which a copy rebuilds (a
        # physics space moves to the rebuilt model): take it from there again.
        self.__dict__.update(state)
        shared = self._source is self.task_distribution
        self.task_distribution = task_distribution(self.env)
        if shared:
            self._source = self.task_distribution

    # ----------------------------------------------------------------- Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM,)))
        if not self._frozen:
            self._draw()
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        task = self.get_task()
        try:
            info["task_features"] = task.features()
        except ValueError:
            pass  # tasks with non-numeric fields (e.g. Meta-World names) have no features
        if self._index >= 0:
            info["task_index"] = self._index
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        return self.env.step(action)

    def _draw(self) -> None:
        if self._rng is None:
            self._rng = np.random.default_rng()
        if self._tasks is not None:
            self._index = int(self._rng.integers(len(self._tasks)))
            task = self._tasks[self._index]
        else:
            assert self._source is not None
            task = self._source.sample(self._rng, 1)[0]
        set_task(self.env, task)


def _check_tasks(
    tasks: Sequence[Task | Mapping[str, Any]], dist: TaskDistribution
) -> tuple[Task, ...]:
    if isinstance(tasks, (str, bytes, Task)) or not isinstance(tasks, Sequence):
        raise ValueError(
            "MultiTaskEnv tasks must be a non-empty sequence of tasks or a TaskDistribution, "
            f"got {type(tasks).__name__}"
        )
    if len(tasks) == 0:
        raise ValueError(
            f"MultiTaskEnv tasks must not be empty: give at least one "
            f"{dist.task_type.__name__} (support: {dist.support})"
        )
    out = []
    for i, task in enumerate(tasks):
        try:
            task = Task.from_dict(task) if isinstance(task, Mapping) else task
            dist.validate(task)
        except ValueError as err:
            raise ValueError(f"MultiTaskEnv tasks[{i}]: {err}") from None
        out.append(task)
    return tuple(out)


# --------------------------------------------------------------------------- oracle


def task_feature_bounds(dist: TaskDistribution) -> tuple[np.ndarray, np.ndarray] | None:
    """Elementwise bounds of ``Task.features()`` over ``dist``'s support, where known.

    Known: box, arc and disc goal distributions, uniform scalar tasks with the
    default features, angle tasks (cosine and sine), and finite choices. Returns
    ``None`` for other distributions (physics spaces, user distributions).
    """
    if isinstance(dist, UniformBoxGoals):
        return np.full(dist.dim, dist.low), np.full(dist.dim, dist.high)
    if isinstance(dist, (ArcGoals, DiscGoals)):
        return np.full(2, -dist.radius), np.full(2, dist.radius)
    if issubclass(dist.task_type, AngleTask):
        return np.full(2, -1.0), np.full(2, 1.0)
    if isinstance(dist, UniformTasks) and dist.task_type.features is Task.features:
        return np.array([dist.low]), np.array([dist.high])
    if isinstance(dist, ChoiceTasks):
        try:
            feats = np.stack(
                [dist.task_type(**{dist.field_name: v}).features() for v in dist.values]
            )
        except ValueError:
            return None
        return feats.min(axis=0), feats.max(axis=0)
    return None


class TaskInObservation(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """The oracle: append the current task's features to every observation.

    The observation becomes ``concatenate([obs, get_task(env).features()])`` as
    float32; the task is read at every reset and step, so a ``set_task`` between
    episodes (or a ``MultiTaskEnv`` draw underneath) shows at once. The
    observation space is a float32 ``Box`` whose first entries are the wrapped
    environment's bounds and whose last ``feature_dim`` entries are the bounds of
    the task distribution's support (``task_feature_bounds``), or ``-inf`` /
    ``inf`` where they cannot be derived. The wrapper stays a task environment:
    ``set_task``, ``get_task`` and the ``task`` attribute reach the wrapped
    environment.

    Args:
        env: a task environment with a flat (1-D) ``Box`` observation space whose
            tasks have numeric features.

    Raises:
        TypeError: ``env`` is not a task environment.
        ValueError: the observation space is not a 1-D ``Box``, or the tasks have
            no numeric features (the message names the field).
    """

    def __init__(self, env: gym.Env[Any, Any]):
        _require_task_env(env, "TaskInObservation")
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        inner = env.observation_space
        if not isinstance(inner, spaces.Box) or len(inner.shape) != 1:
            raise ValueError(
                "TaskInObservation needs a flat observation space: a 1-D gymnasium.spaces.Box, "
                f"got {inner}"
            )
        dist = task_distribution(env)
        # The feature size from a fixed draw: get_task may not be defined before a reset.
        probe = dist.sample(np.random.default_rng(0), 1)[0]
        try:
            features = probe.features()
        except ValueError as err:
            raise ValueError(f"TaskInObservation needs numeric task features: {err}") from None
        self.feature_dim = int(features.shape[0])
        bounds = task_feature_bounds(dist)
        if bounds is None or bounds[0].shape != (self.feature_dim,):
            bounds = np.full(self.feature_dim, -np.inf), np.full(self.feature_dim, np.inf)
        low = np.concatenate([_as_float32(inner.low), _as_float32(bounds[0])])
        high = np.concatenate([_as_float32(inner.high), _as_float32(bounds[1])])
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        features = get_task(self.env).features()
        return np.concatenate([np.asarray(observation, dtype=np.float32), features]).astype(
            np.float32, copy=False
        )


def _as_float32(x: np.ndarray) -> np.ndarray:
    """``x`` as float32, values beyond float32's range becoming infinite (not clipped)."""
    out = np.array(x, dtype=np.float64)
    big = float(np.finfo(np.float32).max)
    out[out > big] = math.inf
    out[out < -big] = -math.inf
    return out.astype(np.float32)
