"""Tasks and task distributions: the types every other part of metarl speaks.

A task is a frozen dataclass of a task's parameters (``VelocityTask(velocity=1.3)``)
that round-trips through JSON with ``to_dict`` / ``Task.from_dict``. A
``TaskDistribution`` samples tasks from an explicit ``numpy.random.Generator``,
states its support, validates tasks against it (``ValueError`` naming the field
and the allowed range), and gives reproducible train/test task sets from a seed.

This module is the bottom layer of the package with ``metarl.checks`` (the shared
checks, which it uses): ``metarl.envs`` and everything above import it.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from metarl.checks import check_int, check_number, is_real

__all__ = [
    "SUCCESS_KEY",
    "AngleTask",
    "ArcGoals",
    "ChoiceTasks",
    "DirectionTask",
    "DiscGoals",
    "GoalTask",
    "PhysicsTask",
    "RealTask",
    "Task",
    "TaskDistribution",
    "TaskSets",
    "UniformBoxGoals",
    "UniformTasks",
    "VelocityTask",
]


# --------------------------------------------------------------------------- tasks

SUCCESS_KEY = "success"
"""The step-info key of a task's success flag: ``info["success"]`` is 1.0 at a step where
the task is achieved (the goal reached), else 0.0, at every step of the environments that
define success (Meta-World's own key and values; the sparse point robot's goal radius).
An episode succeeds if the flag is 1.0 at any step. Environments without a success
criterion do not give the key."""


def _nested_floats(cls_name: str, name: str, value: Any) -> float | tuple[Any, ...]:
    """Return a float or nested tuple of floats from a number, list, tuple or array."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"{cls_name}.{name} must not be empty")
        return tuple(_nested_floats(cls_name, name, v) for v in value)
    return check_number(f"{cls_name}.{name}", value)


