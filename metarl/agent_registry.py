"""The agent registry and the ``agent`` section of an experiment config, built from an
agent's settings class.

``AGENTS`` maps an agent's name (``agent.name`` in a config) to an ``AgentEntry``: where
its config class (a settings class, ``metarl.checks.settings``) and its agent class
live, as ``"module:Name"`` strings imported on first use (the core imports an agent's
module only when a config names that agent), and its label in reports.
``register_agent`` adds one.

An agent in another installed package is found through the entry-point group
``metarl.agents`` (``ENTRY_POINT_GROUP``): each entry point is named after the agent
(``agent.name``) and names the module whose import registers it with
``register_agent``, e.g. in that package's ``pyproject.toml``::

    [project.entry-points."metarl.agents"]
    toy = "toyagent"

The registry reads the group's names at its first lookup and imports a module when a
config names its agent and no agent of that name is registered already, in every
process that looks the name up (the ``metarl`` command, Ray Tune's trial workers), so
no process needs to import the package by hand.

``agent_model(name)`` is the ``agent`` section's pydantic model for one agent: ``name``
plus the fields of its config class, with their types, constraints, defaults and
docstrings. ``AgentConfig.to_dataclass`` builds the agent's config from a validated
section. ``translate_renamed`` reads the keys a config class has renamed (its
``renamed_fields``) under their new names, for a run folder's own ``config.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.metadata
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo

from metarl.checks import is_settings, settings_fields
from metarl.schema import STRICT_SECTION, ConfigError

__all__ = [
    "AGENTS",
    "ENTRY_POINT_GROUP",
    "AgentConfig",
    "AgentEntry",
    "AgentRegistry",
    "agent_model",
    "register_agent",
    "translate_renamed",
]

ENTRY_POINT_GROUP = "metarl.agents"
"""The entry-point group through which installed packages offer agents (module docstring)."""


def _import(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _check_config_class(cls: Any) -> None:
    if not is_settings(cls):
        raise TypeError(
            f"an agent's config class must be a settings class (decorated with "
            f"@metarl.checks.settings), got {cls!r}"
        )


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    """Where an agent lives: its config class and its class.

    Either may be given as ``"module:Name"`` (imported when first used) or as the
    object. The config class is a settings class (``metarl.checks.settings``), whose
    fields are the ``agent`` section's keys. The agent class is called as
    ``agent(observation_space, action_space, config)``. ``label`` is its name in reports
    (default: the registry key).

    Raises:
        TypeError: ``config`` is a class but not a settings class.
    """

    config: str | type
    agent: str | Callable[..., Any]
    label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, str):
            _check_config_class(self.config)

    def config_class(self) -> type:
        """The agent's config class.

        Raises:
            ImportError: its module cannot be imported.
            TypeError: it is not a settings class.
        """
        cls = _import(self.config) if isinstance(self.config, str) else self.config
        _check_config_class(cls)
        return cls

    def agent_class(self) -> Callable[..., Any]:
        """The agent's class (or factory)."""
        return _import(self.agent) if isinstance(self.agent, str) else self.agent


class AgentRegistry(MutableMapping[str, AgentEntry]):
    """Agent name -> ``AgentEntry``: the registered agents and those that installed
    packages offer through ``ENTRY_POINT_GROUP`` (module docstring), whose modules are
    imported when their name is first looked up. Setting or deleting an entry drops the
    ``agent`` section model built for that name."""

    def __init__(self, entries: Mapping[str, AgentEntry]) -> None:
        self._entries = dict(entries)
        self._offered: dict[str, importlib.metadata.EntryPoint] | None = None

    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """The group's entry points by name, read once."""
        if self._offered is None:
            found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
            self._offered = {ep.name: ep for ep in found}
        return self._offered

    def _load(self, name: str) -> AgentEntry:
        ep = self._entry_points()[name]
        where = f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP})"
        try:
            ep.load()
        except Exception as err:
            raise ImportError(f"{where} failed to import: {type(err).__name__}: {err}") from err
        if name not in self._entries:
            raise ImportError(
                f"{where} was imported but registered no agent {name!r}; its module must call "
                f"metarl.agent_registry.register_agent({name!r}, ...)"
            )
        return self._entries[name]

    def __getitem__(self, name: str) -> AgentEntry:
        if name in self._entries:
            return self._entries[name]
        if name in self._entry_points():
            return self._load(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._entry_points()

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._entries), **dict.fromkeys(self._entry_points())})

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, name: str, entry: AgentEntry) -> None:
        self._entries[name] = entry
        _agent_models.pop(name, None)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        _agent_models.pop(name, None)


AGENTS = AgentRegistry(
    {
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
)


def register_agent(
    name: str, config: str | type, agent: str | Callable[..., Any], label: str | None = None
) -> None:
    """Make ``agent.name: <name>`` usable in configs (replaces an entry of that name).

    Raises:
        TypeError: ``config`` is a class but not a settings class.
    """
    AGENTS[name] = AgentEntry(config, agent, label)


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
        the class's own checks of several fields together run here (``validate_config``
        names their errors by field path).

        Raises:
            SettingsError: the config class refuses the values.
        """
        return AGENTS[self.name].config_class()(**self.hyperparameters())


_agent_models: dict[str, type[AgentConfig]] = {}


def _class_fields(cls: type) -> dict[str, tuple[Any, FieldInfo]]:
    """The fields of a settings class as ``(annotation, FieldInfo)`` for ``create_model``
    (constraints, defaults, docstrings)."""
    return {
        name: (info.annotation, copy.copy(info))
        for name, info in settings_fields(cls).items()
        if info.init is not False
    }


def agent_model(name: str) -> type[AgentConfig]:
    """The ``agent`` section's model for agent ``name``: ``name`` plus its config class's
    fields (``renamed_fields``: the class's old names, refused with the new ones).

    Raises:
        ConfigError: ``name`` is not registered, its module cannot be imported or its
            config class is not a settings class.
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
    except TypeError as err:  # not a settings class
        raise ConfigError(f"invalid config:\n  agent.name: agent {name!r}: {err}") from None
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
