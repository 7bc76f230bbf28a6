"""Excitation signals (``metarl.sim2real.excitation``) and ``metarl sysid``'s excitation
section: every signal stays within the action space, is reproducible and differs across
seeds and episodes; the multisine's spectrum lies in its band; pd_hold keeps Hopper up
longer than random actions; bad sections and systems are named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from pydantic import TypeAdapter

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import MJCF_ENV_ID
from metarl.schema import ConfigError
from metarl.sim2real.excitation import Excitation, ExcitationConfig
from metarl.sim2real.sysid_command import load_sysid, run_sysid

ROOT = Path(__file__).resolve().parents[2]
ARM = ROOT / "examples" / "models" / "two_link_arm.xml"
PENDULUM = ROOT / "configs" / "sysid" / "pendulum_dropo.yaml"
KINDS = ("random", "multisine", "chirp", "pd_hold")
ADAPTER: TypeAdapter[Any] = TypeAdapter(ExcitationConfig)


def config(section: Any) -> Any:
    return ADAPTER.validate_python(section)


def build(section: Any, env: gym.Env, length: int | None = 200) -> Excitation:  # type: ignore[type-arg]
    return config(section).build(env, length)


def run(
    env: gym.Env,  # type: ignore[type-arg]
    excitation: Excitation,
    seed: int,
    episodes: int = 2,
    steps: int = 200,
) -> tuple[list[np.ndarray], list[int]]:
    """Each episode's actions (resets seeded 0, 1, ...; draws from ``default_rng(seed)``)
    and its length before termination."""
    rng = np.random.default_rng(seed)
    actions, lengths = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        controller = excitation.episode(rng)
        rows = []
        for step in range(steps):
            action = controller(obs, step)
            rows.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        actions.append(np.array(rows))
        lengths.append(len(rows))
    return actions, lengths


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Ant-v5", MJCF_ENV_ID])
@pytest.mark.parametrize("kind", KINDS)
def test_signals_stay_in_the_action_space_are_seeded_and_differ(kind: str, env_id: str) -> None:
    kwargs = {"model_path": str(ARM), "frame_skip": 10} if env_id == MJCF_ENV_ID else {}
    env = gym.make(env_id, **kwargs)
    space = env.action_space
    first, _ = run(env, build(kind, env), seed=0)
    again, _ = run(env, build(kind, env), seed=0)
    other, _ = run(env, build(kind, env), seed=1)
    for actions in first + other:
        assert actions.dtype == space.dtype
        assert all(space.contains(a) for a in actions)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)  # the same seed: the same signal
    n = min(len(first[0]), len(other[0]), len(first[1]))
    assert not np.allclose(first[0][:n], other[0][:n])  # another seed
    assert not np.allclose(first[0][:n], first[1][:n])  # another episode


def test_random_draws_what_metarl_sysid_always_drew() -> None:
    env = gym.make("InvertedPendulum-v5")
    stream = np.random.default_rng(np.random.SeedSequence(0).spawn(1)[0])
    old = [stream.uniform(env.action_space.low, env.action_space.high) for _ in range(30)]
    rng = np.random.default_rng(np.random.SeedSequence(0).spawn(1)[0])
    excitation = build("random", env)
    first, second = excitation.episode(rng), excitation.episode(rng)
    new = [first(None, t) for t in range(10)] + [second(None, t) for t in range(20)]  # type: ignore[arg-type]
    assert np.array_equal(np.array(new), np.array(old, dtype=np.float32))


def _table(excitation: Excitation, rng: np.random.Generator, steps: int) -> np.ndarray:
    controller = excitation.episode(rng)
    return np.array([controller(None, t) for t in range(steps)], dtype=np.float64)  # type: ignore[arg-type]


@pytest.mark.parametrize(("steps", "f_min", "f_max"), [(200, 0.5, 5.0), (1000, 2.0, 3.0)])
def test_the_multisine_lies_in_its_band_at_its_amplitude(
    steps: int, f_min: float, f_max: float
) -> None:
    env = gym.make("Walker2d-v5")  # 6 actuators, dt 0.008 s
    dt = env.unwrapped.dt  # type: ignore[attr-defined]
    excitation = build(
        {"kind": "multisine", "f_min": f_min, "f_max": f_max, "amplitude": 0.4}, env, steps
    )
    u = _table(excitation, np.random.default_rng(0), 2 * steps)
    assert np.allclose(u[:steps], u[steps:], atol=1e-6)  # periodic over the episode
    spectrum = np.abs(np.fft.rfft(u[:steps], axis=0)) ** 2
    frequencies = np.fft.rfftfreq(steps, dt)
    in_band = (frequencies >= f_min - 1e-9) & (frequencies <= f_max + 1e-9)
    assert in_band.sum() >= 2
    assert spectrum[~in_band].sum() < 1e-9 * spectrum[in_band].sum()  # nothing outside (no DC)
    assert np.all(spectrum[in_band] > 1e-3 * spectrum[in_band].max())  # every line excited
    # the peak of each actuator over the period: 0.4 of its half-range (here 1)
    assert np.allclose(np.abs(u[:steps]).max(axis=0), 0.4, atol=1e-6)


def test_the_chirp_sweeps_its_band_and_the_actuators_are_uncorrelated_on_average() -> None:
    env = gym.make("Hopper-v5")
    dt = env.unwrapped.dt  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    for kind in ("multisine", "chirp"):
        excitation = build(kind, env, 1000)
        correlations, shares = [], []
        for _ in range(30):
            u = _table(excitation, rng, 1000)
            spectrum = np.abs(np.fft.rfft(u - u.mean(axis=0), axis=0)) ** 2
            f = np.fft.rfftfreq(1000, dt)
            shares.append(spectrum[(f >= 0.5) & (f <= 5.0)].sum() / spectrum.sum())
            correlations += list(np.corrcoef(u.T)[np.triu_indices(3, 1)])
        assert min(shares) > 0.9, kind
        assert abs(np.mean(correlations)) < 0.1 and np.mean(np.abs(correlations)) < 0.2, kind


def test_pd_hold_keeps_hopper_up_longer_than_random_actions() -> None:
    env = gym.make("Hopper-v5")
    _, held = run(env, build("pd_hold", env), seed=0, episodes=10)
    _, random = run(env, build("random", env), seed=0, episodes=10)
    assert np.mean(held) > 150 and np.mean(held) > 3 * np.mean(random)  # measured: 200, 32


def test_pd_hold_holds_the_reset_pose_of_the_driven_joints() -> None:
    env = gym.make(MJCF_ENV_ID, model_path=str(ARM), frame_skip=10, reset_noise_scale=0.5)
    excitation = build({"kind": "pd_hold", "kp": 1.0, "kd": 0.2, "noise_std": 0.0}, env)
    obs, _ = env.reset(seed=3)
    controller = excitation.episode(np.random.default_rng(0))
    start = obs[:2].copy()
    for step in range(300):
        obs, *_ = env.step(controller(obs, step))
    # gravity pulls the arm down from the pose; the controller pulls it back there
    assert np.abs(start).max() > 0.2 and np.abs(obs[:2] - start).max() < 0.25
    free = gym.make(MJCF_ENV_ID, model_path=str(ARM), frame_skip=10, reset_noise_scale=0.5)
    obs, _ = free.reset(seed=3)
    for _ in range(300):
        obs, *_ = free.step(np.zeros(2, np.float32))
    assert np.abs(obs[:2] - start).max() > 0.25


def test_a_policy_plus_noise_drives_the_system_unclipped(tmp_path: Path) -> None:
    from metarl.agents.ppo import PPOAgent
    from metarl.sim2real.export import export_policy
    from metarl.sim2real.onnx_policy import OnnxPolicy

    env = gym.make("InvertedPendulum-v5")
    export_policy(PPOAgent(env.observation_space, env.action_space), tmp_path / "ppo.onnx")
    section = {"kind": "policy", "path": str(tmp_path / "ppo.onnx"), "noise_std": 0.5}
    excitation = build(section, env)
    first, _ = run(env, excitation, seed=0, steps=20)
    again, _ = run(env, build(section, env), seed=0, steps=20)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    policy = OnnxPolicy(tmp_path / "ppo.onnx")
    env.reset(seed=0)
    obs, _ = env.reset(seed=0)
    mean = policy(obs)
    noise = first[0][0] - mean
    assert np.all(noise != 0) and np.abs(noise).max() < 5 * 0.5 * 3.0  # std 0.5 * half-range 3
    big = build({**section, "noise_std": 3.0}, env)
    actions, _ = run(env, big, seed=0, steps=50)
    assert np.abs(np.concatenate(actions)).max() > 3.0  # never clipped here: the env limits


def _arm_with(tmp_path: Path, actuator: str) -> gym.Env:  # type: ignore[type-arg]
    path = tmp_path / "tendon.xml"
    path.write_text(
        '<mujoco><worldbody><body><joint name="j" type="hinge"/><geom size="0.1"/>'
        '<site name="s"/></body></worldbody><tendon><fixed name="t"><joint joint="j" '
        f'coef="1"/></fixed></tendon><actuator>{actuator}</actuator></mujoco>'
    )
    return gym.make(MJCF_ENV_ID, model_path=str(path))


@pytest.mark.parametrize(
    ("section", "env_id", "length", "message"),
    [
        ({"kind": "multisine", "f_max": 70.0}, "Hopper-v5", 200, r"below the Nyquist.*62\.5 Hz"),
        ({"kind": "chirp", "f_max": 12.5}, "InvertedPendulum-v5", 200, r"Nyquist.*12\.5 Hz"),
        ({"kind": "multisine", "f_min": 1.0, "f_max": 1.2}, "Hopper-v5", 50, "no frequency"),
        ("multisine", "Hopper-v5", None, "give max_steps"),
        ("pd_hold", "metarl/PointRobot-v0", 200, "not a MuJoCo one"),
        ("multisine", "metarl/PointRobot-v0", 200, "no control period"),
        ("random", "CartPole-v1", 200, "1-D Box action space"),
        ({"kind": "policy", "path": "none.onnx"}, "Hopper-v5", 200, "policy.path: no file"),
    ],
)
def test_what_a_system_cannot_take_is_named(
    section: Any, env_id: str, length: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(section, gym.make(env_id), length)


def test_pd_hold_refuses_actuators_without_a_joint(tmp_path: Path) -> None:
    env = _arm_with(tmp_path, '<motor name="pull" tendon="t" ctrlrange="-1 1"/>')
    with pytest.raises(ValueError, match=r"actuator\(s\) pull drive no hinge or slide"):
        build("pd_hold", env)
    build("multisine", env, 1000)  # the other kinds take it


def test_policies_that_read_rewards_or_other_spaces_are_refused(tmp_path: Path) -> None:
    from metarl.agents.rl2 import RL2Agent
    from metarl.sim2real.export import export_policy

    env = gym.make("InvertedPendulum-v5")
    export_policy(RL2Agent(env.observation_space, env.action_space), tmp_path / "rl2.onnx")
    with pytest.raises(ValueError, match="reads the previous reward"):
        build({"kind": "policy", "path": str(tmp_path / "rl2.onnx")}, env)
    with pytest.raises(ValueError, match="takes 4 observations and gives 1 actions"):
        build({"kind": "policy", "path": str(tmp_path / "rl2.onnx")}, gym.make("Hopper-v5"))
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        build({"kind": "policy", "path": str(tmp_path / "text.onnx")}, env)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"kind": "sine"}, "kind 'sine' is not an excitation; kinds: random, multisine, chirp"),
        ({"f_min": 1.0}, "the excitation has no kind; kinds: random, multisine"),
        ({"kind": ["x"]}, "kind \\['x'\\] is not an excitation"),
        (5, r"an excitation is a kind \(random, multisine"),
        ({"kind": "multisine", "amplitude": 1.5}, "multisine.amplitude"),
        ({"kind": "multisine", "f_min": "1"}, "multisine.f_min"),
        ({"kind": "multisine", "f_min": 3.0, "f_max": 2.0}, r"f_max \(2 Hz\) must exceed f_min"),
        ({"kind": "chirp", "method": "cubic"}, "chirp.method"),
        ({"kind": "pd_hold", "gain": 1.0}, "pd_hold.gain"),
        ({"kind": "pd_hold", "kp": -1.0}, "pd_hold.kp"),
        ({"kind": "policy"}, "policy.path"),
    ],
)
def test_bad_sections_are_named(tmp_path: Path, section: Any, message: str) -> None:
    path = _sysid_file(tmp_path, excitation=section)
    with pytest.raises(ConfigError, match=rf"sysid\.excitation[.:].*{message}"):
        load_sysid(path)


def _sysid_file(tmp_path: Path, **changes: Any) -> Path:
    """A tiny run of the shipped pendulum file: 2 episodes of 30 steps, 4 fit evaluations."""
    shipped = yaml.safe_load(PENDULUM.read_text())["sysid"]
    tiny = {"episodes": 2, "max_steps": 30, "method": "trajectory_matching"}
    section = {**shipped, **tiny, "options": {"budget": 4}, "root": str(tmp_path / "out")}
    path = tmp_path / "sysid.yaml"
    path.write_text(yaml.safe_dump({"sysid": {**section, **changes}}))
    return path


def test_the_old_controller_key_is_refused_with_the_new_spelling(tmp_path: Path) -> None:
    path = _sysid_file(tmp_path, controller="random")
    with pytest.raises(ConfigError, match=r"write excitation: \{kind: random\}"):
        load_sysid(path)


@pytest.mark.parametrize("kind", [*KINDS, "policy"])
def test_metarl_sysid_records_with_each_excitation(tmp_path: Path, kind: str) -> None:
    section: Any = kind
    if kind == "policy":
        from metarl.agents.ppo import PPOAgent
        from metarl.sim2real.export import export_policy

        env = gym.make("InvertedPendulum-v5")
        export_policy(PPOAgent(env.observation_space, env.action_space), tmp_path / "p.onnx")
        section = {"kind": "policy", "path": str(tmp_path / "p.onnx")}
    out = run_sysid(_sysid_file(tmp_path, excitation=section))
    data = np.load(out / "real_episodes.npz")
    actions = np.concatenate([data[k] for k in sorted(data.files) if k.startswith("actions_")])
    assert len(actions) > 2 and np.all(np.isfinite(actions))
    if kind != "policy":
        assert np.abs(actions).max() <= 3.0  # InvertedPendulum's range
    fit = json.loads((out / "fit.json").read_text())
    assert fit["config"]["excitation"]["kind"] == kind
    assert f"excitation `{kind}" in (out / "report.md").read_text()
    if kind == "multisine":  # what was sent is the excitation's signal
        env = gym.make("InvertedPendulum-v5")
        rng = np.random.default_rng(np.random.SeedSequence(0).spawn(1)[0])
        expected = _table(build("multisine", env, 30), rng, 30)
        assert np.allclose(data["actions_0"], expected[: len(data["actions_0"])])


def test_an_excitation_the_target_refuses_leaves_no_folder(tmp_path: Path) -> None:
    path = _sysid_file(tmp_path, excitation={"kind": "multisine", "f_max": 20.0})
    with pytest.raises(ConfigError, match=r"sysid\.excitation: multisine\.f_max \(20 Hz\)"):
        run_sysid(path)
    assert not (tmp_path / "out").exists()


def test_the_shipped_multisine_file_reads() -> None:
    cfg = load_sysid(ROOT / "configs" / "sysid" / "hopper_multisine.yaml")
    assert cfg.excitation.kind == "multisine" and cfg.simulator.env == "Hopper-v5"
    assert set(cfg.simulator.params) == {"torso_mass", "thigh_mass", "foot_mass"}
