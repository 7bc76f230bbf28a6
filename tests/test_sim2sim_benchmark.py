"""benchmarks/sim2sim.py: bad arguments are named; the report reads the phases' files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sim2sim


@pytest.mark.parametrize(("flag", "value"), [("--budget", "0"), ("--trials", "0")])
def test_non_positive_counts_are_named(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        sim2sim.main(["fits", flag, value])
    assert info.value.code == 2
    assert f"{flag} must be a positive integer" in capsys.readouterr().err


def test_report_computes_the_gap_closed_from_the_transfer_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for variant, ret in (("nominal", 10.0), ("uniform", 20.0), ("learned", 35.0), ("oracle", 50.0)):
        row = {"target": "hopper", "variant": variant, "return_mean": ret, "return_std": 1.0}
        (tmp_path / f"transfer_hopper_{variant}.json").write_text(json.dumps(row))
    sim2sim.main(["report", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| hopper | 10.0 ± 1.0 | 20.0 ± 1.0 | 35.0 ± 1.0 | 50.0 ± 1.0 | 0.50 |" in out


def test_the_targets_hide_what_the_fits_search() -> None:
    for name, (_env, truth, specs) in sim2sim.TARGETS.items():
        assert set(truth) == set(specs) == set(sim2sim.search_params(name))
        low, high = sim2sim.BOUNDS
        assert all(low < v < high for v in truth.values())  # the truth lies in the search box
