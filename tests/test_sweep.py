"""Studies with Ray Tune: a 2 x 2 grid with a trial that fails once, resuming, the report."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from metarl.config import ConfigError
from metarl.sweep import StudyConfig, load_study, run_study, run_trial, summarize

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = str(ROOT / "configs" / "rl2_point_robot_local.yaml")
TINY = [
    "env.train_tasks=4",
    "env.test_tasks=2",
    "sampler.num_envs=2",
    "agent.meta_batch_size=2",
    "evaluation.episodes=2",
    "evaluation.baselines=[]",
    "trainer.iterations=2",
    "trainer.checkpoint_every=1",
    "trainer.eval_every=0",
    "trainer.progress=false",
]


def _study(tmp_path: Path, **study: Any) -> Path:
    base = {
        "name": "tiny",
        "experiment": EXPERIMENT,
        "overrides": TINY,
        "parameters": {"agent.hidden_size": [8, 16], "run.seed": [0, 1]},
        "root": str(tmp_path / "studies"),
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"study": {**base, **study}}))
    return path


def _fails_once(
    point: dict[str, Any], study: StudyConfig, experiment: str, run_dir: Path
) -> dict[str, float]:
    """The trial (hidden_size 16, seed 1) raises on its first attempt, mid-training."""
    marker = run_dir.parent.parent / "failed-once"
    if point == {"agent.hidden_size": 16, "run.seed": 1} and not marker.exists():
        marker.write_text("")
        raise RuntimeError("injected failure")
    return run_trial(point, study, experiment, run_dir)


@pytest.mark.slow  # Ray Tune, 4 tiny RL2 runs twice in parallel: ~60 s on 2 cores
def test_grid_study_retries_a_failed_trial_resumes_and_reports(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Tune's workers
    study_file = _study(tmp_path, max_failures=1, cpus_per_trial=1)
    study_dir = run_study(study_file, num_cpus=2, trial_fn=_fails_once)
    assert (study_dir / "failed-once").exists()  # the failure happened, and was retried
    trials = sorted(p.name for p in (study_dir / "trials").iterdir())
    assert len(trials) == 4 and all(
        (study_dir / "trials" / t / "results.json").exists() for t in trials
    )
    rows = list(csv.DictReader((study_dir / "trials.csv").open()))
    assert sorted((r["agent.hidden_size"], r["run.seed"]) for r in rows) == [
        ("16", "0"),
        ("16", "1"),
        ("8", "0"),
        ("8", "1"),
    ]
    summary = list(csv.DictReader((study_dir / "summary.csv").open()))
    assert [(s["agent.hidden_size"], s["n"]) for s in summary] == [("8", "2"), ("16", "2")]
    assert all(float(s["ci95"]) >= 0 for s in summary)
    report = (study_dir / "report.md").read_text()
    assert "| agent.hidden_size | mean | std | n | 95% CI |" in report
    assert (study_dir / "agent.return_last.png").stat().st_size > 1000
    # Neither Ray's notice that token authentication is on nor Tune's TensorBoard hint.
    out, err = capfd.readouterr()
    assert "Token authentication" not in out + err
    assert "To visualize your results with TensorBoard" not in out + err

    # Running the study again continues it: every trial is done, none runs again.
    stamps = {t: (study_dir / "trials" / t / "results.json").stat().st_mtime for t in trials}
    run_study(study_file, num_cpus=2, trial_fn=_fails_once)
    assert stamps == {
        t: (study_dir / "trials" / t / "results.json").stat().st_mtime for t in trials
    }


def test_study_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent.hiden_size: unknown key"):
        load_study(_study(tmp_path, parameters={"agent.hiden_size": [8]}))
    with pytest.raises(ConfigError, match=r"agent.hidden_size"):
        load_study(_study(tmp_path, parameters={"agent.hidden_size": [8, -1]}))
    with pytest.raises(ConfigError, match="a grid search takes lists"):
        load_study(
            _study(tmp_path, parameters={"agent.learning_rate": {"loguniform": [1e-4, 1e-2]}})
        )
    with pytest.raises(
        ConfigError, match=r"study.parameters: .*uniform: takes|takes \[low, high\]"
    ):
        load_study(
            _study(tmp_path, search="random", parameters={"agent.learning_rate": {"uniform": [1]}})
        )
    with pytest.raises(ConfigError, match=r"study.x: 'run.root' is not varied"):
        load_study(_study(tmp_path, x="run.root"))
    with pytest.raises(ConfigError, match=r"study.x: 'run.seed' is the seed_field"):
        load_study(_study(tmp_path, x="run.seed"))  # the report averages over it
    with pytest.raises(ConfigError, match=r"study.max_failures"):
        load_study(_study(tmp_path, max_failures=-1))
    study, _ = load_study(
        _study(
            tmp_path,
            search="random",
            num_samples=3,
            parameters={"agent.learning_rate": {"loguniform": [1e-4, 1e-2]}, "run.seed": [0, 1]},
        )
    )
    assert study.num_samples == 3


def test_summary_gives_student_t_intervals() -> None:
    rows = [{"w": 1, "m": v} for v in (1.0, 2.0, 3.0)] + [{"w": 2, "m": 5.0}]
    one, two = summarize(rows, ["w"], "m")
    assert (one["mean"], one["std"], one["n"]) == (2.0, 1.0, 3)
    assert one["ci95"] == pytest.approx(4.302653 / 3**0.5, rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert two["n"] == 1 and two["ci95"] != two["ci95"]  # one seed: no interval (NaN)


def test_trial_metrics_give_success_rates_and_meta_worlds_score(tmp_path: Path) -> None:
    """From a results.json as a Meta-World run writes it (success rate per episode k,
    Meta-World's score); a method without a flag gets no success metric."""
    from metarl.sweep import trial_metrics

    method = {"mean": [1.0, 2.0, 3.0], "success_rate": [0.25, 0.5, 0.75]}
    results = {
        "agent": "rl2",
        "methods": {"rl2": method, "random": {"mean": [0.0] * 3, "success_rate": None}},
        "metaworld": {"success_rate": {"rl2": 0.6}},
        "test_sets": {"shifted": {"methods": {"rl2": method}}},
    }
    (tmp_path / "results.json").write_text(json.dumps(results))
    metrics = trial_metrics(tmp_path)
    assert metrics["agent.success_first"] == 0.25 and metrics["agent.success_last"] == 0.75
    assert metrics["agent.success_metaworld"] == 0.6
    assert metrics["shifted.agent.success_last"] == 0.75
    assert not any(k.startswith("random.success") for k in metrics)


def test_sweep_command_reports_a_bad_study_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from metarl.cli import main

    with pytest.raises(SystemExit) as info:
        main(["sweep", str(_study(tmp_path, parameters={"agent.hiden_size": [8]}))])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "agent.hiden_size: unknown key" in err and "Traceback" not in err


def _fake_trial(study_dir: Path, width: float, seed: int, nominal: float, shifted: float) -> None:
    """A finished trial folder: its config and a results.json with two test sets."""
    run_dir = study_dir / "trials" / f"{seed}-w{width}"
    run_dir.mkdir(parents=True)
    config = {"env": {"kwargs": {"log_scale_limit": width}}, "run": {"seed": seed}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))

    def method(ret: float) -> dict[str, Any]:
        return {"label": "PPO (DR)", "mean": [ret], "train_env_steps": 10}

    results = {
        "agent": "ppo",
        "methods": {"ppo": method(nominal)},
        "test_sets": {
            "nominal": {"methods": {"ppo": method(nominal)}},
            "shifted": {"methods": {"ppo": method(shifted)}},
        },
    }
    (run_dir / "results.json").write_text(json.dumps(results))


