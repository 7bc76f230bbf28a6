"""``metarl sysid``: the shipped file runs and leaves its folder; bad files are named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from metarl.cli import main
from metarl.config import load_config

ROOT = Path(__file__).resolve().parents[2]
PENDULUM = ROOT / "configs" / "sysid" / "pendulum_dropo.yaml"


def _cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return 0 if info.value.code is None else int(info.value.code)


def _file(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(PENDULUM.read_text())
    data["sysid"].update(root=str(tmp_path / "out"), **changes)
    path = tmp_path / "sysid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sysid_records_fits_and_leaves_its_folder(tmp_path: Path) -> None:
    path = _file(tmp_path, options={"budget": 40}, method="trajectory_matching")
    assert _cli(["sysid", str(path)]) == 0
    (out,) = (tmp_path / "out").iterdir()
    fit = json.loads((out / "fit.json").read_text())
    assert fit["method"] == "trajectory matching" and fit["episodes"] == 10
    assert fit["truth"] == {"pole_mass": 1.6, "hinge_damping": 0.5}
    assert set(fit["recovery_error"]) == {"pole_mass", "hinge_damping"}
    data = np.load(out / "real_episodes.npz")
    steps = sum(len(data[k]) for k in data.files if k.startswith("actions_"))
    assert steps == fit["transitions"]  # every recorded step is kept
    assert "relative error" in (out / "report.md").read_text()
    assert (out / "estimates.png").stat().st_size > 1000
    # the fitted distribution is a config section an experiment accepts
    section = yaml.safe_load((out / "randomization.yaml").read_text())
    config_file = tmp_path / "train.yaml"
    config_file.write_text(
        yaml.safe_dump({"env": {"id": "InvertedPendulum-v5"}, "agent": {"name": "ppo"}, **section})
    )
    config = load_config(config_file)
    assert config.randomization is not None and set(config.randomization.params) == {
        "pole_mass",
        "hinge_damping",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "newton"}, "sysid.method"),
        ({"options": {"budgt": 10}}, "unknown option(s) 'budgt' of dropo; allowed: samples"),
        ({"episodes": 0}, "sysid.episodes"),
        ({"simulator": {"env": "InvertedPendulum-v5", "params": {}}}, "sysid.simulator.params"),
    ],
)
def test_a_bad_sysid_file_is_named_without_traceback(
    tmp_path: Path, changes: dict[str, object], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["sysid", str(_file(tmp_path, **changes))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
