"""The ``metarl`` command line and the demo."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from metarl.cli import main
from metarl.tasks import Task


def test_tasks_prints_reproducible_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "metarl/PointRobot-v0", "--seed", "3", "--train", "4", "--test", "2"])
    assert exit_info.value.code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["split"] for x in lines] == ["train"] * 4 + ["test"] * 2
    tasks = [Task.from_dict(x["task"]) for x in lines]
    with pytest.raises(SystemExit):
        main(["tasks", "metarl/PointRobot-v0", "--seed", "3", "--train", "4", "--test", "2"])
    again = [Task.from_dict(json.loads(x)["task"]) for x in capsys.readouterr().out.splitlines()]
    assert tasks == again


def test_check_and_unknown_env(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "metarl/PointRobot-v0"])
    assert exit_info.value.code == 0
    assert "ok   metarl/PointRobot-v0" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown environment 'metarl/Nope-v0'; registered"):
        main(["check", "metarl/Nope-v0"])


def test_envs_lists_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["envs"])
    out = capsys.readouterr().out
    assert "metarl/HalfCheetahVel-v0" in out and "velocity: [0, 3]" in out


def test_demo_writes_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--tasks", "2"])
    out = capsys.readouterr().out
    assert "metarl/HopperParams-v0" in out
    assert (tmp_path / "returns.png").stat().st_size > 10_000
    with open(tmp_path / "returns.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2
    # The scripted controllers do what each task asks; a random policy does not.
    for row in rows:
        if row["env"] in ("metarl/PointRobot-v0", "metarl/HopperParams-v0"):
            assert float(row["scripted"]) > float(row["random"]) + 2.0, row
