"""RealRobotEnv over a simulated robot: episodes, recorded commands and timing, a lost
link, a stalled policy, NaN actions and the e-stop latch."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.passive_env_checker import (
    check_action_space,
    check_observation_space,
    env_reset_passive_checker,
    env_step_passive_checker,
)

from metarl.sim2real.robot import INFO_KEYS, RealRobotEnv, RobotDisconnected, RobotReading
from metarl.sim2real.safety import KINDS, EStopLatched, SafetyConfig, StateLimit
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.targets import load_target_config

PENDULUM = {
    "env": "InvertedPendulum-v5",
    "physics": {
        "pole_mass": {
            "field": "body_mass",
            "elements": ["pole"],
            "op": "scale",
            "dist": {"kind": "fixed", "value": 1.5},
        }
    },
    "effects": [{"name": "observation_noise", "std": 0.001}],
}


def robot() -> SimulatedRobot:
    return SimulatedRobot(load_target_config(PENDULUM))


class FlakyRobot(SimulatedRobot):
    """Loses its link after ``fail_after`` commands, until reconnected."""

    def __init__(self, fail_after: int):
        super().__init__(load_target_config(PENDULUM))
        self.fail_after = fail_after

    def send_command(self, action: np.ndarray) -> None:
        if self.commands >= self.fail_after:
            self.connected = False
            self.fail_after = 10**9
        super().send_command(action)


def test_an_episode_runs_at_the_rate_and_records_what_was_sent() -> None:
    env = RealRobotEnv(robot(), hz=200, max_episode_steps=20)
    _, info = env.reset()
    assert set(info) == {"command", "state", *INFO_KEYS}
    steps = 0
    while True:
        _, reward, terminated, truncated, step_info = env.step(np.array([0.01]))
        assert set(step_info) >= set(info)
        steps += 1
        if terminated or truncated:
            break
    assert steps == 20 and truncated and not terminated and reward == 1.0
    assert step_info["command"].tolist() == pytest.approx([0.01])
    assert step_info["timing.period"] > 0 and "reward_survive" in step_info
    assert not [k for k in step_info if k.startswith("effects.")]  # a robot does not say them
    timing = env.timing()
    assert timing.steps == 20 and timing.hz == 200
    # (how close the periods come to 5 ms depends on the machine's load: the rate's
    # precision is tested with a controlled clock in test_rate.py)
    assert env.robot.commands == 21  # 20 steps and the safe action at the episode's end
    env.close()


def test_the_env_passes_gymnasiums_passive_checks_and_seeds_a_simulated_robot() -> None:
    # Not gymnasium's check_env: its determinism test compares whole infos, and the
    # timing in them is the wall clock's. The observations are compared here instead.
    actions = np.random.default_rng(0).uniform(-3, 3, size=(5, 1)).astype(np.float32)
    runs = []
    for _ in range(2):
        env = RealRobotEnv(robot(), hz=1000, max_episode_steps=5)
        check_action_space(env.action_space)
        check_observation_space(env.observation_space)
        observations = [env_reset_passive_checker(env, seed=3)[0]]
        observations += [env_step_passive_checker(env, a)[0] for a in actions]
        runs.append(np.stack(observations))
        env.close()
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0][0], runs[0][1])


def test_a_lost_link_ends_the_episode_flagged_and_reset_reconnects() -> None:
    flaky = FlakyRobot(fail_after=3)
    env = RealRobotEnv(flaky, hz=500, max_episode_steps=10)
    env.reset()
    results = [env.step(np.zeros(1)) for _ in range(4)]
    assert [r[4]["disconnected"] for r in results] == [0, 0, 0, 1]
    last_obs, reward, terminated, truncated, _ = results[-1]
    assert truncated and not terminated and reward == 0.0
    np.testing.assert_array_equal(last_obs, results[2][0])  # the last observation read
    env.reset()
    assert flaky.connected
    env.close()


def test_a_nan_action_is_replaced_by_the_safe_action_and_reported() -> None:
    env = RealRobotEnv(robot(), hz=500, safety=SafetyConfig(safe_action=[0.0]))
    env.reset()
    _, _, _, _, info = env.step(np.array([np.nan], dtype=np.float32))
    assert info["command"].tolist() == [0.0] and info["safety.interventions"] == 1
    assert info["safety.kinds"] == 1 << KINDS.index("non_finite")
    assert env.episode_interventions[0].kind == "non_finite"
    env.close()


def test_a_stalled_policy_triggers_the_watchdog() -> None:
    sim = robot()
    env = RealRobotEnv(sim, hz=100, safety=SafetyConfig(watchdog_s=0.05))
    env.reset()
    env.step(np.array([0.5]))
    before = sim.commands
    time.sleep(0.3)  # the policy stalls for 30 periods
    assert env.watchdog is not None and env.watchdog.fired >= 1
    assert sim.commands > before
    watchdog = [e for e in env.safety.interventions if e.kind == "watchdog"]
    assert watchdog and watchdog[0].sent == (0.0,)
    env.close()


def test_the_estop_ends_the_episode_and_blocks_reset_until_cleared() -> None:
    limit = StateLimit(dim=1, low=-0.05, high=0.05, response="estop")  # the pole's angle
    env = RealRobotEnv(robot(), hz=1000, safety=SafetyConfig(state_limits=[limit]))
    env.reset()
    truncated = terminated = False
    for _ in range(200):  # full push: the pole leaves the limits
        _, _, terminated, truncated, info = env.step(np.array([3.0]))
        if terminated or truncated:
            break
    assert env.safety.estopped and info["safety.estop"]
    with pytest.raises(EStopLatched, match="call env.clear_estop"):
        env.reset()
    env.clear_estop()
    env.reset()
    env.close()


def test_a_robot_without_rewards_needs_a_reward_fn() -> None:
    class Mute(SimulatedRobot):
        def read(self) -> RobotReading:
            reading = super().read()
            return RobotReading(reading.observation, info=reading.info)

    env = RealRobotEnv(Mute(load_target_config(PENDULUM)), hz=1000)
    env.reset()
    with pytest.raises(RuntimeError, match="pass reward_fn"):
        env.step(np.zeros(1))
    env.close()
    scored = RealRobotEnv(
        Mute(load_target_config(PENDULUM)), hz=1000, reward_fn=lambda o, a, n: -float(n[1] ** 2)
    )
    scored.reset()
    assert scored.step(np.zeros(1))[1] <= 0.0
    scored.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hz": 0}, "RateController.hz must be a finite positive number"),
        ({"hz": 100, "max_episode_steps": 0}, "max_episode_steps must be a positive integer"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RealRobotEnv(robot(), **kwargs)


def test_disconnected_is_a_connection_error() -> None:
    assert issubclass(RobotDisconnected, ConnectionError)


def test_a_session_logs_each_episode_once_and_its_data_keeps_every_intervention(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from metarl.sim2real.recording import Recorder, load_episodes, save_dataset

    caplog.set_level(logging.INFO, logger="metarl.sim2real.safety")
    env = Recorder(RealRobotEnv(robot(), hz=5000, safety=SafetyConfig(max_delta=0.5)))
    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(8):
            *_, terminated, truncated, _ = env.step(rng.uniform(-3, 3, 1).astype(np.float32))
            if terminated or truncated:
                break
    env.close()
    events = env.unwrapped.safety.interventions
    assert len(events) > 3  # many steps changed, yet:
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len({e.episode for e in events}) <= 3  # one line per episode
    for line in lines:
        episode = int(line.split()[2].rstrip(":"))
        n = sum(e.episode == episode for e in events)
        assert f"{n} intervention(s)" in line and f"max_delta {n}" in line
    save_dataset(env, "robot/logged-v0", tmp_path)
    recorded = load_episodes("robot/logged-v0", tmp_path, split_irregular=False)
    for episode, data in enumerate(recorded):  # the per-step record, in the dataset
        steps = sorted(e.step for e in events if e.episode == episode)
        assert np.flatnonzero(data.env_infos["safety.interventions"]).tolist() == steps
        assert np.all(data.env_infos["safety.kinds"][steps] == 1 << KINDS.index("max_delta"))
