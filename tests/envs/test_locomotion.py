"""The MuJoCo locomotion task families: registration, spaces, rewards, terminations, tasks.

The reward tests recompute each family's reward from ``docs/tasks.md`` out of
the simulator state read before and after a step (``data.qpos``, ``data.xpos``,
``data.xipos``, ``data.cfrc_ext``, ``model.body_mass``), without calling the
environment's code, and compare it with the reward and the ``info`` terms.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import TASK_ENVS
from metarl.envs.ant import AntDirEnv, AntGoalEnv
from metarl.envs.half_cheetah import HalfCheetahDirEnv, HalfCheetahVelEnv
from metarl.envs.humanoid import HumanoidDirEnv
from metarl.tasks import AngleTask, DirectionTask, GoalTask, Task, VelocityTask

IDS: dict[str, type[Any]] = {
    "metarl/HalfCheetahVel-v0": HalfCheetahVelEnv,
    "metarl/HalfCheetahDir-v0": HalfCheetahDirEnv,
    "metarl/AntDir-v0": AntDirEnv,
    "metarl/AntGoal-v0": AntGoalEnv,
    "metarl/HumanoidDir-v0": HumanoidDirEnv,
}
GYM_IDS: dict[type[Any], str] = {
    HalfCheetahVelEnv: "HalfCheetah-v5",
    HalfCheetahDirEnv: "HalfCheetah-v5",
    AntDirEnv: "Ant-v5",
    AntGoalEnv: "Ant-v5",
    HumanoidDirEnv: "Humanoid-v5",
}
# Two tasks per family, far apart, for the tests that compare tasks.
TWO_TASKS: dict[type[Any], tuple[Task, Task]] = {
    HalfCheetahVelEnv: (VelocityTask(0.5), VelocityTask(2.5)),
    HalfCheetahDirEnv: (DirectionTask(-1), DirectionTask(1)),
    AntDirEnv: (DirectionTask(-1), DirectionTask(1)),
    AntGoalEnv: (GoalTask((2.0, 1.0)), GoalTask((-1.0, -2.5))),
    HumanoidDirEnv: (AngleTask(0.5), AngleTask(3.5)),
}


def _actions(env: Any, n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """``n`` uniform actions over ``scale`` times the action box (beyond it when scale > 1)."""
    high = env.action_space.high.astype(np.float64)
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1.0, 1.0, size=(n, *high.shape)) * high * scale).astype(np.float32)


def _ctrl_sq(model: Any, action: np.ndarray) -> float:
    """``||a||^2`` of the control MuJoCo applies: the action clamped to the control range."""
    applied = np.clip(action, model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1])
    return float(np.sum(applied.astype(np.float64) ** 2))


def _dt(env: Any) -> float:
    return float(env.model.opt.timestep) * env.frame_skip


def _body_id(model: Any, name: str) -> int:
    return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name))


def _com_xy(model: Any, data: Any) -> np.ndarray:
    mass = np.asarray(model.body_mass)
    return (mass[:, None] * np.asarray(data.xipos)).sum(axis=0)[:2] / mass.sum()


# --------------------------------------------------------------------------- registration


@pytest.mark.parametrize("env_id", sorted(IDS))
def test_make_spaces_and_horizon(env_id: str) -> None:
    kwargs = {"terminate_when_unhealthy": False} if "Humanoid" in env_id else {}
    env = gym.make(env_id, **kwargs)
    assert isinstance(env.unwrapped, IDS[env_id])
    assert env.spec is not None and env.spec.max_episode_steps == 200
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.dtype == np.float32
    assert env.observation_space.contains(obs)
    zero = np.zeros(env.action_space.shape or (), dtype=np.float32)
    for t in range(1, 201):
        obs, _, terminated, truncated, _ = env.step(zero)
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)
        assert not terminated
        assert truncated == (t == 200)
    cls = IDS[env_id]
    assert (cls.n_train_tasks, cls.n_test_tasks) == TASK_ENVS[env_id][2:]


@pytest.mark.parametrize("cls", list(TWO_TASKS))
def test_observations_are_gymnasium_v5_layout(cls: type[Any]) -> None:
    """Same seed and actions: the observation is Gymnasium v5's, as float32."""
    env, ref = cls(), gym.make(GYM_IDS[cls]).unwrapped
    obs, _ = env.reset(seed=3)
    ref_obs, _ = ref.reset(seed=3)
    assert ref_obs.shape == obs.shape == env.observation_space.shape
    np.testing.assert_array_equal(obs, ref_obs.astype(np.float32))
    for action in _actions(env, 5, seed=3):
        obs = env.step(action)[0]
        ref_obs = ref.step(action)[0]
        np.testing.assert_array_equal(obs, ref_obs.astype(np.float32))


