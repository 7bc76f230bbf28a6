"""The ``metarl`` command line: run experiments, list and check environments, run the demo.

metarl train CONFIG [key.sub=value ...] [--run-dir DIR]
                                     meta-train, evaluate against baselines, write a run folder
metarl train --resume RUN_DIR [CONFIG] [key.sub=value ...]
                                     continue a stopped run from its latest checkpoint
metarl eval RUN_DIR [--episodes K]   re-run the final meta-test of a run folder
metarl sweep STUDY.yaml              a grid or random search over config fields (Ray Tune)
metarl sysid SYSID.yaml              record on a target, fit a learned simulator, write a report
metarl transfer TRANSFER.yaml        a trained agent on its source and on a target, a report
metarl export RUN_DIR OUT.onnx       a trained policy as ONNX, checked against PyTorch
metarl serve SERVE.yaml              a simulated robot served over the network bridge
metarl record RECORD.yaml            recorded episodes on a robot (Minari), timing, a report
metarl deploy DEPLOY.yaml            an exported policy run on a robot, recorded, a report
metarl envs                          the registered task environments and their task sets
metarl tasks ENV_ID [--seed S]       reproducible train/test task sets as JSON lines
metarl check ENV_ID [ENV_ID ...]     run the task-environment checker
metarl demo [--out DIR]              the demo of ``make demo``

Errors in a config or a run folder print one message naming the field and exit
with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

import gymnasium as gym

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import TASK_ENVS, task_distribution


def _envs(args: argparse.Namespace) -> int:
    print(f"{'id':30} {'horizon':>7} {'train/test':>10}  task support")
    for env_id, (_entry, horizon, n_train, n_test) in TASK_ENVS.items():
        env = gym.make(env_id)
        support = task_distribution(env).support
        env.close()
        text = "; ".join(f"{k}: {v}" for k, v in support.items())
        if len(text) > 70 and not args.full:
            text = text[:67] + "..."
        print(f"{env_id:30} {horizon:>7} {f'{n_train}/{n_test}':>10}  {text}")
    return 0


def _known(env_id: str) -> None:
    if env_id not in gym.registry:
        names = ", ".join(TASK_ENVS)
        raise SystemExit(f"error: unknown environment {env_id!r}; registered task envs: {names}")


def _tasks(args: argparse.Namespace) -> int:
    _known(args.env_id)
    env = gym.make(args.env_id)
    default = TASK_ENVS.get(args.env_id, ("", 0, 5, 5))
    n_train = default[2] if args.train is None else args.train
    n_test = default[3] if args.test is None else args.test
    sets = task_distribution(env).task_sets(args.seed, n_train, n_test)
    for split, tasks in (("train", sets.train), ("test", sets.test)):
        for i, task in enumerate(tasks):
            print(json.dumps({"split": split, "index": i, "task": task.to_dict()}))
    return 0


def _check(args: argparse.Namespace) -> int:
    from metarl.envs.checker import TaskEnvCheckError, check_task_env

    failed = 0
    for env_id in args.env_ids:
        _known(env_id)
        try:
            check_task_env(gym.make(env_id), seed=args.seed)
        except TaskEnvCheckError as err:
            failed += 1
            print(f"FAIL {env_id}: {err}")
        else:
            print(f"ok   {env_id}")
    return 1 if failed else 0


def _demo(args: argparse.Namespace) -> int:
    from metarl import demo

    demo.main(["--out", args.out, "--tasks", str(args.tasks), "--seed", str(args.seed)])
    return 0


def _split_config_arg(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """CONFIG is optional with ``--resume``: a first argument with ``=`` that is no file
    is an override."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).exists():
        return None, [config, *overrides]
    return config, overrides


