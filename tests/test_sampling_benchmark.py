"""Bad arguments to benchmarks/sampling_throughput.py are named before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sampling_throughput


@pytest.mark.parametrize("flag", ["--tasks", "--episodes", "--repeats", "--envs-per-worker"])
def test_non_positive_counts_are_named(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        sampling_throughput.main([flag, "0"])
    assert info.value.code == 2
    assert f"{flag} must be a positive integer, got 0" in capsys.readouterr().err
