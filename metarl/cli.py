"""The ``metarl`` command line: run experiments, list and check environments, run the demo.

metarl train CONFIG [key.sub=value ...] [--run-dir DIR]
                                     meta-train, evaluate against baselines, write a run folder
metarl train --resume RUN_DIR [CONFIG] [key.sub=value ...]
                                     continue a stopped run from its newest checkpoint
metarl eval RUN_DIR [--episodes K]   re-run the final meta-test of a run folder, into
                                     RUN_DIR/reevaluations/iteration<N>_episodes<K>_seed<S>/
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
metarl demo [--out DIR]              a quick look at three task families (no training)

Errors in a config, a run folder or an argument (an unknown environment, a negative
count) print one message naming it and exit with status 2. Ctrl-C prints one line
(for ``train``: the iteration it stopped at, the newest checkpoint and the command
that resumes the run) and exits with status 130, except for ``serve``, which Ctrl-C
is the way to end: it closes its sessions and exits with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

import metarl  # noqa: F401  (registers the environments)
from metarl.envs import METAWORLD_ENVS, TASK_ENVS, task_counts, task_distribution, task_env_ids


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
    for env_id, (kwargs, n_train, n_test) in METAWORLD_ENVS.items():
        # Not made here: building a Meta-World benchmark takes seconds to a minute.
        text = f"Meta-World {', '.join(kwargs.values())} (needs metarl[metaworld])"
        steps = gym.spec(env_id).max_episode_steps
        print(f"{env_id:30} {steps:>7} {f'{n_train}/{n_test}':>10}  {text}")
    return 0


def _known(args: argparse.Namespace, env_id: str) -> None:
    """Exit with status 2 (a usage error) unless Gymnasium knows ``env_id``."""
    if env_id not in gym.registry:
        args.parser.error(
            f"unknown environment {env_id!r}; task environments: {', '.join(task_env_ids())}"
        )


def _make(args: argparse.Namespace, env_id: str) -> gym.Env[object, object]:
    """``gym.make(env_id)``; an unknown id, or one whose optional extra is not installed
    (Meta-World), is a usage error (2)."""
    _known(args, env_id)
    parser: argparse.ArgumentParser = args.parser
    try:
        return gym.make(env_id)
    except ImportError as err:
        parser.error(f"{env_id}: {err}")


def _task_env(args: argparse.Namespace, env_id: str) -> gym.Env[object, object]:
    """``gym.make(env_id)``; an id that names no task environment is a usage error (2)."""
    env = _make(args, env_id)
    try:
        task_distribution(env)
    except TypeError:
        env.close()
        args.parser.error(
            f"{env_id} is not a task environment (it has no tasks to set); task "
            f"environments: {', '.join(task_env_ids())}; a plain Gymnasium env becomes one "
            "through a config's randomization section"
        )
    return env


def _tasks(args: argparse.Namespace) -> int:
    env = _task_env(args, args.env_id)
    n_train, n_test = task_counts(args.env_id) or (5, 5)
    n_train = n_train if args.train is None else args.train
    n_test = n_test if args.test is None else args.test
    try:
        sets = task_distribution(env).task_sets(args.seed, n_train, n_test)
    except ValueError as err:  # e.g. more tasks than a finite family holds
        args.parser.error(f"--train {n_train} / --test {n_test}: {err}")
    finally:
        env.close()
    for split, tasks in (("train", sets.train), ("test", sets.test)):
        for i, task in enumerate(tasks):
            print(json.dumps({"split": split, "index": i, "task": task.to_dict()}))
    return 0


def _check(args: argparse.Namespace) -> int:
    from metarl.envs.checker import TaskEnvCheckError, check_task_env

    for env_id in args.env_ids:
        _known(args, env_id)
    failed = 0
    for env_id in args.env_ids:
        try:
            check_task_env(_make(args, env_id), seed=args.seed)
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


def _print_outcome(run_dir: Path, folder: str = "run folder") -> None:
    from metarl.evaluation import AdaptationResult
    from metarl.run_folder import PLOT_FILE, REPORT_FILE, RESULTS_FILE

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
    width = len(folder) + 1
    print(f"{folder + ':':{width}} {run_dir}")
    print(f"{'report:':{width}} {run_dir / REPORT_FILE}")
    print(f"{'plot:':{width}} {run_dir / PLOT_FILE}")


def _train(args: argparse.Namespace) -> int:
    from metarl.config import load_config
    from metarl.run_folder import load_run_config
    from metarl.runner import run_experiment

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

    _print_outcome(evaluate_run(args.run_dir, args.episodes), "evaluation folder")
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
    commands = importlib.import_module("metarl.sim2real.sysid_command")
    out = commands.run_sysid(args.file)
    print(commands.summary(out))
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
    except (TypeError, ValueError) as err:  # an agent it cannot export, OUT a folder
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    except export.ExportMismatch as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"exported {type(agent).__name__} (iteration {state['iteration']}) to {args.out}")
    print(f"ONNX Runtime vs PyTorch, largest difference: {differences}")
    return 0


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


_count = _at_least(0)
_positive = _at_least(1)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``metarl`` command."""
    parser = argparse.ArgumentParser(
        prog="metarl",
        description="Meta-RL and sim-to-real experiments: train and evaluate from YAML "
        "configs, run studies, fit simulators, export policies, drive robots, inspect "
        "the task environments.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description)
        p.set_defaults(parser=p)
        return p

    p = command(
        "train",
        "meta-train from a YAML config, evaluate against baselines, write a run folder",
        "Meta-train from a YAML config (see configs/), then evaluate the agent "
        "and the random, multi-task and oracle baselines on the held-out tasks. Overrides "
        "key.sub=value (value read as YAML) change the config, e.g. trainer.iterations=50. "
        "Ctrl-C stops the run and prints the command that resumes it.",
    )
    p.add_argument(
        "config", nargs="?", metavar="CONFIG", help="YAML config (optional with --resume)"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="config changes, the value read as YAML (e.g. agent.hidden_size=64)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its newest checkpoint that loads (a resumed "
        "run may change only how long it trains, how it is evaluated and where it samples)",
    )
    p.add_argument(
        "--run-dir",
        default=None,
        help="run folder for a new run: one that holds no run's files (a new folder, or "
        "one without config.yaml, metrics.csv, checkpoints, ...; default: "
        "<run.root>/<run.name>-<timestamp>)",
    )
    p.set_defaults(func=_train)

    p = command(
        "eval",
        "re-run the final meta-test of a run folder (beside it, not over it)",
        "Reload the agent of RUN_DIR from its newest checkpoint that loads and run the "
        "final meta-test again: the agent and the run's baselines (saved ones reused, "
        "missing ones trained) on the run's held-out tasks, K consecutive episodes each. "
        "The results, plot and report go to "
        "RUN_DIR/reevaluations/iteration<N>_episodes<K>_seed<S>/; the run's own are kept.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of metarl train")
    p.add_argument(
        "--episodes",
        type=_positive,
        default=None,
        metavar="K",
        help="consecutive episodes per test task (default: the run's evaluation.episodes)",
    )
    p.set_defaults(func=_eval)

    p = command(
        "sweep",
        "run a study: a grid or random search over config fields with Ray Tune",
        "Run (or continue) the study of STUDY.yaml: one run folder per trial, "
        "trials in parallel as CPUs allow, failed trials retried, then a report with means "
        "and 95% confidence intervals over seeds. STUDY.yaml has one `study:` section: "
        "name, the experiment config, fixed overrides, the parameters to vary (value "
        "lists, or distributions for a random search), the metric and mode, CPUs per "
        "trial and retries; e.g. configs/studies/hopper_dr_width.yaml.",
    )
    p.add_argument("study", metavar="STUDY.yaml", help="the study file")
    p.add_argument(
        "--address",
        default=None,
        help="address of a running Ray cluster (default: a new local Ray instance; "
        "RAY_ADDRESS is not read)",
    )
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local instance")
    p.set_defaults(func=_sweep)

    p = command(
        "sysid",
        "record on a target, fit a learned simulator (DROPO or trajectory matching)",
        "Record episodes on the target of SYSID.yaml (or read a recorded dataset), fit "
        "the simulator's parameters to them, and write a folder with the data, the fit, a "
        "report and the fitted distribution as a config's randomization section. SYSID.yaml "
        "has one `sysid:` section: the target or data, the episodes to record, the "
        "simulator and the parameters to fit with their bounds, the method and its "
        "options; e.g. configs/sysid/pendulum_dropo.yaml.",
    )
    p.add_argument("file", metavar="SYSID.yaml", help="the sysid file")
    p.set_defaults(func=_sysid)

    p = command(
        "transfer",
        "evaluate a trained agent on its source and on a target, write a report",
        "Run the meta-test of a trained run on its held-out tasks and on a target (trials "
        "of K episodes, so meta-RL agents adapt there), and write the returns, the gap and "
        "plots. TRANSFER.yaml has one `transfer:` section: name, the run folder, the "
        "target, trials, episodes per trial, an optional sysid folder and the seed.",
    )
    p.add_argument("file", metavar="TRANSFER.yaml", help="the transfer file")
    p.set_defaults(func=_transfer)

    p = command(
        "export",
        "export a trained agent's policy to ONNX, checked against PyTorch",
        "Write the control step of the agent in RUN_DIR (its newest checkpoint that "
        "loads) as an ONNX graph that runs without PyTorch, and compare its actions with "
        "PyTorch's.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of metarl train")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    p.set_defaults(func=_export)

    for name, help_text, holds in (
        (
            "serve",
            "serve a simulated robot (a sim-to-sim target) over the network bridge",
            "a `serve:` section: the target, host, port and the environment variable "
            "holding the token",
        ),
        (
            "record",
            "record episodes on a robot (Minari dataset, timing, interventions)",
            "a `record:` section: the robot (server or simulated, rate, safety limits), "
            "the controller, episodes, the dataset name and output root",
        ),
        (
            "deploy",
            "run an exported policy on a robot, record it, report its returns",
            "a `deploy:` section: the robot, the ONNX policy, trials and episodes per "
            "trial, the dataset name and output root",
        ),
    ):
        p = command(
            name,
            help_text,
            f"{help_text[0].upper()}{help_text[1:]}. {name.upper()}.yaml has {holds}; "
            f"e.g. configs/robot/{name}_pendulum.yaml.",
        )
        p.add_argument("file", metavar=f"{name.upper()}.yaml", help=f"the {name} file")
        p.set_defaults(func=_robot_command)

    p = command(
        "envs",
        "list the registered task environments",
        "List every registered task environment with its horizon, its default numbers "
        "of training and test tasks, and its task support.",
    )
    p.add_argument("--full", action="store_true", help="do not shorten the task supports")
    p.set_defaults(func=_envs)

    p = command(
        "tasks",
        "print reproducible train/test task sets as JSON lines",
        "Print the training and test task sets that a seed gives for ENV_ID, one JSON "
        "line per task ({split, index, task}); the same seed always gives the same sets "
        "(the sets a config's env.task_seed selects).",
    )
    p.add_argument("env_id", metavar="ENV_ID", help="a task environment (see metarl envs)")
    p.add_argument("--seed", type=_count, default=0, help="seed of the task sets (default: 0)")
    p.add_argument(
        "--train",
        type=_count,
        default=None,
        metavar="N",
        help="training tasks (default: the family's count)",
    )
    p.add_argument(
        "--test",
        type=_count,
        default=None,
        metavar="N",
        help="test tasks (default: the family's count)",
    )
    p.set_defaults(func=_tasks)

    p = command(
        "check",
        "run the task-environment checker",
        "Run Gymnasium's env checker and the task-environment contract on each ENV_ID "
        "(the same seed and task give the same rollout, different tasks differ, get_task "
        "returns what set_task was given, tasks survive JSON, physics defaults restore); "
        "print ok or FAIL with the reason for each; exit with status 1 if any fails.",
    )
    p.add_argument(
        "env_ids", nargs="+", metavar="ENV_ID", help="task environments (see metarl envs)"
    )
    p.add_argument("--seed", type=_count, default=0, help="seed of the checks (default: 0)")
    p.set_defaults(func=_check)

    p = command(
        "demo",
        "a quick look at three task families: random vs scripted controllers, no training",
        "A quick look at three task families: run a random and a scripted controller on "
        "tasks of the point robot, HalfCheetahVel and HopperParams and write their returns "
        "as a table (returns.csv) and a plot (returns.png). Nothing is trained; `make demo` "
        "is the one that meta-trains (metarl train configs/rl2_point_robot.yaml).",
    )
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--tasks", type=_positive, default=4, help="tasks per family (default: 4)")
    p.add_argument("--seed", type=_count, default=0, help="seed of the tasks (default: 0)")
    p.set_defaults(func=_demo)
    return parser


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to ``sys.stderr`` as it is at each message, not as it was
    when the handler was made (``main`` may run several times in one process, each
    time with its own stderr, as under a test's capture)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_progress() -> None:
    """Show the runner's progress messages (``metarl.*`` loggers at INFO) on stderr."""
    logger = logging.getLogger("metarl")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def main(argv: list[str] | None = None) -> None:
    from metarl.schema import ConfigError, RunFolderError  # no torch: the robot side runs without

    args = build_parser().parse_args(argv)
    if args.command in (
        "train",
        "eval",
        "export",
        "sweep",
        "sysid",
        "transfer",
        "record",
        "deploy",
    ):
        _log_progress()
    try:
        code = args.func(args)
    except (ConfigError, RunFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line (train's says how to resume)
        print(f"\n{str(err) or 'stopped (Ctrl-C)'}", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
