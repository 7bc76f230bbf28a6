"""``metarl serve``, ``metarl record`` and ``metarl deploy``: the robot side of the
command line. Nothing here imports torch (a robot's computer may not have it).

A robot section says how to reach the robot and how to drive it::

    robot:
      server: {host: 127.0.0.1, port: 7700, token_env: METARL_ROBOT_TOKEN}
      # or, in this process: simulated: {env: ..., physics: ..., effects: ...}
      hz: 50                             # control frequency
      max_episode_steps: 200
      safety: {action_low: [...], max_delta: 0.5, state_limits: [...], watchdog_s: 0.1}

The token is read from the environment variable ``token_env`` names, never from a
file. Files:

- ``serve: {target: {...}, host, port, token_env}``: a simulated robot server (a
  sim-to-sim target behind the bridge) until interrupted;
- ``record: {robot, controller: random | {policy: FILE.onnx}, episodes,
  estimate_delay: bool, dataset, root, seed}``: ``episodes`` episodes of the controller
  recorded as a Minari dataset, with the control timing, round trips and interventions
  in a report; with ``estimate_delay`` the robot's action delay is measured first, and
  the excitation's episodes (as many as its ``transitions`` take: short ones when the
  robot falls) come first in the same dataset. Every episode is kept and marked by its
  phase (episode metadata ``metarl.phase``: ``delay_excitation`` or ``controller``,
  read with ``recording.episode_contexts``);
- ``deploy: {robot, policy: FILE.onnx, trials, episodes_per_trial, dataset, root,
  seed}``: an exported policy (``metarl.sim2real.export``) run for ``trials`` trials
  of K episodes (a meta-RL agent keeps its memory within a trial), recorded, with
  the return of each episode k in the report.

Each of record and deploy writes ``<root>/<name>-<time>/`` with the dataset
(``dataset/``), ``session.json`` and ``report.md``.
"""

from __future__ import annotations

import errno
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from metarl.schema import ConfigError, read_yaml, validation_message
from metarl.sim2real.latency import estimate_delay, latency_stats
from metarl.sim2real.rate import timing_stats
from metarl.sim2real.recording import Recorder, save_dataset
from metarl.sim2real.robot import RealRobotEnv, Robot
from metarl.sim2real.safety import SafetyConfig, kind_counts
from metarl.sim2real.targets import TargetConfig

__all__ = ["load_robot_file", "run_deploy", "run_record", "run_serve"]

# The phases of a recording session (each episode's ``metarl.phase`` in the dataset).
DELAY_EXCITATION = "delay_excitation"
CONTROLLER = "controller"


class ServerAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=7700, ge=0, le=65535)
    token_env: str = "METARL_ROBOT_TOKEN"
    """The environment variable holding the shared token."""

    def token(self, where: str) -> str:
        token = os.environ.get(self.token_env, "")
        if not token:
            raise ConfigError(
                f"{where}.token_env: set the environment variable {self.token_env} to the "
                "robot server's shared token"
            )
        return token


class RobotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: ServerAddress | None = None
    simulated: TargetConfig | None = None
    hz: float = Field(gt=0)
    max_episode_steps: int | None = Field(default=None, ge=1)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)

    @model_validator(mode="after")
    def _one_robot(self) -> RobotConfig:
        if (self.server is None) == (self.simulated is None):
            raise ValueError("give exactly one of server (a robot server) and simulated")
        return self


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: TargetConfig
    host: str = "127.0.0.1"
    port: int = Field(default=7700, ge=0, le=65535)
    token_env: str = "METARL_ROBOT_TOKEN"


class PolicyController(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str = Field(min_length=1)


class SessionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="robot", pattern=r"^[\w.+-]+$")
    robot: RobotConfig
    dataset: str = Field(default="metarl/robot-v0", pattern=r"^[\w.+-]+(/[\w.+-]+)*-v\d+$")
    """Minari dataset id, ``(namespace/)name-v<version>``."""
    root: str = "runs/robot"
    seed: int = Field(default=0, ge=0)


