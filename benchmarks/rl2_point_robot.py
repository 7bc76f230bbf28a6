"""RL2 on the point robot against the random, multi-task and oracle baselines (BENCHMARKS.md P3).

Runs ``configs/rl2_point_robot.yaml`` once per training seed (same train/test tasks:
``env.task_seed`` is fixed), each through ``metarl.runner.run_experiment`` (RL2
meta-training, then the baselines trained on the same env-step budget, then the
meta-test protocol with K episodes on every held-out task), and prints a Markdown
table: for each method and episode k, the mean over seeds of the mean return over
test tasks, +- the standard deviation over seeds; the oracle gap closed per seed;
env steps and wall time.

Usage::

    python benchmarks/rl2_point_robot.py                        # seeds 0 1 2, Ray sampler
    python benchmarks/rl2_point_robot.py --seeds 0 1 2 --sampler local --out runs/bench
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_line

from metarl.config import load_config
from metarl.runner import run_experiment

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "rl2_point_robot.yaml"


def run_seeds(seeds: list[int], sampler: str, out: Path, extra: list[str]) -> list[dict[str, Any]]:
    """Run the experiment once per seed; return each run's ``results.json``."""
    results = []
    for seed in seeds:
        overrides = [
            f"run.seed={seed}",
            "env.task_seed=0",
            f"sampler.kind={sampler}",
            f"run.root={out}",
            f"run.name=rl2_point_robot_seed{seed}",
            "trainer.progress=false",
            *extra,
        ]
        config = load_config(CONFIG, overrides)
        start = time.perf_counter()
        run_dir = run_experiment(config)
        data = json.loads((run_dir / "results.json").read_text())
        data["run_dir"] = str(run_dir)
        data["total_wall_time_s"] = time.perf_counter() - start
        results.append(data)
        print(f"seed {seed}: {run_dir} ({data['total_wall_time_s']:.0f} s)", file=sys.stderr)
    return results


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    import gymnasium
    import ray
    import stable_baselines3
    import torch

    first = results[0]
    K = int(first["episodes"])
    methods = list(first["methods"])
    lines = [
        "## RL2 on metarl/PointRobot-v0 against the baselines (BENCHMARKS.md P3)",
        "",
        f"- command: `python benchmarks/rl2_point_robot.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}",
        f"- versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"gymnasium {gymnasium.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
        f"ray {ray.__version__}",
        f"- config: `configs/rl2_point_robot.yaml`, sampler `{args.sampler}`, training seeds "
        f"{args.seeds}, the same {first['train_tasks']} train / {first['test_tasks']} test "
        "tasks (task seed 0)",
        f"- protocol: K = {K} consecutive episodes on each test task; a cell is the mean over "
        "seeds of the mean return over test tasks, +- the standard deviation over seeds",
        "",
        "| method | " + " | ".join(f"episode {k + 1}" for k in range(K)) + " | train env steps "
        "| train wall time (s) |",
        "|---|" + "---:|" * (K + 2),
    ]
    for name in methods:
        per_seed = np.array([r["methods"][name]["mean"] for r in results])  # (seeds, K)
        steps = [r["methods"][name]["train_env_steps"] for r in results]
        times = [r["methods"][name]["train_wall_time_s"] for r in results]
        cells = [
            f"{m:.2f} +- {s:.2f}" for m, s in zip(per_seed.mean(0), per_seed.std(0), strict=True)
        ]
        steps_cell = f"{int(np.mean(steps)):,}" if steps[0] is not None else "-"
        time_cell = f"{np.mean(times):.0f}" if times[0] is not None else "-"
        label = first["methods"][name]["label"]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {steps_cell} | {time_cell} |")
    gaps = [r["oracle_gap_closed"] for r in results if r["oracle_gap_closed"] is not None]
    lines += [""]
    if gaps:
        lines.append(
            f"Oracle gap closed after episode {K} = (RL2 episode {K} - multi-task) / (oracle - "
            f"multi-task), the baselines averaged over their K episodes: "
            f"**{np.mean(gaps):.2f} +- {np.std(gaps):.2f}** over seeds "
            f"({', '.join(f'{g:.2f}' for g in gaps)})."
        )
    total = [r["total_wall_time_s"] for r in results]
    lines.append(
        f"Wall time per seed (RL2 training, baselines, evaluation): {np.mean(total):.0f} s. "
        "Published RL2 budgets: 1e7-1e8 env steps (TASKS.md); this run uses "
        f"{int(np.mean([r['methods']['rl2']['train_env_steps'] for r in results])):,}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sampler", choices=["local", "ray"], default="ray")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value")
    args = parser.parse_args(argv)
    results = run_seeds(args.seeds, args.sampler, args.out, args.overrides)
    print(markdown(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
