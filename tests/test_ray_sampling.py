"""RaySampler: same batches as LocalSampler, actor-kill recovery, bad input.

One Ray instance (2 CPUs) serves the whole module; each test closes its sampler
before the next starts, so that two samplers never wait for each other's CPUs.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import ray
import ray.cloudpickle
import torch

import metarl  # noqa: F401  (registers the environments)
from metarl.agents.policy import PolicyInput, PolicyOutput
from metarl.episodes import EpisodeBatch
from metarl.ray_sampling import RaySampler, WorkerFailedError, split_trials
from metarl.sampling import LocalSampler, Sampler, WorkerInfo
from metarl.tasks import GoalTask, Task

POINT = "metarl/PointRobot-v0"
CHEETAH = "metarl/HalfCheetahVel-v0"


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    """One local Ray instance for the module; the samplers reuse it."""
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(
        address="local",  # a private instance, whatever else runs on the machine
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        object_store_memory=256 * 1024**2,
    )
    # The policies and the env wrapper below travel to the workers by value, as they
    # would have to on a cluster whose nodes do not have this test file.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


# -- policies --------------------------------------------------------------------------


class RandomPolicy:
    """Stateless: uniform actions in ``[-scale, scale]`` drawn from each row's generator."""

    def __init__(self, action_dim: int, scale: float):
        self.action_dim = action_dim
        self.scale = scale

    def initial_state(self, n: int) -> None:
        return None

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        actions = np.stack(
            [r.uniform(-self.scale, self.scale, size=self.action_dim) for r in rngs]
        ).astype(np.float32)
        return PolicyOutput(actions, None, {"u": actions.sum(axis=1)})


class RewardSumPolicy:
    """Recurrent: its state is the running sum of the rewards of the trial so far.

    The state carries over the episodes of a trial (the sampler resets it only at a
    trial's start), and the action depends on it, so a sampler that reset it between
    episodes, or mixed up trials, would give different actions.
    """

    def __init__(self, action_dim: int, scale: float):
        self.action_dim = action_dim
        self.scale = scale
        self.weights = np.linspace(-1.0, 1.0, action_dim)

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros(n)

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        # prev_rewards is the reward of the previous step of the trial (0 at its start),
        # also across an episode boundary.
        state = state + inputs.prev_rewards.astype(np.float64)
        noise = np.stack([r.normal(size=self.action_dim) for r in rngs])
        mean = np.tanh(0.1 * state[:, None] * self.weights + inputs.observations[:, :1])
        actions = (self.scale * np.clip(mean + 0.3 * noise, -1, 1)).astype(np.float32)
        return PolicyOutput(actions, state, {"reward_sum": state.copy()})


class TorchGRUPolicy:
    """A small torch GRU (hidden state across the trial), inference pinned to one thread."""

    def __init__(self, obs_dim: int, action_dim: int, scale: float):
        gen = torch.Generator().manual_seed(3)
        self.cell = torch.nn.GRUCell(obs_dim + 1, 8)
        self.head = torch.nn.Linear(8, action_dim)
        with torch.no_grad():
            for p in [*self.cell.parameters(), *self.head.parameters()]:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.scale = scale

    def initial_state(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 8)

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            x = torch.as_tensor(
                np.concatenate([inputs.observations, inputs.prev_rewards[:, None]], axis=1),
                dtype=torch.float32,
            )
            with torch.no_grad():
                h = self.cell(x, state)
                mean = torch.tanh(self.head(h)).numpy().astype(np.float64)
        finally:
            torch.set_num_threads(threads)
        noise = np.stack([r.normal(size=mean.shape[1]) for r in rngs])
        actions = (self.scale * np.clip(mean + 0.2 * noise, -1, 1)).astype(np.float32)
        return PolicyOutput(actions, h, {"mean": mean})


def make_policy(kind: str, env_id: str) -> Any:
    env: Any = gym.make(env_id)
    obs_dim = env.observation_space.shape[0]
    action_dim = env.action_space.shape[0]
    scale = float(env.action_space.high[0])
    env.close()
    if kind == "random":
        return RandomPolicy(action_dim, scale)
    if kind == "reward_sum":
        return RewardSumPolicy(action_dim, scale)
    return TorchGRUPolicy(obs_dim, action_dim, scale)


def sample_tasks(env_id: str, n: int, seed: int = 0) -> list[Task]:
    env = gym.make(env_id)
    dist = env.unwrapped.task_distribution  # type: ignore[attr-defined]
    env.close()
    return list(dist.sample(np.random.default_rng(seed), n))


class SlowStep(gym.Wrapper[Any, Any, Any, Any]):
    """Sleeps ``delay`` seconds before each step (the data is the wrapped env's)."""

    def __init__(self, env: gym.Env[Any, Any], delay: float):
        super().__init__(env)
        self.delay = delay

    def step(self, action: Any) -> Any:
        time.sleep(self.delay)
        return self.env.step(action)


