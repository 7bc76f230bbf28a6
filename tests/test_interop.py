"""metarl's environments and wrappers used from the tools its users already run.

Each test takes a route the README's "Using metarl from ..." section gives and checks
that it runs what it says: Stable-Baselines3 (its checker, vector envs in processes of
their own, PPO and ``evaluate_policy``), Gymnasium's wrappers and vector envs, Minari
(a dataset loaded and its environment recovered in a fresh process) and ONNX
(``onnx.checker`` and onnxruntime on exported policies). RLlib's routes (a ``metarl/``
id, ``register_rllib_env``, ``"metarl:metarl/<id>"``) are trained in
``tests/test_rllib.py``, one test per route, in the suite's Ray group.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import (
    PhysicsParam,
    PhysicsRandomization,
    Uniform,
    get_task,
    get_tasks,
    sample_tasks,
    set_task,
    set_tasks,
)
from metarl.envs.effects import apply_effects
from metarl.envs.wrappers import MultiTaskEnv, TaskInObservation
from metarl.tasks import PhysicsTask

POINT = "metarl/PointRobot-v0"
TORSO = {"torso_mass": PhysicsParam("body_mass", elements=["torso"], dist=Uniform(0.5, 2.0))}


def _randomized_hopper() -> gym.Env[Any, Any]:
    return PhysicsRandomization(gym.make("Hopper-v5"), TORSO)


def _nominal_torso_mass() -> float:
    return float(gym.make("Hopper-v5").unwrapped.model.body("torso").mass[0])


def _point_tasks(n: int, seed: int = 0) -> list[Any]:
    return sample_tasks(gym.make(POINT), n, np.random.default_rng(seed))


# -- Stable-Baselines3 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: gym.make(POINT),
        lambda: MultiTaskEnv(gym.make(POINT), _point_tasks(4)),
        lambda: TaskInObservation(MultiTaskEnv(gym.make(POINT), _point_tasks(4))),
        _randomized_hopper,
        lambda: apply_effects(
            gym.make("metarl/HalfCheetahVel-v0"),
            [{"name": "action_delay", "steps": 1}, {"name": "observation_noise", "std": 0.01}],
        ),
    ],
    ids=["task env", "multitask", "oracle", "physics", "effects"],
)
def test_stable_baselines3_checker_accepts_task_envs_and_wrappers(build: Any) -> None:
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3 warns of what it would not train well on
        # but for the point robots' action range, +-0.1 as in PEARL, not SB3's advice of +-1
        warnings.filterwarnings("ignore", "We recommend you to use a symmetric and normalized")
        check_env(build(), warn=True)


def test_stable_baselines3_trains_and_evaluates_on_tasks_set_in_subprocesses() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import SubprocVecEnv

    train = _point_tasks(4)
    # "metarl:" makes Gymnasium import metarl in SubprocVecEnv's fresh processes.
    envs = make_vec_env(
        "metarl:" + POINT,
        n_envs=2,
        vec_env_cls=SubprocVecEnv,
        wrapper_class=MultiTaskEnv,
        wrapper_kwargs={"tasks": [t.to_dict() for t in train]},
        seed=0,
    )
    try:
        model = PPO("MlpPolicy", envs, n_steps=32, batch_size=32, n_epochs=1, seed=0)
        model.learn(64)
        mean, std = evaluate_policy(model, envs, n_eval_episodes=2)
        assert np.isfinite(mean) and np.isfinite(std)
        fixed = [train[2], train[0]]
        set_tasks(envs, fixed)  # fixes each MultiTaskEnv's task until resume_resampling
        assert get_tasks(envs) == fixed
        envs.reset()
        for info, task in zip(envs.reset_infos, fixed, strict=True):
            np.testing.assert_array_equal(info["task_features"], task.features())
    finally:
        envs.close()


def test_physics_randomization_in_stable_baselines3_subprocesses_runs_what_it_reports() -> None:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    envs = make_vec_env(_randomized_hopper, n_envs=2, vec_env_cls=SubprocVecEnv, seed=3)
    try:
        envs.reset()
        models = envs.env_method("get_wrapper_attr", "model")
        nominal = _nominal_torso_mass()
        draws = [info["physics"]["torso_mass"] for info in envs.reset_infos]
        assert draws[0] != draws[1]
        for model, draw in zip(models, draws, strict=True):
            assert model.body("torso").mass[0] == pytest.approx(nominal * draw, rel=1e-12)
    finally:
        envs.close()


# -- Gymnasium ------------------------------------------------------------------------------


def test_gymnasiums_wrappers_keep_the_task_api() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.wrappers.RecordEpisodeStatistics(gym.make("metarl/HalfCheetahVel-v0"))
    task = sample_tasks(env, 1, np.random.default_rng(3))[0]
    set_task(env, task)
    assert get_task(env) == task == get_task(env.unwrapped)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*is different from the unwrapped version")
        check_env(env, skip_render_check=True)
    assert get_task(env) == task  # the checker's resets keep it
    clipped = gym.wrappers.ClipAction(env)
    # NormalizeObservation: a wrapper with state of its own
    normalized = gym.wrappers.NormalizeObservation(clipped)
    other = sample_tasks(normalized, 1, np.random.default_rng(4))[0]
    set_task(normalized, other)
    assert get_task(env.unwrapped) == other


def test_async_vector_env_with_physics_randomization_runs_what_it_reports() -> None:
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    envs = gym.make_vec(
        "Hopper-v5",
        num_envs=2,
        vectorization_mode="async",
        wrappers=[functools.partial(PhysicsRandomization, params=TORSO)],
    )
    wrapped = RecordEpisodeStatistics(envs)
    try:
        nominal = _nominal_torso_mass()
        _, info = wrapped.reset(seed=[3, 4])
        draws = info["physics"]["torso_mass"]
        models = envs.call("get_wrapper_attr", "model")
        for model, draw in zip(models, draws, strict=True):
            assert model.body("torso").mass[0] == pytest.approx(nominal * draw, rel=1e-12)
        fixed = [PhysicsTask({"torso_mass": 1.5}), PhysicsTask({"torso_mass": 0.7})]
        set_tasks(wrapped, fixed)
        assert get_tasks(wrapped) == fixed
        models = envs.call("get_wrapper_attr", "model")
        masses = [m.body("torso").mass[0] for m in models]
        assert masses == pytest.approx([1.5 * nominal, 0.7 * nominal], rel=1e-12)
    finally:
        wrapped.close()


# -- Minari ---------------------------------------------------------------------------------

RECOVER = """
import json, sys
import minari
dataset = minari.load_dataset(sys.argv[1])
env = dataset.recover_environment()
layers, layer = [], env
while hasattr(layer, "env"):
    layers.append(type(layer).__name__)
    layer = layer.env
