"""Unmodeled effects: each wrapper does what it says, draws from its own seeded stream,
records itself in ``info``, and refuses bad arguments by name."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import get_task, sample_tasks, set_task
from metarl.envs.effects import (
    EFFECTS,
    ActionDelay,
    ActionNoise,
    ActuatorSaturation,
    Backlash,
    ObservationDelay,
    ObservationNoise,
    RandomPush,
    apply_effects,
    check_effect_specs,
)


class EchoEnv(gym.Env[np.ndarray, np.ndarray]):
    """Observation: the action the env applied last (2-D) and the step count."""

    observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        obs = np.array([*np.asarray(action, np.float64), self.t], np.float32)
        return obs, 0.0, False, False, {}


def actions(n: int) -> list[np.ndarray]:
    return [np.array([0.1 * (i + 1), -0.1 * (i + 1)], np.float32) for i in range(n)]


def applied(env: gym.Env[Any, Any], acts: list[np.ndarray]) -> np.ndarray:
    """The actions the inner env applied, step by step."""
    return np.array([env.step(a)[0][:2] for a in acts])


def test_a_delayed_action_shows_up_k_steps_later() -> None:
    env = ActionDelay(EchoEnv(), steps=2)
    env.reset(seed=0)
    acts = actions(5)
    out = applied(env, acts)
    np.testing.assert_allclose(out[:2], 0.0)  # the initial action (zeros) first
    np.testing.assert_allclose(out[2:], np.array(acts[:3]), rtol=1e-6)
    _, _, _, _, info = env.step(acts[0])
    assert info["effects"]["action_delay"]["steps"] == 2
    np.testing.assert_allclose(info["effects"]["action_delay"]["applied_action"], acts[3])


def test_random_delay_is_constant_within_an_episode_drawn_per_episode_and_seeded() -> None:
    env = ActionDelay(EchoEnv(), steps=[0, 3])

    def delays(seed: int, episodes: int) -> list[int]:
        out = []
        env.reset(seed=seed)
        for _ in range(episodes):
            acts = actions(6)
            got = applied(env, acts)
            k = env.delay
            np.testing.assert_allclose(got[k:], np.array(acts[: 6 - k]), rtol=1e-6)
            np.testing.assert_allclose(got[:k], 0.0)
            out.append(k)
            env.reset()
        return out

    first = delays(0, 12)
    assert delays(0, 12) == first  # same seed, same draws
    assert set(first) == {0, 1, 2, 3}  # both ends included
    assert delays(1, 12) != first


def test_a_delayed_observation_is_that_of_k_steps_before() -> None:
    env = ObservationDelay(EchoEnv(), steps=3)
    _, info = env.reset(seed=0)
    assert info["effects"]["observation_delay"]["steps"] == 3
    counts = [env.step(a)[0][2] for a in actions(6)]
    assert counts == [0, 0, 0, 1, 2, 3]  # the reset observation, then steps t - 3


def test_observation_bias_is_constant_within_an_episode_and_differs_between_episodes() -> None:
    env = ObservationNoise(EchoEnv(), std=0.0, bias_std=0.5)
    biases = []
    for episode in range(3):
        obs, info = env.reset(seed=7) if episode == 0 else env.reset()
        bias = info["effects"]["observation_noise"]["bias"]
        np.testing.assert_allclose(obs, bias, rtol=1e-6, atol=1e-7)  # true observation 0
        for a in actions(4):
            noisy, _, _, _, step_info = env.step(a)
            true = np.array([*a, env.unwrapped.t], np.float32)  # type: ignore[attr-defined]
            np.testing.assert_allclose(noisy - true, bias, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(step_info["effects"]["observation_noise"]["bias"], bias)
        biases.append(bias)
    assert not np.allclose(biases[0], biases[1]) and not np.allclose(biases[1], biases[2])


def test_observation_noise_varies_per_step_around_the_bias() -> None:
    env = ObservationNoise(EchoEnv(), std=[0.1, 0.2, 0.0], bias_std=0.0)
    env.reset(seed=0)
    errors = []
    for _ in range(2000):
        noisy, *_ = env.step(np.zeros(2, np.float32))
        errors.append(noisy - np.array([0, 0, env.unwrapped.t]))  # type: ignore[attr-defined]
    e = np.array(errors)
    np.testing.assert_allclose(e.std(0), [0.1, 0.2, 0.0], atol=0.01)
    np.testing.assert_allclose(e.mean(0), 0.0, atol=0.015)


def test_action_noise_adds_zero_mean_noise_without_clipping() -> None:
    env = ActionNoise(EchoEnv(), std=0.3)
    env.reset(seed=0)
    a = np.array([0.9, -0.9], np.float32)
    got = np.array([env.step(a)[0][:2] for _ in range(2000)])
    np.testing.assert_allclose(got.mean(0), a, atol=0.03)
    np.testing.assert_allclose(got.std(0), 0.3, atol=0.02)
    assert got.max() > 1.0  # not clipped by the wrapper: the env applies its own limits


def test_backlash_is_a_dead_band_the_output_follows_only_beyond() -> None:
    env = Backlash(EchoEnv(), width=0.4)
    env.reset(seed=0)
    commands = [0.1, 0.3, 0.5, 0.4, 0.2, 0.0, -0.3]
    # Play operator with half-width 0.2 from 0: stays until the command leaves the band.
    expected = [0.0, 0.1, 0.3, 0.3, 0.3, 0.2, -0.1]
    got = [env.step(np.array([c, 0.0], np.float32))[0][0] for c in commands]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    env.reset()
    assert env.step(np.array([0.1, 0.0], np.float32))[0][0] == 0.0  # restarts at 0


def test_saturation_limits_and_flags_each_dimension() -> None:
    env = ActuatorSaturation(EchoEnv(), limit=[0.5, 1.0])
    env.reset(seed=0)
    obs, _, _, _, info = env.step(np.array([0.8, -0.7], np.float32))
    np.testing.assert_allclose(obs[:2], [0.5, -0.7], rtol=1e-6)
    assert info["effects"]["saturation"]["saturated"].tolist() == [True, False]


def test_random_push_applies_a_force_on_the_body_for_its_duration() -> None:
    env = RandomPush(gym.make("Hopper-v5"), probability=1.0, force=40.0, duration=2, axes="x")
    env.reset(seed=0)
    data = env.unwrapped.data  # type: ignore[attr-defined]
    forces, held = [], []
    for _ in range(4):
        forces.append(env.step(np.zeros(3))[4]["effects"]["push"]["force"])
        held.append(data.xfrc_applied[1, :3].copy())  # body 1 is the torso
    for f in forces:
        assert abs(abs(f[0]) - 40.0) < 1e-9 and f[1] == f[2] == 0.0
    np.testing.assert_array_equal(forces[0], forces[1])  # one push held for 2 steps
    np.testing.assert_array_equal(held[0], forces[0])  # still on after its first step
    np.testing.assert_array_equal(held[1], 0.0)  # taken off after the second
    assert env.body == "torso"
    quiet = RandomPush(gym.make("Hopper-v5"), probability=0.0, force=40.0, body="foot")
    quiet.reset(seed=0)
    for _ in range(5):
        assert not np.any(quiet.step(np.zeros(3))[4]["effects"]["push"]["force"])


def test_seeded_effects_leave_the_envs_own_stream_alone() -> None:
    plain = gym.make("Hopper-v5")
    noisy = ObservationNoise(ActionDelay(gym.make("Hopper-v5"), steps=[1, 4]), bias_std=0.0)
    a, _ = plain.reset(seed=3)
    b, _ = noisy.reset(seed=3)
    np.testing.assert_array_equal(a, b)  # the same initial state: env.np_random untouched


def test_task_environments_stay_task_environments() -> None:
    env = apply_effects(
        gym.make("metarl/PointRobot-v0"),
        [{"name": "action_delay", "steps": 1}, {"name": "observation_noise", "bias_std": 0.1}],
    )
    task = sample_tasks(env, 1)[0]
    set_task(env, task)
    assert get_task(env) == task


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"steps": 1}], r"effects\[0\]: a mapping with a name"),
        ([{"name": "delay"}], r"effects\[0\].name: unknown effect 'delay'; known: action_delay"),
        (
            [{"name": "backlash", "width": 0.1, "gap": 1}],
            r"effects\[0\] \(backlash\): unknown argument\(s\) 'gap'; allowed: width, initial",
        ),
        ([{"name": "push", "force": 1.0}], r"missing argument\(s\) probability"),
    ],
)
def test_specs_are_checked_by_name(specs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_effect_specs(specs)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "action_delay", "steps": -1}, r"ActionDelay.steps must be an integer >= 0"),
        ({"name": "action_delay", "steps": [3, 1]}, r"\[low, high\] with 0 <= low <= high"),
        ({"name": "observation_noise", "std": [0.1, 0.1]}, r"a list of 3 numbers"),
        ({"name": "observation_noise", "bias_std": -1.0}, r"finite and non-negative"),
        ({"name": "saturation", "limit": 0.0}, r"ActuatorSaturation.limit must be finite and pos"),
        ({"name": "backlash", "width": "wide"}, r"Backlash.width must be a number"),
        ({"name": "action_delay", "steps": 1, "initial_action": [2, 0]}, r"must lie in"),
        ({"name": "push", "probability": 1.0, "force": 1.0}, r"needs a MuJoCo environment"),
    ],
)
def test_values_are_checked_with_the_spec_position(spec: dict[str, Any], message: str) -> None:
    ok = {"name": "action_noise", "std": 0.1}
    with pytest.raises(ValueError, match=r"effects\[1\] \(" + spec["name"] + r"\): .*" + message):
        apply_effects(EchoEnv(), [ok, spec])


def test_push_names_the_bodies_and_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"RandomPush.body must be one of \['torso', 'thigh'"):
        RandomPush(gym.make("Hopper-v5"), probability=0.5, force=1.0, body="head")
    with pytest.raises(ValueError, match="RandomPush.axes must be distinct letters"):
        RandomPush(gym.make("Hopper-v5"), probability=0.5, force=1.0, axes="xw")
    with pytest.raises(ValueError, match=r"RandomPush.probability must be in \[0, 1\]"):
        RandomPush(gym.make("Hopper-v5"), probability=1.5, force=1.0)


def test_every_effect_is_registered_by_its_name() -> None:
    assert set(EFFECTS) == {
        "action_delay",
        "observation_delay",
        "observation_noise",
        "action_noise",
        "backlash",
        "saturation",
        "push",
        "state_noise",
    }


def test_samplers_record_what_the_effects_did() -> None:
    """The effects' nested ``info["effects"]`` reaches the sampled episodes' env_infos
    as ``effects.<name>.<field>`` (as a target's recordings), through the vector env."""
    import functools

    from metarl.agents.ppo import PPOAgent
    from metarl.envs import task_distribution
    from metarl.sampling import LocalSampler

    env = gym.make("metarl/PointRobot-v0")
    tasks = task_distribution(env).task_sets(0, 2, 1).train
    agent = PPOAgent(env.observation_space, env.action_space)
    wrap = [functools.partial(ObservationNoise, std=0.0, bias_std=0.1)]
    with LocalSampler("metarl/PointRobot-v0", num_envs=2, seed=0, wrappers=wrap) as sampler:
        batch = sampler.collect(agent.policy(), tasks, 2)
    for episode in batch.episodes:
        bias = episode.env_infos["effects.observation_noise.bias"]
        assert bias.shape == (len(episode), 2) and np.all(bias == bias[0])
    first, second = batch.episodes[0], batch.episodes[1]  # two episodes of one trial
    assert not np.array_equal(
        first.env_infos["effects.observation_noise.bias"][0],
        second.env_infos["effects.observation_noise.bias"][0],
    )


def test_remaining_argument_errors_are_named() -> None:
    for initial in ([0.0, 0.0, 0.0], [0.0, float("nan")]):
        with pytest.raises(ValueError, match="Backlash.initial must be a finite number or a list"):
            Backlash(EchoEnv(), width=0.1, initial=initial)
    discrete = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match="ObservationNoise needs a 1-D Box observation"):
        ObservationNoise(gym.make("FrozenLake-v1"), std=0.1)
    with pytest.raises(ValueError, match="ActionNoise needs a 1-D Box action"):
        ActionNoise(discrete, std=0.1)
    with pytest.raises(ValueError, match="RandomPush.force must be a finite positive number"):
        RandomPush(gym.make("Hopper-v5"), probability=0.5, force=0.0)
    with pytest.raises(ValueError, match="RandomPush.duration must be a positive integer"):
        RandomPush(gym.make("Hopper-v5"), probability=0.5, force=1.0, duration=0)
    with pytest.raises(ValueError, match=r"ObservationDelay.steps must be an integer >= 0"):
        ObservationDelay(EchoEnv(), steps=1.5)  # type: ignore[arg-type]


def test_two_effects_of_one_kind_draw_from_different_streams() -> None:
    env = ObservationNoise(
        ObservationNoise(EchoEnv(), std=0.0, bias_std=1.0), std=0.0, bias_std=1.0
    )
    env.reset(seed=0)
    inner = env.env
    assert isinstance(inner, ObservationNoise)
    assert not np.allclose(env.bias, inner.bias)  # not the same draw twice
    single = ObservationNoise(EchoEnv(), std=0.0, bias_std=1.0)
    single.reset(seed=0)
    np.testing.assert_array_equal(single.bias, inner.bias)  # the inner keeps its stream
