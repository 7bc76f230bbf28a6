"""The Gaussian MLP policy the samplers run for the Markov agents (MAML-TRPO, ProMP, PPO).

``GaussianMLPPolicy`` is a ``Policy`` over a ``GaussianHead`` on observations (the
network of ``metarl.agents.networks``): it holds one or more parameter sets of that
network, chooses each row's by ``PolicyInput.trials`` (a gradient-based
meta-learner's per-task adapted parameters; one set for theta or for PPO) and runs
the network in numpy. The torch-free contract it implements is ``metarl.agents.policy``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from metarl.agents.networks import ActionScaling, GaussianHead
from metarl.agents.policy import PolicyInput, PolicyOutput

__all__ = ["GaussianMLPPolicy"]

_NUMPY_ACTIVATIONS: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.ReLU: "relu"}
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class GaussianMLPPolicy:
    """A ``Policy`` over a Gaussian MLP with one parameter set per task (or one for all).

    Args:
        network: the architecture, a ``GaussianHead`` on observations (its own
            parameter values are not used).
        params: parameter sets stacked on a leading axis ``(P, ...)``.
        scaling: the action space's scaling to the unit box.
        assignment: ``assignment[trial]`` is the parameter set of a collect call's
            trial ``trial`` (``PolicyInput.trials``); ``None``: set 0 for every trial.
        deterministic: act with the mean (no noise drawn), for evaluation.

    ``act`` samples ``mean + std * noise`` in the unit box with row ``i``'s noise from
    ``rngs[i]``, maps it to the action space (unclipped) and returns the
    ``log_prob`` of the stored action. Inference runs on one thread without gradients.
    """

    def __init__(
        self,
        network: GaussianHead,
        params: Mapping[str, torch.Tensor],
        scaling: ActionScaling,
        action_shape: tuple[int, ...],
        assignment: np.ndarray | None = None,
        deterministic: bool = False,
    ):
        self.network = network
        self.deterministic = deterministic
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.scaling = scaling
        self.action_shape = action_shape
        self.assignment = None if assignment is None else np.asarray(assignment, dtype=np.int64)
        sets = {len(v) for v in self.params.values()}
        if len(sets) != 1:
            raise ValueError(
                f"GaussianMLPPolicy params must share their leading axis, got sizes {sets}"
            )
        self.num_sets = sets.pop()
        self._numpy: list[tuple[str, np.ndarray | None, np.ndarray | None]] | None = None
        self._log_std: Any = None

    def initial_state(self, n: int) -> None:
        """Stateless: ``None``."""
        return None

    def _layers(self) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
        """The network as numpy arrays: ``(kind, weights, biases)``; weights ``(P, out, in)``
        with biases ``(P, out)``, or, with one parameter set, ``(in, out)`` (transposed,
        contiguous) with biases ``(out,)``. Also caches the log-stds (``_log_std``)."""
        if self._numpy is None:
            single = self.num_sets == 1
            layers: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
            for i, layer in enumerate(self.network.mean):
                if isinstance(layer, nn.Linear):
                    w = self.params[f"mean.{i}.weight"].numpy()
                    b = self.params[f"mean.{i}.bias"].numpy()
                    if single:
                        w, b = np.ascontiguousarray(w[0].T), b[0]
                    layers.append(("linear", w, b))
                elif type(layer) in _NUMPY_ACTIVATIONS:
                    layers.append((_NUMPY_ACTIVATIONS[type(layer)], None, None))
                else:
                    raise TypeError(f"GaussianMLPPolicy cannot run a {type(layer).__name__} layer")
            log_std = self.params["log_std"].numpy()
            self._log_std = log_std[0] if single else log_std
            self._numpy = layers
        return self._numpy

    def _distribution(self, sets: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(n, action_dim)`` and log-std (``(action_dim,)`` with one parameter set,
        else ``(n, action_dim)``) of each row's Gaussian, float32.

        In numpy: for the small MLPs of these agents and a few dozen rows, torch's fixed
        per-call overhead dominated a policy call, which samplers make at every step
        (``benchmarks/sampling_throughput.py`` measures the sampler with this policy).
        Same float32 arithmetic; results agree with the torch network to float32
        rounding (the agents recompute log-probs in torch and tolerate it).
        """
        h = obs
        single = self.num_sets == 1
        for kind, w, b in self._layers():
            if kind == "linear":
                assert w is not None and b is not None
                if single:
                    h = h @ w + b
                else:
                    h = np.matmul(w[sets], h[:, :, None])[:, :, 0] + b[sets]
            elif kind == "tanh":
                h = np.tanh(h)
            else:
                h = np.maximum(h, np.float32(0.0))
        return h, self._log_std if single else self._log_std[sets]

    def __getstate__(self) -> dict[str, Any]:
        # Views of the params, rebuilt on use.
        return {**self.__dict__, "_numpy": None, "_log_std": None}

    def act(
        self, inputs: PolicyInput, state: Any, rngs: Sequence[np.random.Generator]
    ) -> PolicyOutput:
        """One action per row from the row's parameter set.

        Raises:
            ValueError: ``len(rngs)`` differs from the number of rows, or a trial has no
                parameter set.
        """
        n = len(inputs.observations)
        if len(rngs) != n:
            raise ValueError(f"act got {len(rngs)} generators for {n} rows")
        trials = np.asarray(inputs.trials, dtype=np.int64)
        if self.assignment is None:
            sets = np.zeros(n, dtype=np.int64)
        else:
            if trials.min(initial=0) < 0 or trials.max(initial=0) >= len(self.assignment):
                bad = int(trials.min()) if trials.min(initial=0) < 0 else int(trials.max())
                raise ValueError(
                    "GaussianMLPPolicy has parameter sets for trials "
                    f"0..{len(self.assignment) - 1}, got trial {bad}"
                )
            sets = self.assignment[trials]
        obs = np.asarray(inputs.observations, dtype=np.float32).reshape(n, -1)
        mean, log_std = self._distribution(sets, obs)
        if self.deterministic:
            unit = mean
        else:
            noise = np.empty((n, self.scaling.dim))
            for row, rng in zip(noise, rngs, strict=True):
                rng.standard_normal(out=row)
            unit = mean + np.exp(log_std) * noise.astype(np.float32)
        actions = self.scaling.to_env(unit)
        stored = self.scaling.to_unit(actions)
        z = (stored - mean) * np.exp(-log_std)
        log_prob = (-0.5 * z * z - log_std - np.float32(_HALF_LOG_2PI)).sum(-1)
        return PolicyOutput(
            actions=actions.reshape(n, *self.action_shape),
            state=None,
            infos={"log_prob": log_prob.astype(np.float32, copy=False)},
        )
