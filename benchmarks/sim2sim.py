"""Sim-to-sim benchmark of learned simulators and transfer (docs/benchmarks.md#p4).

Two targets, "real" systems with hidden physics and effects the simulator leaves out
(an action delay of one control step and Gaussian observation noise of std 0.002;
``--noise`` changes it, ``--noise 0`` leaves it out).
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
  ``(iii - ii) / (iv - ii)``;
- ``adapt``: RL2 (``agent: rl2``) meta-trained on the same DROPO distribution, with
  trials of K episodes, then run by ``metarl transfer`` on its source test tasks and
  on the target: its adaptation curve (return of episode k = 1..K) on both.

Every phase runs once per seed of ``--seeds`` (the seed of the recorded data, the fits,
the training runs and the target's evaluation episodes); ``report`` gives the mean and
the spread over the seeds whose files are there.

Usage::

    python benchmarks/sim2sim.py fits --out runs/sim2sim
    python benchmarks/sim2sim.py transfer --out runs/sim2sim
    python benchmarks/sim2sim.py adapt --out runs/sim2sim --targets half_cheetah
    python benchmarks/sim2sim.py report --out runs/sim2sim --plot-dir benchmarks/plots
    python benchmarks/sim2sim.py fits --targets hopper --trajectories 1 2 --seeds 0 \\
        --dropo-budget 20 --tm-budget 20  # smoke
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
from machine import machine_line, versions_line

import metarl  # noqa: F401  (registers the environments)
from metarl.config import validate_config
from metarl.envs import PhysicsParam
from metarl.evaluation import evaluate_adaptation
from metarl.runner import run_experiment
from metarl.sim2real.sysid import Simulator, fit_dropo, fit_trajectory_matching
from metarl.sim2real.targets import Target, TargetSampler, load_target_config
from metarl.tasks import RealTask

DELAY = 1  # control steps; known (a robot's latency measurement gives it), so modeled
NOISE = 0.002  # std of the targets' observation noise (--noise)


def effects(noise: float) -> list[dict[str, Any]]:
    """The targets' effects: the known delay, then unmodeled noise (none at 0)."""
    delay = [{"name": "action_delay", "steps": DELAY}]
    return delay + ([{"name": "observation_noise", "std": noise}] if noise > 0 else [])


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


def target_config(name: str, seed: int = 0, noise: float = NOISE) -> dict[str, Any]:
    env, truth, specs = TARGETS[name]
    physics = {n: {**specs[n], "dist": {"kind": "fixed", "value": v}} for n, v in truth.items()}
    return {"env": env, "physics": physics, "effects": effects(noise), "seed": seed}


def search_params(name: str) -> dict[str, dict[str, Any]]:
    _, _, specs = TARGETS[name]
    low, high = BOUNDS
    return {
        n: {**s, "dist": {"kind": "uniform", "low": low, "high": high}} for n, s in specs.items()
    }


def record(
    name: str, trajectories: int, seed: int, noise: float = NOISE
) -> tuple[list[Any], dict[str, Any]]:
    target = Target(load_target_config(target_config(name, seed, noise)))
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])  # not the fits'
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
    methods = (
        ("dropo", fit_dropo, {"budget": args.dropo_budget, "samples": 5, "max_transitions": 300}),
        ("trajectory_matching", fit_trajectory_matching, {"budget": args.tm_budget}),
    )
    for seed in args.seeds:
        for name in args.targets:
            env_id = TARGETS[name][0]
            all_episodes, truth = record(name, max(args.trajectories), seed, args.noise)
            for n in args.trajectories:
                for method, fit, options in methods:
                    if method not in args.methods:
                        continue
                    path = out / f"fit_{name}_{method}_{n}_s{seed}.json"
                    if path.exists():
                        print(f"{path} exists; skipped", flush=True)
                        continue
                    params = {k: PhysicsParam.from_dict(v) for k, v in search_params(name).items()}
                    sim = Simulator(env_id, params, action_delay=DELAY)
                    result = fit(sim, all_episodes[:n], seed=seed, **options)
                    sim.close()
                    row = {
                        "target": name,
                        "method": method,
                        "trajectories": n,
                        "seed": seed,
                        "noise": args.noise,
                        "truth": truth,
                        "recovery_error": result.recovery_error(truth),
                        **result.to_dict(),
                    }
                    path.write_text(json.dumps(row, indent=1, default=str))
                    errors = ", ".join(f"{k} {v:.3f}" for k, v in row["recovery_error"].items())
                    print(
                        f"seed {seed} {name} {method} {n} traj: {errors}; "
                        f"{result.wall_time_s:.0f} s",
                        flush=True,
                    )


