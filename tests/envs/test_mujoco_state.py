"""The recorded state of a MuJoCo system: ``RecordState`` puts the true ``[qpos, qvel,
act]`` (float64) in the infos of any Gymnasium MuJoCo env, and the ``state_noise``
effect turns it into measurements (one per time point, a bias per episode, the truth in
``info["effects"]``); both refuse what they cannot serve by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from metarl.envs.effects import apply_effects, check_effect_specs
from metarl.envs.mujoco_state import (
    NEXT_STATE_KEY,
    STATE_KEY,
    RecordState,
    get_state,
    mujoco_model,
    set_state,
    state_labels,
    state_size,
)
from metarl.envs.state_noise import StateNoise

# A hinge driven through a first-order filter actuator: a state with an ``act`` part.
FILTERED = """
<mujoco>
  <worldbody>
    <body name="arm"><joint name="hinge" type="hinge" axis="0 1 0" damping="0.1"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" mass="0.5"/></body>
  </worldbody>
  <actuator>
    <general name="motor" joint="hinge" dyntype="filter" dynprm="0.05" ctrlrange="-1 1"
      ctrllimited="true" gainprm="2"/>
  </actuator>
</mujoco>
"""


class FilteredArm(MujocoEnv):
    """A user's own MJCF robot as a minimal Gymnasium MuJoCo env."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 250}  # noqa: RUF012

    def __init__(self, model_path: str):
        obs = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        super().__init__(model_path, frame_skip=2, observation_space=obs)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.uniform(-0.1, 0.1, self.model.nq)
        self.set_state(qpos, self.init_qvel)
        return self._get_obs()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.do_simulation(action, self.frame_skip)
        return self._get_obs(), 0.0, False, False, {}


@pytest.fixture
def arm(tmp_path: Path) -> FilteredArm:
    path = tmp_path / "arm.xml"
    path.write_text(FILTERED)
    return FilteredArm(str(path))


def _physics(env: gym.Env[Any, Any]) -> np.ndarray:
    found = mujoco_model(env)
    assert found is not None
    return get_state(*found)


def _run(env: gym.Env[Any, Any], steps: int, seed: int = 0) -> tuple[dict[str, Any], list[Any]]:
    _, reset_info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    space = env.action_space
    infos = []
    for _ in range(steps):
        infos.append(env.step(rng.uniform(space.low, space.high).astype(space.dtype))[4])
    return reset_info, infos


def test_record_state_gives_the_true_state_before_and_after_each_step() -> None:
    env = RecordState(gym.make("Hopper-v5"))
    obs, info = env.reset(seed=2)
    assert info[STATE_KEY].dtype == np.float64 and info[STATE_KEY].shape == (12,)
    np.testing.assert_array_equal(info[STATE_KEY], _physics(env))
    np.testing.assert_array_equal(obs[:5], info[STATE_KEY][1:6])
    previous = info[STATE_KEY]
    for action in np.random.default_rng(0).uniform(-1, 1, (6, 3)):
        *_, step_info = env.step(action.astype(np.float32))
        np.testing.assert_array_equal(step_info[STATE_KEY], previous)  # one per time point
        np.testing.assert_array_equal(step_info[NEXT_STATE_KEY], _physics(env))
        assert step_info[NEXT_STATE_KEY].dtype == np.float64
        assert not np.array_equal(step_info[NEXT_STATE_KEY], previous)  # the system moved
        previous = step_info[NEXT_STATE_KEY]


def test_any_mujoco_env_records_its_act_part_too(arm: FilteredArm) -> None:
    """A user's MJCF model with an actuator that has its own dynamics: the state is
    [qpos, qvel, act] and replays exactly from a recorded state."""
    model = arm.unwrapped.model
    assert (model.nq, model.nv, model.na) == (1, 1, 1) and state_size(model) == 3
    assert state_labels(model) == ["qpos:hinge", "qvel:hinge", "act:motor"]
    env = RecordState(arm)
    _, infos = _run(env, 5)
    act = np.array([i[NEXT_STATE_KEY][2] for i in infos])
    assert np.all(act != 0)  # the filter's activation is in the state
    mirror = FilteredArm(arm.fullpath)
    mirror.reset(seed=9)
    set_state(mirror.model, mirror.data, infos[0][STATE_KEY])
    rng = np.random.default_rng(0)
    for info in infos:
        mirror.step(rng.uniform(-1, 1, 1).astype(np.float32))
        np.testing.assert_array_equal(get_state(mirror.model, mirror.data), info[NEXT_STATE_KEY])


