"""benchmarks/sim2sim.py: bad arguments are named; the report reads the phases' files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sim2sim


@pytest.mark.parametrize(
    ("flag", "value"), [("--dropo-budget", "0"), ("--tm-budget", "0"), ("--trials", "0")]
)
def test_non_positive_counts_are_named(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        sim2sim.main(["fits", flag, value])
    assert info.value.code == 2
    assert f"{flag} must be a positive integer" in capsys.readouterr().err


def test_report_aggregates_the_seeds_and_computes_the_gap_closed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    returns = {  # seed -> nominal, uniform, learned, oracle
        0: (10.0, 20.0, 35.0, 50.0),
        1: (12.0, 30.0, 30.0, 40.0),
    }
    for seed, values in returns.items():
        for variant, ret in zip(("nominal", "uniform", "learned", "oracle"), values, strict=True):
            row = {"target": "hopper", "variant": variant, "seed": seed, "return_mean": ret}
            (tmp_path / f"transfer_hopper_{variant}_s{seed}.json").write_text(json.dumps(row))
    for seed, errors in ((0, (0.1, 0.3)), (1, (0.3, 0.5))):
        row = {
            "target": "hopper",
            "method": "DROPO",
            "trajectories": 2,
            "seed": seed,
            "transitions": 50 + seed * 10,
            "wall_time_s": 10.0 + seed * 4,
            "recovery_error": {"torso_mass": errors[0], "friction": errors[1]},
        }
        (tmp_path / f"fit_hopper_dropo_2_s{seed}.json").write_text(json.dumps(row))
    for seed in (0, 1):
        row = {
            "target": "hopper",
            "agent": "rl2",
            "seed": seed,
            "episodes": 2,
            "source": [1.0 + seed, 3.0 + seed],
            "target_returns": [0.0, 2.0 * seed],
        }
        (tmp_path / f"adapt_hopper_rl2_s{seed}.json").write_text(json.dumps(row))
    sim2sim.main(["report", "--out", str(tmp_path), "--plot-dir", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    # means over the seeds +- their sample std; the gap of the means (25 - 32.5 = ...),
    # and each seed's own: (35 - 20) / (50 - 20) = 0.50, (30 - 30) / (40 - 30) = 0.00
    assert (
        "| hopper | 0,1 | 11.0 ± 1.4 | 25.0 ± 7.1 | 32.5 ± 3.5 | 45.0 ± 7.1 | 0.38 "
        "| 0: 0.50, 1: 0.00 |" in out
    )
    assert (
        "| hopper | DROPO | 2 | 0,1 | 55 | torso_mass 0.200 ± 0.141, friction 0.400 ± 0.141 "
        "| 12 s |" in out
    )
    assert "| source test tasks | 1.5 ± 0.7 | 3.5 ± 0.7 |" in out
    assert "| target | 0.0 ± 0.0 | 1.0 ± 1.4 |" in out
    assert (tmp_path / "plots" / "sim2sim_recovery.png").stat().st_size > 0


def test_a_missing_fit_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="fit_hopper_dropo_10_s0.json is missing"):
        sim2sim.main(["transfer", "--out", str(tmp_path), "--targets", "hopper", "--seeds", "0"])


def test_the_targets_hide_what_the_fits_search() -> None:
    for name, (_env, truth, specs) in sim2sim.TARGETS.items():
        assert set(truth) == set(specs) == set(sim2sim.search_params(name))
        low, high = sim2sim.BOUNDS
        assert all(low < v < high for v in truth.values())  # the truth lies in the search box
