"""Sim-to-sim benchmark of learned simulators and transfer (BENCHMARKS.md, P4).

Two targets, "real" systems with hidden physics and effects the simulator leaves out
(an action delay of one control step and Gaussian observation noise of std 0.002).
The delay counts as known (measured on the robot): the fits replay actions through
it (``Simulator(action_delay=1)``) and every policy trains with it
(``env.effects``); the noise stays unmodeled except for the oracle. Without the
delay modeled the fits are far off: a one-step mismatch between recorded and
applied actions dominates the discrepancy.

- ``hopper``: Gymnasium's Hopper-v5 with a heavier torso, a lighter foot and less
  floor friction;
- ``half_cheetah``: HalfCheetah-v5 with a lighter torso, a heavier back thigh and
  less friction.

Phases (each writes JSON under ``--out``; ``report`` prints the Markdown tables):

- ``fits``: recovery error per parameter of DROPO and trajectory matching against
  the number of real trajectories (random excitation, at most 200 steps each), and
  the wall time of each fit;
- ``transfer``: PPO (``agent: ppo``) trained on the simulator (i) at its nominal
  parameters, (ii) with uniform randomization over the fit's search box, (iii) on
  the DROPO distribution fitted to ``--fit-trajectories`` trajectories, (iv) on the
  target's hidden parameters and effects (oracle), all with the known delay; each
  evaluated on the target (``TargetSampler``, mean action), and the transfer gap closed
  ``(iii - ii) / (iv - ii)``.

Usage::

    python benchmarks/sim2sim.py fits --out runs/sim2sim
    python benchmarks/sim2sim.py transfer --out runs/sim2sim --iterations 60
    python benchmarks/sim2sim.py report --out runs/sim2sim
    python benchmarks/sim2sim.py fits --targets hopper --trajectories 1 2 --budget 20  # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_line

import metarl  # noqa: F401  (registers the environments)
from metarl.config import validate_config
from metarl.envs import PhysicsParam
from metarl.evaluation import evaluate_adaptation
from metarl.runner import run_experiment
from metarl.sim2real.sysid import Simulator, fit_dropo, fit_trajectory_matching
from metarl.sim2real.targets import Target, TargetSampler, load_target_config
from metarl.tasks import RealTask

DELAY = 1  # control steps; known (a robot's latency measurement gives it), so modeled
EFFECTS = [
    {"name": "action_delay", "steps": DELAY},
    {"name": "observation_noise", "std": 0.002},
]
FRICTION = {"field": "geom_friction", "components": ["sliding"], "op": "scale"}


def _mass(body: str) -> dict[str, Any]:
    return {"field": "body_mass", "elements": [body], "op": "scale"}


# name -> (env id, hidden values, param specs without distribution)
TARGETS: dict[str, tuple[str, dict[str, float], dict[str, dict[str, Any]]]] = {
    "hopper": (
        "Hopper-v5",
        {"torso_mass": 1.5, "foot_mass": 0.7, "friction": 0.6},
        {"torso_mass": _mass("torso"), "foot_mass": _mass("foot"), "friction": FRICTION},
    ),
    "half_cheetah": (
        "HalfCheetah-v5",
        {"torso_mass": 0.7, "bthigh_mass": 1.4, "friction": 0.5},
        {"torso_mass": _mass("torso"), "bthigh_mass": _mass("bthigh"), "friction": FRICTION},
    ),
}
BOUNDS = (0.3, 2.5)  # the search box of the fits = the uniform randomization's range
HORIZON = 200


def target_config(name: str, seed: int = 0) -> dict[str, Any]:
    env, truth, specs = TARGETS[name]
    physics = {n: {**specs[n], "dist": {"kind": "fixed", "value": v}} for n, v in truth.items()}
    return {"env": env, "physics": physics, "effects": EFFECTS, "seed": seed}


def search_params(name: str) -> dict[str, dict[str, Any]]:
    _, _, specs = TARGETS[name]
    low, high = BOUNDS
    return {
        n: {**s, "dist": {"kind": "uniform", "low": low, "high": high}} for n, s in specs.items()
    }


def record(name: str, trajectories: int, seed: int) -> tuple[list[Any], dict[str, Any]]:
    target = Target(load_target_config(target_config(name, seed)))
    rng = np.random.default_rng(seed)
    space: Any = target.action_space
    episodes = target.rollout(
        lambda obs: rng.uniform(space.low, space.high).astype(space.dtype), trajectories, HORIZON
    )
    truth = target.hidden_truth()
    target.close()
    return episodes, truth


# --------------------------------------------------------------------------- fits


def run_fits(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.targets:
        env_id = TARGETS[name][0]
        all_episodes, truth = record(name, max(args.trajectories), args.seed)
        for n in args.trajectories:
            episodes = all_episodes[:n]
            for method, fit, options in (
                ("dropo", fit_dropo, {"budget": args.budget, "samples": 5, "max_transitions": 300}),
                ("trajectory_matching", fit_trajectory_matching, {"budget": args.budget}),
            ):
                params = {k: PhysicsParam.from_dict(v) for k, v in search_params(name).items()}
                sim = Simulator(env_id, params, action_delay=DELAY)
                result = fit(sim, episodes, seed=args.seed, **options)
                sim.close()
                row = {
                    "target": name,
                    "method": method,
                    "trajectories": n,
                    "truth": truth,
                    "recovery_error": result.recovery_error(truth),
                    **result.to_dict(),
                }
                path = out / f"fit_{name}_{method}_{n}.json"
                path.write_text(json.dumps(row, indent=1, default=str))
                errors = ", ".join(f"{k} {v:.3f}" for k, v in row["recovery_error"].items())
                print(f"{name} {method} {n} traj: {errors}; {result.wall_time_s:.0f} s", flush=True)


# --------------------------------------------------------------------------- transfer


def _experiment(name: str, variant: str, params: dict[str, Any], args: argparse.Namespace) -> Any:
    env_id = TARGETS[name][0]
    raw = {
        "env": {
            "id": env_id,
            "kwargs": {"max_episode_steps": HORIZON},
            "train_tasks": 200,
            "test_tasks": 10,
            "effects": EFFECTS if variant == "oracle" else EFFECTS[:1],
        },
        "sampler": {"num_envs": 10},
        "agent": {"name": "ppo", "tasks_per_iteration": 20},
        "randomization": {"schedule": "uniform", "params": params},
        "trainer": {
            "iterations": args.iterations,
            "eval_every": 0,
            "checkpoint_every": args.iterations,
            "progress": False,
        },
        "evaluation": {"episodes": 1, "baselines": []},
        "run": {
            "seed": args.seed,
            "root": str(Path(args.out) / "runs"),
            "name": f"{name}_{variant}",
        },
    }
    return validate_config(raw)


def _variants(name: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    _, truth, specs = TARGETS[name]
    fit_file = Path(args.out) / f"fit_{name}_dropo_{args.fit_trajectories}.json"
    if not fit_file.exists():
        raise SystemExit(f"{fit_file} is missing: run the fits phase with that many trajectories")
    learned = json.loads(fit_file.read_text())["distribution"]
    return {
        "nominal": {n: {**s, "dist": {"kind": "fixed", "value": 1.0}} for n, s in specs.items()},
        "uniform": search_params(name),
        "learned": learned,
        "oracle": {
            n: {**s, "dist": {"kind": "fixed", "value": truth[n]}} for n, s in specs.items()
        },
    }


def run_transfer(args: argparse.Namespace) -> None:
    from metarl.runner import load_trained_agent

    out = Path(args.out)
    for name in args.targets:
        for variant, params in _variants(name, args).items():
            path = out / f"transfer_{name}_{variant}.json"
            if path.exists():
                print(f"{path} exists; skipped", flush=True)
                continue
            start = time.perf_counter()
            run_dir = run_experiment(_experiment(name, variant, params, args))
            train_s = time.perf_counter() - start
            _, agent, state = load_trained_agent(run_dir)
            target = Target(load_target_config(target_config(name, args.seed + 1000)))
            sampler = TargetSampler(target, seed=args.seed, max_steps=HORIZON)
            result = evaluate_adaptation(agent, sampler, [RealTask("target")] * args.trials, 1)
            sampler.close()
            row = {
                "target": name,
                "variant": variant,
                "return_mean": float(result.returns.mean()),
                "return_std": float(result.returns.std()),
                "trials": args.trials,
                "train_env_steps": int(state["env_steps"]),
                "train_wall_time_s": train_s,
                "run_dir": str(run_dir),
            }
            path.write_text(json.dumps(row, indent=1))
            print(f"{name} {variant}: {row['return_mean']:.1f} on the target", flush=True)


# --------------------------------------------------------------------------- report


def plot_recovery(fits: list[dict[str, Any]], folder: Path) -> Path:
    """Recovery error per parameter against the number of real trajectories, one panel
    per target, a line per (method, parameter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({r["target"] for r in fits})
    fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 4), squeeze=False)
    for ax, name in zip(axes[0], targets, strict=True):
        rows = [r for r in fits if r["target"] == name]
        for method, style in (("DROPO", "--"), ("trajectory matching", "-")):
            mine = sorted(
                (r for r in rows if r["method"] == method), key=lambda r: r["trajectories"]
            )
            if not mine:
                continue
            for param in mine[0]["recovery_error"]:
                ax.plot(
                    [r["trajectories"] for r in mine],
                    [r["recovery_error"][param] for r in mine],
                    style,
                    marker="o",
                    label=f"{method}: {param}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("real trajectories")
        ax.set_ylabel("relative recovery error")
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sim2sim_recovery.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report(args: argparse.Namespace) -> str:
    out = Path(args.out)
    command = " ".join(["python benchmarks/sim2sim.py", *sys.argv[1:]])
    lines = [
        "## Sim-to-sim: learned simulators and transfer (P4)",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}",
        "",
    ]
    fits = [json.loads(p.read_text()) for p in sorted(out.glob("fit_*.json"))]
    if fits:
        lines += [
            "Relative recovery error per parameter against the number of real trajectories "
            "(random excitation, at most 200 steps each), and the fit's wall time:",
            "",
            "| target | method | trajectories | transitions | errors | wall time |",
            "|---|---|---:|---:|---|---:|",
        ]
        fits.sort(key=lambda r: (r["target"], r["method"], r["trajectories"]))
        for r in fits:
            errors = ", ".join(f"{k} {v:.3f}" for k, v in r["recovery_error"].items())
            lines.append(
                f"| {r['target']} | {r['method']} | {r['trajectories']} | {r['transitions']} | "
                f"{errors} | {r['wall_time_s']:.0f} s |"
            )
    if fits and args.plot_dir:
        path = plot_recovery(fits, Path(args.plot_dir))
        lines += ["", f"![recovery error against real trajectories]({path.name})"]
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("transfer_*.json"))]
    if rows:
        lines += [
            "",
            "Return on the target (mean ± std over trials, mean action) of PPO trained on:",
            "",
            "| target | nominal | uniform DR | learned (DROPO) | oracle | gap closed |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        by: dict[str, dict[str, Any]] = {}
        for r in rows:
            by.setdefault(r["target"], {})[r["variant"]] = r
        for name, v in by.items():
            cells = [
                f"{v[k]['return_mean']:.1f} ± {v[k]['return_std']:.1f}" if k in v else "-"
                for k in ("nominal", "uniform", "learned", "oracle")
            ]
            gap = "-"
            if all(k in v for k in ("uniform", "learned", "oracle")):
                u, le, o = (v[k]["return_mean"] for k in ("uniform", "learned", "oracle"))
                gap = "not defined" if abs(o - u) < 1e-9 else f"{(le - u) / (o - u):.2f}"
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {gap} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["fits", "transfer", "report"])
    parser.add_argument("--out", default="runs/sim2sim")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--trajectories", nargs="+", type=int, default=[1, 2, 5, 10, 20])
    parser.add_argument("--budget", type=int, default=300, help="objective evaluations per fit")
    parser.add_argument("--fit-trajectories", type=int, default=10, help="data of the learned DR")
    parser.add_argument("--iterations", type=int, default=60, help="PPO iterations per policy")
    parser.add_argument("--trials", type=int, default=20, help="target episodes per policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot-dir", default=None, help="report: write the recovery plot here")
    args = parser.parse_args(argv)
    for key in ("budget", "fit_trajectories", "iterations", "trials"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be a positive integer")
    if min(args.trajectories) < 1:
        parser.error("--trajectories must be positive integers")
    if args.phase == "fits":
        run_fits(args)
    elif args.phase == "transfer":
        run_transfer(args)
    else:
        print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
