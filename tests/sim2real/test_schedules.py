"""Randomization schedules: what they draw from, and how updates move it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from metarl.envs import Fixed, LogUniform, PhysicsRandomization
from metarl.sim2real.schedules import FixedRandomization, LinearWidening


def test_linear_widening_moves_the_range_linearly_then_holds() -> None:
    schedule = LinearWidening(["body_mass", "geom_friction"], start=0.0, end=2.0, iterations=4)
    params = schedule.params()
    assert sorted(params) == ["body_mass", "geom_friction"]
    assert params["body_mass"].dist == Fixed(1.0) and params["body_mass"].independent
    widths = []
    for iteration in range(1, 7):
        changed = schedule.update(iteration, {})
        widths.append(schedule.describe()["width"])
        assert changed == (iteration <= 4)
    assert widths == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert schedule.params()["geom_friction"].dist == LogUniform.power(1.5, -2.0, 2.0)


def test_widening_params_drive_a_physics_wrapper() -> None:
    schedule = LinearWidening(["body_mass"], start=0.0, end=1.0, iterations=1)
    env = PhysicsRandomization(gym.make("Hopper-v5"), schedule.params())
    env.reset(seed=0)
    assert np.all(np.asarray(env.get_task().values["body_mass"]) == 1.0)  # type: ignore[attr-defined]
    schedule.update(1, {})
    env.set_params(schedule.params())
    draws = np.asarray(env.reset()[1]["physics"]["body_mass"])
    assert np.all((draws >= 1 / 1.5) & (draws <= 1.5)) and len(np.unique(draws)) > 1


def test_fixed_randomization_never_changes() -> None:
    params = LinearWidening(["body_mass"], 1.0, 1.0, 1).params()
    schedule = FixedRandomization(params)
    assert not schedule.update(1, {"return": 10.0})
    assert schedule.params() == params and schedule.describe() == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fields": []}, "fields must be a non-empty list"),
        ({"fields": "body_mass"}, "fields must be a non-empty list"),
        ({"fields": ["mass"]}, "unknown physics field 'mass'"),
        ({"start": -1.0}, "start must be a finite non-negative number"),
        ({"end": float("inf")}, "end must be a finite non-negative number, got inf"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"base": 1.0}, "base must be a finite number > 1"),
    ],
)
def test_linear_widening_names_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"fields": ["body_mass"], "start": 0.0, "end": 1.0, "iterations": 2}
    with pytest.raises(ValueError, match=match):
        LinearWidening(**{**args, **kwargs})  # type: ignore[arg-type]
