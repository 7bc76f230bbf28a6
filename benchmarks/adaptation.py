"""Meta-test adaptation of agents against the random, multi-task and oracle baselines
(docs/benchmarks.md#p3), from experiment configs.

Runs each config once per training seed through ``metarl.runner.run_experiment``
(meta-training, the baselines trained on the agent's env-step budget, the
meta-test protocol on the held-out tasks), with the task sets fixed
(``env.task_seed=0``), and prints one Markdown table per config: for each method
and adaptation stage, the mean over seeds of the mean return over test tasks, +-
the standard deviation over seeds; the oracle gap closed per seed; env steps and
wall time next to the published budget. A stage is the group of consecutive
meta-test episodes that share one adaptation state (one column per episode for
RL2; for MAML-TRPO and ProMP the episodes before and after each inner step).

Configs given together share one folder of trained baselines: on the same env,
seed and budget (MAML-TRPO and ProMP with the same batch sizes) the baselines are
trained once and both agents are compared with the same ones.

Usage::

    python benchmarks/adaptation.py configs/maml_trpo_point_robot.yaml \\
        configs/promp_point_robot.yaml --seeds 0 1 2
    python benchmarks/adaptation.py configs/rl2_point_robot.yaml --sampler local \\
        --set trainer.iterations=10
    python benchmarks/adaptation.py --collect --out runs/benchmarks   # table of finished runs
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
from metarl.evaluation import AdaptationResult
from metarl.runner import run_experiment

# Published meta-training budgets (docs/tasks.md#published-budgets).
PUBLISHED = {
    "rl2": "1e7-1e8 env steps (RL2; garage, ProMP examples)",
    "maml_trpo": "1.6e8-3.2e8 env steps (MAML / ProMP defaults: 500-1000 iterations)",
    "promp": "1.6e8-3.2e8 env steps (ProMP defaults: 1000 iterations)",
}


def run_configs(
    configs: list[Path], seeds: list[int], sampler: str | None, out: Path, extra: list[str]
) -> dict[Path, list[dict[str, Any]]]:
    """Run every config once per seed; return each run's ``results.json`` per config."""
    results: dict[Path, list[dict[str, Any]]] = {c: [] for c in configs}
    for seed in seeds:
        for path in configs:
            overrides = [
                f"run.seed={seed}",
                "env.task_seed=0",
                f"run.root={out}",
                f"run.name={path.stem}_seed{seed}",
                f"evaluation.baseline_dir={out / 'baselines'}",
                "trainer.progress=false",
                *([f"sampler.kind={sampler}"] if sampler else []),
                *extra,
            ]
            config = load_config(path, overrides)
            start = time.perf_counter()
            run_dir = run_experiment(config)
            data = json.loads((run_dir / "results.json").read_text())
            data["run_dir"] = str(run_dir)
            data["seed"] = seed
            data["total_wall_time_s"] = time.perf_counter() - start
            # Kept with the run, so that --collect can print the table again.
            (run_dir / "benchmark.json").write_text(
                json.dumps({"total_wall_time_s": data["total_wall_time_s"]})
            )
            results[path].append(data)
            print(
                f"{path.name} seed {seed}: {run_dir} ({data['total_wall_time_s']:.0f} s)",
                file=sys.stderr,
            )
    return results


def collect_runs(out: Path) -> dict[Path, list[dict[str, Any]]]:
    """The ``results.json`` of the finished runs under ``out`` (as ``run_configs`` left
    them), grouped by config in the order of their seeds: the table of a benchmark
    that was stopped early, or printed again."""
    results: dict[Path, list[dict[str, Any]]] = {}
    for path in sorted(out.glob("*_seed*-*/results.json")):
        stem, seed = path.parent.name.rsplit("-", 2)[0].rsplit("_seed", 1)
        data = json.loads(path.read_text())
        data.update(run_dir=str(path.parent), seed=int(seed))
        timing = path.parent / "benchmark.json"
        data["total_wall_time_s"] = (
            json.loads(timing.read_text())["total_wall_time_s"] if timing.exists() else float("nan")
        )
        results.setdefault(Path(f"{stem}.yaml"), []).append(data)
    for runs in results.values():
        runs.sort(key=lambda r: r["seed"])
    return results


def _stage_label(r: range) -> str:
    return f"episode {r.start + 1}" if len(r) == 1 else f"episodes {r.start + 1}-{r.stop}"