# --------------------------------------------------------------------------- rewards


def _check_rollout(
    env: Any,
    task: Task,
    expected: Callable[[Any, np.ndarray, Callable[[], Any]], dict[str, float]],
    n_steps: int = 30,
) -> list[dict[str, Any]]:
    """Step ``env`` under ``task`` and compare each step's reward and info with ``expected``.

    ``expected(data, action, step)`` reads the state it needs, calls ``step()`` and
    returns the expected reward terms (``"reward"`` and the info keys).
    """
    env.set_task(task)
    env.reset(seed=11)
    infos = []
    # 1.5x the action box: the control cost must use the clamped action.
    for action in _actions(env, n_steps, seed=12, scale=1.5):
        out: dict[str, Any] = {}

        def step(action: np.ndarray = action, out: dict[str, Any] = out) -> Any:
            out["result"] = env.step(action)
            return out["result"]

        want = expected(env.data, action, step)
        _, reward, terminated, _, info = out["result"]
        np.testing.assert_allclose(reward, want.pop("reward"), rtol=1e-10, atol=1e-10)
        want_terminated = want.pop("terminated", False)
        assert terminated == want_terminated
        for key, value in want.items():
            np.testing.assert_allclose(info[key], value, rtol=1e-10, atol=1e-10, err_msg=key)
        terms = sum(v for k, v in info.items() if k.startswith("reward_"))
        np.testing.assert_allclose(reward, terms, rtol=1e-12, atol=1e-12)
        infos.append(info)
        if terminated:
            break
    return infos


def test_half_cheetah_vel_reward() -> None:
    env = HalfCheetahVelEnv()
    model, target = env.model, 1.7

    def expected(data: Any, action: np.ndarray, step: Callable[[], Any]) -> dict[str, float]:
        x_before = float(data.qpos[0])
        step()
        v = (float(data.qpos[0]) - x_before) / _dt(env)
        forward, ctrl = -abs(v - target), -0.05 * _ctrl_sq(model, action)
        return {
            "reward": forward + ctrl,
            "reward_forward": forward,
            "reward_ctrl": ctrl,
            "x_velocity": v,
            "target_velocity": target,
        }

    _check_rollout(env, VelocityTask(target), expected)


@pytest.mark.parametrize("direction", [-1, 1])
def test_half_cheetah_dir_reward(direction: int) -> None:
    env = HalfCheetahDirEnv()
    model = env.model

    def expected(data: Any, action: np.ndarray, step: Callable[[], Any]) -> dict[str, float]:
        x_before = float(data.qpos[0])
        step()
        v = (float(data.qpos[0]) - x_before) / _dt(env)
        forward, ctrl = direction * v, -0.05 * _ctrl_sq(model, action)
        return {
            "reward": forward + ctrl,
            "reward_forward": forward,
            "reward_ctrl": ctrl,
            "x_velocity": v,
            "direction": direction,
        }

    _check_rollout(env, DirectionTask(direction), expected)


def _ant_contact_cost(data: Any) -> float:
    # Gymnasium v5 sums over every body, the world body included; its row is zero.
    forces = np.asarray(data.cfrc_ext)
    assert not forces[0].any()
    return 0.5e-3 * float(np.sum(np.clip(forces, -1.0, 1.0) ** 2))


@pytest.mark.parametrize("direction", [-1, 1])
def test_ant_dir_reward(direction: int) -> None:
    env = AntDirEnv()
    model, torso = env.model, _body_id(env.model, "torso")

    def expected(data: Any, action: np.ndarray, step: Callable[[], Any]) -> dict[str, float]:
        xy_before = np.array(data.xpos[torso, :2])
        step()
        v = (np.array(data.xpos[torso, :2]) - xy_before) / _dt(env)
        forward = direction * v[0]
        ctrl = -0.5 * _ctrl_sq(model, action)
        contact = -_ant_contact_cost(data)
        z = float(data.qpos[2])
        finite = bool(np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all())
        return {
            "reward": forward + 1.0 + ctrl + contact,
            "reward_forward": forward,
            "reward_survive": 1.0,
            "reward_ctrl": ctrl,
            "reward_contact": contact,
            "x_velocity": v[0],
            "y_velocity": v[1],
            "direction": direction,
            "terminated": not (finite and 0.2 <= z <= 1.0),
        }

    infos = _check_rollout(env, DirectionTask(direction), expected)
    assert any(info["reward_contact"] < 0 for info in infos), "no contact: the term was not tested"


