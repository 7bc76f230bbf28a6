"""An agent's deterministic control step as one torch module: what an agent offers for
export (``metarl.sim2real.export`` writes it to ONNX and checks it against the agent).

An agent that can run without PyTorch implements ``control_step()`` (the
``ExportableAgent`` protocol) returning a ``ControlStep``: the module, the names of
its inputs and outputs, the sizes the exported file declares, and the agent's own
policy acting as the module should (the mean action), which the export is checked
against. Agents whose adaptation needs PyTorch at run time (MAML's gradient steps,
PEARL's posterior over contexts) do not implement it.

Input names: ``observation``; a recurrent step adds ``prev_action`` (in the action
space's units), ``prev_reward``, ``episode_start`` and ``state``. Output names:
``action`` (in the action space's units); a recurrent step adds ``state_out``. Every
tensor is float32 with a leading batch axis.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from metarl.agents.networks import ActionScaling
from metarl.agents.policy import Policy

__all__ = ["ControlStep", "ExportableAgent", "MarkovStep"]


class ControlStep(NamedTuple):
    """An agent's control step for export.

    - ``module``: inputs -> outputs (module docstring), in evaluation mode or not;
    - ``inputs`` / ``outputs``: the names, in the module's argument / result order;
    - ``obs_dim``, ``action_dim``, ``state_dim``: sizes (``state_dim`` 0: Markov);
    - ``scaling``: the action space's bounds (``ActionScaling``);
    - ``policy``: the agent's ``Policy`` acting with the mean action when its noise is
      zero, the reference the export is checked against;
    - ``observation_mean`` / ``observation_std``: where observations the policy has
      seen lie, ``(obs_dim,)``: a check draws them as ``mean + std * N(0, 1)``.
    """

    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    obs_dim: int
    action_dim: int
    state_dim: int
    scaling: ActionScaling
    policy: Policy
    observation_mean: np.ndarray
    observation_std: np.ndarray


@runtime_checkable
class ExportableAgent(Protocol):
    """An agent whose control step runs without PyTorch once exported."""

    def control_step(self) -> ControlStep:
        """The current deterministic control step (a copy: later training leaves it)."""
        ...


class MarkovStep(nn.Module):
    """``observation -> action``: a mean network on observations, mapped from the unit
    box to the action space (``center + half_range * mean``, unclipped, as the
    samplers' actions)."""

    action_center: torch.Tensor
    action_half: torch.Tensor

    def __init__(self, mean: nn.Module, center: np.ndarray, half: np.ndarray):
        super().__init__()
        self.mean = mean
        self.register_buffer("action_center", torch.from_numpy(np.asarray(center, np.float32)))
        self.register_buffer("action_half", torch.from_numpy(np.asarray(half, np.float32)))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """The action ``(batch, action_dim)`` for observations ``(batch, obs_dim)``."""
        return self.action_center + self.action_half * self.mean(observation)
