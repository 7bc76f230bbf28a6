"""Sim-to-sim benchmark of learned simulators and transfer (docs/benchmarks.md#p4).

Four targets, "real" systems with hidden physics and effects the simulator leaves out:
an action delay of one control step, Gaussian observation noise of std 0.002 on what
the policy sees (``--noise``; ``--noise 0`` leaves it out), and sensor noise on the
recorded states (the ``state_noise`` effect: std 1e-3 on every ``qpos`` entry, rad or
m, and 1e-2 on every ``qvel`` entry, rad/s or m/s; ``--qpos-std``, ``--qvel-std``, 0
leaves it out). The fits read the recorded states (``env_infos["state"]`` and
``["next_state"]``), not the observations, so the observation noise never reaches
them: the state noise is what a robot's encoders and IMU would add to the data they
fit. The delay counts as known (measured on the robot): the fits replay actions
through it (``Simulator(action_delay=1)``) and every policy trains with it
(``env.effects``); the noises stay unmodeled except for the oracle, which trains with
the observation noise (the state noise is in the recorded data only, no policy sees
it). Without the delay modeled the fits are far off: a one-step mismatch between
recorded and applied actions dominates the discrepancy.

- ``hopper``: Gymnasium's Hopper-v5 with a heavier torso, a lighter foot and less
  floor friction;
- ``half_cheetah``: HalfCheetah-v5 with a lighter torso, a heavier back thigh and
  less friction;
- ``walker2d``: Walker2d-v5 with a heavier torso, lighter thighs, heavier feet (both
  legs alike) and less friction;
- ``ant``: Ant-v5 without the contact forces in its observation
  (``include_cfrc_ext_in_observation: false``, in the target, the fits' simulator and
  every training alike) with a heavier torso, lighter legs (the hips and upper legs,
  the bodies the model names) and less friction.

Friction is the sliding friction of every geom, scaled (MuJoCo's contact takes the
larger of the two geoms', so it acts as the floor's).

Phases (each writes JSON under ``--out``; ``report`` prints the Markdown tables):

- ``fits``: for each fit, against the number of real trajectories (random excitation,
  at most 200 steps each): the estimates, their 95% intervals and whether each holds
  the truth, the recovery error per parameter, the parameters the fit flags as not
  identified, its warnings, its discrepancy beside the noise floor, and its wall time;
  DROPO and trajectory matching (``--methods``);
- ``transfer``: PPO (``agent: ppo``) trained on the simulator (i) at its nominal
  parameters, (ii) with uniform randomization over the fit's search box, (iii) on
  the learned distribution fitted to ``--fit-trajectories`` trajectories
  (``--learned-method``: trajectory matching's, by default, a truncated normal per
  parameter at the estimate with its standard error, cut at the search bounds; or
  DROPO's fitted randomization), (iv) on the target's hidden parameters and effects
  (oracle), all with the known delay; each evaluated on the target
  (``TargetSampler``, mean action), and the transfer gap closed
  ``(iii - ii) / (iv - ii)``, per seed and of the seed means;
- ``adapt``: RL2 (``agent: rl2``) meta-trained on the same learned distribution, with
  trials of K episodes, then run by ``metarl transfer`` on its source test tasks and
  on the target: its adaptation curve (return of episode k = 1..K) on both.

Every phase runs once per seed of ``--seeds`` (the seed of the recorded data, the fits,
the training runs and the target's evaluation episodes) and writes one file per
(target, method or variant, seed): a phase run again skips the files that are there,
so an interrupted run resumes where it stopped. ``report`` gives each seed's figures
and the mean and spread over the seeds whose files are there.

Usage::

    python benchmarks/sim2sim.py fits --out runs/sim2sim
    python benchmarks/sim2sim.py transfer --out runs/sim2sim
    python benchmarks/sim2sim.py transfer --out runs/sim2sim --learned-method dropo
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_line, versions_line

import metarl  # noqa: F401  (registers the environments)
from metarl.config import validate_config
from metarl.envs import PhysicsParam
from metarl.evaluation import evaluate_adaptation
from metarl.runner import run_experiment
from metarl.sim2real.sysid import FitResult, Simulator, fit_dropo, fit_trajectory_matching
from metarl.sim2real.targets import Target, TargetSampler, load_target_config
from metarl.tasks import RealTask

DELAY = 1  # control steps; known (a robot's latency measurement gives it), so modeled
NOISE = 0.002  # std of the targets' observation noise (--noise)
# Std of the sensor noise on the recorded states (--qpos-std, --qvel-std): a joint
# encoder's or a motion-capture system's error on positions, a differentiated
# encoder's or an IMU's on velocities.
QPOS_STD = 1e-3  # rad or m
QVEL_STD = 1e-2  # rad/s or m/s


def effects(noise: float) -> list[dict[str, Any]]:
    """The effects a policy meets: the known delay, then unmodeled observation noise
    (none at 0)."""
    delay = [{"name": "action_delay", "steps": DELAY}]
    return delay + ([{"name": "observation_noise", "std": noise}] if noise > 0 else [])


def target_effects(noise: float, qpos_std: float, qvel_std: float) -> list[dict[str, Any]]:
    """The targets' effects: ``effects(noise)`` with the sensor noise on the recorded
    states after the delay (none when both stds are 0)."""
    state = (
        [{"name": "state_noise", "qpos_std": qpos_std, "qvel_std": qvel_std}]
        if qpos_std > 0 or qvel_std > 0
        else []
    )
    policy = effects(noise)
    return policy[:1] + state + policy[1:]


FRICTION = {"field": "geom_friction", "components": ["sliding"], "op": "scale"}


def _mass(*bodies: str) -> dict[str, Any]:
    return {"field": "body_mass", "elements": list(bodies), "op": "scale"}


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
    "walker2d": (
        "Walker2d-v5",
        {"torso_mass": 1.4, "thigh_mass": 0.75, "foot_mass": 1.3, "friction": 0.6},
        {
            "torso_mass": _mass("torso"),
            "thigh_mass": _mass("thigh", "thigh_left"),
            "foot_mass": _mass("foot", "foot_left"),
            "friction": FRICTION,
        },
    ),
    "ant": (
        "Ant-v5",
        {"torso_mass": 1.4, "leg_mass": 0.7, "friction": 0.6},
        {
            "torso_mass": _mass("torso"),
            "leg_mass": _mass(
                *(f"{hip}_leg" for hip in ("front_left", "front_right", "back", "right_back")),
                *(f"aux_{i}" for i in range(1, 5)),
            ),
            "friction": FRICTION,
        },
    ),
}
# name -> keyword arguments of gymnasium.make, the same for the target, the fits'
# simulator and every training (Ant's contact forces are no state: left out).
ENV_KWARGS: dict[str, dict[str, Any]] = {"ant": {"include_cfrc_ext_in_observation": False}}
BOUNDS = (0.3, 2.5)  # the search box of the fits = the uniform randomization's range
HORIZON = 200
FIT_METHODS = ("trajectory_matching", "dropo")
TRAIN_EPISODES = 20  # PPO's episodes per iteration (agent.meta_batch_size)
# PPO's MuJoCo benchmarks (Schulman et al. 2017, "Proximal Policy Optimization
# Algorithms", Fig. 3) train for 1 M env steps per run.
PAPER_PPO_STEPS = 1_000_000


def env_kwargs(name: str) -> dict[str, Any]:
    return dict(ENV_KWARGS.get(name, {}))


def target_config(
    name: str,
    seed: int = 0,
    noise: float = NOISE,
    qpos_std: float = QPOS_STD,
    qvel_std: float = QVEL_STD,
) -> dict[str, Any]:
    env, truth, specs = TARGETS[name]
    physics = {n: {**specs[n], "dist": {"kind": "fixed", "value": v}} for n, v in truth.items()}
    return {
        "env": env,
        "env_kwargs": env_kwargs(name),
        "physics": physics,
        "effects": target_effects(noise, qpos_std, qvel_std),
        "seed": seed,
    }


def _target(name: str, seed: int, args: argparse.Namespace) -> Target:
    """The target ``name`` with the noises of ``args``."""
    config = target_config(name, seed, args.noise, args.qpos_std, args.qvel_std)
    return Target(load_target_config(config))


def search_params(name: str) -> dict[str, dict[str, Any]]:
    _, _, specs = TARGETS[name]
    low, high = BOUNDS
    return {
        n: {**s, "dist": {"kind": "uniform", "low": low, "high": high}} for n, s in specs.items()
    }


def record(
    name: str,
    trajectories: int,
    seed: int,
    noise: float = NOISE,
    qpos_std: float = QPOS_STD,
    qvel_std: float = QVEL_STD,
) -> tuple[list[Any], dict[str, Any]]:
    config = target_config(name, seed, noise, qpos_std, qvel_std)
    target = Target(load_target_config(config))
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])  # not the fits'
    space: Any = target.action_space
    episodes = target.rollout(
        lambda obs: rng.uniform(space.low, space.high).astype(space.dtype), trajectories, HORIZON
    )
    truth = target.hidden_truth()
    target.close()
    return episodes, truth


# --------------------------------------------------------------------------- fits


def _fit_path(out: Path, name: str, method: str, n: int, seed: int) -> Path:
    return out / f"fit_{name}_{method}_{n}_s{seed}.json"


def run_fits(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods: dict[str, tuple[Callable[..., FitResult], dict[str, Any]]] = {
        "dropo": (
            fit_dropo,
            {"budget": args.dropo_budget, "samples": 5, "max_transitions": 300},
        ),
        "trajectory_matching": (
            fit_trajectory_matching,
            {"budget": args.tm_budget, "horizon": args.tm_horizon},
        ),
    }
    for seed in args.seeds:
        for name in args.targets:
            todo = [
                (n, m)
                for n in args.trajectories
                for m in FIT_METHODS
                if m in args.methods and not _fit_path(out, name, m, n, seed).exists()
            ]
            if not todo:
                print(f"seed {seed} {name}: every fit file exists; skipped", flush=True)
                continue
            env_id = TARGETS[name][0]
            all_episodes, truth = record(
                name, max(args.trajectories), seed, args.noise, args.qpos_std, args.qvel_std
            )
            for n, method in todo:
                fit, options = methods[method]
                params = {k: PhysicsParam.from_dict(v) for k, v in search_params(name).items()}
                sim = Simulator(env_id, params, env_kwargs(name), action_delay=DELAY)
                try:
                    result = fit(sim, all_episodes[:n], seed=seed, **options)
                finally:
                    sim.close()
                row = {
                    "target": name,
                    "method": method,
                    "trajectories": n,
                    "seed": seed,
                    "noise": args.noise,
                    "state_noise": {"qpos_std": args.qpos_std, "qvel_std": args.qvel_std},
                    "options": options,
                    "truth": truth,
                    "recovery_error": result.recovery_error(truth),
                    "truth_in_interval": result.covers(truth),
                    "discrepancy_over_floor": result.discrepancy_fitted
                    / max(result.noise_floor, 1e-300),
                    **result.to_dict(),
                    "method_key": method,  # to_dict's "method" is the display name
                }
                _fit_path(out, name, method, n, seed).write_text(
                    json.dumps(row, indent=1, default=str)
                )
                errors = ", ".join(f"{k} {v:.3f}" for k, v in row["recovery_error"].items())
                covered = sum(row["truth_in_interval"].values())
                print(
                    f"seed {seed} {name} {method} {n} traj: {errors}; truth in interval "
                    f"{covered}/{len(row['truth_in_interval'])}; "
                    f"{len(result.warnings)} warnings; {result.wall_time_s:.0f} s",
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
    """The run config of one policy: PPO over ``params`` (``agent`` replaces it); the
    run is named ``<name>_<variant>_s<seed>``."""
    env_id = TARGETS[name][0]
    raw = {
        "env": {
            "id": env_id,
            "kwargs": {"max_episode_steps": HORIZON, **env_kwargs(name)},
            "train_tasks": 200,
            "test_tasks": 10,
            "effects": effects(args.noise if variant == "oracle" else 0.0),
        },
        "sampler": {"num_envs": 20 if agent else 10},
        "agent": agent or {"name": "ppo", "meta_batch_size": TRAIN_EPISODES},
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
    """The distribution ``--learned-method`` fitted to ``--fit-trajectories``
    trajectories of ``seed``."""
    method = args.learned_method
    fit_file = _fit_path(Path(args.out), name, method, args.fit_trajectories, seed)
    if not fit_file.exists():
        raise SystemExit(
            f"{fit_file} is missing: run the fits phase with --trajectories "
            f"{args.fit_trajectories} --methods {method} --seeds {seed} --targets {name}"
        )
    learned: dict[str, Any] = json.loads(fit_file.read_text())["distribution"]
    return learned


def _transfer_key(variant: str, args: argparse.Namespace) -> str:
    """A policy's name in its file and run folder: the learned one names its method."""
    return f"learned_{args.learned_method}" if variant == "learned" else variant


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
                key = _transfer_key(variant, args)
                path = out / f"transfer_{name}_{key}_s{seed}.json"
                if path.exists():
                    print(f"{path} exists; skipped", flush=True)
                    continue
                start = time.perf_counter()
                config = _experiment(name, key, params, seed, args.iterations, args)
                run_dir = run_experiment(config)
                train_s = time.perf_counter() - start
                _, agent, state = load_trained_agent(run_dir)
                sampler = TargetSampler(
                    _target(name, seed + 1000, args), seed=seed, max_steps=HORIZON
                )
                trials = [RealTask("target")] * args.trials
                result = evaluate_adaptation(agent, sampler, trials, 1)
                sampler.close()
                row = {
                    "target": name,
                    "variant": variant,
                    **({"learned_method": args.learned_method} if variant == "learned" else {}),
                    "seed": seed,
                    "return_mean": float(result.returns.mean()),
                    "return_std": float(result.returns.std()),
                    "trials": args.trials,
                    "iterations": args.iterations,
                    "train_env_steps": int(state["env_steps"]),
                    "train_wall_time_s": train_s,
                    "run_dir": str(Path(run_dir).resolve()),
                }
                path.write_text(json.dumps(row, indent=1))
                print(f"seed {seed} {name} {key}: {row['return_mean']:.1f}", flush=True)


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
    method = args.learned_method
    for seed in args.seeds:
        for name in args.targets:
            path = out / f"adapt_{name}_rl2_{method}_s{seed}.json"
            if path.exists():
                print(f"{path} exists; skipped", flush=True)
                continue
            start = time.perf_counter()
            learned = _learned(name, seed, args)
            config = _experiment(
                name, f"rl2_{method}", learned, seed, args.rl2_iterations, args, agent
            )
            run_dir = run_experiment(config)
            train_s = time.perf_counter() - start
            spec = {
                "name": f"{name}_rl2_{method}_s{seed}",
                "run": str(run_dir),
                "target": target_config(
                    name, seed + 1000, args.noise, args.qpos_std, args.qvel_std
                ),
                "trials": args.trials,
                "episodes": args.episodes,
                "max_steps": HORIZON,
                "seed": seed,
                "root": str(out / "transfer"),
            }
            spec_file = out / f"transfer_{name}_rl2_{method}_s{seed}.yaml"
            spec_file.write_text(yaml.safe_dump({"transfer": spec}, sort_keys=False))
            folder = transfer(spec_file)
            data = json.loads((folder / "transfer.json").read_text())
            row = {
                "target": name,
                "agent": "rl2",
                "learned_method": method,
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

METHOD_NAMES = {"dropo": "DROPO", "trajectory_matching": "trajectory matching"}


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


def _learned_method(row: dict[str, Any]) -> str:
    """The method of a learned distribution (files written before the option: DROPO)."""
    return METHOD_NAMES[row.get("learned_method", "dropo")]


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


def _covered(row: dict[str, Any]) -> dict[str, bool] | None:
    """Whether each parameter's 95% interval holds the truth (``None``: a file without
    intervals)."""
    if "truth_in_interval" in row:
        return {k: bool(v) for k, v in row["truth_in_interval"].items()}
    if "interval" in row and "truth" in row:
        return {n: lo <= row["truth"][n] <= hi for n, (lo, hi) in row["interval"].items()}
    return None


def _coverage(rows: list[dict[str, Any]]) -> str:
    """``k/n`` (parameter, seed) cases whose interval holds the truth; ``-`` without
    intervals."""
    cases = [v for r in rows if (c := _covered(r)) is not None for v in c.values()]
    return f"{sum(cases)}/{len(cases)}" if cases else "-"


def _not_identified(rows: list[dict[str, Any]]) -> str:
    """The parameters flagged as not identified, with the seeds flagging each."""
    if not all("not_identified" in r for r in rows):
        return "-"
    counts: dict[str, int] = {}
    for r in rows:
        for n in r["not_identified"]:
            counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{n} {k}/{len(rows)}" for n, k in sorted(counts.items())) or "none"


def _over_floor(rows: list[dict[str, Any]]) -> str:
    """Fitted (nominal) discrepancy over the noise floor, mean over seeds."""
    if not all("noise_floor" in r for r in rows):
        return "-"
    floor = [max(r["noise_floor"], 1e-300) for r in rows]
    fitted = np.mean([r["discrepancy_fitted"] / f for r, f in zip(rows, floor, strict=True)])
    nominal = np.mean([r["discrepancy_nominal"] / f for r, f in zip(rows, floor, strict=True)])
    return f"{fitted:.3g} ({nominal:.3g})"


def _fits_table(fits: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Relative recovery error per parameter against the number of real trajectories "
        "(random excitation, at most 200 steps each), mean ± std over seeds; the "
        "(parameter, seed) cases whose 95% interval holds the truth; the parameters "
        "flagged as not identified (seeds flagging each); the fitted discrepancy over "
        "the noise floor, at the nominal parameters in parentheses (mean over seeds); "
        "the fit's wall time (mean over seeds):",
        "",
        "| target | method | trajectories | seeds | transitions | errors | truth in "
        "interval | not identified | discrepancy / floor | wall time |",
        "|---|---|---:|---|---:|---|---:|---|---:|---:|",
    ]
    for (name, method, n), rows in _group(fits, "target", "method", "trajectories").items():
        errors = ", ".join(
            f"{p} {_spread([r['recovery_error'][p] for r in rows], 3)}"
            for p in rows[0]["recovery_error"]
        )
        transitions = np.mean([r["transitions"] for r in rows])
        wall = np.mean([r["wall_time_s"] for r in rows])
        lines.append(
            f"| {name} | {method} | {n} | {_seeds(rows)} | {transitions:.0f} | {errors} | "
            f"{_coverage(rows)} | {_not_identified(rows)} | {_over_floor(rows)} | "
            f"{wall:.0f} s |"
        )
    summary = [
        f"{method} {_coverage(rows)}"
        for (method,), rows in _group(fits, "method").items()
        if _coverage(rows) != "-"
    ]
    if summary:
        lines += [
            "",
            "Coverage of the 95% intervals over every fit above, (parameter, seed) cases "
            f"holding the truth: {'; '.join(summary)} (DROPO's interval is its fitted "
            "randomization's mean ± 1.96 std, the spread the data support, not a "
            "confidence interval).",
        ]
    return lines


def _warnings_list(fits: list[dict[str, Any]]) -> list[str]:
    """Each fit setting's warnings (their first clause), with the seeds giving each."""
    lines = []
    for (name, method, n), rows in _group(fits, "target", "method", "trajectories").items():
        counts: dict[str, int] = {}
        for r in rows:
            for w in r.get("warnings", []):
                head = w.split(":")[0]
                counts[head] = counts.get(head, 0) + 1
        if counts:
            said = "; ".join(f"{h} ({k}/{len(rows)} seeds)" for h, k in sorted(counts.items()))
            lines.append(f"- {name}, {method}, {n} trajectories: {said}")
    return ["", "The fits' warnings:", "", *lines] if lines else []


def _learned_fits_table(fits: list[dict[str, Any]], trajectories: int) -> list[str]:
    """Each seed's fit at ``trajectories`` (the data of the learned distributions): the
    estimates, their 95% intervals, the truth and whether the interval holds it."""
    rows = [r for r in fits if r["trajectories"] == trajectories and "interval" in r]
    if not rows:
        return []
    lines = [
        "",
        f"The fits of {trajectories} trajectories (the learned distributions' data), per "
        "seed: estimate [95% interval] (truth, in or out of the interval); the "
        "parameters flagged as not identified; the number of warnings:",
        "",
        "| target | method | seed | estimates | not identified | warnings |",
        "|---|---|---:|---|---|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["target"], r["method"], r["seed"])):
        inside = _covered(r) or {}
        cells = ", ".join(
            f"{n} {r['estimates'][n]:.3g} [{lo:.3g}, {hi:.3g}] "
            f"({r['truth'][n]:.3g}, {'in' if inside.get(n) else 'out'})"
            for n, (lo, hi) in r["interval"].items()
        )
        flagged = ", ".join(r.get("not_identified", [])) or "none"
        lines.append(
            f"| {r['target']} | {r['method']} | {r['seed']} | {cells} | {flagged} | "
            f"{len(r.get('warnings', []))} |"
        )
    return lines


def _gap(u: float, le: float, o: float) -> float | None:
    return None if abs(o - u) < 1e-9 else (le - u) / (o - u)


def _gap_text(g: float | None) -> str:
    return "not defined" if g is None else f"{g:.2f}"


def _budget(rows: list[dict[str, Any]]) -> list[str]:
    """The PPO trainings' budget beside the published one."""
    steps = [r["train_env_steps"] for r in rows if "train_env_steps" in r]
    iterations = sorted({r["iterations"] for r in rows if "iterations" in r})
    if not steps:
        return []
    per = f"{', '.join(map(str, iterations))} iterations x " if iterations else ""
    return [
        "",
        f"PPO's budget per policy: {per}{TRAIN_EPISODES} episodes of at most {HORIZON} "
        f"steps, {min(steps):,}-{max(steps):,} env steps (the runs' own counts); PPO's "
        f"MuJoCo benchmarks (Schulman et al. 2017) train {PAPER_PPO_STEPS:,} env steps "
        "per run.",
    ]


def _transfer_table(rows: list[dict[str, Any]]) -> list[str]:
    variants = ("nominal", "uniform", "learned", "oracle")
    lines = [
        "Return on the target of PPO trained on each distribution: per seed the mean over "
        "its target trials, then mean ± std over seeds; gap closed = (learned - uniform) "
        "/ (oracle - uniform) of the seed means, and per seed:",
        "",
        "| target | learned from | seeds | nominal | uniform DR | learned | oracle "
        "| gap closed | per seed |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    per_seed = [
        "",
        "Per seed: the return on the target of each policy and the gap it closed:",
        "",
        "| target | learned from | seed | nominal | uniform DR | learned | oracle | gap closed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (name,), mine in _group(rows, "target").items():
        fixed = {
            v: {r["seed"]: r["return_mean"] for r in mine if r["variant"] == v} for v in variants
        }
        methods = sorted({_learned_method(r) for r in mine if r["variant"] == "learned"}) or ["-"]
        for method in methods:
            by = dict(fixed)
            by["learned"] = {
                r["seed"]: r["return_mean"]
                for r in mine
                if r["variant"] == "learned" and _learned_method(r) == method
            }
            cells = [_spread(list(by[v].values()), 1) if by[v] else "-" for v in variants]
            complete = sorted(set.intersection(*(set(by[v]) for v in variants[1:])))
            gap, per = "-", "-"
            if complete:
                means = [float(np.mean([by[v][s] for s in complete])) for v in variants[1:]]
                gap = _gap_text(_gap(*means))
                gaps = {s: _gap(*(by[v][s] for v in variants[1:])) for s in complete}
                per = ", ".join(f"{s}: {_gap_text(g)}" for s, g in gaps.items())
            seeds = ",".join(str(s) for s in sorted(set().union(*(set(b) for b in by.values()))))
            lines.append(
                f"| {name} | {method} | {seeds} | " + " | ".join(cells) + f" | {gap} | {per} |"
            )
            for s in sorted(set().union(*(set(b) for b in by.values()))):
                values = [f"{by[v][s]:.1f}" if s in by[v] else "-" for v in variants]
                g = _gap_text(_gap(*(by[v][s] for v in variants[1:]))) if s in complete else "-"
                per_seed.append(f"| {name} | {method} | {s} | " + " | ".join(values) + f" | {g} |")
    return lines + per_seed + _budget(rows)


def _adapt_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "RL2 meta-trained on the learned distribution, evaluated by `metarl transfer`: "
        "return of episode k of a trial (per seed the mean over tasks / trials, then "
        "mean ± std over seeds):",
        "",
    ]
    for r in rows:
        r["learned_from"] = _learned_method(r)
    for (name, agent, method), mine in _group(rows, "target", "agent", "learned_from").items():
        k = mine[0]["episodes"]
        lines += [
            f"| {name}, {agent} on {method}'s distribution (seeds {_seeds(mine)}) | "
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
        lines += _learned_fits_table(fits, args.fit_trajectories)
        lines += _warnings_list(fits)
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


def _non_negative(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


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
        "--tm-budget",
        type=int,
        default=300,
        help="evaluations of a trajectory-matching fit's global stage (CMA-ES)",
    )
    parser.add_argument(
        "--tm-horizon",
        type=int,
        default=1,
        help="control steps per trajectory-matching window (1: one-step prediction error)",
    )
    parser.add_argument("--fit-trajectories", type=int, default=10, help="data of the learned DR")
    parser.add_argument(
        "--learned-method",
        default="trajectory_matching",
        choices=list(FIT_METHODS),
        help="transfer, adapt: the fit whose distribution is the learned one",
    )
    parser.add_argument("--iterations", type=int, default=60, help="PPO iterations per policy")
    parser.add_argument("--rl2-iterations", type=int, default=150, help="adapt: RL2 iterations")
    parser.add_argument("--episodes", type=int, default=3, help="adapt: K episodes per trial")
    parser.add_argument("--trials", type=int, default=20, help="target trials per policy")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["dropo", "trajectory_matching"],
        choices=list(FIT_METHODS),
        help="fits: the methods to run",
    )
    parser.add_argument(
        "--noise", type=float, default=NOISE, help="std of the targets' observation noise"
    )
    parser.add_argument(
        "--qpos-std",
        type=_non_negative,
        default=QPOS_STD,
        help="std of the sensor noise on the recorded qpos (state_noise effect; 0: none)",
    )
    parser.add_argument(
        "--qvel-std",
        type=_non_negative,
        default=QVEL_STD,
        help="std of the sensor noise on the recorded qvel (state_noise effect; 0: none)",
    )
    parser.add_argument("--plot-dir", default=None, help="report: write the recovery plot here")
    args = parser.parse_args(argv)
    counts = (
        "dropo_budget",
        "tm_budget",
        "tm_horizon",
        "fit_trajectories",
        "iterations",
        "rl2_iterations",
    )
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
