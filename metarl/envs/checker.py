"""``check_task_env``: the contract every metarl task environment must meet.

It runs Gymnasium's environment checker, then checks the task API: the same
seed and task give an identical rollout; different tasks give different
rewards or dynamics; ``get_task`` returns what ``set_task`` was given; tasks
survive a JSON round trip (and the round-tripped task gives the same rollout);
``set_task`` rejects a task of the wrong type; a success flag
(``info["success"]``), where the environment gives one, is 0 or 1 at every step;
and, where the environment edits physics, restoring the defaults gives back the
model bit for bit.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from metarl.envs.base import get_task, is_task_env, sample_tasks, set_task, task_distribution
from metarl.tasks import SUCCESS_KEY, Task


class TaskEnvCheckError(AssertionError):
    """A task environment breaks the task-environment contract."""


@dataclass(frozen=True)
class _Rollout:
    observations: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: tuple[tuple[str, np.ndarray], ...]


class _NotATask(Task):
    kind = "__checker_not_a_task__"


def _rollout(env: gym.Env[Any, Any], task: Task, seed: int, actions: np.ndarray) -> _Rollout:
    set_task(env, task)
    obs, _ = env.reset(seed=seed)
    observations, rewards, terms, truncs = [np.asarray(obs).copy()], [], [], []
    infos: list[tuple[str, np.ndarray]] = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        infos.extend(_numeric_items(info))
        observations.append(np.asarray(obs).copy())
        rewards.append(float(reward))
        terms.append(bool(terminated))
        truncs.append(bool(truncated))
        if terminated or truncated:
            break
    return _Rollout(
        np.stack(observations), np.array(rewards), np.array(terms), np.array(truncs), tuple(infos)
    )


def _numeric_items(info: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """The numeric entries of a step's info, in key order (reward terms, distances, ...)."""
    out = []
    for key in sorted(info):
        value = np.asarray(info[key])
        if value.dtype.kind in "biuf":
            out.append((key, value.copy()))
    return out


def _check_success_flag(rollout: _Rollout) -> None:
    """A success flag, if given, is in every step's info and is 0 or 1 (``SUCCESS_KEY``)."""
    flags = [v for k, v in rollout.infos if k == SUCCESS_KEY]
    if not flags:
        return
    if len(flags) != len(rollout.rewards):
        raise TaskEnvCheckError(
            f"info[{SUCCESS_KEY!r}] was given at {len(flags)} of {len(rollout.rewards)} steps; "
            "a success flag must be in every step's info, or in none"
        )
    bad = [v.tolist() for v in flags if v.shape != () or float(v) not in (0.0, 1.0)]
    if bad:
        raise TaskEnvCheckError(
            f"info[{SUCCESS_KEY!r}] must be 0 or 1 (or a bool) at every step, got {bad[:3]}"
        )


def _reward_key(key: str) -> bool:
    """Reward terms in info: ``reward_forward``, ``sparse_reward``, ``dense_reward``, ..."""
    return key.startswith("reward_") or key.endswith("_reward")


def _same_effect(a: _Rollout, b: _Rollout) -> bool:
    """Same observations, rewards, episode ends and reward terms (task echoes ignored)."""
    terms_a = [(k, v) for k, v in a.infos if _reward_key(k)]
    terms_b = [(k, v) for k, v in b.infos if _reward_key(k)]
    return _same(
        _Rollout(a.observations, a.rewards, a.terminations, a.truncations, tuple(terms_a)),
        _Rollout(b.observations, b.rewards, b.terminations, b.truncations, tuple(terms_b)),
    )


def _same(a: _Rollout, b: _Rollout) -> bool:
    return (
        a.observations.shape == b.observations.shape
        and np.array_equal(a.observations, b.observations)
        and np.array_equal(a.rewards, b.rewards)
        and np.array_equal(a.terminations, b.terminations)
        and np.array_equal(a.truncations, b.truncations)
        and len(a.infos) == len(b.infos)
        and all(
            ka == kb and np.array_equal(va, vb)
            for (ka, va), (kb, vb) in zip(a.infos, b.infos, strict=True)
        )
    )


