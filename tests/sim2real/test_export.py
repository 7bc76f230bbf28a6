"""ONNX export: the file agrees with the agent, runs on a robot env without PyTorch,
keeps a meta-RL agent's memory; unsupported agents and disagreement are refused."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.agents.ppo import PPOAgent
from metarl.agents.rl2 import RL2Agent
from metarl.sim2real import export as export_module
from metarl.sim2real.export import ExportMismatch, export_policy
from metarl.sim2real.onnx_policy import OnnxPolicy

ENV = "InvertedPendulum-v5"


def spaces() -> tuple[gym.Space, gym.Space]:  # type: ignore[type-arg]
    env = gym.make(ENV)
    return env.observation_space, env.action_space


def test_a_ppo_policy_exports_and_runs_on_a_robot_without_torch(tmp_path: Path) -> None:
    agent = PPOAgent(*spaces())
    agent.obs_stats.update(np.random.default_rng(0).normal(1.0, 2.0, (50, 4)))  # folded in
    differences = export_policy(agent, tmp_path / "ppo.onnx")
    assert differences["action"] < 1e-5
    policy = OnnxPolicy(tmp_path / "ppo.onnx")
    assert policy.agent == "PPOAgent" and policy.inputs == ["observation"]
    policy.check_spaces(*spaces())  # the spaces it was trained for
    cheetah = gym.make("HalfCheetah-v5")
    with pytest.raises(ValueError, match="takes 4 observations and gives 1 actions"):
        policy.check_spaces(cheetah.observation_space, cheetah.action_space)
    wider = gym.spaces.Box(-6.0, 6.0, (1,), np.float32)
    with pytest.raises(ValueError, match="trained for actions in"):
        policy.check_spaces(spaces()[0], wider)
    model = tmp_path / "ppo.onnx"
    script = f"""
import sys
sys.modules["torch"] = None  # any import of torch fails
from metarl.sim2real.onnx_policy import OnnxPolicy, run_episode
from metarl.sim2real.robot import RealRobotEnv
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.targets import load_target_config
robot = SimulatedRobot(load_target_config({{"env": "{ENV}"}}))
env = RealRobotEnv(robot, hz=2000, max_episode_steps=20)
print(run_episode(env, OnnxPolicy(r"{model}"), seed=0))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    ret, steps = eval(out.stdout.strip().splitlines()[-1])
    assert 1 <= steps <= 20 and ret > 0


def test_an_rl2_export_keeps_its_memory_across_episodes_of_a_trial(tmp_path: Path) -> None:
    agent = RL2Agent(*spaces())
    differences = export_policy(agent, tmp_path / "rl2.onnx")
    assert max(differences.values()) < 1e-5
    policy = OnnxPolicy(tmp_path / "rl2.onnx")
    assert policy.state_dim == agent.config.hidden_size
    obs = np.array([0.0, 0.05, 0.0, 0.0], np.float32)
    first = policy(obs)
    assert np.any(policy.state != 0)  # the GRU state moved
    policy.observe(1.0)
    policy.start_episode()
    again = policy(obs)  # same observation, but the trial's memory differs
    assert not np.allclose(first, again)
    policy.start_trial()
    np.testing.assert_allclose(policy(obs), first, atol=1e-6)  # a new trial forgets


def test_agents_that_need_torch_are_refused(tmp_path: Path) -> None:
    from metarl.agents.maml_trpo import MAMLTRPOAgent

    with pytest.raises(TypeError, match="exportable: PPOAgent .* RL2Agent"):
        export_policy(MAMLTRPOAgent(*spaces()), tmp_path / "maml.onnx")


def test_export_takes_any_agent_with_a_control_step(tmp_path: Path) -> None:
    """The export knows no agent class: an agent outside the registry that offers
    ``control_step()`` (a Markov Gaussian MLP here) is exported and checked."""
    import copy

    import torch

    from metarl.agents.control_step import ControlStep, MarkovStep
    from metarl.agents.mlp_policy import GaussianMLPPolicy
    from metarl.agents.networks import ActionScaling, GaussianHead

    observation_space, action_space = spaces()

    class MarkovAgent:
        def __init__(self) -> None:
            generator = torch.Generator().manual_seed(0)
            self.network = GaussianHead(4, 1, generator, (8,), mean_gain=1.0)
            self.scaling = ActionScaling(action_space)

        def control_step(self) -> ControlStep:
            params = {k: v.detach().unsqueeze(0) for k, v in self.network.named_parameters()}
            scaling = self.scaling
            return ControlStep(
                MarkovStep(copy.deepcopy(self.network.mean), scaling.center, scaling.half_range),
                inputs=("observation",),
                outputs=("action",),
                obs_dim=4,
                action_dim=1,
                state_dim=0,
                scaling=scaling,
                policy=GaussianMLPPolicy(self.network, params, scaling, (1,), deterministic=True),
                observation_mean=np.zeros(4),
                observation_std=np.ones(4),
            )

    differences = export_policy(MarkovAgent(), tmp_path / "markov.onnx")
    assert differences["action"] < 1e-5
    policy = OnnxPolicy(tmp_path / "markov.onnx")
    assert policy.agent == "MarkovAgent"
    policy.check_spaces(observation_space, action_space)


def test_a_disagreeing_export_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "check_export", lambda agent, path: {"action": 0.5})
    with pytest.raises(ExportMismatch, match="differ by"):
        export_policy(PPOAgent(*spaces()), tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []  # neither bad.onnx nor a bad.onnx.data


def test_a_failed_export_leaves_an_earlier_export_at_its_path_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.onnx"
    export_policy(PPOAgent(*spaces()), path)
    good = path.read_bytes()
    monkeypatch.setattr(export_module, "check_export", lambda agent, path: {"action": 0.5})
    with pytest.raises(ExportMismatch, match="nothing written"):
        export_policy(PPOAgent(*spaces()), path)
    assert path.read_bytes() == good
    assert list(tmp_path.iterdir()) == [path]


def test_a_foreign_onnx_file_is_named(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(ValueError, match="not a metarl policy export"):
        OnnxPolicy(tmp_path / "other.onnx")


def test_an_export_is_one_file_and_a_markov_policy_has_no_state(tmp_path: Path) -> None:
    import onnx

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    registry = logging.getLogger(export_module._REGISTRY_LOGGER)
    keep = Keep()
    registry.addHandler(keep)
    try:
        export_policy(PPOAgent(*spaces()), tmp_path / "ppo.onnx")
    finally:
        registry.removeHandler(keep)
    assert [p.name for p in tmp_path.iterdir()] == ["ppo.onnx"]  # no ppo.onnx.data
    assert not [m for m in seen if "torchvision" in m]
    meta = {p.key: p.value for p in onnx.load(tmp_path / "ppo.onnx").metadata_props}
    assert meta["metarl.state_dim"] == "0"
    policy = OnnxPolicy(tmp_path / "ppo.onnx")
    assert policy.state_dim == 0 and policy(np.zeros(4, np.float32)).shape == (1,)


def test_a_failed_check_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(agent: object, path: Path) -> dict[str, float]:
        raise RuntimeError("onnxruntime refused the file")

    monkeypatch.setattr(export_module, "check_export", broken)
    with pytest.raises(RuntimeError, match="refused"):
        export_policy(RL2Agent(*spaces()), tmp_path / "rl2.onnx")
    assert list(tmp_path.iterdir()) == []
