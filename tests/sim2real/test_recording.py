"""Recording: every step kept (a killed server, a NaN action, an early stop), saved as a
Minari dataset and loaded back as the fits' real data."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from metarl.envs import PhysicsParam
from metarl.sim2real.bridge import RemoteRobot, RobotServer
from metarl.sim2real.recording import PARTIAL, Recorder, load_episodes, save_dataset
from metarl.sim2real.robot import RealRobotEnv, RobotReading
from metarl.sim2real.safety import SafetyConfig
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.sysid import Simulator, fit_trajectory_matching
from metarl.sim2real.targets import load_target_config

MASS = {"field": "body_mass", "elements": ["pole"], "op": "scale"}
TARGET = {
    "env": "InvertedPendulum-v5",
    "physics": {"pole_mass": {**MASS, "dist": {"kind": "fixed", "value": 1.6}}},
}


def test_a_killed_server_loses_no_recorded_step(tmp_path: Path) -> None:
    server = RobotServer(SimulatedRobot(load_target_config(TARGET)), "t").start()
    env = Recorder(
        RealRobotEnv(RemoteRobot(*server.address, token="t", connect_attempts=1), hz=500)
    )
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(3):  # a whole episode of 3 steps is not needed: cut after 3
        env.step(rng.uniform(-0.1, 0.1, 1).astype(np.float32))
    server.stop()
    env.step(np.zeros(1, np.float32))  # the link is gone: flagged
    assert env.steps == 4
    folder = save_dataset(env, "robot/killed-v0", tmp_path)
    assert (folder / "data").exists()
    (episode,) = load_episodes("robot/killed-v0", tmp_path, split_irregular=False)
    assert len(episode) == 4 and episode.truncations[-1]  # every step is in the dataset
    assert episode.env_infos["disconnected"].tolist() == [0, 0, 0, 1]
    assert np.all(episode.env_infos[PARTIAL] == 1)
    (real,) = load_episodes("robot/killed-v0", tmp_path)  # what the fits get
    assert len(real) == 3 and real.truncations[-1]  # the unanswered command is left out
    env.close()


def test_nan_actions_and_early_stops_are_recorded_as_they_happened(tmp_path: Path) -> None:
    robot = SimulatedRobot(load_target_config(TARGET))
    env = Recorder(RealRobotEnv(robot, hz=2000, safety=SafetyConfig(safe_action=[0.0])))
    env.reset(seed=1)
    env.step(np.array([np.nan], np.float32))
    env.step(np.array([0.2], np.float32))
    env.reset(seed=2)  # the caller restarts: the first episode is kept, marked
    env.step(np.array([0.1], np.float32))
    env.close()
    save_dataset(env, "robot/early-v0", tmp_path)
    first, second = load_episodes("robot/early-v0", tmp_path)
    assert len(first) == 2 and first.truncations.tolist() == [False, True]
    assert first.actions[:, 0].tolist() == pytest.approx([0.0, 0.2])  # as sent
    policy = load_episodes("robot/early-v0", tmp_path, actions="policy")[0]
    assert np.isnan(policy.actions[0, 0])  # as the policy gave it
    assert first.env_infos["safety.interventions"].tolist() == [1, 0]
    assert np.all(first.env_infos[PARTIAL] == 1) and np.all(second.env_infos[PARTIAL] == 1)


def test_a_recorded_dataset_is_the_real_data_of_a_fit(tmp_path: Path) -> None:
    env = Recorder(RealRobotEnv(SimulatedRobot(load_target_config(TARGET)), hz=5000))
    rng = np.random.default_rng(0)
    for episode in range(4):
        env.reset(seed=episode)
        for _ in range(40):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-3, 3, 1).astype(np.float32))
            if terminated or truncated:
                break
    save_dataset(env, "robot/excitation-v0", tmp_path)
    episodes = load_episodes("robot/excitation-v0", tmp_path)
    assert sum(len(e) for e in episodes) == env.steps
    search = PhysicsParam.from_dict({**MASS, "dist": {"kind": "uniform", "low": 0.5, "high": 3.0}})
    sim = Simulator("InvertedPendulum-v5", {"pole_mass": search})
    result = fit_trajectory_matching(sim, episodes, budget=60, seed=0)
    sim.close()
    assert result.recovery_error({"pole_mass": 1.6})["pole_mass"] < 0.1


def test_a_relative_root_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = Recorder(RealRobotEnv(SimulatedRobot(load_target_config(TARGET)), hz=5000))
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert save_dataset(env, "robot/rel-v0", "runs/data").is_dir()
    assert len(load_episodes("robot/rel-v0", "runs/data")) == 1
    env.close()


def test_saving_refuses_nothing_and_an_existing_dataset(tmp_path: Path) -> None:
    env = Recorder(RealRobotEnv(SimulatedRobot(load_target_config(TARGET)), hz=5000))
    with pytest.raises(ValueError, match="nothing recorded"):
        save_dataset(env, "robot/empty-v0", tmp_path)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    save_dataset(env, "robot/once-v0", tmp_path)
    with pytest.raises(ValueError, match="exists"):
        save_dataset(env, "robot/once-v0", tmp_path)
    with pytest.raises(ValueError, match="no dataset 'robot/none-v0'"):
        load_episodes("robot/none-v0", tmp_path)
    with pytest.raises(ValueError, match="actions must be 'sent' or 'policy'"):
        load_episodes("robot/once-v0", tmp_path, actions="given")
    env.close()


def test_a_step_that_raises_is_kept_and_flagged(tmp_path: Path) -> None:
    calls = {"n": 0}

    def reward_fn(obs: np.ndarray, command: np.ndarray, next_obs: np.ndarray) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ZeroDivisionError("a broken reward")
        return 0.0

    class Mute(SimulatedRobot):
        def read(self) -> RobotReading:
            return RobotReading(super().read().observation)

    env = Recorder(RealRobotEnv(Mute(load_target_config(TARGET)), hz=5000, reward_fn=reward_fn))
    env.reset(seed=0)
    env.step(np.array([0.1], np.float32))
    with pytest.raises(ZeroDivisionError):
        env.step(np.array([0.2], np.float32))
    assert env.steps == 2  # the failed step is kept
    save_dataset(env, "robot/raised-v0", tmp_path)
    (episode,) = load_episodes("robot/raised-v0", tmp_path, split_irregular=False, actions="policy")
    assert episode.actions[:, 0].tolist() == pytest.approx([0.1, 0.2])
    assert np.isnan(episode.rewards[1]) and episode.env_infos["recorder.error"][1] == 1
    assert len(load_episodes("robot/raised-v0", tmp_path, actions="policy")) == 1


def test_watchdog_transitions_are_left_out_of_the_fits_data(tmp_path: Path) -> None:
    env = Recorder(
        RealRobotEnv(
            SimulatedRobot(load_target_config(TARGET)),
            hz=100,
            safety=SafetyConfig(watchdog_s=0.03),
        )
    )
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    time.sleep(0.1)  # the watchdog moves the robot: the next transition is not regular
    for _ in range(3):
        env.step(np.zeros(1, np.float32))
    env.close()
    save_dataset(env, "robot/stall-v0", tmp_path)
    (whole,) = load_episodes("robot/stall-v0", tmp_path, split_irregular=False)
    assert whole.env_infos["safety.watchdog"][1] >= 1
    parts = load_episodes("robot/stall-v0", tmp_path)
    assert [len(p) for p in parts] == [1, 2]  # split around the irregular transition
