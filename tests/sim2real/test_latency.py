"""Latency: the delay estimate finds a target's hidden action delay; round-trip
statistics; bad arguments named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from metarl.envs.effects import apply_effects
from metarl.sim2real.latency import estimate_delay, latency_stats
from metarl.sim2real.robot import RealRobotEnv
from metarl.sim2real.safety import SafetyConfig
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.targets import load_target_config, make_target_env


def target(env: str, delay: int, noise: float = 0.01) -> Any:
    effects = [
        {"name": "action_delay", "steps": delay},
        {"name": "observation_noise", "std": noise},
    ]
    return make_target_env(load_target_config({"env": env, "effects": effects}))


@pytest.mark.parametrize(
    ("env", "delay"),
    [
        ("InvertedPendulum-v5", 0),
        ("InvertedPendulum-v5", 3),
        ("Hopper-v5", 2),
        ("HalfCheetah-v5", 4),
    ],
)
def test_the_estimate_finds_the_hidden_delay(env: str, delay: int) -> None:
    estimate = estimate_delay(target(env, delay), transitions=400)
    assert estimate.steps == delay
    assert estimate.margin > 3  # a clear onset, not a coin toss
    assert estimate.effect_spec() == {"name": "action_delay", "steps": delay}
    # the spec configures the simulation's delay wrapper as is
    import gymnasium as gym

    apply_effects(gym.make(env), [estimate.effect_spec()]).close()


def test_the_estimate_runs_on_a_robot_env_whose_safety_limits_the_excitation() -> None:
    robot = SimulatedRobot(
        load_target_config(
            {"env": "InvertedPendulum-v5", "effects": [{"name": "action_delay", "steps": 2}]}
        )
    )
    # swings of 3.0 against a change limit of 1.0: what is sent is no longer white
    env = RealRobotEnv(robot, hz=2000, safety=SafetyConfig(max_delta=1.0))
    estimate = estimate_delay(env, transitions=300, max_lag=5)
    assert estimate.steps == 2 and estimate.transitions == 300 and estimate.episodes >= 1
    env.close()


def test_latency_stats() -> None:
    stats = latency_stats([0.001, 0.002, 0.003, 0.010])
    assert stats["count"] == 4 and stats["max"] == 0.010
    assert stats["p50"] == pytest.approx(0.0025) and stats["mean"] == pytest.approx(0.004)
    with pytest.raises(ValueError, match="no times"):
        latency_stats([])
    with pytest.raises(ValueError, match="finite and >= 0"):
        latency_stats([0.1, np.nan])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 1}, r"dim must be in \[0, 1\)"),
        ({"amplitude": 5.0}, r"amplitude must be in \(0, 3\]"),
        ({"amplitude": 0.0}, "amplitude must be in"),
        ({"max_lag": 0}, "max_lag must be a positive integer"),
        ({"transitions": 50}, r"transitions must be at least 120"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_delay(target("InvertedPendulum-v5", 0), **kwargs)


def test_a_system_that_does_not_respond_is_named() -> None:
    import gymnasium as gym

    class Deaf(gym.Env):  # type: ignore[type-arg]
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
            super().reset(seed=seed)
            return np.zeros(2, np.float32), {}

        def step(self, action):  # type: ignore[no-untyped-def]
            return self.np_random.normal(size=2).astype(np.float32), 0.0, False, False, {}

    with pytest.raises(ValueError, match="no lag up to 10 shows a response"):
        estimate_delay(Deaf(), transitions=400)
