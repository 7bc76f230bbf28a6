"""Pieces every metarl file format shares, without torch or the trainer: the
``ConfigError`` of a bad file (declared in ``metarl.checks``), YAML reading,
one-line-per-field validation messages, the checked form of physical parameters
in files (``PhysicsParamDicts``), and the model config of an experiment config's
sections (``STRICT_SECTION``).

``metarl.config`` (experiments), the sim2real files (targets, sysid, transfer) and the
robot side (which runs without PyTorch) all use them.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from metarl.checks import ConfigError
from metarl.envs import params_from_dicts

__all__ = [
    "STRICT_SECTION",
    "ConfigError",
    "PhysicsParamDicts",
    "RunFolderError",
    "parse_yaml",
    "read_yaml",
    "validation_message",
]


class RunFolderError(ValueError):
    """A run folder that cannot be resumed or evaluated (missing config or checkpoint)."""


# The pydantic config of every section of an experiment config (``metarl.config``, the
# ``agent`` section of ``metarl.agent_registry``): unknown keys refused, nothing coerced,
# infinity and NaN refused (as settings classes do), each field's docstring its description.
STRICT_SECTION = ConfigDict(
    extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True
)


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.2; 1.1 needs
    ``1.0e-3``) and refuses a key given twice in one mapping (YAML requires unique keys;
    PyYAML would keep the last value silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}  # key -> the line it is first given on
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base``: merged keys may repeat
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own message names it
                continue
            if first is not None:
                where = f"line {line}" if first == line else f"lines {first} and {line}"
                raise yaml.constructor.ConstructorError(problem=f"duplicate key {key!r} on {where}")
            lines[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (empty file: ``{}``).

    Raises:
        ConfigError: the file is missing, is not valid YAML or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {str(path)!r}: {err.strerror}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config must be a mapping of sections "
            f"(env, sampler, agent, trainer, evaluation, run), got a {type(data).__name__}"
        )
    return data


def _check_param_dicts(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    params_from_dicts(value)  # named errors
    return value


# name -> ``PhysicsParam`` dict (``PhysicsParam.to_dict``), checked: the form physics
# parameters take in every file (randomization, targets, sysid).
PhysicsParamDicts = Annotated[dict[str, dict[str, Any]], AfterValidator(_check_param_dicts)]


def validation_message(
    err: ValidationError,
    root: str,
    show_input: bool = False,
    model: type[BaseModel] | None = None,
) -> str:
    """One line per error of ``err``: the field path under ``root`` and the message
    (the form of every file's errors: ``root.a.b: message``), with the value given if
    ``show_input``; with ``model`` (the validated class), an unknown key is named with
    the keys allowed where it stands."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in (root, *e["loc"]))
        given = f", got {e['input']!r}" if show_input else ""
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and model is not None:
            allowed = _fields_at(model, e["loc"][:-1])
            if allowed:
                message = f"unknown key; allowed: {', '.join(allowed)}"
        lines.append(f"{where}: {message}{given}")
    return "\n  ".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found by following ``loc`` from ``model`` (through
    optional fields, lists, dicts and unions tagged by a ``kind`` default); ``[]`` where
    the path leaves the models."""
    candidates: list[Any] = [model]
    for part in loc:
        tagged = [c for c in candidates if _kind(c) == part]
        if tagged:  # a tagged union's member, named by its kind
            candidates = tagged
            continue
        nested: list[Any] = []
        for c in candidates:
            if isinstance(c, type) and issubclass(c, BaseModel) and part in c.model_fields:
                nested.append(c.model_fields[part].annotation)
            elif not (isinstance(c, type) and issubclass(c, BaseModel)):
                nested.append(c)  # a list or dict level: keep the item type
        candidates = [m for n in nested for m in _members(n, part)]
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return list(models[0].model_fields) if len(models) == 1 else []


def _kind(cls: Any) -> Any:
    """The ``kind`` default of a model class (its tag in a union), else ``None``."""
    if isinstance(cls, type) and issubclass(cls, BaseModel) and "kind" in cls.model_fields:
        return cls.model_fields["kind"].default
    return None


def _members(annotation: Any, tag: int | str) -> list[Any]:
    """The model classes an annotation may hold."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _members(args[0], tag)
    if origin in (list, dict, typing.Union, types.UnionType) or origin is not None:
        inner = [m for a in args for m in _members(a, tag)]
        return inner
    return (
        [annotation] if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []
    )
