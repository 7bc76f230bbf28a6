"""The measurements behind the MAML-TRPO / ProMP learning test's margin.

Runs the test's own helper (``tests/agents/test_maml.py::meta_train_point_robot``: meta-
train on 40 point-robot goals, then 20 episodes with theta, one inner step, 20 episodes
with theta' on 20 held-out goals) for each variant and seed, and prints the gain
(post-update minus pre-update mean return per episode). The figures quoted in the
test's comment and in the closing note come from this script.

Usage::

    python benchmarks/maml_learning_margin.py            # all variants, seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "agents"))
from test_maml import MAMLTRPOAgent, ProMPAgent, meta_train_point_robot

VARIANTS = {
    "maml_trpo": (MAMLTRPOAgent, 15, {}),
    "maml_trpo_without_inner_step": (MAMLTRPOAgent, 15, {"ablate_inner_lr": True}),
    "maml_trpo_first_order": (MAMLTRPOAgent, 15, {"first_order": True}),
    "promp": (ProMPAgent, 30, {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    print(
        f"- command: `python benchmarks/maml_learning_margin.py {' '.join(argv or sys.argv[1:])}`"
    )
    print(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"- machine: {machine_line()}")
    print("\n| variant | iterations | seed | pre-update | post-update | gain | wall time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.variants:
        cls, iterations, overrides = VARIANTS[name]
        for seed in args.seeds:
            start = time.perf_counter()
            pre, post = meta_train_point_robot(cls, seed, iterations, **overrides)
            print(
                f"| {name} | {iterations} | {seed} | {pre:.2f} | {post:.2f} | {post - pre:.2f} | "
                f"{time.perf_counter() - start:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
