"""Learned-simulator coverage benchmark (docs/benchmarks.md#p4b): recovery errors, interval
coverage and identifiability flags of the system-identification fits over many hidden draws.

Per robot, a set of named physical parameters of four kinds, each a scale of the
model's defaults: masses (``body_mass``), the sliding friction of every geom
(``geom_friction``; a contact uses the larger of its two geoms' coefficients, so all are
scaled together), joint damping (``dof_damping``) and actuator gains
(``actuator_gain``, ``gainprm[0]`` of the motors). Plus one parameter per robot that
the data cannot determine (``INERT``): the friction of the pendulums, whose geoms
collide with nothing, and the torsional friction of the legged robots, which their
contacts (``condim`` 3) never use. Every fit checks that it is inert (predictions at
both ends of its search range agree) and records by how much they differ.

Per draw, each multiplier is drawn from ``LogUniform(0.5, 2)`` (the hidden truth: a
target whose physics is fixed at the drawn values); the fits search
``Uniform(0.3, 3)``. Conditions (``--conditions``):

- ``noise_free``: the target's exact float64 states;
- ``noise``: the ``state_noise`` effect on the recorded states (``--qpos-std``,
  ``--qvel-std`` per step, ``--qpos-bias-std``, ``--qvel-bias-std`` per episode);
- ``delay_noise``: an action delay of one control step in the target (known, so the
  fit's ``Simulator(action_delay=1)`` models it) and the same noise.

Data: ``--episodes`` episodes of at most ``--steps`` steps each (an episode ends early
where the robot's env terminates it), with excitation ``--excitation`` (``random``:
actions uniform over the action space), seeded. Fit: ``fit_trajectory_matching`` with
its defaults (``--method dropo``: ``fit_dropo`` with its defaults). One fit per
(robot, condition, draw) shares the draw's truth and data seed across conditions.

Each fit appends one JSON line to ``--out`` as soon as it ends; a rerun of the same
command skips the fits already there (same settings), so an interrupted run (Ctrl-C)
continues where it stopped. The summary (printed, and written to ``--markdown``) gives
per condition, robot and parameter kind the median and 90th percentile of the relative
recovery error (identifiable parameters only), the interval coverage, the share of
inert parameters flagged not identified, the share of identifiable ones flagged
wrongly and the median fit wall time; then one line per condition against the goals
(``GOALS``).

Usage::

    python benchmarks/sysid_coverage.py --out runs/sysid_coverage.jsonl \\
        --markdown runs/sysid_coverage.md
    python benchmarks/sysid_coverage.py --robots InvertedPendulum-v5 Hopper-v5 --draws 2
    python benchmarks/sysid_coverage.py --report --out runs/sysid_coverage.jsonl  # summary only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_line, versions_line
from pydantic import TypeAdapter

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import MJCF_ENV_ID, PhysicsParam
from metarl.envs.mujoco_state import STATE_KEY
from metarl.envs.physics_distributions import LogUniform
from metarl.episodes import Episode
from metarl.sim2real.excitation import EXCITATION_KINDS, ExcitationConfig, excite
from metarl.sim2real.sysid import Simulator, applied_actions, fit_dropo, fit_trajectory_matching
from metarl.sim2real.targets import Target, load_target_config

TRUTH = LogUniform(0.5, 2.0)  # the hidden multipliers
BOUNDS = (0.3, 3.0)  # the fits' search range (uniform)
DELAY = 1  # control steps of the delay_noise condition; known, so modeled
KINDS = ("mass", "friction", "damping", "gain")
# Goals of docs/benchmarks.md#p4b: median relative error per kind without and with noise.
_NOISY_GOALS = {"mass": 0.05, "friction": 0.10, "damping": 0.10, "gain": 0.10}
GOALS = {
    "noise_free": dict.fromkeys(KINDS, 0.02),
    "noise": _NOISY_GOALS,
    "delay_noise": _NOISY_GOALS,
}
COVERAGE_GOAL = 0.9


@dataclass(frozen=True)
class Param:
    """A fitted parameter: its kind (``KINDS``), its ``PhysicsParam`` dict without the
    distribution, and whether the data cannot determine it."""

    kind: str
    spec: dict[str, Any]
    inert: bool = False


def _mass(*bodies: str) -> Param:
    return Param("mass", {"field": "body_mass", "elements": list(bodies), "op": "scale"})


FRICTION = Param("friction", {"field": "geom_friction", "components": ["sliding"], "op": "scale"})
DAMPING = Param("damping", {"field": "dof_damping", "op": "scale"})  # every joint
GAIN = Param("gain", {"field": "actuator_gain", "op": "scale"})  # every actuator
# The pendulums' geoms collide with nothing (contype 0): friction never acts.
NO_CONTACT_FRICTION = Param("friction", FRICTION.spec, inert=True)
# Contacts of condim 3 use the sliding friction only; the torsional one never acts.
TORSIONAL_FRICTION = Param(
    "friction",
    {"field": "geom_friction", "components": ["torsional"], "op": "scale"},
    inert=True,
)


@dataclass(frozen=True)
class Robot:
    env_kwargs: dict[str, Any]
    params: dict[str, Param]


ARM = Path(__file__).resolve().parents[1] / "examples" / "models" / "two_link_arm.xml"

ROBOTS: dict[str, Robot] = {
    "InvertedPendulum-v5": Robot(
        {},
        {
            "cart_mass": _mass("cart"),
            "pole_mass": _mass("pole"),
            "damping": DAMPING,
            "gain": GAIN,
            "friction": NO_CONTACT_FRICTION,
        },
    ),
    "InvertedDoublePendulum-v5": Robot(
        {},
        {
            "cart_mass": _mass("cart"),
            "pole_mass": _mass("pole"),
            "pole2_mass": _mass("pole2"),
            "damping": DAMPING,
            "gain": GAIN,
            "friction": NO_CONTACT_FRICTION,
        },
    ),
    "Hopper-v5": Robot(
        {},
        {
            "torso_mass": _mass("torso"),
            "foot_mass": _mass("foot"),
            "friction": FRICTION,
            "damping": DAMPING,
            "gain": GAIN,
            "torsional_friction": TORSIONAL_FRICTION,
        },
    ),
    "Walker2d-v5": Robot(
        {},
        {
            "torso_mass": _mass("torso"),
            "thigh_mass": _mass("thigh", "thigh_left"),
            "foot_mass": _mass("foot", "foot_left"),
            "friction": FRICTION,
            "damping": DAMPING,
            "gain": GAIN,
            "torsional_friction": TORSIONAL_FRICTION,
        },
    ),
    "HalfCheetah-v5": Robot(
        {},
        {
            "torso_mass": _mass("torso"),
            "bthigh_mass": _mass("bthigh"),
            "fthigh_mass": _mass("fthigh"),
            "friction": FRICTION,
            "damping": DAMPING,
            "gain": GAIN,
            "torsional_friction": TORSIONAL_FRICTION,
        },
    ),
    "Ant-v5": Robot(
        {"include_cfrc_ext_in_observation": False},
        {
            "torso_mass": _mass("torso"),
            "leg_mass": _mass("front_left_leg", "front_right_leg", "back_leg", "right_back_leg"),
            "friction": FRICTION,
            "damping": DAMPING,
            "gain": GAIN,
            "torsional_friction": TORSIONAL_FRICTION,
        },
    ),
    "Humanoid-v5": Robot(
        {},
        {
            "torso_mass": _mass("torso"),
            "thigh_mass": _mass("right_thigh", "left_thigh"),
            "friction": FRICTION,
            "damping": DAMPING,
            "gain": GAIN,
            "torsional_friction": TORSIONAL_FRICTION,
        },
    ),
    # A robot that is not in Gymnasium: the repository's two-link arm (any MJCF file).
    MJCF_ENV_ID: Robot(
        {"model_path": str(ARM)},
        {
            "payload_mass": _mass("payload"),
            "forearm_mass": _mass("forearm"),
            "damping": DAMPING,
            "dry_friction": Param("friction", {"field": "dof_frictionloss", "op": "scale"}),
            "gain": GAIN,
            "friction": NO_CONTACT_FRICTION,
        },
    ),
}
DEFAULT_ROBOTS = [r for r in ROBOTS if r != "Humanoid-v5"]  # Humanoid: slow, by name only
CONDITIONS = ("noise_free", "noise", "delay_noise")
METHODS: dict[str, Callable[..., Any]] = {
    "trajectory_matching": fit_trajectory_matching,
    "dropo": fit_dropo,
}


# The excitation kinds that need nothing but the system (``policy`` needs a user's file).
EXCITATIONS = tuple(k for k in EXCITATION_KINDS if k != "policy")


# --------------------------------------------------------------------------- one fit


def effects(condition: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The target's effects under ``condition`` (innermost first)."""
    if condition == "noise_free":
        return []
    noise = {
        "name": "state_noise",
        "qpos_std": args.qpos_std,
        "qvel_std": args.qvel_std,
        "qpos_bias_std": args.qpos_bias_std,
        "qvel_bias_std": args.qvel_bias_std,
    }
    delay = [{"name": "action_delay", "steps": DELAY}] if condition == "delay_noise" else []
    return [*delay, noise]


