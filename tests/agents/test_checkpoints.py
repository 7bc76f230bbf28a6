"""Agent checkpoints do not depend on where the agents' classes live.

``data/agent_checkpoints_0e10b29.pt`` holds the ``state_dict()`` of tiny PPO,
MAML-TRPO, ProMP and RL2 agents and the actions of their policies on fixed inputs,
written by the code of commit 0e10b29 (before the agents' modules were renamed:
``maml.py``, ``dr_ppo.py``, ``GaussianMLP``). A run folder's checkpoint holds these
state dicts (tensors, arrays, plain values), so an old run resumes or evaluates if
they load.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from metarl.agents.maml_trpo import MAMLTRPOAgent, MAMLTRPOConfig
from metarl.agents.pearl import PEARLAgent, PEARLConfig
from metarl.agents.policy import PolicyInput
from metarl.agents.ppo import PPOAgent, PPOConfig
from metarl.agents.promp import ProMPAgent, ProMPConfig
from metarl.agents.rl2 import RL2Agent, RL2Config

FIXTURE = Path(__file__).parent / "data" / "agent_checkpoints_0e10b29.pt"
OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)


def _agents(seed: int) -> dict[str, Any]:
    """Agents of the fixture's shapes (the fixture's were built with seeds 1 to 4)."""
    return {
        "ppo": PPOAgent(OBS, ACT, PPOConfig(seed=seed, hidden_sizes=(4,))),
        "maml_trpo": MAMLTRPOAgent(OBS, ACT, MAMLTRPOConfig(seed=seed, hidden_sizes=(4,))),
        "promp": ProMPAgent(OBS, ACT, ProMPConfig(seed=seed, hidden_sizes=(4,))),
        "rl2": RL2Agent(OBS, ACT, RL2Config(seed=seed, hidden_size=4)),
    }


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return bool(a == b)


@pytest.mark.parametrize("name", ["ppo", "maml_trpo", "promp", "rl2"])
def test_a_checkpoint_written_before_the_modules_moved_loads_and_acts_the_same(
    name: str,
) -> None:
    saved = torch.load(FIXTURE, map_location="cpu", weights_only=False)
    agent = _agents(seed=10)[name]
    state = saved["states"][name]
    assert not _equal(agent.state_dict()["network"], state["network"])  # a real change
    agent.load_state_dict(state)
    assert _equal(agent.state_dict()["network"], state["network"])
    inputs = PolicyInput(**saved["inputs"])
    policy = agent.policy()
    n = len(inputs.observations)
    start = policy.initial_state(n)
    start = None if start is None else start + 0.1
    out = policy.act(inputs, start, [np.random.default_rng(i) for i in range(n)])
    np.testing.assert_array_equal(out.actions, saved["actions"][name])


def _pickled_globals(obj: Any) -> set[str]:
    """The ``module name`` of every class or function ``torch.save`` pickles for ``obj``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(buffer) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("data.pkl")]
        data = archive.read(name)
    return {str(arg) for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def test_agent_checkpoints_pickle_no_class_of_the_agents_package() -> None:
    agents = _agents(seed=0)
    agents["pearl"] = PEARLAgent(
        OBS,
        ACT,
        PEARLConfig(hidden_sizes=(4,), encoder_hidden_sizes=(4,), replay_buffer_size=10),
    )
    for name, agent in agents.items():
        found = _pickled_globals(agent.state_dict())
        assert found and not [g for g in found if g.startswith("metarl.agents")], (name, found)