def test_report_of_several_metrics_has_a_table_and_plot_each_and_one_of_all(
    tmp_path: Path,
) -> None:
    from metarl.sweep import study_report

    metrics = ["nominal.agent.return_last", "shifted.agent.return_last"]
    study, _ = load_study(
        _study(
            tmp_path,
            parameters={"env.kwargs.log_scale_limit": [0.0, 1.0], "run.seed": [0, 1]},
            metric=metrics,
        )
    )
    study_dir = tmp_path / "studies" / "tiny"
    for seed in (0, 1):
        _fake_trial(study_dir, 0.0, seed, nominal=100.0 + seed, shifted=10.0 + seed)
        _fake_trial(study_dir, 1.0, seed, nominal=80.0 + seed, shifted=50.0 + seed)
    report = study_report(study, study_dir).read_text()
    for metric in metrics:
        assert f"## {metric}" in report
        assert (study_dir / f"{metric}.png").stat().st_size > 1000
    assert (study_dir / "metrics.png").stat().st_size > 1000
    summary = list(csv.DictReader((study_dir / "summary.csv").open()))
    by_key = {(s["metric"], s["env.kwargs.log_scale_limit"]): float(s["mean"]) for s in summary}
    assert by_key == {
        ("nominal.agent.return_last", "0.0"): 100.5,
        ("nominal.agent.return_last", "1.0"): 80.5,
        ("shifted.agent.return_last", "0.0"): 10.5,
        ("shifted.agent.return_last", "1.0"): 50.5,
    }
    assert "Best by mean: env.kwargs.log_scale_limit=1 (50.50)." in report
    with pytest.raises(ConfigError, match="study.metric"):
        load_study(_study(tmp_path, metric=[]))
    with pytest.raises(ConfigError, match="study.metric: .*distinct"):
        load_study(_study(tmp_path, metric=["agent.return_last", "agent.return_last"]))


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs" / "studies").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_studies_validate_with_every_trial_config(path: Path) -> None:
    study, experiment = load_study(path)
    assert experiment.exists() and study.parameters