def draw_truth(robot: str, draw: int, seed: int) -> dict[str, float]:
    """The hidden multipliers of ``draw``: the same for every condition and method."""
    rng = np.random.default_rng([seed, zlib.crc32(robot.encode()), draw])
    return {n: float(TRUTH.sample(rng)) for n in ROBOTS[robot].params}


def search_params(robot: str) -> dict[str, PhysicsParam]:
    low, high = BOUNDS
    dist = {"kind": "uniform", "low": low, "high": high}
    return {
        n: PhysicsParam.from_dict({**p.spec, "dist": dist}) for n, p in ROBOTS[robot].params.items()
    }


def record(
    robot: str, truth: dict[str, float], condition: str, draw: int, args: argparse.Namespace
) -> list[Episode]:
    """The target's episodes under ``condition`` with the ``--excitation`` signal."""
    physics = {
        n: {**p.spec, "dist": {"kind": "fixed", "value": truth[n]}}
        for n, p in ROBOTS[robot].params.items()
    }
    data_seed = np.random.SeedSequence([args.seed, zlib.crc32(robot.encode()), draw])
    config = {
        "env": robot,
        "env_kwargs": ROBOTS[robot].env_kwargs,
        "physics": physics,
        "effects": effects(condition, args),
        "seed": int(data_seed.generate_state(1)[0]),
    }
    target = Target(load_target_config(config))
    try:
        rng = np.random.default_rng([args.seed, zlib.crc32(robot.encode()), draw, 1])
        kind = TypeAdapter(ExcitationConfig).validate_python({"kind": args.excitation})
        excitation = kind.build(target.env, args.steps)
        return excite(target, excitation, args.episodes, args.steps, rng)
    finally:
        target.close()