class RecordConfig(SessionBase):
    controller: Literal["random"] | PolicyController = "random"
    episodes: int = Field(default=10, ge=1)
    estimate_delay: bool = False


class DeployConfig(SessionBase):
    policy: str = Field(min_length=1)
    trials: int = Field(default=1, ge=1)
    episodes_per_trial: int = Field(default=1, ge=1)


SECTIONS: dict[str, type[BaseModel]] = {
    "serve": ServeConfig,
    "record": RecordConfig,
    "deploy": DeployConfig,
}


def load_robot_file(path: str | Path, section: str) -> Any:
    """The validated ``section`` (serve, record or deploy) of the file ``path``.

    Raises:
        ConfigError: unreadable file, another section, or invalid fields (named).
    """
    raw = read_yaml(path)
    if set(raw) != {section}:
        raise ConfigError(
            f"{path}: a {section} file holds one section, {section} (found {sorted(raw)})"
        )
    try:
        return SECTIONS[section].model_validate(raw[section])
    except ValidationError as err:
        raise ConfigError(
            f"{path}: invalid {section}:\n  {validation_message(err, section)}"
        ) from None


def _robot(cfg: RobotConfig, path: str | Path, section: str) -> Robot:
    from metarl.sim2real.robot import RobotDisconnected

    if cfg.simulated is not None:
        from metarl.sim2real.simulated_robot import SimulatedRobot

        try:
            return SimulatedRobot(cfg.simulated)
        except ValueError as err:
            raise ConfigError(f"{path}: {section}.robot.simulated: {err}") from None
    from metarl.sim2real.bridge import RemoteRobot

    assert cfg.server is not None
    token = cfg.server.token(f"{path}: {section}.robot.server")
    try:
        return RemoteRobot(cfg.server.host, cfg.server.port, token)
    except RobotDisconnected as err:
        raise ConfigError(f"{path}: {section}.robot.server: {err}") from None


def _env(cfg: SessionBase, path: str | Path, section: str) -> RealRobotEnv:
    robot = _robot(cfg.robot, path, section)
    try:
        return RealRobotEnv(
            robot, cfg.robot.hz, cfg.robot.safety, max_episode_steps=cfg.robot.max_episode_steps
        )
    except ValueError as err:
        raise ConfigError(f"{path}: {section}.robot.safety: {err}") from None


def _policy(file: str, path: str | Path, field: str) -> Any:
    from metarl.sim2real.onnx_policy import load_policy

    try:
        return load_policy(file)
    except ValueError as err:
        raise ConfigError(f"{path}: {field}: {err}") from None


def _check_policy(policy: Any, env: RealRobotEnv, path: str | Path, field: str) -> None:
    try:
        policy.check_spaces(env.observation_space, env.action_space)
    except ValueError as err:
        env.close()
        raise ConfigError(f"{path}: {field}: {err}") from None


def _folder(cfg: SessionBase) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(cfg.root) / f"{cfg.name}-{stamp}"
    out.mkdir(parents=True, exist_ok=False)
    return out


def _session_summary(env: Recorder, robot_env: RealRobotEnv) -> dict[str, Any]:
    """Timing, round trips and interventions of everything recorded."""
    ticks = robot_env.rate.ticks
    rtts = [
        float(v)
        for e in env.episodes
        for v in e.info_arrays().get("bridge.rtt_s", np.array([]))[1:]
        if np.isfinite(v)
    ]
    return {
        "hz": robot_env.rate.hz,
        "timing": timing_stats(ticks, robot_env.rate.period).to_dict() if ticks else None,
        "round_trip_s": latency_stats(rtts) if rtts else None,
        "interventions": [i.to_dict() for i in robot_env.safety.interventions],
        "episodes": [
            {
                "phase": e.context.phase,
                "steps": len(e.actions),
                "return": float(sum(e.rewards)),
                "partial": e.partial,
            }
            for e in env.episodes
        ],
    }


