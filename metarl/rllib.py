"""RLlib interop: metarl's environments in RLlib, and randomization schedules on its env runners.

RLlib builds an env on every env runner from the name given to ``config.environment``.
Three names reach metarl's environments (RLlib 2.60, new API stack):

- ``register_rllib_env()`` (``"metarl"``): the env creator ``make_rllib_env``, configured
  by ``env_config`` (below); a task env draws a new task at every reset.
- A metarl id, ``"metarl/PointRobot-v0"``: the same creator with that ``env_id``
  (``env_config`` holds the other keys below); a new task at every reset. Works when
  the process that builds the algorithm imported metarl: once Ray Tune's registry
  (RLlib's env lookup) is imported, ``register_env_ids`` registers every metarl id with
  it, again at every later ``ray.init`` of the process (Ray's registry forgets what was
  registered before a restart). Importing metarl does not import Ray.
- Gymnasium's spelling, ``"metarl:metarl/PointRobot-v0"``: ``gymnasium.make`` of the id
  on every env runner, ``env_config`` its keyword arguments. The env runs one fixed task
  every episode: the one given as ``env_config={"task": task.to_dict()}`` (the way to
  train one task), else the env's default task. Without a ``task`` and with metarl
  imported in the driver, each env warns and names the routes that resample.

``make_rllib_env(env_config)`` keys: ``env_id`` (a Gymnasium id; ``metarl/...`` ids are
registered by importing metarl, which the creator does), ``env_kwargs`` (of
``gymnasium.make``), ``effects`` (unmodeled effects, ``[{name: ..., **arguments}]`` of
``metarl.envs.effects``, innermost), and one of ``physics`` (name -> ``PhysicsParam``
dict, see ``PhysicsParam.to_dict``: the env is wrapped in ``PhysicsRandomization``, a
new draw at every reset) or ``tasks`` (a list of ``Task`` dicts: a task env wrapped in
``MultiTaskEnv``, a training task at every reset). With neither, a task env draws from
its own task distribution at every reset (``MultiTaskEnv``) and any other env is
returned as made. The result keeps metarl's task API (``sample_tasks`` / ``set_task`` /
``get_task``, see ``metarl.envs.base``), reachable through RLlib's vector env. RLlib
2.60 has no task API of its own (its new API stack has no ``TaskSettableEnv``), so the
functions below reach every sub-env of every env runner:

- ``set_task_on_env_runners(group, task)``: every sub-env of every env runner gets
  ``task`` (and keeps it: ``MultiTaskEnv.set_task`` stops resampling).
- ``set_physics_on_env_runners(group, params)``: every sub-env of every env runner
  draws from ``params`` from its next reset on (``PhysicsRandomization.set_params``);
  ``physics_on_env_runners(group)`` reads back what each sub-env draws from next.
- ``randomization_callbacks(schedule)``: the ``AlgorithmConfig.callbacks(...)``
  arguments that make any RLlib algorithm train under a randomization schedule
  (``metarl.sim2real.schedules``): the schedule's params go to every env runner
  when the algorithm starts, after every training iteration the schedule is updated
  with that iteration's results and its new params go to every env runner (the
  evaluation runners too), and env runners that RLlib re-creates after a failure get
  the params in force. Each result gets ``result["metarl_randomization"]`` (the
  schedule's ``describe()`` and the number of sub-envs updated).

Errors: a bad ``env_config`` raises ``ValueError`` in the env runner that builds the env.
Under RLlib's default ``restart_failed_env_runners=True``, RLlib logs that error
("Validation of EnvRunner failed! Error=...") and then fails with an ``IndexError``
from ``get_spaces`` (no env runner came up); with
``config.fault_tolerance(restart_failed_env_runners=False)`` the driver raises the
error itself.

RLlib is imported only inside these functions: metarl works without touching it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import gymnasium as gym

from metarl.envs import (
    PhysicsParam,
    PhysicsRandomization,
    get_task,
    is_task_env,
    task_env_ids,
)
from metarl.envs.effects import apply_effects
from metarl.envs.wrappers import MultiTaskEnv
from metarl.tasks import Task

__all__ = [
    "ENV_NAME",
    "ScheduleLike",
    "make_rllib_env",
    "physics_on_env_runners",
    "randomization_callbacks",
    "register_env_ids",
    "register_rllib_env",
    "set_physics_on_env_runners",
    "set_task_on_env_runners",
]

ENV_NAME = "metarl"
_CONFIG_KEYS = ("env_id", "env_kwargs", "effects", "physics", "tasks")


class ScheduleLike(Protocol):
    """What ``randomization_callbacks`` needs of a schedule (``RandomizationSchedule``)."""

    def params(self) -> dict[str, PhysicsParam]: ...

    def update(self, iteration: int, metrics: Mapping[str, Any]) -> bool: ...

    def describe(self) -> dict[str, float]: ...


def make_rllib_env(env_config: Mapping[str, Any]) -> gym.Env[Any, Any]:
    """The environment ``env_config`` describes (see the module docstring).

    Raises:
        ValueError: an unknown key (the message lists the allowed ones), no
            ``env_id``, both ``physics`` and ``tasks``, ``tasks`` on an env that is
            not a task env, or a bad effect (named by its position).
    """
    import metarl  # noqa: F401  (registers metarl/ ids in the env runner's process)

    # RLlib adds worker_index, num_workers, ... as attributes of its EnvContext, not keys.
    unknown = sorted(set(env_config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"env_config: unknown keys {unknown}; allowed: {list(_CONFIG_KEYS)} "
            "(the env's own arguments go under env_kwargs)"
        )
    if "env_id" not in env_config:
        raise ValueError("env_config: env_id is required (a Gymnasium environment id)")
    physics, tasks = env_config.get("physics"), env_config.get("tasks")
    if physics is not None and tasks is not None:
        raise ValueError("env_config: give physics or tasks, not both")
    env = gym.make(env_config["env_id"], **dict(env_config.get("env_kwargs") or {}))
    env = apply_effects(env, env_config.get("effects") or [])
    if physics is not None:
        return PhysicsRandomization(env, _physics_params(physics))
    if tasks is not None:
        if not is_task_env(env):
            raise ValueError(
                f"env_config.tasks: {env_config['env_id']} is not a task environment "
                "(no sample_tasks / set_task / get_task)"
            )
        return MultiTaskEnv(env, [t if isinstance(t, Task) else Task.from_dict(t) for t in tasks])
    if is_task_env(env):
        return MultiTaskEnv(env, env.get_wrapper_attr("task_distribution"))
    return env


def _physics_params(physics: Mapping[str, Any]) -> dict[str, PhysicsParam]:
    return {
        name: p if isinstance(p, PhysicsParam) else PhysicsParam.from_dict(p)
        for name, p in physics.items()
    }


def register_rllib_env(name: str = ENV_NAME) -> str:
    """Register ``make_rllib_env`` with RLlib (``config.environment(name, env_config=...)``)."""
    from ray.tune.registry import register_env

    register_env(name, make_rllib_env)
    return name


def _make_by_id(env_id: str, env_config: Mapping[str, Any]) -> gym.Env[Any, Any]:
    """RLlib's env for the name ``env_id``: ``make_rllib_env`` with that ``env_id``.

    Raises:
        ValueError: ``env_config`` names an ``env_id`` (the name is the id), or what
            ``make_rllib_env`` raises.
    """
    if "env_id" in env_config:
        raise ValueError(
            f"env_config: env_id {env_config['env_id']!r} given with "
            f"config.environment({env_id!r}); the name is the env id: leave env_id out"
        )
    return make_rllib_env({**env_config, "env_id": env_id})


def _make_as_gymnasium(env_id: str, env_config: Mapping[str, Any]) -> gym.Env[Any, Any]:
    """RLlib's env for Gymnasium's spelling ``metarl:<env_id>``: ``gymnasium.make``.

    ``env_config`` holds the keyword arguments of ``gymnasium.make``; the env runs one
    task in every episode. Without a ``task`` among them, warns with the task it runs
    and the names that give a new task at every reset.
    """
    env = gym.make(env_id, **dict(env_config))
    if "task" not in env_config:
        warnings.warn(
            f"RLlib env 'metarl:{env_id}' is Gymnasium's spelling: every episode runs the "
            f"one task the env was made with ({get_task(env)!r}), never a new one. For a "
            f"new task at every reset use config.environment({env_id!r}) (metarl imported "
            "in the driver) or metarl.rllib.register_rllib_env(); to train one task on "
            "purpose, name it: env_config={'task': task.to_dict()}",
            UserWarning,
            stacklevel=1,  # called by RLlib's env runner: metarl's line says where it comes from
        )
    return env


def register_env_ids() -> list[str]:
    """Register every ``metarl/`` id with Ray Tune's registry, RLlib's env lookup.

    Each id is registered twice: ``"metarl/<Name>-v0"`` builds ``_make_by_id`` (a
    new task at every reset) and ``"metarl:metarl/<Name>-v0"`` builds
    ``_make_as_gymnasium`` (one task). The registration is repeated at every later
    ``ray.init`` of this process, since Ray's registry keeps a name only for the Ray
    session it was flushed to. Called on its own when ``ray.tune.registry`` is imported
    in a driver process that imported metarl (``metarl/__init__.py``; Ray's worker
    processes look the names up in what the driver registered). Returns the names.

    Relies on ``ray._private.worker._post_init_hooks``, a private part of Ray that the
    pinned Ray 2.60 has (``tests/test_rllib.py`` fails if it changes).
    """
    import ray._private.worker as ray_worker
    from ray.tune.registry import register_env

    names = []
    for env_id in task_env_ids():
        register_env(env_id, functools.partial(_make_by_id, env_id))
        register_env(f"metarl:{env_id}", functools.partial(_make_as_gymnasium, env_id))
        names += [env_id, f"metarl:{env_id}"]
    # Ray's own post-init hooks (Tune's registry flushes through them) are the one place
    # that runs at every ray.init; a name registered before a restart is lost otherwise.
    hooks = ray_worker._post_init_hooks
    if _reregister not in hooks:
        hooks.append(_reregister)
    return names


def _reregister() -> None:
    if not _in_ray_worker():
        register_env_ids()


def _in_ray_worker() -> bool:
    """Whether this process is one of Ray's workers (an env runner, a task), not a driver."""
    import ray

    return bool(ray._private.worker.global_worker.mode == ray.WORKER_MODE)


