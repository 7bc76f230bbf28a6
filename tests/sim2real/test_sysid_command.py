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
    assert fit["method"] == "trajectory matching" and fit["episodes"] == 9  # 1 held out
    assert fit["held_out"]["episodes"] == 1
    assert fit["truth"] == {"pole_mass": 1.6, "hinge_damping": 0.5}
    assert set(fit["recovery_error"]) == {"pole_mass", "hinge_damping"}
    data = np.load(out / "real_episodes.npz")
    steps = sum(len(data[k]) for k in data.files if k.startswith("actions_"))
    assert steps == fit["transitions"] + fit["held_out"]["steps"]  # every step is kept
    assert all(fit["truth_in_interval"].values())
    assert "relative error" in (out / "report.md").read_text()
    assert (out / "estimates.png").stat().st_size > 1000
    assert (out / "predictions.png").stat().st_size > 1000
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
        ({"excitaton": "random"}, "sysid.excitaton: unknown key; allowed: name, target, data"),
        (
            {"excitation": {"kind": "multisine", "fmin": 1}},
            "sysid.excitation.multisine.fmin: unknown key; allowed: kind, f_min, f_max",
        ),
        ({"options": {"budgt": 10}}, "unknown option(s) 'budgt' of dropo; allowed: samples"),
        ({"options": {"budget": 1}}, "the fit stopped: budget must be an integer >= 2"),
        ({"episodes": 0}, "sysid.episodes"),
        ({"simulator": {"env": "InvertedPendulum-v5", "params": {}}}, "sysid.simulator.params"),
        (
            {
                "simulator": {
                    "env": "InvertedPendulum-v5",
                    "params": {
                        "pole_mass": {
                            "field": "body_mass",
                            "elements": ["pole"],
                            "op": "set",
                            "dist": {"kind": "uniform", "low": 1.0, "high": 9.0},
                        }
                    },
                }
            },
            "name different quantities, so the recovery errors would be meaningless: "
            "pole_mass: op 'set' vs 'scale'",
        ),
        (  # a typo: refused before recording, not a KeyError after the fit
            {
                "simulator": {
                    "env": "InvertedPendulum-v5",
                    "params": {
                        "pole_masss": {
                            "field": "body_mass",
                            "elements": ["pole"],
                            "op": "scale",
                            "dist": {"kind": "uniform", "low": 0.5, "high": 3.0},
                        }
                    },
                }
            },
            "simulator.params 'pole_masss' not in target.physics, so there is no truth to "
            "compare the fit with; target.physics names: hinge_damping, pole_mass",
        ),
    ],
)
def test_a_bad_sysid_file_is_named_without_traceback(
    tmp_path: Path, changes: dict[str, object], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["sysid", str(_file(tmp_path, **changes))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    # A file refused before recording leaves no folder; a bad option value is found by
    # the fit, after the recording, which is kept.
    folders = list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    assert [f for f in folders if (f / "real_episodes.npz").exists()] == folders
    assert len(folders) == (1 if "budget must be" in message else 0)


def test_transfer_runs_a_meta_rl_agent_on_source_and_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tiny RL2 run, then `metarl transfer` onto a point robot with a delayed action:
    trials of K = 2 episodes on the target, with the recurrent state kept across them."""
    from metarl.runner import run_experiment

    tiny = [
        "env.train_tasks=4",
        "env.test_tasks=2",
        "sampler.num_envs=2",
        "agent.meta_batch_size=2",
        "agent.hidden_size=8",
        "evaluation.episodes=2",
        "evaluation.baselines=[]",
        "trainer.iterations=1",
        "trainer.progress=false",
    ]
    run = run_experiment(
        load_config(str(ROOT / "configs" / "rl2_point_robot_local.yaml"), tiny), tmp_path / "run"
    )
    spec = {
        "transfer": {
            "name": "rl2_delay",
            "run": str(run),
            "target": {
                "env": "metarl/PointRobot-v0",
                "effects": [{"name": "action_delay", "steps": 1}],
            },
            "trials": 3,
            "root": str(tmp_path / "out"),
        }
    }
    path = tmp_path / "transfer.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert _cli(["transfer", str(path)]) == 0
    (out,) = (tmp_path / "out").iterdir()
    data = json.loads((out / "transfer.json").read_text())
    assert np.array(data["target"]["returns"]).shape == (3, 2)  # trials x K
    assert np.array(data["source"]["returns"]).shape == (2, 2)
    assert data["target_env_steps"] == 3 * 2 * 20  # point-robot episodes of 20 steps
    assert data["gap"] == pytest.approx(
        np.mean(np.array(data["source"]["returns"])[:, -1])
        - np.mean(np.array(data["target"]["returns"])[:, -1])
    )
    assert "Gap (source - target" in (out / "report.md").read_text()
    assert (out / "transfer.png").stat().st_size > 1000

    spec["transfer"]["fit"] = str(tmp_path / "no_sysid_here")
    path.write_text(yaml.safe_dump(spec))
    assert _cli(["transfer", str(path)]) == 2  # no fit.json there
    fit_dir = tmp_path / "sysid"  # a fit of a quantity the target does not hide as such
    fit_dir.mkdir()
    mass = {"field": "body_mass", "elements": ["pole"], "op": "set"}
    fitted = {"pole_mass": {**mass, "dist": {"kind": "fixed", "value": 2.0}}}
    (fit_dir / "fit.json").write_text(json.dumps({"distribution": fitted}))
    spec["transfer"]["fit"] = str(fit_dir)
    spec["transfer"]["target"]["physics"] = {
        "pole_mass": {**mass, "op": "scale", "dist": {"kind": "fixed", "value": 1.5}}
    }
    path.write_text(yaml.safe_dump(spec))
    assert _cli(["transfer", str(path)]) == 2
    assert "pole_mass: op 'set' vs 'scale'" in capsys.readouterr().err
    del spec["transfer"]["target"]["physics"]
    spec["transfer"]["fit"] = None
    spec["transfer"]["trials"] = 0
    path.write_text(yaml.safe_dump(spec))
    assert _cli(["transfer", str(path)]) == 2  # transfer.trials >= 1
    spec["transfer"]["trials"] = 3
    spec["transfer"]["run"] = str(tmp_path / "nothing")
    path.write_text(yaml.safe_dump(spec))
    assert _cli(["transfer", str(path)]) == 2
