"""benchmarks/excitation_lengths.py and excitation_recovery.py run on a tiny budget and
print their tables; bad arguments are named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import excitation_lengths
import excitation_recovery

ROOT = Path(__file__).resolve().parents[1]


def test_the_lengths_table_has_a_row_per_excitation(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--episodes", "2", "--max-steps", "20", "--envs", "Hopper-v5", "InvertedPendulum-v5"]
    assert excitation_lengths.main([*args, "--excitation", "random", "{kind: pd_hold}"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[-2].startswith("random ") and rows[-1].startswith("pd_hold noise_std=0.3")
    assert "Hopper-v5" in rows[-3] and len(rows[-1].split(")")) == 3  # a cell per env


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--excitation", "{kind: sine}"], "kind 'sine' is not an excitation"),
        (["--episodes", "0"], "--episodes and --max-steps must be positive"),
    ],
)
def test_bad_length_arguments_are_named(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        excitation_lengths.main(args)
    assert message in capsys.readouterr().err


def test_the_recovery_script_fits_per_excitation_and_seed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(ROOT / "configs" / "sysid" / "pendulum_dropo.yaml")
    args = [config, "--excitation", "multisine", "--seeds", "0", "1", "--budget", "4"]
    assert excitation_recovery.main([*args, "--effects", "[]"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("multisine: median error hinge_damping ")
    assert last.count("transitions") == 2
