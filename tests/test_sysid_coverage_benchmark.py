"""benchmarks/sysid_coverage.py: a tiny run end to end, resuming, Ctrl-C, the inert
parameters, the summary's figures and bad arguments."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sysid_coverage as cov

TINY = [
    "--robots",
    "InvertedPendulum-v5",
    "--draws",
    "1",
    "--conditions",
    "noise_free",
    "--episodes",
    "3",
    "--steps",
    "20",
    "--threads",
    "1",
]


def test_a_tiny_run_fits_records_summarizes_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, md = tmp_path / "fits.jsonl", tmp_path / "summary.md"
    argv = [*TINY, "--out", str(out), "--markdown", str(md)]
    assert cov.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert (row["robot"], row["condition"], row["draw"]) == ("InvertedPendulum-v5", "noise_free", 0)
    params = row["params"]
    assert set(params) == set(cov.ROBOTS["InvertedPendulum-v5"].params)
    for name, p in params.items():
        assert set(p) >= {"kind", "truth", "estimate", "se", "interval", "covered", "inert"}
        assert 0.5 <= p["truth"] <= 2.0
        if p["inert"]:
            assert p["not_identified"], name  # friction of geoms that touch nothing
        else:  # noise-free data of the exact simulator: the truth, inside its interval
            assert p["relative_error"] < 1e-3, name
            assert p["covered"] and not p["not_identified"], name
    assert row["inert_effect"] == {"friction": 0.0}
    assert row["transitions"] > 0 and row["wall_time_s"] > 0
    printed = capsys.readouterr().out
    assert "| noise_free | InvertedPendulum-v5 | mass | 1 | 0.00% | 0.00% | 1.00 |" in printed
    assert "- **noise_free** (all goals met)" in printed
    assert "inert flagged 1/1" in printed
    assert md.read_text() in printed

    # The same command again: nothing to run, the same row summarized.
    assert cov.main(argv) == 0
    assert "1 of 1 fits already in" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 1


def test_other_settings_are_fits_of_their_own(tmp_path: Path) -> None:
    out = tmp_path / "fits.jsonl"
    row: dict[str, Any] = {"params": {}, "inert_effect": {}}
    args = cov.parse_args([*TINY, "--out", str(out)])
    noisy = cov.parse_args([*TINY, "--out", str(out), "--conditions", "noise"])
    louder = cov.parse_args([*TINY, "--out", str(out), "--conditions", "noise", "--qvel-std", "1"])
    cov.append_row(out, {**cov.row_key("InvertedPendulum-v5", "noise_free", 0, args), **row})
    cov.append_row(out, {**cov.row_key("InvertedPendulum-v5", "noise", 0, noisy), **row})
    keys = {cov._key(r) for r in cov.read_rows(out)}
    assert cov._key(cov.row_key("InvertedPendulum-v5", "noise", 0, noisy)) in keys
    assert cov._key(cov.row_key("InvertedPendulum-v5", "noise", 0, louder)) not in keys
    # the noise options do not touch the noise-free fits
    assert cov._key(cov.row_key("InvertedPendulum-v5", "noise_free", 0, louder)) in keys


def test_ctrl_c_keeps_the_finished_fits_and_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fits.jsonl"
    calls: list[tuple[str, str, int]] = []

    def fake_fit(robot: str, condition: str, draw: int, args: Any) -> dict[str, Any]:
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append((robot, condition, draw))
        return {**cov.row_key(robot, condition, draw, args), **_row_body(0.01, True)}

    monkeypatch.setattr(cov, "run_fit", fake_fit)
    argv = [*TINY, "--draws", "3", "--out", str(out)]
    assert cov.main(argv) == 130
    printed = capsys.readouterr().out
    assert "interrupted: 1 fits of this run saved" in printed
    assert "run the same command again to continue" in printed
    assert [json.loads(line)["draw"] for line in out.read_text().splitlines()] == [0]

    calls.append(("a", "b", -1))  # past the interruption: every call succeeds
    assert cov.main(argv) == 0
    assert "1 of 3 fits already in" in capsys.readouterr().out
    assert [json.loads(line)["draw"] for line in out.read_text().splitlines()] == [0, 1, 2]


def test_a_failed_fit_is_named_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fits.jsonl"

    def failing(robot: str, condition: str, draw: int, args: Any) -> dict[str, Any]:
        raise ValueError("states of the wrong size")

    monkeypatch.setattr(cov, "run_fit", failing)
    assert cov.main([*TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "InvertedPendulum-v5 noise_free draw 0: FAILED: ValueError: states of" in printed
    assert "- 0 fits, 1 failed" in printed
    monkeypatch.setattr(
        cov, "run_fit", lambda r, c, d, a: {**cov.row_key(r, c, d, a), **_row_body(0.0, True)}
    )
    assert cov.main([*TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 of 1 fits already in" in printed
    assert "- 1 fits\n" in printed and "Failed fits" not in printed


def test_a_cut_short_line_is_named_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fits.jsonl"
    out.write_text('{"robot": "Hop')  # a write cut short
    cov.append_row(out, {"robot": "x"})
    assert cov.read_rows(out) == [{"robot": "x"}]
    assert f"{out}:1: not a complete JSON row" in capsys.readouterr().out
    assert out.read_text().splitlines() == ['{"robot": "Hop', '{"robot": "x"}']


def _row_body(error: float, covered: bool, flagged: bool = False) -> dict[str, Any]:
    param = {"truth": 1.0, "estimate": 1.0 + error, "se": 0.01, "interval": [0.9, 1.1]}
    return {
        "params": {
            "m": {
                **param,
                "kind": "mass",
                "inert": False,
                "relative_error": error,
                "covered": covered,
                "not_identified": flagged,
            },
            "f": {
                **param,
                "kind": "friction",
                "inert": True,
                "relative_error": 0.7,
                "covered": True,
                "not_identified": True,
            },
        },
        "inert_effect": {"f": 0.0},
        "wall_time_s": 2.0,
        "transitions": 100,
    }


def test_the_summary_gives_quantiles_coverage_flags_and_goals() -> None:
    rows = []
    for draw, error in enumerate(np.linspace(0.0, 0.09, 10)):  # 0, 0.01, ..., 0.09
        body = _row_body(float(error), covered=draw < 8, flagged=draw == 9)
        body["wall_time_s"] = float(draw)
        rows.append({"robot": "Hopper-v5", "condition": "noise", "draw": draw, **body})
    table = "\n".join(cov.summary_table(rows))
    # median of 0..0.09 = 0.045, p90 = 0.081; 8 of 10 truths covered; the inert
    # parameter flagged in every fit, the mass in one; median z = 0.045 / 0.01; median
    # wall time 4.5 s
    assert (
        "| noise | Hopper-v5 | mass | 10 | 4.50% | 8.10% | 0.80 | 4.50 | - | 1/10 | 4.5 s |"
        in table
    )
    assert "| noise | Hopper-v5 | friction | 10 | - | - | - | - | 10/10 | - | 4.5 s |" in table
    goals = "\n".join(cov.goal_lines(rows))
    assert "- **noise** (goals not met): mass median 4.50% (goal <= 5%)" in goals
    assert "coverage 0.80 (goal >= 0.9, NOT MET)" in goals
    assert "inert flagged 10/10 (goal all)" in goals
    assert "identifiable flagged 1/10" in goals


@pytest.mark.parametrize("robot", list(cov.ROBOTS))
def test_the_inert_parameter_never_changes_a_prediction(robot: str) -> None:
    """On recorded data that touch the floor (legged robots), the inert parameter
    leaves every prediction as it is, while the sliding friction changes them: the
    benchmark's 'cannot be determined' parameters really cannot be."""
    args = cov.parse_args(["--episodes", "2", "--steps", "30"])
    truth = cov.draw_truth(robot, 0, 0)
    episodes = cov.record(robot, truth, "noise_free", 0, args)
    sim = cov.Simulator(robot, cov.search_params(robot), cov.ROBOTS[robot].env_kwargs, threads=1)
    try:
        params = cov.ROBOTS[robot].params
        inert = [n for n, p in params.items() if p.inert]
        assert len(inert) == 1
        assert cov.inert_effect(sim, episodes, inert[0]) == 0.0
        friction = [n for n, p in params.items() if p.kind == "friction" and not p.inert]
        for name in friction:  # the data exercise the contacts
            assert cov.inert_effect(sim, episodes, name) > 1e-6
    finally:
        sim.close()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--draws", "0", "must be a positive integer, got 0"),
        ("--steps", "x", "'x' is not an integer"),
        ("--qvel-std", "-1", "must be a finite number >= 0, got -1"),
        ("--robots", "Reacher-v5", "invalid choice: 'Reacher-v5'"),
        ("--excitation", "policy", "invalid choice: 'policy'"),
    ],
)
def test_bad_arguments_are_named(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cov.parse_args([flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err


def test_every_robot_has_each_kind_and_one_inert_parameter() -> None:
    for robot, spec in cov.ROBOTS.items():
        kinds = {p.kind for p in spec.params.values() if not p.inert}
        contact = robot not in ("InvertedPendulum-v5", "InvertedDoublePendulum-v5")
        assert kinds == set(cov.KINDS) - (set() if contact else {"friction"}), robot
        assert sum(p.inert for p in spec.params.values()) == 1, robot
