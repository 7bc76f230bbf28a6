"""Success rates in the meta-test protocol: the flag counts if set at any step, per episode k,
and an env without a flag reports none (never a rate of 0)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.agents.base import Agent, CollectFn
from metarl.agents.policy import Policy, PolicyInput, PolicyOutput
from metarl.episodes import Episode, EpisodeBatch
from metarl.evaluation import AdaptationResult, evaluate_adaptation, plot_adaptation
from metarl.sampling import LocalSampler
from metarl.tasks import SUCCESS_KEY, GoalTask, Task

SPARSE = "metarl/PointRobotSparse-v0"
UP, RIGHT = GoalTask((0.0, 1.0)), GoalTask((1.0, 0.0))  # on the sparse robot's goal arc


class _Straight:
    """Moves by ``step`` on every step (no noise)."""

    def __init__(self, step: tuple[float, float]):
        self.step = np.asarray(step, np.float32)

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros(n)

    def act(self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]) -> Any:
        return PolicyOutput(np.tile(self.step, (len(rngs), 1)), state, {})


class _ScriptedAgent(Agent):
    """Meta-test episode k moves straight along ``steps[k]`` from the origin."""

    def __init__(self, steps: Sequence[tuple[float, float]]):
        self.steps = steps

    def policy(self) -> Policy:
        return _Straight(self.steps[0])

    def adapt(self, collect: CollectFn, tasks: Sequence[Task], episodes: int) -> EpisodeBatch:
        return EpisodeBatch.chain([collect(_Straight(s), tasks, 1) for s in self.steps[:episodes]])

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def test_success_rate_per_episode_k_counts_the_flag_at_any_step() -> None:
    # k=1 moves +x: it passes through the goal at (1, 0) and on to (2, 0), so the flag
    # fires at steps 9-12 and is 0 at the last step; it never nears (0, 1). k=2 moves +y:
    # the reverse. k=3 stands still: no success anywhere.
    agent = _ScriptedAgent([(0.1, 0.0), (0.0, 0.1), (0.0, 0.0)])
    result = evaluate_adaptation(agent, SPARSE, [UP, RIGHT], 3, seed=0)
    assert result.successes is not None and result.successes.dtype == bool
    np.testing.assert_array_equal(result.successes, [[False, True, False], [True, False, False]])
    assert result.success_rate is not None
    np.testing.assert_allclose(result.success_rate, [0.5, 0.5, 0.0])
    # The last step's flag alone would count none of them.
    sampler = LocalSampler(SPARSE, num_envs=2, seed=0)
    try:
        hits = [ep for ep in agent.adapt(sampler.collect, [UP, RIGHT], 3) if ep.success]
    finally:
        sampler.close()
    assert len(hits) == 2 and all(ep.env_infos[SUCCESS_KEY][-1] == 0.0 for ep in hits)
    assert all(0 < ep.env_infos[SUCCESS_KEY].sum() < len(ep) for ep in hits)

    data = json.loads(json.dumps(result.to_dict()))
    assert data["success_rate"] == [0.5, 0.5, 0.0]
    assert data["successes"] == [[False, True, False], [True, False, False]]
    back = AdaptationResult.from_dict(data)
    assert back.successes is not None
    np.testing.assert_array_equal(back.successes, result.successes)
    stage = back.stage_successes(2)
    assert stage is not None
    np.testing.assert_allclose(stage, [[0.5, 0.0], [0.5, 0.0]])


def test_an_env_without_a_flag_reports_no_success_rate() -> None:
    agent = _ScriptedAgent([(0.1, 0.0), (0.0, 0.1)])
    tasks = [GoalTask((0.0, 1.0)), GoalTask((0.5, 0.5))]
    result = evaluate_adaptation(agent, "metarl/PointRobot-v0", tasks, 2, seed=0)
    assert result.successes is None and result.success_rate is None
    assert result.stage_successes() is None
    data = result.to_dict()
    assert data["successes"] is None and data["success_rate"] is None
    assert AdaptationResult.from_dict(data).successes is None
    # A result saved before successes were recorded reads as "no flag", not as 0.
    old = {k: v for k, v in data.items() if k not in ("successes", "success_rate")}
    assert AdaptationResult.from_dict(old).success_rate is None


def test_plot_has_a_success_panel_only_with_a_flag(tmp_path: Path) -> None:
    import matplotlib.image

    flagged = evaluate_adaptation(_ScriptedAgent([(0.1, 0.0)] * 2), SPARSE, [UP, RIGHT], 2)
    plain = evaluate_adaptation(
        _ScriptedAgent([(0.1, 0.0)] * 2), "metarl/PointRobot-v0", [UP, RIGHT], 2
    )
    plot_adaptation({"flagged": flagged, "plain": plain}, tmp_path / "both.png")
    plot_adaptation({"plain": plain}, tmp_path / "plain.png")
    wide = matplotlib.image.imread(tmp_path / "both.png").shape[1]
    narrow = matplotlib.image.imread(tmp_path / "plain.png").shape[1]
    assert wide > 1.5 * narrow


def _episode(task: Task, k: int, infos: dict[str, np.ndarray]) -> Episode:
    n = 3
    return Episode(
        task,
        np.zeros((n, 2), np.float32),
        np.zeros((n, 2), np.float32),
        np.zeros((n, 2), np.float32),
        np.zeros(n),
        np.zeros(n, bool),
        np.zeros(n, bool),
        env_infos=infos,
        index_in_trial=k,
    )


def test_a_flag_in_some_episodes_only_is_refused() -> None:
    flag = {SUCCESS_KEY: np.array([0.0, 1.0, 0.0])}
    both = EpisodeBatch((_episode(UP, 0, flag), _episode(UP, 1, flag)), (UP,), 2)
    assert both.successes() is not None and both.successes().tolist() == [[True, True]]
    mixed = EpisodeBatch((_episode(UP, 0, flag), _episode(UP, 1, {})), (UP,), 2)
    with pytest.raises(ValueError, match=r"1 of 2 episodes have no info\['success'\].*k 1"):
        mixed.successes()
    with pytest.raises(ValueError, match="successes must be None or a bool array"):
        AdaptationResult((UP,), np.zeros((1, 2)), successes=np.zeros((1, 3), bool))
    with pytest.raises(ValueError, match="successes must be None or a bool array"):
        AdaptationResult((UP,), np.zeros((1, 2)), successes=np.zeros((1, 2)))


def test_sparse_point_robot_flags_the_goal_radius_and_the_dense_one_has_no_flag() -> None:
    import gymnasium as gym

    from metarl.envs import set_task

    sparse, dense = gym.make(SPARSE), gym.make("metarl/PointRobot-v0")
    goal = (math.cos(1.0), math.sin(1.0))
    for env in (sparse, dense):
        set_task(env, GoalTask(goal))
        env.reset(seed=0)
    position = np.zeros(2)
    for _ in range(15):
        action = (np.array(goal) / 10.0).astype(np.float32)
        _, _, _, _, info = sparse.step(action)
        position = position + action.astype(np.float64)
        assert info[SUCCESS_KEY] == float(math.dist(position, goal) <= 0.2)
        assert SUCCESS_KEY not in dense.step(action)[4]
