"""Network pieces shared by the torch agents: MLPs, a GRU core, a Gaussian head (the
Gaussian MLP policy), Gaussian densities, activations, conversions.

Every module here is built on torch's ``meta`` device and then initialized from an
explicit ``torch.Generator``, so constructing a network neither reads nor advances
torch's global random state (the design's "no global seeding"). Initialization is
orthogonal with zero biases, the scheme of the PPO implementations the agents
follow (OpenAI baselines, CleanRL): gain sqrt(2) on hidden layers, a small gain on
the policy's mean layer so that the first actions are close to zero-mean noise,
gain 1 on value outputs.

The Gaussian head has a state-independent learned log standard deviation, as
garage's ``GaussianGRUPolicy`` (``learn_std=True``, ``std_share_network=False``)
and CleanRL's continuous PPO. On observations, with hidden layers, it is the
Gaussian MLP policy of MAML-TRPO, ProMP and PPO; on GRU features, RL2's head.
``ACTIVATIONS`` names the hidden activations a config may choose (``Activation``) and
``HiddenSizes`` is the type of a config's hidden layer sizes. ``ActionScaling``
maps a bounded ``Box`` to the unit box the head works in; ``torch_threads`` pins
torch's intra-op thread count for inference that must be bitwise reproducible
across processes.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from pydantic import BeforeValidator
from torch import nn

from metarl.checks import PositiveInt

__all__ = [
    "ACTIVATIONS",
    "ActionScaling",
    "Activation",
    "GRUCore",
    "GaussianHead",
    "HiddenSizes",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_log_prob",
    "init_linear",
    "mlp",
    "to_numpy",
    "to_tensor",
    "torch_threads",
]

HIDDEN_GAIN = math.sqrt(2.0)
Activation = Literal["tanh", "relu"]
"""The hidden activations a config names (``activation: tanh``)."""
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


HiddenSizes = Annotated[tuple[PositiveInt, ...], BeforeValidator(_tuple)]
"""Hidden layer sizes in a config: positive integers (a list is taken as a tuple)."""


# ----------------------------------------------------------------------------- conversions


def to_tensor(
    array: np.ndarray | float | Sequence[float], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A torch tensor of ``dtype`` holding ``array`` (no copy when the dtype already matches)."""
    return torch.as_tensor(np.asarray(array), dtype=dtype)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A numpy array with the values of ``tensor`` (detached, on the CPU)."""
    return tensor.detach().cpu().numpy()


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous number.

    Batched float arithmetic can round differently with a different thread count;
    pinning it makes inference give the same bits in this process and in Ray
    workers (which run with one thread).
    """
    previous = torch.get_num_threads()
    if previous == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ----------------------------------------------------------------------------- initialization


def init_linear(layer: nn.Linear, generator: torch.Generator, gain: float = HIDDEN_GAIN) -> None:
    """Orthogonal weights with ``gain`` and zero bias, drawn from ``generator``."""
    with torch.no_grad():
        nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()


def _linear(in_dim: int, out_dim: int, generator: torch.Generator, gain: float) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim, device="meta").to_empty(device="cpu")
    init_linear(layer, generator, gain)
    return layer


def mlp(
    in_dim: int,
    hidden_sizes: Sequence[int],
    out_dim: int,
    generator: torch.Generator,
    activation: type[nn.Module] = nn.Tanh,
    output_gain: float = 1.0,
) -> nn.Sequential:
    """A multilayer perceptron ``in_dim -> hidden_sizes... -> out_dim``, linear output.

    Hidden layers get ``activation`` and orthogonal weights with gain sqrt(2); the
    output layer gets gain ``output_gain``.

    Raises:
        ValueError: a non-positive size.
    """
    sizes = [in_dim, *hidden_sizes, out_dim]
    if any(int(s) < 1 for s in sizes):
        raise ValueError(f"mlp sizes must be positive, got {sizes}")
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [_linear(a, b, generator, HIDDEN_GAIN), activation()]
    layers.append(_linear(sizes[-2], sizes[-1], generator, output_gain))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- recurrent core


