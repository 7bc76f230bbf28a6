"""The ``metarl`` command line: list environments, check them, print task sets, run the demo.

metarl envs                          the registered task environments
metarl tasks ENV_ID [--seed S]       reproducible train/test task sets as JSON lines
metarl check ENV_ID [ENV_ID ...]     run the task-environment checker
metarl demo [--out DIR]              the demo of ``make demo``
"""

from __future__ import annotations

import argparse
import json
import sys

import gymnasium as gym

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import TASK_ENVS, task_distribution


def _envs(args: argparse.Namespace) -> int:
    print(f"{'id':30} {'horizon':>7} {'train/test':>10}  task support")
    for env_id, (_entry, horizon, n_train, n_test) in TASK_ENVS.items():
        env = gym.make(env_id)
        support = task_distribution(env).support
        env.close()
        text = "; ".join(f"{k}: {v}" for k, v in support.items())
        if len(text) > 70:
            text = text[:67] + "..."
        print(f"{env_id:30} {horizon:>7} {f'{n_train}/{n_test}':>10}  {text}")
    return 0


def _known(env_id: str) -> None:
    if env_id not in gym.registry:
        names = ", ".join(TASK_ENVS)
        raise SystemExit(f"error: unknown environment {env_id!r}; registered task envs: {names}")


def _tasks(args: argparse.Namespace) -> int:
    _known(args.env_id)
    env = gym.make(args.env_id)
    default = TASK_ENVS.get(args.env_id, ("", 0, 5, 5))
    n_train = default[2] if args.train is None else args.train
    n_test = default[3] if args.test is None else args.test
    sets = task_distribution(env).task_sets(args.seed, n_train, n_test)
    for split, tasks in (("train", sets.train), ("test", sets.test)):
        for i, task in enumerate(tasks):
            print(json.dumps({"split": split, "index": i, "task": task.to_dict()}))
    return 0


def _check(args: argparse.Namespace) -> int:
    from metarl.envs.checker import TaskEnvCheckError, check_task_env

    failed = 0
    for env_id in args.env_ids:
        _known(env_id)
        try:
            check_task_env(gym.make(env_id), seed=args.seed)
        except TaskEnvCheckError as err:
            failed += 1
            print(f"FAIL {env_id}: {err}")
        else:
            print(f"ok   {env_id}")
    return 1 if failed else 0


def _demo(args: argparse.Namespace) -> int:
    from metarl import demo

    demo.main(["--out", args.out, "--tasks", str(args.tasks), "--seed", str(args.seed)])
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``metarl`` command."""
    parser = argparse.ArgumentParser(prog="metarl", description="metarl command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("envs", help="list the registered task environments")
    p.set_defaults(func=_envs)

    p = sub.add_parser("tasks", help="print reproducible train/test task sets as JSON lines")
    p.add_argument("env_id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=None, help="default: the family's count")
    p.add_argument("--test", type=int, default=None, help="default: the family's count")
    p.set_defaults(func=_tasks)

    p = sub.add_parser("check", help="run the task-environment checker")
    p.add_argument("env_ids", nargs="+", metavar="ENV_ID")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_check)

    p = sub.add_parser("demo", help="random vs scripted controllers on three families")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
