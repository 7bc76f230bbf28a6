"""Task types and task distributions: JSON round trips, sampling, support checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from metarl.tasks import (
    AngleTask,
    ArcGoals,
    ChoiceTasks,
    DirectionTask,
    DiscGoals,
    GoalTask,
    PhysicsTask,
    Task,
    UniformBoxGoals,
    UniformTasks,
    VelocityTask,
)

TASKS = [
    VelocityTask(1.3),
    DirectionTask(-1),
    AngleTask(2.5),
    GoalTask((0.5, -1.0)),
    PhysicsTask(
        {"body_mass": (1.0, 2.0, 0.5), "gravity": 0.9, "inertia": ((1.0, 2.0), (3.0, 4.0))}
    ),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
def test_json_round_trip(task: Task) -> None:
    text = json.dumps(task.to_dict())
    back = Task.from_dict(json.loads(text))
    assert back == task and type(back) is type(task)
    assert type(task).from_dict(json.loads(text)) == task
    assert hash(back) == hash(task)


def test_tasks_are_frozen() -> None:
    task = VelocityTask(1.0)
    with pytest.raises(AttributeError):
        task.velocity = 2.0  # type: ignore[misc]


def test_from_dict_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="no 'kind'"):
        Task.from_dict({"velocity": 1.0})
    with pytest.raises(ValueError, match="unknown task kind 'speed'.*known kinds"):
        Task.from_dict({"kind": "speed", "velocity": 1.0})
    with pytest.raises(ValueError, match=r"no field\(s\) \['speed'\].*fields: \['velocity'\]"):
        Task.from_dict({"kind": "velocity", "velocity": 1.0, "speed": 2})
    with pytest.raises(ValueError, match=r"missing field\(s\) \['velocity'\]"):
        Task.from_dict({"kind": "velocity"})
    with pytest.raises(ValueError, match="is a VelocityTask, not a GoalTask"):
        GoalTask.from_dict({"kind": "velocity", "velocity": 1.0})
    with pytest.raises(ValueError, match="VelocityTask.velocity must be a finite number"):
        Task.from_dict({"kind": "velocity", "velocity": "fast"})
    with pytest.raises(ValueError, match="VelocityTask.velocity must be a finite number"):
        VelocityTask(math.nan)
    with pytest.raises(ValueError, match="DirectionTask.direction must be an integer"):
        DirectionTask(0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="GoalTask.goal must be a flat sequence"):
        GoalTask(((1.0, 2.0), (3.0, 4.0)))  # type: ignore[arg-type]


def test_normalisation_makes_equal_tasks_equal() -> None:
    assert GoalTask([0.5, np.float32(1.0)]) == GoalTask((0.5, 1.0))  # type: ignore[arg-type]
    assert DirectionTask(np.int64(1)) == DirectionTask(1)  # type: ignore[arg-type]
    assert PhysicsTask({"m": np.array([1.0, 2.0])}) == PhysicsTask({"m": [1.0, 2.0]})
    np.testing.assert_array_equal(PhysicsTask({"m": [1.0, 2.0]}).array("m"), [1.0, 2.0])
    with pytest.raises(KeyError, match="no parameter 'x'; it has \\['m'\\]"):
        PhysicsTask({"m": 1.0}).array("x")


DISTRIBUTIONS = [
    UniformTasks(VelocityTask, "velocity", 0.0, 3.0),
    ChoiceTasks(DirectionTask, "direction", [-1, 1]),
    UniformTasks(AngleTask, "angle", 0.0, 2 * math.pi),
    UniformBoxGoals(-1.0, 1.0),
    ArcGoals(1.0, 0.0, math.pi),
    DiscGoals(3.0),
]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: type(d).__name__)
def test_sampling_is_reproducible_and_inside_the_support(dist) -> None:
    a = dist.sample(np.random.default_rng(3), 50)
    b = dist.sample(np.random.default_rng(3), 50)
    assert a == b and len(a) == 50
    assert all(dist.contains(t) for t in a)
    sets = dist.task_sets(seed=7, n_train=10, n_test=4)
    assert sets == dist.task_sets(seed=7, n_train=10, n_test=4)
    # The train set does not depend on the size of the test set.
    assert dist.task_sets(seed=7, n_train=10, n_test=9).train == sets.train
    assert dist.task_sets(seed=8, n_train=10, n_test=4) != sets


def test_choice_task_sets_hold_every_value() -> None:
    dist = ChoiceTasks(DirectionTask, "direction", [-1, 1])
    sets = dist.task_sets(seed=0, n_train=2, n_test=2)
    assert sorted(t.direction for t in sets.train) == [-1, 1]  # type: ignore[attr-defined]
    assert sorted(t.direction for t in sets.test) == [-1, 1]  # type: ignore[attr-defined]


def test_disc_goals_are_uniform_over_the_area() -> None:
    goals = np.array([t.goal for t in DiscGoals(3.0).sample(np.random.default_rng(0), 20000)])
    r = np.linalg.norm(goals, axis=1)
    # Area-uniform: P(r <= 1.5) = (1.5 / 3)^2 = 0.25.
    assert abs(np.mean(r <= 1.5) - 0.25) < 0.015
    assert r.max() <= 3.0


def test_validation_messages_name_field_and_range() -> None:
    vel = UniformTasks(VelocityTask, "velocity", 0.0, 3.0)
    with pytest.raises(ValueError, match=r"VelocityTask.velocity = 3.5 is outside .*\[0, 3\]"):
        vel.validate(VelocityTask(3.5))
    with pytest.raises(ValueError, match="task must be a VelocityTask.*got GoalTask"):
        vel.validate(GoalTask((0.0, 0.0)))
    with pytest.raises(ValueError, match=r"DirectionTask.direction = 0 is not allowed.*\[-1, 1\]"):
        ChoiceTasks(DirectionTask, "direction", [-1, 1]).validate(DirectionTask(0))
    with pytest.raises(ValueError, match=r"GoalTask.goal\[1\] = 1.5 is outside .*\[-1, 1\]"):
        UniformBoxGoals(-1.0, 1.0).validate(GoalTask((0.0, 1.5)))
    with pytest.raises(ValueError, match="must have 2 coordinates, got 3"):
        UniformBoxGoals(-1.0, 1.0).validate(GoalTask((0.0, 0.5, 0.1)))
    with pytest.raises(ValueError, match="has norm 0.5; allowed: norm 1"):
        ArcGoals(1.0, 0.0, math.pi).validate(GoalTask((0.5, 0.0)))
    with pytest.raises(ValueError, match=r"has angle -1.5708; allowed angles: \[0, 3.14159\]"):
        ArcGoals(1.0, 0.0, math.pi).validate(GoalTask((0.0, -1.0)))
    with pytest.raises(ValueError, match="allowed: norm <= 3"):
        DiscGoals(3.0).validate(GoalTask((3.0, 1.0)))
    with pytest.raises(ValueError, match="n_train must be a non-negative integer"):
        vel.task_sets(seed=0, n_train=-1, n_test=2)


def test_features_flatten_numeric_fields() -> None:
    np.testing.assert_array_equal(VelocityTask(1.5).features(), [1.5])
    np.testing.assert_array_equal(DirectionTask(-1).features(), [-1.0])
    np.testing.assert_allclose(AngleTask(math.pi / 2).features(), [0.0, 1.0], atol=1e-7)
    np.testing.assert_array_equal(GoalTask((0.5, -1.0)).features(), [0.5, -1.0])
    physics = PhysicsTask({"b": ((1.0, 2.0), (3.0, 4.0)), "a": 0.5})
    np.testing.assert_array_equal(physics.features(), [0.5, 1.0, 2.0, 3.0, 4.0])
    assert physics.features().dtype == np.float32


def test_more_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="DirectionTask.direction must be an integer"):
        DirectionTask(math.inf)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="DirectionTask.direction must be an integer"):
        DirectionTask(math.nan)  # type: ignore[arg-type]
    dist = UniformTasks(VelocityTask, "velocity", 0.0, 3.0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got None"):
        dist.task_sets(seed=None, n_train=2, n_test=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got 1.5"):
        dist.task_sets(seed=1.5, n_train=2, n_test=2)  # type: ignore[arg-type]
