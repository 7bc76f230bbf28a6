"""What the final meta-test says: the scores and the run's report (``report.md``).

- ``oracle_gap_closed`` and ``metaworld_score``: the scores of docs/benchmarks.md that
  ``results.json`` and the report give;
- ``plot_methods``: the adaptation curves of every method (``adaptation.png``);
- ``render_report``: ``report.md``, what was run and what came out: the setup, the
  return (and success rate) of episode k of every method, the test sets, the oracle
  gap closed, the randomization at the end and the run's files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from metarl.config import ExperimentConfig
from metarl.envs import METAWORLD_ENVS
from metarl.envs.metaworld import ADAPTATION_EPISODES, EVALUATION_EPISODES
from metarl.evaluation import AdaptationResult, plot_adaptation
from metarl.run_folder import CONFIG_FILE, PLOT_FILE, REPORT_FILE, RESULTS_FILE

__all__ = [
    "BASELINE_LABELS",
    "MethodResult",
    "metaworld_score",
    "oracle_gap_closed",
    "plot_methods",
    "render_report",
]

# How the report and ``results.json`` name each of ``evaluation.baselines``.
BASELINE_LABELS = {"random": "random", "multitask": "multi-task", "oracle": "oracle"}


@dataclass
class MethodResult:
    """One row of the final comparison: a method's label, its meta-test result, and
    its meta-training env steps and wall time (``None`` for the random agent)."""

    label: str
    result: AdaptationResult
    train_env_steps: int | None
    train_wall_time: float | None


def oracle_gap_closed(agent: AdaptationResult, methods: Mapping[str, Any]) -> float | None:
    """(agent after adapting - multi-task) / (oracle - multi-task), as
    docs/benchmarks.md#oracle-gap-closed defines it.

    "After adapting" is the agent's last stage: its episode K, or the mean of its last
    ``stage_size`` episodes (MAML: the episodes after the last inner step). The
    baselines do not adapt, so each is its mean over all K episodes. ``None``
    without both baselines or when oracle and multi-task tie.
    """
    if "multitask" not in methods or "oracle" not in methods:
        return None
    multitask = float(methods["multitask"].result.returns.mean())
    oracle = float(methods["oracle"].result.returns.mean())
    if math.isclose(oracle, multitask):
        return None
    final = float(agent.stage_returns()[:, -1].mean())
    return (final - multitask) / (oracle - multitask)


def metaworld_score(
    config: ExperimentConfig, results: Mapping[str, AdaptationResult]
) -> dict[str, Any] | None:
    """Meta-World's score of each method: its success rate over the last
    ``EVALUATION_EPISODES`` episodes of the meta-test (after ``K - 3`` adaptation
    episodes), averaged over tasks, as ``metalearning_evaluation`` computes it
    (``metaworld/evaluation.py``). ``None`` for other envs, or when ``K`` leaves no
    adaptation episode."""
    K = config.evaluation.episodes
    if config.env.id not in METAWORLD_ENVS or K <= EVALUATION_EPISODES:
        return None
    return {
        "adaptation_episodes": K - EVALUATION_EPISODES,
        "evaluation_episodes": EVALUATION_EPISODES,
        "success_rate": {
            name: float(r.successes[:, -EVALUATION_EPISODES:].mean())
            for name, r in results.items()
            if r.successes is not None
        },
    }


def plot_methods(config: ExperimentConfig, methods: Mapping[str, MethodResult], path: Path) -> None:
    """Write the adaptation curves of every method (return, and success rate where there
    is one) to ``path``."""
    plot_adaptation(
        {m.label: m.result for m in methods.values()},
        path,
        title=f"{methods[config.agent.name].label} on {config.env.id}: held-out tasks",
    )


def _fmt_steps(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t < 10:
        return f"{t:.2f} s" if t < 1 else f"{t:.1f} s"
    return f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min"


def _stage_cells(result: AdaptationResult, stage_size: int) -> str:
    """``mean ± std`` over tasks of each stage's return, as table cells."""
    per_stage = result.stage_returns(stage_size)
    return " | ".join(
        f"{mu:.2f} ± {sd:.2f}" for mu, sd in zip(per_stage.mean(0), per_stage.std(0), strict=True)
    )


def _success_cells(result: AdaptationResult, stage_size: int) -> str:
    """Success rate of each stage (its episodes on every test task), as table cells."""
    per_stage = result.stage_successes(stage_size)
    if per_stage is None:
        return " | ".join("-" for _ in result.stages(stage_size))
    return " | ".join(f"{100 * r:.0f}%" for r in per_stage.mean(0))


def _stage_labels(result: AdaptationResult) -> list[str]:
    """Column labels of ``result``'s stages: ``k=3`` or ``k=1-10``."""
    return [
        f"k={r.start + 1}" if len(r) == 1 else f"k={r.start + 1}-{r.stop}" for r in result.stages()
    ]