def test_ant_goal_reward() -> None:
    env = AntGoalEnv()
    model, torso = env.model, _body_id(env.model, "torso")
    goal = np.array([-1.2, 2.1])

    def expected(data: Any, action: np.ndarray, step: Callable[[], Any]) -> dict[str, float]:
        step()
        goal_term = -float(np.abs(np.array(data.xpos[torso, :2]) - goal).sum())
        ctrl = -0.1 * _ctrl_sq(model, action)
        contact = -_ant_contact_cost(data)
        return {
            "reward": goal_term + ctrl + contact,
            "reward_goal": goal_term,
            "reward_ctrl": ctrl,
            "reward_contact": contact,
            "reward_survive": 0.0,
        }

    infos = _check_rollout(env, GoalTask(tuple(goal)), expected)
    assert any(info["reward_contact"] < 0 for info in infos), "no contact: the term was not tested"
    assert infos[-1]["goal"] == tuple(goal)


@pytest.mark.parametrize(("angle", "terminate"), [(0.3, True), (4.0, False)])
def test_humanoid_dir_reward(angle: float, terminate: bool) -> None:
    # Under random actions the humanoid falls before its feet touch the floor; without
    # termination it lands, so that the contact term is exercised.
    env = HumanoidDirEnv(terminate_when_unhealthy=terminate)
    model = env.model
    unit = np.array([math.cos(angle), math.sin(angle)])

    def expected(data: Any, action: np.ndarray, step: Callable[[], Any]) -> dict[str, float]:
        com_before = _com_xy(model, data)
        step()
        v_com = (_com_xy(model, data) - com_before) / _dt(env)
        forward = 1.25 * float(v_com @ unit)
        ctrl = -0.1 * _ctrl_sq(model, action)
        contact = -min(5e-7 * float(np.sum(np.asarray(data.cfrc_ext) ** 2)), 10.0)
        z = float(data.qpos[2])
        return {
            "reward": forward + 5.0 + ctrl + contact,
            "reward_forward": forward,
            "reward_survive": 5.0,
            "reward_ctrl": ctrl,
            "reward_contact": contact,
            "x_velocity": v_com[0],
            "y_velocity": v_com[1],
            "angle": angle,
            "terminated": terminate and not 1.0 <= z <= 2.0,
        }

    infos = _check_rollout(env, AngleTask(angle), expected, n_steps=40)
    if terminate:
        assert len(infos) < 40, "random actions should make the humanoid fall"
    else:
        assert any(info["reward_contact"] < 0 for info in infos), "no contact: term not tested"


# --------------------------------------------------------------------------- termination


def _step_from_height(env: Any, z: float) -> bool:
    env.reset(seed=0)
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    qpos[2] = z
    env.set_state(qpos, qvel)
    terminated: bool = env.step(np.zeros(env.action_space.shape, dtype=np.float32))[2]
    return terminated


def test_ant_dir_terminates_outside_healthy_height() -> None:
    env = AntDirEnv()
    assert not _step_from_height(env, 0.75)
    assert _step_from_height(env, 1.5)
    # Below the range the floor pushes the torso back up within the step; without
    # contacts it stays low.
    env.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    assert _step_from_height(env, 0.1)
    assert env.data.qpos[2] < 0.2


def test_ant_goal_never_terminates() -> None:
    env = gym.make("metarl/AntGoal-v0")
    base: Any = env.unwrapped
    assert not _step_from_height(base, 1.5)
    flags = base.model.opt.disableflags
    base.model.opt.disableflags = flags | mujoco.mjtDisableBit.mjDSBL_CONTACT
    assert not _step_from_height(base, 0.1)
    assert base.data.qpos[2] < 0.2
    base.model.opt.disableflags = flags
    env.reset(seed=0)
    for action in _actions(env, 200, seed=1):
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
    assert truncated


def test_humanoid_dir_terminates_outside_healthy_height() -> None:
    env = HumanoidDirEnv()
    assert not _step_from_height(env, 1.4)
    assert _step_from_height(env, 0.5)
    assert _step_from_height(env, 2.5)
    wrapped = gym.make("metarl/HumanoidDir-v0")
    wrapped.reset(seed=0)
    steps = 0
    for action in _actions(wrapped, 200, seed=0):
        steps += 1
        if wrapped.step(action)[2]:
            break
    assert steps < 200, "random actions should make the humanoid fall"


