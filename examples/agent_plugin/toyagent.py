"""toyagent: an agent that lives outside metarl and reaches the ``metarl`` command
through the entry-point group ``metarl.agents`` (``pyproject.toml`` beside this file;
docs/architecture.md, "An agent outside the package").

The agent is the cross-entropy method over one constant action: each iteration it
collects one trial per task with actions drawn around a mean action, keeps the trials
with the highest returns (the elites) and moves the mean and the standard deviation to
those of the elites' actions. It does not adapt to a task: it shows the files and
contracts, not a meta-learner.

Importing this module registers the agent as ``toy`` (the last line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from pydantic import model_validator

from metarl.agent_registry import register_agent
from metarl.agents.base import BatchAgent
from metarl.agents.policy import Policy, PolicyInput, PolicyOutput
from metarl.checks import (
    CrossFieldError,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
    settings,
)
from metarl.episodes import EpisodeBatch


@settings
class ToyConfig:
    """The toy agent's settings."""

    renamed_fields: ClassVar[Mapping[str, str]] = {"tasks": "meta_batch_size"}

    seed: NonNegativeInt = 0
    """Seed of the initial mean action (``run.seed`` when left out)."""
    meta_batch_size: PositiveInt = 4
    """Tasks (trials) per iteration."""
    episodes_per_trial: PositiveInt = 1
    """Episodes per trial."""
    init_std: PositiveFloat = 0.5
    """Initial action standard deviation, in half action ranges."""
    min_std: PositiveFloat = 0.05
    """The standard deviation's lower bound, in half action ranges."""
    elite_fraction: UnitInterval = 0.5
    """Share of the trials (the highest returns) the mean and deviation move to."""

    @model_validator(mode="after")
    def _ordered(self) -> ToyConfig:
        if self.min_std > self.init_std:
            raise CrossFieldError(
                ("min_std", "init_std"),
                f"min_std must not exceed init_std, got {self.min_std} > {self.init_std}",
            )
        return self


class ToyPolicy:
    """Actions ``mean + std * N(0, 1)``, row ``i``'s noise from ``rngs[i]`` (picklable)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean, self.std = mean, std

    def initial_state(self, n: int) -> None:
        return None

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        noise = np.stack([rng.standard_normal(self.mean.shape) for rng in rngs])
        return PolicyOutput((self.mean + self.std * noise).astype(np.float32), None, {})


class ToyAgent(BatchAgent):
    """The cross-entropy method of the module docstring."""

    metric_descriptions: ClassVar[Mapping[str, str]] = {
        **BatchAgent.metric_descriptions,
        "std": "mean action standard deviation after the update",
    }

    def __init__(
        self, observation_space: gym.Space[Any], action_space: gym.Space[Any], config: ToyConfig
    ):
        assert isinstance(action_space, gym.spaces.Box)
        self.config = config
        self.episodes_per_trial = config.episodes_per_trial
        self.tasks_per_iteration = config.meta_batch_size
        self.half = (action_space.high - action_space.low) / 2
        rng = np.random.default_rng(config.seed)
        self.mean = (action_space.low + self.half) + 0.1 * self.half * rng.standard_normal(
            action_space.shape
        )
        self.std = config.init_std * self.half

    def policy(self) -> Policy:
        return ToyPolicy(self.mean.copy(), self.std.copy())

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        returns = batch.returns().sum(axis=1)  # per trial
        n_elite = max(1, round(self.config.elite_fraction * len(returns)))
        elite = np.argsort(returns)[-n_elite:]
        per_trial = batch.episodes_per_trial
        actions = np.concatenate(
            [
                ep.actions
                for t in elite
                for ep in batch.episodes[t * per_trial : (t + 1) * per_trial]
            ]
        )
        self.mean = actions.mean(axis=0)
        self.std = np.maximum(actions.std(axis=0), self.config.min_std * self.half)
        return {"std": float(self.std.mean())}

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.std = np.asarray(state["mean"]), np.asarray(state["std"])


register_agent("toy", ToyConfig, ToyAgent, "Toy (CEM)")