metadata = list(dataset.storage.get_episode_metadata(dataset.episode_indices))
tasks = [m["metarl.task"] for m in metadata]
print(json.dumps({"id": env.spec.id, "layers": layers, "tasks": tasks,
                  "episodes": dataset.total_episodes, "steps": dataset.total_steps}))
"""


def test_a_dataset_of_a_wrapped_task_env_recovers_it_in_a_fresh_process(tmp_path: Path) -> None:
    from metarl.sim2real.recording import Recorder, save_dataset

    env = Recorder(
        apply_effects(
            gym.make("metarl/HalfCheetahVel-v0", max_episode_steps=5),
            [{"name": "observation_noise", "std": 0.01}],
        )
    )
    tasks = sample_tasks(env, 2, np.random.default_rng(0))
    for seed, task in enumerate(tasks):
        set_task(env, task)
        env.reset(seed=seed)
        done = False
        while not done:
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    save_dataset(env, "sim/cheetah-vel-v0", tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", RECOVER, "sim/cheetah-vel-v0"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MINARI_DATASETS_PATH": str(tmp_path)},
        cwd=tmp_path,  # not the repository: metarl comes from the installed package
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["id"] == "metarl/HalfCheetahVel-v0"
    assert "ObservationNoise" in got["layers"]
    assert [json.loads(t) for t in got["tasks"]] == [t.to_dict() for t in tasks]
    assert (got["episodes"], got["steps"]) == (2, 10)


# -- ONNX -----------------------------------------------------------------------------------


@pytest.mark.parametrize("agent_name", ["ppo", "rl2"])
def test_exports_pass_onnx_checker_and_run_in_onnxruntime(tmp_path: Path, agent_name: str) -> None:
    import onnx
    import onnxruntime

    from metarl.agents.ppo import PPOAgent
    from metarl.agents.rl2 import RL2Agent
    from metarl.sim2real.export import export_policy

    env = gym.make("metarl/HalfCheetahVel-v0")
    cls = PPOAgent if agent_name == "ppo" else RL2Agent
    agent = cls(env.observation_space, env.action_space)
    path = tmp_path / "policy.onnx"
    export_policy(agent, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    metadata = {p.key: p.value for p in model.metadata_props}
    expected_state = "0" if agent_name == "ppo" else str(agent.config.hidden_size)
    assert metadata["metarl.state_dim"] == expected_state
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for node in session.get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in node.shape]
        feeds[node.name] = np.zeros(shape, np.float32)
    outputs = session.run(None, feeds)
    assert all(np.all(np.isfinite(o)) for o in outputs)