def _flatten(cls_name: str, name: str, value: Any, out: list[float]) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value):
            _flatten(cls_name, f"{name}[{key!r}]", value[key], out)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _flatten(cls_name, name, v, out)
    elif is_real(value):
        out.append(float(value))
    else:
        raise ValueError(f"{cls_name}.{name} = {value!r} is not numeric: no task features")


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Task:
    """Base class of all tasks: a frozen record of one task's parameters.

    Subclasses set the class variable ``kind`` (the tag stored by ``to_dict``) and
    normalise their fields in ``__post_init__`` so that a task built from JSON
    equals the task it was written from.
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Task]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            other = Task._kinds.get(cls.kind)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise TypeError(f"task kind {cls.kind!r} is already used by {other.__name__}")
            Task._kinds[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict: ``{"kind": ..., <field>: <value>, ...}``."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out

    def features(self) -> np.ndarray:
        """The task's parameters as a flat float32 vector (what an oracle policy observes).

        Default: every numeric field flattened in field order (mapping values in key
        order). Subclasses override where another encoding is better (an angle as
        its cosine and sine).

        Raises:
            ValueError: a field is not numeric (the message names it).
        """
        values: list[float] = []
        for f in dataclasses.fields(self):
            _flatten(type(self).__name__, f.name, getattr(self, f.name), values)
        return np.asarray(values, dtype=np.float32)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Build a task from ``to_dict``'s output.

        Called on ``Task`` it dispatches on ``data["kind"]``; called on a subclass
        it also checks that the kind is that subclass (or one of its subclasses).

        Raises:
            ValueError: missing or unknown ``kind``, a kind that is not ``cls``,
                unknown or missing fields, or field values of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a task dict must be a mapping, got {type(data).__name__}")
        if "kind" not in data:
            raise ValueError(f"task dict has no 'kind'; known kinds: {sorted(Task._kinds)}")
        kind = data["kind"]
        target = Task._kinds.get(kind)
        if target is None:
            raise ValueError(f"unknown task kind {kind!r}; known kinds: {sorted(Task._kinds)}")
        if not issubclass(target, cls):
            raise ValueError(f"task kind {kind!r} is a {target.__name__}, not a {cls.__name__}")
        names = [f.name for f in dataclasses.fields(target)]
        unknown = sorted(set(data) - set(names) - {"kind"})
        if unknown:
            raise ValueError(f"{target.__name__} has no field(s) {unknown}; its fields: {names}")
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"{target.__name__} dict is missing field(s) {missing}")
        return target(**{n: data[n] for n in names})


@dataclass(frozen=True)
class VelocityTask(Task):
    """Run at a target forward velocity (m/s)."""

    kind: ClassVar[str] = "velocity"
    velocity: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "velocity", check_number("VelocityTask.velocity", self.velocity))


@dataclass(frozen=True)
class DirectionTask(Task):
    """Run along +x (``direction=1``) or -x (``direction=-1``)."""

    kind: ClassVar[str] = "direction"
    direction: int

    def __post_init__(self) -> None:
        d = self.direction
        if not is_real(d):
            raise ValueError(f"DirectionTask.direction must be an integer, got {d!r}")
        if not math.isfinite(float(d)) or float(d) != int(d):
            raise ValueError(f"DirectionTask.direction must be an integer, got {d!r}")
        object.__setattr__(self, "direction", int(d))


@dataclass(frozen=True)
class AngleTask(Task):
    """Move in the horizontal direction ``(cos angle, sin angle)``; angle in radians."""

    kind: ClassVar[str] = "angle"
    angle: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "angle", check_number("AngleTask.angle", self.angle))

    def features(self) -> np.ndarray:
        """``(cos angle, sin angle)``: continuous across the 0 / 2 pi seam."""
        return self.unit_vector.astype(np.float32)

    @property
    def unit_vector(self) -> np.ndarray:
        """The direction as a unit vector ``(cos angle, sin angle)``."""
        return np.array([math.cos(self.angle), math.sin(self.angle)])


@dataclass(frozen=True)
class GoalTask(Task):
    """Reach a goal position (a tuple of coordinates)."""

    kind: ClassVar[str] = "goal"
    goal: tuple[float, ...]

    def __post_init__(self) -> None:
        goal = _nested_floats("GoalTask", "goal", self.goal)
        if not isinstance(goal, tuple) or any(isinstance(g, tuple) for g in goal):
            raise ValueError(f"GoalTask.goal must be a flat sequence of numbers, got {self.goal!r}")
        object.__setattr__(self, "goal", goal)

    @property
    def array(self) -> np.ndarray:
        """The goal as a float64 array."""
        return np.asarray(self.goal, dtype=np.float64)


@dataclass(frozen=True)
class RealTask(Task):
    """The task of an episode recorded on a real system (or a sim-to-sim target): its
    parameters are unknown; ``system`` names the system it was recorded on."""

    kind: ClassVar[str] = "real"
    system: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.system, str):
            raise ValueError(f"RealTask.system must be a string, got {self.system!r}")

    def features(self) -> np.ndarray:
        """No features: nothing about the system is known."""
        return np.zeros(0, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class PhysicsTask(Task):
    """Values of named physical parameters: a mapping name -> number or nested tuple.

    What each value means (a multiplier, an offset or an absolute value, and for
    which model elements) is defined by the ``PhysicsSpace`` that made the task.
    """

    kind: ClassVar[str] = "physics"
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.values, Mapping):
            raise ValueError(f"PhysicsTask.values must be a mapping, got {self.values!r}")
        norm = {}
        for name in sorted(self.values):
            if not isinstance(name, str):
                raise ValueError(f"PhysicsTask.values keys must be strings, got {name!r}")
            norm[name] = _nested_floats("PhysicsTask", f"values[{name!r}]", self.values[name])
        object.__setattr__(self, "values", norm)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhysicsTask) and self.values == other.values

    def __hash__(self) -> int:
        return hash(tuple(self.values.items()))

    def array(self, name: str) -> np.ndarray:
        """The value of parameter ``name`` as a float64 array.

        Raises:
            KeyError: ``name`` is not in the task, with the names it has.
        """
        if name not in self.values:
            raise KeyError(f"PhysicsTask has no parameter {name!r}; it has {list(self.values)}")
        return np.asarray(self.values[name], dtype=np.float64)


# --------------------------------------------------------------------------- distributions


class TaskSets(NamedTuple):
    """A reproducible pair of task lists: ``train`` for meta-training, ``test`` held out."""

    train: list[Task]
    test: list[Task]


class TaskDistribution(ABC):
    """A distribution over tasks of one type.

    Subclasses implement ``sample`` (draws from an explicit generator), ``support``
    (field -> human-readable allowed values) and ``_check`` (raise ``ValueError``
    when a task lies outside the support).
    """

    task_type: type[Task] = Task

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        """Return ``n`` tasks drawn independently with ``rng``."""

    @property
    @abstractmethod
    def support(self) -> dict[str, str]:
        """Allowed values of each task field, written for error messages and docs."""

    @abstractmethod
    def _check(self, task: Task) -> None:
        """Raise ``ValueError`` naming the field when ``task`` is outside the support."""

    def validate(self, task: Task) -> Task:
        """Return ``task`` if it belongs to this distribution.

        Raises:
            ValueError: ``task`` is not a ``task_type``, or a field is outside the
                support; the message names the field and the allowed values.
        """
        if not isinstance(task, self.task_type):
            raise ValueError(
                f"task must be a {self.task_type.__name__} (support: {self.support}), got {task!r}"
            )
        self._check(task)
        return task

    def contains(self, task: Task) -> bool:
        """Whether ``task`` is of the right type and inside the support."""
        try:
            self.validate(task)
        except ValueError:
            return False
        return True

    def sample_set(self, rng: np.random.Generator, n: int) -> list[Task]:
        """Return a set of ``n`` tasks for training or testing (default: ``sample``)."""
        return self.sample(rng, n)

    def task_sets(self, seed: int, n_train: int, n_test: int) -> TaskSets:
        """Reproducible train and test task sets from ``seed``.

        The two sets come from independent child streams of ``seed``, so the
        train set does not change when ``n_test`` does, and vice versa.
        """
        check_int("n_train", n_train, ge=0)
        check_int("n_test", n_test, ge=0)
        check_int("seed", seed, ge=0)
        train_ss, test_ss = np.random.SeedSequence(seed).spawn(2)
        return TaskSets(
            self.sample_set(np.random.default_rng(train_ss), n_train),
            self.sample_set(np.random.default_rng(test_ss), n_test),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.task_type.__name__}, {self.support})"


class UniformTasks(TaskDistribution):
    """Tasks with one scalar field drawn uniformly from ``[low, high]``.

    Example: ``UniformTasks(VelocityTask, "velocity", 0.0, 3.0)``.
    """

    def __init__(self, task_type: type[Task], field_name: str, low: float, high: float):
        if not low < high:
            raise ValueError(f"UniformTasks needs low < high, got low={low}, high={high}")
        self.task_type = task_type
        self.field_name = field_name
        self.low, self.high = float(low), float(high)

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        check_int("n", n, ge=0)
        values = rng.uniform(self.low, self.high, size=n)
        return [self.task_type(**{self.field_name: float(v)}) for v in values]

    @property
    def support(self) -> dict[str, str]:
        return {self.field_name: f"[{self.low:g}, {self.high:g}]"}

    def _check(self, task: Task) -> None:
        value = getattr(task, self.field_name)
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{self.task_type.__name__}.{self.field_name} = {value:g} is outside the "
                f"allowed range [{self.low:g}, {self.high:g}]"
            )


class ChoiceTasks(TaskDistribution):
    """Tasks with one field drawn uniformly from a finite set of values.

    ``sample`` draws with replacement; ``sample_set`` cycles through a random
    permutation of the values so that a set of ``len(values)`` tasks holds each once.
    """

    def __init__(self, task_type: type[Task], field_name: str, values: Sequence[Any]):
        if len(values) == 0:
            raise ValueError("ChoiceTasks needs at least one value")
        self.task_type = task_type
        self.field_name = field_name
        self.values = list(values)

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        check_int("n", n, ge=0)
        idx = rng.integers(len(self.values), size=n)
        return [self.task_type(**{self.field_name: self.values[i]}) for i in idx]

    def sample_set(self, rng: np.random.Generator, n: int) -> list[Task]:
        check_int("n", n, ge=0)
        order: list[int] = []
        while len(order) < n:
            order.extend(rng.permutation(len(self.values)).tolist())
        return [self.task_type(**{self.field_name: self.values[i]}) for i in order[:n]]

    @property
    def support(self) -> dict[str, str]:
        return {self.field_name: "one of " + str(self.values)}

    def _check(self, task: Task) -> None:
        value = getattr(task, self.field_name)
        if value not in self.values:
            raise ValueError(
                f"{self.task_type.__name__}.{self.field_name} = {value!r} is not allowed; "
                f"allowed values: {self.values}"
            )


class _GoalDistribution(TaskDistribution):
    """Shared checks of goal distributions: a flat goal of a fixed dimension."""

    task_type = GoalTask
    dim = 2

    def _check_dim(self, task: Task) -> tuple[tuple[float, ...], np.ndarray]:
        """Return the goal as a tuple and as an array, after checking its dimension."""
        assert isinstance(task, GoalTask)
        if len(task.goal) != self.dim:
            raise ValueError(
                f"GoalTask.goal must have {self.dim} coordinates, got {len(task.goal)}: {task.goal}"
            )
        return task.goal, task.array

    def _tasks(self, goals: np.ndarray) -> list[Task]:
        return [GoalTask(tuple(float(x) for x in g)) for g in goals]


class UniformBoxGoals(_GoalDistribution):
    """Goals drawn uniformly from the box ``[low, high]^dim``."""

    def __init__(self, low: float, high: float, dim: int = 2):
        if not low < high:
            raise ValueError(f"UniformBoxGoals needs low < high, got low={low}, high={high}")
        self.low, self.high, self.dim = float(low), float(high), int(dim)

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        check_int("n", n, ge=0)
        return self._tasks(rng.uniform(self.low, self.high, size=(n, self.dim)))

    @property
    def support(self) -> dict[str, str]:
        return {"goal": f"[{self.low:g}, {self.high:g}]^{self.dim}"}

    def _check(self, task: Task) -> None:
        _, g = self._check_dim(task)
        bad = [i for i, x in enumerate(g) if not self.low <= x <= self.high]
        if bad:
            raise ValueError(
                f"GoalTask.goal[{bad[0]}] = {g[bad[0]]:g} is outside the allowed range "
                f"[{self.low:g}, {self.high:g}]"
            )


class ArcGoals(_GoalDistribution):
    """Goals ``radius * (cos a, sin a)`` with the angle ``a ~ U[angle_low, angle_high]``."""

    def __init__(self, radius: float, angle_low: float, angle_high: float, atol: float = 1e-6):
        self.radius, self.angle_low, self.angle_high = float(radius), angle_low, angle_high
        self.atol = atol

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        check_int("n", n, ge=0)
        a = rng.uniform(self.angle_low, self.angle_high, size=n)
        return self._tasks(self.radius * np.stack([np.cos(a), np.sin(a)], axis=-1))

    @property
    def support(self) -> dict[str, str]:
        return {
            "goal": f"radius {self.radius:g} * (cos a, sin a), "
            f"a in [{self.angle_low:g}, {self.angle_high:g}]"
        }

    def _check(self, task: Task) -> None:
        goal, g = self._check_dim(task)
        r = float(np.hypot(g[0], g[1]))
        if abs(r - self.radius) > self.atol:
            raise ValueError(
                f"GoalTask.goal = {goal} has norm {r:g}; allowed: norm {self.radius:g}"
            )
        a = math.atan2(g[1], g[0])
        lo, hi = self.angle_low - self.atol, self.angle_high + self.atol
        if not (lo <= a <= hi or lo <= a + 2 * math.pi <= hi):
            raise ValueError(
                f"GoalTask.goal = {goal} has angle {a:g}; allowed angles: "
                f"[{self.angle_low:g}, {self.angle_high:g}]"
            )


class DiscGoals(_GoalDistribution):
    """Goals uniform over the area of a disc: angle ~ U[0, 2pi), radius = R sqrt(U[0, 1])."""

    def __init__(self, radius: float):
        self.radius = float(radius)

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        check_int("n", n, ge=0)
        a = rng.uniform(0.0, 2 * math.pi, size=n)
        r = self.radius * np.sqrt(rng.uniform(0.0, 1.0, size=n))
        return self._tasks(np.stack([r * np.cos(a), r * np.sin(a)], axis=-1))

    @property
    def support(self) -> dict[str, str]:
        return {"goal": f"disc of radius {self.radius:g} around the origin"}

    def _check(self, task: Task) -> None:
        goal, g = self._check_dim(task)
        r = float(np.hypot(g[0], g[1]))
        if r > self.radius + 1e-9:
            raise ValueError(
                f"GoalTask.goal = {goal} has norm {r:g}; allowed: norm <= {self.radius:g}"
            )
