"""What a recording keeps about its environment: a spec to rebuild it, and each episode's
task and physics.

``portable_spec(env, observation_space, action_space)`` returns the ``EnvSpec`` of an
environment made by ``gymnasium.make`` (wrappers included) with every constructor
argument in plain JSON form (a ``Task`` or ``PhysicsParam`` as its ``to_dict``, a
``PhysicsSpace`` as its params' dicts), after checking that ``gymnasium.make`` builds
the environment again from that JSON, with the recorded spaces: this is the spec
Minari's ``recover_environment`` makes. There is none, and the reason is returned
instead, for an environment without a spec (a ``RealRobotEnv``: a robot is not a
Gymnasium registration) or one that cannot be rebuilt (a wrapper that does not record
its arguments, an argument without a plain form, such as a ``TaskDistribution``).

``EpisodeContext.of(env, phase)``, read after a reset: the part of the session the
episode belongs to (``phase``, the recorder's: e.g. a delay estimate's excitation),
the task of the outermost task layer
(``get_task``), the tasks of inner task layers that differ from it, and the physics in
force: for every ``PhysicsSpace`` in the stack (``PhysicsRandomization``, the
``*Params`` environments), the values of each param's entries in the model the
simulator runs (``env.unwrapped.model``), in MuJoCo's units, shaped
``(elements[, components])``. Physics drawn within an episode (``PhysicsRandomization``
with ``resample="steps"``) show in that step's info (``physics.<name>``), which a
recording keeps per step. ``to_metadata`` / ``from_metadata`` write and read the
context as a Minari episode's metadata (strings under ``metarl.*`` keys).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from metarl.envs import PhysicsParam, PhysicsSpace
from metarl.envs.base import TaskEnv, layers
from metarl.tasks import Task

__all__ = ["EpisodeContext", "portable_spec"]

PHASE = "metarl.phase"
TASK = "metarl.task"
INNER_TASKS = "metarl.inner_tasks"
PHYSICS = "metarl.physics"


def _plain(value: Any) -> Any:
    """``value`` with tasks, physics params and spaces, arrays and tuples in JSON form."""
    if isinstance(value, Task | PhysicsParam):
        return value.to_dict()
    if isinstance(value, PhysicsSpace):
        return {name: p.to_dict() for name, p in value.params.items()}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def portable_spec(
    env: gym.Env[Any, Any], observation_space: gym.Space[Any], action_space: gym.Space[Any]
) -> tuple[EnvSpec | None, str]:
    """``(spec, "")``, or ``(None, why)`` when ``env`` cannot be rebuilt (module docstring)."""
    spec = env.spec
    if spec is None:
        return None, f"{env} was not made by gymnasium.make (a robot has no environment spec)"
    spec = copy.deepcopy(spec)
    spec.kwargs = _plain(spec.kwargs)
    wrappers = []
    for wrapper in spec.additional_wrappers:
        if wrapper.kwargs is None:
            return None, (
                f"the wrapper {wrapper.name} does not record its arguments "
                "(gymnasium.utils.RecordConstructorArgs), so gymnasium.make cannot apply it"
            )
        wrappers.append(dataclasses.replace(wrapper, kwargs=_plain(wrapper.kwargs)))
    spec.additional_wrappers = tuple(wrappers)
    try:
        rebuilt = gym.make(EnvSpec.from_json(spec.to_json()))
    except Exception as err:  # whatever the env's constructor raises: no spec, and why
        return None, f"gymnasium.make cannot rebuild {spec.id} from its spec: {err}"
    try:
        same = (rebuilt.observation_space, rebuilt.action_space) == (
            observation_space,
            action_space,
        )
    finally:
        rebuilt.close()
    if not same:
        return None, f"{spec.id} rebuilt from its spec has other spaces than the recording"
    return spec, ""


@dataclass(frozen=True)
class EpisodeContext:
    """The phase, the task and the physics of one recorded episode (module docstring)."""

    phase: str = ""
    task: Task | None = None
    inner_tasks: tuple[Task, ...] = ()
    physics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Param name -> the model's values of its entries (nested lists of floats)."""

    @classmethod
    def of(cls, env: gym.Env[Any, Any], phase: str = "") -> EpisodeContext:
        """What ``env`` runs now: its tasks and the physics in its model."""
        tasks: list[Task] = []
        physics: dict[str, Any] = {}
        model = getattr(env.unwrapped, "model", None)
        for layer in layers(env):
            if not isinstance(layer, TaskEnv):
                continue
            try:
                task = layer.get_task()
            except RuntimeError:  # PhysicsRandomization before its first draw
                task = None
            if task is not None and task not in tasks:
                tasks.append(task)
            space = getattr(layer, "task_distribution", None)
            if isinstance(space, PhysicsSpace) and model is not None:
                bound = space if space.model is model else space.bind(model)
                for name, value in bound.model_values(model).items():
                    key = name if name not in physics else f"{type(layer).__name__}.{name}"
                    physics[key] = value.tolist()
        return cls(phase, tasks[0] if tasks else None, tuple(tasks[1:]), physics)

    def to_metadata(self) -> dict[str, str]:
        """The context as Minari episode metadata (strings; only the fields set)."""
        out = {}
        if self.phase:
            out[PHASE] = self.phase
        if self.task is not None:
            out[TASK] = json.dumps(self.task.to_dict())
        if self.inner_tasks:
            out[INNER_TASKS] = json.dumps([t.to_dict() for t in self.inner_tasks])
        if self.physics:
            out[PHYSICS] = json.dumps(dict(self.physics))
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> EpisodeContext:
        """The context ``to_metadata`` wrote (empty for an episode that has none)."""
        task = metadata.get(TASK)
        inner = metadata.get(INNER_TASKS)
        physics = metadata.get(PHYSICS)
        return cls(
            str(metadata.get(PHASE, "")),
            None if task is None else Task.from_dict(json.loads(task)),
            () if inner is None else tuple(Task.from_dict(t) for t in json.loads(inner)),
            {} if physics is None else json.loads(physics),
        )
