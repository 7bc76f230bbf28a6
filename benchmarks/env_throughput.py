"""Step throughput of the MuJoCo task environments against Gymnasium's v5 environments.

For each MuJoCo family of ``metarl.envs.TASK_ENVS`` this measures, in one process
and on the same pre-generated random actions:

- the task environment's steps/s,
- the plain Gymnasium v5 environment of the same robot (the goal of
  docs/benchmarks.md#p1: the task env keeps >= 0.95x of it),
- the bare physics bound: ``mujoco.mj_step(model, data, nstep=frame_skip)`` on
  the same model, i.e. the ``mj_step`` rate divided by ``frame_skip``.

The three are interleaved step by step (each takes step ``i`` in turn, the order
rotating, each step timed on its own), so that load from other processes hits
all three alike; this is repeated and steps/s are medians over repeats, ratios
and overheads medians of the per-repeat ratios and differences. Environments
are stepped unwrapped (no ``TimeLimit`` or checker wrappers). All three follow one
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

A second table breaks one task env step into its parts (``breakdown``).

Families whose module does not exist yet are skipped with a note.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from machine import machine_line

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
    """Seconds of each timed run, repeat by repeat (index i of each list: one repeat)."""

    family: str
    steps: int
    task: list[float]
    gym: list[float]
    bare: list[float]

    def sps(self, times: list[float]) -> float:
        return self.steps / statistics.median(times)

    # Ratios and overheads pair the times of one repeat (measured step by step in
    # turn) and take the median over repeats, so that load from other processes cancels.
    @property
    def ratio(self) -> float:
        return statistics.median(g / t for g, t in zip(self.gym, self.task, strict=True))

    @property
    def ratio_to_bound(self) -> float:
        return statistics.median(b / t for b, t in zip(self.bare, self.task, strict=True))

    def overhead_us(self, times: list[float]) -> float:
        diffs = (t - b for t, b in zip(times, self.bare, strict=True))
        return 1e6 * statistics.median(diffs) / self.steps


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


class _Env:
    """A Gymnasium env stepped along the schedule (reset where the task env reset)."""

    def __init__(self, env: Any):
        self.env = env
        self.step = env.step

    def start(self, seed: int) -> None:
        self.env.reset(seed=seed)

    def restart(self) -> None:
        self.env.reset()


class _BarePhysics:
    """``mj_step(nstep=frame_skip)`` alone, restarted from the states the task env reset to."""

    def __init__(self, model: Any, frame_skip: int, schedule: Schedule):
        self.model, self.data = model, mujoco.MjData(model)
        self.frame_skip, self.schedule = frame_skip, schedule
        self._states = iter(schedule.states)

    def step(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)

    def start(self, seed: int) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self._states = iter(self.schedule.states)
        self.restart()

    def restart(self) -> None:
        qpos, qvel = next(self._states)
        self.data.qpos[:], self.data.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, self.data)


def _run_interleaved(
    runners: list[Any], actions: np.ndarray, schedule: Schedule, seed: int
) -> list[float]:
    """Seconds each runner spent on ``actions`` (steps and resets), stepped in turn.

    The runners take each step in turn (the order rotating from step to step) and
    each step is timed on its own, so that a burst of load from other processes
    falls on all of them alike. Both envs reset from the same seed and draw their
    reset noise alike, so all follow the task env's trajectory.
    """
    clock = time.perf_counter
    resets = schedule.resets
    n = len(runners)
    orders = [[runners[(k + j) % n] for j in range(n)] for k in range(n)]
    index = {id(r): i for i, r in enumerate(runners)}
    totals = [0.0] * n
    for runner in runners:
        runner.start(seed)
    for i, action in enumerate(actions):
        reset = i in resets
        for runner in orders[i % n]:
            t0 = clock()
            runner.step(action)
            if reset:
                runner.restart()
            totals[index[id(runner)]] += clock() - t0
    return totals


def measure(env_id: str, steps: int, repeats: int, seed: int) -> Row:
    """Seconds per repeat of the task env, the Gymnasium env and the bare physics."""
    family = _family(env_id)
    horizon = TASK_ENVS[env_id][1]
    task_env: Any = gym.make(env_id).unwrapped
    gym_env: Any = gym.make(BASE_ENVS[family]).unwrapped
    if hasattr(task_env, "restore_defaults"):
        # A *Params env starts with a drawn task; measure it on the default physics, the
        # physics of the Gymnasium env and of the bare bound, so all three follow one trajectory.
        task_env.restore_defaults()
    space = task_env.action_space
    rng = np.random.default_rng(seed)
    actions = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(np.float32)

    schedule = _record_schedule(task_env, actions, horizon, seed)  # also warms up
    runners = [
        _Env(task_env),
        _Env(gym_env),
        _BarePhysics(gym_env.model, gym_env.frame_skip, schedule),
    ]
    times: dict[str, list[float]] = {"task": [], "gym": [], "bare": []}
    for _ in range(repeats):
        task_t, gym_t, bare_t = _run_interleaved(runners, actions, schedule, seed)
        times["task"].append(task_t)
        times["gym"].append(gym_t)
        times["bare"].append(bare_t)
    task_env.close()
    gym_env.close()
    return Row(family, steps, times["task"], times["gym"], times["bare"])


def breakdown(env_id: str, steps: int, seed: int) -> dict[str, float]:
    """Microseconds per call of the parts of the task env's step, medians over ``steps`` calls.

    Parts: ``mj_step(nstep=frame_skip)`` alone; Gymnasium's ``do_simulation`` (setting
    ``ctrl``, the physics and, for Ant and Humanoid, ``mj_rnePostConstraint`` for the
    contact forces); ``_get_obs``; and the whole ``step``. The rest of the step (reward
    terms, info dict, task bookkeeping) is ``step - do_simulation - _get_obs``. Each
    call is timed on its own and the calls are interleaved along one trajectory.
    """
    env: Any = gym.make(env_id).unwrapped
    space = env.action_space
    rng = np.random.default_rng(seed)
    actions = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(np.float32)
    env.reset(seed=seed)
    parts: dict[str, list[float]] = {"mj_step": [], "do_simulation": [], "_get_obs": [], "step": []}
    clock = time.perf_counter
    for action in actions:
        t0 = clock()
        mujoco.mj_step(env.model, env.data, nstep=env.frame_skip)
        t1 = clock()
        env.do_simulation(action, env.frame_skip)
        t2 = clock()
        env._get_obs()
        t3 = clock()
        _, _, terminated, _, _ = env.step(action)
        t4 = clock()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[key].append(dt)
        if terminated:
            env.reset(seed=seed)
    env.close()
    out = {k: 1e6 * statistics.median(v) for k, v in parts.items()}
    out["rest of step"] = out["step"] - out["do_simulation"] - out["_get_obs"]
    return out


def breakdown_table(rows: dict[str, dict[str, float]]) -> list[str]:
    keys = ["mj_step", "do_simulation", "_get_obs", "rest of step", "step"]
    lines = [
        "| env | " + " | ".join(f"{k} us" for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for family, parts in rows.items():
        lines.append(f"| {family} | " + " | ".join(f"{parts[k]:.1f}" for k in keys) + " |")
    return lines


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
        f"{row.sps(row.task):,.0f}",
        f"{row.sps(row.gym):,.0f}",
        f"{row.ratio:.3f}",
        f"{row.sps(row.bare):,.0f}",
        f"{row.ratio_to_bound:.3f}",
        f"{row.overhead_us(row.task):.1f}",
        f"{row.overhead_us(row.gym):.1f}",
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


def markdown_report(
    rows: list[Row],
    args: argparse.Namespace,
    skipped: list[str],
    parts: dict[str, dict[str, float]],
) -> str:
    command = " ".join(["python benchmarks/env_throughput.py", *sys.argv[1:]])
    lines = [
        "## Environment step throughput",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()} (MuJoCo runs on the CPU)",
        f"- versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"mujoco {mujoco.__version__}, gymnasium {gym.__version__}",
        f"- method: {args.steps} steps of pre-generated uniform random actions per run, "
        "the three interleaved step by step (each step timed, order rotating), "
        f"{args.repeats} repeats; steps/s: median over repeats; ratios and "
        "overheads: median over repeats of the ratio or difference within a repeat; "
        "unwrapped envs, reset on termination or at the horizon, the Gymnasium env "
        "resetting at the same steps (one trajectory for both); the bound is "
        "`mj_step(nstep=frame_skip)` alone on the same model along that trajectory; "
        "overhead = time per step beyond the bound",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    if skipped:
        lines += ["", "Not measured (module not written yet): " + ", ".join(skipped) + "."]
    lines += [
        "",
        "Where a task env's step goes (microseconds per call, median of "
        f"{args.steps} calls along one trajectory; `rest of step` = reward terms, info "
        "and task bookkeeping = step - do_simulation - _get_obs):",
        "",
        *breakdown_table(parts),
    ]
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
    parts: dict[str, dict[str, float]] = {}
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
        parts[family] = breakdown(env_id, args.steps, args.seed)

    if args.markdown:
        print(markdown_report(rows, args, skipped, parts))
    else:
        print(plain_table(rows))
        print()
        print("\n".join(breakdown_table(parts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