def test_record_state_refuses_what_it_cannot_serve() -> None:
    with pytest.raises(ValueError, match="RecordState needs a Gymnasium MuJoCo environment"):
        RecordState(gym.make("CartPole-v1"))
    twice = RecordState(RecordState(gym.make("InvertedPendulum-v5")))
    with pytest.raises(ValueError, match=r"the env's info already has \['state'\]"):
        twice.reset(seed=0)


NOISE = {"qpos_std": 0.01, "qvel_std": 0.1, "qpos_bias_std": 0.05, "qvel_bias_std": 0.2}


def _noisy(**kwargs: Any) -> StateNoise:
    return StateNoise(RecordState(gym.make("Hopper-v5")), **kwargs)


def test_state_noise_is_one_measurement_per_time_point_with_a_bias_per_episode() -> None:
    env = _noisy(**NOISE)
    nq = env.unwrapped.model.nq  # type: ignore[attr-defined]
    plain = RecordState(gym.make("Hopper-v5"))
    episodes = [_run(env, 6, seed) for seed in (0, 1)]
    for seed, (reset_info, infos) in enumerate(episodes):
        records = [reset_info["effects"]["state_noise"]]
        records += [info["effects"]["state_noise"] for info in infos]
        bias = records[0]["bias"]
        assert np.all(bias != 0)
        truths = [records[0]["state"]] + [r["next_state"] for r in records[1:]]
        plain_reset, plain_infos = _run(plain, 6, seed)  # the effect leaves the physics alone
        np.testing.assert_array_equal(
            truths, [plain_reset[STATE_KEY]] + [i[NEXT_STATE_KEY] for i in plain_infos]
        )
        measured = [reset_info[STATE_KEY]] + [info[NEXT_STATE_KEY] for info in infos]
        for t, info in enumerate(infos):
            np.testing.assert_array_equal(records[t + 1]["bias"], bias)  # fixed per episode
            np.testing.assert_array_equal(info[STATE_KEY], measured[t])  # the same measurement
            np.testing.assert_array_equal(records[t + 1]["state"], truths[t])
        for m, truth in zip(measured, truths, strict=True):
            assert m.dtype == np.float64
            error = m - truth - bias
            assert 0 < np.abs(error[:nq]).max() < 0.05 and 0 < np.abs(error[nq:]).max() < 0.5
    first, second = (r["effects"]["state_noise"]["bias"] for r, _ in episodes)
    assert not np.allclose(first, second)  # drawn per episode
    again = _run(_noisy(**NOISE), 6, 1)  # seeded: the same draws
    np.testing.assert_array_equal(again[1][-1][NEXT_STATE_KEY], episodes[1][1][-1][NEXT_STATE_KEY])


def test_state_noise_sizes_are_per_part_and_leave_the_observation_alone() -> None:
    env = _noisy(qpos_std=[0.0] * 5 + [1.0], qvel_bias_std=0.0)
    plain = RecordState(gym.make("Hopper-v5"))
    (_, infos), (_, plain_infos) = _run(env, 3), _run(plain, 3)
    diff = infos[-1][NEXT_STATE_KEY] - plain_infos[-1][NEXT_STATE_KEY]
    assert np.all(diff[:5] == 0) and diff[5] != 0 and np.all(diff[6:] == 0)
    np.testing.assert_array_equal(env.reset(seed=0)[0], plain.reset(seed=0)[0])


def test_state_noise_refuses_bad_sizes_and_an_env_without_states() -> None:
    with pytest.raises(ValueError, match=r"StateNoise.qpos_std must be a number or a list of 6 "):
        _noisy(qpos_std=[0.1, 0.1])
    with pytest.raises(ValueError, match=r"\(one per qvel entry\)"):
        _noisy(qvel_bias_std=[0.1] * 5)
    with pytest.raises(ValueError, match="StateNoise.qvel_std must be finite and non-negative"):
        _noisy(qvel_std=-1.0)
    with pytest.raises(ValueError, match=r"effects\[0\] \(state_noise\): .*wrap the env in "):
        apply_effects(gym.make("Hopper-v5"), [{"name": "state_noise", "qpos_std": 0.1}])
    with pytest.raises(ValueError, match="StateNoise needs a MuJoCo environment"):
        StateNoise(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"unknown argument\(s\) 'std'; allowed: qpos_std, "):
        check_effect_specs([{"name": "state_noise", "std": 0.1}])
