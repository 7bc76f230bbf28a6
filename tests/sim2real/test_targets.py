"""Targets: hidden physics and effects behind a robot's interface, recorded rollouts."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from metarl.sim2real.targets import Target, load_target_config
from metarl.tasks import RealTask

TORSO = {"field": "body_mass", "elements": ["torso"], "op": "scale"}


def hopper_target(seed: int = 0, **extra: Any) -> Target:
    data = {
        "env": "Hopper-v5",
        "physics": {"torso_mass": {**TORSO, "dist": {"kind": "fixed", "value": 1.4}}},
        "effects": [
            {"name": "action_delay", "steps": 1},
            {"name": "observation_noise", "std": 0.0, "bias_std": 0.05},
        ],
        "seed": seed,
        **extra,
    }
    return Target(load_target_config(data))


def zero(obs: np.ndarray) -> np.ndarray:
    return np.zeros(3, np.float32)


def test_a_target_hides_its_physics_and_effects_behind_rollouts() -> None:
    target = hopper_target()
    model = target._env.unwrapped.model  # type: ignore[attr-defined]  (the test may look)
    torso = model.body("torso").id
    default = gym.make("Hopper-v5").unwrapped.model.body_mass[torso]  # type: ignore[attr-defined]
    assert model.body_mass[torso] == pytest.approx(1.4 * default, rel=1e-12)
    episodes = target.rollout(zero, episodes=2, max_steps=30)
    assert [len(e) for e in episodes] == [30, 30]
    first = episodes[0]
    assert isinstance(first.task, RealTask) and first.task.system == "target:Hopper-v5"
    assert first.truncations[-1] and not first.truncations[:-1].any()
    assert not [k for k in first.env_infos if k.startswith("effects.")]  # a robot hides them
    records = target.effect_records  # ground truth, kept apart
    assert records[0]["effects.action_delay.steps"].tolist() == [1] * 30
    bias = records[0]["effects.observation_noise.bias"]
    assert np.all(bias == bias[0]) and not np.allclose(
        bias[0], records[1]["effects.observation_noise.bias"][0]
    )  # one bias per episode
    assert target.hidden_truth() == {"torso_mass": 1.4}
    assert target.dt == pytest.approx(0.008)


def test_the_same_seed_records_the_same_episodes() -> None:
    def record(seed: int) -> np.ndarray:
        rng = np.random.default_rng(0)
        target = hopper_target(seed)
        eps = target.rollout(lambda obs: rng.uniform(-1, 1, 3).astype(np.float32), 2, 20)
        return np.concatenate([e.observations for e in eps])

    np.testing.assert_array_equal(record(3), record(3))
    assert not np.array_equal(record(3), record(4))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"env": "Hopper-v5", "physcs": {}}, r"target.physcs: unknown key; allowed: env,"),
        (
            {
                "env": "Hopper-v5",
                "physics": {"m": {"field": "mass", "dist": {"kind": "fixed", "value": 1}}},
            },
            r"target.physics: m: .*mass",
        ),
        ({"env": "Hopper-v5", "effects": [{"name": "lag"}]}, r"target.effects: .*unknown effect"),
    ],
)
def test_bad_target_configs_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_target_config(data)


def test_what_the_env_refuses_is_named_at_construction() -> None:
    head = {**TORSO, "elements": ["head"], "dist": {"kind": "fixed", "value": 1.0}}
    with pytest.raises(ValueError, match=r"target.physics: .*head"):
        Target(load_target_config({"env": "Hopper-v5", "physics": {"m": head}}))
    bad_delay = {"env": "Hopper-v5", "effects": [{"name": "action_delay", "steps": -2}]}
    with pytest.raises(ValueError, match=r"target.effects\[0\] \(action_delay\)"):
        Target(load_target_config(bad_delay))


def test_rollout_checks_its_arguments_and_the_actions() -> None:
    target = hopper_target()
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        target.rollout(zero, episodes=0)
    with pytest.raises(ValueError, match=r"step 0 of episode 1: action \[nan, 0.0, 0.0\] is not"):
        target.rollout(lambda obs: np.array([np.nan, 0.0, 0.0], np.float32))
    with pytest.raises(ValueError, match=r"not a finite action of shape \(3,\)"):
        target.rollout(lambda obs: np.zeros(2, np.float32))


def test_sampler_and_rollout_arguments_are_checked() -> None:
    from metarl.sim2real.targets import TargetSampler
    from metarl.tasks import RealTask

    target = hopper_target()
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        target.rollout(zero, episodes=1, max_steps=0)
    sampler = TargetSampler(target)
    # The sampler contract: a call counter, and no workers besides this process.
    assert (sampler.calls, sampler.worker_info()) == (0, [])
    with pytest.raises(ValueError, match="collect needs at least one task"):
        sampler.collect(None, [], 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="episodes_per_trial must be a positive integer, got 0"):
        sampler.collect(None, [RealTask()], 0)  # type: ignore[arg-type]
    # The samplers' shared check: a bool is not a count.
    with pytest.raises(ValueError, match="episodes_per_trial must be a positive integer, got True"):
        sampler.collect(None, [RealTask()], True)  # type: ignore[arg-type]
    sampler.close()