def _model_arrays(model: Any) -> dict[str, np.ndarray]:
    out = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        value = getattr(model, name, None)
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
    opt = getattr(model, "opt", None)
    if opt is not None:
        for name in ("timestep", "gravity", "wind", "density", "viscosity", "magnetic"):
            out["opt." + name] = np.array(getattr(opt, name)).copy()
    return out


def _check_restore(env: gym.Env[Any, Any], tasks: list[Task], seed: int) -> None:
    restore = env.get_wrapper_attr("restore_defaults")
    model = env.unwrapped.model  # type: ignore[attr-defined]
    restore()
    pristine = _model_arrays(model)
    for task in tasks:
        set_task(env, task)
        env.reset(seed=seed)
    restore()
    after = _model_arrays(model)
    changed = [k for k in pristine if not np.array_equal(pristine[k], after[k])]
    if changed:
        raise TaskEnvCheckError(f"restore_defaults() did not restore model fields {changed}")


def check_task_env(
    env: gym.Env[Any, Any],
    *,
    seed: int = 0,
    n_steps: int = 20,
    skip_gymnasium_checker: bool = False,
) -> None:
    """Check that ``env`` (possibly wrapped by ``gymnasium.make``) is a sound task environment.

    Leaves the environment with one of its sampled tasks set.

    Raises:
        TaskEnvCheckError: with a message saying which property failed.
    """
    if not is_task_env(env):
        raise TaskEnvCheckError(f"{env} has no set_task: it is not a task environment")
    if not skip_gymnasium_checker:
        target = env.unwrapped if is_task_env(env.unwrapped) else env
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(target, skip_render_check=True)

    rng = np.random.default_rng(seed)
    dist = task_distribution(env)
    tasks = dist.sample_set(rng, 2)
    if len(tasks) < 2 or tasks[0] == tasks[1]:
        raise TaskEnvCheckError(f"could not draw two distinct tasks from {dist}")
    for task in tasks:
        if not dist.contains(task):
            raise TaskEnvCheckError(f"{dist} sampled {task}, which it does not contain")
    if any(not dist.contains(t) for t in sample_tasks(env, 3, np.random.default_rng(seed))):
        raise TaskEnvCheckError("sample_tasks returned a task outside the distribution")

    env.action_space.seed(seed)
    actions = np.stack([env.action_space.sample() for _ in range(n_steps)])

    first = _rollout(env, tasks[0], seed, actions)
    if get_task(env) != tasks[0]:
        raise TaskEnvCheckError(f"get_task() returned {get_task(env)} after set_task({tasks[0]})")
    again = _rollout(env, tasks[0], seed, actions)
    if not _same(first, again):
        raise TaskEnvCheckError("same seed, task and actions gave different rollouts")
    _check_success_flag(first)

    other = _rollout(env, tasks[1], seed, actions)
    # Only what the agent is paid or sees counts; info entries that merely echo the
    # task (a target velocity, a goal) do not show that the task has an effect.
    if _same_effect(first, other):
        raise TaskEnvCheckError(
            f"tasks {tasks[0]} and {tasks[1]} gave identical rollouts (observations, rewards "
            "and reward terms in info): the task has no effect"
        )

    for task in tasks:
        restored = Task.from_dict(json.loads(json.dumps(task.to_dict())))
        if restored != task or type(restored) is not type(task):
            raise TaskEnvCheckError(f"{task} did not survive a JSON round trip: got {restored}")
    roundtrip = _rollout(
        env, Task.from_dict(json.loads(json.dumps(tasks[0].to_dict()))), seed, actions
    )
    if not _same(first, roundtrip):
        raise TaskEnvCheckError("a task read back from JSON gave a different rollout")

    try:
        set_task(env, _NotATask())
    except ValueError:
        pass
    else:
        raise TaskEnvCheckError("set_task accepted a task of the wrong type")
    if get_task(env) != tasks[0]:
        raise TaskEnvCheckError("a rejected set_task changed the task")

    try:
        env.get_wrapper_attr("restore_defaults")
    except AttributeError:
        pass
    else:
        _check_restore(env, tasks, seed)
        set_task(env, tasks[0])
