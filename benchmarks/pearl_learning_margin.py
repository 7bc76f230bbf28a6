"""The measurements behind the PEARL learning test's margin.

Runs the test's own helper (``tests/agents/test_pearl.py::meta_train_point_robot``:
meta-train on 40 point-robot goals, then on 20 held-out goals one episode with z from
the prior and two with z from the posterior of the episodes so far) for each variant
and seed, and prints the mean return of each episode. Variants: PEARL; PEARL with the
encoder's input zeroed (a broken encoder); multi-task SAC (z = 0, same networks, data
and budget). The figures quoted in the test and in RESULTS.md come from this script.

Usage::

    python benchmarks/pearl_learning_margin.py                  # all variants, seeds 0 1 2
    python benchmarks/pearl_learning_margin.py --variants pearl --seeds 3 4
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "agents"))
from test_pearl import LEARNING_ITERATIONS, meta_train_point_robot

VARIANTS = {
    "pearl": {},
    "pearl_zero_context": {"ablate_context": True},
    "multitask_sac": {"task_variable": "none"},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--iterations", type=int, default=LEARNING_ITERATIONS)
    args = parser.parse_args(argv)
    words = ["python", "benchmarks/pearl_learning_margin.py", *(argv or sys.argv[1:])]
    print(f"- command: `{' '.join(words)}`")
    print(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"- machine: {machine_line()}")
    print(
        "\n| variant | iterations | seed | episode 1 (prior) | episode 2 | episode 3 | "
        "wall time (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.variants:
        for seed in args.seeds:
            start = time.perf_counter()
            returns = meta_train_point_robot(seed, args.iterations, **VARIANTS[name])
            cells = " | ".join(f"{r:.2f}" for r in returns)
            print(
                f"| {name} | {args.iterations} | {seed} | {cells} | "
                f"{time.perf_counter() - start:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
