"""``metarl transfer``: a trained agent on its source and on a target, side by side.

A transfer file::

    transfer:
      name: hopper_to_heavy
      run: runs/ppo_hopper-...           # a run folder (any agent; its latest checkpoint)
      target: {...}                      # a TargetConfig (metarl.sim2real.targets)
      trials: 10                         # trials on the target
      episodes: 3                        # K per trial (default: the run's evaluation.episodes)
      max_steps: null                    # cut target episodes (default: the env's horizon)
      fit: runs/sysid/...                # optional: a metarl sysid folder, for its recovery errors
      seed: 0
      root: runs/transfer

The agent runs the meta-test protocol (``evaluate_adaptation``) on the run's held-out
test tasks in simulation (the source) and, through ``TargetSampler``, on the target:
``trials`` trials of K consecutive episodes, so a meta-RL agent (RL2, PEARL, MAML)
adapts online on the target and the report shows its adaptation curve there. The
folder gets ``transfer.json`` (both ``AdaptationResult``s, the gap, the real data
used, the fit's recovery errors), ``report.md`` and ``transfer.png`` (return of each
episode k, source and target).

The gap is source minus target, each the mean return of the last episode (the
agent's last adaptation stage).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from metarl.build import eval_sampler, task_sets
from metarl.config import ConfigError, read_yaml, validation_message
from metarl.evaluation import AdaptationResult, evaluate_adaptation, plot_adaptation
from metarl.runner import load_trained_agent
from metarl.schema import RunFolderError
from metarl.sim2real.sysid import param_mismatches, relative_errors
from metarl.sim2real.targets import Target, TargetConfig, TargetSampler
from metarl.tasks import RealTask

__all__ = ["TransferConfig", "load_transfer", "run_transfer"]


class TransferConfig(BaseModel):
    """A transfer evaluation (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[\w.+-]+$")
    run: str = Field(min_length=1)
    target: TargetConfig
    trials: int = Field(default=10, ge=1)
    episodes: int | None = Field(default=None, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    fit: str | None = None
    seed: int = Field(default=0, ge=0)
    root: str = "runs/transfer"


def load_transfer(path: str | Path) -> TransferConfig:
    """The validated transfer file ``path``.

    Raises:
        ConfigError: unreadable file, no ``transfer`` section, or invalid fields (named).
    """
    raw = read_yaml(path)
    if set(raw) != {"transfer"}:
        raise ConfigError(
            f"{path}: a transfer file holds one section, transfer (found {sorted(raw)})"
        )
    try:
        return TransferConfig.model_validate(raw["transfer"])
    except ValidationError as err:
        message = validation_message(err, "transfer")
        raise ConfigError(f"{path}: invalid transfer:\n  {message}") from None


def _final(result: AdaptationResult) -> float:
    return float(result.stage_returns()[:, -1].mean())


def run_transfer(path: str | Path, now: datetime | None = None) -> Path:
    """Evaluate on source and target, write the folder (module docstring); return it.

    Raises:
        ConfigError: an invalid file, a run folder without checkpoint, an agent that needs
            task information in its observations (an oracle), or a target the env refuses.
    """
    cfg = load_transfer(path)
    if cfg.fit is not None:
        fit_file = Path(cfg.fit) / "fit.json"
        if not fit_file.exists():
            raise ConfigError(f"{path}: transfer.fit: {cfg.fit} holds no fit.json (a sysid folder)")
        fitted = json.loads(fit_file.read_text())["distribution"]
        wrong = param_mismatches(fitted, cfg.target.physics)
        if wrong:
            raise ConfigError(
                f"{path}: transfer.fit: the fit's parameters and target.physics name "
                f"different quantities: {'; '.join(wrong)}"
            )
    try:
        config, agent, state = load_trained_agent(cfg.run)
    except RunFolderError as err:
        raise ConfigError(f"{path}: transfer.run: {err}") from None
    if agent.env_wrappers:
        raise ConfigError(
            f"{path}: transfer.run: the agent observes its task (an oracle); "
            "a target does not say it"
        )
    K = cfg.episodes or config.evaluation.episodes
    test = task_sets(config).test
    sampler = eval_sampler(config, agent, test)
    try:
        source = evaluate_adaptation(agent, sampler, test, K)
    finally:
        sampler.close()
    try:
        target = Target(cfg.target)
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from None
    truth = target.hidden_truth()
    dt = target.dt
    on_target = TargetSampler(target, seed=cfg.seed, max_steps=cfg.max_steps)
    trials = [RealTask(system=f"target:{cfg.target.env}")] * cfg.trials
    try:
        result = evaluate_adaptation(agent, on_target, trials, K)
    finally:
        on_target.close()
    steps = int(result.env_steps)
    recovery = _recovery(cfg.fit, truth)
    gap = _final(source) - _final(result)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    out = Path(cfg.root) / f"{cfg.name}-{stamp}"
    out.mkdir(parents=True, exist_ok=False)
    label = f"{config.agent.name} ({Path(cfg.run).name})"
    plot_adaptation(
        {f"source: {config.env.id}": source, f"target: {cfg.target.env}": result},
        out / "transfer.png",
        title=f"{label}: source and target",
    )
    data = {
        "run": cfg.run,
        "iteration": int(state["iteration"]),
        "episodes": K,
        "source": {"env": config.env.id, "tasks": len(test), **source.to_dict()},
        "target": {"config": cfg.target.model_dump(), "trials": cfg.trials, **result.to_dict()},
        "gap": gap,
        "target_env_steps": steps,
        "target_seconds": None if dt is None else steps * dt,
        "hidden_truth": truth,
        "recovery_error": recovery,
    }
    (out / "transfer.json").write_text(json.dumps(data, indent=1, default=str))
    (out / "report.md").write_text(_report(cfg, label, config.env.id, source, result, data))
    return out


def _recovery(fit_dir: str | None, truth: dict[str, Any]) -> dict[str, float] | None:
    """Relative recovery errors of a sysid folder's estimates against the hidden truth."""
    if fit_dir is None:
        return None
    fit_file = Path(fit_dir) / "fit.json"  # checked before anything ran
    return relative_errors(json.loads(fit_file.read_text())["estimates"], truth)


def _report(
    cfg: TransferConfig,
    label: str,
    source_env: str,
    source: AdaptationResult,
    target: AdaptationResult,
    data: dict[str, Any],
) -> str:
    k = source.returns.shape[1]
    header = "| where | " + " | ".join(f"k={i + 1}" for i in range(k)) + " |"
    lines = [
        f"# Transfer of {label}",
        "",
        f"- source: `{source_env}`, {len(source.returns)} held-out test tasks",
        f"- target: `{cfg.target.env}` with hidden physics "
        f"{sorted(cfg.target.physics) or 'none'} and effects "
        f"{[e['name'] for e in cfg.target.effects] or 'none'}; {cfg.trials} trials",
        f"- K = {k} consecutive episodes per task / trial (the agent adapts across them)",
        f"- real data used on the target: {data['target_env_steps']} env steps"
        + (
            ""
            if data["target_seconds"] is None
            else f" ({data['target_seconds']:.1f} s of control)"
        ),
        "",
        "## Return of episode k (mean ± std)",
        "",
        header,
        "|---|" + "---:|" * k,
    ]
    for name, r in (("source", source), ("target", target)):
        cells = " | ".join(
            f"{m:.2f} ± {s:.2f}" for m, s in zip(r.returns.mean(0), r.returns.std(0), strict=True)
        )
        lines.append(f"| {name} | {cells} |")
    lines += [
        "",
        f"Gap (source - target, last episode): **{data['gap']:.2f}**.",
    ]
    if data["recovery_error"]:
        lines += [
            "",
            "Recovery error of the fit (`"
            + str(cfg.fit)
            + "`), relative: "
            + ", ".join(f"{n} {e:.3f}" for n, e in data["recovery_error"].items())
            + ".",
        ]
    lines += ["", "![return of episode k on source and target](transfer.png)", ""]
    return "\n".join(lines)
