"""Bad input to the PEARL benchmark scripts gets errors that name it: run arguments,
missing checkpoints, too few meta-test episodes (no training needed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import pearl
import pearl_sparse_exploration as exploration


def test_run_argument_is_a_folder_or_folder_at_iteration() -> None:
    assert exploration.parse_run("runs/a") == (Path("runs/a"), None)
    assert exploration.parse_run("runs/a@80") == (Path("runs/a"), 80)
    with pytest.raises(argparse.ArgumentTypeError, match="RUN_DIR@ITERATION, got 'runs/a@x'"):
        exploration.parse_run("runs/a@x")


def test_missing_checkpoint_names_the_iteration_and_the_kept_ones(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "iter_000010.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"iteration 20 \(kept: \['iter_000010.pt'\]\)"):
        pearl.checkpoint_path(tmp_path, 20)
    # No "latest" pointer: the newest checkpoint file.
    assert pearl.checkpoint_path(tmp_path).name == "iter_000010.pt"
    assert pearl.checkpoint_path(tmp_path, 10).name == "iter_000010.pt"
    (tmp_path / "checkpoints" / "iter_000010.pt").unlink()
    with pytest.raises(FileNotFoundError, match="iteration None"):
        pearl.checkpoint_path(tmp_path)


def test_exploration_needs_a_sparse_run_and_more_episodes_than_prior_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"agent": {"num_exp_traj_eval": 5}}))
    (tmp_path / "results.json").write_text(json.dumps({"env": "metarl/PointRobotSparse-v0"}))
    assert pearl.num_prior_episodes(tmp_path) == 5
    with pytest.raises(
        ValueError, match=r"--episodes must exceed .*num_exp_traj_eval \(5\), got 5"
    ):
        exploration.explore(tmp_path, None, episodes=5, repeats=1)
    (tmp_path / "results.json").write_text(json.dumps({"env": "metarl/PointRobot-v0"}))
    with pytest.raises(ValueError, match="not on a sparse env"):
        exploration.explore(tmp_path, None, episodes=20, repeats=1)
