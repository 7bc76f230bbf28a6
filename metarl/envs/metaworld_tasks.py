"""Meta-World's task lists as metarl tasks: ``MetaWorldTask`` (one goal variation of one
environment class) and ``MetaWorldTasks`` (the tasks of one benchmark split, ML1, ML10,
ML25 or ML45, as Meta-World generates them from a seed). ``metarl.envs.metaworld``
holds the environment that runs them.

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

Meta-World (the optional extra ``metarl[metaworld]``) is imported when a
``MetaWorldTasks`` is built, not when this module is imported; a missing install then
raises ``ImportError`` with the ``pip install`` line.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from metarl.checks import check_int
from metarl.tasks import Task, TaskDistribution, TaskSets

__all__ = [
    "BENCHMARKS",
    "GOALS_PER_ENV",
    "SPLITS",
    "MetaWorldTask",
    "MetaWorldTasks",
]

BENCHMARKS: tuple[str, ...] = ("ML1", "ML10", "ML25", "ML45")
"""The Meta-World meta-learning benchmarks served here."""

SPLITS: tuple[str, ...] = ("train", "test")

GOALS_PER_ENV = 50
"""Goal variations Meta-World generates per environment class and split (its ``_N_GOALS``)."""

_MAX_SEED = 2**32 - 2  # numpy's legacy seeding takes < 2**32, and ML1's test split uses seed + 1

_INSTALL_HINT = "Meta-World is an optional extra: install it with `pip install metarl[metaworld]`"


def _import_metaworld() -> Any:
    """Return the ``metaworld`` package; raise ``ImportError`` with the install line if missing."""
    try:
        import metaworld
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT} ({err})") from err
    return metaworld


def one_of(owner: str, name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of ``allowed``; else ``ValueError`` naming ``owner.name``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{owner}.{name} = {value!r} is not allowed; allowed: {list(allowed)}")
    return value


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
        one_of("MetaWorldTask", "benchmark", self.benchmark, BENCHMARKS)
        if not isinstance(self.env_name, str) or not self.env_name:
            raise ValueError(
                f"MetaWorldTask.env_name must be a Meta-World environment name such as "
                f"'reach-v3', got {self.env_name!r}"
            )
        one_of("MetaWorldTask", "split", self.split, SPLITS)
        index = check_int("MetaWorldTask.index", self.index, ge=0, le=GOALS_PER_ENV - 1)
        object.__setattr__(self, "index", index)
        object.__setattr__(
            self, "seed", check_int("MetaWorldTask.seed", self.seed, ge=0, le=_MAX_SEED)
        )


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
        self.benchmark = one_of("MetaWorldTasks", "benchmark", benchmark, BENCHMARKS)
        self.split = one_of("MetaWorldTasks", "split", split, SPLITS)
        self.seed = check_int("MetaWorldTasks.seed", seed, ge=0, le=_MAX_SEED)
        env_dict = _import_metaworld().env_dict
        all_names = list(env_dict.ALL_V3_ENVIRONMENTS)
        if benchmark == "ML1":
            if env_name is None:
                raise ValueError(
                    f"MetaWorldTasks.env_name is required for ML1; allowed: {all_names}"
                )
            one_of("MetaWorldTasks", "env_name", env_name, all_names)
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
        check_int("MetaWorldTasks.task_sets.seed", seed, ge=0, le=_MAX_SEED)
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
