"""Recording: every step kept (a killed server, a NaN action, an early stop), saved as a
Minari dataset and loaded back as the fits' real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

from metarl.envs import PhysicsParam, PhysicsRandomization
from metarl.envs.base import get_task, set_task
from metarl.envs.wrappers import MultiTaskEnv
from metarl.sim2real.bridge import RemoteRobot, RobotServer
from metarl.sim2real.env_record import EpisodeContext
from metarl.sim2real.recording import (
    PARTIAL,
    Recorder,
    _datasets_path,
    episode_contexts,
    load_episodes,
    save_dataset,
)
from metarl.sim2real.robot import RealRobotEnv, RobotReading
from metarl.sim2real.safety import SafetyConfig
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.sysid import Simulator, fit_trajectory_matching
from metarl.sim2real.targets import load_target_config
from metarl.tasks import GoalTask, PhysicsTask, RealTask

MASS = {"field": "body_mass", "elements": ["pole"], "op": "scale"}
TARGET = {
    "env": "InvertedPendulum-v5",
    "physics": {"pole_mass": {**MASS, "dist": {"kind": "fixed", "value": 1.6}}},
}


def test_a_killed_server_loses_no_recorded_step(tmp_path: Path) -> None:
    server = RobotServer(SimulatedRobot(load_target_config(TARGET)), "t").start()
    env = Recorder(
        RealRobotEnv(RemoteRobot(*server.address, token="t", connect_attempts=1), hz=500)
    )
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(3):  # a whole episode of 3 steps is not needed: cut after 3
        env.step(rng.uniform(-0.1, 0.1, 1).astype(np.float32))
    server.stop()
    env.step(np.zeros(1, np.float32))  # the link is gone: flagged
    assert env.steps == 4
    folder = save_dataset(env, "robot/killed-v0", tmp_path)
    assert (folder / "data").exists()
    (episode,) = load_episodes("robot/killed-v0", tmp_path, split_irregular=False)
    assert len(episode) == 4 and episode.truncations[-1]  # every step is in the dataset
    assert episode.env_infos["disconnected"].tolist() == [0, 0, 0, 1]
    assert np.all(episode.env_infos[PARTIAL] == 1)
    (real,) = load_episodes("robot/killed-v0", tmp_path)  # what the fits get
    assert len(real) == 3 and real.truncations[-1]  # the unanswered command is left out
    env.close()


def test_nan_actions_and_early_stops_are_recorded_as_they_happened(tmp_path: Path) -> None:
    robot = SimulatedRobot(load_target_config(TARGET))
    env = Recorder(RealRobotEnv(robot, hz=2000, safety=SafetyConfig(safe_action=[0.0])))
    env.reset(seed=1)
    env.step(np.array([np.nan], np.float32))
    env.step(np.array([0.2], np.float32))
    env.reset(seed=2)  # the caller restarts: the first episode is kept, marked
    env.step(np.array([0.1], np.float32))
    env.close()
    save_dataset(env, "robot/early-v0", tmp_path)
    first, second = load_episodes("robot/early-v0", tmp_path)
    assert len(first) == 2 and first.truncations.tolist() == [False, True]
    assert first.actions[:, 0].tolist() == pytest.approx([0.0, 0.2])  # as sent
    policy = load_episodes("robot/early-v0", tmp_path, actions="policy")[0]
    assert np.isnan(policy.actions[0, 0])  # as the policy gave it
    assert first.env_infos["safety.interventions"].tolist() == [1, 0]
    assert np.all(first.env_infos[PARTIAL] == 1) and np.all(second.env_infos[PARTIAL] == 1)


def test_a_recorded_dataset_is_the_real_data_of_a_fit(tmp_path: Path) -> None:
    env = Recorder(RealRobotEnv(SimulatedRobot(load_target_config(TARGET)), hz=5000))
    rng = np.random.default_rng(0)
    for episode in range(4):
        env.reset(seed=episode)
        for _ in range(40):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-3, 3, 1).astype(np.float32))
            if terminated or truncated:
                break
    save_dataset(env, "robot/excitation-v0", tmp_path)
    episodes = load_episodes("robot/excitation-v0", tmp_path)
    assert sum(len(e) for e in episodes) == env.steps
    search = PhysicsParam.from_dict({**MASS, "dist": {"kind": "uniform", "low": 0.5, "high": 3.0}})
    sim = Simulator("InvertedPendulum-v5", {"pole_mass": search})
    result = fit_trajectory_matching(sim, episodes, budget=60, seed=0)
    sim.close()
    # The simulated robot reports its exact state: the fit starts every prediction from
    # it and recovers the hidden mass to float64 precision, inside its interval.
    assert all(e.env_infos["state"].dtype == np.float64 for e in episodes)
    assert result.state_source.startswith("the episodes' recorded states")
    assert result.recovery_error({"pole_mass": 1.6})["pole_mass"] < 1e-9
    assert result.covers({"pole_mass": 1.6}) == {"pole_mass": True}
    assert result.warnings == [] and result.held_out["episodes"] == 1


def test_a_relative_root_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = Recorder(RealRobotEnv(SimulatedRobot(load_target_config(TARGET)), hz=5000))
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert save_dataset(env, "robot/rel-v0", "runs/data").is_dir()
    assert len(load_episodes("robot/rel-v0", "runs/data")) == 1
    env.close()


def test_saving_refuses_nothing_and_an_existing_dataset(tmp_path: Path) -> None:
    env = Recorder(RealRobotEnv(SimulatedRobot(load_target_config(TARGET)), hz=5000))
    with pytest.raises(ValueError, match="nothing recorded"):
        save_dataset(env, "robot/empty-v0", tmp_path)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    save_dataset(env, "robot/once-v0", tmp_path)
    with pytest.raises(ValueError, match="exists"):
        save_dataset(env, "robot/once-v0", tmp_path)
    with pytest.raises(ValueError, match="no dataset 'robot/none-v0'"):
        load_episodes("robot/none-v0", tmp_path)
    with pytest.raises(ValueError, match="actions must be 'sent' or 'policy'"):
        load_episodes("robot/once-v0", tmp_path, actions="given")
    env.close()


def test_a_step_that_raises_is_kept_and_flagged(tmp_path: Path) -> None:
    calls = {"n": 0}

    def reward_fn(obs: np.ndarray, command: np.ndarray, next_obs: np.ndarray) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ZeroDivisionError("a broken reward")
        return 0.0

    class Mute(SimulatedRobot):
        def read(self) -> RobotReading:
            reading = super().read()
            return RobotReading(reading.observation, info=reading.info)

    env = Recorder(RealRobotEnv(Mute(load_target_config(TARGET)), hz=5000, reward_fn=reward_fn))
    env.reset(seed=0)
    env.step(np.array([0.1], np.float32))
    with pytest.raises(ZeroDivisionError):
        env.step(np.array([0.2], np.float32))
    assert env.steps == 2  # the failed step is kept
    save_dataset(env, "robot/raised-v0", tmp_path)
    (episode,) = load_episodes("robot/raised-v0", tmp_path, split_irregular=False, actions="policy")
    assert episode.actions[:, 0].tolist() == pytest.approx([0.1, 0.2])
    assert np.isnan(episode.rewards[1]) and episode.env_infos["recorder.error"][1] == 1
    assert len(load_episodes("robot/raised-v0", tmp_path, actions="policy")) == 1


def test_watchdog_transitions_are_left_out_of_the_fits_data(tmp_path: Path) -> None:
    env = Recorder(
        RealRobotEnv(
            SimulatedRobot(load_target_config(TARGET)),
            hz=100,
            safety=SafetyConfig(watchdog_s=0.03),
        )
    )
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    time.sleep(0.1)  # the watchdog moves the robot: the next transition is not regular
    for _ in range(3):
        env.step(np.zeros(1, np.float32))
    env.close()
    save_dataset(env, "robot/stall-v0", tmp_path)
    (whole,) = load_episodes("robot/stall-v0", tmp_path, split_irregular=False)
    assert whole.env_infos["safety.watchdog"][1] >= 1
    parts = load_episodes("robot/stall-v0", tmp_path)
    assert [len(p) for p in parts] == [1, 2]  # split around the irregular transition


# ---------------------------------------------------------------- the environment's side

# Run in a fresh interpreter: nothing of the recording process (registrations, imports,
# objects) helps. For each dataset: its recovered env's spec (or the refusal), and each
# episode replayed on the recovered env (its seed, and the recorded task set where the
# env's own draw differs): the first observation and the context it then runs.
RECOVER = """
import json, sys
import minari
import numpy as np

