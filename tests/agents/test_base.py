"""The agent contracts: every registered agent is of one learner kind, and no agent
implements a method only to refuse it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import metarl.agents
from metarl.agent_registry import AGENTS
from metarl.agents.base import Agent, BatchAgent, TrainStepAgent

AGENTS_DIR = Path(metarl.agents.__file__).parent

KINDS = {
    "rl2": BatchAgent,
    "ppo": BatchAgent,
    "maml_trpo": TrainStepAgent,
    "promp": TrainStepAgent,
    "pearl": TrainStepAgent,
}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_each_registered_agent_is_of_exactly_one_learner_kind(name: str) -> None:
    cls = AGENTS[name].agent_class()
    assert issubclass(cls, Agent)
    kinds = [kind for kind in (BatchAgent, TrainStepAgent) if issubclass(cls, kind)]
    assert len(kinds) == 1, f"{cls.__name__} is of {kinds}"
    if name in KINDS:
        assert kinds == [KINDS[name]]
    # A batch agent's iteration is the trainer's; a train-step agent has no update.
    assert hasattr(cls, "update") == (kinds == [BatchAgent])
    assert hasattr(cls, "train_step") == (kinds == [TrainStepAgent])


def _only_refuses(node: ast.FunctionDef) -> bool:
    """Whether the body of ``node`` (after its docstring) is only a raise of
    ``NotImplementedError``."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc
    target = exc.func if isinstance(exc, ast.Call) else exc
    return isinstance(target, ast.Name) and target.id == "NotImplementedError"


def test_no_agent_implements_a_method_only_to_refuse_it() -> None:
    refusing = [
        f"{path.name}: {node.name}"
        for path in sorted(AGENTS_DIR.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and _only_refuses(node)
    ]
    assert not refusing, refusing


def test_the_refusal_scan_sees_a_refusing_method() -> None:
    source = 'def update(self, batch):\n    """No."""\n    raise NotImplementedError("no")\n'
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef) and _only_refuses(node)