def inert_effect(sim: Simulator, episodes: list[Episode], name: str) -> float:
    """The largest change of a one-step prediction of the recorded transitions when
    parameter ``name`` goes from the low to the high end of its range (others nominal)."""
    starts = np.concatenate([e.env_infos[STATE_KEY] for e in episodes])
    actions = np.concatenate([applied_actions(e.actions, sim.action_delay) for e in episodes])
    values = np.stack([sim.nominal, sim.nominal])
    i = sim.names.index(name)
    values[:, i] = sim.low[i], sim.high[i]
    pred = sim.predict(values, starts, actions[:, None])
    return float(np.abs(pred[1] - pred[0]).max())


def run_fit(robot: str, condition: str, draw: int, args: argparse.Namespace) -> dict[str, Any]:
    """One fit and what it found, as a JSON-ready row: the fit's key (``row_key``); per
    parameter its kind, whether it is inert, the truth, the estimate, its standard error
    (``Infinity`` where the data hold no information), 95% interval, whether that covers
    the truth, the relative error and the not-identified and at-bound flags; the inert
    parameters' effect on the predictions (``inert_effect``); the fit's warnings and
    trade-offs, wall time, transitions, evaluations and discrepancies."""
    truth = draw_truth(robot, draw, args.seed)
    episodes = record(robot, truth, condition, draw, args)
    params = ROBOTS[robot].params
    sim = Simulator(
        robot,
        search_params(robot),
        ROBOTS[robot].env_kwargs,
        action_delay=DELAY if condition == "delay_noise" else 0,
        threads=args.threads,
    )
    try:
        inert = {n: inert_effect(sim, episodes, n) for n, p in params.items() if p.inert}
        result = METHODS[args.method](sim, episodes, seed=args.seed + draw)
    finally:
        sim.close()
    errors = result.recovery_error(truth)
    inside = result.covers(truth)
    return {
        **row_key(robot, condition, draw, args),
        "params": {
            n: {
                "kind": p.kind,
                "inert": p.inert,
                "truth": truth[n],
                "estimate": result.estimates[n],
                "se": result.uncertainty[n],
                "interval": list(result.interval[n]),
                "covered": inside[n],
                "relative_error": errors[n],
                "not_identified": n in result.not_identified,
                "at_bound": n in result.at_bound,
            }
            for n, p in params.items()
        },
        "inert_effect": inert,
        "warnings": result.warnings,
        "trade_offs": [list(t) for t in result.trade_offs],
        "wall_time_s": result.wall_time_s,
        "episodes_recorded": len(episodes),
        "transitions": result.transitions,
        "evaluations": result.evaluations,
        "discrepancy_nominal": result.discrepancy_nominal,
        "discrepancy_fitted": result.discrepancy_fitted,
        "noise_floor": result.noise_floor,
    }