out = {}
for dataset_id in sys.argv[1:]:
    dataset = minari.load_dataset(dataset_id)
    try:
        env = dataset.recover_environment()
    except ValueError as err:
        out[dataset_id] = {"refused": str(err), "metadata": {
            k: v for k, v in dataset.storage.metadata.items() if k.startswith("metarl.")}}
        continue
    from metarl.envs.base import get_task, is_task_env, set_task
    from metarl.sim2real.env_record import EpisodeContext
    from metarl.tasks import Task

    replays = []
    metadata = dataset.storage.get_episode_metadata(dataset.episode_indices)
    for data, meta in zip(dataset.iterate_episodes(), metadata):
        obs, _ = env.reset(seed=int(meta["seed"]))
        task = json.loads(meta["metarl.task"])
        if is_task_env(env) and get_task(env).to_dict() != task:
            set_task(env, Task.from_dict(task))
            obs, _ = env.reset(seed=int(meta["seed"]))
        replays.append({
            "same_start": bool(np.allclose(obs, data.observations[0])),
            "context": EpisodeContext.of(env).to_metadata(),
        })
    out[dataset_id] = {"spec": env.spec.to_json(), "replays": replays}
print(json.dumps(out))
"""


def recover_in_fresh_process(root: Path, *dataset_ids: str) -> dict[str, Any]:
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", RECOVER, *dataset_ids],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def record(env: Recorder, seeds: list[int], steps: int, before: Any = None) -> list[Any]:
    """Episodes of zero actions; what the env ran at each reset, read here."""
    ran = []
    for seed in seeds:
        if before is not None:
            before(seed)
        env.reset(seed=seed)
        ran.append(get_task(env))
        for _ in range(steps):
            *_, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.float32))
            if terminated or truncated:
                break
    return ran


def test_a_task_env_dataset_recovers_its_env_and_episode_tasks_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    # Physics randomized at every reset: each episode its own pole mass.
    search = PhysicsParam.from_dict({**MASS, "dist": {"kind": "uniform", "low": 0.5, "high": 2.0}})
    dr = Recorder(
        PhysicsRandomization(
            gym.make("InvertedPendulum-v5"), {"pole_mass": search}, resample="reset"
        )
    )
    pole = dr.unwrapped.model.body("pole").id
    default_mass = float(dr.unwrapped.model.body_mass[pole])
    dr_tasks = record(dr, [3, 4, 5], 5)
    # A plain task env (a kwarg of gym.make, another episode length) with one goal per episode.
    goals = [GoalTask(goal=(0.5, -0.5)), GoalTask(goal=(-0.25, 0.75))]
    point = Recorder(gym.make("metarl/PointRobot-v0", max_episode_steps=7, task=goals[1]))
    point_tasks = record(point, [0, 1], 10, lambda s: set_task(point, goals[s]))
    save_dataset(dr, "sim/pendulum-dr-v0", tmp_path)
    save_dataset(point, "sim/point-goals-v0", tmp_path)

    # Each episode's stored task and physics are what the env ran.
    contexts = episode_contexts("sim/pendulum-dr-v0", tmp_path)
    assert [c.task for c in contexts] == dr_tasks and len(set(dr_tasks)) == 3
    for context, task in zip(contexts, dr_tasks, strict=True):
        assert isinstance(task, PhysicsTask)
        ran = default_mass * task.values["pole_mass"]  # scale: the model's mass
        assert context.physics["pole_mass"] == pytest.approx([ran])
    assert [c.task for c in episode_contexts("sim/point-goals-v0", tmp_path)] == goals
    assert point_tasks == goals
    assert [e.task for e in load_episodes("sim/point-goals-v0", tmp_path, actions="policy")] == [
        *goals
    ]

    got = recover_in_fresh_process(tmp_path, "sim/pendulum-dr-v0", "sim/point-goals-v0")
    spec = EnvSpec.from_json(got["sim/pendulum-dr-v0"]["spec"])
    assert spec.id == "InvertedPendulum-v5"
    (wrapper,) = spec.additional_wrappers
    assert wrapper.name == "PhysicsRandomization"
    assert wrapper.kwargs == {
        "params": {"pole_mass": search.to_dict()},
        "resample": "reset",
        "every": None,
    }
    point_spec = EnvSpec.from_json(got["sim/point-goals-v0"]["spec"])
    assert point_spec.id == "metarl/PointRobot-v0" and point_spec.max_episode_steps == 7
    assert point_spec.kwargs == {"task": goals[1].to_dict()}
    # Replayed from its seed (and task), the recovered env runs what was recorded.
    for dataset_id in ("sim/pendulum-dr-v0", "sim/point-goals-v0"):
        recorded = [c.to_metadata() for c in episode_contexts(dataset_id, tmp_path)]
        replays = got[dataset_id]["replays"]
        assert [r["context"] for r in replays] == recorded
        assert all(r["same_start"] for r in replays)


def test_a_physics_params_env_records_the_physics_of_each_episode(tmp_path: Path) -> None:
    env = Recorder(gym.make("metarl/HopperParams-v0"))
    space = env.unwrapped.task_distribution
    tasks = env.unwrapped.sample_tasks(2, np.random.default_rng(0))
    ran = record(env, [0, 1], 3, lambda s: set_task(env, tasks[s]))
    assert ran == tasks
    save_dataset(env, "sim/hopper-params-v0", tmp_path)
    contexts = episode_contexts("sim/hopper-params-v0", tmp_path)
    assert [c.task for c in contexts] == tasks
    for context, task in zip(contexts, tasks, strict=True):
        assert set(context.physics) == set(space.names)
        for name in space.names:  # the multipliers times the defaults: what the model held
            default = space.default_values(name)
            expected = default * task.array(name).reshape(default.shape)
            np.testing.assert_allclose(context.physics[name], expected, rtol=1e-12)
    env.close()


def test_a_robot_dataset_keeps_its_spaces_and_recover_environment_refuses(
    tmp_path: Path,
) -> None:
    robot_env = RealRobotEnv(SimulatedRobot(load_target_config(TARGET)), hz=5000)
    env = Recorder(robot_env)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    save_dataset(env, "robot/spaces-v0", tmp_path)
    assert episode_contexts("robot/spaces-v0", tmp_path)[0] == EpisodeContext()  # no task
    (episode,) = load_episodes("robot/spaces-v0", tmp_path)
    assert episode.task == RealTask(system="robot/spaces-v0")
    got = recover_in_fresh_process(tmp_path, "robot/spaces-v0")["robot/spaces-v0"]
    assert "env_spec is None" in got["refused"]
    assert "a robot has no environment spec" in got["metadata"]["metarl.no_env_spec"]
    assert "RealRobotEnv" in got["metadata"]["metarl.env"]
    with _datasets_path(tmp_path.resolve()):
        import minari

        dataset = minari.load_dataset("robot/spaces-v0")
    assert dataset.observation_space == robot_env.observation_space
    assert dataset.action_space == robot_env.action_space
    assert "recover_environment() refuses" in dataset.storage.metadata["description"]
    env.close()


def test_an_env_that_cannot_be_rebuilt_is_saved_without_spec_and_said_so(
    tmp_path: Path,
) -> None:
    # Tasks drawn from a distribution: a TaskDistribution has no plain form.
    base = gym.make("metarl/PointRobot-v0")
    env = Recorder(MultiTaskEnv(base, base.unwrapped.task_distribution))
    ran = record(env, [0, 1], 3)
    with pytest.warns(UserWarning, match="cannot rebuild metarl/PointRobot-v0"):
        save_dataset(env, "sim/drawn-v0", tmp_path)
    assert [c.task for c in episode_contexts("sim/drawn-v0", tmp_path)] == ran  # still kept
    # From a list of tasks, the same wrapper is rebuilt (its tasks as dicts).
    listed = Recorder(MultiTaskEnv(gym.make("metarl/PointRobot-v0"), ran))
    record(listed, [2], 3)
    save_dataset(listed, "sim/listed-v0", tmp_path)
    got = recover_in_fresh_process(tmp_path, "sim/drawn-v0", "sim/listed-v0")
    assert "env_spec is None" in got["sim/drawn-v0"]["refused"]
    (wrapper,) = EnvSpec.from_json(got["sim/listed-v0"]["spec"]).additional_wrappers
    assert wrapper.kwargs == {"tasks": [t.to_dict() for t in ran]}
    assert got["sim/listed-v0"]["replays"][0]["same_start"]


@pytest.mark.parametrize("form", ["mapping", "sequence", "space"])
def test_every_documented_form_of_physics_params_gives_a_spec(form: str) -> None:
    from metarl.envs import PhysicsSpace
    from metarl.sim2real.env_record import portable_spec

    param = PhysicsParam.from_dict({**MASS, "dist": {"kind": "uniform", "low": 0.5, "high": 2.0}})
    base = gym.make("InvertedPendulum-v5")
    params: Any = {
        "mapping": {"body_mass": param},
        "sequence": [param],
        "space": PhysicsSpace([param], base.unwrapped.model),
    }[form]
    env = PhysicsRandomization(base, params)
    spec, why = portable_spec(env, env.observation_space, env.action_space)
    assert spec is not None, why
    rebuilt = gym.make(spec)
    assert rebuilt.get_wrapper_attr("task_distribution").params == env.task_distribution.params