def _print_outcome(run_dir: Path) -> None:
    from metarl.evaluation import AdaptationResult
    from metarl.runner import PLOT_FILE, REPORT_FILE, RESULTS_FILE

    results = json.loads((run_dir / RESULTS_FILE).read_text())
    k = results["episodes"]
    methods = {n: AdaptationResult.from_dict(m) for n, m in results["methods"].items()}
    size = methods[results["agent"]].stage_size
    what = "episode k" if size == 1 else f"episodes k..k+{size - 1} (one adaptation stage)"
    print(f"\nreturn of {what} on {results['test_tasks']} held-out tasks (mean ± std):")
    for name, result in methods.items():
        per_stage = result.stage_returns(size)
        cells = "  ".join(
            f"{mu:8.2f} ± {sd:6.2f}"
            for mu, sd in zip(per_stage.mean(0), per_stage.std(0), strict=True)
        )
        print(f"  {results['methods'][name]['label']:12} {cells}")
    rated = {n: r.stage_successes(size) for n, r in methods.items()}
    if any(rate is not None for rate in rated.values()):
        print(f"success rate of {what} (success flag set at any step):")
        for name, rate in rated.items():
            cells = "-" if rate is None else "  ".join(f"{100 * r:7.0f}%" for r in rate.mean(0))
            print(f"  {results['methods'][name]['label']:12} {cells}")
    score = results.get("metaworld")
    if score is not None:
        print(
            f"Meta-World's score (success rate of the last {score['evaluation_episodes']} "
            f"episodes, after {score['adaptation_episodes']}): "
            + ", ".join(
                f"{results['methods'][n]['label']} {100 * r:.1f}%"
                for n, r in score["success_rate"].items()
            )
        )
    if results["oracle_gap_closed"] is not None:
        print(f"oracle gap closed after {k} episodes: {results['oracle_gap_closed']:.2f}")
    print(f"run folder: {run_dir}")
    print(f"report:     {run_dir / REPORT_FILE}")
    print(f"plot:       {run_dir / PLOT_FILE}")


def _train(args: argparse.Namespace) -> int:
    from metarl.config import load_config
    from metarl.runner import load_run_config, run_experiment

    config_path, overrides = _split_config_arg(args)
    if args.resume is not None:
        if args.run_dir is not None:
            args.parser.error("give either --resume RUN_DIR or --run-dir DIR, not both")
        config = load_run_config(args.resume, config_path, overrides)
        run_dir = run_experiment(config, args.resume, resume=True)
    else:
        if config_path is None:
            args.parser.error("metarl train needs a CONFIG file (or --resume RUN_DIR)")
        config = load_config(config_path, overrides)
        run_dir = run_experiment(config, args.run_dir)
    _print_outcome(run_dir)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from metarl.runner import evaluate_run

    _print_outcome(evaluate_run(args.run_dir, args.episodes))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from metarl.sweep import REPORT_FILE, run_study

    try:
        study_dir = run_study(args.study, address=args.address, num_cpus=args.num_cpus)
    except RuntimeError as err:  # trials failed after their retries; the report is written
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"study folder: {study_dir}")
    print(f"report:       {study_dir / REPORT_FILE}")
    return 0


def _sysid(args: argparse.Namespace) -> int:
    # sim2real sits above the core: the command reaches it by name, at run time.
    commands = importlib.import_module("metarl.sim2real.commands")
    out = commands.run_sysid(args.file)
    print(f"sysid folder: {out}")
    print(f"report:       {out / 'report.md'}")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    transfer = importlib.import_module("metarl.sim2real.transfer")  # above the core: by name
    out = transfer.run_transfer(args.file)
    print(f"transfer folder: {out}")
    print(f"report:          {out / 'report.md'}")
    return 0


