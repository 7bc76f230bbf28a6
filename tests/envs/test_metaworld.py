"""Meta-World through the task API: ML1 goals, ML10 classes and splits, bad input, checkers.

Meta-World generates a benchmark's goals once per process: about 2.5 s for ML1
and 18 s for ML10 on 2 CPU cores, so the environments are module fixtures.
"""

from __future__ import annotations

import inspect
import json
import pickle
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl.agents.baselines import RandomAgent
from metarl.build import eval_sampler, task_sets
from metarl.config import load_config, validate_config
from metarl.envs import METAWORLD_ENVS, get_task, get_tasks, set_task, set_tasks
from metarl.envs.checker import check_task_env
from metarl.envs.metaworld import (
    ADAPTATION_EPISODES,
    EVALUATION_EPISODES,
    HORIZON,
    MetaWorldTaskEnv,
    make_metaworld,
)
from metarl.envs.metaworld_tasks import (
    GOALS_PER_ENV,
    MetaWorldTask,
    MetaWorldTasks,
    _metaworld_benchmark,
)
from metarl.evaluation import AdaptationResult, evaluate_adaptation
from metarl.report import metaworld_score
from metarl.tasks import GoalTask, Task

metaworld = pytest.importorskip("metaworld")

ML10_TRAIN = list(metaworld.env_dict.ML10_V3["train"])
ML10_TEST = list(metaworld.env_dict.ML10_V3["test"])


@pytest.fixture(scope="module")
def ml1() -> Iterator[gym.Env[Any, Any]]:
    env = make_metaworld("ML1", "reach-v3", seed=0)
    yield env
    env.close()


@pytest.fixture(scope="module")
def ml10() -> Iterator[gym.Env[Any, Any]]:
    env = make_metaworld("ML10", split="train", seed=0)
    yield env
    env.close()


@pytest.fixture(scope="module")
def ml10_test() -> Iterator[gym.Env[Any, Any]]:
    env = make_metaworld("ML10", split="test", seed=0)
    yield env
    env.close()


def _dist(env: gym.Env[Any, Any]) -> MetaWorldTasks:
    dist = env.unwrapped.task_distribution  # type: ignore[attr-defined]
    assert isinstance(dist, MetaWorldTasks)
    return dist


def _goal(mw_task: Any) -> np.ndarray:
    """The goal position stored in Meta-World's own task data (the last 3 of its rand_vec)."""
    return np.asarray(pickle.loads(mw_task.data)["rand_vec"])[-3:]


def _rollout(env: gym.Env[Any, Any], task: Task, actions: np.ndarray) -> tuple[np.ndarray, Any]:
    set_task(env, task)
    obs, _ = env.reset(seed=0)
    rewards = []
    for action in actions:
        obs, reward, _, _, _ = env.step(action)
        rewards.append(reward)
    return np.array(rewards), obs


# --------------------------------------------------------------------------- packaging


