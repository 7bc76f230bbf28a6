"""A quick look at three task families: a random policy against scripted controllers.

``metarl demo`` (or ``python -m metarl.demo``) draws a few training tasks from the
point robot, HalfCheetahVel and HopperParams, rolls a random policy and a simple
scripted controller on each task, prints a table of returns per task and writes the
returns (``returns.csv``) and a bar plot (``returns.png``) to the output folder. Nothing
is trained: the scripted controllers read the task or the robot's state directly, so
they show what each task asks for, not what an agent learns. ``make demo`` is the
other demo: it meta-trains RL2 (``metarl train configs/rl2_point_robot.yaml``).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import get_task, set_task, task_distribution
from metarl.tasks import GoalTask, Task, VelocityTask

Controller = Callable[[gym.Env[Any, Any], np.ndarray, int], np.ndarray]


def go_to_goal(env: gym.Env[Any, Any], obs: np.ndarray, t: int) -> np.ndarray:
    """Point robot: the largest displacement allowed, straight at the goal."""
    task = get_task(env)
    assert isinstance(task, GoalTask)
    return np.clip(task.array - obs, -0.1, 0.1).astype(np.float32)


# Phases of a 2 Hz sinusoidal gait of the six HalfCheetah joints that runs forward on
# HalfCheetah-v5 (found by a random search over phases while writing this demo).
_GAIT_PHASES = np.array([3.933, 3.466, 2.443, 4.608, 5.887, 2.490])


class GaitSpeedController:
    """HalfCheetahVel: a fixed gait whose amplitude follows the velocity error."""

    def __init__(self) -> None:
        self.amplitude = 0.5

    def __call__(self, env: gym.Env[Any, Any], obs: np.ndarray, t: int) -> np.ndarray:
        task = get_task(env)
        assert isinstance(task, VelocityTask)
        if t == 0:
            self.amplitude = 0.5
        else:
            velocity = float(obs[8])  # forward velocity of the root (observation layout of v5)
            error = task.velocity - velocity
            self.amplitude = float(np.clip(self.amplitude + 0.02 * error, 0.0, 1.0))
        phase = 2 * math.pi * 2.0 * t * env.unwrapped.dt  # type: ignore[attr-defined]
        return (self.amplitude * np.sin(phase + _GAIT_PHASES)).astype(np.float32)


def hold_posture(env: gym.Env[Any, Any], obs: np.ndarray, t: int) -> np.ndarray:
    """Any MuJoCo robot with joint actuators: PD control of each actuated joint to its start."""
    u: Any = env.unwrapped
    joints = u.model.actuator_trnid[:, 0]
    qpos = u.data.qpos[u.model.jnt_qposadr[joints]]
    qvel = u.data.qvel[u.model.jnt_dofadr[joints]]
    target = u.init_qpos[u.model.jnt_qposadr[joints]]
    return np.clip(-10.0 * (qpos - target) - 1.0 * qvel, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Family:
    env_id: str
    controller: Callable[[], Controller]
    controller_name: str


FAMILIES = [
    Family("metarl/PointRobot-v0", lambda: go_to_goal, "go to goal"),
    Family("metarl/HalfCheetahVel-v0", GaitSpeedController, "gait + speed feedback"),
    Family("metarl/HopperParams-v0", lambda: hold_posture, "PD posture hold"),
]


def episode_return(env: gym.Env[Any, Any], task: Task, policy: Controller, seed: int) -> float:
    """Roll one episode of ``policy`` on ``task`` and return the sum of rewards."""
    set_task(env, task)
    obs, _ = env.reset(seed=seed)
    total, t, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(env, obs, t))
        total += float(reward)
        t += 1
        done = terminated or truncated
    return total


def run(out: Path, n_tasks: int, seed: int) -> list[dict[str, Any]]:
    """Roll both policies on ``n_tasks`` training tasks of each family; return the rows."""
    rows = []
    for family in FAMILIES:
        env = gym.make(family.env_id)
        env.action_space.seed(seed)
        tasks = task_distribution(env).task_sets(seed, n_tasks, 0).train

        def random_policy(e: gym.Env[Any, Any], o: np.ndarray, t: int) -> np.ndarray:
            return np.asarray(e.action_space.sample())

        scripted = family.controller()
        for i, task in enumerate(tasks):
            rows.append(
                {
                    "env": family.env_id,
                    "task": i,
                    "task_params": _describe(task),
                    "random": episode_return(env, task, random_policy, seed + i),
                    "scripted": episode_return(env, task, scripted, seed + i),
                    "controller": family.controller_name,
                }
            )
        env.close()
    return rows


def _describe(task: Task) -> str:
    d = task.to_dict()
    d.pop("kind")
    if "values" in d:  # physics multipliers: their geometric mean per parameter
        short = {"body_mass": "mass", "body_inertia": "inertia", "geom_friction": "friction"}
        return ", ".join(
            f"{short.get(k, k.removeprefix('dof_'))} "
            f"x{math.exp(np.mean(np.log(np.ravel(np.asarray(v, dtype=float))))):.2f}"
            for k, v in d["values"].items()
        )
    return ", ".join(
        f"{k}={np.round(np.asarray(v, dtype=float), 2).tolist()}" for k, v in d.items()
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'environment':28} {'task':>4}  {'task parameters':58} {'random':>9} {'scripted':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        params = r["task_params"][:58]
        print(
            f"{r['env']:28} {r['task']:>4}  {params:58} {r['random']:>9.1f} {r['scripted']:>9.1f}"
        )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(r["env"] for r in rows))
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.8))
    for ax, env_id in zip(np.atleast_1d(axes), envs, strict=True):
        sub = [r for r in rows if r["env"] == env_id]
        x = np.arange(len(sub))
        ax.bar(x - 0.2, [r["random"] for r in sub], 0.4, label="random policy")
        ax.bar(x + 0.2, [r["scripted"] for r in sub], 0.4, label=sub[0]["controller"])
        ax.set_title(env_id.removeprefix("metarl/"))
        ax.set_xlabel("task")
        ax.set_xticks(x)
        ax.set_ylabel("episode return")
        ax.legend(fontsize=8)
    fig.suptitle("Return per task: random policy vs scripted controller")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    parser.add_argument("--tasks", type=int, default=4, help="tasks per family")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(args.out, args.tasks, args.seed)
    print_table(rows)
    with open(args.out / "returns.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "returns.png")
    print(f"\nwrote {args.out / 'returns.csv'} and {args.out / 'returns.png'}")


if __name__ == "__main__":
    main()
