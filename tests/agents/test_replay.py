"""Replay buffers: ring order, extras, sampling, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.agents.replay import ReplayBuffer, TaskReplayBuffers
from metarl.episodes import Episode
from metarl.tasks import GoalTask

TASK = GoalTask(goal=(0.0, 0.0))


def episode(start: int, steps: int, dense: bool = True) -> Episode:
    """Observation t = (start + t, 0): each transition is recognizable by its value."""
    obs = np.stack([np.arange(start, start + steps), np.zeros(steps)], 1).astype(np.float32)
    infos = {"dense_reward": -np.arange(start, start + steps, dtype=np.float64)} if dense else {}
    return Episode(
        TASK,
        obs,
        obs + 1,
        np.ones((steps, 2), np.float32) * 0.5,
        np.arange(start, start + steps, dtype=np.float64),
        np.arange(steps) == steps - 1,
        np.zeros(steps, bool),
        infos,
    )


def test_ring_keeps_the_most_recent_transitions() -> None:
    buf = ReplayBuffer(2, 2, capacity=5, extras=("dense_reward",))
    buf.add_episode(episode(0, 3))
    buf.add_episode(episode(10, 4))
    assert len(buf) == 5
    assert sorted(buf.observations[:, 0].tolist()) == [2, 10, 11, 12, 13]
    batch = buf.sample(np.random.default_rng(0), 50)
    assert set(batch.observations[:, 0].tolist()) <= {2, 10, 11, 12, 13}
    np.testing.assert_array_equal(batch.next_observations[:, 0], batch.observations[:, 0] + 1)
    np.testing.assert_array_equal(batch.rewards, batch.observations[:, 0])
    np.testing.assert_array_equal(batch.extras["dense_reward"], -batch.observations[:, 0])
    # Terminal flags travel with their transition: obs 2 and 13 ended their episodes.
    np.testing.assert_array_equal(batch.terminations, np.isin(batch.observations[:, 0], [2, 13]))
    again = buf.sample(np.random.default_rng(0), 50)
    np.testing.assert_array_equal(again.observations, batch.observations)


def test_bad_input_is_refused() -> None:
    buf = ReplayBuffer(2, 2, capacity=5, extras=("dense_reward",))
    with pytest.raises(ValueError, match=r"no env_infos \['dense_reward'\]"):
        buf.add_episode(episode(0, 3, dense=False))
    with pytest.raises(ValueError, match="empty replay buffer"):
        buf.sample(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="observations of size 2 .* the buffer stores 3"):
        ReplayBuffer(3, 2, 5).add_episode(episode(0, 2))
    with pytest.raises(ValueError, match="capacity must be a positive integer"):
        ReplayBuffer(2, 2, 0)


def test_state_round_trip_keeps_every_transition_and_the_ring_position() -> None:
    buf = ReplayBuffer(2, 2, capacity=6, extras=("dense_reward",))
    for start in (0, 10, 20):
        buf.add_episode(episode(start, 3))
    other = ReplayBuffer(2, 2, capacity=6, extras=("dense_reward",))
    other.load_state_dict(buf.state_dict())
    for name in ("observations", "actions", "rewards", "next_observations", "terminations"):
        np.testing.assert_array_equal(getattr(other, name), getattr(buf, name))
    assert (other.size, other.next_index) == (buf.size, buf.next_index)
    buf.add_episode(episode(30, 2))
    other.add_episode(episode(30, 2))
    np.testing.assert_array_equal(other.observations, buf.observations)
    with pytest.raises(ValueError, match="capacity 6"):
        ReplayBuffer(2, 2, capacity=7, extras=("dense_reward",)).load_state_dict(buf.state_dict())
    buf.clear()
    assert len(buf) == 0


def test_task_buffers() -> None:
    buffers = TaskReplayBuffers(2, 2, capacity=10)
    buffers.add_episodes(3, [episode(0, 2), episode(5, 2)])
    assert 3 in buffers and 4 not in buffers and buffers.num_transitions() == 4
    restored = TaskReplayBuffers(2, 2, capacity=10)
    restored.load_state_dict(buffers.state_dict())
    np.testing.assert_array_equal(restored[3].observations, buffers[3].observations)


def test_storage_grows_to_the_capacity_then_wraps() -> None:
    buf = ReplayBuffer(2, 2, capacity=3000)
    assert len(buf.rewards) == 1024  # allocated lazily
    for start in range(0, 2500, 500):
        buf.add_episode(episode(start, 500, dense=False))
    assert len(buf) == 2500 and len(buf.rewards) == 3000
    np.testing.assert_array_equal(buf.observations[:2500, 0], np.arange(2500))
    buf.add_episode(episode(2500, 700, dense=False))  # wraps: 200 overwrite the oldest
    assert len(buf) == 3000 and len(buf.rewards) == 3000
    np.testing.assert_array_equal(buf.observations[:200, 0], np.arange(3000, 3200))
    np.testing.assert_array_equal(buf.observations[200:, 0], np.arange(200, 3000))
    restored = ReplayBuffer(2, 2, capacity=3000)
    restored.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(restored.observations, buf.observations)