def _on_tune_registry_import(module: Any) -> None:
    """The post-import hook of ``ray.tune.registry`` (``metarl/__init__.py``).

    Registers the metarl ids (``register_env_ids``). A failure warns with the route that
    does not need it instead of raising, since raising would fail the import of Ray Tune.
    """
    try:
        if not _in_ray_worker():
            register_env_ids()
    except Exception as err:  # reported, never raised into Ray's import
        warnings.warn(
            f"metarl could not register its env ids with Ray Tune's registry ({err!r}): "
            "RLlib will not find config.environment('metarl/...'); use "
            "config.environment(metarl.rllib.register_rllib_env(), env_config={'env_id': ...})",
            RuntimeWarning,
            stacklevel=2,
        )


def _sub_envs(env_runner: Any) -> list[gym.Env[Any, Any]]:
    """The sub-environments of an env runner's vector env (RLlib's wrappers included)."""
    env = getattr(env_runner, "env", None)
    if env is None:
        return []
    vector = env.unwrapped
    return list(getattr(vector, "envs", [vector]))


def _foreach_sub_env(group: Any, fn: Callable[[gym.Env[Any, Any]], Any]) -> list[list[Any]]:
    """``fn`` on every sub-env of every healthy env runner of ``group`` (local one too)."""
    return list(
        group.foreach_env_runner(
            lambda runner: [fn(env) for env in _sub_envs(runner)], local_env_runner=True
        )
    )


