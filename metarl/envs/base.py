"""The task-environment contract: ``sample_tasks``, ``set_task``, ``get_task``.

``TaskEnv`` is the mixin every metarl task environment (and every wrapper that
makes an environment a task environment) inherits.

The functions below reach the task API of an environment that ``gymnasium.make``
(or any stack of wrappers) has wrapped: ``set_task(env, task)`` is the way to set
a task. ``TaskEnv`` also has a ``task`` property, the attribute through which
``set_tasks`` gives each sub-environment of a Gymnasium vector env its own task
(``set_attr("task", tasks)``, which Gymnasium's wrappers pass down). Assigning
``env.task = ...`` directly is not the way to set a task: Gymnasium's wrappers
(``TimeLimit``, ``OrderEnforcing``, ...) keep an assigned attribute themselves, so
on a made environment the assignment changes nothing. The functions here
(``set_task``, ``get_task``, ``sample_tasks``, ``set_tasks``, ``get_tasks``, and the
samplers through them) refuse an environment on which that happened, naming the
wrapper; an environment stepped without any of them runs its old task.

``set_tasks`` / ``get_tasks`` take Gymnasium's ``SyncVectorEnv`` and
``AsyncVectorEnv``, those wrapped by ``gymnasium.wrappers.vector`` wrappers, and
Stable-Baselines3's vector envs (``DummyVecEnv``, ``SubprocVecEnv`` and their
``VecEnvWrapper`` wrappers, through ``env_method``).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.tasks import Task, TaskDistribution

EnvWrapper = Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]
"""A function ``env -> env`` that wraps one environment (a wrapper class, or a
``functools.partial`` of one): what samplers apply to each sub-environment, innermost
first (``gymnasium.make_vec``'s ``wrappers``)."""

# Gymnasium's vector envs whose sub-environments take tasks through set_attr/get_attr.
_GYMNASIUM_VECTOR_ENVS = (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv)


def layers(env: gym.Env[Any, Any]) -> list[Any]:
    """``env`` and everything it wraps, outermost first, down to ``env.unwrapped``."""
    out: list[Any] = []
    layer: Any = env
    while isinstance(layer, gym.Wrapper):
        out.append(layer)
        layer = layer.env
    out.append(layer)
    return out


class TaskEnv:
    """Mixin: an environment whose task is drawn from ``task_distribution``.

    Subclasses set ``task_distribution`` and implement ``_apply_task`` (what the
    environment changes when its task changes). ``self.np_random`` (Gymnasium's
    generator, seeded by ``reset(seed=...)``) draws tasks unless a generator is
    passed.
    """

    task_distribution: TaskDistribution
    _task: Task
    np_random: np.random.Generator

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[Task]:
        """Return ``n`` tasks from ``task_distribution`` drawn with ``rng`` or ``np_random``."""
        return self.task_distribution.sample(self.np_random if rng is None else rng, n)

    def set_task(self, task: Task) -> None:
        """Make ``task`` the environment's task; it takes effect from the next step.

        Raises:
            ValueError: ``task`` has the wrong type or lies outside the support of
                ``task_distribution`` (the message names the field and range).
        """
        self.task_distribution.validate(task)
        self._task = task
        self._apply_task(task)

    def get_task(self) -> Task:
        """Return the current task (the one last given to ``set_task``)."""
        return self._task

    @property
    def task(self) -> Task:
        """The current task; assigning to it calls ``set_task`` on this object.

        The attribute vector envs set (``set_attr("task", tasks)``). Gymnasium's
        wrappers do not pass an assignment down: set a task with
        ``metarl.envs.set_task(env, task)`` (module docstring).
        """
        return self.get_task()

    @task.setter
    def task(self, task: Task) -> None:
        self.set_task(task)

    def __getstate__(self) -> dict[str, Any]:
        # EzPickle rebuilds an environment from its constructor arguments; keep the
        # current task too, so that an unpickled copy (e.g. in a subprocess vector env
        # or a Ray worker) has the task last given to set_task, not the initial one.
        parent = getattr(super(), "__getstate__", None)
        state: dict[str, Any] = dict(parent()) if parent is not None else dict(self.__dict__)
        if hasattr(self, "_task"):
            state["_metarl_task"] = self._task.to_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        task = state.pop("_metarl_task", None)
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
        if task is not None:
            self.set_task(Task.from_dict(task))

    def _apply_task(self, task: Task) -> None:
        """Change the environment to realise ``task`` (default: nothing beyond storing it)."""

    def _init_task(self, task: Task | dict[str, Any] | None) -> None:
        """Set the initial task: the given one (a Task or its dict) or a draw from a fixed seed.

        The default draw uses a fixed generator, not ``np_random``, so that building
        an environment does not consume its random stream.
        """
        if task is None:
            task = self.task_distribution.sample(np.random.default_rng(0), 1)[0]
        elif isinstance(task, dict):
            task = Task.from_dict(task)
        self.set_task(task)


def is_task_env(env: gym.Env[Any, Any]) -> bool:
    """Whether ``env`` (possibly wrapped) offers the task API."""
    try:
        env.get_wrapper_attr("set_task")
    except AttributeError:
        return False
    return True


def set_task(env: gym.Env[Any, Any], task: Task) -> None:
    """Call ``set_task`` on the outermost layer of ``env`` that has it.

    Raises:
        TypeError: ``env`` is not a task environment.
        ValueError: from the environment's ``set_task``, for a task outside its support;
            or a Gymnasium wrapper of ``env`` holds an assigned ``task`` (the
            assignment changed nothing; module docstring).
    """
    _task_method(env, "set_task")(task)


def get_task(env: gym.Env[Any, Any]) -> Task:
    """Return the task of ``env`` (possibly wrapped).

    Raises:
        TypeError: ``env`` is not a task environment.
        ValueError: a Gymnasium wrapper of ``env`` holds an assigned ``task`` (the
            assignment changed nothing; module docstring).
    """
    task: Task = _task_method(env, "get_task")()
    return task


def sample_tasks(
    env: gym.Env[Any, Any], n: int, rng: np.random.Generator | None = None
) -> list[Task]:
    """Return ``n`` tasks drawn from the task distribution of ``env`` (possibly wrapped).

    Raises:
        TypeError: ``env`` is not a task environment.
        ValueError: a Gymnasium wrapper of ``env`` holds an assigned ``task`` (the
            assignment changed nothing; module docstring).
    """
    tasks: list[Task] = _task_method(env, "sample_tasks")(n, rng)
    return tasks


def task_distribution(env: gym.Env[Any, Any]) -> TaskDistribution:
    """Return the task distribution of ``env`` (possibly wrapped).

    Raises:
        TypeError: ``env`` is not a task environment.
        ValueError: a Gymnasium wrapper of ``env`` holds an assigned ``task`` (the
            assignment changed nothing; module docstring).
    """
    _check_no_shadowed_task(env)
    if not is_task_env(env):
        raise TypeError(f"{env} is not a task environment (it has no set_task)")
    dist: TaskDistribution = env.get_wrapper_attr("task_distribution")
    return dist


def set_tasks(envs: Any, tasks: Sequence[Task]) -> None:
    """Give sub-environment ``i`` of a vector env the task ``tasks[i]``.

    ``envs``: a Gymnasium ``SyncVectorEnv`` or ``AsyncVectorEnv`` (possibly wrapped
    by ``gymnasium.wrappers.vector`` wrappers), or a Stable-Baselines3 ``VecEnv``.
    All tasks are checked before any is set.

    Raises:
        TypeError: ``envs`` is none of these (the message says what to pass).
        ValueError: ``len(tasks)`` differs from the number of sub-environments, a
            task is outside the support of its sub-environment, or a Gymnasium wrapper
            of a ``SyncVectorEnv``'s sub-environment holds an assigned ``task``.
    """
    vec = _vector_task_envs(envs)
    if len(tasks) != vec.num_envs:
        raise ValueError(f"got {len(tasks)} tasks for a vector env of {vec.num_envs} envs")
    # Validate all before setting any: a refused task must leave every sub-env as it
    # was, and must not raise inside an AsyncVectorEnv worker (which kills the vector env).
    dists = _vector_distributions.get(vec)
    if dists is None:
        dists = _vector_distributions[vec] = list(vec.get_attr("task_distribution"))
    for i, (dist, task) in enumerate(zip(dists, tasks, strict=True)):
        try:
            dist.validate(task)
        except ValueError as err:
            raise ValueError(f"tasks[{i}]: {err}") from None
    if isinstance(vec, _GYMNASIUM_VECTOR_ENVS):
        for sub in getattr(vec, "envs", ()):  # a SyncVectorEnv's sub-envs are at hand
            _check_no_shadowed_task(sub)
        vec.set_attr("task", list(tasks))
    else:  # Stable-Baselines3: its set_attr sets the outermost wrapper's attribute
        for i, task in enumerate(tasks):
            vec.env_method("set_task", task, indices=[i])


# Each vector env's sub-env task distributions, fetched once (they do not change).
_vector_distributions: weakref.WeakKeyDictionary[Any, list[TaskDistribution]] = (
    weakref.WeakKeyDictionary()
)


def get_tasks(envs: Any) -> list[Task]:
    """Return the task of each sub-environment of a vector env (the ones ``set_tasks`` takes).

    Raises:
        TypeError: ``envs`` is not a vector env of those kinds.
        ValueError: a Gymnasium wrapper of a ``SyncVectorEnv``'s sub-environment holds
            an assigned ``task``.
    """
    vec = _vector_task_envs(envs)
    if isinstance(vec, _GYMNASIUM_VECTOR_ENVS):
        for sub in getattr(vec, "envs", ()):
            _check_no_shadowed_task(sub)
        return list(vec.get_attr("task"))
    return list(vec.env_method("get_task"))


def _vector_task_envs(envs: Any) -> Any:
    """The vector env under ``envs`` that takes tasks: a Gymnasium Sync/Async vector env
    (under any ``VectorWrapper``) or a Stable-Baselines3 ``VecEnv``."""
    if isinstance(envs, gym.vector.VectorWrapper):
        envs = envs.unwrapped
    if isinstance(envs, _GYMNASIUM_VECTOR_ENVS):
        return envs
    # Stable-Baselines3 is only looked for where it is already imported: an object of
    # its classes cannot exist otherwise, and importing it here would slow every import.
    sb3 = sys.modules.get("stable_baselines3.common.vec_env.base_vec_env")
    if sb3 is not None and isinstance(envs, sb3.VecEnv):
        return envs
    raise TypeError(
        "set_tasks/get_tasks take a gymnasium.vector.SyncVectorEnv or AsyncVectorEnv "
        "(gymnasium.make_vec(..., vectorization_mode='sync' or 'async'), possibly wrapped "
        "by gymnasium.wrappers.vector wrappers) or a Stable-Baselines3 VecEnv (DummyVecEnv, "
        f"SubprocVecEnv); got {type(envs).__name__}. For one environment use set_task(env, task)."
    )


def _check_no_shadowed_task(env: gym.Env[Any, Any]) -> None:
    """Refuse a stack in which ``env.task = ...`` landed on a wrapper that is not a task env.

    Such wrappers (Gymnasium's, and metarl's that are not task envs: ``TaskInObservation``,
    the effects, ``Recorder``) keep an assigned attribute themselves; the task env below
    never saw the assignment, and vector envs' ``set_attr("task")`` would stop at it.
    """
    for layer in layers(env)[:-1]:  # the wrappers
        if "task" in vars(layer) and not isinstance(layer, TaskEnv):
            raise ValueError(
                f"env.task was assigned on {type(layer).__name__}, a wrapper that is not a "
                "task environment and keeps the value itself: the environment's task did not "
                "change. Set tasks "
                "with metarl.envs.set_task(env, task) (or env.unwrapped.set_task(task)); "
                f"remove the stray attribute with `del env.task` on that {type(layer).__name__}"
            )


def _task_method(env: gym.Env[Any, Any], name: str) -> Any:
    _check_no_shadowed_task(env)
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        raise TypeError(f"{env} is not a task environment (it has no {name})") from None
