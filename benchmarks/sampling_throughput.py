"""Sampling throughput of one meta-batch (docs/benchmarks.md#p2), side by side in one run.

The meta-batch: ``--tasks`` HalfCheetahVel tasks x ``--episodes`` episodes x 200 steps
(default 20 x 10 x 200 = 40,000 env steps), actions from a 2 x 64 tanh MLP Gaussian
policy (``GaussianMLPPolicy`` over a ``GaussianHead``, inference on one thread). Collected by:

- ``local``: ``LocalSampler`` with ``--envs-per-worker`` sub-envs, in this process;
- ``ray-1`` / ``ray-2``: ``RaySampler`` with 1 and 2 workers of ``--envs-per-worker``
  sub-envs each, one CPU each (the worker count is what changes: with the default 10
  envs, 1 worker runs the 20 trials in 2 waves, 2 workers in 1 wave each);
- ``rllib-1`` / ``rllib-2``: RLlib's ``EnvRunnerGroup`` with the same number of
  remote env runners and envs per runner, PPO's default RLModule with
  ``fcnet_hiddens=[64, 64]`` (tanh), each runner sampling its share of the steps with
  ``EnvRunner.sample(num_timesteps=...)``, the env ``MultiTaskEnv`` over the same tasks;
- ``async-vector``: a plain loop over ``gymnasium.vector.AsyncVectorEnv`` (one
  process per task, same-step autoreset), the same policy in this process.

Every method is built first (workers started, envs made, one warm-up meta-batch),
then the methods are timed in turn, the order rotating, ``--repeats`` times; env
steps/s are medians over repeats and each ratio is the median of the per-repeat
ratios. All of them run inside one Ray instance whose CPU count is logical (every
method's actors coexist, idle while another is timed); only the timed method runs.

Also reported: where the time of one local collect goes (``breakdown``: the
sub-envs' own ``step``, Gymnasium's ``SyncVectorEnv`` around them (batching,
autoreset, merging the info dicts), the policy's ``act``, and the rest: the
sampler's loop and recording), measured with timing wrappers in a separate
collect after the timed repeats; the fixed cost of one ``RaySampler.collect`` (``CollectTiming``:
the weight broadcast ``ray.put``, the gathering, and the wall time beyond the
slowest worker's own collection), and the peak resident memory (``VmHWM``) of the
driver and of each worker process, env runner and vector-env subprocess.

It prints a Markdown report (for benchmarks/RESULTS.md). Usage::

    python benchmarks/sampling_throughput.py                    # 20 x 10 x 200, 3 repeats
    python benchmarks/sampling_throughput.py --repeats 5 --no-rllib
    python benchmarks/sampling_throughput.py --tasks 4 --episodes 1 --repeats 1   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import statistics
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch
from gymnasium.vector import AutoresetMode
from machine import machine_line

import metarl  # noqa: F401  (registers the environments)
from metarl.agents.mlp_policy import GaussianMLPPolicy
from metarl.agents.networks import ActionScaling, GaussianHead
from metarl.agents.policy import PolicyInput
from metarl.envs import set_tasks, task_distribution
from metarl.envs.wrappers import MultiTaskEnv
from metarl.ray_sampling import RaySampler
from metarl.sampling import LocalSampler
from metarl.tasks import Task

ENV_ID = "metarl/HalfCheetahVel-v0"
HIDDEN = [64, 64]
RLLIB_ENV = "metarl_sampling_throughput_multitask"


def make_policy(env: gym.Env[Any, Any]) -> GaussianMLPPolicy:
    """The 2 x 64 tanh Gaussian MLP policy every sampler here runs."""
    obs_dim = int(np.prod(env.observation_space.shape))
    act_shape = tuple(env.action_space.shape or ())
    net = GaussianHead(obs_dim, int(np.prod(act_shape)), torch.Generator(), HIDDEN, 1.0)
    params = {k: v.detach().unsqueeze(0) for k, v in net.named_parameters()}
    return GaussianMLPPolicy(net, params, ActionScaling(env.action_space), act_shape)


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (``VmHWM``) of process ``pid`` in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


# --------------------------------------------------------------------------- methods


class Method(ABC):
    """One way to collect the meta-batch: ``run()`` returns the env steps it collected."""

    name: str

    @abstractmethod
    def run(self) -> int:
        """Collect one meta-batch; return the env steps collected."""

    def worker_pids(self) -> list[int]:
        return []

    @abstractmethod
    def close(self) -> None:
        """Stop the method's workers and close its envs."""


