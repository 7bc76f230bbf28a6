"""``metarl sysid``: fit a learned simulator to data recorded on a target, leave a report.

A sysid file::

    sysid:
      name: hopper_torso                 # the output folder: <root>/<name>-<timestamp>
      target: {...}                      # a TargetConfig (metarl.sim2real.targets)
      # or data: {dataset: pendulum/random-v0, root: SESSION/dataset}: a recording
      #   (metarl record) instead of a target; no truth then, so no recovery errors
      episodes: 5                        # real episodes to record
      max_steps: 200                     # at most this many steps each
      excitation: {kind: multisine, f_min: 0.5, f_max: 5, amplitude: 0.5}
                                         # what drives the target while it is recorded
      simulator:
        env: Hopper-v5
        env_kwargs: {}
        action_delay: 0                  # the system's known command delay (control steps)
        params:                          # what to fit: PhysicsParam dicts with bounds
          torso_mass:
            {field: body_mass, elements: [torso], dist: {kind: uniform, low: 0.5, high: 3}}
        state_from_observation: null     # "module:function" for data without states whose
                                         #   observation is not the state (sysid_data)
      method: trajectory_matching        # trajectory_matching (intervals) | dropo
      options: {budget: 200}             # keyword arguments of the fit
      seed: 0
      root: runs/sysid

``excitation`` (``metarl.sim2real.excitation``; default ``random``) is one of
``random`` (uniform random actions), ``multisine`` and ``chirp`` (per actuator, in the
band ``[f_min, f_max]`` Hz, ``amplitude`` a share of each actuator's half-range),
``pd_hold`` (a PD controller holding the reset pose, gains ``kp``, ``kd``, plus noise
``noise_std``) and ``policy`` (``path``: a policy ``metarl export`` wrote, plus noise
``noise_std``); a bare kind (``excitation: pd_hold``) takes its defaults. Its signals
last ``max_steps`` steps (the target env's own limit without one) and draw from one
generator seeded ``SeedSequence(seed).spawn(1)[0]``, episode after episode; ``pd_hold``
reads the target's joint positions and velocities as a robot's encoders give them. The
older ``controller: random`` is refused with the new spelling (``excitation: random``).

The folder gets ``real_episodes.npz`` (every recorded step: observations, actions,
rewards, next observations, terminations, truncations, the step infos with the
recorded states, per episode), ``fit.json`` (the ``FitResult``, the hidden truth, the
recovery errors and whether each 95% interval holds the truth), ``report.md`` (its
warnings first), ``estimates.png`` (estimate, 95% interval and truth per parameter),
``predictions.png`` (the held-out episodes predicted open loop, simulated against
real, at the nominal and the fitted parameters) and
``randomization.yaml``: a config ``randomization`` section with the fitted
distribution, to train on the learned simulator (``metarl train CONFIG`` with it).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from metarl.config import ConfigError, PhysicsParamDicts, read_yaml, validation_message
from metarl.envs import PhysicsParam, params_from_dicts
from metarl.episodes import Episode
from metarl.sim2real.excitation import (
    EXCITATION_KINDS,
    Excitation,
    ExcitationConfig,
    RandomExcitation,
    excite,
)
from metarl.sim2real.sysid import (
    FitResult,
    Simulator,
    fit_dropo,
    fit_trajectory_matching,
    param_mismatches,
)
from metarl.sim2real.sysid_data import load_state_function
from metarl.sim2real.sysid_plots import plot_estimates, plot_held_out
from metarl.sim2real.targets import Target, TargetConfig

__all__ = ["SimulatorConfig", "SysidConfig", "load_sysid", "run_sysid", "save_episodes"]

FITS: dict[str, Callable[..., FitResult]] = {
    "dropo": fit_dropo,
    "trajectory_matching": fit_trajectory_matching,
}


class SimulatorConfig(BaseModel):
    """The simulator to fit and the parameters to fit in it."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(min_length=1)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    params: PhysicsParamDicts = Field(min_length=1)
    action_delay: int = Field(default=0, ge=0)
    """The system's known command delay in control steps (``Simulator.action_delay``)."""
    state_from_observation: str | None = None
    """``"package.module:function"``, observation -> state, for recorded data without
    states whose observation is not the state (``metarl.sim2real.sysid_data``)."""

    def physics_params(self) -> dict[str, PhysicsParam]:
        return params_from_dicts(self.params)


