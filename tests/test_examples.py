"""The example scripts' configs validate, and their bad input is named (no Ray started)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


def test_rllib_example_config_validates_and_bad_keys_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _module("rllib_ppo_randomization")
    raw = yaml.safe_load((ROOT / "examples" / "rllib_ppo_hopper_widening.yaml").read_text())
    exp = example.Experiment.model_validate(raw)
    assert exp.schedule.fields == ["body_mass", "geom_friction"] and exp.iterations == 60
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**raw, "schedule": {**raw["schedule"], "ends": 2.0}}))
    assert example.main([str(bad)]) == 2
    assert "schedule.ends" in capsys.readouterr().err
