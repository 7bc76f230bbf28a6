"""The experiment runner end to end: `metarl train` and `metarl eval` on a tiny budget."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from metarl.agents.rl2 import RL2Agent
from metarl.build import build_agent, build_sampler, eval_sampler, task_sets
from metarl.cli import main
from metarl.config import ConfigError, load_config
from metarl.evaluation import AdaptationResult
from metarl.runner import run_experiment
from metarl.schema import RunFolderError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "rl2_point_robot_local.yaml")
# Seconds-sized: 2 tasks x 2 episodes x 20 steps per iteration, tiny networks.
TINY = [
    "env.train_tasks=4",
    "env.test_tasks=2",
    "sampler.num_envs=2",
    "agent.meta_batch_size=2",
    "agent.hidden_size=8",
    "evaluation.episodes=2",
]


def _cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    code = info.value.code
    return 0 if code is None else int(code)


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.pop("wall_time")
    return rows


def test_train_writes_the_run_folder_and_eval_reproduces_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    # The trained baselines get a tiny budget here (SB3 PPO: 2 updates of 2 x 32 steps).
    overrides = [
        *TINY,
        "trainer.iterations=2",
        "evaluation.baseline_training.steps=128",
        "evaluation.baseline_training.algo_kwargs={n_steps: 32, batch_size: 32, n_epochs: 1}",
    ]
    assert _cli(["train", CONFIG, *overrides, "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"report:     {run_dir / 'report.md'}" in out and "oracle gap closed" in out

    for name in ("config.yaml", "metrics.csv", "adaptation.png", "report.md", "results.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "latest").is_file()
    assert (run_dir / "adaptation.png").stat().st_size > 10_000
    assert sorted(p.name for p in (run_dir / "baselines").iterdir()) == [
        "multitask.pt",
        "oracle.pt",
    ]
    # The snapshot is the resolved config: it loads to the config that ran.
    assert load_config(run_dir / "config.yaml") == load_config(CONFIG, overrides)
    assert [int(r["iteration"]) for r in _metrics(run_dir)] == [1, 2]

    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["methods"]) == ["rl2", "random", "multitask", "oracle"]
    agent = AdaptationResult.from_dict(results["methods"]["rl2"])
    assert agent.returns.shape == (2, 2)  # test tasks x K
    assert results["methods"]["rl2"]["train_env_steps"] == 2 * 2 * 2 * 20
    assert results["methods"]["multitask"]["train_env_steps"] == 128
    report = (run_dir / "report.md").read_text()
    for text in ("metarl/PointRobot-v0", "| RL2 |", "| oracle |", "k=2", "Oracle gap closed"):
        assert text in report, text
    assert "160 env steps" in report and "(adaptation.png)" in report

    # metarl eval: same checkpoint, same tasks and seeds -> the same numbers; saved
    # baselines are reused, not retrained.
    mtime = (run_dir / "baselines" / "oracle.pt").stat().st_mtime
    assert _cli(["eval", str(run_dir)]) == 0
    reevaluations = run_dir / "reevaluations"
    again = json.loads((reevaluations / "iteration2_episodes2_seed0" / "results.json").read_text())
    for name in results["methods"]:
        assert again["methods"][name]["returns"] == results["methods"][name]["returns"], name
    assert (run_dir / "baselines" / "oracle.pt").stat().st_mtime == mtime
    # A different K re-runs the protocol with it, in a folder of its own.
    assert _cli(["eval", str(run_dir), "--episodes", "3"]) == 0
    k3 = json.loads((reevaluations / "iteration2_episodes3_seed0" / "results.json").read_text())
    assert k3["episodes"] == 3 and len(k3["methods"]["rl2"]["mean"]) == 3
    assert "k=3" in (reevaluations / "iteration2_episodes3_seed0" / "report.md").read_text()
    assert json.loads((run_dir / "results.json").read_text()) == results


def test_evaluating_during_training_leaves_training_unchanged(tmp_path: Path) -> None:
    """Periodic meta-tests run on their own sampler: a run evaluated every iteration
    trains on the same episodes as one evaluated only at its end."""
    common = [*TINY, "trainer.iterations=2", "evaluation.baselines=[]"]
    for every in (0, 1):
        config = load_config(CONFIG, [*common, f"trainer.eval_every={every}"])
        run_experiment(config, tmp_path / f"every{every}")
    assert _metrics(tmp_path / "every0") == _metrics(tmp_path / "every1")
    assert len((tmp_path / "every1" / "eval.csv").read_text().splitlines()) > len(
        (tmp_path / "every0" / "eval.csv").read_text().splitlines()
    )


def test_eval_sampler_seeds_its_episodes() -> None:
    """The meta-test sampler uses the run's sampler seed unless given another."""
    config = load_config(CONFIG, TINY)
    agent = build_agent(config)
    tasks = task_sets(config).test
    firsts = []
    for seed in (None, config.sampler.seed, 12345):
        with eval_sampler(config, agent, tasks, seed) as sampler:
            firsts.append(sampler.collect(agent.policy(), tasks, 1).trials()[0][0].observations)
    assert (firsts[0] == firsts[1]).all()
    assert not (firsts[0] == firsts[2]).all()


