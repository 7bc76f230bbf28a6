"""Trainer mechanics (loop, logs, checkpoints, resume) and the meta-test protocol."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.agents.base import BatchAgent, CollectFn, TrainStep, TrainStepAgent
from metarl.agents.baselines import RandomAgent
from metarl.agents.policy import Policy, PolicyInput, PolicyOutput
from metarl.checkpoints import latest_checkpoint
from metarl.episodes import EpisodeBatch
from metarl.evaluation import AdaptationResult, evaluate_adaptation, plot_adaptation
from metarl.sampling import LocalSampler
from metarl.tasks import GoalTask, UniformBoxGoals
from metarl.trainer import Trainer, TrainerConfig
from metarl.training_log import EVAL_COLUMNS

ENV = "metarl/PointRobot-v0"


class _StepPolicy:
    """Moves by ``step`` plus noise; remembers (as state) the last reward of the trial."""

    def __init__(self, step: np.ndarray):
        self.step = step

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros(n)

    def act(self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]) -> Any:
        noise = np.stack([r.normal(size=2) for r in rngs]) * 0.02
        actions = (self.step + noise).astype(np.float32)
        return PolicyOutput(actions, inputs.prev_rewards.astype(np.float64), {"noise": noise})


class _ToyAgent(BatchAgent):
    """Learns a constant displacement by following the better half of its episodes."""

    episodes_per_trial = 2
    tasks_per_iteration = 3

    def __init__(self) -> None:
        self.step = np.zeros(2)
        self.updates = 0

    def policy(self) -> Policy:
        return _StepPolicy(self.step.copy())

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        self.updates += 1
        noise = np.concatenate([ep.agent_infos["noise"] for ep in batch])
        rewards = np.concatenate([ep.rewards for ep in batch])
        self.step = self.step + 0.5 * np.mean(noise * (rewards - rewards.mean())[:, None], 0)
        return {"step_norm": float(np.linalg.norm(self.step)), "updates": float(self.updates)}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step.copy(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = np.array(state["step"])
        self.updates = int(state["updates"])


def _tasks() -> tuple[list[Any], list[Any]]:
    sets = UniformBoxGoals(-1.0, 1.0).task_sets(seed=0, n_train=8, n_test=3)
    return sets.train, sets.test


def _train(run_dir: Path, iterations: int, resume: bool = False) -> Trainer:
    train, test = _tasks()
    config = TrainerConfig(iterations=iterations, eval_every=2, checkpoint_every=2, progress=False)
    sampler = LocalSampler(ENV, num_envs=2, seed=1)
    trainer = Trainer(_ToyAgent(), sampler, train, test, run_dir, config)
    if resume:
        assert trainer.resume()
    trainer.train()
    return trainer


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.pop("wall_time")
    return rows


def test_run_folder_logs_and_checkpoints(tmp_path: Path) -> None:
    trainer = _train(tmp_path, 4)
    rows = _metrics(tmp_path)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    # 3 tasks x 2 episodes x 20 steps per iteration
    assert [int(r["env_steps"]) for r in rows] == [120, 240, 360, 480]
    assert {"return_mean", "return_k1", "return_k2", "step_norm"} <= set(rows[0])
    with open(tmp_path / "eval.csv", newline="") as f:
        evals = list(csv.DictReader(f))
    assert [(int(r["iteration"]), int(r["k"])) for r in evals] == [
        (i, k) for i in (2, 4) for k in (1, 2, 3)
    ]
    saved = json.loads((tmp_path / "eval" / "iter_000004.json").read_text())
    assert AdaptationResult.from_dict(saved).returns.shape == (3, 3)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "iter_000004.pt"
    assert list((tmp_path / "tb").iterdir())
    assert trainer.env_steps == 480


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    _train(tmp_path / "a", 3)
    _train(tmp_path / "b", 3)
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    _train(tmp_path / "full", 6)
    _train(tmp_path / "stopped", 4)
    # The stopped run also wrote an iteration past its last checkpoint: resume drops it.
    with open(tmp_path / "stopped" / "metrics.csv", "a") as f:
        f.write("5,600,0.0,0,0,0,0,0\n")
    resumed = _train(tmp_path / "stopped", 6, resume=True)
    assert resumed.iteration == 6
    assert _metrics(tmp_path / "stopped") == _metrics(tmp_path / "full")


def test_a_resumed_run_gets_the_agents_current_metric_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run folder whose metrics.csv holds a metric under a name the agent has renamed
    (``renamed_metrics``) resumes into one file under the new name, its rows kept."""
    _train(tmp_path / "full", 6)
    _train(tmp_path / "old", 4)
    path = tmp_path / "old" / "metrics.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[0] = ["step_length" if k == "step_norm" else k for k in rows[0]]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    monkeypatch.setattr(_ToyAgent, "renamed_metrics", {"step_length": "step_norm"}, raising=False)
    _train(tmp_path / "old", 6, resume=True)
    assert _metrics(tmp_path / "old") == _metrics(tmp_path / "full")
    assert "`step_norm`" in (tmp_path / "old" / "columns.md").read_text()


