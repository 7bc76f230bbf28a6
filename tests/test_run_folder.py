"""Run folders as a user meets them: Ctrl-C, damaged checkpoints, reused folders,
TensorBoard after a resume, the metrics' columns and re-evaluations."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_runner import CONFIG, ROOT
from test_runner import TINY as RUNNER_TINY

from metarl.agents.rl2 import RL2Agent
from metarl.cli import main
from metarl.config import load_config
from metarl.runner import run_experiment

# Seconds-sized RL2 runs (the runner tests'), without trained baselines.
TINY = [*RUNNER_TINY, "evaluation.baselines=[random]", "trainer.eval_every=0"]
RAY = ["sampler.kind=ray", "sampler.num_workers=1", "sampler.cpus_per_worker=0.5"]


def _cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    code = info.value.code
    return 0 if code is None else int(code)


def _iterations(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(row["iteration"]) for row in csv.DictReader(f)]


def _processes() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


class _Stop(Exception):
    pass


def _stop_in_update(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """Make RL2's ``at``-th update raise ``_Stop`` (a run killed mid-iteration)."""
    update = RL2Agent.update
    calls = {"n": 0}

    def stopping(self: RL2Agent, batch: Any) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == at:
            raise _Stop
        return update(self, batch)

    monkeypatch.setattr(RL2Agent, "update", stopping)


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("sampler", ["local", "ray"])
def test_ctrl_c_stops_train_with_one_line_that_says_how_to_resume(
    sampler: str, tmp_path: Path
) -> None:
    """SIGINT to the process group of ``metarl train`` (what Ctrl-C in a terminal does):
    exit status 130, one line naming the iteration, the checkpoint and the resume
    command, no traceback; Ray's processes are gone; the command given resumes."""
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.iterations=100000", "trainer.checkpoint_every=2"]
    if sampler == "ray":
        args += RAY
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "metarl.cli", "train", CONFIG, *args, "--run-dir", str(run_dir)]
    child = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "latest").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=60)

    assert child.returncode == 130, err
    assert "Token authentication" not in err  # Ray's notice at each start of its default
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("stopped")]
    assert (
        "stopped (Ctrl-C) at iteration " in line and "newest checkpoint: checkpoints/iter_" in line
    )
    assert line.endswith(f"resume with: metarl train --resume {run_dir}")
    stopped_at = int(line.split("at iteration ")[1].split()[0])
    assert _iterations(run_dir)[-1] == stopped_at
    if sampler == "ray":  # shut down: no process of its Ray session (named by its pid) is left
        session = f"_{child.pid}/logs"
        deadline = time.monotonic() + 10
        while session in _processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session not in _processes()

    # The printed command resumes the run (to one more iteration than it had).
    more = f"trainer.iterations={stopped_at + 1}"
    assert _cli(["train", "--resume", str(run_dir), more, "sampler.kind=local"]) == 0
    assert _iterations(run_dir) == list(range(1, stopped_at + 2))