# --------------------------------------------------------------------------- training


def _experiment(
    name: str,
    variant: str,
    params: dict[str, Any],
    seed: int,
    iterations: int,
    args: argparse.Namespace,
    agent: dict[str, Any] | None = None,
) -> Any:
    """The run config of one policy: PPO over ``params`` (``agent`` replaces it)."""
    env_id = TARGETS[name][0]
    raw = {
        "env": {
            "id": env_id,
            "kwargs": {"max_episode_steps": HORIZON},
            "train_tasks": 200,
            "test_tasks": 10,
            "effects": effects(args.noise if variant == "oracle" else 0.0),
        },
        "sampler": {"num_envs": 20 if agent else 10},
        "agent": agent or {"name": "ppo", "meta_batch_size": 20},
        "randomization": {"schedule": "uniform", "params": params},
        "trainer": {
            "iterations": iterations,
            "eval_every": 0,
            "checkpoint_every": iterations,
            "progress": False,
        },
        "evaluation": {"episodes": agent["episodes_per_trial"] if agent else 1, "baselines": []},
        "run": {
            "seed": seed,
            "root": str(Path(args.out) / "runs"),
            "name": f"{name}_{variant}_s{seed}",
        },
    }
    return validate_config(raw)


def _learned(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The DROPO distribution fitted to ``--fit-trajectories`` trajectories of ``seed``."""
    fit_file = Path(args.out) / f"fit_{name}_dropo_{args.fit_trajectories}_s{seed}.json"
    if not fit_file.exists():
        raise SystemExit(f"{fit_file} is missing: run the fits phase with that many trajectories")
    learned: dict[str, Any] = json.loads(fit_file.read_text())["distribution"]
    return learned


def _variants(name: str, seed: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    _, truth, specs = TARGETS[name]
    return {
        "nominal": {n: {**s, "dist": {"kind": "fixed", "value": 1.0}} for n, s in specs.items()},
        "uniform": search_params(name),
        "learned": _learned(name, seed, args),
        "oracle": {
            n: {**s, "dist": {"kind": "fixed", "value": truth[n]}} for n, s in specs.items()
        },
    }


def run_transfer(args: argparse.Namespace) -> None:
    from metarl.runner import load_trained_agent

    out = Path(args.out)
    for seed in args.seeds:
        for name in args.targets:
            for variant, params in _variants(name, seed, args).items():
                path = out / f"transfer_{name}_{variant}_s{seed}.json"
                if path.exists():
                    print(f"{path} exists; skipped", flush=True)
                    continue
                start = time.perf_counter()
                config = _experiment(name, variant, params, seed, args.iterations, args)
                run_dir = run_experiment(config)
                train_s = time.perf_counter() - start
                _, agent, state = load_trained_agent(run_dir)
                target = Target(load_target_config(target_config(name, seed + 1000, args.noise)))
                sampler = TargetSampler(target, seed=seed, max_steps=HORIZON)
                trials = [RealTask("target")] * args.trials
                result = evaluate_adaptation(agent, sampler, trials, 1)
                sampler.close()
                row = {
                    "target": name,
                    "variant": variant,
                    "seed": seed,
                    "return_mean": float(result.returns.mean()),
                    "return_std": float(result.returns.std()),
                    "trials": args.trials,
                    "train_env_steps": int(state["env_steps"]),
                    "train_wall_time_s": train_s,
                    "run_dir": str(Path(run_dir).resolve()),
                }
                path.write_text(json.dumps(row, indent=1))
                print(f"seed {seed} {name} {variant}: {row['return_mean']:.1f}", flush=True)


def run_adapt(args: argparse.Namespace) -> None:
    """RL2 on the learned distribution, then ``metarl transfer`` of it to the target."""
    import yaml

    from metarl.runner import load_trained_agent
    from metarl.sim2real.transfer import run_transfer as transfer

    out = Path(args.out)
    agent = {
        "name": "rl2",
        "episodes_per_trial": args.episodes,
        "meta_batch_size": 20,
    }
    for seed in args.seeds:
        for name in args.targets:
            path = out / f"adapt_{name}_rl2_s{seed}.json"
            if path.exists():
                print(f"{path} exists; skipped", flush=True)
                continue
            start = time.perf_counter()
            learned = _learned(name, seed, args)
            config = _experiment(name, "rl2", learned, seed, args.rl2_iterations, args, agent)
            run_dir = run_experiment(config)
            train_s = time.perf_counter() - start
            spec = {
                "name": f"{name}_rl2_s{seed}",
                "run": str(run_dir),
                "target": target_config(name, seed + 1000, args.noise),
                "trials": args.trials,
                "episodes": args.episodes,
                "max_steps": HORIZON,
                "seed": seed,
                "root": str(out / "transfer"),
            }
            spec_file = out / f"transfer_{name}_rl2_s{seed}.yaml"
            spec_file.write_text(yaml.safe_dump({"transfer": spec}, sort_keys=False))
            folder = transfer(spec_file)
            data = json.loads((folder / "transfer.json").read_text())
            row = {
                "target": name,
                "agent": "rl2",
                "seed": seed,
                "episodes": args.episodes,
                "source": np.asarray(data["source"]["returns"]).mean(0).tolist(),
                "target_returns": np.asarray(data["target"]["returns"]).mean(0).tolist(),
                "trials": args.trials,
                "train_env_steps": int(load_trained_agent(run_dir)[2]["env_steps"]),
                "train_wall_time_s": train_s,
                "run_dir": str(Path(run_dir).resolve()),
                "transfer_dir": str(folder),
            }
            path.write_text(json.dumps(row, indent=1))
            curve = " ".join(f"{r:.1f}" for r in row["target_returns"])
            print(f"seed {seed} {name} rl2 on the target, k = 1..K: {curve}", flush=True)


# --------------------------------------------------------------------------- report


def _load(out: Path, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"{prefix}_*.json"))]


def _group(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return dict(sorted(groups.items()))


def _spread(values: list[float], digits: int) -> str:
    """``mean ± std`` over seeds (the std of one value is left out)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _seeds(rows: list[dict[str, Any]]) -> str:
    return ",".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))


