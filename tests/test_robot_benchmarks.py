"""benchmarks/robot_loop.py and robot_timing.py: bad arguments are named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import robot_loop
import robot_timing


def test_the_loop_names_the_missing_sim2sim_runs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"transfer_half_cheetah_uniform_s0.json is missing"):
        robot_loop.main(["--sim2sim", str(tmp_path), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize(("flag", "value"), [("--seconds", "0"), ("--delays", "-1")])
def test_timing_arguments_are_named(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        robot_timing.main([flag, value])
    assert flag in capsys.readouterr().err
