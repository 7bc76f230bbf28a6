"""The ``metarl`` command line and the demo."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import pytest

from metarl.cli import build_parser, main
from metarl.tasks import Task


def test_tasks_prints_reproducible_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "metarl/PointRobot-v0", "--seed", "3", "--train", "4", "--test", "2"])
    assert exit_info.value.code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["split"] for x in lines] == ["train"] * 4 + ["test"] * 2
    tasks = [Task.from_dict(x["task"]) for x in lines]
    with pytest.raises(SystemExit):
        main(["tasks", "metarl/PointRobot-v0", "--seed", "3", "--train", "4", "--test", "2"])
    again = [Task.from_dict(json.loads(x)["task"]) for x in capsys.readouterr().out.splitlines()]
    assert tasks == again


def test_check_passes_a_task_env(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "metarl/PointRobot-v0"])
    assert exit_info.value.code == 0
    assert "ok   metarl/PointRobot-v0" in capsys.readouterr().out


def test_envs_lists_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["envs"])
    out = capsys.readouterr().out
    assert "metarl/HalfCheetahVel-v0" in out and "velocity: [0, 3]" in out


def test_demo_writes_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--tasks", "2"])
    out = capsys.readouterr().out
    assert "metarl/HopperParams-v0" in out
    assert (tmp_path / "returns.png").stat().st_size > 10_000
    with open(tmp_path / "returns.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2
    # The scripted controllers do what each task asks; a random policy does not.
    for row in rows:
        if row["env"] in ("metarl/PointRobot-v0", "metarl/HopperParams-v0"):
            assert float(row["scripted"]) > float(row["random"]) + 2.0, row


def test_demo_says_it_is_the_quick_look_at_the_families_not_make_demo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from metarl import demo

    assert demo.__doc__ is not None
    first = demo.__doc__.splitlines()[0]
    assert "quick look" in first and "make demo" not in first
    assert _code(["demo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "A quick look at three task families" in out and "Nothing is trained" in out


def _code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return 0 if info.value.code is None else int(info.value.code)


def test_bad_arguments_of_tasks_and_check_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Usage errors (status 2, as the module docstring says), one message, no traceback;
    the lists of task environments include Meta-World's, which train accepts."""
    assert _code(["tasks", "metarl/PointRobot-v0", "--train", "-5"]) == 2
    err = capsys.readouterr().err
    assert "argument --train: expected an integer >= 0, got -5" in err and "Traceback" not in err
    for command in (["tasks", "metarl/Nope-v0"], ["check", "metarl/Nope-v0"]):
        assert _code(command) == 2
        err = capsys.readouterr().err
        assert "unknown environment 'metarl/Nope-v0'; task environments: " in err
        assert "metarl/PointRobot-v0" in err and "metarl/MetaWorld-ML10-v0" in err
    # A Gymnasium env that is no task environment (train takes it with a randomization).
    assert _code(["tasks", "Hopper-v5"]) == 2
    assert "Hopper-v5 is not a task environment" in capsys.readouterr().err
    # More tasks than a finite family holds.
    pytest.importorskip("metaworld")
    assert _code(["tasks", "metarl/MetaWorld-ML1-v0", "--train", "60"]) == 2
    err = capsys.readouterr().err
    assert "--train 60 / --test 50: n_train = 60 is more tasks than" in err
    assert "Traceback" not in err


def test_meta_world_ids_are_listed_and_their_task_counts_are_the_family_s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _code(["envs"]) == 0
    out = capsys.readouterr().out
    assert "metarl/MetaWorld-ML1-v0" in out and "50/50" in out
    assert "metarl/MetaWorld-ML45-v0" in out and "2250/250" in out


def test_eval_of_a_missing_folder_says_it_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _code(["eval", str(tmp_path / "no" / "such")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'no' / 'such'} does not exist\n"
    assert _code(["export", str(tmp_path / "nope"), str(tmp_path / "p.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _code(["eval", str(tmp_path)]) == 2
    assert "not a run folder: it has no config.yaml" in capsys.readouterr().err


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("name", list(_subcommands()))
def test_every_command_and_argument_has_help_that_names_no_source_file(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = _subcommands()[name]
    assert sub.description, name
    for action in sub._actions:
        assert action.help, f"metarl {name}: {action.dest} has no help"
    assert _code([name, "--help"]) == 0
    text = capsys.readouterr().out
    assert "%%" not in text
    assert not re.search(r"metarl/[\w/]+\.py", " ".join(text.split())), text


def test_top_level_help_lists_every_command_with_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _code(["--help"]) == 0
    out = capsys.readouterr().out
    for name in _subcommands():
        assert re.search(rf"^\s+{name}\s+\w", out, re.MULTILINE), name


def test_ctrl_c_in_any_command_is_one_line_and_status_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import metarl.runner

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(metarl.runner, "evaluate_run", interrupted)
    try:
        code = _code(["eval", "runs/any"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C left metarl eval as a KeyboardInterrupt (a traceback)")
    assert code == 130
    assert capsys.readouterr().err.strip() == "stopped (Ctrl-C)"


@pytest.mark.parametrize("command", ["tasks", "check"])
def test_meta_world_without_its_extra_is_a_usage_error_with_the_install_line(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "metaworld", None)  # as if not installed
    assert _code([command, "metarl/MetaWorld-ML1-v0"]) == 2
    err = capsys.readouterr().err
    assert "metarl/MetaWorld-ML1-v0: " in err and "metarl[metaworld]" in err
    assert "Traceback" not in err


def test_negative_counts_and_seeds_are_named_with_their_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _code(["eval", "runs/x", "--episodes", "-2"]) == 2
    assert "argument --episodes: expected an integer >= 1, got -2" in capsys.readouterr().err
    assert _code(["tasks", "metarl/PointRobot-v0", "--seed", "-1", "--train", "2"]) == 2
    assert "argument --seed: expected an integer >= 0, got -1" in capsys.readouterr().err
