"""metarl serve / record / deploy: a session over the bridge against a simulated robot
server, a deployment of an exported policy, and bad files named."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

from metarl.cli import main
from metarl.schema import ConfigError
from metarl.sim2real.recording import episode_contexts, load_episodes
from metarl.sim2real.robot_commands import run_deploy, run_record, run_serve

TARGET = {
    "env": "InvertedPendulum-v5",
    "physics": {
        "pole_mass": {
            "field": "body_mass",
            "elements": ["pole"],
            "op": "scale",
            "dist": {"kind": "fixed", "value": 1.5},
        }
    },
    "effects": [{"name": "action_delay", "steps": 2}],
}


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return 0 if info.value.code is None else int(info.value.code)


def test_record_over_the_bridge_measures_the_delay_and_keeps_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METARL_ROBOT_TOKEN", "t0ken")
    serve = write(tmp_path, "serve", {"serve": {"target": TARGET, "port": 0}})
    listening: list[Any] = []
    ready, stop = threading.Event(), threading.Event()

    def on_ready(server: Any) -> None:
        listening.append(server)
        ready.set()

    thread = threading.Thread(target=run_serve, args=(serve, on_ready, stop), daemon=True)
    thread.start()
    assert ready.wait(10)
    port = listening[0].address[1]
    robot = {"server": {"port": port}, "hz": 1000, "max_episode_steps": 30}
    record = {
        "record": {
            "robot": robot,
            "episodes": 3,
            "estimate_delay": True,
            "dataset": "pendulum/random-v0",
            "root": str(tmp_path / "runs"),
        }
    }
    assert cli(["record", str(write(tmp_path, "record", record))]) == 0
    stop.set()
    thread.join(5)
    (out,) = (tmp_path / "runs").iterdir()
    session = json.loads((out / "session.json").read_text())
    assert session["estimated_delay"]["steps"] == 2  # the server's hidden delay
    excitation = session["estimated_delay"]["episodes"]  # recorded too, first
    assert len(session["episodes"]) == excitation + 3 and session["timing"]["hz"] == 1000
    assert session["round_trip_s"]["p50"] > 0
    episodes = load_episodes("pendulum/random-v0", out / "dataset", split_irregular=False)
    assert [len(e) for e in episodes] == [e["steps"] for e in session["episodes"]]
    # Every episode is in the dataset, marked by its phase: the excitation's, then the 3.
    phases = ["delay_excitation"] * excitation + ["controller"] * 3
    assert [e["phase"] for e in session["episodes"]] == phases
    contexts = episode_contexts("pendulum/random-v0", out / "dataset")
    assert [c.phase for c in contexts] == phases
    report = (out / "report.md").read_text()
    assert "estimated action delay: 2 control steps" in report and "round trip" in report
    assert (
        f"episodes in the dataset: {excitation + 3} ({excitation} delay_excitation, 3 controller;"
        in report
    )


def test_deploy_runs_an_exported_policy_in_trials(tmp_path: Path) -> None:
    from metarl.agents.rl2 import RL2Agent
    from metarl.sim2real.export import export_policy

    env = gym.make("InvertedPendulum-v5")
    export_policy(RL2Agent(env.observation_space, env.action_space), tmp_path / "rl2.onnx")
    deploy = {
        "deploy": {
            "robot": {"simulated": TARGET, "hz": 2000, "max_episode_steps": 10},
            "policy": str(tmp_path / "rl2.onnx"),
            "trials": 2,
            "episodes_per_trial": 2,
            "dataset": "pendulum/rl2-v0",
            "root": str(tmp_path / "runs"),
        }
    }
    out = run_deploy(write(tmp_path, "deploy", deploy))
    session = json.loads((out / "session.json").read_text())
    returns = np.array(session["returns"])
    assert returns.shape == (2, 2) and np.all(returns > 0)
    assert len(load_episodes("pendulum/rl2-v0", out / "dataset")) == 4
    assert "return of episode k over 2 trials" in (out / "report.md").read_text()


def test_a_recording_is_the_data_of_metarl_sysid(tmp_path: Path) -> None:
    record = {
        "record": {
            "robot": {"simulated": TARGET, "hz": 5000, "max_episode_steps": 40},
            "episodes": 6,
            "dataset": "pendulum/excite-v0",
            "root": str(tmp_path / "runs"),
        }
    }
    session = run_record(write(tmp_path, "record", record))
    mass = {"field": "body_mass", "elements": ["pole"], "op": "scale"}
    sysid = {
        "sysid": {
            "name": "from_recording",
            "data": {"dataset": "pendulum/excite-v0", "root": str(session / "dataset")},
            "simulator": {
                "env": "InvertedPendulum-v5",
                "action_delay": 2,  # as a delay estimate would say
                "params": {
                    "pole_mass": {**mass, "dist": {"kind": "uniform", "low": 0.5, "high": 3.0}}
                },
            },
            "method": "trajectory_matching",
            "options": {"budget": 60},
            "root": str(tmp_path / "sysid"),
        }
    }
    assert cli(["sysid", str(write(tmp_path, "sysid", sysid))]) == 0
    (out,) = (tmp_path / "sysid").iterdir()
    fit = json.loads((out / "fit.json").read_text())
    assert fit["truth"] == {} and fit["recovery_error"] == {}  # a robot hides its truth
    assert abs(fit["estimates"]["pole_mass"] - 1.5) / 1.5 < 0.1  # the server's hidden 1.5
    assert "Recorded data: dataset `pendulum/excite-v0`" in (out / "report.md").read_text()
    sysid["sysid"]["data"]["dataset"] = "pendulum/none-v0"
    assert cli(["sysid", str(write(tmp_path, "sysid", sysid))]) == 2
    sysid["sysid"]["target"] = TARGET
    assert cli(["sysid", str(write(tmp_path, "sysid", sysid))]) == 2  # both: which one?


@pytest.mark.parametrize(
    ("section", "fields", "message"),
    [
        ("record", {"robot": {"hz": 50}}, "give exactly one of server"),
        ("record", {"robot": {"simulated": TARGET, "hz": 0}}, "record.robot.hz"),
        ("record", {"robot": {"server": {}, "hz": 50}}, "set the environment variable"),
        (
            "record",
            {"robot": {"simulated": TARGET, "hz": 50}, "controller": {"policy": "none.onnx"}},
            "record.controller.policy: no file none.onnx",
        ),
        ("record", {"robot": {"simulated": TARGET, "hz": 50}, "dataset": "no version"}, "dataset"),
        ("deploy", {"robot": {"simulated": TARGET, "hz": 50}}, "deploy.policy: Field required"),
        (
            "record",
            {"robot": {"simulated": TARGET, "hz": 50, "safety": {"max_delta": -1}}},
            "max_delta must be positive",
        ),
    ],
)
def test_bad_files_are_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    section: str,
    fields: dict[str, Any],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("METARL_ROBOT_TOKEN", raising=False)
    path = write(tmp_path, section, {section: {"root": str(tmp_path / "runs"), **fields}})
    assert cli([section, str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing started


def test_a_file_of_another_command_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a record file holds one section, record"):
        run_record(write(tmp_path, "x", {"deploy": {}}))


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[2] / "configs" / "robot").glob("*.yaml"))
)
def test_shipped_robot_files_validate(path: Path) -> None:
    from metarl.sim2real.robot_commands import load_robot_file

    (section,) = yaml.safe_load(path.read_text())
    load_robot_file(path, section)


def test_serve_on_a_port_in_use_names_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    monkeypatch.setenv("METARL_ROBOT_TOKEN", "t0ken")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        serve = write(tmp_path, "serve", {"serve": {"target": TARGET, "port": port}})
        assert cli(["serve", str(serve)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "set serve.port to a free port" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