def _report(title: str, summary: dict[str, Any], extra: list[str]) -> str:
    lines = [f"# {title}", "", f"- control rate: {summary['hz']:g} Hz"]
    timing = summary["timing"]
    if timing:
        lines.append(
            f"- periods: {timing['steps']} steps, mean {timing['period_mean'] * 1e3:.3f} ms, "
            f"jitter p50 {timing['jitter_p50'] * 1e6:.0f} us, "
            f"p99 {timing['jitter_p99'] * 1e6:.0f} us, max {timing['jitter_max'] * 1e6:.0f} us; "
            f"overruns {timing['overruns']}"
        )
    rtt = summary["round_trip_s"]
    if rtt:
        lines.append(
            f"- round trip: p50 {rtt['p50'] * 1e3:.3f} ms, p99 {rtt['p99'] * 1e3:.3f} ms, "
            f"max {rtt['max'] * 1e3:.3f} ms"
        )
    kinds = kind_counts([i["kind"] for i in summary["interventions"]])
    lines.append(f"- safety interventions: {kinds or 'none'}")
    episodes = summary["episodes"]
    phases: dict[str, int] = {}
    for e in episodes:
        phases[e["phase"] or "unmarked"] = phases.get(e["phase"] or "unmarked", 0) + 1
    parts = ", ".join(f"{n} {phase}" for phase, n in phases.items()) + "; " if phases else ""
    partial = sum(e["partial"] for e in episodes)
    lines.append(
        f"- episodes in the dataset: {len(episodes)} ({parts}{partial} cut short, kept and flagged)"
    )
    return "\n".join([*lines, *extra, ""])


def _random_controller(space: Any, rng: np.random.Generator) -> Any:
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)

    def act(_obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high).astype(space.dtype)

    return act


def _run_session(
    cfg: SessionBase, robot_env: RealRobotEnv, body: Any, algorithm: str
) -> tuple[Path, dict[str, Any]]:
    """Run ``body(recorder)`` on the robot, recording every step; whatever happens, the
    robot gets the safe action and the link is closed first, then every recorded step
    is saved as the dataset. Returns the session folder and the summary."""
    out = _folder(cfg)
    env = Recorder(robot_env)
    try:
        body(env)
    finally:
        try:
            env.finish()
            summary = _session_summary(env, robot_env)
        finally:
            env.close()  # the safe action, the watchdog stopped, the link closed
        if env.episodes:
            save_dataset(env, cfg.dataset, out / "dataset", algorithm_name=algorithm)
    summary["dataset"] = {"id": cfg.dataset, "root": str(out / "dataset")}
    return out, summary