# --------------------------------------------------------------------------- tasks


@pytest.mark.parametrize(
    ("cls", "task", "match"),
    [
        (HalfCheetahVelEnv, VelocityTask(3.5), r"VelocityTask\.velocity = 3\.5 .*\[0, 3\]"),
        (HalfCheetahVelEnv, VelocityTask(-0.1), r"VelocityTask\.velocity = -0\.1 .*\[0, 3\]"),
        (HalfCheetahVelEnv, DirectionTask(1), r"must be a VelocityTask .*'velocity': '\[0, 3\]'"),
        (HalfCheetahDirEnv, DirectionTask(0), r"DirectionTask\.direction = 0 .*\[-1, 1\]"),
        (HalfCheetahDirEnv, VelocityTask(1.0), r"must be a DirectionTask .*'direction'.*\[-1, 1\]"),
        (AntDirEnv, DirectionTask(2), r"DirectionTask\.direction = 2 .*\[-1, 1\]"),
        (AntDirEnv, AngleTask(0.0), r"must be a DirectionTask .*'direction'.*\[-1, 1\]"),
        (AntGoalEnv, GoalTask((3.0, 1.0)), r"GoalTask\.goal = \(3\.0, 1\.0\) .*norm <= 3"),
        (AntGoalEnv, GoalTask((1.0, 1.0, 1.0)), r"GoalTask\.goal must have 2 coordinates"),
        (AntGoalEnv, DirectionTask(1), r"must be a GoalTask .*'goal'.*radius 3"),
        (HumanoidDirEnv, AngleTask(7.0), r"AngleTask\.angle = 7 .*\[0, 6\.28319\]"),
        (HumanoidDirEnv, AngleTask(-0.5), r"AngleTask\.angle = -0\.5 .*\[0, 6\.28319\]"),
        (HumanoidDirEnv, VelocityTask(1.0), r"must be a AngleTask .*'angle'.*\[0, 6\.28319\]"),
    ],
)
def test_set_task_rejects_tasks_outside_the_family(cls: type[Any], task: Task, match: str) -> None:
    env = cls()
    before = env.get_task()
    with pytest.raises(ValueError, match=match):
        env.set_task(task)
    assert env.get_task() == before
    with pytest.raises(ValueError, match=match):
        cls(task=task)


@pytest.mark.parametrize("cls", list(TWO_TASKS))
def test_different_tasks_give_different_rewards(cls: type[Any]) -> None:
    env = cls()
    actions = _actions(env, 15, seed=5)
    rewards, observations = [], []
    for task in TWO_TASKS[cls]:
        env.set_task(task)
        obs, _ = env.reset(seed=5)
        assert env.get_task() == task
        obs_list, rew_list = [obs], []
        for action in actions:
            obs, reward, terminated, _, _ = env.step(action)
            obs_list.append(obs)
            rew_list.append(reward)
            if terminated:
                break
        observations.append(np.stack(obs_list))
        rewards.append(np.array(rew_list))
    # The task changes the reward only, not the dynamics.
    np.testing.assert_array_equal(observations[0], observations[1])
    assert len(rewards[0]) == len(rewards[1]) > 0
    assert not np.allclose(rewards[0], rewards[1])


@pytest.mark.parametrize("cls", list(TWO_TASKS))
def test_task_from_dict_and_pickle(cls: type[Any]) -> None:
    task = TWO_TASKS[cls][1]
    env = cls(task=task.to_dict(), reset_noise_scale=0.05)
    assert env.get_task() == task
    assert env._reset_noise_scale == 0.05
    copy = pickle.loads(pickle.dumps(env))
    assert type(copy) is cls
    assert copy.get_task() == task and copy._reset_noise_scale == 0.05
    assert copy.observation_space == env.observation_space
    action = _actions(env, 1, seed=0)[0]
    for e in (env, copy):
        e.reset(seed=1)
    a, b = env.step(action), copy.step(action)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_task_sets_have_the_registered_sizes() -> None:
    for env_id, cls in IDS.items():
        env = gym.make(env_id)
        dist = env.get_wrapper_attr("task_distribution")
        sets = dist.task_sets(0, cls.n_train_tasks, cls.n_test_tasks)
        assert len(sets.train) == TASK_ENVS[env_id][2] and len(sets.test) == TASK_ENVS[env_id][3]
        assert all(dist.contains(t) for t in sets.train + sets.test)
        if cls in (HalfCheetahDirEnv, AntDirEnv):
            assert {t.direction for t in sets.train} == {-1, 1}
