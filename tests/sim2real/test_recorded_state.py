"""The state on the recording side: every Gymnasium MuJoCo robot's target records its
true ``[qpos, qvel, act]`` in float64 (the physics replays from it bit for bit, and
consecutive states are one), also where the observation clips the velocities; robots
report it in their readings, ``RealRobotEnv`` turns the readings into ``state`` /
``next_state``, and nothing on the way (the bridge, a Minari dataset, ``save_episodes``)
rounds it; a robot's bad state is named with its step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from metarl.agents.ppo import PPOAgent
from metarl.envs.mujoco_state import (
    NEXT_STATE_KEY,
    STATE_KEY,
    get_state,
    mujoco_model,
    set_state,
    state_size,
)
from metarl.episodes import Episode
from metarl.sim2real.bridge import RemoteRobot, RobotServer
from metarl.sim2real.recording import Recorder, load_episodes, save_dataset
from metarl.sim2real.robot import RealRobotEnv, RobotReading
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.sysid_command import save_episodes
from metarl.sim2real.targets import (
    Target,
    TargetConfig,
    TargetSampler,
    load_target_config,
    make_target_env,
)
from metarl.tasks import RealTask

ROBOTS = [
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "Reacher-v5",
    "Swimmer-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Humanoid-v5",
]
HOPPER = {
    "env": "Hopper-v5",
    "physics": {
        "torso_mass": {
            "field": "body_mass",
            "elements": ["torso"],
            "op": "scale",
            "dist": {"kind": "fixed", "value": 1.4},
        }
    },
}
# Motors four times the model's: the joints pass the observation's velocity clip of 10.
STRONG_HOPPER = {
    "env": "Hopper-v5",
    "physics": {
        "gear": {"field": "actuator_gear", "op": "scale", "dist": {"kind": "fixed", "value": 4.0}}
    },
}


def uniform(space: gym.spaces.Box, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(space.low, space.high).astype(space.dtype)


def bang_bang(space: gym.spaces.Box, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda obs: np.where(rng.random(space.shape) < 0.5, space.low, space.high)


def physics(env: Any) -> np.ndarray:
    """The state in the simulation's ``MjData`` now."""
    found = mujoco_model(env)
    assert found is not None
    return get_state(*found)


def assert_replays_bit_for_bit(
    config: TargetConfig, states: np.ndarray, next_states: np.ndarray, actions: np.ndarray
) -> None:
    """Consecutive states are one, and a fresh env of the same physics set to the first
    state and given the actions passes through every recorded state, exactly."""
    assert states.dtype == next_states.dtype == np.float64
    np.testing.assert_array_equal(states[1:], next_states[:-1])
    mirror = make_target_env(config)
    mirror.reset(seed=12345)  # another start: set_state must carry everything
    found = mujoco_model(mirror)
    assert found is not None
    assert states.shape == next_states.shape == (len(actions), state_size(found[0]))
    # As a reset starts (MjData's defaults, then the state): the solver's warmstart, which
    # is not part of the state, then starts as the recorded episode's did.
    mujoco.mj_resetData(*found)
    set_state(*found, states[0])
    for t, action in enumerate(actions):
        mirror.step(action)
        np.testing.assert_array_equal(get_state(*found), next_states[t], err_msg=f"step {t}")
    mirror.close()


def replay_episode(config: TargetConfig, episode: Episode, actions: str = "actions") -> None:
    infos = episode.env_infos
    acts = episode.actions if actions == "actions" else infos["command"]
    assert_replays_bit_for_bit(config, infos[STATE_KEY], infos[NEXT_STATE_KEY], acts)


@pytest.mark.parametrize("env_id", ROBOTS)
def test_every_robots_target_records_its_true_state(env_id: str) -> None:
    config = load_target_config({"env": env_id})
    target = Target(config)
    (episode,) = target.rollout(uniform(target.action_space), episodes=1, max_steps=5)
    assert len(episode) == 5
    np.testing.assert_array_equal(episode.env_infos[NEXT_STATE_KEY][-1], physics(target._env))
    replay_episode(config, episode)
    target.close()


def test_a_trial_on_hidden_physics_records_the_state_the_hidden_physics_gave() -> None:
    config = load_target_config(HOPPER)
    target = Target(config)
    agent = PPOAgent(target.observation_space, target.action_space)
    batch = TargetSampler(target, seed=1, max_steps=6).collect(agent.policy(), [RealTask()], 2)
    assert len(batch.episodes) == 2
    for episode in batch.episodes:
        replay_episode(config, episode)
    plain = load_target_config({"env": "Hopper-v5"})  # the nominal physics does not replay it
    with pytest.raises(AssertionError, match="step 0"):
        replay_episode(plain, batch.episodes[0])
    target.close()