def run_record(path: str | Path) -> Path:
    """``metarl record FILE`` (module docstring); returns the session folder.

    Raises:
        ConfigError: an invalid file, no token, no robot server, a bad policy file.
    """
    cfg: RecordConfig = load_robot_file(path, "record")
    policy = None
    if isinstance(cfg.controller, PolicyController):
        policy = _policy(cfg.controller.policy, path, "record.controller.policy")
    robot_env = _env(cfg, path, "record")
    if policy is not None:
        _check_policy(policy, robot_env, path, "record.controller.policy")
    rng = np.random.default_rng(cfg.seed)
    act = policy if policy is not None else _random_controller(robot_env.action_space, rng)
    found: list[Any] = []

    def body(env: Recorder) -> None:
        if cfg.estimate_delay:  # its excitation is recorded too: real data, marked
            env.phase = DELAY_EXCITATION
            found.append(estimate_delay(env, seed=cfg.seed))
        env.phase = CONTROLLER
        for k in range(cfg.episodes):
            obs, _ = env.reset(seed=cfg.seed + k)
            if policy is not None:
                policy.start_trial()
            while True:
                obs, reward, terminated, truncated, info = env.step(act(obs))
                if policy is not None:
                    policy.observe(float(reward), info.get("command"))
                if terminated or truncated:
                    break

    out, summary = _run_session(cfg, robot_env, body, "metarl record")
    extra: list[str] = []
    delay = found[0] if found else None
    if delay is not None:
        extra.append(
            f"- estimated action delay: {delay.steps} control steps (onset margin "
            f"{delay.margin:.1f}); configures `{delay.effect_spec()}`; its "
            f"{delay.episodes} excitation episodes are the dataset's first (phase "
            f"`{DELAY_EXCITATION}`)"
        )
    summary["estimated_delay"] = None if delay is None else delay.to_dict()
    (out / "session.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(_report(f"Recording {cfg.name}", summary, extra))
    return out


def run_deploy(path: str | Path) -> Path:
    """``metarl deploy FILE`` (module docstring); returns the session folder.

    Raises:
        ConfigError: an invalid file, no token, no robot server, a bad policy file or
            one trained for other spaces than the robot's.
    """
    cfg: DeployConfig = load_robot_file(path, "deploy")
    policy = _policy(cfg.policy, path, "deploy.policy")
    robot_env = _env(cfg, path, "deploy")
    _check_policy(policy, robot_env, path, "deploy.policy")
    returns = np.full((cfg.trials, cfg.episodes_per_trial), np.nan)

    def body(env: Recorder) -> None:
        for trial in range(cfg.trials):
            policy.start_trial()
            for k in range(cfg.episodes_per_trial):
                obs, _ = env.reset(seed=cfg.seed + trial * cfg.episodes_per_trial + k)
                policy.start_episode()
                total = 0.0
                while True:
                    obs, reward, terminated, truncated, info = env.step(policy(obs))
                    policy.observe(float(reward), info.get("command"))
                    total += float(reward)
                    if terminated or truncated:
                        break
                returns[trial, k] = total

    out, summary = _run_session(cfg, robot_env, body, policy.agent)
    summary["returns"] = returns.tolist()
    (out / "session.json").write_text(json.dumps(summary, indent=1))
    curve = " | ".join(
        f"k={k + 1}: {np.nanmean(returns[:, k]):.2f} ± {np.nanstd(returns[:, k]):.2f}"
        for k in range(cfg.episodes_per_trial)
    )
    extra = [
        f"- policy: `{cfg.policy}` ({policy.agent})",
        f"- return of episode k over {cfg.trials} trials: {curve}",
    ]
    (out / "report.md").write_text(_report(f"Deployment {cfg.name}", summary, extra))
    return out


def run_serve(path: str | Path, ready: Any = None, stop: Any = None) -> None:
    """``metarl serve FILE``: serve a simulated robot until interrupted (Ctrl-C, the way a
    server ends: it closes its sessions and returns normally) or until the ``stop`` event
    (``threading.Event``) is set; ``ready`` is called with the server once it listens.

    Raises:
        ConfigError: an invalid file, no token, a target the env refuses, or an address
            it cannot listen on (a port in use: named, with what to do).
    """
    from metarl.sim2real.bridge import RobotServer
    from metarl.sim2real.simulated_robot import SimulatedRobot

    cfg: ServeConfig = load_robot_file(path, "serve")
    token = ServerAddress(host=cfg.host, port=cfg.port, token_env=cfg.token_env).token(
        f"{path}: serve"
    )
    try:
        robot = SimulatedRobot(cfg.target)
    except ValueError as err:
        raise ConfigError(f"{path}: serve.{err}") from None
    try:
        server = RobotServer(robot, token, cfg.host, cfg.port)
    except OSError as err:
        robot.close()
        advice = (
            "stop the program using it (another metarl serve?) or set serve.port to a "
            "free port (0: any free one, printed when serving)"
            if err.errno == errno.EADDRINUSE
            else "set serve.host to an address of this machine and serve.port to a port "
            "you may open (0: any free one)"
        )
        raise ConfigError(
            f"{path}: serve: cannot listen on {cfg.host}:{cfg.port}: "
            f"{err.strerror or err}; {advice}"
        ) from None
    with server:
        print(f"serving {cfg.target.env} on {server.address[0]}:{server.address[1]}", flush=True)
        if ready is not None:
            ready(server)
        try:
            while stop is None or not stop.is_set():
                time.sleep(0.1)
        except KeyboardInterrupt:  # how a server is meant to end: status 0
            print("stopping (Ctrl-C): closing the sessions", flush=True)
    print("stopped", flush=True)
