"""How long each excitation keeps a robot up: the mean episode length before termination
(a fall) of Gymnasium's Hopper, Walker2d and Ant driven by each excitation kind of
``metarl.sim2real.excitation`` with its defaults (issue 19, item 4).

Each (robot, excitation) runs ``--episodes`` episodes of at most ``--max-steps`` steps,
the resets seeded 0, 1, ... and the excitation's draws from one generator seeded
``--seed``, as ``metarl sysid`` runs them. An episode that reaches ``--max-steps``
without terminating counts ``--max-steps``. Ant runs without its contact forces in the
observation (``include_cfrc_ext_in_observation: false``).

Usage::

    python benchmarks/excitation_lengths.py [--episodes 10] [--max-steps 200]
        [--envs Hopper-v5 Walker2d-v5 Ant-v5] [--excitation '{kind: pd_hold, kp: 2}' ...]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from machine import machine_line, versions_line
from pydantic import TypeAdapter, ValidationError

from metarl.sim2real.excitation import ExcitationConfig

ENV_KWARGS: dict[str, dict[str, Any]] = {"Ant-v5": {"include_cfrc_ext_in_observation": False}}
DEFAULT_EXCITATIONS = ("random", "multisine", "chirp", "pd_hold")


def episode_lengths(
    env_id: str, excitation: Any, episodes: int, max_steps: int, seed: int
) -> list[int]:
    """The steps of each episode before it terminated (``max_steps`` if it did not)."""
    env = gym.make(env_id, **ENV_KWARGS.get(env_id, {}))
    built = excitation.build(env, max_steps)
    rng = np.random.default_rng(seed)
    lengths = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        controller = built.episode(rng)
        steps = 0
        while steps < max_steps:
            obs, _, terminated, truncated, _ = env.step(controller(obs, steps))
            steps += 1
            if terminated or truncated:
                break
        lengths.append(steps)
    env.close()
    return lengths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Walker2d-v5", "Ant-v5"])
    parser.add_argument(
        "--excitation",
        nargs="+",
        default=list(DEFAULT_EXCITATIONS),
        help="excitation sections (YAML: a kind, or {kind: ..., setting: value})",
    )
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.max_steps < 1:
        parser.error("--episodes and --max-steps must be positive integers")
    adapter: TypeAdapter[Any] = TypeAdapter(ExcitationConfig)
    try:
        excitations = [adapter.validate_python(yaml.safe_load(e)) for e in args.excitation]
    except (ValidationError, yaml.YAMLError) as err:
        parser.error(f"--excitation: {err}")
    print(f"# {datetime.date.today()}, {machine_line()}; {versions_line('mujoco', 'gymnasium')}")
    print(
        f"# mean episode length before termination over {args.episodes} episodes of at most "
        f"{args.max_steps} steps (min-max); excitation seed {args.seed}"
    )
    labels = [e.label() for e in excitations]
    width = max(len(label) for label in labels)
    print(f"{'excitation':{width}}  " + "  ".join(f"{env_id:>14}" for env_id in args.envs))
    for excitation, label in zip(excitations, labels, strict=True):
        cells = []
        for env_id in args.envs:
            lengths = episode_lengths(env_id, excitation, args.episodes, args.max_steps, args.seed)
            cells.append(f"{np.mean(lengths):6.1f} ({min(lengths)}-{max(lengths)})")
        print(f"{label:{width}}  " + "  ".join(f"{c:>14}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