def _robot_command(args: argparse.Namespace) -> int:
    # The robot side (metarl.sim2real, no torch) is reached by name, at run time.
    commands = importlib.import_module("metarl.sim2real.robot_commands")
    if args.command == "serve":
        commands.run_serve(args.file)
        return 0
    out = getattr(commands, f"run_{args.command}")(args.file)
    print(f"session folder: {out}")
    print(f"report:         {out / 'report.md'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from metarl.runner import load_trained_agent

    export = importlib.import_module("metarl.sim2real.export")
    _, agent, state = load_trained_agent(args.run_dir)
    try:
        differences = export.export_policy(agent, args.out)
    except TypeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {type(agent).__name__} (iteration {state['iteration']}) to {args.out}")
    print(f"ONNX Runtime vs PyTorch, largest difference: {differences}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``metarl`` command."""
    parser = argparse.ArgumentParser(prog="metarl", description="metarl command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train",
        help="meta-train from a YAML config, evaluate against baselines, write a run folder",
        description="Meta-train from a YAML config (see configs/), then evaluate the agent "
        "and the random, multi-task and oracle baselines on the held-out tasks. Overrides "
        "key.sub=value (value read as YAML) change the config, e.g. trainer.iterations=50.",
    )
    p.add_argument(
        "config", nargs="?", metavar="CONFIG", help="YAML config (optional with --resume)"
    )
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue this run")
    p.add_argument(
        "--run-dir", default=None, help="run folder (default: <run.root>/<run.name>-<timestamp>)"
    )
    p.set_defaults(func=_train, parser=p)

    p = sub.add_parser("eval", help="re-run the final meta-test of a run folder")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=None, help="K (default: the run's)")
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "sweep",
        help="run a study: a grid or random search over config fields with Ray Tune",
        description="Run (or continue) the study of STUDY.yaml: one run folder per trial, "
        "trials in parallel as CPUs allow, failed trials retried, then a report with means "
        "and 95%% confidence intervals over seeds (see metarl/sweep.py for the file format).",
    )
    p.add_argument("study", metavar="STUDY.yaml")
    p.add_argument("--address", default=None, help="a Ray cluster (default: a local instance)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local instance")
    p.set_defaults(func=_sweep)

    p = sub.add_parser(
        "sysid",
        help="record on a target, fit a learned simulator (DROPO or trajectory matching)",
        description="Record episodes on the target of SYSID.yaml, fit the simulator's "
        "parameters to them, and write a folder with the data, the fit, a report and the "
        "fitted distribution as a config section (see metarl/sim2real/commands.py).",
    )
    p.add_argument("file", metavar="SYSID.yaml")
    p.set_defaults(func=_sysid)

    p = sub.add_parser(
        "transfer",
        help="evaluate a trained agent on its source and on a target, write a report",
        description="Run the meta-test of the run folder named in TRANSFER.yaml on its "
        "held-out tasks and on the target (trials of K episodes, so meta-RL agents adapt "
        "there), and write the returns, the gap and plots (metarl/sim2real/transfer.py).",
    )
    p.add_argument("file", metavar="TRANSFER.yaml")
    p.set_defaults(func=_transfer)

    p = sub.add_parser(
        "export",
        help="export a trained agent's policy to ONNX, checked against PyTorch",
        description="Write the control step of the agent in RUN_DIR (its latest checkpoint) "
        "as an ONNX graph that runs without PyTorch (metarl/sim2real/export.py).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("out", metavar="OUT.onnx")
    p.set_defaults(func=_export)

    for name, help_text in (
        ("serve", "serve a simulated robot (a sim-to-sim target) over the network bridge"),
        ("record", "record episodes on a robot (Minari dataset, timing, interventions)"),
        ("deploy", "run an exported policy on a robot, record it, report its returns"),
    ):
        p = sub.add_parser(
            name,
            help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}; the file's format is in "
            "metarl/sim2real/robot_commands.py.",
        )
        p.add_argument("file", metavar=f"{name.upper()}.yaml")
        p.set_defaults(func=_robot_command)

    p = sub.add_parser("envs", help="list the registered task environments")
    p.add_argument("--full", action="store_true", help="do not shorten the task supports")
    p.set_defaults(func=_envs)

    p = sub.add_parser("tasks", help="print reproducible train/test task sets as JSON lines")
    p.add_argument("env_id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=None, help="default: the family's count")
    p.add_argument("--test", type=int, default=None, help="default: the family's count")
    p.set_defaults(func=_tasks)

    p = sub.add_parser("check", help="run the task-environment checker")
    p.add_argument("env_ids", nargs="+", metavar="ENV_ID")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_check)

    p = sub.add_parser("demo", help="random vs scripted controllers on three families")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)
    return parser


def _log_progress() -> None:
    """Show the runner's progress messages (``metarl.*`` loggers at INFO) on stderr."""
    logger = logging.getLogger("metarl")
    logger.setLevel(logging.INFO)
    if not any(getattr(h, "_metarl_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._metarl_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def main(argv: list[str] | None = None) -> None:
    from metarl.schema import ConfigError, RunFolderError  # no torch: the robot side runs without

    args = build_parser().parse_args(argv)
    if args.command in ("train", "eval", "sweep", "sysid", "transfer", "record", "deploy"):
        _log_progress()
    try:
        code = args.func(args)
    except (ConfigError, RunFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