# --------------------------------------------------------------------------- the results file


def row_key(robot: str, condition: str, draw: int, args: argparse.Namespace) -> dict[str, Any]:
    """What makes two fits the same fit: a row with these fields is not run again."""
    return {
        "robot": robot,
        "condition": condition,
        "draw": draw,
        "method": args.method,
        "excitation": args.excitation,
        "episodes": args.episodes,
        "steps": args.steps,
        "seed": args.seed,
        "effects": effects(condition, args),
        "param_names": sorted(ROBOTS[robot].params),
    }


def _key(row: dict[str, Any]) -> str:
    fields = ("robot", "condition", "draw", "method", "excitation", "episodes", "steps", "seed")
    return json.dumps([row.get(k) for k in (*fields, "effects", "param_names")], sort_keys=True)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of the results file; a line that is not JSON (a write cut short) is
    named and skipped, never removed."""
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"{path}:{number}: not a complete JSON row (skipped, left in the file)")
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one line, on a line of its own, flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = True  # the file ends with a newline (or is empty)
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            clean = f.read(1) == b"\n"
    with path.open("a") as f:
        f.write(("" if clean else "\n") + json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def planned(args: argparse.Namespace) -> Iterator[tuple[str, str, int]]:
    """The fits of this command, in the order they run: draw-major, so that a
    partial run has every robot and condition."""
    for draw in range(args.draws):
        for robot in args.robots:
            for condition in args.conditions:
                yield robot, condition, draw


def run(args: argparse.Namespace) -> int:
    """Run the planned fits not yet in ``--out`` (a failed one is tried again), appending
    a row per fit; Ctrl-C stops after the rows written so far."""
    out = Path(args.out)
    done = {_key(r) for r in read_rows(out) if "error" not in r}
    todo = [f for f in planned(args) if _key(row_key(*f, args)) not in done]
    total = args.draws * len(args.robots) * len(args.conditions)
    print(f"{total - len(todo)} of {total} fits already in {out}; {len(todo)} to run", flush=True)
    finished = 0
    try:
        for robot, condition, draw in todo:
            try:
                row = run_fit(robot, condition, draw, args)
            except Exception as err:  # recorded, named in the summary, tried again on a rerun
                row = {
                    **row_key(robot, condition, draw, args),
                    "error": f"{type(err).__name__}: {err}",
                }
            append_row(out, row)
            finished += 1
            print(_progress_line(row), flush=True)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {finished} fits of this run saved in {out}; run the same "
            "command again to continue with the remaining ones",
            flush=True,
        )
        return 130
    return 0


def _progress_line(row: dict[str, Any]) -> str:
    """One line per fit: relative error per parameter, ``!`` where the interval misses
    the truth, ``?`` where the fit flags it not identified."""
    head = f"{row['robot']} {row['condition']} draw {row['draw']}: "
    if "error" in row:
        return head + f"FAILED: {row['error']}"
    parts = []
    for n, p in row["params"].items():
        mark = ("" if p["covered"] else "!") + ("?" if p["not_identified"] else "")
        parts.append(f"{n} {p['relative_error']:.3f}{mark}")
    line = head + ", ".join(parts)
    line += f"; {row['transitions']} transitions, {row['wall_time_s']:.1f} s"
    for n, change in row["inert_effect"].items():
        if change > 0:
            line += f"\n  {n} is not inert in these data: a prediction changes by {change:.3g}"
    return line


# --------------------------------------------------------------------------- summary


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


def _share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}" if flags else "-"


def _cell(value: float, fmt: str) -> str:
    return "-" if np.isnan(value) else format(value, fmt)


def _entries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (fit, parameter), with the fit's robot, condition and wall time."""
    return [
        {**p, "name": n, **{k: r[k] for k in ("robot", "condition", "draw", "wall_time_s")}}
        for r in rows
        for n, p in r["params"].items()
    ]


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """A row per (condition, robot, kind): the figures of the module docstring, and the
    median z = |estimate - truth| / standard error (about 0.67 for calibrated intervals
    of a normal estimate; far below: intervals wider than needed)."""
    lines = [
        "| condition | robot | kind | fits | median error | p90 error | coverage | median z "
        "| inert flagged | wrongly flagged | median wall time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for e in _entries(rows):
        groups.setdefault((e["condition"], e["robot"], e["kind"]), []).append(e)
    robots = list(ROBOTS)
    for (condition, robot, kind), group in sorted(
        groups.items(),
        key=lambda g: (CONDITIONS.index(g[0][0]), robots.index(g[0][1]), KINDS.index(g[0][2])),
    ):
        ident = [e for e in group if not e["inert"]]
        errors = [e["relative_error"] for e in ident]
        z = [abs(e["estimate"] - e["truth"]) / e["se"] for e in ident]
        coverage = np.mean([e["covered"] for e in ident]) if ident else float("nan")
        walls = [w for _, w in {(e["draw"], e["wall_time_s"]) for e in group}]
        lines.append(
            f"| {condition} | {robot} | {kind} | {len({e['draw'] for e in group})} | "
            f"{_cell(_quantile(errors, 0.5), '.2%')} | {_cell(_quantile(errors, 0.9), '.2%')} | "
            f"{_cell(float(coverage), '.2f')} | {_cell(_quantile(z, 0.5), '.2f')} | "
            f"{_share([e['not_identified'] for e in group if e['inert']])} | "
            f"{_share([e['not_identified'] for e in ident])} | "
            f"{_cell(_quantile(walls, 0.5), '.1f')} s |"
        )
    return lines


def goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per condition: every figure next to its goal, and whether it is met."""
    lines = []
    entries = _entries(rows)
    for condition in CONDITIONS:
        mine = [e for e in entries if e["condition"] == condition]
        if not mine:
            continue
        goals = GOALS[condition]
        ident = [e for e in mine if not e["inert"]]
        inert = [e for e in mine if e["inert"]]
        parts = []
        met = True
        for kind in KINDS:
            errors = [e["relative_error"] for e in ident if e["kind"] == kind]
            if errors:
                median = _quantile(errors, 0.5)
                ok = median <= goals[kind]
                met &= ok
                parts.append(
                    f"{kind} median {median:.2%} (goal <= {goals[kind]:.0%}"
                    f"{'' if ok else ', NOT MET'})"
                )
        coverage = float(np.mean([e["covered"] for e in ident])) if ident else float("nan")
        ok = coverage >= COVERAGE_GOAL
        met &= ok
        parts.append(
            f"coverage {coverage:.2f} (goal >= {COVERAGE_GOAL}{'' if ok else ', NOT MET'})"
        )
        flagged = sum(e["not_identified"] for e in inert)
        ok = flagged == len(inert)
        met &= ok
        parts.append(f"inert flagged {flagged}/{len(inert)} (goal all{'' if ok else ', NOT MET'})")
        wrong = sum(e["not_identified"] for e in ident)
        parts.append(f"identifiable flagged {wrong}/{len(ident)}")
        verdict = "all goals met" if met else "goals not met"
        lines.append(f"- **{condition}** ({verdict}): " + "; ".join(parts))
    return lines


def inert_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per robot, the largest change of a prediction that its inert parameter made."""
    largest: dict[str, float] = {}
    for r in rows:
        for change in r["inert_effect"].values():
            largest[r["robot"]] = max(largest.get(r["robot"], 0.0), change)
    cells = ", ".join(f"{robot} {v:.3g}" for robot, v in sorted(largest.items()))
    return [
        "Inert parameters: the largest change of a one-step prediction of the fits' data "
        f"between the ends of their search range (0: exactly inert): {cells}."
    ]


def report(
    rows: list[dict[str, Any]], failed: list[dict[str, Any]], args: argparse.Namespace, other: int
) -> str:
    """The Markdown summary of ``rows`` (successful fits) and ``failed`` (error rows)."""
    command = " ".join(["python benchmarks/sysid_coverage.py", *args.argv])
    noise = (
        f"qpos_std {args.qpos_std}, qvel_std {args.qvel_std}, qpos_bias_std "
        f"{args.qpos_bias_std}, qvel_bias_std {args.qvel_bias_std}"
    )
    counts = f"- {len(rows)} fits"
    if failed:
        counts += f", {len(failed)} failed"
    if other:
        counts += f" ({other} rows of other settings in {args.out} left out)"
    lines = [
        "## Learned-simulator coverage ([P4b](../docs/benchmarks.md#p4b))",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}",
        f"- versions: {versions_line('mujoco', 'gymnasium', 'cma', 'scipy')}",
        f"- fit: {args.method}; data: at most {args.episodes} episodes of at most "
        f"{args.steps} steps, {args.excitation} excitation; truth {TRUTH}, bounds "
        f"U{BOUNDS}; noise: {noise}; delay: {DELAY} step (delay_noise)",
        counts,
        "",
    ]
    if rows:
        lines += [
            "Relative recovery error |estimate - truth| / truth of the identifiable "
            "parameters; coverage: share of their truths inside the fit's 95% interval; "
            "inert flagged: parameters the data cannot determine that the fit names as not "
            "identified; wrongly flagged: identifiable parameters it names so.",
            "",
            *summary_table(rows),
            "",
            *inert_lines(rows),
            "",
            "Against the goals (all robots together):",
            "",
            *goal_lines(rows),
        ]
    if failed:
        lines += ["", "Failed fits:", ""]
        lines += [f"- {r['robot']} {r['condition']} draw {r['draw']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def summarize(args: argparse.Namespace) -> int:
    """Print (and write to ``--markdown``) the summary of this command's fits in ``--out``:
    per fit its latest successful row, else its latest failure."""
    out = Path(args.out)
    rows = read_rows(out)
    wanted = {_key(row_key(*f, args)) for f in planned(args)}
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = _key(r)
        if key in wanted and ("error" not in r or "error" in latest.get(key, r)):
            latest[key] = r
    if not latest:
        print(f"no fits of these settings in {out}")
        return 1
    good = [r for r in latest.values() if "error" not in r]
    failed = [r for r in latest.values() if "error" in r]
    other = sum(_key(r) not in wanted for r in rows)
    text = report(good, failed, args, other)
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    return 0


# --------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _std(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--robots",
        nargs="+",
        default=DEFAULT_ROBOTS,
        choices=list(ROBOTS),
        help="Gymnasium ids (default: all but Humanoid-v5, which is slow)",
    )
    parser.add_argument("--draws", type=_positive_int, default=10, help="hidden draws per robot")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--episodes", type=_positive_int, default=10, help="episodes per fit")
    parser.add_argument("--steps", type=_positive_int, default=200, help="steps per episode")
    parser.add_argument("--excitation", default="random", choices=list(EXCITATIONS))
    parser.add_argument("--method", default="trajectory_matching", choices=list(METHODS))
    parser.add_argument("--qpos-std", type=_std, default=1e-3, help="rad or m, per step")
    parser.add_argument("--qvel-std", type=_std, default=1e-2, help="rad/s or m/s, per step")
    parser.add_argument("--qpos-bias-std", type=_std, default=5e-4, help="per episode")
    parser.add_argument("--qvel-bias-std", type=_std, default=0.0, help="per episode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws, data and fits")
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="simulator threads (default: cores)"
    )
    parser.add_argument("--out", default="runs/sysid_coverage.jsonl", help="results (JSONL)")
    parser.add_argument("--markdown", default=None, help="write the summary here too")
    parser.add_argument(
        "--report", action="store_true", help="only summarize the fits already in --out"
    )
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be an integer >= 0")
    args.robots = list(dict.fromkeys(args.robots))
    args.conditions = list(dict.fromkeys(args.conditions))
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.report:
        code = run(args)
        if code:
            return code
    return summarize(args)


if __name__ == "__main__":
    sys.exit(main())
