"""SAC pieces: the squashed Gaussian's log-density, the policy's samples, Polyak updates."""

from __future__ import annotations

import copy

import pytest
import torch

from metarl.agents.sac import LOG_STD_MAX, TanhGaussianPolicy, soft_update, squashed_log_prob


def test_squashed_log_prob_matches_torch_transformed_distribution() -> None:
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    log_std = 0.5 * torch.randn(50, 3, generator=gen, dtype=torch.float64)
    pre = mean + log_std.exp() * torch.randn(50, 3, generator=gen, dtype=torch.float64)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()),
        [torch.distributions.TanhTransform(cache_size=1)],
    )
    expected = dist.log_prob(torch.tanh(pre)).sum(-1)
    torch.testing.assert_close(squashed_log_prob(mean, log_std, pre), expected)
    # Far in the tails the stable form stays finite where log(1 - tanh^2) would not.
    assert torch.isfinite(
        squashed_log_prob(mean[:1], log_std[:1], torch.full((1, 3), 30.0, dtype=torch.float64))
    ).all()


def test_policy_samples_in_the_unit_box_and_gradients_reach_the_trunk() -> None:
    policy = TanhGaussianPolicy(4, 2, (16, 16), torch.Generator().manual_seed(0))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    action, log_prob, mean, log_std = policy.sample(x, noise)
    assert action.shape == (8, 2) and log_prob.shape == (8,)
    assert bool((action.abs() < 1).all()) and bool((log_std <= LOG_STD_MAX).all())
    torch.testing.assert_close(action, torch.tanh(mean + log_std.exp() * noise))
    (log_prob.sum() + action.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    with pytest.raises(ValueError, match="at least one hidden layer"):
        TanhGaussianPolicy(4, 2, (), torch.Generator())


def test_soft_update() -> None:
    source = torch.nn.Linear(3, 2)
    target = copy.deepcopy(source)
    with torch.no_grad():
        for p in target.parameters():
            p.zero_()
    soft_update(target, source, 0.25)
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(t, 0.25 * s)
    with pytest.raises(ValueError, match="tau must be in"):
        soft_update(target, source, 1.5)
