"""Exporting a trained policy to ONNX, checked against PyTorch.

``export_policy(agent, path)`` writes the agent's deterministic control step (its
``control_step()``, ``metarl.agents.control_step``) as one ONNX graph (the
interface of ``metarl.sim2real.onnx_policy``), with PyTorch's
exporter (``torch.onnx.export``, the ``torch.export``-based one), then runs the file
with ONNX Runtime and the agent's own policy (its ``act``, the noise set to zero) on
the same random inputs and compares: a difference above ``tolerance`` raises, so no
export that disagrees with the agent is left behind (nor one whose export or check
failed). The file is self-contained (the weights inline, no ``.onnx.data`` beside it)
and carries the ``metarl.*`` metadata ``OnnxPolicy`` reads.

Any agent that implements ``control_step()`` (the ``ExportableAgent`` protocol) exports
through this module unchanged; what its graph takes and returns is said by its
``control_step`` (a Markov policy takes the observation and has no recurrent state,
``metarl.state_dim`` 0; a recurrent one also takes the previous action and reward, the
episode-start flag and its state, and returns the new state). An agent without one
raises ``TypeError`` naming the registered agents that have one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.agent_registry import AGENTS
from metarl.agents.control_step import ControlStep, ExportableAgent
from metarl.agents.policy import PolicyInput

__all__ = ["ExportMismatch", "check_export", "export_policy"]

# Where torch.onnx logs the operators its registry skips (torch 2.13).
_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


class ExportMismatch(RuntimeError):
    """ONNX Runtime and the agent's policy disagree on the check's inputs."""


def _control_step(agent: Any) -> ControlStep:
    """The agent's ``control_step()``.

    Raises:
        TypeError: the agent has none; the message names the registered agents that do.
    """
    if isinstance(agent, ExportableAgent):
        return agent.control_step()
    exportable = sorted(
        (entry.agent_class().__name__, name)
        for name, entry in AGENTS.items()
        if hasattr(entry.agent_class(), "control_step")
    )
    names = ", ".join(f"{cls} (agent: {name})" for cls, name in exportable)
    raise TypeError(
        f"export_policy: {type(agent).__name__} cannot run without PyTorch; exportable: {names}"
    )


def _sample_feeds(
    step: ControlStep, n: int, seed: int, state_dim: int, action_dim: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    scaling = step.scaling
    mean, std = step.observation_mean, step.observation_std
    return {
        "observation": (mean + std * rng.normal(0.0, 1.0, (n, step.obs_dim))).astype(np.float32),
        "prev_action": (
            scaling.center + scaling.half_range * rng.uniform(-1.2, 1.2, (n, action_dim))
        ).astype(np.float32),
        "prev_reward": rng.normal(0.0, 1.0, (n, 1)).astype(np.float32),
        "episode_start": (rng.uniform(size=(n, 1)) < 0.3).astype(np.float32),
        "state": rng.normal(0.0, 0.5, (n, state_dim)).astype(np.float32),
    }


class _NoNoise:
    """A generator stand-in whose normal draws are zeros: the policy's mean action."""

    def standard_normal(self, size: Any = None) -> np.ndarray:
        return np.zeros(size)


def _agent_step(step: ControlStep, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The agent's own policy (``act``, no noise) on ``feeds``."""
    n = len(feeds["observation"])
    policy = step.policy
    state = feeds["state"] if step.state_dim else None
    inputs = PolicyInput(
        feeds["observation"],
        feeds["prev_action"],
        feeds["prev_reward"][:, 0],
        feeds["episode_start"][:, 0].astype(bool),
        np.ones(n, dtype=bool),
        np.arange(n, dtype=np.int64),
    )
    no_noise: Any = [_NoNoise() for _ in range(n)]
    out = policy.act(inputs, state, no_noise)
    result = {"action": np.asarray(out.actions, dtype=np.float64).reshape(n, -1)}
    if out.state is not None:
        result["state_out"] = np.asarray(out.state, dtype=np.float64)
    return result


def check_export(
    agent: Any, path: str | Path, samples: int = 64, seed: int = 0
) -> dict[str, float]:
    """Largest absolute difference, per output, between ONNX Runtime running ``path``
    and the agent's policy on ``samples`` random inputs."""
    from metarl.sim2real.onnx_policy import OnnxPolicy

    runner = OnnxPolicy(path)
    step = _control_step(agent)
    feeds = _sample_feeds(step, samples, seed, runner.state_dim, runner.action_dim)
    onnx_out = runner.step(feeds)
    torch_out = _agent_step(step, feeds)
    return {k: float(np.abs(onnx_out[k] - torch_out[k]).max()) for k in torch_out}


def export_policy(agent: Any, path: str | Path, tolerance: float = 1e-4) -> dict[str, float]:
    """Write ``agent``'s control step to ``path`` (ONNX) and check it (module
    docstring); returns the check's largest differences.

    Raises:
        TypeError: an agent that cannot be exported.
        ValueError: ``path`` is a folder.
        ExportMismatch: ONNX Runtime and the agent differ by more than ``tolerance``.

    The file is written and checked under a temporary name beside ``path`` and moved to
    ``path`` only when the check passes: after any failure nothing is left of it, and a
    file that was at ``path`` before is untouched.
    """
    import onnx

    step = _control_step(agent)
    module = step.module.eval()
    feeds = _sample_feeds(step, 2, 0, step.state_dim, step.action_dim)
    args = tuple(torch.from_numpy(feeds[name]) for name in step.inputs)
    batch = torch.export.Dim("batch")
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"export_policy: {path} is a folder; give the file to write "
            f"(e.g. {path / 'policy.onnx'})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    final, path = path, path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        # The exporter reports its progress and its own deprecations on stdout/warnings.
        quiet = contextlib.redirect_stdout(io.StringIO())
        with torch.no_grad(), quiet, warnings.catch_warnings(), _no_torchvision_notices():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                external_data=False,  # the weights inline: one self-contained file
                input_names=list(step.inputs),
                output_names=list(step.outputs),
                dynamic_shapes=tuple({0: batch} for _ in step.inputs),
                verbose=False,
            )
        model = onnx.load(str(path))
        scaling = step.scaling
        low = scaling.center - scaling.half_range
        high = scaling.center + scaling.half_range
        for key, value in {
            "metarl.agent": type(agent).__name__,
            "metarl.state_dim": str(step.state_dim),
            "metarl.action_dim": str(step.action_dim),
            "metarl.obs_dim": str(feeds["observation"].shape[1]),
            "metarl.action_low": json.dumps([float(x) for x in low]),
            "metarl.action_high": json.dumps([float(x) for x in high]),
        }.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))
        differences = check_export(agent, path)
        if not max(differences.values()) <= tolerance:  # NaN fails too
            raise ExportMismatch(
                f"export_policy: ONNX Runtime and {type(agent).__name__} differ by "
                f"{differences} (tolerance {tolerance}); nothing written"
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    os.replace(path, final)
    return differences


class _DropTorchvisionNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")


@contextlib.contextmanager
def _no_torchvision_notices() -> Iterator[None]:
    """Drop the exporter's "torchvision is not installed. Skipping torchvision::<op>"
    warnings (one per torchvision operator, at every export): the ONNX registry of
    ``torch.onnx`` looks up onnxscript's torchvision translations, which a policy never
    uses; torchvision is not a dependency. Its other messages pass."""
    logger = logging.getLogger(_REGISTRY_LOGGER)
    notice = _DropTorchvisionNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)
