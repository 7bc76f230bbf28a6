"""The message of an invalid experiment config: one line per error, naming the field path,
the value given and what the field allows (read from the field's constraint, an item's
for an item of a list or mapping), a key that a config class has renamed named with its
new name, the settings a check of several settings together concerns, and a key set by
a command-line override marked as such."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from metarl.checks import allowed, cross_field_error, settings_fields

__all__ = ["format_errors"]

# What a value at some path must be: its annotation and the constraints on it.
_Spec = tuple[Any, Sequence[Any]]


def _field_at(model: Any, loc: Sequence[str | int]) -> tuple[Any, _Spec | None]:
    """Walk ``loc`` from ``model``: the section (a model or a settings class) holding the
    last key, and what the value at ``loc`` must be (``None``: unknown). A step into a
    list or tuple (an index) or a mapping (a key that is not a section's field) takes
    the item type."""
    parent: Any = None
    spec: _Spec | None = (model, ())
    for part in loc:
        if spec is None:
            return parent, None
        current = _unwrap(spec[0])
        if isinstance(current, type) and _is_section(current) and isinstance(part, str):
            parent = current
            info: FieldInfo | None = settings_fields(current).get(part)
            spec = None if info is None else (info.annotation, info.metadata)
            continue
        args = typing.get_args(current)
        origin = typing.get_origin(current)
        if isinstance(part, int) and origin in (list, tuple, Sequence) and args:
            spec = (args[0], ())
        elif origin in (dict, Mapping) and len(args) == 2:
            spec = (args[1], ())
        else:
            return parent, None
    return parent, spec


def _is_section(cls: Any) -> bool:
    return isinstance(cls, type) and (
        issubclass(cls, BaseModel) or hasattr(cls, "__pydantic_fields__")
    )


def _unwrap(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` and without ``| None``."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def _override_marker(paths: Sequence[str], overridden: set[str]) -> str:
    """`` (set by the override KEY=...)`` for the override that set one of ``paths`` or a
    section above it; empty if none did."""
    for path in paths:
        parts = path.split(".")
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if key in overridden:
                return f" (set by the override {key}=...)"
    return ""


def format_errors(
    errors: Sequence[ErrorDetails], model: type[BaseModel], overridden: set[str]
) -> str:
    """The message of ``errors`` (pydantic's details, ``loc`` from the top of an
    experiment config ``model``); ``overridden``: the dotted keys overrides set."""
    lines = []
    for e in errors:
        loc = [p for p in e["loc"] if isinstance(p, (str, int))]
        path = ".".join(str(p) for p in loc) or "(top level)"
        paths = [path]
        parent, spec = _field_at(model, loc)
        value = e["input"]
        renamed: Mapping[str, str] = getattr(parent, "renamed_fields", {})
        msg = e["msg"].removeprefix("Value error, ")
        cross = cross_field_error(e)
        if e["type"] in _UNKNOWN_KEY and loc and loc[-1] in renamed:
            new = ".".join([*map(str, loc[:-1]), renamed[str(loc[-1])]])
            line = f"{path} was renamed {new}"
        elif e["type"] in _UNKNOWN_KEY:
            keys = ", ".join(settings_fields(parent)) if parent is not None else "?"
            line = f"{path}: unknown key; allowed keys here: {keys}"
        elif e["type"] == "missing":
            line = f"{path}: required, missing"
        elif cross is not None:  # its message gives the values
            paths = [".".join([*map(str, loc), f]) for f in cross.fields]
            line = f"{', '.join(paths)}: {msg}"
        elif spec is not None and _is_section(_unwrap(spec[0])):  # a section's own check
            line = f"{path}: {msg}"
        else:
            line = f"{path}: {msg}, got {value!r}"
            if spec is not None and e["type"] != "value_error":
                line += f"; allowed: {allowed(spec[0], spec[1], yaml=True)}"
        lines.append(line + _override_marker(paths, overridden))
    return f"invalid config ({len(lines)} error{'s' * (len(lines) > 1)}):\n  " + "\n  ".join(lines)