class _Stop(Exception):
    pass


def test_resume_continues_a_stopped_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [
        *TINY,
        "trainer.iterations=4",
        "trainer.checkpoint_every=2",
        "trainer.eval_every=0",
        "evaluation.baselines=[random]",
    ]
    assert _cli(["train", CONFIG, *overrides, "--run-dir", str(tmp_path / "full")]) == 0

    # Stop a run in its 3rd update, after the checkpoint of iteration 2.
    update = RL2Agent.update
    calls = {"n": 0}

    def stopping_update(self: RL2Agent, batch: Any) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Stop
        return update(self, batch)

    monkeypatch.setattr(RL2Agent, "update", stopping_update)
    stopped = tmp_path / "stopped"
    with pytest.raises(_Stop):
        run_experiment(load_config(CONFIG, overrides), stopped)
    monkeypatch.setattr(RL2Agent, "update", update)
    assert [int(r["iteration"]) for r in _metrics(stopped)] == [1, 2]
    assert not (stopped / "report.md").exists()

    assert _cli(["train", "--resume", str(stopped)]) == 0
    # It continued from the checkpoint: the same numbers as the run never stopped.
    assert _metrics(stopped) == _metrics(tmp_path / "full")
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    resumed = json.loads((stopped / "results.json").read_text())
    assert resumed["methods"]["rl2"]["returns"] == full["methods"]["rl2"]["returns"]

    # A finished run resumed with more iterations trains on, from iteration 4.
    assert _cli(["train", "--resume", str(stopped), "trainer.iterations=5"]) == 0
    assert [int(r["iteration"]) for r in _metrics(stopped)] == [1, 2, 3, 4, 5]
    assert yaml.safe_load((stopped / "config.yaml").read_text())["trainer"]["iterations"] == 5

    # What a resumed run may not change, and folders that cannot be resumed or reused.
    capsys.readouterr()
    assert _cli(["train", "--resume", str(stopped), "agent.hidden_size=16"]) == 2
    err = capsys.readouterr().err
    assert "agent.hidden_size: the run has 8, given 16" in err and "Traceback" not in err
    assert _cli(["train", "--resume", str(stopped), "trainer.iterations=3"]) == 2
    assert "has done 5 iterations, more than the 3 given" in capsys.readouterr().err
    assert _cli(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "nothing does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _cli(["train", "--resume", str(tmp_path / "empty")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    with pytest.raises(RunFolderError, match="already holds a run"):
        run_experiment(load_config(CONFIG, overrides), stopped)


def test_cli_reports_config_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["train", CONFIG, "agent.lr=0.1", "trainer.iterations=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "agent.lr: unknown key" in err and "learning_rate" in err
    assert "trainer.iterations" in err and "Traceback" not in err
    assert _cli(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert _cli(["eval", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


@pytest.mark.slow  # starts Ray: ~15 s on 2 cores
def test_ray_sampler_is_a_config_switch(tmp_path: Path) -> None:
    # The Ray sampler collects the batches the local one does (same num_envs per worker),
    # so switching sampler.kind changes where the episodes come from, not the run.
    overrides = [*TINY, "trainer.iterations=2", "evaluation.baselines=[]"]
    ray = ["sampler.kind=ray", "sampler.num_workers=1", "sampler.cpus_per_worker=0.5"]
    for name, extra in (("local", []), ("ray", ray)):
        run_experiment(load_config(CONFIG, [*overrides, *extra]), tmp_path / name)
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "local")
    results = [json.loads((tmp_path / n / "results.json").read_text()) for n in ("local", "ray")]
    local, ray_run = (r["methods"]["rl2"] for r in results)
    assert local["returns"] == ray_run["returns"] and local["tasks"] == ray_run["tasks"]
    assert results[1]["oracle_gap_closed"] is None
    assert "Ray, 1 workers x 2 envs" in (tmp_path / "ray" / "report.md").read_text()
    # workers.json: the Ray worker's process, node and peak memory; none for a local run.
    workers = json.loads((tmp_path / "ray" / "workers.json").read_text())
    assert len(workers) == 1 and set(workers[0]) == {"pid", "node_id", "peak_rss_bytes"}
    assert not (tmp_path / "local" / "workers.json").exists()


@pytest.mark.parametrize("name", ["maml_trpo", "promp"])
def test_gradient_agents_run_resume_and_report_by_stage(name: str, tmp_path: Path) -> None:
    """MAML-TRPO and ProMP through the runner: 3 episodes with theta, an inner step, 3
    more; the report groups the meta-test by stage; a resumed run ends where an
    uninterrupted one does."""
    config = str(ROOT / "configs" / f"{name}_point_robot.yaml")
    overrides = [
        "env.train_tasks=4",
        "env.test_tasks=2",
        "sampler.num_envs=2",
        "agent.meta_batch_size=2",
        "agent.episodes_per_trial=3",
        "agent.hidden_sizes=[8]",
        "evaluation.episodes=6",
        "evaluation.baselines=[random]",
        "trainer.eval_every=0",
        "trainer.checkpoint_every=1",
        "trainer.progress=false",
    ]
    full = run_experiment(
        load_config(config, [*overrides, "trainer.iterations=2"]), tmp_path / "full"
    )
    results = json.loads((full / "results.json").read_text())
    agent = AdaptationResult.from_dict(results["methods"][name])
    assert agent.returns.shape == (2, 6) and agent.stage_size == 3
    assert results["methods"][name]["train_env_steps"] == 2 * 2 * 2 * 3 * 20
    report = (full / "report.md").read_text()
    label = "MAML-TRPO" if name == "maml_trpo" else "ProMP"
    assert f"| {label} |" in report and "| k=1-3 | k=4-6 |" in report
    assert "return_step1" in (full / "metrics.csv").read_text().splitlines()[0]

    # Stop a run in its 2nd outer update, after the checkpoint of iteration 1; resume.
    from metarl.agents.gradient_meta import GradientMetaAgent

    agent_cls = type(build_agent(load_config(config, overrides)))
    update = agent_cls.outer_update
    calls = {"n": 0}

    def stopping_update(self: GradientMetaAgent, *args: Any) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Stop
        return update(self, *args)

    two = load_config(config, [*overrides, "trainer.iterations=2"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent_cls, "outer_update", stopping_update)
        with pytest.raises(_Stop):
            run_experiment(two, tmp_path / "part")
    resumed = run_experiment(two, tmp_path / "part", resume=True)
    again = json.loads((resumed / "results.json").read_text())
    assert again["methods"][name]["returns"] == results["methods"][name]["returns"]
    assert _metrics(resumed) == _metrics(full)


DR_CONFIG = str(ROOT / "configs" / "ppo_hopper_params_dr.yaml")
DR_TINY = [
    "env.train_tasks=4",
    "env.test_tasks=2",
    "sampler.num_envs=2",
    "agent.meta_batch_size=2",
    "agent.minibatch_size=256",
    "trainer.iterations=1",
    "evaluation.test_sets.nominal.tasks=2",
    "evaluation.test_sets.shifted.tasks=2",
]


def test_test_sets_are_evaluated_reported_and_do_not_depend_on_the_training_width(
    tmp_path: Path,
) -> None:
    """The shipped domain-randomization config: the agent is evaluated on its own test
    tasks and on the nominal and shifted sets, which stay the same for every training
    width (what makes a width study's columns comparable)."""
    from metarl.build import test_set_tasks
    from metarl.sweep import trial_metrics

    narrow = load_config(DR_CONFIG, [*DR_TINY, "env.kwargs.log_scale_limit=0.5"])
    wide = load_config(DR_CONFIG, [*DR_TINY, "env.kwargs.log_scale_limit=2.0"])
    for name in ("nominal", "shifted"):
        a, b = test_set_tasks(narrow)[name], test_set_tasks(wide)[name]
        assert a == b
    nominal = test_set_tasks(narrow)["nominal"].tasks[0]
    assert all(np.all(np.asarray(v) == 1.0) for v in nominal.values.values())
    shifted = np.concatenate(
        [np.ravel(v) for v in test_set_tasks(narrow)["shifted"].tasks[0].values.values()]
    )
    assert shifted.min() < 1.5**-0.5 or shifted.max() > 1.5**0.5  # outside the narrow width

    run_dir = run_experiment(narrow, tmp_path / "run")
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["test_sets"]) == {"nominal", "shifted"}
    shifted_set = results["test_sets"]["shifted"]
    assert shifted_set["env_kwargs"]["log_scale_limit"] == 2.0 and shifted_set["tasks"] == 2
    assert shifted_set["task_seed"] == 1000
    report = (run_dir / "report.md").read_text()
    assert "## Test set `nominal`" in report and "## Test set `shifted`" in report
    metrics = trial_metrics(run_dir)
    for key in ("agent.return_last", "nominal.agent.return_last", "shifted.agent.return_last"):
        assert np.isfinite(metrics[key])


def test_a_test_set_the_env_refuses_stops_the_run_before_training(tmp_path: Path) -> None:
    config = load_config(
        DR_CONFIG, [*DR_TINY, "evaluation.test_sets.shifted.env_kwargs.log_scale_limit=-1"]
    )
    with pytest.raises(ConfigError, match=r"evaluation.test_sets.shifted.env_kwargs: .*log_scale"):
        run_experiment(config, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.csv").exists()
    bad_effect = "evaluation.test_sets.shifted.effects=[{name: action_delay, steps: -1}]"
    config = load_config(DR_CONFIG, [*DR_TINY, bad_effect])
    with pytest.raises(
        ConfigError, match=r"evaluation.test_sets.shifted.effects\[0\] \(action_delay\)"
    ):
        run_experiment(config, tmp_path / "run2")


@pytest.mark.parametrize("name", ["agent", "oracle", "1st", "with space"])
def test_test_set_names_are_checked(name: str) -> None:
    with pytest.raises(ConfigError, match="evaluation.test_sets"):
        load_config(DR_CONFIG, [f"evaluation.test_sets={{'{name}': {{tasks: 2}}}}"])


def test_effects_reach_training_evaluation_and_test_sets(tmp_path: Path) -> None:
    """``env.effects`` wrap the training sampler's envs and the evaluation's (inside an
    agent's own wrappers); a test set may replace them; a bad value stops the run."""
    from metarl.envs.effects import ActionDelay
    from metarl.envs.wrappers import TaskInObservation

    effects = "env.effects=[{name: action_delay, steps: 1}]"
    config = load_config(
        CONFIG,
        [
            *TINY,
            effects,
            "trainer.iterations=1",
            "evaluation.baselines=[]",
            "evaluation.test_sets={noisy: {effects: [{name: observation_noise, bias_std: 0.1}]}}",
        ],
    )
    sampler = build_sampler(config)
    try:
        assert isinstance(sampler.envs.envs[0], ActionDelay)  # type: ignore[attr-defined]
    finally:
        sampler.close()

    class Oracle:
        env_wrappers = (TaskInObservation,)

    agent: Any = Oracle()
    evaluator = eval_sampler(config, agent, task_sets(config).test)
    try:
        env = evaluator.envs.envs[0]  # type: ignore[attr-defined]
        assert isinstance(env, TaskInObservation) and isinstance(env.env, ActionDelay)
    finally:
        evaluator.close()
    run_dir = run_experiment(config, tmp_path / "run")
    noisy = json.loads((run_dir / "results.json").read_text())["test_sets"]["noisy"]
    assert noisy["effects"] == [{"name": "observation_noise", "bias_std": 0.1}]
    assert "effects [{'name': 'observation_noise'" in (run_dir / "report.md").read_text()

    bad = load_config(CONFIG, [*TINY, "env.effects=[{name: action_delay, steps: [2, 1]}]"])
    with pytest.raises(ConfigError, match=r"env.effects\[0\] \(action_delay\): .*low <= high"):
        run_experiment(bad, tmp_path / "bad")


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_an_adr_run_leaves_its_final_randomization(kind: str, tmp_path: Path) -> None:
    """The shipped ADR config on a tiny budget, with the local and the Ray sampler (the
    schedule's tasks travel to the workers with each collect)."""
    overrides = [
        "env.test_tasks=2",
        "sampler.num_envs=2",
        f"sampler.kind={kind}",
        "sampler.num_workers=1",
        "agent.meta_batch_size=4",
        "agent.minibatch_size=256",
        "trainer.iterations=2",
        "trainer.progress=false",
        "randomization.options.buffer_size=1",
        "randomization.options.low_threshold=-1000",
        "randomization.options.high_threshold=-999",  # every boundary return widens
    ]
    config = load_config(str(ROOT / "configs" / "ppo_hopper_adr.yaml"), overrides)
    run_dir = run_experiment(config, tmp_path / "run")
    r = json.loads((run_dir / "results.json").read_text())["randomization"]
    assert r["schedule"] == "adr" and set(r["params"]) == {"torso_mass", "friction"}
    assert r["state"]["torso_mass.high"] > 1.0 or r["state"]["friction.high"] > 1.0
    assert "## Randomization" in (run_dir / "report.md").read_text()


def test_success_rates_reach_results_report_plot_eval_csv_and_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sparse point robot flags success; the dense one does not, and reports none."""
    import matplotlib.image

    from metarl.cli import _print_outcome
    from metarl.sweep import trial_metrics

    common = [
        *TINY,
        "trainer.iterations=1",
        "trainer.eval_every=1",
        "evaluation.baselines=[random]",
        "evaluation.test_sets.other.task_seed=7",
    ]
    sparse = run_experiment(
        load_config(CONFIG, [*common, "env.id=metarl/PointRobotSparse-v0"]), tmp_path / "sparse"
    )
    dense = run_experiment(load_config(CONFIG, common), tmp_path / "dense")

    results = json.loads((sparse / "results.json").read_text())
    assert results["metaworld"] is None
    report = (sparse / "report.md").read_text()
    assert "## Success rate of episode k (share of test tasks)" in report
    metrics = trial_metrics(sparse)
    sets = {"": results["methods"], "other.": results["test_sets"]["other"]["methods"]}
    for prefix, methods in sets.items():
        for name, method in methods.items():
            successes = np.array(method["successes"])
            assert successes.shape == (2, 2) and successes.dtype == bool, name
            assert method["success_rate"] == successes.mean(axis=0).tolist(), name
            label = {"rl2": "RL2", "random": "random"}[name]
            cells = " | ".join(f"{100 * r:.0f}%" for r in method["success_rate"])
            assert f"| {label} | {cells} |" in report, (prefix, name)
            key = prefix + ("agent" if name == "rl2" else name)
            assert metrics[f"{key}.success_first"] == method["success_rate"][0]
            assert metrics[f"{key}.success_last"] == method["success_rate"][-1]
    with open(sparse / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rate = results["methods"]["rl2"]["success_rate"]
    assert [float(r["success_rate"]) for r in rows] == rate  # one evaluation, at the end

    results = json.loads((dense / "results.json").read_text())
    other = results["test_sets"]["other"]["methods"]
    for method in [*results["methods"].values(), *other.values()]:
        assert method["successes"] is None and method["success_rate"] is None
    assert "Success rate" not in (dense / "report.md").read_text()
    assert not any("success" in key for key in trial_metrics(dense))
    with open(dense / "eval.csv", newline="") as f:
        assert {r["success_rate"] for r in csv.DictReader(f)} == {""}
    # The command line's summary, likewise.
    _print_outcome(sparse)
    assert "success rate of episode k (success flag set at any step):" in capsys.readouterr().out
    _print_outcome(dense)
    assert "success rate" not in capsys.readouterr().out
    # The plot gains a success-rate panel beside the returns only with a flag.
    width = {d: matplotlib.image.imread(d / "adaptation.png").shape[1] for d in (sparse, dense)}
    assert width[sparse] > 1.5 * width[dense]
