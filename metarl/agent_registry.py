"""The agent registry and the ``agent`` section of an experiment config, built from an
agent's settings class.

``AGENTS`` maps an agent's name (``agent.name`` in a config) to an ``AgentEntry``: where
its config class and its agent class live, as ``"module:Name"`` strings imported on
first use (the core imports an agent's module only when a config names that agent), and
its label in reports. ``register_agent`` adds one, e.g. an agent outside the package.

``agent_model(name)`` is the ``agent`` section's pydantic model for one agent: ``name``
plus the fields of its config class (a settings class, ``metarl.checks.settings``, or a
plain dataclass), with their types, constraints, defaults and docstrings.
``AgentConfig.to_dataclass`` builds the agent's config from a validated section.
``translate_renamed`` reads the keys a config class has renamed (its
``renamed_fields``) under their new names, for a run folder's own ``config.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from metarl.checks import settings_fields
from metarl.schema import STRICT_SECTION, ConfigError

__all__ = [
    "AGENTS",
    "AgentConfig",
    "AgentEntry",
    "agent_model",
    "register_agent",
    "translate_renamed",
]


def _import(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    """Where an agent lives: its config dataclass and its class.

    Either may be given as ``"module:Name"`` (imported when first used) or as the
    object. The agent class is called as ``agent(observation_space, action_space,
    config)``. ``label`` is its name in reports (default: the registry key).
    """

    config: str | type
    agent: str | Callable[..., Any]
    label: str | None = None

    def config_class(self) -> type:
        """The agent's config dataclass."""
        cls = _import(self.config) if isinstance(self.config, str) else self.config
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"an agent config must be a dataclass, got {cls!r}")
        return cls

    def agent_class(self) -> Callable[..., Any]:
        """The agent's class (or factory)."""
        return _import(self.agent) if isinstance(self.agent, str) else self.agent


AGENTS: dict[str, AgentEntry] = {
    "rl2": AgentEntry("metarl.agents.rl2:RL2Config", "metarl.agents.rl2:RL2Agent", "RL2"),
    "maml_trpo": AgentEntry(
        "metarl.agents.maml_trpo:MAMLTRPOConfig",
        "metarl.agents.maml_trpo:MAMLTRPOAgent",
        "MAML-TRPO",
    ),
    "promp": AgentEntry(
        "metarl.agents.promp:ProMPConfig", "metarl.agents.promp:ProMPAgent", "ProMP"
    ),
    "pearl": AgentEntry(
        "metarl.agents.pearl:PEARLConfig", "metarl.agents.pearl:PEARLAgent", "PEARL"
    ),
    "ppo": AgentEntry("metarl.agents.ppo:PPOConfig", "metarl.agents.ppo:PPOAgent", "PPO (DR)"),
}


def register_agent(
    name: str, config: str | type, agent: str | Callable[..., Any], label: str | None = None
) -> None:
    """Make ``agent.name: <name>`` usable in configs (replaces an entry of that name)."""
    AGENTS[name] = AgentEntry(config, agent, label)
    _agent_models.pop(name, None)


class AgentConfig(BaseModel):
    """The algorithm: ``name`` and, as further keys, the fields of its config class.

    ``validate_config`` uses a subclass made for the named agent (``agent_model``),
    whose further fields are the config class's, with their types, constraints,
    defaults and docstrings.
    """

    model_config = STRICT_SECTION
    # The config class's old field names -> their new names (refused with the new name).
    renamed_fields: ClassVar[Mapping[str, str]] = {}

    name: str = "rl2"
    """A registered agent (``AGENTS``)."""

    def hyperparameters(self) -> dict[str, Any]:
        """The config class's fields as set here."""
        return {k: getattr(self, k) for k in type(self).model_fields if k != "name"}

    def to_dataclass(self) -> Any:
        """The agent's config (an instance of its config class) built from this section;
        the class's own checks of several fields together run here.

        Raises:
            ConfigError: the config class refuses the values.
        """
        cls = AGENTS[self.name].config_class()
        try:
            return cls(**self.hyperparameters())
        except (ValueError, TypeError) as err:
            raise ConfigError(f"invalid config:\n  agent: {err}") from None


_agent_models: dict[str, type[AgentConfig]] = {}


def _class_fields(cls: type) -> dict[str, tuple[Any, FieldInfo]]:
    """The fields of a config dataclass as ``(annotation, FieldInfo)`` for ``create_model``:
    a settings class's own (constraints, defaults, docstrings), or those a plain
    dataclass's type hints give (constraints in ``Annotated``)."""
    if hasattr(cls, "__pydantic_fields__"):
        return {
            name: (info.annotation, copy.copy(info))
            for name, info in settings_fields(cls).items()
            if info.init is not False
        }
    hints = typing.get_type_hints(cls, include_extras=True)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            info = Field(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            info = Field(default_factory=f.default_factory)
        else:
            info = Field()
        out[f.name] = (hints[f.name], info)
    return out


def agent_model(name: str) -> type[AgentConfig]:
    """The ``agent`` section's model for agent ``name``: ``name`` plus its config class's
    fields (``renamed_fields``: the class's old names, refused with the new ones).

    Raises:
        ConfigError: ``name`` is not registered or its module cannot be imported.
    """
    if name in _agent_models:
        return _agent_models[name]
    if name not in AGENTS:
        raise ConfigError(
            f"invalid config:\n  agent.name: unknown agent {name!r}; "
            f"registered agents: {', '.join(sorted(AGENTS))}"
        )
    try:
        cls = AGENTS[name].config_class()
    except ImportError as err:
        raise ConfigError(
            f"invalid config:\n  agent.name: agent {name!r} cannot be imported ({err})"
        ) from None
    fields = _class_fields(cls)
    if "name" in fields:
        raise TypeError(f"{cls.__name__} has a field 'name', which would clash with agent.name")
    model: type[AgentConfig] = create_model(
        f"AgentConfig_{name}",
        __base__=AgentConfig,
        __doc__=cls.__doc__,
        name=(Literal[name], name),
        **fields,  # type: ignore[call-overload]
    )
    model.renamed_fields = dict(getattr(cls, "renamed_fields", {}))
    _agent_models[name] = model
    return model


def translate_renamed(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` whose ``agent`` keys that the agent's config class has renamed
    (its ``renamed_fields``) carry their new names. A run folder's own ``config.yaml``
    is read this way, so that runs written before a rename still resume and evaluate;
    a file a user writes is not (an old key there is an error naming the new one)."""
    data = dict(raw)
    agent = data.get("agent")
    if not isinstance(agent, Mapping):
        return data
    name = agent.get("name", AgentConfig.model_fields["name"].default)
    if not isinstance(name, str) or name not in AGENTS:
        return data
    renamed: Mapping[str, str] = getattr(AGENTS[name].config_class(), "renamed_fields", {})
    data["agent"] = {
        renamed[key] if key in renamed and renamed[key] not in agent else key: value
        for key, value in agent.items()
    }
    return data
