"""Running an exported policy with ONNX Runtime, without PyTorch.

An exported policy (``metarl.sim2real.export``) is one ONNX graph of a control step:

- inputs ``observation`` ``(n, obs_dim)``, ``prev_action`` ``(n, action_dim)`` (in
  the action space's units), ``prev_reward`` ``(n, 1)``, ``episode_start`` ``(n, 1)``
  and ``state`` ``(n, state_dim)``; a graph keeps only those its policy reads (a
  Markov policy: the observation);
- outputs ``action`` ``(n, action_dim)`` (the policy's mean action, in the action
  space's units, unclipped: the robot's safety layer bounds it) and, for a recurrent
  policy, ``state_out``;
- metadata (``metarl.*``): the agent, the state size (0 for a Markov policy), the
  observation and action sizes, the action bounds trained with (``check_spaces``
  compares them with a robot's).

``OnnxPolicy`` keeps what a step needs between calls (the recurrent state, the
previous action and reward, whether an episode starts), so that a deployment loop is
``action = policy(obs)`` then ``policy.observe(reward)``; ``start_episode`` and
``start_trial`` mark the boundaries (a meta-RL agent's memory lasts a trial of
several episodes). ``run_episode`` runs it on a Gymnasium env (a ``RealRobotEnv``).
Nothing here imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxPolicy", "load_policy", "run_episode"]

INPUTS = ("observation", "prev_action", "prev_reward", "episode_start", "state")


class OnnxPolicy:
    """An exported policy (module docstring).

    Raises:
        ValueError: a file that is not a metarl policy export (no ``metarl.agent``
            metadata, or inputs other than ``INPUTS``).
    """

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one control step is tiny: no thread hand-off
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "metarl.agent" not in meta:
            raise ValueError(f"{path} is not a metarl policy export (no metarl.agent metadata)")
        self.agent = meta["metarl.agent"]
        self.state_dim = int(meta["metarl.state_dim"])
        self.action_dim = int(meta["metarl.action_dim"])
        self.obs_dim = int(meta["metarl.obs_dim"])
        self.action_low = np.array(json.loads(meta["metarl.action_low"]))
        self.action_high = np.array(json.loads(meta["metarl.action_high"]))
        self.inputs = [i.name for i in self.session.get_inputs()]
        unknown = sorted(set(self.inputs) - set(INPUTS))
        if unknown:
            raise ValueError(f"{path}: unknown inputs {unknown}; a policy takes {list(INPUTS)}")
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.start_trial()

    def start_trial(self) -> None:
        """Forget everything (a new task: the recurrent state back to zeros)."""
        self.state = np.zeros((1, self.state_dim), dtype=np.float32)
        self.prev_action = np.zeros((1, self.action_dim), dtype=np.float32)
        self.prev_reward = np.zeros((1, 1), dtype=np.float32)
        self.start_episode()

    def start_episode(self) -> None:
        """The next observation is an episode's first (the memory is kept)."""
        self.episode_start = np.ones((1, 1), dtype=np.float32)

    def step(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batched step: ``feeds`` holds (at least) the graph's inputs."""
        results = self.session.run(None, {k: feeds[k] for k in self.inputs})
        return dict(zip(self.outputs, results, strict=True))

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """The action for ``observation`` (one row); updates the recurrent state."""
        feeds = {
            "observation": np.asarray(observation, dtype=np.float32).reshape(1, -1),
            "prev_action": self.prev_action,
            "prev_reward": self.prev_reward,
            "episode_start": self.episode_start,
            "state": self.state,
        }
        out = self.step(feeds)
        if "state_out" in out:
            self.state = out["state_out"]
        action = out["action"][0]
        self.prev_action = action.reshape(1, -1).astype(np.float32)
        self.episode_start = np.zeros((1, 1), dtype=np.float32)
        return action

    def check_spaces(self, observation_space: Any, action_space: Any) -> None:
        """Raise ``ValueError`` if the robot's spaces are not the ones trained on (sizes
        and action bounds)."""
        obs_dim = int(np.prod(observation_space.shape))
        act_dim = int(np.prod(action_space.shape))
        if (obs_dim, act_dim) != (self.obs_dim, self.action_dim):
            raise ValueError(
                f"the policy takes {self.obs_dim} observations and gives {self.action_dim} "
                f"actions; the robot has {obs_dim} and {act_dim}"
            )
        low, high = np.ravel(action_space.low), np.ravel(action_space.high)
        if not (np.allclose(low, self.action_low) and np.allclose(high, self.action_high)):
            raise ValueError(
                f"the policy was trained for actions in [{self.action_low.tolist()}, "
                f"{self.action_high.tolist()}]; the robot takes [{low.tolist()}, {high.tolist()}]"
            )

    def observe(self, reward: float, command: np.ndarray | None = None) -> None:
        """The reward that followed the last action (a meta-RL agent's input) and, where
        known, the command as the robot got it (after its safety layer), which becomes
        the previous action of the next step."""
        self.prev_reward = np.full((1, 1), reward, dtype=np.float32)
        if command is not None:
            self.prev_action = np.asarray(command, dtype=np.float32).reshape(1, -1)


def load_policy(path: str | Path) -> OnnxPolicy:
    """The exported policy in the file ``path``.

    Raises:
        ValueError: no such file, a file ONNX Runtime cannot read (its message given),
            or an ONNX model that is not a metarl policy export.
    """
    if not Path(path).is_file():
        raise ValueError(f"no file {path}")
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidProtobuf

    try:
        return OnnxPolicy(path)
    except (Fail, InvalidProtobuf) as err:
        raise ValueError(f"{path} is not an ONNX model ONNX Runtime can run: {err}") from None


def run_episode(env: Any, policy: OnnxPolicy, seed: int | None = None) -> tuple[float, int]:
    """One episode of ``policy`` on ``env`` (the trial goes on: call
    ``policy.start_trial()`` for a new task). Returns the return and the steps."""
    obs, _ = env.reset(seed=seed)
    policy.start_episode()
    total, steps = 0.0, 0
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action.astype(env.action_space.dtype))
        policy.observe(float(reward), info.get("command"))
        total += float(reward)
        steps += 1
        if terminated or truncated:
            return total, steps
