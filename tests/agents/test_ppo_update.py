"""Tests of the shared PPO pieces: GAE against hand-computed numbers, the losses, the
update loop and the return standardization."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch

from metarl.agents.ppo_update import (
    PPO_UPDATE_METRICS,
    MinibatchEvaluation,
    PPOBatch,
    clipped_surrogate_loss,
    compute_gae,
    explained_variance,
    masked_mean,
    normalize_advantages,
    ppo_batch,
    ppo_update,
    return_scale,
    standardize_returns,
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


# ----------------------------------------------------------------------------- the update


class _Settings(NamedTuple):
    epochs: int = 2
    clip_range: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 0.5


def _toy(seed: int = 0) -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    """A linear model whose outputs are per-step log-probabilities and values for a batch
    of 6 trials of 5 steps."""
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.linspace(-0.5, 0.5, 6).reshape(2, 3))
        model.bias.zero_()
    features = torch.from_numpy(np.random.default_rng(seed).normal(size=(6, 5, 3)))
    return model, features.float(), torch.full((6, 5), 0.3)


def _evaluate(
    model: torch.nn.Linear, features: torch.Tensor, calls: list[int]
) -> Callable[[torch.Tensor], MinibatchEvaluation]:
    def evaluate(idx: torch.Tensor) -> MinibatchEvaluation:
        calls.append(len(idx))
        out = model(features[idx])
        return MinibatchEvaluation(out[..., 0], out[..., 0] * 0 + 1.0, out[..., 1])

    return evaluate


def _batch(mask: np.ndarray, fill: float) -> PPOBatch:
    rng = np.random.default_rng(1)
    old = torch.from_numpy(np.where(mask, 0.1, fill)).float()
    advantages = np.where(mask, rng.normal(size=mask.shape), fill)
    targets = np.where(mask, rng.normal(size=mask.shape), fill)
    return ppo_batch(old, advantages, targets, normalize=True, mask=mask)


def test_ppo_update_steps_once_per_minibatch_and_reports_the_means() -> None:
    model, features, _ = _toy()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    calls: list[int] = []
    metrics = ppo_update(
        _evaluate(model, features, calls),
        _batch(np.ones((6, 5), bool), 0.0),
        _Settings(),
        optimizer,
        torch.Generator().manual_seed(0),
        lambda order: order.tensor_split(3),
    )
    assert calls == [2] * 6  # 2 epochs x 3 minibatches of 2 trials
    assert all(state["step"] == 6 for state in optimizer.state.values())
    assert set(metrics) == set(PPO_UPDATE_METRICS) - {"explained_variance", "action_std"}
    assert metrics["entropy"] == pytest.approx(1.0)
    assert all(np.isfinite(v) for v in metrics.values())


def test_ppo_update_ignores_what_the_mask_pads() -> None:
    mask = np.ones((6, 5), bool)
    mask[::2, 3:] = False  # shorter trials
    results = []
    for fill in (0.0, 1e3):
        model, features, _ = _toy()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        metrics = ppo_update(
            _evaluate(model, features, []),
            _batch(mask, fill),
            _Settings(),
            optimizer,
            torch.Generator().manual_seed(0),
            lambda order: order.tensor_split(2),
        )
        results.append((metrics, model.weight.detach().clone()))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1])


def test_standardize_returns_updates_the_running_statistics_from_the_valid_entries() -> None:
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    stats = RunningMeanStd(shape=())
    returns = np.array([[1.0, 3.0, 0.0], [5.0, 7.0, 9.0]])
    valid = np.array([[True, True, False], [True, True, True]])
    standardized, loc, scale = standardize_returns(stats, returns, valid)
    assert loc == pytest.approx(5.0, rel=1e-3) and scale == pytest.approx(np.sqrt(8.0), rel=1e-3)
    np.testing.assert_allclose(standardized, (returns - loc) / scale)
    assert return_scale(stats) == (loc, scale)
