"""Does PEARL's posterior sampling find sparse goals that the prior alone does not?

For a finished PEARL run on ``metarl/PointRobotSparse-v0`` (a folder of
``benchmarks/pearl.py`` or ``metarl train``), its final checkpoint runs K consecutive
meta-test episodes on each held-out task (default K = 20: the paper's 400 meta-test
steps of 20-step episodes) in two ways, paired:

- posterior sampling, the paper's protocol: z from the prior in the first
  ``num_exp_traj_eval`` episodes, then from the posterior of all the task's episodes
  so far, redrawn before each episode;
- the prior alone: z from the prior in every episode.

Both draw the same z and the same episodes until the posterior is first used, so the
two differ only in what the posterior does. A goal is *found* in an episode whose
sparse return is above 0 (the agent came within the goal radius). Each repeat reseeds
the z draws and the episodes (``reevaluate`` in ``benchmarks/pearl.py``).

Prints, per run: the share of test tasks whose goal was found by episode k
(cumulative) and in episode k, mean over repeats; per repeat, the goals found by each
way after the posterior is first used and the goals found only by posterior sampling
(never in the prior-alone episodes of that repeat) or only by the prior alone; and
writes a plot of the cumulative share against k to ``--plot``.

Usage::

    python benchmarks/pearl_sparse_exploration.py RUN_DIR[@ITERATION] [...] \\
        --episodes 20 --repeats 5 --plot benchmarks/plots/pearl_sparse_exploration.png
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
from machine import machine_line
from pearl import checkpoint_path, load_pearl, num_prior_episodes, reevaluate
from plotting import line_plot

MODES = {"posterior": "posterior sampling (paper)", "prior": "z from the prior only"}


def parse_run(text: str) -> tuple[Path, int | None]:
    """``RUN_DIR`` (its latest checkpoint) or ``RUN_DIR@ITERATION``."""
    head, sep, tail = text.rpartition("@")
    if not sep:
        return Path(text), None
    if not tail.isdigit():
        raise argparse.ArgumentTypeError(f"expected RUN_DIR or RUN_DIR@ITERATION, got {text!r}")
    return Path(head), int(tail)


def explore(
    run_dir: Path, iteration: int | None, episodes: int, repeats: int
) -> dict[str, np.ndarray]:
    """``{mode: (repeats, test tasks, episodes) bool}``: goal found in that episode."""
    config = json.loads((run_dir / "results.json").read_text())
    if "Sparse" not in config["env"]:
        raise ValueError(f"{run_dir} is a run on {config['env']}, not on a sparse env")
    prior_episodes = num_prior_episodes(run_dir)
    if episodes <= prior_episodes:
        raise ValueError(
            f"--episodes must exceed the run's num_exp_traj_eval ({prior_episodes}), got {episodes}"
        )
    found: dict[str, list[np.ndarray]] = {m: [] for m in MODES}
    for r in range(repeats):
        for mode in MODES:
            n = prior_episodes if mode == "posterior" else episodes
            found[mode].append(reevaluate(run_dir, episodes, n, r, iteration) > 0)
    return {m: np.stack(v) for m, v in found.items()}


def checkpoint_line(run_dir: Path, iteration: int | None) -> str:
    """Which checkpoint of ``run_dir`` is evaluated: its file, iteration and env steps."""
    import torch

    path = checkpoint_path(run_dir, iteration)
    state = torch.load(path, map_location="cpu", weights_only=False)
    return (
        f"checkpoint `{path.name}`: iteration {state['iteration']}, "
        f"{state['env_steps']:,} env steps of meta-training"
    )


def prior_endpoints(run_dir: Path, iteration: int | None, draws: int) -> np.ndarray:
    """Where the prior-z policy goes: the angle (degrees) of the final position of
    ``draws`` episodes per test task, each with a fresh z from the prior and the
    meta-test's actions (the run's ``eval_deterministic``)."""
    from metarl.build import eval_sampler, task_sets

    config, agent, seed = load_pearl(run_dir, 0, iteration)
    agent.config = dataclasses.replace(agent.config, num_exp_traj_eval=draws)
    tasks = task_sets(config).test
    with eval_sampler(config, agent, tasks, seed) as sampler:
        batch = agent.adapt(sampler.collect, tasks, draws)
    ends = np.stack([ep.next_observations[-1] for ep in batch])
    return np.degrees(np.arctan2(ends[:, 1], ends[:, 0]))


def report(
    run_dir: Path, iteration: int | None, found: dict[str, np.ndarray], prior_episodes: int
) -> list[str]:
    """The Markdown lines of one run."""
    episodes = found["posterior"].shape[2]
    shown = sorted({1, prior_episodes, prior_episodes + 1, *range(5, episodes + 1, 5)})
    lines = [
        f"### `{run_dir}`" + ("" if iteration is None else f" at iteration {iteration}"),
        "",
        f"{checkpoint_line(run_dir, iteration)}.",
        "",
        f"{found['posterior'].shape[1]} test tasks, {found['posterior'].shape[0]} repeats, "
        f"K = {episodes}; z from the prior in episodes 1-{prior_episodes} in both ways. "
        "Share of test tasks whose goal was found by episode k (cumulative), mean over "
        "repeats, then the share found in episode k itself:",
        "",
        "| way | "
        + " | ".join(f"by ep. {k}" for k in shown)
        + " | in ep. "
        + " | in ep. ".join(str(k) for k in (prior_episodes + 1, episodes))
        + " |",
        "|---|" + "---:|" * (len(shown) + 2),
    ]
    for mode, label in MODES.items():
        hit = found[mode]
        cum = np.maximum.accumulate(hit, axis=2).mean(axis=(0, 1))
        per = hit.mean(axis=(0, 1))
        cells = [f"{cum[k - 1]:.2f}" for k in shown]
        cells += [f"{per[k - 1]:.2f}" for k in (prior_episodes + 1, episodes)]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines.append("")
    angles = prior_endpoints(run_dir, iteration, prior_episodes)
    counts, edges = np.histogram(angles, bins=np.arange(-180, 181, 30))
    bins = [
        f"{lo:.0f} to {hi:.0f}: {c}"
        for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
        if c
    ]
    lines += [
        f"Where z from the prior sends the agent: the angle of the final position of "
        f"{prior_episodes} prior-z episodes per test task (goals lie at 0-180 degrees, "
        f"radius 1), counts per 30 degrees: {'; '.join(bins)}.",
        "",
    ]
    before = found["posterior"][:, :, :prior_episodes].any(axis=2)
    post = found["posterior"][:, :, prior_episodes:].any(axis=2)
    prior = found["prior"][:, :, prior_episodes:].any(axis=2)
    lines.append(
        f"Per repeat, goals not found in episodes 1-{prior_episodes} that were found in "
        f"episodes {prior_episodes + 1}-{episodes}: by posterior sampling / by the prior "
        "alone / by posterior sampling and never by the prior alone / by the prior alone "
        "and never by posterior sampling:"
    )
    for r in range(before.shape[0]):
        new_post, new_prior = post[r] & ~before[r], prior[r] & ~before[r]
        lines.append(
            f"- repeat {r}: {new_post.sum()} / {new_prior.sum()} / "
            f"{(new_post & ~prior[r]).sum()} / {(new_prior & ~post[r]).sum()} "
            f"(found before: {before[r].sum()})"
        )
    lines.append("")
    return lines


def plot(curves: dict[str, dict[str, np.ndarray]], prior_episodes: int, path: Path) -> None:
    """Cumulative share of goals found against the meta-test episode."""
    with line_plot(
        path,
        "meta-test episode k",
        "share of test goals found by episode k",
        "PointRobotSparse: exploration by posterior sampling vs the prior",
        legend_size=7,
    ) as ax:
        for name, found in curves.items():
            for mode, label in MODES.items():
                cum = np.maximum.accumulate(found[mode], axis=2).mean(axis=(0, 1))
                ax.plot(np.arange(1, cum.size + 1), cum, marker=".", label=f"{name}: {label}")
        ax.axvline(prior_episodes + 0.5, color="grey", ls="--", lw=1, label="posterior first used")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs",
        type=parse_run,
        nargs="+",
        help="PEARL run folders on a sparse env: RUN_DIR (latest checkpoint) or RUN_DIR@ITERATION",
    )
    parser.add_argument("--episodes", type=int, default=20, help="K (paper: 400 / 20 steps)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the cumulative share")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be a positive integer, got {args.repeats}")
    lines = [
        "## PEARL on PointRobotSparse: posterior sampling against the prior alone",
        "",
        f"- command: `python benchmarks/pearl_sparse_exploration.py {' '.join(argv)}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}; python {platform.python_version()}",
        "",
    ]
    curves = {}
    prior_episodes = 0
    for run_dir, iteration in args.runs:
        found = explore(run_dir, iteration, args.episodes, args.repeats)
        prior_episodes = num_prior_episodes(run_dir)
        name = run_dir.name if iteration is None else f"{run_dir.name}@{iteration}"
        curves[name] = found
        lines += report(run_dir, iteration, found, prior_episodes)
    if args.plot is not None:
        plot(curves, prior_episodes, args.plot)
        lines.append(f"Plot: `{args.plot}`.")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
