"""PEARL against multi-task SAC and an oracle SAC of the same budget (docs/benchmarks.md#p3),
with learning curves, wall time and peak memory.

For each config and training seed, three runs of ``metarl train`` on the same tasks
(``env.task_seed=0``), each in its own process so that its peak resident memory is
its own (``os.wait4``):

- PEARL (``agent.task_variable=inferred``), evaluated next to the random policy;
- multi-task SAC: the same agent, networks, data collection and budget with z = 0
  everywhere (``agent.task_variable=none``): SAC on the task distribution without
  task information;
- oracle SAC: the same with z = the true task's features
  (``agent.task_variable=oracle``, ``agent.latent_size`` = their size).

Stable-Baselines3's SAC would be the other choice of baseline; with one gradient step
per env step it is far slower per env step than these budgets allow on 2 cores (not
measured by a committed script), and the SAC of the agent's own code is the
like-for-like comparison anyway.

Prints a Markdown section per config: the return of each meta-test episode (mean over
seeds of the mean over test tasks, +- the standard deviation over seeds), on a sparse
env the share of test tasks whose goal was reached in each episode (sparse reward
above 0), the oracle gap closed, env steps, wall time and peak memory; and writes a
plot of meta-test return against env steps (the trainer's periodic evaluations,
``eval.csv``) to ``--plot-dir``.

Usage::

    python benchmarks/pearl.py configs/pearl_point_robot.yaml --seeds 0 1 2
    python benchmarks/pearl.py configs/pearl_half_cheetah_vel.yaml --seeds 0 \\
        --set trainer.iterations=60
    python benchmarks/pearl.py --collect --out runs/pearl    # tables of finished runs
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_line
from plotting import line_plot

VARIANTS = {
    "pearl": "PEARL",
    "multitask": "multi-task SAC (z = 0)",
    "oracle": "oracle SAC (z = task)",
}


def feature_size(env_id: str) -> int:
    """Size of the task features of ``env_id``'s tasks (the oracle's z)."""
    import gymnasium as gym

    import metarl  # noqa: F401  (registers the environments)
    from metarl.envs import task_distribution

    env = gym.make(env_id)
    task = task_distribution(env).sample(np.random.default_rng(0), 1)[0]
    env.close()
    return int(np.asarray(task.features()).size)


def variant_overrides(variant: str, env_id: str) -> list[str]:
    """Config overrides of one variant."""
    if variant == "pearl":
        return ["agent.task_variable=inferred", "evaluation.baselines=[random]"]
    if variant == "multitask":
        return ["agent.task_variable=none", "evaluation.baselines=[]"]
    return [
        "agent.task_variable=oracle",
        f"agent.latent_size={feature_size(env_id)}",
        "evaluation.baselines=[]",
    ]


def run_one(config: Path, variant: str, seed: int, out: Path, extra: list[str]) -> Path:
    """One ``metarl train`` run in a child process; returns its run folder, where
    ``benchmark.json`` records the child's wall time and peak resident memory."""
    from metarl.schema import read_yaml

    env_id = read_yaml(config)["env"]["id"]
    run_dir = out / f"{config.stem}_{variant}_seed{seed}"
    cmd = [
        sys.executable,
        "-m",
        "metarl.cli",
        "train",
        str(config),
        f"run.seed={seed}",
        "env.task_seed=0",
        "trainer.progress=false",
        *variant_overrides(variant, env_id),
        *extra,
        "--run-dir",
        str(run_dir),
    ]
    start = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {child.returncode}")
    (run_dir / "benchmark.json").write_text(
        json.dumps(
            {
                "total_wall_time_s": time.perf_counter() - start,
                "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: kibibytes
                "command": cmd[2:],
            }
        )
    )
    print(f"{run_dir} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return run_dir


PRIOR_ONLY = "prior_only.json"


def checkpoint_path(run_dir: Path, iteration: int | None = None) -> Path:
    """The checkpoint of ``iteration`` in ``run_dir`` (default: the latest).

    Raises:
        FileNotFoundError: no such checkpoint.
    """
    from metarl.checkpoints import CHECKPOINT_DIR, latest_checkpoint

    if iteration is None:
        path = latest_checkpoint(run_dir)
    else:
        path = run_dir / CHECKPOINT_DIR / f"iter_{iteration:06d}.pt"
    if path is None or not path.exists():
        kept = sorted(p.name for p in (run_dir / CHECKPOINT_DIR).glob("iter_*.pt"))
        raise FileNotFoundError(
            f"{run_dir} holds no checkpoint of iteration {iteration} (kept: {kept})"
        )
    return path


def num_prior_episodes(run_dir: Path) -> int:
    """The run's ``num_exp_traj_eval``: meta-test episodes with z from the prior."""
    from metarl.schema import read_yaml

    config = read_yaml(run_dir / "config.yaml")
    return int(config["agent"]["num_exp_traj_eval"])


def load_pearl(
    run_dir: Path, repeat: int = 0, iteration: int | None = None
) -> tuple[Any, Any, int | None]:
    """A PEARL run's config and agent at a checkpoint (``checkpoint_path``), and the
    sampler seed of a re-evaluation: repeat 0 keeps the checkpoint's generators and the
    run's sampler seed (``None``), as the run's own meta-test at that checkpoint had;
    repeat r > 0 reseeds both from r."""
    import torch

    from metarl.agents.pearl import PEARLAgent
    from metarl.build import build_agent
    from metarl.run_folder import load_run_config

    config = load_run_config(run_dir)
    checkpoint = checkpoint_path(run_dir, iteration)
    agent = build_agent(config)
    if not isinstance(agent, PEARLAgent):
        raise ValueError(f"{run_dir} is a run of {type(agent).__name__}, not of PEARL")
    agent.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["agent"])
    seed = None
    if repeat:
        assert config.sampler.seed is not None
        seed = config.sampler.seed + 1_000 * repeat
        agent.generator.manual_seed(seed)
        agent.rng = np.random.default_rng(seed)
    return config, agent, seed