def set_task_on_env_runners(group: Any, task: Task) -> int:
    """``set_task(task)`` on every sub-env of every env runner; the number of sub-envs set."""
    done = _foreach_sub_env(group, lambda env: env.get_wrapper_attr("set_task")(task))
    return sum(len(r) for r in done)


def set_physics_on_env_runners(group: Any, params: Mapping[str, PhysicsParam]) -> int:
    """Every sub-env of every env runner draws from ``params`` from its next reset on.

    Returns the number of sub-envs updated. Raises ``AttributeError`` (from the env
    runner) for envs not built with ``physics`` (no ``PhysicsRandomization``).
    """
    params = dict(params)
    done = _foreach_sub_env(group, lambda env: env.get_wrapper_attr("set_params")(params))
    return sum(len(r) for r in done)


def physics_on_env_runners(group: Any) -> list[list[dict[str, Any]]]:
    """Per env runner, per sub-env: the params it draws from (``PhysicsParam.to_dict``)."""
    return _foreach_sub_env(
        group,
        lambda env: {name: p.to_dict() for name, p in env.get_wrapper_attr("next_params").items()},
    )


def randomization_callbacks(schedule: ScheduleLike) -> dict[str, Callable[..., None]]:
    """``AlgorithmConfig.callbacks(**randomization_callbacks(schedule))``: see the module
    docstring. The callbacks run in the driver (the algorithm's process); the schedule
    object lives there.

    Raises:
        TypeError: an adaptive schedule (one with ``record``: automatic DR, DORAEMON).
            They learn from each episode's task and return, which RLlib's env runners
            do not send back here; train those with metarl's trainer (``agent: ppo``).
    """
    if hasattr(schedule, "record"):
        raise TypeError(
            f"randomization_callbacks: {type(schedule).__name__} is an adaptive schedule "
            "(it records each episode's task and return), which RLlib's env runners do "
            "not report back; train it with metarl's trainer (agent: ppo, "
            "randomization.schedule), or give RLlib a schedule without record"
        )

    def push(algorithm: Any) -> int:
        params = schedule.params()
        count = set_physics_on_env_runners(algorithm.env_runner_group, params)
        evaluation = getattr(algorithm, "eval_env_runner_group", None)
        if evaluation is not None:
            count += set_physics_on_env_runners(evaluation, params)
        return count

    def on_algorithm_init(*, algorithm: Any, **kwargs: Any) -> None:
        push(algorithm)

    def on_train_result(*, algorithm: Any, result: dict[str, Any], **kwargs: Any) -> None:
        iteration = int(result.get("training_iteration", algorithm.iteration))
        schedule.update(iteration, result)
        count = push(algorithm)
        result["metarl_randomization"] = {**schedule.describe(), "sub_envs_updated": count}

    def on_env_runners_recreated(*, algorithm: Any, **kwargs: Any) -> None:
        push(algorithm)

    return {
        "on_algorithm_init": on_algorithm_init,
        "on_train_result": on_train_result,
        "on_env_runners_recreated": on_env_runners_recreated,
    }
