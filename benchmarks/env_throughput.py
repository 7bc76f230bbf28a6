"""Step throughput of the MuJoCo task environments against Gymnasium's v5 environments.

For each MuJoCo family of ``metarl.envs.TASK_ENVS`` this measures, in one process
and on the same pre-generated random actions:

- the task environment's steps/s,
- the plain Gymnasium v5 environment of the same robot (the target: the task env
  should keep >= 0.9x of it),
- the bare physics bound: ``mujoco.mj_step(model, data, nstep=frame_skip)`` on
  the same model, i.e. the ``mj_step`` rate divided by ``frame_skip``.

The three are timed in interleaved repeats and the median is reported, so that
drifts of a shared machine hit all three alike. Environments are stepped
unwrapped (no ``TimeLimit`` or checker wrappers). All three follow one
trajectory: the task env's, which resets when it terminates or at the
registered horizon; the Gymnasium env resets at the same steps from the same
seed (whatever its own termination rule), and the bare loop restarts from the
states those resets gave. The overhead columns give the microseconds per step
spent outside ``mj_step`` (Python, ``mj_rnePostConstraint``, observation,
reward and resets).

Usage::

    python benchmarks/env_throughput.py                       # all families
    python benchmarks/env_throughput.py --envs AntDir HumanoidDir --steps 2000
    python benchmarks/env_throughput.py --markdown            # for benchmarks/RESULTS.md

Families whose module does not exist yet are skipped with a note.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import TASK_ENVS

# Task family -> the Gymnasium v5 environment of the same robot.
BASE_ENVS = {
    "HalfCheetahVel": "HalfCheetah-v5",
    "HalfCheetahDir": "HalfCheetah-v5",
    "AntDir": "Ant-v5",
    "AntGoal": "Ant-v5",
    "HumanoidDir": "Humanoid-v5",
    "HopperParams": "Hopper-v5",
    "Walker2dParams": "Walker2d-v5",
}


def _family(env_id: str) -> str:
    """``metarl/AntDir-v0`` -> ``AntDir``."""
    return env_id.split("/", 1)[1].rsplit("-", 1)[0]


@dataclass
class Row:
    family: str
    task_sps: float
    gym_sps: float
    bound_sps: float

    @property
    def ratio(self) -> float:
        return self.task_sps / self.gym_sps

    @property
    def ratio_to_bound(self) -> float:
        return self.task_sps / self.bound_sps

    @property
    def task_overhead_us(self) -> float:
        return 1e6 / self.task_sps - 1e6 / self.bound_sps

    @property
    def gym_overhead_us(self) -> float:
        return 1e6 / self.gym_sps - 1e6 / self.bound_sps


@dataclass
class Schedule:
    """Where the task env's episodes ended, and the state each following reset gave."""

    resets: set[int]
    states: list[tuple[np.ndarray, np.ndarray]]


def _record_schedule(env: Any, actions: np.ndarray, horizon: int, seed: int) -> Schedule:
    """Run the task env once: reset on termination or at the horizon, and record where."""
    env.reset(seed=seed)
    schedule = Schedule(set(), [(env.data.qpos.copy(), env.data.qvel.copy())])
    t = 0
    for i, action in enumerate(actions):
        terminated = env.step(action)[2]
        t += 1
        if terminated or t == horizon:
            env.reset()
            schedule.resets.add(i)
            schedule.states.append((env.data.qpos.copy(), env.data.qvel.copy()))
            t = 0
    return schedule


def _run_env(env: Any, actions: np.ndarray, schedule: Schedule, seed: int) -> float:
    """Seconds to step ``env`` through ``actions``, resetting where the task env did.

    Both envs reset from the same seed and draw their reset noise alike, so they
    follow the same trajectory, whatever their own termination rule says.
    """
    env.reset(seed=seed)
    resets = schedule.resets
    start = time.perf_counter()
    for i, action in enumerate(actions):
        env.step(action)
        if i in resets:
            env.reset()
    return time.perf_counter() - start


def _run_bare(
    model: Any, data: Any, actions: np.ndarray, frame_skip: int, schedule: Schedule
) -> float:
    """Seconds of ``mj_step(nstep=frame_skip)`` alone along the task env's trajectory."""
    states = iter(schedule.states)
    resets = schedule.resets

    def restart() -> None:
        qpos, qvel = next(states)
        data.qpos[:], data.qvel[:] = qpos, qvel
        mujoco.mj_forward(model, data)

    mujoco.mj_resetData(model, data)
    restart()
    ctrl = data.ctrl
    start = time.perf_counter()
    for i, action in enumerate(actions):
        ctrl[:] = action
        mujoco.mj_step(model, data, nstep=frame_skip)
        if i in resets:
            restart()
    return time.perf_counter() - start


