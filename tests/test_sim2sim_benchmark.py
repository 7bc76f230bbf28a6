"""benchmarks/sim2sim.py: bad arguments are named; the targets hide what the fits
search and record noisy states; the fits phase records intervals and diagnostics; the
learned distribution comes from the chosen fit; the report reads the phases' files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sim2sim

from metarl.envs import PhysicsParam
from metarl.sim2real.sysid import Simulator
from metarl.sim2real.targets import Target, load_target_config


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--dropo-budget", "0"), ("--tm-budget", "0"), ("--tm-horizon", "0"), ("--trials", "0")],
)
def test_non_positive_counts_are_named(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        sim2sim.main(["fits", flag, value])
    assert info.value.code == 2
    assert f"{flag} must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value"), [("--qpos-std", "-1"), ("--qvel-std", "nan"), ("--qvel-std", "a lot")]
)
def test_state_noise_stds_must_be_non_negative_numbers(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        sim2sim.main(["fits", flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and f"must be a number >= 0, got {value}" in err


def _transfer_rows(tmp_path: Path) -> None:
    returns = {  # seed -> nominal, uniform, learned, oracle
        0: (10.0, 20.0, 35.0, 50.0),
        1: (12.0, 30.0, 30.0, 40.0),
    }
    for seed, values in returns.items():
        for variant, ret in zip(("nominal", "uniform", "learned", "oracle"), values, strict=True):
            row: dict[str, Any] = {
                "target": "hopper",
                "variant": variant,
                "seed": seed,
                "return_mean": ret,
                "iterations": 60,
                "train_env_steps": 150_000 + 1000 * seed,
            }
            if variant == "learned":
                row["learned_method"] = "trajectory_matching"
            (tmp_path / f"transfer_hopper_{variant}_s{seed}.json").write_text(json.dumps(row))
    # a file of the DROPO distribution from before --learned-method (no learned_method)
    row = {"target": "hopper", "variant": "learned", "seed": 0, "return_mean": 50.0}
    (tmp_path / "transfer_hopper_learned_old_s0.json").write_text(json.dumps(row))


def test_report_aggregates_the_seeds_and_computes_the_gap_closed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _transfer_rows(tmp_path)
    truth = {"torso_mass": 1.5, "friction": 0.6}
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
        row = {
            **row,
            "method": "trajectory matching",
            "trajectories": 10,
            "truth": truth,
            "estimates": {"torso_mass": 1.52, "friction": 0.55 + 0.1 * seed},
            "interval": {"torso_mass": [1.45, 1.55], "friction": [0.58, 0.62 + 0.1 * seed]},
            "truth_in_interval": {"torso_mass": True, "friction": seed == 1},
            "not_identified": ["friction"] if seed else [],
            "warnings": ["friction is not determined by the data: its interval ..."] * seed,
            "discrepancy_fitted": 2.0,
            "discrepancy_nominal": 10.0 * (seed + 1),
            "noise_floor": 1.0,
        }
        (tmp_path / f"fit_hopper_trajectory_matching_10_s{seed}.json").write_text(json.dumps(row))
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
        "| hopper | trajectory matching | 0,1 | 11.0 ± 1.4 | 25.0 ± 7.1 | 32.5 ± 3.5 "
        "| 45.0 ± 7.1 | 0.38 | 0: 0.50, 1: 0.00 |" in out
    )
    # each seed's returns and gap in a row of its own
    assert "| hopper | trajectory matching | 0 | 10.0 | 20.0 | 35.0 | 50.0 | 0.50 |" in out
    assert "| hopper | trajectory matching | 1 | 12.0 | 30.0 | 30.0 | 40.0 | 0.00 |" in out
    # the old DROPO file: its own row, seed 0 only: (50 - 20) / (50 - 20)
    assert "| hopper | DROPO | 0 | 10.0 | 20.0 | 50.0 | 50.0 | 1.00 |" in out
    assert "150,000-151,000 env steps" in out and "1,000,000 env steps per run" in out
    # files without intervals: "-"; with them, the cases holding the truth
    assert (
        "| hopper | DROPO | 2 | 0,1 | 55 | torso_mass 0.200 ± 0.141, friction 0.400 ± 0.141 "
        "| - | - | - | 12 s |" in out
    )
    assert "| 3/4 | friction 1/2 | 2 (15) | 12 s |" in out
    assert "trajectory matching 3/4" in out
    assert (
        "| hopper | trajectory matching | 0 | torso_mass 1.52 [1.45, 1.55] (1.5, in), "
        "friction 0.55 [0.58, 0.62] (0.6, out) | none | 0 |" in out
    )
    assert "hopper, trajectory matching, 10 trajectories: friction is not determined" in out
    assert "| source test tasks | 1.5 ± 0.7 | 3.5 ± 0.7 |" in out
    assert "| target | 0.0 ± 0.0 | 1.0 ± 1.4 |" in out
    assert (tmp_path / "plots" / "sim2sim_recovery.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ([], "fit_hopper_trajectory_matching_10_s0.json"),
        (["--learned-method", "dropo"], "fit_hopper_dropo_10_s0.json"),
    ],
)
def test_a_missing_fit_is_named(tmp_path: Path, extra: list[str], missing: str) -> None:
    with pytest.raises(SystemExit, match=f"{missing} is missing"):
        sim2sim.main(
            ["transfer", "--out", str(tmp_path), "--targets", "hopper", "--seeds", "0", *extra]
        )


@pytest.mark.parametrize("method", ["trajectory_matching", "dropo"])
def test_the_learned_distribution_is_the_chosen_fits(tmp_path: Path, method: str) -> None:
    for m, mean in (("trajectory_matching", 1.4), ("dropo", 1.7)):
        dist = {"kind": "truncated_normal", "mean": mean, "std": 0.1, "low": 0.3, "high": 2.5}
        spec = {**sim2sim.search_params("hopper")["torso_mass"], "dist": dist}
        row = {"distribution": {"torso_mass": spec}}
        (tmp_path / f"fit_hopper_{m}_10_s0.json").write_text(json.dumps(row))
    args = argparse.Namespace(out=str(tmp_path), learned_method=method, fit_trajectories=10)
    learned = sim2sim._variants("hopper", 0, args)["learned"]
    assert (
        learned["torso_mass"]["dist"]["mean"] == {"trajectory_matching": 1.4, "dropo": 1.7}[method]
    )
    assert sim2sim._transfer_key("learned", args) == f"learned_{method}"


def test_the_targets_hide_what_the_fits_search() -> None:
    assert {"hopper", "half_cheetah", "walker2d", "ant"} <= set(sim2sim.TARGETS)
    for name, (_env, truth, specs) in sim2sim.TARGETS.items():
        assert set(truth) == set(specs) == set(sim2sim.search_params(name))
        low, high = sim2sim.BOUNDS
        assert all(low < v < high for v in truth.values())  # the truth lies in the search box


@pytest.mark.parametrize("name", list(sim2sim.TARGETS))
def test_every_target_hides_its_truth_and_records_noisy_states(name: str) -> None:
    target = Target(load_target_config(sim2sim.target_config(name, seed=3)))
    zero = np.zeros(target.action_space.shape or (), np.float32)
    episode = target.rollout(lambda obs: zero, 1, 40)[0]
    assert target.hidden_truth() == pytest.approx(sim2sim.TARGETS[name][1])
    true_next = target.effect_records[0]["effects.state_noise.next_state"]
    error = episode.env_infos["next_state"] - true_next
    nq = {"hopper": 6, "half_cheetah": 9, "walker2d": 9, "ant": 15}[name]
    assert error[:, :nq].std() == pytest.approx(sim2sim.QPOS_STD, rel=0.3)
    assert error[:, nq:].std() == pytest.approx(sim2sim.QVEL_STD, rel=0.3)
    target.close()


def test_the_state_noise_reaches_the_targets_only() -> None:
    effects = sim2sim.target_config("walker2d", 0, 0.002, 2e-3, 3e-2)["effects"]
    assert effects == [
        {"name": "action_delay", "steps": 1},
        {"name": "state_noise", "qpos_std": 2e-3, "qvel_std": 3e-2},
        {"name": "observation_noise", "std": 0.002},
    ]
    assert "state_noise" not in str(sim2sim.target_config("walker2d", 0, 0.0, 0.0, 0.0))
    args = argparse.Namespace(out="unused", noise=0.002)
    oracle = sim2sim._experiment(
        "walker2d", "oracle", sim2sim.search_params("walker2d"), 0, 1, args
    )
    assert [e["name"] for e in oracle.env.effects] == ["action_delay", "observation_noise"]


def test_the_ant_target_simulator_and_training_agree_on_env_kwargs() -> None:
    kwargs = {"include_cfrc_ext_in_observation": False}
    config = sim2sim.target_config("ant")
    assert config["env_kwargs"] == kwargs
    args = argparse.Namespace(out="unused", noise=0.0)
    run = sim2sim._experiment("ant", "uniform", sim2sim.search_params("ant"), 0, 1, args)
    assert run.env.kwargs == {"max_episode_steps": sim2sim.HORIZON, **kwargs}
    params = {k: PhysicsParam.from_dict(v) for k, v in sim2sim.search_params("ant").items()}
    sim = Simulator("Ant-v5", params, sim2sim.env_kwargs("ant"), action_delay=sim2sim.DELAY)
    target = Target(load_target_config(config))
    # 27 = qpos without x, y (13) + qvel (14): no contact forces
    assert sim.observation_space.shape == target.observation_space.shape == (27,)
    sim.close()
    target.close()


def test_the_fits_phase_records_intervals_coverage_and_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--out", str(tmp_path), "--targets", "hopper", "--trajectories", "1"]
    argv += ["--seeds", "0", "--dropo-budget", "6", "--tm-budget", "6"]
    sim2sim.main(["fits", *argv])
    for method in ("trajectory_matching", "dropo"):
        row = json.loads((tmp_path / f"fit_hopper_{method}_1_s0.json").read_text())
        truth = sim2sim.TARGETS["hopper"][1]
        assert row["truth"] == pytest.approx(truth)
        assert set(row["estimates"]) == set(row["interval"]) == set(truth)
        assert row["truth_in_interval"] == {
            n: lo <= truth[n] <= hi for n, (lo, hi) in row["interval"].items()
        }
        assert isinstance(row["not_identified"], list) and isinstance(row["warnings"], list)
        assert row["discrepancy_over_floor"] == pytest.approx(
            row["discrepancy_fitted"] / row["noise_floor"]
        )
        assert row["state_noise"] == {"qpos_std": sim2sim.QPOS_STD, "qvel_std": sim2sim.QVEL_STD}
        assert "recorded states" in row["state_source"]  # not the observations
    # trajectory matching's distribution: truncated normals at the estimates, their
    # standard errors as std, cut at the search box
    row = json.loads((tmp_path / "fit_hopper_trajectory_matching_1_s0.json").read_text())
    for n, spec in row["distribution"].items():
        assert spec["dist"] == {
            "kind": "truncated_normal",
            "mean": pytest.approx(row["estimates"][n]),
            "std": pytest.approx(row["uncertainty"][n]),
            "low": sim2sim.BOUNDS[0],
            "high": sim2sim.BOUNDS[1],
        }
    capsys.readouterr()
    sim2sim.main(["fits", *argv])  # resumes: nothing left to fit
    assert "seed 0 hopper: every fit file exists; skipped" in capsys.readouterr().out
    sim2sim.main(["report", "--out", str(tmp_path), "--fit-trajectories", "1"])
    out = capsys.readouterr().out
    assert "Coverage of the 95% intervals" in out and "trajectory matching" in out
