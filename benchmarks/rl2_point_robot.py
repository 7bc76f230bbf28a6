"""RL2 on the point robot against the random, multi-task and oracle baselines (P3).

The protocol is docs/benchmarks.md#p3. The command quoted in RESULTS.md for RL2:
``benchmarks/adaptation.py`` on ``configs/rl2_point_robot.yaml`` (one run per training
seed, the same train/test tasks, a Markdown table of the return of each meta-test
episode).

Usage::

    python benchmarks/rl2_point_robot.py                        # seeds 0 1 2, Ray sampler
    python benchmarks/rl2_point_robot.py --seeds 0 1 2 --sampler local --out runs/bench
"""

from __future__ import annotations

import argparse
from pathlib import Path

import adaptation

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "rl2_point_robot.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sampler", choices=["local", "ray"], default="ray")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value")
    args = parser.parse_args(argv)
    seeds = [str(s) for s in args.seeds]
    return adaptation.main(
        [
            str(CONFIG),
            "--seeds",
            *seeds,
            "--sampler",
            args.sampler,
            "--out",
            str(args.out),
            "--set",
            *args.overrides,
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
