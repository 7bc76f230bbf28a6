"""The layers (envs <- agents <- core <- sim2real): no module imports from a layer above
its own, and sim2real reaches the agents only through their shared modules; and no module
grows past ``MODULE_LINES`` without saying why it is kept in one piece."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import metarl
import metarl.agents
from metarl.agents.base import Agent

PACKAGE = Path(metarl.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every ``metarl`` module a file imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "metarl"}


def _algorithm_modules() -> set[str]:
    """The agents' modules that define a concrete ``Agent`` (an algorithm), as opposed
    to the shared pieces (the contracts, networks, policies, the PPO update, buffers)."""
    out = set()
    for info in pkgutil.iter_modules(metarl.agents.__path__, "metarl.agents."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                obj.__module__ == info.name
                and issubclass(obj, Agent)
                and not inspect.isabstract(obj)
            ):
                out.add(info.name)
    return out


def test_sim2real_imports_no_algorithm_module() -> None:
    algorithms = _algorithm_modules()
    assert "metarl.agents.rl2" in algorithms and len(algorithms) >= 6  # the scan sees them
    bad = {
        f"{path.name} imports {name}"
        for path in sorted((PACKAGE / "sim2real").glob("*.py"))
        for name in _imports(path)
        if name in algorithms
    }
    assert not bad, sorted(bad)


def test_envs_and_agents_import_nothing_from_a_layer_above() -> None:
    bottom = {"metarl.checks", "metarl.tasks", "metarl.episodes"}
    allowed = {
        "envs": ("metarl.envs",),
        "agents": ("metarl.envs", "metarl.agents"),
    }
    bad = []
    for layer, prefixes in allowed.items():
        for path in sorted((PACKAGE / layer).glob("*.py")):
            for name in _imports(path):
                ok = name in bottom or any(n in bottom for n in _parents(name))
                if not ok and not name.startswith(prefixes):
                    bad.append(f"{layer}/{path.name} imports {name}")
    assert not bad, bad


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


# Names under which the core holds an agent or a sampler.
_CONTRACT_HOLDERS = {"agent", "sampler", "eval_sampler", "evaluator", "method", "baseline"}


def _probes(source: str, where: str) -> list[str]:
    """``getattr``/``hasattr`` calls in ``source`` on an agent or a sampler (a name, or
    an attribute of ``self``, in ``_CONTRACT_HOLDERS``)."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
        ):
            continue
        target = node.args[0]
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in _CONTRACT_HOLDERS:
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_core_reaches_agents_and_samplers_through_their_contracts() -> None:
    """What the trainer, the runner and the meta-test use of an agent or a sampler is
    declared on ``Agent`` / ``Sampler``: nothing probes for undeclared attributes."""
    paths = sorted([*PACKAGE.glob("*.py"), *(PACKAGE / "sim2real").glob("*.py")])
    found = [
        probe
        for path in paths
        for probe in _probes(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    ]
    assert not found, found


def test_the_probe_scan_sees_probes() -> None:
    source = (
        'calls = getattr(self.sampler, "calls", None)\n'
        'wrappers = getattr(agent, "env_wrappers", ())\n'
        'ok = getattr(config, "seed")\n'
    )
    assert len(_probes(source, "example.py")) == 2


def test_the_bottom_imports_only_the_checks() -> None:
    """``metarl.checks`` imports nothing of metarl; the task types import only it (and
    each other), so that every layer can use the shared checks."""
    assert _imports(PACKAGE / "checks.py") == set()
    for name in ("tasks.py", "episodes.py"):
        found = _imports(PACKAGE / name)
        assert all(n.startswith(("metarl.checks", "metarl.tasks")) for n in found), found


# A module longer than this is split where a seam exists, or its docstring says why it is
# kept in one piece, in a sentence that starts with KEPT_WHOLE.
MODULE_LINES = 600
KEPT_WHOLE = "Kept in one module:"


def _long_modules(root: Path) -> list[str]:
    """The modules under ``root`` longer than ``MODULE_LINES`` that do not say why."""
    long = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MODULE_LINES and KEPT_WHOLE not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(root).as_posix()}: {lines} lines")
    return long


def test_no_module_is_longer_than_600_lines_without_a_stated_reason() -> None:
    long = _long_modules(PACKAGE)
    assert not long, f"split these, or state why each is kept whole ({KEPT_WHOLE!r}): {long}"


def test_the_length_check_sees_long_modules(tmp_path: Path) -> None:
    body = "x = 1\n" * MODULE_LINES
    (tmp_path / "short.py").write_text('"""A module."""\nx = 1\n')
    (tmp_path / "reasoned.py").write_text(f'"""A module. {KEPT_WHOLE} one integration."""\n{body}')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "long.py").write_text(f'"""A module."""\n{body}')
    assert _long_modules(tmp_path) == [f"sub/long.py: {MODULE_LINES + 1} lines"]
