"""Recovery error against excitation: ``metarl sysid`` of one sysid file, its excitation
replaced by each one given, over several seeds (the target's and the excitation's seed
both set to it), optionally with the target's effects replaced.

Prints, per excitation, the recorded transitions and the relative recovery error of each
parameter, per seed and as the median over the seeds.

Usage::

    python benchmarks/excitation_recovery.py configs/sysid/hopper_multisine.yaml
        [--excitation random multisine chirp pd_hold] [--seeds 0 1 2]
        [--effects '[{name: observation_noise, std: 0.01}]'] [--budget 300]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from machine import machine_line, versions_line

from metarl.sim2real.sysid_command import run_sysid


def recovery(
    path: Path, excitation: Any, seed: int, effects: Any, budget: int | None, folder: Path
) -> tuple[int, dict[str, float]]:
    """The transitions recorded and the relative recovery errors of one run."""
    data = yaml.safe_load(path.read_text())
    section = data["sysid"]
    run = Path(tempfile.mkdtemp(dir=folder))  # run folders are named to the second
    section.update(root=str(run), excitation=excitation, seed=seed)
    section["target"]["seed"] = seed
    if effects is not None:
        section["target"]["effects"] = effects
    if budget is not None:
        section["options"] = {**section.get("options", {}), "budget": budget}
    changed = run / "sysid.yaml"
    changed.write_text(yaml.safe_dump(data))
    fit = json.loads((run_sysid(changed) / "fit.json").read_text())
    return int(fit["transitions"]), fit["recovery_error"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sysid_file", type=Path)
    parser.add_argument(
        "--excitation", nargs="+", default=["random", "multisine", "chirp", "pd_hold"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--effects", help="the target's effects (YAML list)")
    parser.add_argument("--budget", type=int)
    args = parser.parse_args(argv)
    effects = None if args.effects is None else yaml.safe_load(args.effects)
    print(f"# {datetime.date.today()}, {machine_line()}; {versions_line('mujoco', 'cma')}")
    print(f"# {args.sysid_file}, effects {effects}, budget {args.budget}, seeds {args.seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.excitation:
            excitation = yaml.safe_load(text)
            rows = [
                recovery(args.sysid_file, excitation, s, effects, args.budget, Path(tmp))
                for s in args.seeds
            ]
            names = sorted(rows[0][1])
            per_seed = "; ".join(
                f"{n} transitions: " + ", ".join(f"{errors[k]:.3f}" for k in names)
                for n, errors in rows
            )
            medians = ", ".join(
                f"{k} {np.median([errors[k] for _, errors in rows]):.3f}" for k in names
            )
            print(f"{text}: median error {medians}  ({per_seed})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