class SamplerMethod(Method):
    def __init__(
        self,
        name: str,
        sampler: LocalSampler | RaySampler,
        policy: GaussianMLPPolicy,
        tasks: list[Task],
        episodes: int,
    ):
        self.name, self.sampler, self.policy = name, sampler, policy
        self.tasks, self.episodes = tasks, episodes

    def run(self) -> int:
        batch = self.sampler.collect(self.policy, self.tasks, self.episodes)
        return sum(len(ep.rewards) for ep in batch.episodes)

    def worker_pids(self) -> list[int]:
        if isinstance(self.sampler, RaySampler):
            return [w.pid for w in self.sampler.worker_info()]
        return []

    def close(self) -> None:
        self.sampler.close()


class AsyncVectorLoop(Method):
    """The plain loop: ``AsyncVectorEnv`` of one process per task, the policy here."""

    def __init__(self, policy: GaussianMLPPolicy, tasks: list[Task], episodes: int, seed: int):
        self.name, self.policy, self.tasks, self.episodes = "async-vector", policy, tasks, episodes
        n = len(tasks)
        self.envs = gym.vector.AsyncVectorEnv(
            [lambda: gym.make(ENV_ID) for _ in range(n)],
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
        set_tasks(self.envs, tasks)
        self.rngs = [np.random.default_rng([seed, i]) for i in range(n)]
        self.seed = seed

    def run(self) -> int:
        envs, n = self.envs, len(self.tasks)
        obs, _ = envs.reset(seed=[self.seed + i for i in range(n)])
        zeros_a = np.zeros((n, *envs.single_action_space.shape), np.float32)
        zeros_r = np.zeros(n, np.float32)
        flags, rows = np.ones(n, bool), np.arange(n)
        done_count = np.zeros(n, int)
        steps = 0
        while (done_count < self.episodes).any():
            out = self.policy.act(
                PolicyInput(obs, zeros_a, zeros_r, flags, flags, rows), None, self.rngs
            )
            obs, _, terms, truncs, _ = envs.step(out.actions)
            steps += int((done_count < self.episodes).sum())
            done_count += np.logical_or(terms, truncs)
        return steps

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.envs.processes]

    def close(self) -> None:
        self.envs.close()


def _rllib_env(env_config: dict[str, Any]) -> gym.Env[Any, Any]:
    # Unpickling MultiTaskEnv in the env runner imports metarl, which registers ENV_ID.
    env = gym.make(ENV_ID)
    tasks = [Task.from_dict(t) for t in env_config["tasks"]]
    return MultiTaskEnv(env, tasks)


class RLlibRunners(Method):
    """RLlib's ``EnvRunnerGroup``: ``workers`` remote env runners, ``envs`` envs each."""

    def __init__(self, workers: int, envs: int, tasks: list[Task], steps: int):
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
        from ray.rllib.env.env_runner_group import EnvRunnerGroup

        self.name = f"rllib-{workers}"
        self.share = -(-steps // workers)
        config = (
            PPOConfig()
            .environment(RLLIB_ENV, env_config={"tasks": [t.to_dict() for t in tasks]})
            .env_runners(
                num_env_runners=workers,
                num_envs_per_env_runner=envs,
                num_cpus_per_env_runner=1,
            )
            .rl_module(
                model_config=DefaultModelConfig(fcnet_hiddens=HIDDEN, fcnet_activation="tanh")
            )
        )
        self.group = EnvRunnerGroup(config=config, local_env_runner=False)

    def run(self) -> int:
        share = self.share
        counts = self.group.foreach_env_runner(
            lambda r: sum(len(e) for e in r.sample(num_timesteps=share, force_reset=True)),
            local_env_runner=False,
        )
        return int(sum(counts))

    def worker_pids(self) -> list[int]:
        return list(self.group.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False))

    def close(self) -> None:
        self.group.stop()


# --------------------------------------------------------------------------- measuring