def test_importing_metarl_does_not_import_metaworld() -> None:
    code = (
        "import sys, metarl, metarl.envs.metaworld; "
        "from metarl.tasks import Task; "
        "Task.from_dict({'kind': 'metaworld', 'benchmark': 'ML1', 'env_name': 'reach-v3', "
        "'split': 'train', 'index': 0, 'seed': 0}); "
        "print('metaworld' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_metaworld_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "metaworld", None)  # makes `import metaworld` fail
    with pytest.raises(ImportError, match=r"pip install metarl\[metaworld\]"):
        MetaWorldTasks("ML1", "reach-v3")
    with pytest.raises(ImportError, match=r"pip install metarl\[metaworld\]"):
        make_metaworld("ML10")


@pytest.mark.parametrize("env_id", sorted(METAWORLD_ENVS))
def test_registered_ids(env_id: str) -> None:
    spec = gym.spec(env_id)
    assert spec.max_episode_steps == HORIZON
    assert spec.entry_point == "metarl.envs.metaworld:MetaWorldTaskEnv"
    kwargs, n_train, n_test = METAWORLD_ENVS[env_id]
    assert spec.kwargs == kwargs
    # the counts come from Meta-World's class lists; no goals are generated here
    assert len(MetaWorldTasks(**kwargs, split="train")) == n_train
    assert len(MetaWorldTasks(**kwargs, split="test")) == n_test


# --------------------------------------------------------------------------- ML1


def test_ml1_spaces_and_steps(ml1: gym.Env[Any, Any]) -> None:
    assert ml1.observation_space.shape == (39,)
    assert ml1.observation_space.dtype == np.float32
    assert ml1.action_space == gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert ml1.spec is not None and ml1.spec.max_episode_steps == HORIZON
    obs, _ = ml1.reset(seed=0)
    assert obs.dtype == np.float32 and obs in ml1.observation_space
    ml1.action_space.seed(0)
    for _ in range(20):
        obs, reward, terminated, truncated, info = ml1.step(ml1.action_space.sample())
        assert obs.dtype == np.float32 and obs in ml1.observation_space
        assert isinstance(reward, float) and 0.0 <= reward <= 10.0  # v2 rewards lie in [0, 10]
        assert info["success"] in (0.0, 1.0)
        assert isinstance(info["episode_success"], bool)
        assert not terminated and not truncated


def test_ml1_set_task_changes_the_goal(ml1: gym.Env[Any, Any]) -> None:
    generated = _metaworld_benchmark("ML1", "reach-v3", 0).train_tasks  # Meta-World's list
    actions = np.tile([[0.5, 0.5, 0.0, 0.0]], (30, 1)).astype(np.float32)
    targets, rewards = [], []
    for index in (0, 1, 17):
        task = MetaWorldTask("ML1", "reach-v3", "train", index, seed=0)
        set_task(ml1, task)
        assert get_task(ml1) == task
        obs, _ = ml1.reset(seed=0)
        target = np.array(ml1.unwrapped.metaworld_env._target_pos)  # type: ignore[attr-defined]
        # the goal is Meta-World's goal variation number `index` of its train list
        np.testing.assert_allclose(target, _goal(generated[index]))
        np.testing.assert_array_equal(obs[-3:], 0.0)  # ML benchmarks hide the goal
        targets.append(target)
        rewards.append(_rollout(ml1, task, actions)[0])
    assert len({tuple(t) for t in targets}) == 3
    assert not np.allclose(rewards[0], rewards[1])


def test_ml1_success_is_passed_through_and_kept_for_the_episode(ml1: gym.Env[Any, Any]) -> None:
    set_task(ml1, MetaWorldTask("ML1", "reach-v3", "train", 3))
    ml1.reset(seed=0)
    mw_env = ml1.unwrapped.metaworld_env  # type: ignore[attr-defined]
    successes = []
    for _ in range(150):  # move the fingers' center straight to the goal
        direction = np.clip(100.0 * (mw_env._target_pos - mw_env.tcp_center), -1.0, 1.0)
        _, _, _, _, info = ml1.step(np.append(direction, 0.0).astype(np.float32))
        successes.append(info["success"])
        if info["success"]:
            break
    assert successes[-1] == 1.0 and successes[0] == 0.0
    assert info["episode_success"] is True
    for _ in range(30):  # and away again: the step flag drops, the episode stays a success
        _, _, _, _, info = ml1.step(np.array([0.0, -1.0, 1.0, 0.0], np.float32))
    assert info["success"] == 0.0 and info["episode_success"] is True
    ml1.reset()
    _, _, _, _, info = ml1.step(np.zeros(4, np.float32))
    assert info["episode_success"] is False


def test_making_an_env_gives_no_equal_bounds_warning() -> None:
    """Meta-World bounds the hidden goal by [0, 0]; Gymnasium's checker warned about it on
    every gym.make. The goal entries are unbounded here; the other bounds are Meta-World's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = make_metaworld("ML1", "reach-v3")
        obs, _ = env.reset(seed=0)
    assert [str(w.message) for w in caught] == []
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and obs in space
    mw_space = env.unwrapped.metaworld_env.sawyer_observation_space  # type: ignore[attr-defined]
    np.testing.assert_array_equal(mw_space.low[-3:], 0.0)
    np.testing.assert_array_equal(mw_space.high[-3:], 0.0)
    assert np.all(space.low[-3:] == -np.inf) and np.all(space.high[-3:] == np.inf)
    np.testing.assert_array_equal(space.low[:-3], mw_space.low[:-3].astype(np.float32))
    np.testing.assert_array_equal(space.high[:-3], mw_space.high[:-3].astype(np.float32))
    env.close()


def test_ml1_truncates_at_500_steps(ml1: gym.Env[Any, Any]) -> None:
    ml1.reset(seed=0)
    truncations = [ml1.step(np.zeros(4, np.float32))[3] for _ in range(HORIZON)]
    assert truncations[-1] is True and not any(truncations[:-1])


def test_ml1_step_after_set_task_needs_reset(ml1: gym.Env[Any, Any]) -> None:
    set_task(ml1, MetaWorldTask("ML1", "reach-v3", "train", 5))
    with pytest.raises(RuntimeError, match="reset"):
        ml1.unwrapped.step(np.zeros(4, np.float32))
    ml1.reset()
    ml1.step(np.zeros(4, np.float32))


def test_ml1_tasks_round_trip_through_json(ml1: gym.Env[Any, Any]) -> None:
    for task in _dist(ml1).sample(np.random.default_rng(0), 5):
        text = json.dumps(task.to_dict())
        back = Task.from_dict(json.loads(text))
        assert back == task and type(back) is MetaWorldTask
        assert json.loads(text)["kind"] == "metaworld"
    task = MetaWorldTask("ML1", "reach-v3", "train", 9)
    env = make_metaworld("ML1", "reach-v3", task=json.loads(json.dumps(task.to_dict())))
    assert get_task(env) == task
    obs, _ = env.reset()
    set_task(ml1, task)
    obs_ml1, _ = ml1.reset()
    np.testing.assert_array_equal(obs, obs_ml1)
    env.close()


def test_ml1_task_sets_are_meta_worlds_lists(ml1: gym.Env[Any, Any]) -> None:
    dist = _dist(ml1)
    sets = dist.task_sets(0)
    assert sets == dist.task_sets(0) == dist.task_sets(1, 50, 50)  # the full lists, any seed
    assert sets.train == [MetaWorldTask("ML1", "reach-v3", "train", i) for i in range(50)]
    assert sets.test == [MetaWorldTask("ML1", "reach-v3", "test", i) for i in range(50)]
    train_goals = {tuple(_goal(dist.metaworld_task(t))) for t in sets.train}
    test_goals = {tuple(_goal(dist.for_split("test").metaworld_task(t))) for t in sets.test}
    assert len(train_goals) == len(test_goals) == 50 and not train_goals & test_goals

    small = dist.task_sets(1, 10, 5)
    assert small == dist.task_sets(1, 10, 5)
    assert small != dist.task_sets(2, 10, 5)
    assert len(set(small.train)) == 10 and len(set(small.test)) == 5
    assert all(t.split == "train" for t in small.train)  # type: ignore[attr-defined]
    assert all(t.split == "test" for t in small.test)  # type: ignore[attr-defined]


def test_ml1_benchmark_seed_changes_the_goals(ml1: gym.Env[Any, Any]) -> None:
    seed0, seed1 = _dist(ml1), MetaWorldTasks("ML1", "reach-v3", seed=1)
    goal0 = _goal(seed0.metaworld_task(MetaWorldTask("ML1", "reach-v3", "train", 0, seed=0)))
    goal1 = _goal(seed1.metaworld_task(MetaWorldTask("ML1", "reach-v3", "train", 0, seed=1)))
    assert not np.allclose(goal0, goal1)


def test_ml1_reward_version_v1_differs(ml1: gym.Env[Any, Any]) -> None:
    task = MetaWorldTask("ML1", "reach-v3", "train", 2)
    actions = np.tile([[0.3, 0.2, -0.1, 0.0]], (10, 1)).astype(np.float32)
    v1 = make_metaworld("ML1", "reach-v3", reward_version="v1")
    rewards_v1, _ = _rollout(v1, task, actions)
    rewards_v2, _ = _rollout(ml1, task, actions)
    assert not np.allclose(rewards_v1, rewards_v2)
    v1.close()


def test_ml1_vector_env_gets_one_task_per_sub_env() -> None:
    envs = gym.vector.SyncVectorEnv([lambda: make_metaworld("ML1", "reach-v3")] * 2)
    tasks = [MetaWorldTask("ML1", "reach-v3", "train", i) for i in (4, 8)]
    set_tasks(envs, tasks)
    envs.reset(seed=0)
    assert get_tasks(envs) == tasks
    targets = [e.unwrapped.metaworld_env._target_pos for e in envs.envs]  # type: ignore[attr-defined]
    assert not np.allclose(targets[0], targets[1])
    envs.close()


def test_ml1_passes_gymnasium_and_task_checkers() -> None:
    env = make_metaworld("ML1", "reach-v3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unbounded entries (objects, hidden goal) warn
        # No render check: it would open a "human" window, which aborts on a headless machine.
        check_env(env.unwrapped, skip_render_check=True)
    check_task_env(env)
    env.close()


# --------------------------------------------------------------------------- ML10


def test_ml10_train_and_test_sets_cover_the_classes(ml10: gym.Env[Any, Any]) -> None:
    dist = _dist(ml10)
    assert dist.env_names == ML10_TRAIN and len(ML10_TRAIN) == 10
    sets = dist.task_sets(0)
    assert len(sets.train) == 500 and len(sets.test) == 250
    for tasks, names in ((sets.train, ML10_TRAIN), (sets.test, ML10_TEST)):
        counts: dict[str, int] = {}
        for t in tasks:
            assert isinstance(t, MetaWorldTask)
            counts[t.env_name] = counts.get(t.env_name, 0) + 1
        assert counts == {name: GOALS_PER_ENV for name in names}
    assert not set(ML10_TRAIN) & set(ML10_TEST)
    balanced = dist.sample_set(np.random.default_rng(0), 25)  # 2 or 3 per class
    per_class = [sum(t.env_name == n for t in balanced) for n in ML10_TRAIN]  # type: ignore[attr-defined]
    assert sorted(per_class) == [2] * 5 + [3] * 5


def test_ml10_set_task_switches_class(ml10: gym.Env[Any, Any]) -> None:
    unwrapped = ml10.unwrapped
    assert isinstance(unwrapped, MetaWorldTaskEnv)
    actions = np.tile([[0.4, -0.3, 0.2, 1.0]], (15, 1)).astype(np.float32)
    rewards, envs = {}, {}
    for name in ("reach-v3", "push-v3", "window-open-v3"):
        task = MetaWorldTask("ML10", name, "train", 0)
        rewards[name], obs = _rollout(ml10, task, actions)
        assert unwrapped.env_name == name and get_task(ml10) == task
        assert type(unwrapped.metaworld_env) is metaworld.env_dict.ALL_V3_ENVIRONMENTS[name]
        assert obs.dtype == np.float32 and obs in ml10.observation_space
        envs[name] = unwrapped.metaworld_env
    assert not np.allclose(rewards["reach-v3"], rewards["push-v3"])
    assert not np.allclose(rewards["push-v3"], rewards["window-open-v3"])
    set_task(ml10, MetaWorldTask("ML10", "reach-v3", "train", 1))
    assert unwrapped.metaworld_env is envs["reach-v3"]  # one Meta-World env per class, reused


def test_ml10_test_tasks_need_a_test_split_env(
    ml10: gym.Env[Any, Any], ml10_test: gym.Env[Any, Any]
) -> None:
    task = MetaWorldTask("ML10", "lever-pull-v3", "test", 7)
    set_task(ml10_test, task)
    ml10_test.reset(seed=0)
    _, reward, _, _, info = ml10_test.step(np.zeros(4, np.float32))
    assert ml10_test.unwrapped.env_name == "lever-pull-v3"  # type: ignore[attr-defined]
    assert np.isfinite(reward) and "success" in info
    assert ml10_test.observation_space == ml10.observation_space
    with pytest.raises(ValueError, match=r"MetaWorldTask\.split = 'test'.*allowed: 'train'"):
        set_task(ml10, task)
    with pytest.raises(ValueError, match=r"env_name = 'reach-v3'.*lever-pull-v3"):
        set_task(ml10_test, MetaWorldTask("ML10", "reach-v3", "test", 0))
    assert get_task(ml10_test) == task  # a rejected task leaves the current one


def test_ml10_passes_the_task_checker(ml10: gym.Env[Any, Any]) -> None:
    check_task_env(ml10, skip_gymnasium_checker=True)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: make_metaworld("ML99"), r"benchmark = 'ML99'.*'ML10'"),
        (lambda: make_metaworld("ML1", "reach-v9"), r"env_name = 'reach-v9'.*'reach-v3'"),
        (lambda: MetaWorldTasks("ML1"), r"env_name is required for ML1.*'reach-v3'"),
        (lambda: MetaWorldTasks("ML10", "reach-v3"), r"env_name = 'reach-v3' is only for ML1"),
        (lambda: MetaWorldTasks("ML1", "reach-v3", "val"), r"split = 'val'.*'train', 'test'"),
        (
            lambda: MetaWorldTasks("ML1", "reach-v3", seed=-1),
            r"seed must be an integer in \[0, 4294967294\], got -1",
        ),
        (lambda: MetaWorldTask("ML5", "reach-v3", "train", 0), r"benchmark = 'ML5'.*'ML45'"),
        (
            lambda: MetaWorldTask("ML1", "reach-v3", "train", 50),
            r"index must be an integer in \[0, 49\], got 50",
        ),
        (
            lambda: MetaWorldTask("ML1", "reach-v3", "train", -1),
            r"index must be an integer in \[0, 49\], got -1",
        ),
        (lambda: MetaWorldTask("ML1", "reach-v3", "train", 1.0), r"index must be an integer"),
        (lambda: MetaWorldTask("ML1", "", "train", 0), r"env_name must be"),
        (
            lambda: Task.from_dict(
                {"kind": "metaworld", "benchmark": "ML1", "env_name": "reach-v3"}
            ),
            r"missing field\(s\) \['split', 'index', 'seed'\]",
        ),
        (
            lambda: make_metaworld("ML1", reward_version="v3"),
            r"reward_version = 'v3'.*'v2', 'v1'",
        ),
        (lambda: make_metaworld("ML1", max_episode_steps=600), r"max_episode_steps = 600"),
    ],
)
def test_bad_construction(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (GoalTask((0.0, 0.0)), r"task must be a MetaWorldTask"),
        (MetaWorldTask("ML1", "push-v3", "train", 0), r"env_name = 'push-v3'.*\['reach-v3'\]"),
        (MetaWorldTask("ML1", "reach-v3", "train", 0, seed=1), r"seed = 1.*allowed: 0"),
        (MetaWorldTask("ML10", "reach-v3", "train", 0), r"benchmark = 'ML10'.*allowed: 'ML1'"),
        (MetaWorldTask("ML1", "reach-v3", "test", 0), r"split = 'test'.*allowed: 'train'"),
    ],
)
def test_set_task_rejects_foreign_tasks(ml1: gym.Env[Any, Any], task: Task, message: str) -> None:
    before = get_task(ml1)
    with pytest.raises(ValueError, match=message):
        set_task(ml1, task)
    assert get_task(ml1) == before


def test_bad_counts_and_actions(ml1: gym.Env[Any, Any]) -> None:
    dist = _dist(ml1)
    with pytest.raises(ValueError, match=r"n = 51 is more tasks than ML1 'reach-v3' train.*50"):
        dist.sample_set(np.random.default_rng(0), 51)
    with pytest.raises(ValueError, match=r"n_test = 60 is more tasks than ML1 'reach-v3' test"):
        dist.task_sets(0, 50, 60)
    with pytest.raises(ValueError, match=r"n must be a non-negative integer"):
        dist.sample(np.random.default_rng(0), -1)
    ml1.reset()
    with pytest.raises(ValueError, match=r"action must have shape \(4,\)"):
        ml1.unwrapped.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="action must be finite"):
        ml1.unwrapped.step(np.array([np.nan, 0, 0, 0], np.float32))


# --------------------------------------------------------------------------- protocol


def test_episode_numbers_are_meta_worlds_own() -> None:
    from metaworld.evaluation import metalearning_evaluation

    defaults = inspect.signature(metalearning_evaluation).parameters
    assert defaults["adaptation_episodes"].default == ADAPTATION_EPISODES == 10
    assert defaults["evaluation_episodes"].default == EVALUATION_EPISODES == 3
    assert defaults["adaptation_steps"].default == 1


@pytest.mark.parametrize(
    ("env_id", "overrides", "K"),
    [
        ("metarl/MetaWorld-ML1-v0", [], ADAPTATION_EPISODES + EVALUATION_EPISODES),
        ("metarl/MetaWorld-ML10-v0", [], ADAPTATION_EPISODES + EVALUATION_EPISODES),
        ("metarl/MetaWorld-ML1-v0", ["evaluation.episodes=5"], 5),
        ("metarl/PointRobotSparse-v0", [], 3),
    ],
)
def test_a_meta_world_run_follows_meta_worlds_protocol(
    env_id: str, overrides: list[str], K: int
) -> None:
    config = load_config(None, [f"env.id={env_id}", "agent.name=rl2", *overrides])
    assert config.evaluation.episodes == K
    # the resolved value survives the run folder's snapshot
    assert validate_config(config.to_dict()).evaluation.episodes == K


def test_meta_worlds_score_is_the_success_rate_of_the_evaluation_episodes() -> None:
    tasks = tuple(MetaWorldTask("ML1", "reach-v3", "test", i) for i in range(2))
    successes = np.zeros((2, 13), bool)
    successes[0, 2] = True  # an adaptation episode: not scored
    successes[0, 10:] = True
    successes[1, 12] = True
    result = AdaptationResult(tasks, np.zeros((2, 13)), successes=successes)
    no_flag = AdaptationResult(tasks, np.zeros((2, 13)))
    config = load_config(None, ["env.id=metarl/MetaWorld-ML1-v0", "agent.name=rl2"])
    score = metaworld_score(config, {"rl2": result, "other": no_flag})
    assert score == {
        "adaptation_episodes": 10,
        "evaluation_episodes": 3,
        "success_rate": {"rl2": pytest.approx(4 / 6)},
    }
    short = load_config(None, ["env.id=metarl/MetaWorld-ML1-v0", "evaluation.episodes=3"])
    assert metaworld_score(short, {"rl2": result}) is None  # no adaptation episode left
    other = load_config(None, ["env.id=metarl/PointRobotSparse-v0", "evaluation.episodes=13"])
    assert metaworld_score(other, {"rl2": result}) is None


def test_a_run_evaluates_meta_worlds_test_tasks_on_a_test_split_env() -> None:
    config = load_config(None, ["env.id=metarl/MetaWorld-ML1-v0", "env.test_tasks=1"])
    test = task_sets(config).test
    assert [t.split for t in test] == ["test"]  # type: ignore[attr-defined]
    agent = RandomAgent(gym.spaces.Box(-1.0, 1.0, (4,), np.float32))
    with eval_sampler(config, agent, test) as sampler:
        result = evaluate_adaptation(agent, sampler, test, 1)
    assert result.successes is not None and result.successes.shape == (1, 1)


def test_evaluate_adaptation_keeps_meta_worlds_success_flags(ml1: gym.Env[Any, Any]) -> None:
    agent = RandomAgent(ml1.action_space)
    tasks = [MetaWorldTask("ML1", "reach-v3", "train", i) for i in (0, 1)]
    result = evaluate_adaptation(agent, "metarl/MetaWorld-ML1-v0", tasks, 1, seed=0)
    assert result.successes is not None and result.successes.shape == (2, 1)
    assert result.success_rate is not None and result.env_steps == 2 * HORIZON