# -- shares ----------------------------------------------------------------------------


def test_split_trials_whole_waves() -> None:
    assert split_trials(7, 2, 2) == [range(0, 4), range(4, 7)]
    assert split_trials(20, 2, 4) == [range(0, 12), range(12, 20)]
    assert split_trials(8, 3, 2) == [range(0, 4), range(4, 6), range(6, 8)]
    assert split_trials(3, 2, 4) == [range(0, 3), range(3, 3)]
    for n, w, e in [(1, 1, 1), (5, 3, 1), (13, 4, 3), (2, 5, 2)]:
        shares = split_trials(n, w, e)
        assert len(shares) == w
        assert [t for s in shares for t in s] == list(range(n))
        assert all(s.start % e == 0 for s in shares if len(s))


# -- same batches as LocalSampler ------------------------------------------------------


def _assert_same_batches(got: list[EpisodeBatch], expected: list[EpisodeBatch]) -> None:
    assert len(got) == len(expected)
    for i, (batch, want) in enumerate(zip(got, expected, strict=True)):
        assert isinstance(batch, EpisodeBatch)
        assert len(batch) == len(want.tasks) * want.episodes_per_trial
        assert batch.tasks == want.tasks
        assert batch == want, f"collect {i} differs from LocalSampler's"


def _check_reward_sum_state(batch: EpisodeBatch) -> None:
    """RewardSumPolicy's state crossed the episode boundaries of every trial."""
    for trial in batch.trials():
        assert trial[1].agent_infos["reward_sum"][0] == pytest.approx(
            trial[0].rewards.sum(),
            rel=1e-6,  # prev_rewards are float32
        )


def test_point_robot_same_batches_as_local_and_errors_inside_workers() -> None:
    """Two consecutive collects per policy: bit-equal to LocalSampler's, call after call.

    7 tasks in waves of 2: the last wave is partial, and the two workers' shares are
    trials 0..3 and 4..6. A last request of 2 tasks is a single wave: worker 1 idles.
    Between them, requests that fail (in the driver or inside a worker) raise the
    error LocalSampler raises and leave the call index and the workers as they were.
    """
    policies = [make_policy(kind, POINT) for kind in ("random", "reward_sum", "torch_gru")]
    tasks = sample_tasks(POINT, 7)
    requests = [(p, tasks, 3) for p in policies for _ in range(2)]
    requests.append((policies[1], sample_tasks(POINT, 2, seed=9), 2))
    with LocalSampler(POINT, num_envs=2, seed=11) as local:
        expected = [local.collect(p, t, k) for p, t, k in requests]
    with RaySampler(POINT, num_workers=2, envs_per_worker=2, seed=11) as sampler:
        got = [sampler.collect(p, t, k) for p, t, k in requests[:-1]]
        with pytest.raises(ValueError, match="episodes_per_trial"):
            sampler.collect(policies[0], tasks, 0)
        outside = [*tasks[:4], GoalTask(goal=(5.0, 0.0))]  # raised by worker 1's env
        with pytest.raises(ValueError, match="outside the allowed range"):
            sampler.collect(policies[0], outside, 1)
        got.append(sampler.collect(*requests[-1]))
        assert sampler.calls == len(requests)
        assert sampler.retried_shares == 0
    _assert_same_batches(got, expected)
    for i in range(0, 6, 2):
        assert got[i] != got[i + 1]  # the call index advanced: new seeds
    _check_reward_sum_state(got[2])
    with pytest.raises(RuntimeError, match="closed"):
        sampler.collect(policies[0], tasks, 1)
    assert ray.is_initialized()  # the sampler did not start Ray, so it leaves it running


def test_the_sampler_contract_counts_calls_and_names_workers() -> None:
    """What the trainer and the runner use of a sampler is declared on ``Sampler``:
    ``calls`` (the trial seeds' call index, saved in checkpoints) and ``worker_info``
    (the run folder's ``workers.json``): one entry per Ray worker, none locally."""
    policy = make_policy("random", POINT)
    tasks = sample_tasks(POINT, 2)
    with (
        LocalSampler(POINT, num_envs=2, seed=3) as local,
        RaySampler(POINT, num_workers=1, envs_per_worker=2, seed=3) as ray_sampler,
    ):
        for sampler in (local, ray_sampler):
            assert isinstance(sampler, Sampler) and sampler.calls == 0
            sampler.calls = 4  # as a resumed trainer sets it
            first = sampler.collect(policy, tasks, 1)
            assert sampler.calls == 5
        assert local.worker_info() == []
        workers = ray_sampler.worker_info()
        assert [type(w) for w in workers] == [WorkerInfo]
        assert [w.pid for w in workers] == ray_sampler.worker_pids() != [os.getpid()]
        assert workers[0].peak_rss_bytes > 0
        local.calls = 4
        _assert_same_batches([local.collect(policy, tasks, 1)], [first])