def reevaluate(
    run_dir: Path,
    episodes: int,
    prior_episodes: int,
    repeat: int = 0,
    iteration: int | None = None,
) -> np.ndarray:
    """The (test tasks, ``episodes``) returns of a PEARL run's final checkpoint on its
    test tasks, with z from the prior in the first ``prior_episodes`` episodes and from
    the posterior after them (``num_exp_traj_eval``). Two calls with the same repeat
    (``load_pearl``) draw the same z and episodes until their ``prior_episodes``
    differ."""
    from metarl.build import eval_sampler, task_sets
    from metarl.evaluation import evaluate_adaptation

    config, agent, seed = load_pearl(run_dir, repeat, iteration)
    agent.config = dataclasses.replace(agent.config, num_exp_traj_eval=prior_episodes)
    tasks = task_sets(config).test
    with eval_sampler(config, agent, tasks, seed) as sampler:
        return evaluate_adaptation(agent, sampler, tasks, episodes).returns


def prior_only(run_dir: Path) -> list[list[float]]:
    """The PEARL run's final meta-test again, with z drawn from the prior in every
    episode: the same checkpoint, test tasks, sampler seeds and z draws, so that the
    episodes before the posterior is first used are the same episodes as in the run's
    own meta-test. Written to ``prior_only.json``; returns the (test tasks, K) returns."""
    k = json.loads((run_dir / "results.json").read_text())["episodes"]
    returns = reevaluate(run_dir, k, prior_episodes=k).tolist()
    (run_dir / PRIOR_ONLY).write_text(json.dumps(returns))
    return returns


def load_runs(out: Path) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """``{config stem: {variant: {seed: run}}}`` of the finished runs under ``out``; a
    run holds its ``results.json``, ``benchmark.json`` and the rows of ``eval.csv``."""
    runs: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for path in sorted(out.glob("*_seed*/results.json")):
        head, seed = path.parent.name.rsplit("_seed", 1)
        stem, variant = head.rsplit("_", 1)
        data = json.loads(path.read_text())
        data["benchmark"] = json.loads((path.parent / "benchmark.json").read_text())
        with open(path.parent / "eval.csv", newline="") as f:
            data["curve"] = list(csv.DictReader(f))
        if variant == "pearl" and "Sparse" in data["env"]:
            data["num_exp_traj_eval"] = num_prior_episodes(path.parent)
            prior = path.parent / PRIOR_ONLY
            data["prior_only"] = (
                json.loads(prior.read_text()) if prior.exists() else prior_only(path.parent)
            )
        runs.setdefault(stem, {}).setdefault(variant, {})[int(seed)] = data
    return runs


def _returns(run: dict[str, Any], method: str) -> np.ndarray:
    """(test tasks, K) returns of ``method`` in a run's final meta-test."""
    return np.asarray(run["methods"][method]["returns"], dtype=float)


def _cell(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.mean(values))} +- {fmt.format(np.std(values))}"


