"""The robot side's remaining bad-input paths: each names what is wrong."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metarl.sim2real.bridge import RobotServer
from metarl.sim2real.rate import RateController
from metarl.sim2real.recording import Recorder, save_dataset
from metarl.sim2real.robot import RealRobotEnv, RobotReading
from metarl.sim2real.safety import SafetyConfig, Watchdog
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.targets import load_target_config

PENDULUM = {"env": "InvertedPendulum-v5"}


def robot() -> SimulatedRobot:
    return SimulatedRobot(load_target_config(PENDULUM))


def test_a_watchdog_not_above_the_control_period_is_named() -> None:
    with pytest.raises(ValueError, match=r"safety.watchdog_s \(0.01 s\) must exceed the control"):
        RealRobotEnv(robot(), hz=50, safety=SafetyConfig(watchdog_s=0.01))


class Odd(SimulatedRobot):
    """Reports what a robot must not: a short observation, or the env's own keys."""

    def __init__(self, mode: str):
        super().__init__(load_target_config(PENDULUM))
        self.mode = mode

    def read(self) -> RobotReading:
        reading = super().read()
        if self.mode == "short":
            return RobotReading(reading.observation[:2], reading.reward)
        return RobotReading(reading.observation, reading.reward, info={"command": np.zeros(1)})


@pytest.mark.parametrize(
    ("mode", "message"),
    [("short", "observation of 2 numbers"), ("clash", r"reuses the env's keys \['command'\]")],
)
def test_a_robot_breaking_its_contract_is_named_and_left_safe(mode: str, message: str) -> None:
    odd = Odd(mode)
    env = RealRobotEnv(odd, hz=1000)
    env.reset(seed=0)
    sent = odd.commands
    with pytest.raises(ValueError, match=message):
        env.step(np.array([0.5], np.float32))
    assert odd.commands == sent + 2  # the command, then the safe action
    env.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: RobotServer(robot(), "t", watchdog_s=0),
            "watchdog_s must be a finite positive number",
        ),
        (
            lambda: RobotServer(robot(), "t", frame_timeout_s=float("inf")),
            "frame_timeout_s must be a finite positive number",
        ),
        (lambda: Watchdog(0, lambda waited: None), "timeout_s must be a finite positive number"),
        (lambda: RateController(100, spin_s=-1), "spin_s must be a finite non-negative number"),
    ],
)
def test_bad_numbers_are_named(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_an_info_changing_shape_is_named_at_saving(tmp_path: Path) -> None:
    class Growing(SimulatedRobot):
        def read(self) -> RobotReading:
            reading = super().read()
            return RobotReading(
                reading.observation,
                reading.reward,
                info={**reading.info, "x": np.zeros(self.commands)},
            )

    env = Recorder(RealRobotEnv(Growing(load_target_config(PENDULUM)), hz=1000))
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    env.step(np.zeros(1, np.float32))
    with pytest.raises(ValueError, match=r"info 'x' has shape \(2,\) at step 2, \(1,\) before"):
        save_dataset(env, "robot/grow-v0", tmp_path)
    env.close()


@pytest.mark.parametrize(
    ("args", "message"), [(["--noise", "-1"], "--noise"), (["--seeds", "-1"], "--seeds")]
)
def test_sim2sim_arguments_are_named(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import sim2sim

    with pytest.raises(SystemExit):
        sim2sim.main(["fits", *args])
    assert message in capsys.readouterr().err
