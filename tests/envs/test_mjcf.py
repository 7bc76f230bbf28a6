"""``metarl/MJCF-v0``: any MuJoCo model file as a Gymnasium env (the shipped two-link arm,
Gymnasium's own model files), checked, pickled, physics-randomized; bad files named."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import MJCF_ENV_ID, PhysicsRandomization, task_env_ids
from metarl.tasks import PhysicsTask

ROOT = Path(__file__).resolve().parents[2]
ARM = ROOT / "examples" / "models" / "two_link_arm.xml"
GYM_ASSETS = Path(gym.__file__).parent / "envs" / "mujoco" / "assets"


def _make(**kwargs: object) -> gym.Env:  # type: ignore[type-arg]
    return gym.make(MJCF_ENV_ID, **{"model_path": str(ARM), **kwargs})


def _rollout(env: gym.Env, seed: int, steps: int = 30) -> np.ndarray:  # type: ignore[type-arg]
    obs, _ = env.reset(seed=seed)
    rows = [obs]
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, 2)).astype(np.float32)
    for action in actions:
        obs, *_ = env.step(action)
        rows.append(obs)
    return np.array(rows)


def test_the_arm_makes_resets_and_steps_as_documented() -> None:
    env = _make(frame_skip=5)
    model = env.unwrapped.model  # type: ignore[attr-defined]
    assert env.spec is not None and env.spec.max_episode_steps == 1000
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert env.unwrapped.dt == pytest.approx(5 * model.opt.timestep)  # type: ignore[attr-defined]
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and np.array_equal(obs, np.zeros(4)) and info == {}
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, -1.0], np.float32))
    assert obs.dtype == np.float32 and obs[2] > 0 and obs[3] < 0  # the motors turn the joints
    assert (reward, terminated, truncated, info) == (0.0, False, False, {})
    for _ in range(998):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated and not truncated
    *_, terminated, truncated, _ = env.step(env.action_space.sample())
    assert truncated and not terminated  # the registered limit, never a termination


def test_the_arm_passes_gymnasiums_checker_and_pickles() -> None:
    env = _make()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # [qpos, qvel] is unbounded
        check_env(env.unwrapped, skip_render_check=True)
    copy = pickle.loads(pickle.dumps(env))
    assert np.array_equal(_rollout(env, 3), _rollout(copy, 3))


def test_reset_noise_is_seeded_and_zero_by_default() -> None:
    quiet, noisy = _make(), _make(reset_noise_scale=0.1)
    assert np.array_equal(quiet.reset(seed=1)[0], quiet.reset(seed=2)[0])
    first = noisy.reset(seed=1)[0]
    assert np.array_equal(first, noisy.reset(seed=1)[0])
    assert not np.array_equal(first, noisy.reset(seed=2)[0])
    assert 0 < np.abs(first).max() <= 0.1


def test_physics_randomization_changes_the_arm_by_body_name() -> None:
    payload = {
        "field": "body_mass",
        "elements": ["payload"],
        "op": "scale",
        "dist": {"kind": "uniform", "low": 0.5, "high": 2.0},
    }
    env = PhysicsRandomization(_make(), {"payload_mass": payload})
    model = env.unwrapped.model  # type: ignore[attr-defined]
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "payload")
    _, info = env.reset(seed=0)
    drawn = info["physics"]["payload_mass"]  # a multiplier of the model's 0.3 kg
    assert 0.5 <= drawn <= 2.0 and model.body_mass[body] == pytest.approx(0.3 * drawn)
    env.set_task(PhysicsTask(values={"payload_mass": 2.0}))
    heavy = _rollout(env, 4)
    env.set_task(PhysicsTask(values={"payload_mass": 0.5}))
    light = _rollout(env, 4)
    assert model.body_mass[body] == pytest.approx(0.15)
    assert not np.allclose(heavy, light)  # the same actions move another arm otherwise


@pytest.mark.parametrize("name", ["hopper.xml", "ant.xml"])
def test_gymnasiums_own_model_files_run_as_mjcf_envs(name: str) -> None:
    """Models not designed for it: Hopper's slide and hinge joints, Ant's free joint
    (its quaternion renormalized after the reset noise)."""
    env = gym.make(MJCF_ENV_ID, model_path=GYM_ASSETS / name, frame_skip=4, reset_noise_scale=0.1)
    model = env.unwrapped.model  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (model.nq + model.nv,)
    assert env.action_space.shape == (model.nu,)
    if name == "ant.xml":
        assert np.linalg.norm(obs[3:7]) == pytest.approx(1.0, abs=1e-6)
    for _ in range(20):
        obs, reward, terminated, _, _ = env.step(env.action_space.sample())
    assert np.all(np.isfinite(obs)) and reward == 0.0 and not terminated


def test_it_is_not_a_task_family() -> None:
    assert MJCF_ENV_ID not in task_env_ids()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "robot.xml"
    path.write_text(text)
    return path


BODY = '<worldbody><body><joint name="j" type="hinge"/><geom size="0.1"/></body></worldbody>'


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        (None, {"model_path": "no/such/robot.xml"}, r"'no/such/robot.xml': no such file"),
        (None, {"model_path": "."}, r"'\.': a folder, not a file"),
        ("<mujoco><worldbody>", {}, r"robot.xml: XML parse error"),
        ('<mujoco><worldbody><geom type="sphere"/></worldbody></mujoco>', {}, r"size 0"),
        (f"<mujoco>{BODY}</mujoco>", {}, "has no actuators"),
        (
            f'<mujoco>{BODY}<actuator><motor name="m" joint="j"/></actuator></mujoco>',
            {},
            r"actuator\(s\) m have no control range",
        ),
        (
            f'<mujoco>{BODY}<actuator><motor joint="j" ctrlrange="-1 1"/></actuator></mujoco>',
            {"keyframe": "home"},
            r"keyframe 'home' is not in .*robot.xml; its named keyframes: none",
        ),
        (None, {"model_path": str(ARM), "frame_skip": 0}, "frame_skip must be a positive"),
        (None, {"model_path": str(ARM), "reset_noise_scale": -1.0}, "reset_noise_scale"),
    ],
)
def test_bad_model_files_and_arguments_are_named(
    tmp_path: Path, model: str | None, kwargs: dict[str, object], message: str
) -> None:
    if model is not None:
        kwargs = {"model_path": str(_write(tmp_path, model)), **kwargs}
    with pytest.raises(ValueError, match=message):
        gym.make(MJCF_ENV_ID, **kwargs)


def test_a_keyframe_is_the_reset_pose(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f'<mujoco>{BODY}<actuator><motor joint="j" ctrlrange="-1 1"/></actuator>'
        '<keyframe><key name="home" qpos="0.7"/></keyframe></mujoco>',
    )
    env = gym.make(MJCF_ENV_ID, model_path=path, keyframe="home")
    assert env.reset(seed=0)[0].tolist() == pytest.approx([0.7, 0.0])