def _success_row(label: str, per_seed: list[np.ndarray]) -> str:
    """A row of the share of test tasks whose goal was reached (sparse return above 0)
    in each episode, and in any episode."""
    k = per_seed[0].shape[1]
    rates = [_cell([float((r[:, i] > 0).mean()) for r in per_seed]) for i in range(k)]
    anywhere = _cell([float((r > 0).any(axis=1).mean()) for r in per_seed])
    return f"| {label} | {' | '.join(rates)} | {anywhere} |"


def _goal_counts(runs: dict[int, dict[str, Any]], seeds: list[int]) -> list[str]:
    """Per seed: of the test tasks, how many goals the prior-z episodes found, how many
    of those the posterior episodes reached again, how many a posterior episode found
    first, and how many the prior-only re-evaluation reached in the same episodes."""
    lines = []
    for s in seeds:
        run = runs[s]
        n = run["num_exp_traj_eval"]
        hit = _returns(run, "pearl") > 0
        prior_only = np.asarray(run["prior_only"]) > 0
        found = hit[:, :n].any(axis=1)
        again = hit[:, n:].any(axis=1)
        lines.append(
            f"Seed {s}, {len(hit)} test tasks: the {n} prior-z episodes found {found.sum()} "
            f"goals; the posterior episodes {n + 1}-{hit.shape[1]} reached {again.sum()} "
            f"({(again & found).sum()} found before, {(again & ~found).sum()} found first "
            f"by a posterior episode); z from the prior in those episodes reached "
            f"{prior_only[:, n:].any(axis=1).sum()}."
        )
    return lines


def table(stem: str, variants: dict[str, dict[int, dict[str, Any]]], sparse: bool) -> list[str]:
    """The Markdown section of one config."""
    seeds = sorted(set.intersection(*(set(v) for v in variants.values())))
    first = variants["pearl"][seeds[0]]
    k = first["episodes"]
    lines = [
        f"### PEARL on {first['env']} (`configs/{stem}.yaml`)",
        "",
        f"- training seeds {seeds}; {first['train_tasks']} train / {first['test_tasks']} test "
        f"tasks (task seed 0); K = {k} consecutive meta-test episodes per test task",
        "- a cell is the mean over seeds of the mean return over test tasks, +- the standard "
        "deviation over seeds (one seed: no +-)",
        "",
        "| method | "
        + " | ".join(f"episode {i + 1}" for i in range(k))
        + " | train env steps | train wall time (s) | peak memory (MiB) |",
        "|---|" + "---:|" * (k + 3),
    ]
    # Every run's agent is "pearl" in its results; the PEARL run also holds "random".
    rows: list[tuple[str, str, str]] = [("pearl", "pearl", VARIANTS["pearl"])]
    rows += [("pearl", "random", "random")] if "random" in first["methods"] else []
    rows += [(v, "pearl", VARIANTS[v]) for v in ("multitask", "oracle") if v in variants]
    successes = []
    for variant, method, label in rows:
        per_seed = [_returns(variants[variant][s], method) for s in seeds]
        cells = [_cell([r[:, i].mean() for r in per_seed]) for i in range(k)]
        info = [variants[variant][s] for s in seeds]
        if method == "pearl":  # the run's own agent; the random policy is not trained
            steps = _cell([r["methods"][method]["train_env_steps"] for r in info], "{:,.0f}")
            wall = _cell([r["methods"][method]["train_wall_time_s"] for r in info], "{:.0f}")
            memory = _cell([r["benchmark"]["peak_rss_mib"] for r in info], "{:.0f}")
        else:
            steps = wall = memory = "-"
        lines.append(f"| {label} | {' | '.join(cells)} | {steps} | {wall} | {memory} |")
        if sparse:
            successes.append(_success_row(label, per_seed))
            if variant == method == "pearl":
                prior = [np.asarray(variants["pearl"][s]["prior_only"]) for s in seeds]
                successes.append(_success_row("PEARL, z from the prior in every episode", prior))
    lines.append("")
    if sparse:
        lines += [
            "Share of test tasks whose goal was reached (sparse return above 0) in each "
            "episode and in any of the K. The prior-only row is the same PEARL checkpoint, "
            "test tasks and seeds with z drawn from the prior in every episode: its "
            "episodes before the posterior is first used are the very episodes of the row "
            "above.",
            "",
            "| method | " + " | ".join(f"episode {i + 1}" for i in range(k)) + " | any episode |",
            "|---|" + "---:|" * (k + 1),
            *successes,
            "",
            *_goal_counts(variants["pearl"], seeds),
            "",
        ]
    if "multitask" in variants and "oracle" in variants:
        gaps: list[float | None] = []
        means = []
        for s in seeds:
            final = _returns(variants["pearl"][s], "pearl")[:, -1].mean()
            mt = _returns(variants["multitask"][s], "pearl").mean()
            oracle = _returns(variants["oracle"][s], "pearl").mean()
            # The ratio means nothing where the oracle is not above multi-task SAC.
            gaps.append((final - mt) / (oracle - mt) if oracle > mt else None)
            means.append(
                f"seed {s}: PEARL {final:.1f}, multi-task SAC {mt:.1f}, oracle SAC {oracle:.1f}"
            )
        defined = [g for g in gaps if g is not None]
        per_seed = "; ".join(
            f"seed {s}: {g:.2f}"
            if g is not None
            else f"seed {s}: none, oracle SAC not above multi-task SAC"
            for s, g in zip(seeds, gaps, strict=True)
        )
        headline = f"**{_cell(defined)}**" if defined else "**not defined**"
        lines.append(
            f"Oracle gap closed = (PEARL episode {k} - multi-task SAC) / (oracle SAC - "
            f"multi-task SAC), the baselines averaged over all K episodes: {headline} "
            f"({per_seed}). Per seed, PEARL's episode {k} and the baselines' mean over "
            f"the K episodes: {'; '.join(means)}."
        )
    total = np.mean(
        [variants[v][s]["benchmark"]["total_wall_time_s"] for v in variants for s in seeds]
    )
    lines.append(
        f"Published: about 1-3 M env steps per family (500 iterations). Wall time of one run "
        f"(training, final meta-test), mean over runs: {total:.0f} s."
    )
    return lines