@pytest.mark.parametrize(
    ("data", "controller"),
    [({"env": "Walker2d-v5"}, uniform), (STRONG_HOPPER, bang_bang)],
    ids=["Walker2d", "strong Hopper"],
)
def test_the_state_keeps_the_velocities_the_observation_clips(
    data: dict[str, Any], controller: Any
) -> None:
    config = load_target_config(data)
    target = Target(config)
    (episode,) = target.rollout(controller(target.action_space), episodes=1, max_steps=10)
    nq = target._env.unwrapped.model.nq  # type: ignore[attr-defined]
    velocities = episode.env_infos[NEXT_STATE_KEY][:, nq:]
    observed = episode.next_observations[:, nq - 1 :]  # [qpos[1:], clip(qvel, -10, 10)]
    fast = np.abs(velocities) > 10
    assert fast.sum() >= 2, np.abs(velocities).max()
    assert np.all(np.abs(observed[fast]) == 10)  # at the clip in the observation
    np.testing.assert_array_equal(observed[~fast], velocities[~fast].astype(np.float32))
    replay_episode(config, episode)  # and the state, not the observation, is the physics'
    target.close()


def test_a_target_that_is_not_mujoco_records_no_state() -> None:
    target = Target(load_target_config({"env": "metarl/PointRobot-v0"}))
    (episode,) = target.rollout(uniform(target.action_space), max_steps=3)
    assert len(episode) == 3 and STATE_KEY not in episode.env_infos
    env = RealRobotEnv(SimulatedRobot(target.config), hz=5000, max_episode_steps=3)
    _, info = env.reset(seed=0)
    step_info = env.step(np.zeros(2, np.float32))[4]
    assert STATE_KEY not in info and not {STATE_KEY, NEXT_STATE_KEY} & set(step_info)
    env.close()
    target.close()


def test_measured_states_are_consecutive_and_the_truth_stays_with_the_target() -> None:
    noise = {"name": "state_noise", "qpos_std": 0.001, "qvel_std": 0.01, "qvel_bias_std": 0.1}
    target = Target(load_target_config({**HOPPER, "effects": [noise]}))
    (episode,) = target.rollout(uniform(target.action_space), max_steps=5)
    infos, truth = episode.env_infos, target.effect_records[0]
    np.testing.assert_array_equal(infos[STATE_KEY][1:], infos[NEXT_STATE_KEY][:-1])
    assert not np.array_equal(infos[NEXT_STATE_KEY], truth["effects.state_noise.next_state"])
    assert_replays_bit_for_bit(
        load_target_config(HOPPER),
        truth["effects.state_noise.state"],
        truth["effects.state_noise.next_state"],
        episode.actions,
    )
    target.close()


# -- robots ---------------------------------------------------------------------------------


def test_a_simulated_robot_reads_its_state_as_a_robot_does() -> None:
    robot = SimulatedRobot(load_target_config(HOPPER))
    robot.connect()
    reading = robot.reset(seed=3)
    np.testing.assert_array_equal(reading.info[STATE_KEY], physics(robot._env))
    for action in np.random.default_rng(0).uniform(-1, 1, (3, 3)):
        robot.send_command(action)
        reading = robot.read()
        np.testing.assert_array_equal(reading.info[STATE_KEY], physics(robot._env))
        assert NEXT_STATE_KEY not in reading.info  # a reading is the state now
    robot.close()


def run_robot(env: gym.Env[Any, Any], steps: int, seed: int = 0) -> tuple[Any, list[Any]]:
    _, reset_info = env.reset(seed=seed)
    act = uniform(env.action_space, seed)  # type: ignore[arg-type]
    infos = [env.step(act(np.zeros(0)))[4] for _ in range(steps)]
    return reset_info, infos


def test_a_robots_readings_become_state_and_next_state(tmp_path: Path) -> None:
    config = load_target_config(HOPPER)
    robot = SimulatedRobot(config)
    env = Recorder(RealRobotEnv(robot, hz=5000))  # no episode end: no safe action after it
    reset_info, infos = run_robot(env, 6)
    states = np.array([i[STATE_KEY] for i in infos])
    next_states = np.array([i[NEXT_STATE_KEY] for i in infos])
    np.testing.assert_array_equal(states[0], reset_info[STATE_KEY])
    np.testing.assert_array_equal(next_states[-1], physics(robot._env))
    commands = np.array([i["command"] for i in infos])
    assert_replays_bit_for_bit(config, states, next_states, commands)
    # through a Minari dataset, and the sysid folder's .npz: float64, bit for bit
    save_dataset(env, "robot/state-v0", tmp_path)
    (episode,) = load_episodes("robot/state-v0", tmp_path)
    for key, live in ((STATE_KEY, states), (NEXT_STATE_KEY, next_states)):
        assert episode.env_infos[key].dtype == np.float64
        np.testing.assert_array_equal(episode.env_infos[key], live)
    save_episodes([episode], tmp_path / "real_episodes.npz")
    with np.load(tmp_path / "real_episodes.npz") as saved:
        for key, live in ((STATE_KEY, states), (NEXT_STATE_KEY, next_states)):
            assert saved[f"info.{key}_0"].dtype == np.float64
            np.testing.assert_array_equal(saved[f"info.{key}_0"], live)
    env.close()