def table(path: Path, results: list[dict[str, Any]]) -> list[str]:
    """The Markdown section of one config's runs over seeds."""
    first = results[0]
    agent = first["agent"]
    main = [AdaptationResult.from_dict(r["methods"][agent]) for r in results]
    size = main[0].stage_size
    stages = main[0].stages()
    label = first["methods"][agent]["label"]
    lines = [
        f"### {label} on {first['env']} (`configs/{path.name}`)",
        "",
        f"- training seeds {[r['seed'] for r in results]}; the "
        f"same {first['train_tasks']} train / {first['test_tasks']} test tasks (task seed 0); "
        f"K = {first['episodes']} consecutive meta-test episodes per test task"
        + (f", an adaptation step after every {size}" if size > 1 else ""),
        "- a cell is the mean over seeds of the mean return over test tasks, +- the standard "
        "deviation over seeds (one seed: no +-)",
        "",
        "| method | "
        + " | ".join(_stage_label(r) for r in stages)
        + " | train env steps | train wall time (s) |",
        "|---|" + "---:|" * (len(stages) + 2),
    ]
    for name in first["methods"]:
        per_seed = np.stack(
            [
                AdaptationResult.from_dict(r["methods"][name]).stage_returns(size).mean(0)
                for r in results
            ]
        )  # (seeds, stages)
        steps = [r["methods"][name]["train_env_steps"] for r in results]
        times = [r["methods"][name]["train_wall_time_s"] for r in results]
        cells = [
            f"{m:.2f} +- {s:.2f}" if len(results) > 1 else f"{m:.2f}"
            for m, s in zip(per_seed.mean(0), per_seed.std(0), strict=True)
        ]
        steps_cell = f"{int(np.mean(steps)):,}" if steps[0] is not None else "-"
        time_cell = f"{np.mean(times):.0f}" if times[0] is not None else "-"
        lines.append(
            f"| {first['methods'][name]['label']} | "
            + " | ".join(cells)
            + f" | {steps_cell} | {time_cell} |"
        )
    lines.append("")
    gaps = [r["oracle_gap_closed"] for r in results if r["oracle_gap_closed"] is not None]
    if gaps:
        lines.append(
            f"Oracle gap closed = ({label} {_stage_label(stages[-1])} - multi-task) / (oracle - "
            "multi-task), the baselines averaged over all K episodes: "
            f"**{np.mean(gaps):.2f}"
            + (f" +- {np.std(gaps):.2f}" if len(gaps) > 1 else "")
            + "** over seeds "
            f"({', '.join(f'{g:.2f}' for g in gaps)})."
        )
    total = np.mean([r["total_wall_time_s"] for r in results])
    steps = int(np.mean([r["methods"][agent]["train_env_steps"] for r in results]))
    lines.append(
        f"Meta-training budget: {steps:,} env steps ({label}); published: "
        f"{PUBLISHED.get(agent, 'see [tasks.md](../docs/tasks.md#published-budgets)')}."
        + (
            f" Wall time per seed (training, baselines unless shared, evaluation): {total:.0f} s."
            if np.isfinite(total)
            else ""
        )
    )
    return lines


def markdown(results: dict[Path, list[dict[str, Any]]], argv: list[str]) -> str:
    """The whole report: provenance, then one section per config."""
    import gymnasium
    import ray
    import stable_baselines3
    import torch

    lines = [
        "## Meta-test adaptation against the baselines ([P3](../docs/benchmarks.md#p3))",
        "",
        f"- command: `python benchmarks/adaptation.py {' '.join(argv)}`".rstrip(),
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}",
        f"- versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"gymnasium {gymnasium.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
        f"ray {ray.__version__}",
        "",
    ]
    for path, runs in results.items():
        lines += [*table(path, runs), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", type=Path, nargs="*", help="experiment YAML files")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: print the table of the finished runs under --out",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--sampler",
        choices=["local", "ray"],
        default=None,
        help="override sampler.kind (default: each config's)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="*",
        default=[],
        help="extra config overrides key.sub=value for every config",
    )
    args = parser.parse_args(argv)
    if args.collect:
        results = collect_runs(args.out)
    elif args.configs:
        results = run_configs(args.configs, args.seeds, args.sampler, args.out, args.overrides)
    else:
        parser.error("give configs to run, or --collect")
    print(markdown(results, argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
