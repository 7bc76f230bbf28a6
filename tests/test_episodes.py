"""EpisodeBatch: trial grouping, concatenation of batches, chaining of stages."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.episodes import Episode, EpisodeBatch
from metarl.tasks import GoalTask, Task


def episode(task: Task, trial: int, k: int, reward: float, steps: int = 3) -> Episode:
    obs = np.zeros((steps, 2), dtype=np.float32)
    return Episode(
        task=task,
        observations=obs,
        next_observations=obs,
        actions=np.zeros((steps, 2), dtype=np.float32),
        rewards=np.full(steps, reward),
        terminations=np.zeros(steps, dtype=bool),
        truncations=np.arange(steps) == steps - 1,
        trial=trial,
        index_in_trial=k,
    )


def batch(tasks: list[Task], k: int, offset: float) -> EpisodeBatch:
    eps = [episode(t, i, j, offset + 10 * i + j) for i, t in enumerate(tasks) for j in range(k)]
    return EpisodeBatch(tuple(eps), tuple(tasks), k)


TASKS: list[Task] = [GoalTask(goal=(0.0, 0.0)), GoalTask(goal=(1.0, 0.0))]


def test_chain_joins_stages_trial_by_trial() -> None:
    before, after = batch(TASKS, 2, 0.0), batch(TASKS, 1, 100.0)
    chained = EpisodeBatch.chain([before, after])
    assert chained.episodes_per_trial == 3 and chained.tasks == tuple(TASKS)
    # Returns are 3 x reward: trial i holds before's episodes on task i, then after's.
    np.testing.assert_array_equal(chained.returns(), 3 * np.array([[0, 1, 100], [10, 11, 110]]))
    assert [(ep.trial, ep.index_in_trial) for ep in chained] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]


def test_chain_and_concatenate_refuse_mismatches() -> None:
    with pytest.raises(ValueError, match="different tasks"):
        EpisodeBatch.chain([batch(TASKS, 1, 0.0), batch(TASKS[::-1], 1, 0.0)])
    with pytest.raises(ValueError, match="at least one batch"):
        EpisodeBatch.chain([])
    with pytest.raises(ValueError, match="episodes_per_trial differs"):
        EpisodeBatch.concatenate([batch(TASKS, 1, 0.0), batch(TASKS, 2, 0.0)])


def test_concatenate_renumbers_trials() -> None:
    joined = EpisodeBatch.concatenate([batch(TASKS, 1, 0.0), batch(TASKS[:1], 1, 5.0)])
    assert joined.tasks == (TASKS[0], TASKS[1], TASKS[0])
    assert [ep.trial for ep in joined] == [0, 1, 2]
    np.testing.assert_array_equal(joined.returns()[:, 0], [0, 30, 15])


def test_adaptation_result_stages() -> None:
    from metarl.evaluation import AdaptationResult

    result = AdaptationResult(tuple(TASKS), np.arange(10.0).reshape(2, 5), stage_size=2)
    assert [list(r) for r in result.stages()] == [[0, 1], [2, 3], [4]]
    np.testing.assert_array_equal(result.stage_returns(), [[0.5, 2.5, 4.0], [5.5, 7.5, 9.0]])
    assert AdaptationResult.from_dict(result.to_dict()).stage_size == 2
    with pytest.raises(ValueError, match="stage_size must be a positive integer, got 0"):
        AdaptationResult(tuple(TASKS), np.zeros((2, 5)), stage_size=0)