def test_eval_csv_gains_the_success_rate_column_on_resume(tmp_path: Path) -> None:
    """A run whose eval.csv was written without the success_rate column (before it
    existed) is resumed into one file with the full header, its old rows kept."""
    _train(tmp_path, 4)
    with open(tmp_path / "eval.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == EVAL_COLUMNS and EVAL_COLUMNS[-1] == "success_rate"
    with open(tmp_path / "eval.csv", "w", newline="") as f:
        csv.writer(f).writerows(row[:-1] for row in rows)
    _train(tmp_path, 6, resume=True)
    with open(tmp_path / "eval.csv", newline="") as f:
        after = list(csv.reader(f))
    assert after[0] == EVAL_COLUMNS and after[: len(rows)] == rows
    assert [int(r[0]) for r in after[1:]] == [2, 2, 2, 4, 4, 4, 6, 6, 6]
    assert {r[-1] for r in after[1:]} == {""}  # the dense point robot has no success flag


def test_evaluate_adaptation_protocol(tmp_path: Path) -> None:
    agent = _ToyAgent()
    agent.step = np.array([0.1, 0.0])
    tasks = [GoalTask((1.0, 0.0)), GoalTask((-1.0, 0.0))]
    result = evaluate_adaptation(agent, ENV, tasks, 3, seed=0)
    assert result.returns.shape == (2, 3) and result.env_steps == 2 * 3 * 20
    # Moving +x along 20 steps: far better on the goal at +x than on the one at -x.
    assert result.returns[0].mean() > result.returns[1].mean() + 10
    np.testing.assert_allclose(result.mean, result.returns.mean(axis=0))
    plot_adaptation({"toy": result}, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 5000
    with pytest.raises(ValueError, match="K .* must be a positive integer"):
        evaluate_adaptation(agent, ENV, tasks, 0)


def test_the_trainer_refuses_an_agent_of_neither_kind(tmp_path: Path) -> None:
    """The trainer runs a ``BatchAgent`` or a ``TrainStepAgent``; a baseline is neither."""
    train, test = _tasks()
    with (
        LocalSampler(ENV, num_envs=2, seed=1) as sampler,
        pytest.raises(TypeError, match="needs a BatchAgent .* or a TrainStepAgent .* RandomAgent"),
    ):
        Trainer(RandomAgent.for_env(ENV), sampler, train, test, tmp_path)


class _TwoCollections(TrainStepAgent):
    """Drives its own iteration: collects twice per iteration (one episode per task
    each time) and updates nothing."""

    tasks_per_iteration = 2

    def __init__(self) -> None:
        self.steps = 0

    def policy(self) -> Policy:
        return _StepPolicy(np.zeros(2))

    def train_step(self, collect: CollectFn, tasks: Sequence[Any]) -> TrainStep:
        self.steps += 1
        batches = [collect(self.policy(), tasks, 1) for _ in range(2)]
        return TrainStep(sum(b.num_steps for b in batches), {"collections": 2.0})

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])


def test_the_trainer_runs_each_kind_of_agent_its_way(tmp_path: Path) -> None:
    """A ``BatchAgent``: one trial of ``episodes_per_trial`` episodes per task, then
    ``update`` (metrics: the batch's returns and the update's); a ``TrainStepAgent``:
    its own ``train_step``, whose env steps and metrics the trainer logs as they are."""
    train, test = _tasks()
    config = TrainerConfig(iterations=2, eval_every=0, checkpoint_every=0, progress=False)
    with LocalSampler(ENV, num_envs=2, seed=1) as sampler:
        Trainer(_ToyAgent(), sampler, train, test, tmp_path / "batch", config).train()
        agent = _TwoCollections()
        Trainer(agent, sampler, train, test, tmp_path / "step", config).train()
    batch = _metrics(tmp_path / "batch")
    # 3 tasks x 2 episodes x 20 steps, then the toy agent's update.
    assert [int(r["env_steps"]) for r in batch] == [120, 240]
    assert list(batch[0]) == [
        "iteration",
        "env_steps",
        "return_mean",
        "return_k1",
        "return_k2",
        "step_norm",
        "updates",
    ]
    step = _metrics(tmp_path / "step")
    # 2 collections x 2 tasks x 1 episode x 20 steps.
    assert [int(r["env_steps"]) for r in step] == [80, 160]
    assert list(step[0]) == ["iteration", "env_steps", "collections"] and agent.steps == 2


def test_bad_trainer_config() -> None:
    with pytest.raises(ValueError, match="TrainerConfig.iterations must be a positive integer"):
        TrainerConfig(iterations=0)
    with pytest.raises(ValueError, match="TrainerConfig.eval_every must be a non-negative integer"):
        TrainerConfig(eval_every=-1)


class _PreparingAgent(_ToyAgent):
    """Collects one episode on every training task before the first iteration."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[Any] = []

    def prepare(self, collect: Any, train_tasks: Any) -> int:
        self.prepared.append(list(train_tasks))
        return collect(self.policy(), train_tasks, 1).num_steps


def test_prepare_runs_once_before_the_first_iteration(tmp_path: Path) -> None:
    train, test = _tasks()
    config = TrainerConfig(iterations=2, eval_every=0, checkpoint_every=1, progress=False)
    agent = _PreparingAgent()
    with LocalSampler(ENV, num_envs=2, seed=1) as sampler:
        trainer = Trainer(agent, sampler, train, test, tmp_path, config)
        trainer.train()
    assert agent.prepared == [train]
    # 8 tasks x 1 episode x 20 steps before iteration 1, then 3 x 2 x 20 per iteration.
    assert [int(r["env_steps"]) for r in _metrics(tmp_path)] == [160 + 120, 160 + 240]
    # A resumed run has prepared already (its data is in the checkpoint): not again.
    resumed_agent = _PreparingAgent()
    with LocalSampler(ENV, num_envs=2, seed=1) as sampler:
        resumed = Trainer(
            resumed_agent, sampler, train, test, tmp_path, dataclasses.replace(config, iterations=3)
        )
        assert resumed.resume()
        resumed.train()
    assert resumed_agent.prepared == []
