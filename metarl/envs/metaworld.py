"""Meta-World (Farama Foundation, v3) as a task environment: ML1, ML10, ML25, ML45.

``make_metaworld(benchmark, env_name, split, seed)`` builds a ``MetaWorldTaskEnv``
whose tasks are ``MetaWorldTask``\\ s from ``MetaWorldTasks``
(``metarl.envs.metaworld_tasks``): the task list that Meta-World's own benchmark
classes (``metaworld.ML1``, ``ML10``, ``ML25``, ``ML45``) generate for one split and
one seed. This module also holds Meta-World's horizon and the counts of its meta-test
protocol (``ADAPTATION_EPISODES``, ``EVALUATION_EPISODES``). ``metarl.envs`` registers
``metarl/MetaWorld-ML1-v0``, ``metarl/MetaWorld-ML10-v0``, ``metarl/MetaWorld-ML25-v0``
and ``metarl/MetaWorld-ML45-v0`` with this module's environment as entry point.

Meta-World is the optional extra ``metarl[metaworld]`` (``metaworld==3.1.1``).
This module does not import it at import time (importing ``metaworld`` loads all
fifty environment classes): it is imported when a ``MetaWorldTasks`` or an
environment is built, and a missing install then raises ``ImportError`` with the
``pip install`` line.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from metarl.checks import is_integer
from metarl.envs.base import TaskEnv
from metarl.envs.metaworld_tasks import BENCHMARKS, MetaWorldTask, MetaWorldTasks, one_of
from metarl.tasks import Task

__all__ = [
    "ADAPTATION_EPISODES",
    "EVALUATION_EPISODES",
    "HORIZON",
    "REWARD_VERSIONS",
    "MetaWorldTaskEnv",
    "make_metaworld",
]

REWARD_VERSIONS: tuple[str, ...] = ("v2", "v1")
"""Meta-World's reward functions; ``v2`` is Meta-World's default and ours."""

HORIZON = 500
"""Episode length: Meta-World's ``max_path_length``, the same for every v3 class."""

ADAPTATION_EPISODES = 10
"""Episodes an agent runs on a test task to adapt before it is scored: Meta-World's
``metalearning_evaluation(adaptation_episodes=10)`` (``metaworld/evaluation.py``,
3.1.1, with ``adaptation_steps=1``: one adaptation after them)."""

EVALUATION_EPISODES = 3
"""Episodes scored after adaptation: Meta-World's
``metalearning_evaluation(evaluation_episodes=3)``. Meta-World's score is the success
rate over these episodes (an episode succeeds if ``info["success"]`` is set at any
step: its evaluation ends an episode at the first success), averaged over tasks."""


# --------------------------------------------------------------------------- environment


