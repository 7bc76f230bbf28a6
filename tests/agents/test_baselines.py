"""Baselines: random, multi-task and oracle SB3 policies under the meta-test protocol."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import metarl  # noqa: F401  (registers the environments)
from metarl.agents.base import Agent, BatchAgent, TrainStepAgent
from metarl.agents.baselines import (
    SHORT_HORIZON_PPO,
    RandomAgent,
    SB3Baseline,
    train_multitask,
    train_oracle,
)
from metarl.agents.policy import Policy, PolicyInput
from metarl.envs import task_distribution
from metarl.envs.wrappers import TaskInObservation
from metarl.evaluation import AdaptationResult, evaluate_adaptation
from metarl.sampling import LocalSampler
from metarl.tasks import GoalTask, TaskSets

POINT = "metarl/PointRobot-v0"
# The learning test's budget: measured under load on 2 cores, about 15 s per policy.
STEPS = 20_000


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Evaluation runs the policies' small MLPs in this process; on a loaded 2-core machine
    # extra torch threads only contend (training sets its own threads: torch_threads=1).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tasks() -> TaskSets:
    return task_distribution(gym.make(POINT)).task_sets(0, 80, 20)


@pytest.fixture(scope="module")
def trained(tasks: TaskSets) -> tuple[SB3Baseline, SB3Baseline]:
    multitask = train_multitask(POINT, tasks.train, STEPS, seed=0, algo_kwargs=SHORT_HORIZON_PPO)
    oracle = train_oracle(POINT, tasks.train, STEPS, seed=0, algo_kwargs=SHORT_HORIZON_PPO)
    return multitask, oracle


def _evaluate(agent: Any, tasks: list[Any], K: int = 2, seed: int = 0) -> AdaptationResult:
    with LocalSampler(POINT, num_envs=len(tasks), seed=seed, wrappers=agent.env_wrappers) as s:
        return evaluate_adaptation(agent, s, tasks, K)


@pytest.mark.slow
def test_oracle_beats_multitask_beats_random(
    tasks: TaskSets, trained: tuple[SB3Baseline, SB3Baseline]
) -> None:
    """Measured with seed 0 (and seeds 1, 2 for the margins), mean return per episode over
    the 20 test tasks and K=2 episodes: random -19.6, multi-task -15.4 (-14.7..-15.4),
    oracle -7.3 (-7.2..-8.2). With learning_rate=0 (a learner that does not learn) both
    PPO policies return -18.8, failing every assertion below."""
    multitask, oracle = trained
    random = _evaluate(RandomAgent.for_env(POINT), tasks.test).returns.mean()
    mt = _evaluate(multitask, tasks.test).returns.mean()
    orc = _evaluate(oracle, tasks.test).returns.mean()
    assert orc > -10.5, (random, mt, orc)
    assert orc > mt + 5.0, (random, mt, orc)
    assert mt > random + 2.0, (random, mt, orc)


def test_each_baseline_gives_returns_of_shape_tasks_by_k(
    tasks: TaskSets, trained: tuple[SB3Baseline, SB3Baseline]
) -> None:
    multitask, oracle = trained
    test = tasks.test[:5]
    # The random and multi-task policies run on plain task envs: a registered id will do.
    for agent in (RandomAgent.for_env(POINT), multitask):
        result = evaluate_adaptation(agent, POINT, test, 3)
        assert result.returns.shape == (5, 3)
        assert result.env_steps == 5 * 3 * 20
    result = _evaluate(oracle, test, K=3)
    assert result.returns.shape == (5, 3)


def test_evaluation_is_reproducible(
    tasks: TaskSets, trained: tuple[SB3Baseline, SB3Baseline]
) -> None:
    _, oracle = trained
    first = _evaluate(oracle, tasks.test[:4], seed=3).returns
    again = _evaluate(oracle, tasks.test[:4], seed=3).returns
    other = _evaluate(oracle, tasks.test[:4], seed=4).returns
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_oracle_on_plain_envs_says_how_to_wrap_them(
    tasks: TaskSets, trained: tuple[SB3Baseline, SB3Baseline]
) -> None:
    _, oracle = trained
    assert oracle.env_wrappers == (TaskInObservation,)
    plain = LocalSampler(POINT, num_envs=2, seed=0)
    with pytest.raises(ValueError, match=r"shape \(4,\), got \(2,\).*TaskInObservation"):
        evaluate_adaptation(oracle, plain, tasks.test[:2], 1)
    # Given an env id, evaluate_adaptation wraps the envs as the agent asks.
    assert evaluate_adaptation(oracle, POINT, tasks.test[:2], 1).returns.shape == (2, 1)


def test_policy_noise_comes_from_the_row_generators(
    trained: tuple[SB3Baseline, SB3Baseline], policy_input: Callable[..., PolicyInput]
) -> None:
    multitask, _ = trained
    policy = multitask.policy()
    assert isinstance(policy, Policy) and policy.initial_state(3) is None
    obs = np.random.default_rng(0).uniform(-1, 1, size=(3, 2))

    def rngs(*seeds: int) -> list[np.random.Generator]:
        return [np.random.default_rng(s) for s in seeds]

    a = policy.act(policy_input(obs), None, rngs(1, 2, 3)).actions
    b = policy.act(policy_input(obs), None, rngs(1, 2, 3)).actions
    c = policy.act(policy_input(obs), None, rngs(1, 9, 3)).actions
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[[0, 2]], c[[0, 2]])  # row i depends on rngs[i] only
    assert not np.array_equal(a[1], c[1])
    assert a.dtype == np.float32 and np.all(np.abs(a) <= 0.1)
    # deterministic=True: the mean, clipped to the action bounds as SB3 does.
    det = SB3Baseline(multitask.model, deterministic=True).policy()
    out = det.act(policy_input(obs), None, rngs(1, 2, 3))
    np.testing.assert_array_equal(out.actions, np.clip(out.infos["mean"], -0.1, 0.1))
    sb3, _ = multitask.model.predict(obs.astype(np.float32), deterministic=True)
    np.testing.assert_allclose(out.actions, sb3, rtol=1e-6)


def test_state_dict_round_trip(
    trained: tuple[SB3Baseline, SB3Baseline], policy_input: Callable[..., PolicyInput]
) -> None:
    _, oracle = trained
    state = oracle.state_dict()
    assert state["algo"] == "ppo" and state["observe_task"] is True
    copy = SB3Baseline.from_state_dict(state)
    assert copy.observe_task and copy.env_wrappers == (TaskInObservation,)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(4, 4))
    rngs = [np.random.default_rng(i) for i in range(4)]
    expected = oracle.policy().act(policy_input(obs), None, rngs).actions
    rngs = [np.random.default_rng(i) for i in range(4)]
    np.testing.assert_array_equal(
        copy.policy().act(policy_input(obs), None, rngs).actions, expected
    )
    other = SB3Baseline(trained[0].model)
    other.load_state_dict(state)
    assert other.observe_task
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"algo": "ppo"})
    with pytest.raises(ValueError, match=r"algo must be one of \['ppo', 'sac'\]"):
        other.load_state_dict({**state, "algo": "a2c"})


def test_a_baseline_is_evaluated_only(trained: tuple[SB3Baseline, SB3Baseline]) -> None:
    """Stable-Baselines3 trains a baseline, not the trainer: it is an ``Agent`` of
    neither learner kind, with neither ``update`` nor ``train_step``."""
    for agent in (*trained, RandomAgent.for_env(POINT)):
        assert isinstance(agent, Agent)
        assert not isinstance(agent, BatchAgent | TrainStepAgent)
        assert not hasattr(agent, "update") and not hasattr(agent, "train_step")


def test_same_seed_same_model_and_torch_threads_restored(tasks: TaskSets) -> None:
    threads = torch.get_num_threads()
    kwargs: dict[str, Any] = {"algo_kwargs": SHORT_HORIZON_PPO, "n_envs": 2}
    a = train_multitask(POINT, tasks.train, 512, seed=5, **kwargs)
    b = train_multitask(POINT, tasks.train, 512, seed=5, **kwargs)
    assert torch.get_num_threads() == threads
    for (name, p), q in zip(
        a.model.policy.state_dict().items(), b.model.policy.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


def test_training_leaves_no_logger_folder_in_the_temp_dir(
    tasks: TaskSets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    train_multitask(POINT, tasks.train, 64, seed=0, algo_kwargs=SHORT_HORIZON_PPO, n_envs=1)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("SB3-")] == []


def test_sac_baseline_acts_in_bounds(
    tasks: TaskSets, policy_input: Callable[..., PolicyInput]
) -> None:
    agent = train_oracle(
        POINT,
        tasks.train,
        200,
        seed=0,
        algo="sac",
        n_envs=1,
        algo_kwargs={"learning_starts": 100, "batch_size": 32},
    )
    assert agent.algo == "sac"
    result = _evaluate(agent, tasks.test[:3])
    assert result.returns.shape == (3, 2)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(5, 4))
    out = agent.policy().act(policy_input(obs), None, [np.random.default_rng(i) for i in range(5)])
    assert np.all(np.abs(out.actions) <= 0.1)
    copy = SB3Baseline.from_state_dict(agent.state_dict())
    assert copy.algo == "sac"


def test_random_agent(policy_input: Callable[..., PolicyInput]) -> None:
    agent = RandomAgent.for_env(POINT)
    policy = agent.policy()
    obs = np.zeros((64, 2))
    rngs = [np.random.default_rng(i) for i in range(64)]
    actions = policy.act(policy_input(obs), None, rngs).actions
    assert actions.shape == (64, 2) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 0.1) and actions.std() > 0.04
    assert agent.state_dict() == {} and agent.env_wrappers == ()
    with pytest.raises(ValueError, match="bounded gymnasium.spaces.Box"):
        RandomAgent(gym.spaces.Box(-np.inf, np.inf, (2,)))


def test_training_errors_name_the_argument(tasks: TaskSets) -> None:
    with pytest.raises(ValueError, match=r"algo must be one of \['ppo', 'sac'\], got 'dqn'"):
        train_multitask(POINT, tasks.train, 100, seed=0, algo="dqn")
    with pytest.raises(ValueError, match="total_steps must be a positive integer"):
        train_multitask(POINT, tasks.train, 0, seed=0)
    with pytest.raises(ValueError, match="tasks must not be empty"):
        train_oracle(POINT, [], 100, seed=0)
    with pytest.raises(ValueError, match=r"tasks\[0\]: .*outside the allowed range"):
        train_oracle(POINT, [GoalTask((2.0, 2.0))], 100, seed=0)