def plot_recovery(fits: list[dict[str, Any]], folder: Path) -> Path:
    """Recovery error per parameter against the number of real trajectories, one panel
    per target, a line per (method, parameter): the mean over seeds, bars +- one std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({r["target"] for r in fits})
    fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 4), squeeze=False)
    for ax, name in zip(axes[0], targets, strict=True):
        for method, style in (("DROPO", "--"), ("trajectory matching", "-")):
            groups = _group(
                [r for r in fits if (r["target"], r["method"]) == (name, method)], "trajectories"
            )
            if not groups:
                continue
            counts = [k[0] for k in groups]
            for param in next(iter(groups.values()))[0]["recovery_error"]:
                errs = [[r["recovery_error"][param] for r in rows] for rows in groups.values()]
                ax.errorbar(
                    counts,
                    [np.mean(e) for e in errs],
                    yerr=[np.std(e, ddof=1) if len(e) > 1 else 0.0 for e in errs],
                    fmt=style,
                    marker="o",
                    capsize=3,
                    label=f"{method}: {param}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("real trajectories")
        ax.set_ylabel("relative recovery error (mean over seeds)")
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sim2sim_recovery.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fits_table(fits: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Relative recovery error per parameter against the number of real trajectories "
        "(random excitation, at most 200 steps each), mean ± std over seeds, and the "
        "fit's wall time (mean over seeds):",
        "",
        "| target | method | trajectories | seeds | transitions | errors | wall time |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for (name, method, n), rows in _group(fits, "target", "method", "trajectories").items():
        errors = ", ".join(
            f"{p} {_spread([r['recovery_error'][p] for r in rows], 3)}"
            for p in rows[0]["recovery_error"]
        )
        transitions = np.mean([r["transitions"] for r in rows])
        wall = np.mean([r["wall_time_s"] for r in rows])
        lines.append(
            f"| {name} | {method} | {n} | {_seeds(rows)} | {transitions:.0f} | "
            f"{errors} | {wall:.0f} s |"
        )
    return lines


def _gap(u: float, le: float, o: float) -> float | None:
    return None if abs(o - u) < 1e-9 else (le - u) / (o - u)


def _transfer_table(rows: list[dict[str, Any]]) -> list[str]:
    variants = ("nominal", "uniform", "learned", "oracle")
    lines = [
        "Return on the target of PPO trained on each distribution: per seed the mean over "
        "its target trials, then mean ± std over seeds; gap closed = (learned - uniform) "
        "/ (oracle - uniform) of the seed means, and per seed:",
        "",
        "| target | seeds | nominal | uniform DR | learned (DROPO) | oracle | gap closed "
        "| per seed |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for (name,), mine in _group(rows, "target").items():
        by = {v: {r["seed"]: r["return_mean"] for r in mine if r["variant"] == v} for v in variants}
        cells = [_spread(list(by[v].values()), 1) if by[v] else "-" for v in variants]
        complete = sorted(set.intersection(*(set(by[v]) for v in variants[1:])))
        gap, per_seed = "-", "-"
        if complete:
            means = [float(np.mean([by[v][s] for s in complete])) for v in variants[1:]]
            g = _gap(*means)
            gap = "not defined" if g is None else f"{g:.2f}"
            per = [(s, _gap(*(by[v][s] for v in variants[1:]))) for s in complete]
            per_seed = ", ".join(f"{s}: {'-' if g is None else f'{g:.2f}'}" for s, g in per)
        seeds = ",".join(str(s) for s in sorted(set().union(*(set(b) for b in by.values()))))
        lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + f" | {gap} | {per_seed} |")
    return lines


def _adapt_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "RL2 meta-trained on the learned (DROPO) distribution, evaluated by `metarl transfer`: "
        "return of episode k of a trial (per seed the mean over tasks / trials, then "
        "mean ± std over seeds):",
        "",
    ]
    for (name, agent), mine in _group(rows, "target", "agent").items():
        k = mine[0]["episodes"]
        lines += [
            f"| {name}, {agent} (seeds {_seeds(mine)}) | "
            + " | ".join(f"k={i + 1}" for i in range(k))
            + " |",
            "|---|" + "---:|" * k,
        ]
        for where, key in (("source test tasks", "source"), ("target", "target_returns")):
            cells = [_spread([r[key][i] for r in mine], 1) for i in range(k)]
            lines.append(f"| {where} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def report(args: argparse.Namespace) -> str:
    out = Path(args.out)
    command = " ".join(["python benchmarks/sim2sim.py", *sys.argv[1:]])
    lines = [
        "## Sim-to-sim: learned simulators and transfer ([P4](../docs/benchmarks.md#p4))",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}",
        f"- versions: {versions_line('torch', 'mujoco', 'gymnasium', 'cma')}",
        "",
    ]
    fits = _load(out, "fit")
    if fits:
        lines += _fits_table(fits)
        if args.plot_dir:
            path = plot_recovery(fits, Path(args.plot_dir))
            lines += ["", f"![recovery error against real trajectories]({path.name})"]
    transfers = _load(out, "transfer")
    if transfers:
        lines += ["", *_transfer_table(transfers)]
    adapts = _load(out, "adapt")
    if adapts:
        lines += ["", *_adapt_table(adapts)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["fits", "transfer", "adapt", "report"])
    parser.add_argument("--out", default="runs/sim2sim")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trajectories", nargs="+", type=int, default=[1, 2, 5, 10, 20])
    parser.add_argument(
        "--dropo-budget", type=int, default=1000, help="objective evaluations per DROPO fit"
    )
    parser.add_argument(
        "--tm-budget", type=int, default=300, help="evaluations per trajectory-matching fit"
    )
    parser.add_argument("--fit-trajectories", type=int, default=10, help="data of the learned DR")
    parser.add_argument("--iterations", type=int, default=60, help="PPO iterations per policy")
    parser.add_argument("--rl2-iterations", type=int, default=150, help="adapt: RL2 iterations")
    parser.add_argument("--episodes", type=int, default=3, help="adapt: K episodes per trial")
    parser.add_argument("--trials", type=int, default=20, help="target trials per policy")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["dropo", "trajectory_matching"],
        choices=["dropo", "trajectory_matching"],
        help="fits: the methods to run",
    )
    parser.add_argument(
        "--noise", type=float, default=NOISE, help="std of the targets' observation noise"
    )
    parser.add_argument("--plot-dir", default=None, help="report: write the recovery plot here")
    args = parser.parse_args(argv)
    counts = ("dropo_budget", "tm_budget", "fit_trajectories", "iterations", "rl2_iterations")
    for key in (*counts, "episodes", "trials"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be a positive integer")
    if min(args.trajectories) < 1:
        parser.error("--trajectories must be positive integers")
    if not args.noise >= 0:
        parser.error("--noise must be a number >= 0")
    if min(args.seeds) < 0:
        parser.error("--seeds must be integers >= 0")
    phases = {"fits": run_fits, "transfer": run_transfer, "adapt": run_adapt}
    if args.phase in phases:
        phases[args.phase](args)
    else:
        print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
