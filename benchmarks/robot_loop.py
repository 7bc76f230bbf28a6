"""The full loop on a simulated robot server, from recorded data only (issue 8).

The robot is sim2sim.py's target (``--target``: hidden masses and friction, a one-step
action delay, observation noise) served by ``metarl serve`` in its own process. Only
the bridge is used to reach it:

1. ``metarl record``: the action delay estimated (``estimate_delay``), then
   ``--episodes`` episodes of random excitation recorded as a Minari dataset;
2. ``metarl sysid`` with a ``data`` section: DROPO fitted to the recording (commands as
   sent), the simulator delayed by the *estimated* delay; its recovery error is
   computed here, against the truth this script knows and the fit never saw;
3. PPO trained on the fitted distribution (sim2sim.py's training config, so the
   policies compare with its uniform-DR and oracle runs of the same seed);
4. ``metarl export`` of the learned, uniform-DR and oracle policies, then ``metarl
   deploy`` of each on the robot over the bridge: the return on the robot, and the
   transfer gap closed = (learned - uniform) / (oracle - uniform).

The uniform-DR and oracle policies come from a finished ``sim2sim.py transfer`` run
(``--sim2sim OUT``, seed ``--seed``); they use no robot data.

Usage::

    python benchmarks/sim2sim.py transfer --out runs/sim2sim --seeds 0   # if not yet run
    python benchmarks/robot_loop.py --sim2sim runs/sim2sim --out runs/robot_loop
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sim2sim
import yaml
from machine import machine_line, versions_line
from robot_timing import TOKEN, Server

PACKAGES = ("torch", "mujoco", "gymnasium", "cma", "minari", "onnxruntime")
HZ = 500  # as fast as the simulated robot steps reliably; the rate is not the point here


def cli(*args: str) -> str:
    """``metarl ARGS`` in a child process (the robot's side sees no state of this one)."""
    env = {**os.environ, "METARL_ROBOT_TOKEN": TOKEN}
    out = subprocess.run(
        [sys.executable, "-m", "metarl.cli", *args], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise SystemExit(f"metarl {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def folder_of(stdout: str, label: str) -> Path:
    line = next(x for x in stdout.splitlines() if x.startswith(label))
    return Path(line.split(":", 1)[1].strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sim2sim", required=True, help="a sim2sim.py --out folder")
    parser.add_argument("--out", default="runs/robot_loop")
    parser.add_argument("--target", default="half_cheetah", choices=list(sim2sim.TARGETS))
    parser.add_argument("--episodes", type=int, default=10, help="recorded episodes")
    parser.add_argument("--budget", type=int, default=1000, help="DROPO evaluations")
    parser.add_argument("--iterations", type=int, default=60, help="PPO iterations")
    parser.add_argument("--trials", type=int, default=20, help="deployed episodes per policy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = args.target
    env_id, truth, _ = sim2sim.TARGETS[name]
    start = time.perf_counter()

    runs = {}
    for variant in ("uniform", "oracle"):
        row = Path(args.sim2sim) / f"transfer_{name}_{variant}_s{args.seed}.json"
        if not row.exists():
            raise SystemExit(f"{row} is missing: run sim2sim.py transfer --seeds {args.seed}")
        run_dir = Path(json.loads(row.read_text())["run_dir"])
        # sim2sim.py writes run folders relative to where it ran: beside its --out
        runs[variant] = str(
            run_dir if run_dir.is_absolute() else Path(args.sim2sim).resolve().parent / run_dir
        )

    server = Server(sim2sim.target_config(name, args.seed + 2000), out)
    try:
        port = server.port
        robot = {"server": {"port": port}, "hz": HZ, "max_episode_steps": sim2sim.HORIZON}

        # 1. record: delay estimate, then random excitation
        record = {
            "record": {
                "name": "excitation",
                "robot": robot,
                "episodes": args.episodes,
                "estimate_delay": True,
                "dataset": f"{name}/random-v0",
                "root": str(out / "record"),
                "seed": args.seed,
            }
        }
        session = folder_of(
            cli("record", str(write(out / "record.yaml", record))), "session folder"
        )
        recorded = json.loads((session / "session.json").read_text())
        delay = recorded["estimated_delay"]["steps"]

        # 2. fit from the recording only, with the estimated delay
        sysid = {
            "sysid": {
                "name": f"{name}_dropo",
                "data": {"dataset": f"{name}/random-v0", "root": str(session / "dataset")},
                "simulator": {
                    "env": env_id,
                    "action_delay": delay,
                    "params": sim2sim.search_params(name),
                },
                "method": "dropo",
                "options": {"budget": args.budget, "samples": 5, "max_transitions": 300},
                "seed": args.seed,
                "root": str(out / "sysid"),
            }
        }
        fit_dir = folder_of(cli("sysid", str(write(out / "sysid.yaml", sysid))), "sysid folder")
        fit = json.loads((fit_dir / "fit.json").read_text())
        errors = {n: abs(fit["estimates"][n] - v) / abs(v) for n, v in truth.items()}

        # 3. train on the fitted distribution (sim2sim's config of the same seed)
        from metarl.runner import run_experiment

        ns = argparse.Namespace(out=str(out), noise=sim2sim.NOISE)
        config = sim2sim._experiment(
            name, "learned", fit["distribution"], args.seed, args.iterations, ns
        )
        train_start = time.perf_counter()
        runs["learned"] = str(run_experiment(config))
        train_s = time.perf_counter() - train_start

        # 4. export and deploy each policy on the robot
        returns = {}
        for variant, run_dir in runs.items():
            model = out / f"{variant}.onnx"
            cli("export", run_dir, str(model))
            deploy = {
                "deploy": {
                    "name": variant,
                    "robot": robot,
                    "policy": str(model),
                    "trials": args.trials,
                    "episodes_per_trial": 1,
                    "dataset": f"{name}/{variant}-v0",
                    "root": str(out / "deploy"),
                    "seed": args.seed + 3000,
                }
            }
            folder = folder_of(
                cli("deploy", str(write(out / f"deploy_{variant}.yaml", deploy))), "session folder"
            )
            r = np.array(json.loads((folder / "session.json").read_text())["returns"])[:, 0]
            returns[variant] = (float(r.mean()), float(r.std()))
    finally:
        server.close()

    u, le, o = (returns[v][0] for v in ("uniform", "learned", "oracle"))
    gap = (le - u) / (o - u) if abs(o - u) > 1e-9 else float("nan")
    result = {
        "target": name,
        "seed": args.seed,
        "true_delay": sim2sim.DELAY,
        "estimated_delay": recorded["estimated_delay"],
        "recorded_episodes": len(recorded["episodes"]),
        "recorded_steps": sum(e["steps"] for e in recorded["episodes"]),
        "fit": {
            "estimates": fit["estimates"],
            "recovery_error": errors,
            "wall_time_s": fit["wall_time_s"],
            "transitions": fit["transitions"],
        },
        "returns_on_robot": returns,
        "gap_closed": gap,
        "learned_train_s": train_s,
        "wall_time_s": time.perf_counter() - start,
    }
    (out / "robot_loop.json").write_text(json.dumps(result, indent=1))
    command = " ".join(["python benchmarks/robot_loop.py", *sys.argv[1:]])
    print(
        "\n".join(
            [
                "## The full loop on a simulated robot server (issue 8)",
                "",
                f"- command: `{command}`",
                f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
                f"- machine: {machine_line()}; server in its own process, loopback, {HZ} Hz",
                f"- versions: {versions_line(*PACKAGES)}",
                f"- robot: sim2sim.py's `{name}` target (seed {args.seed + 2000})",
                "",
                f"- delay estimated over the bridge: {recorded['estimated_delay']['steps']} steps "
                f"(true {sim2sim.DELAY}; onset margin {recorded['estimated_delay']['margin']:.1f})",
                f"- recorded: {result['recorded_episodes']} episodes, "
                f"{result['recorded_steps']} steps of random excitation; DROPO (budget "
                f"{args.budget}) on {fit['transitions']} of them, {fit['wall_time_s']:.0f} s",
                "- recovery error (relative): "
                + ", ".join(f"{n} {e:.3f}" for n, e in errors.items()),
                "- return on the robot (mean ± std over "
                f"{args.trials} deployed episodes, exported ONNX policies): "
                + ", ".join(f"{v} {m:.1f} ± {s:.1f}" for v, (m, s) in returns.items()),
                f"- transfer gap closed (learned - uniform) / (oracle - uniform): **{gap:.2f}**",
                f"- wall time: {result['wall_time_s'] / 60:.1f} min "
                f"(PPO on the learned distribution {train_s / 60:.1f} min)",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
