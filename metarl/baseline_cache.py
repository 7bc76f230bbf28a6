"""The trained baselines of a run, trained once and reused: ``baselines/<name>.pt``.

The multi-task and oracle baselines (``metarl.agents.baselines``, trained by
Stable-Baselines3) are saved in the run folder's ``baselines/`` (or, with
``evaluation.baseline_dir``, in a folder shared between runs, named by env, seed
and baseline) with the setup they were trained with: the env-step budget, the
``evaluation.baseline_training`` settings (but ``deterministic``, which only changes
how they act), the env, its keyword arguments and effects, the training tasks and
the seed. A saved baseline is reused only if that setup is the one asked for now (a
resumed run that trained longer gives its baselines a larger budget; a shared folder
may hold baselines of other tasks or seeds); otherwise it is trained again and saved
over the old file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from metarl.agents.base import Agent
from metarl.build import run_wrappers
from metarl.checkpoints import save_atomically
from metarl.config import ExperimentConfig
from metarl.run_folder import BASELINE_DIR
from metarl.tasks import Task

__all__ = ["Baseline", "load_or_train_baseline"]

log = logging.getLogger(__name__)


class Baseline(NamedTuple):
    """A baseline of the final meta-test, its training (``None`` for the random agent)
    and whether this call trained it."""

    agent: Agent
    train_env_steps: int | None
    train_wall_time: float | None
    trained_now: bool


def load_or_train_baseline(
    name: str, config: ExperimentConfig, run_dir: Path, train_tasks: Sequence[Task], steps: int
) -> Baseline:
    """The baseline ``name`` (``evaluation.baselines``) of the run in ``run_dir``: the
    random agent, or a trained one loaded from its file if it was trained as asked
    now, else trained with ``steps`` env steps on ``train_tasks`` and saved."""
    from metarl.agents import baselines

    if name == "random":
        return Baseline(
            baselines.RandomAgent.for_env(config.env.id, config.env.kwargs), None, None, False
        )
    bt = config.evaluation.baseline_training
    if config.evaluation.baseline_dir is None:
        path = run_dir / BASELINE_DIR / f"{name}.pt"
    else:  # a folder shared between runs: name the file by env and seed too
        env_slug = config.env.id.replace("/", "_")
        path = Path(config.evaluation.baseline_dir) / f"{env_slug}_seed{config.run.seed}_{name}.pt"
    setup = {
        "steps": steps,
        "training": bt.model_dump(mode="json", exclude={"deterministic"}),
        "env": config.env.id,
        "env_kwargs": dict(config.env.kwargs),
        "effects": list(config.env.effects),
        "train_tasks": [t.to_dict() for t in train_tasks],
        "seed": config.run.seed,
    }
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("setup") == setup:
            agent = baselines.SB3Baseline.from_state_dict(saved["agent"])
            agent.deterministic = bt.deterministic
            return Baseline(agent, int(saved["env_steps"]), float(saved["wall_time"]), False)
    train = baselines.train_oracle if name == "oracle" else baselines.train_multitask
    log.info("training the %s baseline: SB3 %s, %d env steps", name, bt.algorithm, steps)
    start = time.perf_counter()
    agent = train(
        config.env.id,
        list(train_tasks),
        steps,
        config.run.seed,
        algo=bt.algorithm,
        algo_kwargs=bt.algo_kwargs,
        n_envs=bt.num_envs,
        env_kwargs=config.env.kwargs,
        wrappers=run_wrappers(config),
        deterministic=bt.deterministic,
    )
    wall_time = time.perf_counter() - start
    env_steps = int(agent.model.num_timesteps)
    save_atomically(
        {
            "agent": agent.state_dict(),
            "setup": setup,
            "env_steps": env_steps,
            "wall_time": wall_time,
        },
        path,
    )
    return Baseline(agent, env_steps, wall_time, True)