def plot(stem: str, variants: dict[str, dict[int, dict[str, Any]]], path: Path) -> None:
    """Meta-test return against env steps: PEARL's first and last episode, the baselines'
    mean over episodes; mean over seeds."""
    first = next(iter(variants["pearl"].values()))
    # The periodic evaluations' K (the trainer's evaluation.episodes when it ran; a run
    # resumed under another config may differ from the final meta-test's K).
    k = max(int(row["k"]) for row in first["curve"])
    series = [("pearl", [1, k], "PEARL, episode {k}")]
    series += [(v, list(range(1, k + 1)), VARIANTS[v]) for v in ("multitask", "oracle")]
    title = f"{first['env']}: held-out tasks ({len(first['curve']) // k} evaluations)"
    with line_plot(path, "env steps of meta-training", "meta-test return per episode", title) as ax:
        for variant, episodes, label in series:
            if variant not in variants:
                continue
            for ep in episodes if variant == "pearl" else [None]:
                curves: dict[int, list[float]] = {}
                for run in variants[variant].values():
                    by_step: dict[int, list[float]] = {}
                    for row in run["curve"]:
                        if ep is None or int(row["k"]) == ep:
                            by_step.setdefault(int(row["env_steps"]), []).append(
                                float(row["return_mean"])
                            )
                    for step, values in by_step.items():
                        curves.setdefault(step, []).append(float(np.mean(values)))
                steps = sorted(curves)
                ax.plot(
                    steps,
                    [np.mean(curves[s]) for s in steps],
                    marker="o",
                    label=label.format(k=ep),
                )


def markdown(out: Path, argv: list[str], plot_dir: Path) -> str:
    """Provenance, then one section per config under ``out``, plots written."""
    import gymnasium
    import torch

    lines = [
        "## PEARL against multi-task and oracle SAC ([P3](../docs/benchmarks.md#p3))",
        "",
        f"- command: `python benchmarks/pearl.py {' '.join(argv)}`".rstrip(),
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}",
        f"- versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"gymnasium {gymnasium.__version__}",
        "",
    ]
    for stem, variants in load_runs(out).items():
        env = next(iter(variants["pearl"].values()))["env"]
        lines += [*table(stem, variants, sparse="Sparse" in env), ""]
        png = plot_dir / f"{stem}.png"
        plot(stem, variants, png)
        lines += [f"Learning curve: `{png}`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", type=Path, nargs="*", help="PEARL experiment YAML files")
    parser.add_argument("--collect", action="store_true", help="only tabulate runs in --out")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("runs/pearl"))
    parser.add_argument("--plot-dir", type=Path, default=Path("benchmarks/plots"))
    parser.add_argument(
        "--set", dest="overrides", nargs="*", default=[], help="extra overrides key.sub=value"
    )
    args = parser.parse_args(argv)
    if not args.collect:
        if not args.configs:
            parser.error("give configs to run, or --collect")
        for seed in args.seeds:
            for config in args.configs:
                for variant in args.variants:
                    run_one(config, variant, seed, args.out, args.overrides)
    print(markdown(args.out, argv, args.plot_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