def test_half_cheetah_same_batches_as_local() -> None:
    policies = [make_policy(kind, CHEETAH) for kind in ("random", "reward_sum")]
    tasks = sample_tasks(CHEETAH, 3)  # shares: trials 0..1 and 2
    requests = [(p, tasks, 2) for p in policies for _ in range(2)]
    with LocalSampler(CHEETAH, num_envs=2, seed=5) as local:
        expected = [local.collect(p, t, k) for p, t, k in requests]
    with RaySampler(CHEETAH, num_workers=2, envs_per_worker=2, seed=5) as sampler:
        got = [sampler.collect(p, t, k) for p, t, k in requests]
    _assert_same_batches(got, expected)
    assert got[0] != got[1]
    # These results came through the shared-memory object store; the batch owns copies.
    assert all(ep.observations.flags.writeable for ep in got[0])
    _check_reward_sum_state(got[2])


class TrialEchoPolicy:
    """Zero actions; records the trial the sampler reports for each row."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim

    def initial_state(self, n: int) -> None:
        return None

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        n = len(inputs.trials)
        actions = np.zeros((n, self.action_dim), dtype=np.float32)
        return PolicyOutput(actions, None, {"trial": np.array(inputs.trials, copy=True)})


def test_rows_know_their_trial_and_per_task_policies_match_local() -> None:
    """``PolicyInput.trials`` is the trial's index in the whole collect call on every
    worker, so a policy with one parameter set per task (MAML's adapted policies) acts
    with each task's own parameters, bit-equal to LocalSampler."""
    from metarl.agents.maml_trpo import MAMLTRPOAgent, MAMLTRPOConfig
    from metarl.agents.mlp_policy import GaussianMLPPolicy

    env: Any = gym.make(POINT)
    agent = MAMLTRPOAgent(
        env.observation_space, env.action_space, MAMLTRPOConfig(hidden_sizes=(8,))
    )
    env.close()
    tasks = sample_tasks(POINT, 5)  # shares: trials 0..3 and 4
    gen = torch.Generator().manual_seed(0)
    per_task = {
        k: v.detach() + torch.randn(len(tasks), *v.shape, generator=gen)
        for k, v in agent.params().items()
    }
    meta = GaussianMLPPolicy(agent.network, per_task, agent.scaling, (2,), np.arange(len(tasks)))
    echo = TrialEchoPolicy(2)
    with LocalSampler(POINT, num_envs=2, seed=3) as local:
        expected = [local.collect(p, tasks, 2) for p in (echo, meta)]
    with RaySampler(POINT, num_workers=2, envs_per_worker=2, seed=3) as sampler:
        got = [sampler.collect(p, tasks, 2) for p in (echo, meta)]
    _assert_same_batches(got, expected)
    for ep in got[0]:
        np.testing.assert_array_equal(ep.agent_infos["trial"], ep.trial)
    # Each task's parameters: a policy with the sets permuted acts differently.
    permuted = GaussianMLPPolicy(
        agent.network, per_task, agent.scaling, (2,), np.arange(5)[::-1].copy()
    )
    with LocalSampler(POINT, num_envs=2, seed=3) as local:
        local.calls = 1
        other = local.collect(permuted, tasks, 2)
    assert other.trials()[0] != expected[1].trials()[0]


def test_pearl_collects_the_same_data_on_ray_as_locally() -> None:
    """PEARL's prior- and posterior-z collections (one z per trial) through Ray workers
    fill its replay buffers exactly as through LocalSampler."""
    from metarl.agents.pearl import PEARLAgent, PEARLConfig

    tasks = sample_tasks(POINT, 3)
    config = PEARLConfig(
        max_path_length=20,
        hidden_sizes=(8,),
        encoder_hidden_sizes=(8,),
        num_initial_steps=40,
        tasks_per_iteration=2,
        num_steps_prior=40,
        num_extra_rl_steps_posterior=20,
        num_train_steps_per_itr=2,
        batch_size=4,
        embedding_batch_size=4,
        meta_batch_size=2,
    )
    env: Any = gym.make(POINT)
    agents = [PEARLAgent(env.observation_space, env.action_space, config) for _ in range(2)]
    env.close()
    with LocalSampler(POINT, num_envs=2, seed=4) as local:
        agents[0].prepare(local.collect, tasks)
        agents[0].train_step(local.collect, tasks[:2])
    with RaySampler(POINT, num_workers=2, envs_per_worker=2, seed=4) as sampler:
        agents[1].prepare(sampler.collect, tasks)
        agents[1].train_step(sampler.collect, tasks[:2])
    for task in tasks:
        a, b = agents[0].replay[task], agents[1].replay[task]
        assert len(a) == len(b) == (40 if task == tasks[2] else 100)
        np.testing.assert_array_equal(a.observations[: len(a)], b.observations[: len(b)])
        np.testing.assert_array_equal(a.actions[: len(a)], b.actions[: len(b)])


# -- fault tolerance -------------------------------------------------------------------


def _kill_during_collect(
    sampler: RaySampler, policy: Any, tasks: list[Task], k: int, after_s: float
) -> tuple[EpisodeBatch | None, int, BaseException | None]:
    """Run a collect and SIGKILL worker 1's process ``after_s`` seconds into it."""
    victim = sampler.worker_pids()[1]
    timer = threading.Timer(after_s, os.kill, (victim, signal.SIGKILL))
    timer.start()
    try:
        return sampler.collect(policy, tasks, k), victim, None
    except BaseException as err:
        return None, victim, err
    finally:
        timer.cancel()


SLOW = [functools.partial(SlowStep, delay=0.01)]


def test_actor_killed_mid_collect_gives_the_complete_batch() -> None:
    policy = make_policy("reward_sum", POINT)
    tasks = sample_tasks(POINT, 8, seed=1)
    k = 2
    # Each worker's share: 2 waves x 2 episodes x 20 steps x 2 sub-envs x 10 ms = 1.6 s.
    with RaySampler(POINT, num_workers=2, envs_per_worker=2, seed=7, wrappers=SLOW) as sampler:
        batch, victim, err = _kill_during_collect(sampler, policy, tasks, k, after_s=0.6)
        assert err is None, err
        assert batch is not None
        assert sampler.retried_shares == 1  # the kill did land during the collect
        assert victim not in sampler.worker_pids()  # the worker was restarted
        again = sampler.collect(policy, tasks, k)  # the restarted worker serves on
    assert len(batch) == len(tasks) * k
    assert list(batch.tasks) == tasks
    assert [(ep.trial, ep.index_in_trial) for ep in batch] == [
        (t, i) for t in range(len(tasks)) for i in range(k)
    ]
    assert [ep.task for ep in batch] == [t for t in tasks for _ in range(k)]
    # The undisturbed reference: the wrapper only sleeps, so a fast local sampler
    # with the same seed gives the batch an undisturbed collect gives.
    with LocalSampler(POINT, num_envs=2, seed=7) as local:
        assert batch == local.collect(policy, tasks, k)
        assert again == local.collect(policy, tasks, k)


def test_dead_worker_is_replaced_when_ray_does_not_restart_it() -> None:
    policy = make_policy("random", POINT)
    tasks = sample_tasks(POINT, 8, seed=2)  # shares of 2 waves: 1.6 s
    with RaySampler(
        POINT, num_workers=2, envs_per_worker=2, seed=1, wrappers=SLOW, max_restarts=0
    ) as sampler:
        batch, victim, err = _kill_during_collect(sampler, policy, tasks, 2, after_s=0.6)
        assert err is None, err
        assert sampler.replacements == 1
        assert victim not in sampler.worker_pids()
    with LocalSampler(POINT, num_envs=2, seed=1) as local:
        assert batch == local.collect(policy, tasks, 2)


def test_gives_up_after_max_share_attempts() -> None:
    policy = make_policy("random", POINT)
    tasks = sample_tasks(POINT, 8, seed=2)  # shares of 2 waves: 1.6 s
    with RaySampler(
        POINT, num_workers=2, envs_per_worker=2, wrappers=SLOW, max_share_attempts=1
    ) as sampler:
        batch, _, err = _kill_during_collect(sampler, policy, tasks, 2, after_s=0.6)
        assert batch is None
        assert isinstance(err, WorkerFailedError)
        assert "trials 4..7" in str(err) and "max_share_attempts=1" in str(err)
        assert sampler.calls == 0


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_workers": 0}, "num_workers"),
        ({"num_workers": 1.5}, "num_workers"),
        ({"num_workers": True}, "num_workers"),
        ({"envs_per_worker": 0}, "envs_per_worker"),
        ({"envs_per_worker": "2"}, "envs_per_worker"),
        ({"cpus_per_worker": 0}, "cpus_per_worker"),
        ({"max_restarts": -2}, "max_restarts"),
        ({"max_share_attempts": 0}, "max_share_attempts"),
        ({"vectorization": "threads"}, "vectorization"),
        ({"placement": "wide"}, r"placement must be one of \['pack', 'spread'\]"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RaySampler(POINT, **kwargs)


def test_env_that_cannot_be_built_raises_its_own_error() -> None:
    with pytest.raises(gym.error.Error, match="NoSuchEnv"):
        RaySampler("metarl/NoSuchEnv-v0", num_workers=1, envs_per_worker=1)
