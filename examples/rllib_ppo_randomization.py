"""RLlib's PPO trained under a metarl randomization schedule, from a YAML config.

The config (``examples/rllib_ppo_hopper_widening.yaml``) names a Gymnasium MuJoCo env,
a ``LinearWidening`` schedule over physics fields, the env runners and PPO's training
arguments. The env runners build their envs with ``metarl.rllib.make_rllib_env``
(``PhysicsRandomization`` of the env, a new draw per episode); after every training
iteration ``randomization_callbacks`` updates the schedule and pushes its params to
every env runner. Writes ``<out>/metrics.csv`` (iteration, env steps, mean episode
return, the schedule's width) and ``<out>/config.yaml``.

    python examples/rllib_ppo_randomization.py examples/rllib_ppo_hopper_widening.yaml
    python examples/rllib_ppo_randomization.py CONFIG --iterations 3   # a short run
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from metarl.config import read_yaml
from metarl.rllib import randomization_callbacks, register_rllib_env
from metarl.sim2real.schedules import LinearWidening


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[str]
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    iterations: int = Field(ge=1)
    base: float = Field(default=1.5, gt=1)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env_id: str
    schedule: Schedule
    iterations: int = Field(ge=1)
    env_runners: int = Field(default=2, ge=0)
    envs_per_env_runner: int = Field(default=1, ge=1)
    cpus_per_env_runner: float = Field(default=1.0, gt=0)
    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 64])
    ppo: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    out: str


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--iterations", type=int, default=None, help="override iterations")
    parser.add_argument("--out", default=None, help="override out")
    args = parser.parse_args(argv)
    raw = read_yaml(args.config)
    raw.update({k: v for k, v in (("iterations", args.iterations), ("out", args.out)) if v})
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as err:
        for e in err.errors():
            print(f"error: {'.'.join(map(str, e['loc']))}: {e['msg']}", file=sys.stderr)
        return 2

    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    schedule = LinearWidening(**exp.schedule.model_dump())
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(exp.model_dump(), sort_keys=False))
    ray.init(include_dashboard=False, logging_level=logging.WARNING)
    try:
        physics = {name: p.to_dict() for name, p in schedule.params().items()}
        config = (
            PPOConfig()
            .environment(
                register_rllib_env(), env_config={"env_id": exp.env_id, "physics": physics}
            )
            .env_runners(
                num_env_runners=exp.env_runners,
                num_envs_per_env_runner=exp.envs_per_env_runner,
                num_cpus_per_env_runner=exp.cpus_per_env_runner,
            )
            .training(**exp.ppo)
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=exp.hidden_sizes))
            .callbacks(**randomization_callbacks(schedule))
            .debugging(seed=exp.seed)
        )
        algo = config.build_algo()
        with (out / "metrics.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["iteration", "env_steps", "episode_return_mean", "width_next"])
            for _ in range(exp.iterations):
                result = algo.train()
                runners = result["env_runners"]
                row = [
                    result["training_iteration"],
                    runners["num_env_steps_sampled_lifetime"],
                    runners.get("episode_return_mean", float("nan")),
                    result["metarl_randomization"]["width"],
                ]
                writer.writerow(row)
                f.flush()
                print(*row, sep="\t")
        algo.stop()
    finally:
        ray.shutdown()
    print(f"metrics: {out / 'metrics.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
