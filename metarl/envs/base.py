"""The task-environment contract: ``sample_tasks``, ``set_task``, ``get_task``.

``TaskEnv`` is the mixin every metarl task environment (and every wrapper that
makes an environment a task environment) inherits. It also exposes the task as a
``task`` property, so that ``VectorEnv.set_attr("task", tasks)`` gives each
sub-environment its own task through Gymnasium's wrappers, in both
``SyncVectorEnv`` and ``AsyncVectorEnv``. The functions below reach the task API
of an environment that ``gymnasium.make`` has wrapped.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.tasks import Task, TaskDistribution

# The vector envs whose sub-environments can be given tasks (both offer set_attr/get_attr).
VectorTaskEnvs = gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv


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
        """The current task; assigning to it calls ``set_task``."""
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
        ValueError: from the environment's ``set_task``, for a task outside its support.
    """
    _task_method(env, "set_task")(task)


def get_task(env: gym.Env[Any, Any]) -> Task:
    """Return the task of ``env`` (possibly wrapped)."""
    task: Task = _task_method(env, "get_task")()
    return task


def sample_tasks(
    env: gym.Env[Any, Any], n: int, rng: np.random.Generator | None = None
) -> list[Task]:
    """Return ``n`` tasks drawn from the task distribution of ``env`` (possibly wrapped)."""
    tasks: list[Task] = _task_method(env, "sample_tasks")(n, rng)
    return tasks


def task_distribution(env: gym.Env[Any, Any]) -> TaskDistribution:
    """Return the task distribution of ``env`` (possibly wrapped)."""
    if not is_task_env(env):
        raise TypeError(f"{env} is not a task environment (it has no set_task)")
    dist: TaskDistribution = env.get_wrapper_attr("task_distribution")
    return dist


def set_tasks(envs: VectorTaskEnvs, tasks: Sequence[Task]) -> None:
    """Give sub-environment ``i`` of a Sync or Async vector env the task ``tasks[i]``.

    Raises:
        ValueError: ``len(tasks)`` differs from ``envs.num_envs``, or a task is
            outside the support of its sub-environment.
    """
    if len(tasks) != envs.num_envs:
        raise ValueError(f"got {len(tasks)} tasks for a vector env of {envs.num_envs} envs")
    # Validate all before setting any: a refused task must leave every sub-env as it
    # was, and must not raise inside an AsyncVectorEnv worker (which kills the vector env).
    dists = _vector_distributions.get(envs)
    if dists is None:
        dists = _vector_distributions[envs] = list(envs.get_attr("task_distribution"))
    for i, (dist, task) in enumerate(zip(dists, tasks, strict=True)):
        try:
            dist.validate(task)
        except ValueError as err:
            raise ValueError(f"tasks[{i}]: {err}") from None
    envs.set_attr("task", list(tasks))


# Each vector env's sub-env task distributions, fetched once (they do not change).
_vector_distributions: weakref.WeakKeyDictionary[Any, list[TaskDistribution]] = (
    weakref.WeakKeyDictionary()
)


def get_tasks(envs: VectorTaskEnvs) -> list[Task]:
    """Return the task of each sub-environment of a Sync or Async vector env."""
    return list(envs.get_attr("task"))


def _task_method(env: gym.Env[Any, Any], name: str) -> Any:
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        raise TypeError(f"{env} is not a task environment (it has no {name})") from None
