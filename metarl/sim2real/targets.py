"""Targets: "real" systems for sim-to-sim work, used only as a real robot is.

A target is a simulator with hidden physical parameters and unmodeled effects,
built from a ``TargetConfig``::

    target:
      env: Hopper-v5                      # any Gymnasium id (metarl/... too)
      env_kwargs: {}
      physics:                            # hidden: name -> PhysicsParam dict, usually
        torso_mass:                       # a fixed value relative to the defaults
          {field: body_mass, elements: [torso], op: scale, dist: {kind: fixed, value: 1.4}}
      effects:                            # metarl.envs.effects, innermost first
        - {name: action_delay, steps: 1}
        - {name: observation_noise, std: 0.01, bias_std: 0.02}
      seed: 0

What the rest of the platform may do with a ``Target`` is what it could do with a
robot: read its spaces and control period, and run a policy on it for whole
episodes, getting the recorded transitions back (``rollout``): observations, actions,
rewards and the env's own step infos, without the effects' records (a robot does
not report its sensor bias; they are kept apart in ``effect_records``). On a MuJoCo
env the step infos carry the system's state (``metarl.envs.mujoco_state``):
``env_infos["state"]`` and ``env_infos["next_state"]``, ``(T, nq + nv + na)`` float64,
the simulator's true ``[qpos, qvel, act]`` before and after each step (measured, with
the ``state_noise`` effect). The fits of
``metarl.sim2real`` take those recordings, never the target. ``hidden_truth`` gives
the hidden values for the one place that may know them, the evaluation of a fit's
recovery error in sim-to-sim reports.

A physics param with a non-fixed distribution makes a target whose physics is drawn
once, at the first reset, and kept (a robot does not change between episodes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from metarl.agents.policy import Policy, PolicyInput
from metarl.checks import check_int
from metarl.envs import PhysicsRandomization, params_from_dicts
from metarl.envs.effects import apply_effects, check_effect_specs
from metarl.envs.mujoco_state import RecordState, mujoco_model
from metarl.episodes import Episode, EpisodeBatch
from metarl.sampling import Sampler, check_collect_request, trial_seed
from metarl.schema import PhysicsParamDicts, validation_message
from metarl.tasks import RealTask, Task

__all__ = [
    "Target",
    "TargetConfig",
    "TargetSampler",
    "flatten_info",
    "load_target_config",
    "make_target_env",
]

# A controller: observation -> action (numpy in, numpy out).
Controller = Callable[[np.ndarray], np.ndarray]


class TargetConfig(BaseModel):
    """A "real" system for sim-to-sim work (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(min_length=1)
    """A Gymnasium environment id."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``gymnasium.make``."""
    physics: PhysicsParamDicts = Field(default_factory=dict)
    """Hidden physical parameters: name -> ``PhysicsParam`` dict (``PhysicsParam.to_dict``)."""
    effects: list[dict[str, Any]] = Field(default_factory=list)
    """Unmodeled effects (``metarl.envs.effects``), innermost first."""
    seed: int = Field(default=0, ge=0)
    """Seed of the target's own randomness (its effects, a drawn physics)."""

    @field_validator("effects")
    @classmethod
    def _effects(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return check_effect_specs(value)


def load_target_config(data: dict[str, Any]) -> TargetConfig:
    """Validate ``data`` (the ``target`` section of a file).

    Raises:
        ValueError: every invalid field, named (``target.physics.torso_mass: ...``).
    """
    try:
        return TargetConfig.model_validate(data)
    except ValidationError as err:
        message = validation_message(err, "target", model=TargetConfig)
        raise ValueError(f"invalid target:\n  {message}") from None


def make_target_env(config: TargetConfig) -> gym.Env[Any, Any]:
    """The target's environment: ``config.env``, its true state recorded in the infos
    (``RecordState``, innermost, for a MuJoCo env), its hidden physics (drawn once, at
    the first reset) and its effects.

    Raises:
        ValueError: the env refuses the physics or the effects (the message names them).
    """
    env = gym.make(config.env, **config.env_kwargs)
    if mujoco_model(env) is not None:
        env = RecordState(env)
    if config.physics:
        params = params_from_dicts(config.physics)
        try:
            env = PhysicsRandomization(env, params, resample="once")
        except ValueError as err:
            env.close()
            raise ValueError(f"target.physics: {err}") from None
    try:
        return apply_effects(env, config.effects)
    except ValueError as err:
        env.close()
        raise ValueError(f"target.{err}") from None


class Target:
    """A "real" system: hidden physics and unmodeled effects behind a robot's interface.

    Raises:
        ValueError: the env refuses the physics or the effects (the message names them).
    """

    def __init__(self, config: TargetConfig):
        self.config = config
        self._env = env = make_target_env(config)
        self._task = RealTask(system=f"target:{config.env}")
        self._episodes = 0
        self.effect_records: list[dict[str, np.ndarray]] = []
        """Per recorded episode, what the effects did (``effects.<name>.<field>``: the
        sensor bias, the delayed action, ...): ground truth like ``hidden_truth``, kept
        out of the episodes, since a robot does not report it."""
        self._seeds = np.random.SeedSequence(config.seed)
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        # Draw (or fix) the hidden physics now: a seeded first reset.
        self._env.reset(seed=int(self._seeds.spawn(1)[0].generate_state(1)[0]))

    @property
    def env(self) -> gym.Env[Any, Any]:
        """The system's environment, for a controller that reads its sensors as a robot's
        own controller reads its encoders (``metarl.sim2real.excitation``'s ``pd_hold``);
        episodes are run through ``rollout`` and ``run_trial`` only."""
        return self._env

    @property
    def dt(self) -> float | None:
        """The control period in seconds (the env's ``dt``, what a robot's rate gives);
        ``None`` for an env without one."""
        dt = getattr(self._env.unwrapped, "dt", None)
        return None if dt is None else float(dt)

    def rollout(
        self, controller: Controller, episodes: int = 1, max_steps: int | None = None
    ) -> list[Episode]:
        """Run ``controller`` for ``episodes`` whole episodes (or ``max_steps`` steps
        each) and return what was recorded: observations, the actions as sent,
        rewards, terminations and truncations, and the numeric step infos (the
        effects' records among them). The task of each episode is a ``RealTask``
        naming the target's env: a robot does not say its parameters.

        Actions go to the system as given, as the samplers send them in simulation: the
        environment applies its own limits (MuJoCo clips controls to their range), and
        the recorded action is the one sent.

        Raises:
            ValueError: ``episodes`` or ``max_steps`` not a positive integer, or an
                action of the wrong shape or not finite (named with its step).
        """
        for name, value in (("episodes", episodes), ("max_steps", max_steps)):
            if value is not None:
                check_int(f"Target.rollout: {name}", value, ge=1)
        out = []
        for _ in range(episodes):

            def act(obs: np.ndarray, *_: Any) -> tuple[np.ndarray, dict[str, Any]]:
                return np.asarray(controller(obs), dtype=self.action_space.dtype), {}

            out.append(self._episode(act, max_steps))
        return out

    def _episode(
        self,
        act: Callable[[np.ndarray, np.ndarray, float, bool], tuple[np.ndarray, dict[str, Any]]],
        max_steps: int | None,
        trial: int = 0,
        index_in_trial: int = 0,
        prev: tuple[np.ndarray, float] | None = None,
    ) -> Episode:
        """One recorded episode; ``act(obs, prev_action, prev_reward, episode_start)`` gives
        each action and what the policy says about it (``agent_infos``); ``prev``: the
        previous action and reward within a trial (``None``: zeros, a trial's start)."""
        seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
        obs, _ = self._env.reset(seed=seed)
        self._episodes += 1
        space: Any = self.action_space
        zero: np.ndarray = np.zeros(space.shape, space.dtype)
        prev_action, prev_reward = (zero, 0.0) if prev is None else prev
        rows: dict[str, list[Any]] = {k: [] for k in ("obs", "next", "act", "rew", "term", "trunc")}
        infos: list[dict[str, Any]] = []
        agent_infos: list[dict[str, Any]] = []
        while True:
            action, agent_info = act(obs, prev_action, prev_reward, not rows["act"])
            if action.shape != space.shape or not np.all(np.isfinite(action)):
                raise ValueError(
                    f"Target.rollout: step {len(rows['act'])} of episode {self._episodes}: "
                    f"action {action.tolist()} is not a finite action of shape {space.shape}"
                )
            next_obs, reward, terminated, truncated, info = self._env.step(action)
            stop = max_steps is not None and len(rows["act"]) + 1 >= max_steps
            for key, value in zip(
                rows,
                (obs, next_obs, action, float(reward), terminated, truncated or stop),
                strict=True,
            ):
                rows[key].append(value)
            infos.append(info)
            agent_infos.append(agent_info)
            obs, prev_action, prev_reward = next_obs, action, float(reward)
            if terminated or truncated or stop:
                break
        visible, hidden = split_effect_records(_numeric_infos(infos))
        self.effect_records.append(hidden)
        return Episode(
            task=self._task,
            observations=np.asarray(rows["obs"], dtype=np.float32),
            next_observations=np.asarray(rows["next"], dtype=np.float32),
            actions=np.asarray(rows["act"]),
            rewards=np.asarray(rows["rew"], dtype=np.float64),
            terminations=np.asarray(rows["term"], dtype=bool),
            truncations=np.asarray(rows["trunc"], dtype=bool),
            env_infos=visible,
            agent_infos={k: np.stack([a[k] for a in agent_infos]) for k in agent_infos[0]},
            trial=trial,
            index_in_trial=index_in_trial,
        )

    def run_trial(
        self,
        policy: Policy,
        episodes: int,
        rng: np.random.Generator,
        trial: int = 0,
        max_steps: int | None = None,
    ) -> list[Episode]:
        """``episodes`` consecutive episodes of a metarl ``Policy`` (a trial: its
        recurrent state, previous action and reward carried across the episodes, as
        the samplers do), row 0 of trial ``trial``, noise from ``rng``."""
        state = policy.initial_state(1)
        out: list[Episode] = []
        prev: tuple[np.ndarray, float] | None = None

        def act(
            obs: np.ndarray, prev_action: np.ndarray, prev_reward: float, start: bool
        ) -> tuple[np.ndarray, dict[str, Any]]:
            nonlocal state
            inputs = PolicyInput(
                np.asarray(obs, dtype=np.float32)[None],
                np.asarray(prev_action)[None],
                np.array([prev_reward], dtype=np.float32),
                np.array([start]),
                np.array([True]),
                np.array([trial], dtype=np.int64),
            )
            output = policy.act(inputs, state, [rng])
            state = output.state
            action = np.asarray(output.actions[0], dtype=self.action_space.dtype)
            return action, {k: np.asarray(v)[0] for k, v in output.infos.items()}

        for k in range(episodes):
            episode = self._episode(act, max_steps, trial, k, prev)
            out.append(episode)
            prev = (episode.actions[-1], float(episode.rewards[-1]))
        return out

    def hidden_truth(self) -> dict[str, Any]:
        """The hidden physical values (name -> value) in force. For evaluating fits in
        sim-to-sim reports only: a real robot has no such method, and nothing that
        fits or trains may call it."""
        if not self.config.physics:
            return {}
        task = self._env.get_wrapper_attr("get_task")()
        return {k: _plain(v) for k, v in task.values.items()}

    def close(self) -> None:
        self._env.close()


def _plain(value: Any) -> Any:
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr.tolist()


def _numeric_infos(infos: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Step infos as arrays: numeric entries, nested dicts flattened to ``a.b`` keys;
    kept only if present with one shape at every step."""
    flat = [flatten_info(i) for i in infos]
    out: dict[str, np.ndarray] = {}
    for key in flat[0] if flat else ():
        values = [f.get(key) for f in flat]
        if any(v is None for v in values):
            continue
        arrays = [np.asarray(v) for v in values]
        if all(a.shape == arrays[0].shape and a.dtype.kind in "biuf" for a in arrays):
            out[key] = np.stack(arrays)
    return out


def split_effect_records(infos: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flat ``infos`` split into what a robot reports and the effects' records
    (``effects.*`` keys), which only a simulation knows."""
    hidden = {k: v for k, v in infos.items() if k.startswith("effects.")}
    return {k: v for k, v in infos.items() if k not in hidden}, hidden


def flatten_info(info: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``info`` with nested dicts flattened to ``a.b`` keys."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if isinstance(v, dict):
            out.update(flatten_info(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class TargetSampler(Sampler):
    """A ``Sampler`` over a target: each trial runs on the one (real) system, one after
    the other, so that every agent's meta-test (``evaluate_adaptation``, ``Agent.adapt``)
    runs on it unchanged. The tasks only count and name the trials (a target's
    parameters are hidden): pass ``RealTask``s. Trial ``i`` of collect call ``c`` draws
    its action noise from a generator seeded by ``(seed, c, i)``."""

    def __init__(self, target: Target, seed: int = 0, max_steps: int | None = None):
        self.target = target
        self.seed = int(seed)
        self.max_steps = max_steps
        self.calls = 0

    def collect(
        self, policy: Policy, tasks: Sequence[Task], episodes_per_trial: int
    ) -> EpisodeBatch:
        check_collect_request(tasks, episodes_per_trial)
        episodes: list[Episode] = []
        for i, _task in enumerate(tasks):
            rng = np.random.default_rng(trial_seed(self.seed, self.calls, i))
            episodes += self.target.run_trial(policy, episodes_per_trial, rng, i, self.max_steps)
        self.calls += 1
        # The episodes carry the target's RealTask; the batch names the trials by it too.
        return EpisodeBatch(
            tuple(episodes),
            tuple(e.task for e in episodes[::episodes_per_trial]),
            episodes_per_trial,
        )

    def close(self) -> None:
        self.target.close()
