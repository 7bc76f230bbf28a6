"""The agent registry: agents of other installed packages through the entry-point group
``metarl.agents``, in the ``metarl`` command and in Ray Tune's trial workers, and what a
broken entry point says.

The installed package is faked as Python finds one: a folder on the path holding the
module and a ``<name>-<version>.dist-info`` with ``METADATA`` and ``entry_points.txt``,
the entry points those of ``examples/agent_plugin/pyproject.toml``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from metarl.agent_registry import AGENTS, ENTRY_POINT_GROUP, agent_model, register_agent
from metarl.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "agent_plugin"


def _install(site: Path, name: str, module_source: str, entry_points: dict[str, str]) -> None:
    """Put module ``name`` and its distribution's metadata, offering ``entry_points``
    (agent name -> module) in ``metarl.agents``, into the folder ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(module_source)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _example_entry_points() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    entry_points: dict[str, str] = project["entry-points"][ENTRY_POINT_GROUP]
    return entry_points


def _metarl(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``metarl ARGS`` in a fresh process whose path has ``site`` (and this checkout)."""
    path = os.pathsep.join([str(ROOT), str(site), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "metarl.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The example agent installed in ``tmp_path / "site"``."""
    site = tmp_path / "site"
    source = (EXAMPLE / "toyagent.py").read_text()
    _install(site, "toyagent", source, _example_entry_points())
    shutil.copy(EXAMPLE / "toy.yaml", tmp_path / "toy.yaml")
    return site


def test_metarl_train_finds_an_installed_packages_agent(site: Path, tmp_path: Path) -> None:
    """Nothing imports the package by hand: ``metarl train`` finds ``agent.name: toy``
    through the entry point, trains, reports, and ``metarl eval`` rebuilds it."""
    run = tmp_path / "run"
    done = _metarl(["train", "toy.yaml", "--run-dir", str(run)], site, tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads((run / "results.json").read_text())
    assert set(results["methods"]) == {"toy", "random"}
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3 and "std" in metrics[0].split(",")
    assert "| Toy (CEM) |" in (run / "report.md").read_text()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["agent"]["seed"] == config["run"]["seed"] == 0  # `seed` defaults to run.seed
    assert _metarl(["eval", str(run)], site, tmp_path).returncode == 0
    # Its settings are checked as any agent's, with their paths in the file.
    bad = _metarl(["train", "toy.yaml", "agent.min_std=1.0"], site, tmp_path)
    assert bad.returncode == 2
    assert "agent.min_std, agent.init_std: min_std must not exceed init_std" in bad.stderr
    # Without the package the name is unknown, and the known ones are listed.
    gone = _metarl(["train", "toy.yaml"], tmp_path / "empty", tmp_path)
    assert gone.returncode == 2 and "unknown agent 'toy'; registered agents: maml_trpo" in (
        gone.stderr
    )


@pytest.mark.slow  # Ray Tune starts a local instance: ~15 s on 2 cores
def test_ray_tune_trial_workers_find_an_installed_packages_agent(
    site: Path, tmp_path: Path
) -> None:
    """A trial runs in a Ray worker process, which finds the agent the same way."""
    study = {
        "name": "toy",
        "experiment": str(tmp_path / "toy.yaml"),
        "overrides": ["trainer.iterations=1", "evaluation.baselines=[]"],
        "parameters": {"run.seed": [0]},
        "root": str(tmp_path / "studies"),
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"study": study}))
    done = _metarl(["sweep", "study.yaml"], site, tmp_path)
    assert done.returncode == 0, done.stderr
    (trial,) = (tmp_path / "studies" / "toy" / "trials").iterdir()
    assert (trial / "results.json").exists()


@pytest.fixture
def fresh_entry_points(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A folder on ``sys.path`` for fake distributions, read by the registry's next lookup;
    the agents registered meanwhile are removed afterwards."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(AGENTS, "_offered", None)
    before = set(AGENTS._entries)
    yield site
    for name in set(AGENTS._entries) - before:
        del AGENTS[name]
    for module in ("brokenagent", "silentagent", "lateagent"):
        sys.modules.pop(module, None)


def test_an_entry_point_is_imported_only_when_its_agent_is_named(
    fresh_entry_points: Path,
) -> None:
    source = (
        "from metarl.agent_registry import register_agent\n"
        "register_agent('late', 'metarl.agents.ppo:PPOConfig', 'metarl.agents.ppo:PPOAgent')\n"
    )
    _install(fresh_entry_points, "lateagent", source, {"late": "lateagent"})
    assert "late" in AGENTS and "late" in sorted(AGENTS)
    assert "lateagent" not in sys.modules  # listed by name, not imported
    assert agent_model("late").model_fields["gamma"].default == 0.99
    assert "lateagent" in sys.modules


def test_a_registered_agent_wins_over_an_entry_point_of_its_name(
    fresh_entry_points: Path,
) -> None:
    _install(
        fresh_entry_points, "brokenagent", "raise RuntimeError('boom')\n", {"ppo": "brokenagent"}
    )
    assert AGENTS["ppo"].label == "PPO (DR)"
    assert "brokenagent" not in sys.modules


def test_a_broken_entry_point_is_named_in_the_config_error(fresh_entry_points: Path) -> None:
    _install(
        fresh_entry_points, "brokenagent", "raise RuntimeError('boom')\n", {"bad": "brokenagent"}
    )
    _install(fresh_entry_points, "silentagent", "x = 1\n", {"silent": "silentagent"})
    with pytest.raises(ConfigError) as info:
        agent_model("bad")
    assert "agent.name: agent 'bad' cannot be imported (entry point bad = 'brokenagent'" in str(
        info.value
    )
    assert "failed to import: RuntimeError: boom" in str(info.value)
    with pytest.raises(ConfigError, match=r"registered no agent 'silent'; its module must call "):
        agent_model("silent")


def test_register_agent_replaces_an_entry_and_its_section() -> None:
    from metarl.agents.ppo import PPOAgent, PPOConfig

    register_agent("twin", PPOConfig, PPOAgent, "Twin")
    try:
        assert agent_model("twin").model_fields["gamma"].default == 0.99
        register_agent("twin", "metarl.agents.rl2:RL2Config", "metarl.agents.rl2:RL2Agent")
        assert "hidden_size" in agent_model("twin").model_fields
    finally:
        del AGENTS["twin"]
    assert "twin" not in AGENTS