class RecordedData(BaseModel):
    """Real data recorded before (``metarl record``): a Minari dataset."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    root: str = Field(min_length=1)
    """The folder holding the dataset (a session folder's ``dataset/``)."""
    actions: Literal["sent", "policy"] = "sent"
    """Fit to the commands as sent after the safety layer (default) or as the policy gave them."""


class SysidConfig(BaseModel):
    """A system-identification run (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[\w.+-]+$")
    target: TargetConfig | None = None
    data: RecordedData | None = None
    episodes: int = Field(default=5, ge=1)
    max_steps: int | None = Field(default=200, ge=1)
    excitation: ExcitationConfig = Field(default_factory=RandomExcitation)
    simulator: SimulatorConfig
    method: Literal["dropo", "trajectory_matching"] = "trajectory_matching"
    options: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0)
    root: str = "runs/sysid"

    @model_validator(mode="before")
    @classmethod
    def _no_controller(cls, data: Any) -> Any:
        if isinstance(data, dict) and "controller" in data:
            raise ValueError(
                f"controller: {data['controller']!r}: what drives the target is the "
                "excitation section: write excitation: {kind: random} (the default); "
                f"kinds: {', '.join(EXCITATION_KINDS)} (metarl.sim2real.excitation)"
            )
        return data

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        method = info.data.get("method")
        if method is None:
            return value
        params = inspect.signature(FITS[method]).parameters
        allowed = [p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY]
        own = ("seed", "state_from_observation")  # set by the file's own fields
        unknown = [k for k in value if k not in allowed or k in own]
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} of {method}; "
                f"allowed: {', '.join(a for a in allowed if a not in own)}"
            )
        return value

    @model_validator(mode="after")
    def _same_quantities(self) -> SysidConfig:
        if (self.target is None) == (self.data is None):
            raise ValueError("give exactly one of target (record here) and data (recorded)")
        if self.target is None:
            return self
        hidden = self.target.physics
        unknown = [name for name in self.simulator.params if hidden and name not in hidden]
        if unknown:
            raise ValueError(
                f"simulator.params {', '.join(map(repr, unknown))} not in target.physics, "
                f"so there is no truth to compare the fit with; target.physics names: "
                f"{', '.join(hidden)} (a quantity the target leaves nominal: give it there "
                "with a fixed value)"
            )
        wrong = param_mismatches(self.simulator.params, hidden)
        if wrong:
            raise ValueError(
                "simulator.params and target.physics name different quantities, so the "
                f"recovery errors would be meaningless: {'; '.join(wrong)}"
            )
        return self


def load_sysid(path: str | Path) -> SysidConfig:
    """The validated sysid file ``path``.

    Raises:
        ConfigError: unreadable file, no ``sysid`` section, or invalid fields (named).
    """
    raw = read_yaml(path)
    if set(raw) != {"sysid"}:
        raise ConfigError(f"{path}: a sysid file holds one section, sysid (found {sorted(raw)})")
    try:
        return SysidConfig.model_validate(raw["sysid"])
    except ValidationError as err:
        message = validation_message(err, "sysid", model=SysidConfig)
        raise ConfigError(f"{path}: invalid sysid:\n  {message}") from None


def save_episodes(episodes: list[Episode], path: Path) -> None:
    """Every recorded step of ``episodes`` in one ``.npz`` (arrays ``<field>_<i>``)."""
    arrays: dict[str, np.ndarray] = {}
    for i, e in enumerate(episodes):
        arrays[f"observations_{i}"] = e.observations
        arrays[f"actions_{i}"] = e.actions
        arrays[f"rewards_{i}"] = e.rewards
        arrays[f"next_observations_{i}"] = e.next_observations
        arrays[f"terminations_{i}"] = e.terminations
        arrays[f"truncations_{i}"] = e.truncations
        for key, value in e.env_infos.items():
            arrays[f"info.{key}_{i}"] = value
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def run_sysid(path: str | Path, now: datetime | None = None) -> Path:
    """Record on the target, fit, write the folder (module docstring); return it.

    Raises:
        ConfigError: an invalid file, or a target or simulator that the env refuses.
    """
    cfg = load_sysid(path)
    if cfg.data is not None:
        from metarl.sim2real.recording import load_episodes

        try:
            recorded = load_episodes(cfg.data.dataset, cfg.data.root, cfg.data.actions)
        except ValueError as err:
            raise ConfigError(f"{path}: sysid.data: {err}") from None
    try:
        target = None if cfg.target is None else Target(cfg.target)
        excitation = None if target is None else _excitation(target, cfg)
        sim = Simulator(
            cfg.simulator.env,
            cfg.simulator.physics_params(),
            cfg.simulator.env_kwargs,
            action_delay=cfg.simulator.action_delay,
        )
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from None
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    out = Path(cfg.root) / f"{cfg.name}-{stamp}"
    out.mkdir(parents=True, exist_ok=False)
    if target is None:
        episodes, truth = recorded, {}
    else:
        assert excitation is not None
        # The excitation's own stream: the fit's draws come from default_rng(seed).
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0])
        episodes = excite(target, excitation, cfg.episodes, cfg.max_steps, rng)
        save_episodes(episodes, out / "real_episodes.npz")
        truth = target.hidden_truth()
        target.close()
    try:
        state_fn = cfg.simulator.state_from_observation
        result: FitResult = FITS[cfg.method](
            sim,
            episodes,
            seed=cfg.seed,
            state_from_observation=None if state_fn is None else load_state_function(state_fn),
            **cfg.options,
        )
    except (TypeError, ValueError) as err:  # the recorded data is kept in the folder
        raise ConfigError(f"{path}: the fit stopped: {err} (the recording is in {out})") from None
    finally:
        sim.close()
    scalar_truth = {k: float(v) for k, v in truth.items() if np.ndim(v) == 0}
    errors = result.recovery_error(truth)
    covered = result.covers(truth)
    (out / "fit.json").write_text(
        json.dumps(
            {
                **result.to_dict(),
                "truth": truth,
                "recovery_error": errors,
                "truth_in_interval": covered,
                "config": cfg.model_dump(),
            },
            indent=1,
            default=str,
        )
    )
    section = {
        "randomization": {
            "schedule": "uniform",
            "params": {n: p.to_dict() for n, p in result.distribution.items()},
        }
    }
    (out / "randomization.yaml").write_text(
        f"# The {result.method} fit of {cfg.name} as a config section: train on the learned "
        "simulator\n# by putting it into an experiment config (env.id: "
        f"{cfg.simulator.env}).\n" + yaml.safe_dump(section, sort_keys=False)
    )
    plot_estimates(result, scalar_truth, out / "estimates.png")
    if result.held_out:
        plot_held_out(result, sim.labels, out / "predictions.png")
    report = result.report(scalar_truth or None)
    if cfg.target is not None:
        source = (
            f"Target `{cfg.target.env}` (hidden physics and effects: "
            f"{[e['name'] for e in cfg.target.effects] or 'none'}), excitation "
            f"`{cfg.excitation.label()}`, seed {cfg.seed}. Files: `real_episodes.npz` (the "
            "recorded data), "
        )
    else:
        assert cfg.data is not None
        source = (
            f"Recorded data: dataset `{cfg.data.dataset}` under `{cfg.data.root}` "
            f"({len(episodes)} episodes, actions as {cfg.data.actions}), seed {cfg.seed}. "
            "Files: "
        )
    report += (
        f"\n{source}`fit.json`, `randomization.yaml` (the fitted distribution as a config "
        "section), ![estimates](estimates.png)"
        + (" ![held-out predictions](predictions.png)" if result.held_out else "")
        + "\n"
    )
    (out / "report.md").write_text(report)
    return out


def _excitation(target: Target, cfg: SysidConfig) -> Excitation:
    """The file's excitation bound to the target (module docstring).

    Raises:
        ValueError: an excitation the target cannot take (named).
    """
    env = target.env  # the system itself: pd_hold reads its joints as encoders would
    length = cfg.max_steps or getattr(env.spec, "max_episode_steps", None)
    try:
        return cfg.excitation.build(env, length)
    except ValueError as err:
        target.close()
        raise ValueError(f"sysid.excitation: {err}") from None


def summary(folder: Path) -> str:
    """What a sysid folder's fit found, for the terminal: each estimate with its 95%
    interval, the discrepancy beside the noise floor, and the warnings first."""
    fit = json.loads((folder / "fit.json").read_text())
    lines = [f"WARNING: {w}" for w in fit["warnings"]]
    lines.append(
        f"{fit['method']}: discrepancy nominal {fit['discrepancy_nominal']:.3g} -> fitted "
        f"{fit['discrepancy_fitted']:.3g} (noise floor {fit['noise_floor']:.3g})"
    )
    label = "95% interval" if fit["interval_is_confidence"] else "randomization range"
    for name, value in fit["estimates"].items():
        lo, hi = fit["interval"][name]
        flag = "  NOT IDENTIFIED" if name in fit["not_identified"] else ""
        truth = fit["truth"].get(name)
        known = f"  (truth {truth:.4g})" if isinstance(truth, float) else ""
        lines.append(f"  {name}: {value:.4g}  {label} [{lo:.4g}, {hi:.4g}]{flag}{known}")
    return "\n".join(lines)