class GRUCore(nn.Module):
    """A one-layer GRU over batch-first sequences, with a single-step form for acting.

    Weights are orthogonal (gain 1, each of the three gate blocks separately), biases
    zero. States are ``(batch, hidden_size)`` tensors.
    """

    def __init__(self, input_size: int, hidden_size: int, generator: torch.Generator):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"GRUCore sizes must be positive, got input_size={input_size}, "
                f"hidden_size={hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True, device="meta")
        self.gru.to_empty(device="cpu")
        with torch.no_grad():
            for name, param in self.gru.named_parameters():
                if name.startswith("weight"):
                    for block in param.chunk(3, dim=0):
                        nn.init.orthogonal_(block, gain=1.0, generator=generator)
                else:
                    param.zero_()

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zeros of shape ``(batch, hidden_size)``."""
        return torch.zeros(batch, self.hidden_size)

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``inputs`` ``(B, T, input_size)`` from ``state`` (zeros when ``None``).

        Returns the outputs ``(B, T, hidden_size)`` and the last state ``(B, hidden_size)``.
        """
        h0 = None if state is None else state.unsqueeze(0).contiguous()
        outputs, h = self.gru(inputs, h0)
        return outputs, h.squeeze(0)

    def step(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One step: ``inputs`` ``(B, input_size)``, ``state`` ``(B, hidden)`` -> new state."""
        _, h = self.forward(inputs.unsqueeze(1), state)
        return h


# ----------------------------------------------------------------------------- Gaussian head


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Log density of a diagonal Gaussian at ``x``, summed over the last axis."""
    z = (x - mean) * torch.exp(-log_std)
    per_dim = -0.5 * z * z - log_std - 0.5 * math.log(2.0 * math.pi)
    return per_dim.sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian, summed over the last axis."""
    return (log_std + 0.5 * math.log(2.0 * math.pi * math.e)).sum(-1)


def gaussian_kl(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """KL(p || q) of diagonal Gaussians, summed over the last axis."""
    var_p = torch.exp(2 * log_std_p)
    var_q = torch.exp(2 * log_std_q)
    per_dim = log_std_q - log_std_p + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5
    return per_dim.sum(-1)


class GaussianHead(nn.Module):
    """Features -> mean of a diagonal Gaussian, with a state-independent learned log-std.

    Args:
        in_dim: feature size.
        action_dim: action size.
        generator: initialization randomness.
        hidden_sizes: hidden layers between the features and the mean (none: linear).
        init_std: the initial standard deviation (in the head's units).
        mean_gain: orthogonal gain of the mean layer (0.01: near-zero initial means).
        activation: the hidden layers' activation.

    Parameters: ``mean.<i>.weight`` / ``mean.<i>.bias`` (the ``nn.Sequential`` of
    ``mlp``) and ``log_std``. On observations (``in_dim`` the observation size) this is
    the Gaussian MLP policy of ProMP's ``MetaGaussianMLPPolicy``, with the package's
    initialization instead of ProMP's Xavier-uniform: the first actions are then
    zero-mean noise of ``init_std``.
    """

    def __init__(
        self,
        in_dim: int,
        action_dim: int,
        generator: torch.Generator,
        hidden_sizes: Sequence[int] = (),
        init_std: float = 1.0,
        mean_gain: float = 0.01,
        activation: type[nn.Module] = nn.Tanh,
    ):
        super().__init__()
        if not init_std > 0:
            raise ValueError(f"init_std must be positive, got {init_std!r}")
        self.mean = mlp(
            in_dim, hidden_sizes, action_dim, generator, activation, output_gain=mean_gain
        )
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean ``(..., action_dim)`` and the log-std broadcast to the same shape."""
        mean = self.mean(features)
        return mean, self.log_std.expand_as(mean)

    def action_std(self) -> float:
        """The mean standard deviation over the action dimensions (the ``action_std``
        metric)."""
        return float(torch.exp(self.log_std.detach()).mean())


# ----------------------------------------------------------------------------- action scaling


class ActionScaling:
    """Maps a ``Box`` action space to the unit box ``[-1, 1]^d`` that policies work in.

    ``to_env(u) = center + half_range * u``; ``to_unit`` is its inverse. For an
    unbounded ``Box`` both are the identity. The sampled actions are not clipped:
    environments clip (or saturate) what they apply.

    Raises:
        ValueError: the space is not a ``Box``, or is bounded on some axes only.
    """

    def __init__(self, space: spaces.Space[np.ndarray]):
        if not isinstance(space, spaces.Box):
            raise ValueError(f"action space must be a gymnasium.spaces.Box, got {space!r}")
        low = np.asarray(space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(space.high, dtype=np.float64).reshape(-1)
        bounded = np.isfinite(low) & np.isfinite(high)
        if bounded.any() and not bounded.all():
            raise ValueError(
                f"action space must be bounded on every axis or on none, got low={low}, high={high}"
            )
        self.bounded = bool(bounded.all())
        self.dim = low.size
        self.dtype = space.dtype
        center = (high + low) / 2 if self.bounded else np.zeros(self.dim)
        half = (high - low) / 2 if self.bounded else np.ones(self.dim)
        self.center = center.astype(np.float32)
        self.half_range = half.astype(np.float32)

    def to_env(self, unit: np.ndarray) -> np.ndarray:
        """Actions in the space's units from unit-box actions (same shape)."""
        return (self.center + self.half_range * unit).astype(self.dtype, copy=False)

    def to_unit(self, actions: np.ndarray) -> np.ndarray:
        """Unit-box actions (float32) from actions in the space's units."""
        return ((np.asarray(actions, dtype=np.float32) - self.center) / self.half_range).astype(
            np.float32, copy=False
        )