def _success_lines(
    config: ExperimentConfig,
    methods: Mapping[str, MethodResult],
    other_sets: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """The report's section on success rates, where the env gives a success flag (none
    otherwise), with Meta-World's score for Meta-World runs."""
    main = methods[config.agent.name].result
    if main.successes is None:
        return []
    labels = _stage_labels(main)
    header = ["| method | " + " | ".join(labels) + " |", "| --- |" + " ---: |" * len(labels)]
    lines = [
        "",
        "## Success rate of episode k (share of test tasks)",
        "",
        "An episode succeeds if the env's success flag (`info['success']`) is set at any "
        "of its steps.",
        "",
        *header,
        *(f"| {m.label} | {_success_cells(m.result, main.stage_size)} |" for m in methods.values()),
    ]
    for set_name, test_set in other_sets.items():
        lines += ["", f"Test set `{set_name}`:", "", *header]
        lines += [
            f"| {methods[name].label} | {_success_cells(result, main.stage_size)} |"
            for name, result in test_set["methods"].items()
        ]
    score = metaworld_score(config, {name: m.result for name, m in methods.items()})
    if score is not None:
        n_adapt, K = score["adaptation_episodes"], config.evaluation.episodes
        rates = ", ".join(
            f"{methods[name].label} {100 * rate:.1f}%"
            for name, rate in score["success_rate"].items()
        )
        lines += [
            "",
            f"Meta-World's score (`metalearning_evaluation` in `metaworld/evaluation.py`): "
            f"the success rate of episodes {n_adapt + 1}-{K}, after {n_adapt} adaptation "
            f"episodes, over the test tasks: {rates}."
            + (
                ""
                if n_adapt == ADAPTATION_EPISODES
                else f" Meta-World adapts for {ADAPTATION_EPISODES} episodes, this run for "
                f"{n_adapt} (K = {K})."
            ),
        ]
    return lines


def _baselines_line(config: ExperimentConfig) -> str:
    """The report's line on the baselines: which, and how the trained ones were trained."""
    names = config.evaluation.baselines
    line = f"- Baselines: {', '.join(BASELINE_LABELS[b] for b in names) or 'none'}"
    trained = [BASELINE_LABELS[b] for b in names if b in ("multitask", "oracle")]
    if not trained:
        return line + "."
    bt = config.evaluation.baseline_training
    budget = (
        " with the agent's env-step budget" if bt.steps is None else f" for {bt.steps:,} env steps"
    )
    action = "with the mean action" if bt.deterministic else "sampling actions"
    return (
        f"{line}; {' and '.join(trained)} trained with Stable-Baselines3 "
        f"{bt.algorithm.upper()} on the same training tasks{budget}, evaluated {action}."
    )


def render_report(
    config: ExperimentConfig,
    methods: Mapping[str, MethodResult],
    gap: float | None,
    other_sets: Mapping[str, Mapping[str, Any]],
    *,
    iteration: int,
    eval_time: float,
    trained: Mapping[str, float],
    run_dir: str = ".",
    run_has_report: bool = True,
    randomization: Mapping[str, Any] | None = None,
) -> str:
    """The text of ``report.md``.

    Args:
        config: the run's config.
        methods: the agent's row (under ``config.agent.name``) and the baselines'.
        gap: ``oracle_gap_closed``.
        other_sets: each of ``evaluation.test_sets`` as ``results.json`` holds it, with
            ``methods``: method name -> its ``AdaptationResult`` on the set.
        iteration: the meta-training iterations done.
        eval_time: the seconds of the final meta-test, baseline training included.
        trained: label -> wall time of the baselines trained in this call.
        run_dir: the run folder relative to the report's (a re-evaluation's is ``../..``).
        run_has_report: whether that folder has a report of its own (a run that stopped
            before its end has none).
        randomization: the randomization at the end of training (``schedule``,
            ``state``), as ``results.json`` holds it; ``None`` without one.
    """
    agent_name = config.agent.name
    main = methods[agent_name]
    K = config.evaluation.episodes
    stages = main.result.stages()
    labels = _stage_labels(main.result)
    final = labels[-1].replace("k=", "episode " if len(stages[-1]) == 1 else "episodes ")
    s = config.sampler
    sampler = (
        f"Ray, {s.num_workers} workers x {s.num_envs} envs"
        if s.kind == "ray"
        else f"local, {s.num_envs} envs"
    )
    hyper = ", ".join(f"{k}={v}" for k, v in config.agent.hyperparameters().items())
    lines = [
        f"# {main.label} on {config.env.id}",
        "",
        f"Run `{config.run.name}`, written {datetime.now().isoformat(timespec='seconds')}.",
        *(
            []
            if run_dir == "."
            else [
                "",
                f"A re-evaluation (`metarl eval`) of the run in [{run_dir}]({run_dir}/): its "
                f"checkpoint of iteration {iteration}, K = {K} episodes per task; "
                + (
                    f"the run's own results and report are in "
                    f"[{run_dir}/{REPORT_FILE}]({run_dir}/{REPORT_FILE})."
                    if run_has_report
                    else "the run has no report of its own (it stopped before its end)."
                ),
            ]
        ),
        "",
        "## What was run",
        "",
        f"- Environment: `{config.env.id}`"
        + (f" with {config.env.kwargs}" if config.env.kwargs else "")
        + f"; {config.env.n_train} training tasks, {config.env.n_test} held-out test tasks "
        f"(task seed {config.env.task_seed}).",
        f"- Agent: `{agent_name}` ({hyper}).",
        f"- Meta-training: {iteration} of {config.trainer.iterations} iterations, "
        f"{_fmt_steps(main.train_env_steps)} env steps, {_fmt_time(main.train_wall_time)} "
        f"of collection and updates; sampler: {sampler}.",
        _baselines_line(config),
        f"- Meta-test: K = {K} consecutive episode{'s' if K != 1 else ''} on each of the "
        f"{config.env.n_test} test tasks, every method on the same tasks and reset seeds "
        f"({_fmt_time(eval_time)}"
        + (
            ", of which "
            + " and ".join(f"{_fmt_time(t)} training the {n} baseline" for n, t in trained.items())
            if trained
            else ""
        )
        + ").",
        f"- Seeds: run {config.run.seed}, tasks {config.env.task_seed}, sampler "
        f"{config.sampler.seed}, trainer {config.trainer.seed}. One seed: "
        'the benchmark protocol (docs/benchmarks.md in the metarl repository, "Seeds") '
        "asks for >= 3 for a published number.",
        "",
        "## Return of episode k (mean ± std over test tasks)",
        "",
        "Every method meets the same start states on each (task, k), so the differences "
        "between methods are paired; a trend over k that all of them share"
        + (", random included," if "random" in methods else "")
        + " comes from those start states, not from adaptation."
        + (
            f" A column `k=a-b` is the mean return of episodes a..b, the {main.result.stage_size} "
            f"episodes that {main.label} runs between two adaptation steps."
            if main.result.stage_size > 1
            else ""
        ),
        "",
        "| method | " + " | ".join(labels) + " | env steps | wall time |",
        "| --- | " + " | ".join("---:" for _ in labels) + " | ---: | ---: |",
    ]
    for m in methods.values():
        lines.append(
            f"| {m.label} | {_stage_cells(m.result, main.result.stage_size)} | "
            f"{_fmt_steps(m.train_env_steps)} | {_fmt_time(m.train_wall_time)} |"
        )
    for set_name, test_set in other_sets.items():
        lines += [
            "",
            f"## Test set `{set_name}`",
            "",
            f"{test_set['tasks']} tasks (task seed {test_set['task_seed']}) of `{config.env.id}` "
            f"with {test_set['env_kwargs']}"
            + (f" and effects {test_set['effects']}" if test_set["effects"] else "")
            + "; the same meta-test.",
            "",
            "| method | " + " | ".join(labels) + " |",
            "| --- | " + " | ".join("---:" for _ in labels) + " |",
        ]
        for name, result in test_set["methods"].items():
            lines.append(
                f"| {methods[name].label} | {_stage_cells(result, main.result.stage_size)} |"
            )
    lines += _success_lines(config, methods, other_sets)
    lines += ["", "## Oracle gap closed", ""]
    if gap is None:
        lines.append(
            "Not defined: it needs both the multi-task and the oracle baseline, with "
            "different returns."
        )
    else:
        lines.append(
            f"**{gap:.2f}** = ({main.label} {final} - multi-task) / (oracle - multi-task), "
            'as docs/benchmarks.md in the metarl repository defines it ("Oracle gap closed"); '
            "the baselines do not adapt, so each counts "
            "as its mean over "
            f"the {K} episodes. 1 means the agent matches the oracle after {K} episodes; 0 "
            "means it does no better than the multi-task policy."
        )
    run = "" if run_dir == "." else f"{run_dir}/"
    lines += [
        "",
        "## Files",
        "",
        f"- [{PLOT_FILE}]({PLOT_FILE}): adaptation curves.",
        f"- [{RESULTS_FILE}]({RESULTS_FILE}): every method's returns per task and episode.",
        f"- [metrics.csv]({run}metrics.csv) (per iteration), [eval.csv]({run}eval.csv) "
        f"(periodic meta-tests), their columns explained in [columns.md]({run}columns.md); "
        f"`{run}tb/` (TensorBoard), `{run}checkpoints/`.",
        f"- [{CONFIG_FILE}]({run}{CONFIG_FILE}): the resolved config "
        f"(`metarl train {CONFIG_FILE}` reruns it).",
        "",
    ]
    report = "\n".join(lines)
    if randomization is not None:
        report += (
            f"\n## Randomization\n\nSchedule `{randomization['schedule']}`; at the end: "
            + ", ".join(f"{k} = {v:.4g}" for k, v in randomization["state"].items())
            + f". The final distribution is in [{RESULTS_FILE}]({RESULTS_FILE}) "
            "(`randomization.params`, PhysicsParam dicts).\n"
        )
    return report
