"""Meta-World (Farama Foundation, v3) through metarl's task API: ML1, ML10, ML25, ML45.

``make_metaworld(benchmark, env_name, split, seed)`` builds a ``MetaWorldTaskEnv``
whose tasks are ``MetaWorldTask``\\ s from ``MetaWorldTasks``: the task list that
Meta-World's own benchmark classes (``metaworld.ML1``, ``ML10``, ``ML25``,
``ML45``) generate for one split and one seed. ``metarl.envs`` registers
``metarl/MetaWorld-ML1-v0``, ``metarl/MetaWorld-ML10-v0``, ``metarl/MetaWorld-ML25-v0``
and ``metarl/MetaWorld-ML45-v0`` with this module's environment as entry point.

Meta-World is the optional extra ``metarl[metaworld]`` (``metaworld==3.1.1``).
This module does not import it at import time (importing ``metaworld`` loads all
fifty environment classes): it is imported when a ``MetaWorldTasks`` or an
environment is built, and a missing install then raises ``ImportError`` with the
``pip install`` line.

A task is stored as (benchmark, env_name, split, index, seed), not as
Meta-World's pickled task data. Meta-World draws the goal variations of a
benchmark split from its seed, class after class from one random stream, so
these five fields name one task exactly (index 3 of ``reach-v3`` is a different
goal in ML1, ML10 and ML45, and in train and test). They read plainly in a config
or a results file and compare and hash as values. Meta-World's ``Task.data`` is
a pickle: loading one from a file runs code, and it names Meta-World's internal
class paths. The price is that goals are regenerated from the seed, so a task
file means the same goal only under the same Meta-World version (pinned to
3.1.1; ``MetaWorldTasks.metaworld_task`` gives the generated data).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from metarl.checks import check_int, is_integer
from metarl.envs.base import TaskEnv
from metarl.tasks import Task, TaskDistribution, TaskSets

__all__ = [
    "ADAPTATION_EPISODES",
    "BENCHMARKS",
    "EVALUATION_EPISODES",
    "GOALS_PER_ENV",
    "HORIZON",
    "REWARD_VERSIONS",
    "SPLITS",
    "MetaWorldTask",
    "MetaWorldTaskEnv",
    "MetaWorldTasks",
    "make_metaworld",
]

BENCHMARKS: tuple[str, ...] = ("ML1", "ML10", "ML25", "ML45")
"""The Meta-World meta-learning benchmarks served here."""

SPLITS: tuple[str, ...] = ("train", "test")

REWARD_VERSIONS: tuple[str, ...] = ("v2", "v1")
"""Meta-World's reward functions; ``v2`` is Meta-World's default and ours."""

GOALS_PER_ENV = 50
"""Goal variations Meta-World generates per environment class and split (its ``_N_GOALS``)."""

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

_MAX_SEED = 2**32 - 2  # numpy's legacy seeding takes < 2**32, and ML1's test split uses seed + 1

_INSTALL_HINT = "Meta-World is an optional extra: install it with `pip install metarl[metaworld]`"


def _import_metaworld() -> Any:
    """Return the ``metaworld`` package; raise ``ImportError`` with the install line if missing."""
    try:
        import metaworld
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT} ({err})") from err
    return metaworld


def _one_of(owner: str, name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{owner}.{name} = {value!r} is not allowed; allowed: {list(allowed)}")
    return value


def _integer(owner: str, name: str, value: Any, low: int, high: int) -> int:
    if not is_integer(value):
        raise ValueError(f"{owner}.{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{owner}.{name} = {int(value)} is out of range; allowed: [{low}, {high}]")
    return int(value)


# --------------------------------------------------------------------------- task


@dataclass(frozen=True)
class MetaWorldTask(Task):
    """Goal variation ``index`` of the Meta-World environment ``env_name``.

    ``benchmark`` and ``split`` say which of Meta-World's task lists the
    variation comes from and ``seed`` is the seed that list was generated with
    (it fixes the goal and object positions). Which names and indices exist
    depends on the benchmark and split and is checked by ``MetaWorldTasks``.
    """

    kind: ClassVar[str] = "metaworld"
    benchmark: str
    env_name: str
    split: str
    index: int
    seed: int = 0

    def __post_init__(self) -> None:
        _one_of("MetaWorldTask", "benchmark", self.benchmark, BENCHMARKS)
        if not isinstance(self.env_name, str) or not self.env_name:
            raise ValueError(
                f"MetaWorldTask.env_name must be a Meta-World environment name such as "
                f"'reach-v3', got {self.env_name!r}"
            )
        _one_of("MetaWorldTask", "split", self.split, SPLITS)
        index = _integer("MetaWorldTask", "index", self.index, 0, GOALS_PER_ENV - 1)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "seed", _integer("MetaWorldTask", "seed", self.seed, 0, _MAX_SEED))


# --------------------------------------------------------------------------- distribution

_BENCHMARK_CACHE: dict[tuple[str, str | None, int], Any] = {}
_BENCHMARK_LOCK = threading.Lock()  # Meta-World seeds numpy's global generator while generating


def _metaworld_benchmark(benchmark: str, env_name: str | None, seed: int) -> Any:
    """Meta-World's benchmark object (its task lists), built once per process and cached.

    Building it runs Meta-World's task generation for both splits at once (how long
    that takes: ``benchmarks/RESULTS.md``, "Figures quoted from development").
    """
    key = (benchmark, env_name, seed)
    with _BENCHMARK_LOCK:
        if key not in _BENCHMARK_CACHE:
            mw = _import_metaworld()
            if benchmark == "ML1":
                _BENCHMARK_CACHE[key] = mw.ML1(env_name, seed=seed)
            else:
                _BENCHMARK_CACHE[key] = getattr(mw, benchmark)(seed=seed)
        return _BENCHMARK_CACHE[key]


class MetaWorldTasks(TaskDistribution):
    """The tasks of one Meta-World benchmark split, as Meta-World generates them from ``seed``.

    ML1 (``env_name`` required): the 50 goal variations of one environment; the
    test split holds 50 other variations of the same environment (Meta-World
    generates them from ``seed + 1``). ML10, ML25, ML45 (``env_name`` must be
    ``None``): 50 variations of each environment class of the split; the test
    classes are held out (ML10: 10 train classes, 5 test classes; ML45: 45 and 5).

    ``sample`` draws tasks uniformly with replacement. ``sample_set(rng, n)``
    draws ``n`` distinct tasks spread over the classes as evenly as possible (a
    class gets ``n // C`` or one more), in Meta-World's order; ``n = len(self)``
    gives Meta-World's whole list. Building a distribution does not generate the
    goals; ``metaworld_task`` (used by the environment) does, once per process.

    Raises:
        ValueError: unknown ``benchmark``, ``split`` or ``env_name``, an
            ``env_name`` given for a benchmark other than ML1, or a bad ``seed``;
            the message names the field and the allowed values.
        ImportError: Meta-World is not installed.
    """

    task_type = MetaWorldTask

    def __init__(
        self,
        benchmark: str = "ML1",
        env_name: str | None = None,
        split: str = "train",
        seed: int = 0,
    ):
        self.benchmark = _one_of("MetaWorldTasks", "benchmark", benchmark, BENCHMARKS)
        self.split = _one_of("MetaWorldTasks", "split", split, SPLITS)
        self.seed = _integer("MetaWorldTasks", "seed", seed, 0, _MAX_SEED)
        env_dict = _import_metaworld().env_dict
        all_names = list(env_dict.ALL_V3_ENVIRONMENTS)
        if benchmark == "ML1":
            if env_name is None:
                raise ValueError(
                    f"MetaWorldTasks.env_name is required for ML1; allowed: {all_names}"
                )
            _one_of("MetaWorldTasks", "env_name", env_name, all_names)
            classes = {env_name: env_dict.ALL_V3_ENVIRONMENTS[env_name]}
        else:
            if env_name is not None:
                raise ValueError(
                    f"MetaWorldTasks.env_name = {env_name!r} is only for ML1; {benchmark} "
                    "fixes its own environment classes, so env_name must be None"
                )
            classes = dict(getattr(env_dict, f"{benchmark}_V3")[split])
        self.env_name = env_name
        self.env_classes: dict[str, type] = classes
        self._data: dict[str, list[Any]] | None = None

    @property
    def env_names(self) -> list[str]:
        """The environment names of this split, in Meta-World's order."""
        return list(self.env_classes)

    @property
    def tasks(self) -> list[Task]:
        """Every task of this split, in Meta-World's order (class by class, index 0..49)."""
        return [self._task(name, i) for name in self.env_names for i in range(GOALS_PER_ENV)]

    def __len__(self) -> int:
        return len(self.env_classes) * GOALS_PER_ENV

    def for_split(self, split: str) -> MetaWorldTasks:
        """The same benchmark and seed, other split."""
        return MetaWorldTasks(self.benchmark, self.env_name, split, self.seed)

    def _task(self, env_name: str, index: int) -> MetaWorldTask:
        return MetaWorldTask(self.benchmark, env_name, self.split, int(index), self.seed)

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        _check_n("n", n)
        flat = rng.integers(len(self), size=n)
        return [self._task(self.env_names[k // GOALS_PER_ENV], k % GOALS_PER_ENV) for k in flat]

    def sample_set(self, rng: np.random.Generator, n: int) -> list[Task]:
        _check_n("n", n, len(self), self._describe())
        names = self.env_names
        per_class = np.full(len(names), n // len(names))
        per_class[rng.choice(len(names), n % len(names), replace=False)] += 1
        out: list[Task] = []
        for name, k in zip(names, per_class, strict=True):
            out.extend(
                self._task(name, i) for i in np.sort(rng.choice(GOALS_PER_ENV, k, replace=False))
            )
        return out

    def task_sets(
        self, seed: int, n_train: int | None = None, n_test: int | None = None
    ) -> TaskSets:
        """Train and test tasks of this benchmark: Meta-World's two lists, whatever ``self.split``.

        With ``n_train`` / ``n_test`` left at ``None`` (or equal to the list
        sizes: 50/50 for ML1, 500/250 for ML10, 2250/250 for ML45) the sets are
        exactly Meta-World's train and test task lists for this distribution's
        ``seed``, in Meta-World's order, and ``seed`` here changes nothing. A
        smaller count gives a class-balanced subset chosen with ``seed``. The
        goal positions are fixed by the distribution's own (Meta-World) seed.

        Raises:
            ValueError: a count is negative or larger than its list.
        """
        _integer("MetaWorldTasks.task_sets", "seed", seed, 0, _MAX_SEED)
        train, test = self.for_split("train"), self.for_split("test")
        n_train = len(train) if n_train is None else n_train
        n_test = len(test) if n_test is None else n_test
        _check_n("n_train", n_train, len(train), train._describe())
        _check_n("n_test", n_test, len(test), test._describe())
        train_ss, test_ss = np.random.SeedSequence(seed).spawn(2)
        return TaskSets(
            train.sample_set(np.random.default_rng(train_ss), n_train),
            test.sample_set(np.random.default_rng(test_ss), n_test),
        )

    @property
    def support(self) -> dict[str, str]:
        return {
            "benchmark": repr(self.benchmark),
            "split": repr(self.split),
            "seed": str(self.seed),
            "env_name": f"one of {self.env_names} ({len(self.env_names)} environments)",
            "index": f"[0, {GOALS_PER_ENV - 1}] ({GOALS_PER_ENV} goal variations per environment)",
        }

    def _check(self, task: Task) -> None:
        assert isinstance(task, MetaWorldTask)
        for name, allowed in (
            ("benchmark", self.benchmark),
            ("split", self.split),
            ("seed", self.seed),
        ):
            value = getattr(task, name)
            if value != allowed:
                raise ValueError(
                    f"MetaWorldTask.{name} = {value!r} is not allowed here; allowed: {allowed!r} "
                    f"({self._describe()})"
                )
        if task.env_name not in self.env_classes:
            raise ValueError(
                f"MetaWorldTask.env_name = {task.env_name!r} is not in {self._describe()}; "
                f"allowed: {self.env_names}"
            )

    def metaworld_task(self, task: Task) -> Any:
        """Meta-World's own ``Task`` (env_name and pickled data) for ``task``.

        The first call generates the benchmark's task lists with Meta-World
        (cached per process; see ``_metaworld_benchmark`` for the time it takes).

        Raises:
            ValueError: ``task`` is not in this distribution.
            RuntimeError: Meta-World generated a different number of variations
                than ``GOALS_PER_ENV`` (a changed Meta-World).
        """
        self.validate(task)
        assert isinstance(task, MetaWorldTask)
        if self._data is None:
            bench = _metaworld_benchmark(self.benchmark, self.env_name, self.seed)
            listed = bench.train_tasks if self.split == "train" else bench.test_tasks
            data: dict[str, list[Any]] = {name: [] for name in self.env_names}
            for mw_task in listed:
                data[mw_task.env_name].append(mw_task)
            wrong = {name: len(v) for name, v in data.items() if len(v) != GOALS_PER_ENV}
            if wrong:
                raise RuntimeError(
                    f"Meta-World generated {wrong} goal variations for {self._describe()}, "
                    f"expected {GOALS_PER_ENV} each (metarl is written against metaworld==3.1.1)"
                )
            self._data = data
        return self._data[task.env_name][task.index]

    def _describe(self) -> str:
        what = self.benchmark if self.env_name is None else f"ML1 {self.env_name!r}"
        return f"{what} {self.split} split, seed {self.seed}"

    def __repr__(self) -> str:
        return (
            f"MetaWorldTasks(benchmark={self.benchmark!r}, env_name={self.env_name!r}, "
            f"split={self.split!r}, seed={self.seed})"
        )


def _check_n(name: str, n: Any, most: int | None = None, what: str = "") -> None:
    check_int(name, n, ge=0)
    if most is not None and n > most:
        raise ValueError(
            f"{name} = {n} is more tasks than {what} has; allowed: [0, {most}] distinct tasks"
        )


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
    process (``_metaworld_benchmark``).

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
        self.reward_version = _one_of(
            "MetaWorldTaskEnv", "reward_version", reward_version, REWARD_VERSIONS
        )
        if render_mode is not None:
            _one_of("MetaWorldTaskEnv", "render_mode", render_mode, self.metadata["render_modes"])
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
    _one_of("make_metaworld", "benchmark", benchmark, BENCHMARKS)
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
