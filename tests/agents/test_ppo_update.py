"""Tests of the shared PPO pieces: GAE against hand-computed numbers, the losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.agents.ppo_update import (
    clipped_surrogate_loss,
    compute_gae,
    explained_variance,
    masked_mean,
    normalize_advantages,
    value_loss,
)

REWARDS = np.array([1.0, 2.0, 3.0])
VALUES = np.array([0.5, 1.0, 1.5])


def test_gae_hand_computed() -> None:
    # gamma 0.9, lambda 0.8, bootstrap 2.0 after the last step:
    # deltas: 3 + .9 * 2 - 1.5 = 3.3; 2 + .9 * 1.5 - 1 = 2.35; 1 + .9 * 1 - .5 = 1.4
    # A2 = 3.3; A1 = 2.35 + .72 * 3.3 = 4.726; A0 = 1.4 + .72 * 4.726 = 4.80272
    adv, ret = compute_gae(REWARDS, VALUES, 2.0, np.zeros(3, bool), 0.9, 0.8)
    np.testing.assert_allclose(adv, [4.80272, 4.726, 3.3])
    np.testing.assert_allclose(ret, [5.30272, 5.726, 4.8])


def test_gae_done_cuts_the_flow() -> None:
    # done after step 1: step 1 bootstraps 0 and receives nothing from step 2.
    adv, _ = compute_gae(REWARDS, VALUES, 2.0, np.array([False, True, False]), 0.9, 0.8)
    np.testing.assert_allclose(adv, [1.4 + 0.72 * 1.0, 1.0, 3.3])


def test_gae_limits() -> None:
    dones = np.array([False, False, True])
    # lambda 1, gamma 1, terminal end: advantage = reward-to-go minus value.
    adv, ret = compute_gae(REWARDS, VALUES, 123.0, dones, 1.0, 1.0)
    np.testing.assert_allclose(ret, [6.0, 5.0, 3.0])
    np.testing.assert_allclose(adv, [5.5, 4.0, 1.5])
    # lambda 0: one-step TD errors.
    adv, _ = compute_gae(REWARDS, VALUES, 0.0, dones, 0.5, 0.0)
    np.testing.assert_allclose(adv, [1 + 0.5 * 1.0 - 0.5, 2 + 0.5 * 1.5 - 1.0, 3 - 1.5])


def test_gae_batched_equals_columns() -> None:
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    dones = rng.random((7, 3)) < 0.3
    last = rng.normal(size=3)
    adv, ret = compute_gae(rewards, values, last, dones, 0.99, 0.95)
    for j in range(3):
        a, r = compute_gae(rewards[:, j], values[:, j], last[j], dones[:, j], 0.99, 0.95)
        np.testing.assert_array_equal(adv[:, j], a)
        np.testing.assert_array_equal(ret[:, j], r)


def test_gae_bad_input() -> None:
    with pytest.raises(ValueError, match="one shape"):
        compute_gae(REWARDS, VALUES[:2], 0.0, np.zeros(3, bool), 0.9, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        compute_gae(REWARDS, VALUES, 0.0, np.zeros(3, bool), 1.5, 0.9)
    with pytest.raises(ValueError, match="lam"):
        compute_gae(REWARDS, VALUES, 0.0, np.zeros(3, bool), 0.9, -0.1)


def test_clipped_surrogate() -> None:
    old = torch.zeros(4)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # ratios e^{0.5} ~ 1.65 and e^{-0.5} ~ 0.61, clip 0.2
    new = torch.tensor([0.5, -0.5, 0.5, -0.5])
    loss, stats = clipped_surrogate_loss(new, old, adv, 0.2)
    r = torch.exp(new)
    expected = -torch.stack([torch.tensor(1.2), r[1], -r[2], torch.tensor(-0.8)]).mean()
    torch.testing.assert_close(loss, expected)
    assert stats.clip_fraction == 1.0
    assert stats.approx_kl == pytest.approx(float(((r - 1) - new).mean()))
    # identical policies: the loss is minus the mean advantage and the KL is 0
    loss, stats = clipped_surrogate_loss(old, old, adv + 1.0, 0.2)
    assert float(loss) == pytest.approx(-1.0)
    assert stats.approx_kl == 0.0 and stats.clip_fraction == 0.0


def test_masked_terms() -> None:
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    assert float(masked_mean(x, mask)) == 2.0
    assert float(value_loss(x, torch.zeros(1, 3), mask)) == pytest.approx(0.5 * 5.0)
    adv = normalize_advantages(x, mask)
    torch.testing.assert_close(adv, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-6, rtol=0)
    # gradients do not reach masked entries
    x.requires_grad_(True)
    masked_mean(x * x, mask).backward()
    assert x.grad is not None and float(x.grad[0, 2]) == 0.0


def test_explained_variance() -> None:
    target = np.array([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(np.full(4, 2.5), target) == pytest.approx(0.0)
    assert np.isnan(explained_variance(target, np.ones(4)))