def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    update = RL2Agent.update

    def interrupted(self: RL2Agent, batch: Any) -> dict[str, float]:
        if self.iterations == 1:
            raise KeyboardInterrupt
        return update(self, batch)

    monkeypatch.setattr(RL2Agent, "update", interrupted)
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.iterations=5", "trainer.checkpoint_every=4"]
    try:
        code = _cli(["train", CONFIG, *args, "--run-dir", str(run_dir)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C left metarl train as a KeyboardInterrupt (a traceback)")
    assert code == 130
    err = capsys.readouterr().err
    assert "stopped (Ctrl-C) at iteration 1 of 5, before the run's first checkpoint" in err
    assert f"delete {run_dir}" in err and "Traceback" not in err


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run with checkpoints of iterations 1 and 2."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    config = load_config(CONFIG, [*TINY, "trainer.iterations=2", "trainer.checkpoint_every=1"])
    run_experiment(config, run_dir)
    return run_dir


def _copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


def test_a_truncated_checkpoint_is_named_and_the_previous_one_used(
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """(The CLI's warnings go through logging: ``caplog`` sees them in every test.)"""
    run_dir = _copy(finished_run, tmp_path / "run")
    newest = run_dir / "checkpoints" / "iter_000002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])

    # eval: the damaged file named, iteration 1 evaluated.
    assert _cli(["eval", str(run_dir)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert f"{newest} does not load" in caplog.text and "PytorchStreamReader" in caplog.text
    assert f"using {run_dir / 'checkpoints' / 'iter_000001.pt'} (iteration 1)" in caplog.text
    caplog.clear()
    results = json.loads(next((run_dir / "reevaluations").glob("*/results.json")).read_text())
    assert results["iteration"] == 1

    # export: the same checkpoint.
    pytest.importorskip("onnxruntime")
    out = tmp_path / "policy.onnx"
    assert _cli(["export", str(run_dir), str(out)]) == 0
    assert "(iteration 1)" in capsys.readouterr().out and f"{newest} does not load" in caplog.text
    assert out.is_file()
    caplog.clear()

    # train --resume: continues from iteration 1 and rewrites iteration 2, as the run
    # that was never damaged has it.
    damaged = newest.read_bytes()
    assert _cli(["train", "--resume", str(run_dir)]) == 0
    assert f"{newest} does not load" in caplog.text
    # The damaged file is kept, set aside; the resumed run wrote a good one in its place.
    assert (run_dir / "checkpoints" / "iter_000002.pt.damaged").read_bytes() == damaged
    assert f"set aside as {newest.name}.damaged" in caplog.text
    assert torch.load(newest, weights_only=False)["iteration"] == 2
    with open(finished_run / "metrics.csv") as a, open(run_dir / "metrics.csv") as b:
        drop_time = [[c for i, c in enumerate(r) if i != 2] for r in csv.reader(a)]
        assert drop_time == [[c for i, c in enumerate(r) if i != 2] for r in csv.reader(b)]


def test_latest_naming_a_missing_file_falls_back_to_the_newest_that_exists(
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_dir = _copy(finished_run, tmp_path / "run")
    (run_dir / "checkpoints" / "iter_000002.pt").unlink()
    assert _cli(["eval", str(run_dir)]) == 0
    assert "holds no checkpoint" not in capsys.readouterr().err
    assert "checkpoints/latest names iter_000002.pt, which is missing" in caplog.text
    assert "iter_000001.pt (iteration 1)" in caplog.text

    # No checkpoint that loads at all: one message naming each file, status 2.
    (run_dir / "checkpoints" / "iter_000001.pt").write_bytes(b"")
    assert _cli(["eval", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "holds no checkpoint that loads" in err and "iter_000001.pt does not load" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- reused folders


def test_a_new_run_refuses_the_folder_of_a_run_stopped_before_its_first_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.iterations=4", "trainer.checkpoint_every=3"]
    _stop_in_update(monkeypatch, at=3)
    with pytest.raises(_Stop):
        run_experiment(load_config(CONFIG, args), run_dir)
    monkeypatch.undo()
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert _iterations(run_dir) == [1, 2]

    assert _cli(["train", CONFIG, *args, "agent.hidden_size=16", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir} holds files of a run that has no checkpoint" in err
    assert "config.yaml" in err and "metrics.csv" in err and "tb" in err
    assert "delete the folder or choose another one" in err
    # Nothing was appended or overwritten.
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    # A file is no run folder.
    (tmp_path / "file").write_text("")
    assert _cli(["train", CONFIG, *args, "--run-dir", str(tmp_path / "file")]) == 2
    assert "file is a file, not a folder for a run" in capsys.readouterr().err
    # An empty folder is fine.
    (tmp_path / "empty").mkdir()
    assert _cli(["train", CONFIG, *args, "--run-dir", str(tmp_path / "empty")]) == 0


# --------------------------------------------------------------------------- TensorBoard


def _tensorboard_steps(run_dir: Path, tag: str) -> list[list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for path in sorted((run_dir / "tb").glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path))
        events.Reload()
        steps.append(
            [e.step for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []
        )
    return steps


def test_tensorboard_after_a_resume_holds_each_step_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped in iteration 4 after its checkpoint of iteration 2 (iteration 3
    logged), resumed to 4: every training step once across the event files, as in
    metrics.csv."""
    args = [*TINY, "trainer.iterations=4", "trainer.checkpoint_every=2", "trainer.eval_every=1"]
    run_dir = tmp_path / "run"
    _stop_in_update(monkeypatch, at=4)
    with pytest.raises(_Stop):
        run_experiment(load_config(CONFIG, args), run_dir)
    monkeypatch.undo()
    assert _iterations(run_dir) == [1, 2, 3]
    time.sleep(1.1)  # event files are named by the second they were opened in
    run_experiment(load_config(CONFIG, args), run_dir, resume=True)

    per_file = _tensorboard_steps(run_dir, "train/return_mean")
    assert len(per_file) == 2
    steps = [s for file in per_file for s in file]
    assert steps == [80, 160, 240, 320]  # 2 tasks x 2 episodes x 20 steps per iteration
    evals = [s for file in _tensorboard_steps(run_dir, "eval/return_k1") for s in file]
    assert evals == [80, 160, 240, 320]


# --------------------------------------------------------------------------- metrics.csv


GRADIENT_TINY = [
    "env.train_tasks=4",
    "env.test_tasks=2",
    "sampler.num_envs=2",
    "agent.meta_batch_size=2",
    "agent.episodes_per_trial=2",
    "agent.hidden_sizes=[8]",
    "evaluation.episodes=4",
    "evaluation.baselines=[]",
]
AGENT_RUNS = {
    "rl2": (CONFIG, TINY),
    "maml_trpo": (str(ROOT / "configs" / "maml_trpo_point_robot.yaml"), GRADIENT_TINY),
    "promp": (str(ROOT / "configs" / "promp_point_robot.yaml"), GRADIENT_TINY),
    "pearl": (
        str(ROOT / "configs" / "pearl_point_robot.yaml"),
        [
            "env.train_tasks=4",
            "env.test_tasks=2",
            "sampler.num_envs=2",
            "agent.hidden_sizes=[16]",
            "agent.encoder_hidden_sizes=[16]",
            "agent.num_initial_steps=40",
            "agent.tasks_per_iteration=2",
            "agent.num_steps_prior=40",
            "agent.num_extra_rl_steps_posterior=20",
            "agent.num_train_steps_per_itr=2",
            "agent.batch_size=8",
            "agent.embedding_batch_size=6",
            "agent.meta_batch_size=2",
            "evaluation.baselines=[]",
        ],
    ),
    "ppo": (
        str(ROOT / "configs" / "ppo_hopper_adr.yaml"),
        [
            "env.test_tasks=2",
            "sampler.num_envs=2",
            "agent.meta_batch_size=2",
            "agent.minibatch_size=256",
            "evaluation.baselines=[]",
        ],
    ),
}


@pytest.mark.parametrize("agent", list(AGENT_RUNS))
def test_every_metrics_column_is_described_in_columns_md(agent: str, tmp_path: Path) -> None:
    """Each agent's metrics.csv (PPO with an ADR schedule: its randomization.* columns
    too) has every column described in columns.md, beside it."""
    config_file, overrides = AGENT_RUNS[agent]
    common = ["trainer.iterations=1", "trainer.eval_every=0", "trainer.progress=false"]
    run_dir = run_experiment(load_config(config_file, [*overrides, *common]), tmp_path / "run")
    with open(run_dir / "metrics.csv", newline="") as f:
        columns = next(csv.reader(f))
    doc = (run_dir / "columns.md").read_text()
    table = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2].strip()
        for line in doc.split("## eval.csv")[0].splitlines()
        if line.startswith("| `")
    }
    assert list(table) == columns
    assert all(text and "not described" not in text for text in table.values()), table
    with open(run_dir / "eval.csv", newline="") as f:
        eval_columns = next(csv.reader(f))
    assert all(f"| `{name}` |" in doc.split("## eval.csv")[1] for name in eval_columns)
    assert "[columns.md](columns.md)" in (run_dir / "report.md").read_text()


def test_rl2_metrics_hold_each_return_once(tmp_path: Path) -> None:
    """The returns of an iteration are return_mean and return_k1..K, not repeated under
    other names (return_episode_k, a trial sum)."""
    config = load_config(CONFIG, [*TINY, "trainer.iterations=1", "agent.episodes_per_trial=3"])
    run_dir = run_experiment(config, tmp_path / "run")
    with open(run_dir / "metrics.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    returns = [k for k in row if "return" in k]
    assert returns == ["return_mean", "return_k1", "return_k2", "return_k3"]
    ks = [float(row[f"return_k{k}"]) for k in (1, 2, 3)]
    assert float(row["return_mean"]) == pytest.approx(sum(ks) / 3)


def test_a_run_folder_written_before_a_rename_resumes_and_evaluates(tmp_path: Path) -> None:
    """A run whose config.yaml holds the agent's old names (PPO's
    ``tasks_per_iteration`` and ``episodes_per_task``) resumes and evaluates: the run
    folder's own config is read under the new names, and the resumed run writes them."""
    config_file, overrides = AGENT_RUNS["ppo"]
    common = ["trainer.iterations=1", "trainer.eval_every=0", "trainer.progress=false"]
    run_dir = run_experiment(load_config(config_file, [*overrides, *common]), tmp_path / "run")
    saved = run_dir / "config.yaml"
    text = saved.read_text()
    assert "  meta_batch_size: 2\n  episodes_per_trial: 1\n" in text
    saved.write_text(
        text.replace("meta_batch_size:", "tasks_per_iteration:").replace(
            "episodes_per_trial:", "episodes_per_task:"
        )
    )
    assert _cli(["train", "--resume", str(run_dir), "trainer.iterations=2"]) == 0
    assert _iterations(run_dir) == [1, 2]
    assert "  meta_batch_size: 2\n  episodes_per_trial: 1\n" in saved.read_text()
    saved.write_text(saved.read_text().replace("meta_batch_size:", "tasks_per_iteration:"))
    assert _cli(["eval", str(run_dir)]) == 0
    assert (run_dir / "reevaluations").is_dir()


# --------------------------------------------------------------------------- metarl eval


def test_eval_writes_beside_the_run_named_by_its_settings(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(finished_run, tmp_path / "run")
    own = {n: (run_dir / n).read_bytes() for n in ("report.md", "results.json", "adaptation.png")}
    assert _cli(["eval", str(run_dir), "--episodes", "5"]) == 0
    out = run_dir / "reevaluations" / "iteration2_episodes5_seed0"
    assert f"evaluation folder: {out}" in capsys.readouterr().out
    # The run's own files are as training wrote them.
    assert {n: (run_dir / n).read_bytes() for n in own} == own
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 5 and len(results["methods"]["rl2"]["mean"]) == 5
    assert (out / "adaptation.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "K = 5 consecutive episodes" in report and "k=5" in report
    assert "re-evaluation (`metarl eval`) of the run in [../..](../../)" in report
    assert "its checkpoint of iteration 2" in report
    assert "baseline training included" not in report and "(0 s" not in report
    assert "[metrics.csv](../../metrics.csv)" in report
    # Only random as a baseline: nothing said of training multi-task or oracle baselines.
    assert "- Baselines: random.\n" in report and "Stable-Baselines3" not in report
    assert "the run's own results and report are in [../../report.md]" in report
    # The same settings again give the same numbers in the same folder.
    assert _cli(["eval", str(run_dir), "--episodes", "5"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["methods"]["rl2"]["returns"] == results["methods"]["rl2"]["returns"]
    assert sorted(p.name for p in (run_dir / "reevaluations").iterdir()) == [out.name]


def test_a_reevaluation_of_a_stopped_run_says_it_has_no_report_of_its_own(
    finished_run: Path, tmp_path: Path
) -> None:
    run_dir = _copy(finished_run, tmp_path / "run")
    for name in ("report.md", "results.json", "adaptation.png"):
        (run_dir / name).unlink()  # as a run stopped before its final meta-test
    assert _cli(["eval", str(run_dir)]) == 0
    report = next((run_dir / "reevaluations").glob("*/report.md")).read_text()
    assert "the run has no report of its own (it stopped before its end)" in report


def test_export_and_eval_name_what_is_wrong_with_their_paths(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    assert _cli(["export", str(finished_run), str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{folder} is a folder; give the file to write" in err and "Traceback" not in err
    assert list(folder.iterdir()) == []
    run_dir = _copy(finished_run, tmp_path / "run")
    shutil.rmtree(run_dir / "checkpoints")
    assert _cli(["eval", str(run_dir)]) == 2
    assert "holds no checkpoint (checkpoints/ does not exist)" in capsys.readouterr().err