class _Clock:
    """Seconds spent inside the calls it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed_call


class _TimedEnv(gym.Wrapper[Any, Any, Any, Any]):
    """Adds the time of each sub-env ``step`` to a clock."""

    def __init__(self, env: gym.Env[Any, Any], clock: _Clock):
        super().__init__(env)
        self.step = clock.wrap(env.step)  # type: ignore[method-assign]


class _TimedPolicy:
    """The policy, with the time of its ``act`` calls added to a clock."""

    def __init__(self, policy: GaussianMLPPolicy, clock: _Clock):
        self.policy = policy
        self.act = clock.wrap(policy.act)

    def initial_state(self, n: int) -> Any:
        return self.policy.initial_state(n)


def breakdown(
    policy: GaussianMLPPolicy, tasks: list[Task], episodes: int, envs: int, seed: int
) -> dict[str, float]:
    """Seconds of one local collect, split into sub-env steps, the vector env around
    them, the policy, and the rest (the sampler's loop and recording)."""
    env_clock, vector_clock, policy_clock = _Clock(), _Clock(), _Clock()
    sampler = LocalSampler(
        ENV_ID, num_envs=envs, seed=seed, wrappers=[lambda e: _TimedEnv(e, env_clock)]
    )
    try:
        sampler.collect(policy, tasks[:envs], 1)  # warm-up
        env_clock.seconds = 0.0
        sampler.envs.step = vector_clock.wrap(sampler.envs.step)  # type: ignore[method-assign]
        timed_policy: Any = _TimedPolicy(policy, policy_clock)
        start = time.perf_counter()
        sampler.collect(timed_policy, tasks, episodes)
        total = time.perf_counter() - start
    finally:
        sampler.close()
    return {
        "total": total,
        "sub-env step": env_clock.seconds,
        "vector env around the sub-envs": vector_clock.seconds - env_clock.seconds,
        "policy act": policy_clock.seconds,
        "sampler loop and recording": total - vector_clock.seconds - policy_clock.seconds,
    }


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    steps = fn()
    return time.perf_counter() - start, steps


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from ray.tune.registry import register_env

    env = gym.make(ENV_ID)
    tasks = task_distribution(env).task_sets(args.seed, args.tasks, 0).train
    policy = make_policy(env)
    env.close()
    total = args.tasks * args.episodes * 200
    envs = args.envs_per_worker
    # A logical CPU count: every method's actors coexist (idle while another is timed).
    ray.init(num_cpus=8, include_dashboard=False, logging_level=logging.WARNING)
    register_env(RLLIB_ENV, _rllib_env)
    ray_kw = {"seed": args.seed, "cpus_per_worker": 1.0}
    builders: list[Callable[[], Method]] = [
        lambda: SamplerMethod(
            "local",
            LocalSampler(ENV_ID, num_envs=envs, seed=args.seed),
            policy,
            tasks,
            args.episodes,
        ),
        lambda: SamplerMethod(
            "ray-1",
            RaySampler(ENV_ID, num_workers=1, envs_per_worker=envs, **ray_kw),
            policy,
            tasks,
            args.episodes,
        ),
        lambda: SamplerMethod(
            "ray-2",
            RaySampler(ENV_ID, num_workers=2, envs_per_worker=envs, **ray_kw),
            policy,
            tasks,
            args.episodes,
        ),
        lambda: AsyncVectorLoop(policy, tasks, args.episodes, args.seed),
    ]
    if not args.no_rllib:
        builders += [
            lambda: RLlibRunners(1, envs, tasks, total),
            lambda: RLlibRunners(2, envs, tasks, total),
        ]
    methods = []
    try:
        for build in builders:
            start = time.perf_counter()
            method = build()
            method.run()  # warm-up: first-call costs (imports, JIT-free torch init, resets)
            methods.append(method)
            print(f"built {method.name} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        times: dict[str, list[float]] = {m.name: [] for m in methods}
        steps: dict[str, int] = {}
        timings: dict[str, list[Any]] = {"ray-1": [], "ray-2": []}
        for r in range(args.repeats):
            k = r % len(methods)
            for method in methods[k:] + methods[:k]:
                seconds, steps[method.name] = timed(method.run)
                times[method.name].append(seconds)
                if method.name in timings:
                    sampler = method.sampler  # type: ignore[attr-defined]
                    timings[method.name].append(sampler.last_timing)
            print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr)
        memory = {m.name: [peak_rss_mib(p) for p in m.worker_pids()] for m in methods}
        parts = breakdown(policy, tasks, args.episodes, envs, args.seed)
    finally:
        for method in methods:
            method.close()
        ray.shutdown()
    memory["driver"] = [peak_rss_mib(os.getpid())]
    return {
        "times": times,
        "steps": steps,
        "total": total,
        "timings": timings,
        "memory": memory,
        "breakdown": parts,
    }


# --------------------------------------------------------------------------- reporting

GOALS = [
    ("ray-2", "rllib-2", 3.0, "Ray sampler (2 workers) / RLlib env runners (2)"),
    ("ray-1", "rllib-1", 3.0, "Ray sampler (1 worker) / RLlib env runners (1)"),
    ("ray-2", "async-vector", 0.8, "Ray sampler (2 workers) / plain AsyncVectorEnv loop"),
    ("ray-2", "ray-1", 1.7, "Ray sampler: 2 workers / 1 worker"),
    ("ray-2", "local", None, "Ray sampler (2 workers) / local sampler"),
]


def ratios(result: dict[str, Any], a: str, b: str) -> list[float]:
    """Per repeat, (steps/s of a) / (steps/s of b)."""
    t, s = result["times"], result["steps"]
    return [(s[a] / ta) / (s[b] / tb) for ta, tb in zip(t[a], t[b], strict=True)]


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    t, s = result["times"], result["steps"]
    command = " ".join(["python benchmarks/sampling_throughput.py", *sys.argv[1:]])
    versions = (
        f"python {platform.python_version()}, ray {ray.__version__}, "
        f"torch {torch.__version__}, gymnasium {gym.__version__}"
    )
    lines = [
        "## Sampling throughput ([P2](../docs/benchmarks.md#p2))",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}",
        f"- versions: {versions}",
        f"- meta-batch: {args.tasks} HalfCheetahVel tasks x {args.episodes} episodes x 200 "
        f"steps = {result['total']} env steps, 2 x 64 tanh MLP Gaussian policy, "
        f"{args.envs_per_worker} envs per worker / env runner (local: one vector env of "
        f"as many); "
        f"{args.repeats} interleaved repeats, medians",
        "",
        "| method | env steps | seconds | env steps/s |",
        "|---|---:|---:|---:|",
    ]
    for name in t:
        med = statistics.median(t[name])
        lines.append(f"| {name} | {s[name]} | {med:.2f} | {s[name] / med:,.0f} |")
    lines += [
        "",
        "| ratio (env steps/s) | median | range over repeats | goal |",
        "|---|---:|---:|---:|",
    ]
    for a, b, goal, label in GOALS:
        if a in t and b in t:
            g = "" if goal is None else f">= {goal:g}"
            r = ratios(result, a, b)
            span = f"{min(r):.2f} - {max(r):.2f}"
            lines.append(f"| {label} | {statistics.median(r):.2f} | {span} | {g} |")
    timings = result["timings"]
    if timings["ray-2"]:
        two = timings["ray-2"]
        med = {
            k: statistics.median(getattr(x, k) for x in two)
            for k in ("wall_s", "put_s", "gather_s", "overhead_s")
        }
        workers = statistics.median(max(x.worker_s) for x in two)
        lines += [
            "",
            "Fixed cost of one `RaySampler.collect` (ray-2, medians over the timed "
            f"collects): wall {med['wall_s']:.3f} s, slowest worker's own collection "
            f"{workers:.3f} s, overhead beyond it {med['overhead_s'] * 1000:.1f} ms, of "
            f"which the weight broadcast (`ray.put`) {med['put_s'] * 1000:.2f} ms and the "
            f"gathering {med['gather_s'] * 1000:.1f} ms.",
        ]
    if timings["ray-1"] and timings["ray-2"]:
        # Where 2 workers lose against 2x 1 worker: each worker's own collection (the
        # same trials per worker-second if the two cores were independent), the gap
        # between the two workers, and the driver's overhead.
        one = statistics.median(x.worker_s[0] for x in timings["ray-1"])
        fast = statistics.median(min(x.worker_s) for x in timings["ray-2"])
        slow = statistics.median(max(x.worker_s) for x in timings["ray-2"])
        lines += [
            "",
            f"Scaling: the 1 worker collects its {args.tasks} trials in {one:.3f} s "
            f"(median); each of 2 workers collects half of them in {fast:.3f} s (faster "
            f"one) and {slow:.3f} s (slower one), i.e. at {one / 2 / fast:.2f} and "
            f"{one / 2 / slow:.2f} of the single worker's per-trial speed; the call waits "
            "for the slower one, plus the overhead above.",
        ]
    parts = result["breakdown"]
    total = parts["total"]
    lines += [
        "",
        f"Where one local collect's time goes (the same meta-batch, {total:.2f} s, "
        "timing wrappers; one collect after the repeats):",
        "",
        "| part | seconds | share |",
        "|---|---:|---:|",
    ]
    for name, seconds in parts.items():
        if name != "total":
            lines.append(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
    lines += ["", "Peak resident memory (VmHWM, MiB):", ""]
    for name, values in result["memory"].items():
        if values:
            lines.append(f"- {name}: " + ", ".join(f"{v:.0f}" for v in values))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks of the meta-batch")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--envs-per-worker", type=int, default=10, help="sub-envs per worker")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-rllib", action="store_true", help="leave RLlib's env runners out")
    args = parser.parse_args(argv)
    for name in ("tasks", "episodes", "repeats", "envs_per_worker"):
        if getattr(args, name) < 1:
            flag = name.replace("_", "-")
            parser.error(f"--{flag} must be a positive integer, got {getattr(args, name)}")
    print(report(measure(args), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