def measure(env_id: str, steps: int, repeats: int, seed: int) -> Row:
    """Median steps/s of the task env, the Gymnasium env and the bare physics."""
    family = _family(env_id)
    horizon = TASK_ENVS[env_id][1]
    task_env: Any = gym.make(env_id).unwrapped
    gym_env: Any = gym.make(BASE_ENVS[family]).unwrapped
    space = task_env.action_space
    rng = np.random.default_rng(seed)
    actions = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(np.float32)
    model = gym_env.model
    data = mujoco.MjData(model)
    frame_skip = gym_env.frame_skip

    # Untimed passes: record the task env's episodes, and warm up the other two.
    schedule = _record_schedule(task_env, actions, horizon, seed)
    _run_env(gym_env, actions, schedule, seed)
    _run_bare(model, data, actions, frame_skip, schedule)

    times: dict[str, list[float]] = {"task": [], "gym": [], "bare": []}
    for _ in range(repeats):
        times["task"].append(_run_env(task_env, actions, schedule, seed))
        times["gym"].append(_run_env(gym_env, actions, schedule, seed))
        times["bare"].append(_run_bare(model, data, actions, frame_skip, schedule))
    task_env.close()
    gym_env.close()
    sps = {k: steps / statistics.median(v) for k, v in times.items()}
    return Row(family, sps["task"], sps["gym"], sps["bare"])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


HEADER = (
    "env",
    "task env steps/s",
    "gym v5 steps/s",
    "task/gym",
    "physics bound steps/s",
    "task/bound",
    "task overhead us/step",
    "gym overhead us/step",
)


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.family,
        f"{row.task_sps:,.0f}",
        f"{row.gym_sps:,.0f}",
        f"{row.ratio:.3f}",
        f"{row.bound_sps:,.0f}",
        f"{row.ratio_to_bound:.3f}",
        f"{row.task_overhead_us:.1f}",
        f"{row.gym_overhead_us:.1f}",
    )


def plain_table(rows: list[Row]) -> str:
    cells = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = []
    for n, c in enumerate(cells):
        lines.append(
            "  ".join(
                s.ljust(w) if i == 0 else s.rjust(w)
                for i, (s, w) in enumerate(zip(c, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_report(rows: list[Row], args: argparse.Namespace, skipped: list[str]) -> str:
    lines = [
        "## Environment step throughput",
        "",
        f"- command: `python benchmarks/env_throughput.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {os.cpu_count()} cores, {_cpu_model()}, no GPU (MuJoCo runs on the CPU)",
        f"- versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"mujoco {mujoco.__version__}, gymnasium {gym.__version__}",
        f"- method: {args.steps} steps of pre-generated uniform random actions per run, "
        f"{args.repeats} interleaved repeats, median; unwrapped envs, reset on termination "
        "or at the horizon, the Gymnasium env resetting at the same steps (one trajectory "
        "for both); the bound is `mj_step(nstep=frame_skip)` alone on the same model along "
        "that trajectory; overhead = time per step beyond the bound",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    if skipped:
        lines += ["", "Not measured (module not written yet): " + ", ".join(skipped) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    families = {_family(i): i for i in TASK_ENVS if _family(i) in BASE_ENVS}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="env steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (median)")
    parser.add_argument(
        "--envs",
        nargs="+",
        choices=sorted(families),
        default=list(families),
        metavar="FAMILY",
        help=f"families to measure (default: all of {', '.join(families)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the actions and resets")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown report")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be positive")

    rows, skipped = [], []
    for family in args.envs:
        env_id = families[family]
        module = TASK_ENVS[env_id][0].split(":", 1)[0]
        if importlib.util.find_spec(module) is None:
            print(f"note: skipping {family}: module {module} does not exist yet", file=sys.stderr)
            skipped.append(family)
            continue
        row = measure(env_id, args.steps, args.repeats, args.seed)
        print(f"measured {family}: {row.ratio:.3f}x the Gymnasium env", file=sys.stderr)
        rows.append(row)

    print(markdown_report(rows, args, skipped) if args.markdown else plain_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