def test_states_cross_the_bridge_and_a_dataset_bit_for_bit(tmp_path: Path) -> None:
    config = load_target_config({"env": "Walker2d-v5"})
    with RobotServer(SimulatedRobot(config), "t0ken", watchdog_s=5.0) as server:
        env = Recorder(RealRobotEnv(RemoteRobot(*server.address, token="t0ken"), hz=2000))
        _, infos = run_robot(env, 5)
        save_dataset(env, "robot/bridged-v0", tmp_path)
        env.close()
    (episode,) = load_episodes("robot/bridged-v0", tmp_path)
    live = np.array([i[NEXT_STATE_KEY] for i in infos])
    assert np.abs(live[:, 9:]).max() > 10  # velocities the observation would clip
    np.testing.assert_array_equal(episode.env_infos[NEXT_STATE_KEY], live)
    replay_episode(config, episode)  # actions as sent: info["command"]


class Faulty(SimulatedRobot):
    """Reports a bad state at step ``at``: ``short``, ``nan``, ``missing``, or the env's
    own ``next_state`` key."""

    def __init__(self, fault: str, at: int = 3):
        super().__init__(load_target_config(HOPPER))
        self.fault, self.at = fault, at

    def read(self) -> RobotReading:
        reading = super().read()
        if self.commands != self.at:
            return reading
        info = dict(reading.info)
        state = info.pop(STATE_KEY)
        if self.fault == "short":
            info[STATE_KEY] = state[:-1]
        elif self.fault == "nan":
            info[STATE_KEY] = np.where(np.arange(state.size) == 4, np.nan, state)
        elif self.fault == "next_state":
            info[STATE_KEY], info[NEXT_STATE_KEY] = state, state
        return RobotReading(reading.observation, reading.reward, False, False, info)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("short", r"reading of step 3 has a 'state' of shape \(11,\); the robot's state is a "),
        ("nan", r"reading of step 3 has a 'state' that is not finite at entries \[4\] \(\[nan\]"),
        ("missing", r"reading of step 3 has no 'state'; the robot's readings had one \(12 "),
        ("next_state", r"the robot's info reuses the env's keys \['next_state'\]"),
    ],
)
def test_a_robots_bad_state_is_named_with_its_step_and_left_safe(fault: str, message: str) -> None:
    robot = Faulty(fault)
    env = RealRobotEnv(robot, hz=5000)
    env.reset(seed=0)
    for _ in range(2):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=message):
        env.step(np.zeros(3, np.float32))
    assert robot.commands == 4  # the command, then the safe action
    env.close()


def test_a_state_appearing_or_vanishing_between_readings_is_named() -> None:
    class Late(SimulatedRobot):
        def reset(self, seed: int | None = None) -> RobotReading:
            reading = super().reset(seed)
            return RobotReading(reading.observation)

    env = RealRobotEnv(Late(load_target_config(HOPPER)), hz=5000)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="reading of step 1 has a 'state' and the reset reading"):
        env.step(np.zeros(3, np.float32))
    env.close()

    class Forgetful(SimulatedRobot):
        def reset(self, seed: int | None = None) -> RobotReading:
            reading = super().reset(seed)
            return reading if seed == 0 else RobotReading(reading.observation)

    env = RealRobotEnv(Forgetful(load_target_config(HOPPER)), hz=5000)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"the reset reading has no 'state'; the robot's read"):
        env.reset(seed=1)
    env.close()

    class Matrix(SimulatedRobot):
        def reset(self, seed: int | None = None) -> RobotReading:
            reading = super().reset(seed)
            return RobotReading(reading.observation, info={STATE_KEY: np.zeros((3, 4))})

    with pytest.raises(ValueError, match=r"the reset reading has a 'state' of shape \(3, 4\)"):
        RealRobotEnv(Matrix(load_target_config(HOPPER)), hz=5000).reset(seed=0)