class MetaWorldTaskEnv(TaskEnv, gym.Env[np.ndarray, np.ndarray], EzPickle):
    """A Meta-World benchmark split as one task environment: the task picks class and goal.

    ## Description
    A simulated Sawyer arm (Meta-World v3, MuJoCo). The task is a
    ``MetaWorldTask``: an environment class (``reach-v3``, ``push-v3``, ...)
    and one of its 50 goal variations (goal and object positions). For ML1 all
    tasks share one class and ``set_task`` changes the goal; for ML10, ML25 and
    ML45 ``set_task`` also switches the class. One Meta-World environment is
    kept per class, built the first time a task of that class is set.
    ``set_task`` takes effect at the next ``reset()`` (Meta-World places the
    goal and objects on reset): calling ``step()`` after ``set_task`` without a
    ``reset()`` raises ``RuntimeError``.

    ## Action space
    ``Box(-1, 1, (4,), float32)``: end-effector displacement (x, y, z; scaled
    by 1/100 m) and gripper effort. Meta-World clips actions to the box.

    ## Observation space
    ``Box((39,), float32)``, the same for every class: hand position (3),
    gripper opening (1), object positions and quaternions (14, zero-padded),
    the same 18 values of the previous step, and the goal position (3). In the
    ML benchmarks the goal is hidden: its 3 entries are always 0. Bounds are
    Meta-World's (hand box, gripper [-1, 1], objects unbounded), except the
    hidden goal's: Meta-World bounds it by [0, 0], which Gymnasium's checker
    flags on every ``gymnasium.make`` ("A Box observation space maximum and
    minimum values are equal"); here it is unbounded like the zero padding of
    absent objects. The observations are Meta-World's, unchanged.

    ## Reward
    Meta-World's reward of version ``reward_version``: ``"v2"`` (default,
    Meta-World's default, shaped, in [0, 10]) or ``"v1"`` (the reward of the
    first Meta-World release). Meta-World's info keys are passed through:
    ``success``, ``near_object``, ``grasp_success``, ``grasp_reward``,
    ``in_place_reward``, ``obj_to_target``, ``unscaled_reward``.

    ## Success
    ``info["success"]`` (1.0 or 0.0, ``metarl.tasks.SUCCESS_KEY``) is Meta-World's
    per-step flag. An episode is a success when the flag is reached at any step
    of the episode (the criterion of the Meta-World paper and of its
    ``evaluation.py``); ``info["episode_success"]`` (bool) says whether that has
    happened so far in the episode. ``evaluate_adaptation`` reports the success
    rate of each episode k; a run's meta-test follows Meta-World's
    ``metalearning_evaluation``: ``ADAPTATION_EPISODES`` (10) episodes, then
    ``EVALUATION_EPISODES`` (3) scored ones. Where it differs: Meta-World ends a
    scored episode at its first success (the success count is the same, the
    return is not: here every episode runs 500 steps); it repeats the protocol
    ``num_evals = 10`` times, each on the next task of every sub-environment of
    its vector env (its default assumes 40 goals per class and 20
    sub-environments), where a run here meets each of its test tasks once (all
    50 per class by default).

    ## Task distribution
    ``MetaWorldTasks(benchmark, env_name, split, seed)``: Meta-World's task list
    for that split. Train/test tasks: ML1 50/50 goal variations of one class;
    ML10 500/250 (10 train classes, 5 held-out test classes, 50 goals each);
    ML25 1250/250; ML45 2250/250. A test task needs an environment made with
    ``split="test"``.

    ## Episode end
    Never terminates. Truncated after 500 steps (Meta-World's horizon: its
    environment returns ``truncated=True`` at step 500 and refuses a 501st
    step; the registered ``TimeLimit`` has the same 500).

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``benchmark`` | ``"ML1"`` | one of ``BENCHMARKS`` |
    | ``env_name`` | ``None`` | ML1's environment, e.g. ``"reach-v3"``; ``None`` for the others |
    | ``split`` | ``"train"`` | ``"train"`` or ``"test"`` |
    | ``seed`` | ``0`` | Meta-World's benchmark seed: fixes the goal variations |
    | ``task`` | ``None`` | initial task (a ``MetaWorldTask`` or its dict); ``None``: a fixed draw |
    | ``reward_version`` | ``"v2"`` | ``"v2"`` or ``"v1"`` |
    | ``render_mode`` | ``None`` | ``"human"``, ``"rgb_array"`` or ``"depth_array"`` |
    | ``camera_name``, ``camera_id`` | ``None`` | camera to render from |
    | ``width``, ``height`` | ``480`` | image size |

    The rendering arguments go to each Meta-World environment. Building the
    environment generates the benchmark's goals with Meta-World once per
    process (``MetaWorldTasks.metaworld_task``).

    ## Source
    Yu et al., "Meta-World: A Benchmark and Evaluation for Multi-Task and Meta
    Reinforcement Learning" (CoRL 2019; arXiv v2); Farama Foundation
    ``metaworld`` 3.1.1 (v3 environments).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium's convention)
        "render_modes": ["human", "rgb_array", "depth_array"],
        "render_fps": 80,  # Meta-World's: frame_skip 5 x timestep 0.0025 s
    }

    def __init__(
        self,
        benchmark: str = "ML1",
        env_name: str | None = None,
        split: str = "train",
        seed: int = 0,
        task: Task | dict[str, Any] | None = None,
        reward_version: str = "v2",
        render_mode: str | None = None,
        camera_name: str | None = None,
        camera_id: int | None = None,
        width: int = 480,
        height: int = 480,
    ):
        EzPickle.__init__(
            self,
            benchmark,
            env_name,
            split,
            seed,
            task,
            reward_version,
            render_mode,
            camera_name,
            camera_id,
            width,
            height,
        )
        self.task_distribution: MetaWorldTasks = MetaWorldTasks(benchmark, env_name, split, seed)
        self.reward_version = one_of(
            "MetaWorldTaskEnv", "reward_version", reward_version, REWARD_VERSIONS
        )
        if render_mode is not None:
            one_of("MetaWorldTaskEnv", "render_mode", render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self._env_kwargs: dict[str, Any] = {
            "reward_function_version": reward_version,
            "render_mode": render_mode,
            "camera_name": camera_name,
            "camera_id": camera_id,
            "width": width,
            "height": height,
        }
        self.n_train_tasks = len(self.task_distribution.for_split("train"))
        self.n_test_tasks = len(self.task_distribution.for_split("test"))
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._obs_space: spaces.Box | None = None
        self._envs: dict[str, Any] = {}
        self._active: Any = None
        self._needs_reset = True
        self._episode_success = False
        self._init_task(task)

    @property
    def env_name(self) -> str:
        """The Meta-World environment name of the current task."""
        task = self.get_task()
        assert isinstance(task, MetaWorldTask)
        return task.env_name

    @property
    def metaworld_env(self) -> Any:
        """The Meta-World environment of the current task (for inspection, e.g. ``_target_pos``)."""
        return self._active

    def _apply_task(self, task: Task) -> None:
        assert isinstance(task, MetaWorldTask)
        mw_task = self.task_distribution.metaworld_task(task)
        env = self._class_env(task.env_name)
        env.set_task(mw_task)
        self._active = env
        self._needs_reset = True

    def _class_env(self, env_name: str) -> Any:
        """The Meta-World environment of class ``env_name``, built on first use."""
        env = self._envs.get(env_name)
        if env is not None:
            return env
        env = self.task_distribution.env_classes[env_name](**self._env_kwargs)
        if env.max_path_length != HORIZON:
            raise RuntimeError(f"{env_name} has horizon {env.max_path_length}, expected {HORIZON}")
        space = _observation_space(env.sawyer_observation_space)
        if self._obs_space is None:
            self._obs_space = space
            self.observation_space = space
        elif space != self._obs_space:
            raise RuntimeError(
                f"{env_name} has observation space {space}, unlike the other classes "
                f"({self._obs_space})"
            )
        self._envs[env_name] = env
        return env

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode of the current task. ``seed`` seeds ``np_random`` (task sampling).

        Meta-World's reset is deterministic given the task (the goal and object
        positions are the task's), so ``seed`` does not change the first state.
        """
        super().reset(seed=seed)
        obs, info = self._active.reset()
        self._needs_reset = False
        self._episode_success = False
        return np.asarray(obs, dtype=np.float32), dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError(
                "call reset() before step(): the environment was just built or given a new "
                "task with set_task(), which Meta-World applies on reset"
            )
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (4,):
            raise ValueError(f"action must have shape (4,), got shape {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        obs, reward, terminated, truncated, info = self._active.step(action)
        info = dict(info)
        self._episode_success = self._episode_success or bool(info["success"])
        info["episode_success"] = self._episode_success
        return (
            np.asarray(obs, dtype=np.float32),
            float(reward),
            bool(terminated),
            bool(truncated),
            info,
        )

    def render(self) -> Any:
        """Render the current Meta-World environment (``render_mode`` given at construction)."""
        return self._active.render()

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        super().close()


def _observation_space(mw_space: spaces.Box) -> spaces.Box:
    """Meta-World's observation bounds as float32, entries with zero width (the hidden
    goal of the ML benchmarks, always 0) made unbounded: a Box whose low equals its high
    makes Gymnasium's checker warn on every ``gymnasium.make``."""
    low, high = mw_space.low.astype(np.float32), mw_space.high.astype(np.float32)
    fixed = low == high
    low[fixed], high[fixed] = -np.inf, np.inf
    return spaces.Box(low, high, dtype=np.float32)


def make_metaworld(
    benchmark: str = "ML1",
    env_name: str | None = None,
    split: str = "train",
    seed: int = 0,
    **kwargs: Any,
) -> gym.Env[np.ndarray, np.ndarray]:
    """Make the registered Meta-World environment of ``benchmark`` (``gymnasium.make``).

    ``env_name`` is ML1's environment (default ``"reach-v3"``) and must be
    ``None`` for the other benchmarks, whose classes are fixed. ``kwargs`` go to
    ``MetaWorldTaskEnv`` (``task``, ``reward_version``, ``render_mode``, ...)
    or to ``gymnasium.make`` (``max_episode_steps`` up to 500, ``disable_env_checker``).
    The result is wrapped by ``gymnasium.make`` (``TimeLimit`` of 500 steps);
    ``env.unwrapped`` is the ``MetaWorldTaskEnv``.

    Example::

        env = make_metaworld("ML10", split="test", seed=0)
        tasks = env.unwrapped.task_distribution.task_sets(seed=0).test

    Raises:
        ValueError: unknown ``benchmark`` or ``env_name`` (with the allowed values).
        ImportError: Meta-World is not installed (``pip install metarl[metaworld]``).
    """
    one_of("make_metaworld", "benchmark", benchmark, BENCHMARKS)
    if benchmark == "ML1" and env_name is None:
        env_name = "reach-v3"
    steps = kwargs.get("max_episode_steps", HORIZON)
    if not (is_integer(steps) and 1 <= steps <= HORIZON):
        raise ValueError(
            f"max_episode_steps = {steps!r} is not allowed; allowed: [1, {HORIZON}] "
            "(Meta-World refuses to step past its horizon)"
        )
    return gym.make(
        f"metarl/MetaWorld-{benchmark}-v0",  # registered by ``metarl.envs``
        benchmark=benchmark,
        env_name=env_name,
        split=split,
        seed=seed,
        **kwargs,
    )
