"""The message of an invalid experiment config: one line per error, naming the field path,
the value given and what the field allows (read from the field's constraint), a key
that a config class has renamed named with its new name, and a key set by a command-line
override marked as such."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from metarl.checks import allowed, settings_fields

__all__ = ["format_errors"]


def _field_at(model: Any, loc: Sequence[str | int]) -> tuple[Any, FieldInfo | None]:
    """Walk ``loc`` from ``model``: the section (a model or a settings class) holding the
    last key and that key's field."""
    current: Any = model
    parent: Any = None
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            info = None
            continue
        if not (isinstance(current, type) and _is_section(current)):
            return None, None
        parent = current
        info = settings_fields(current).get(part)
        if info is None:
            return parent, None
        current = _unwrap_optional(info.annotation)
    return parent, info


def _is_section(cls: type) -> bool:
    return issubclass(cls, BaseModel) or hasattr(cls, "__pydantic_fields__")


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if len(args) == 1:
            return args[0]
    return annotation


_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def format_errors(err: ValidationError, model: type[BaseModel], overridden: set[str]) -> str:
    lines = []
    for e in err.errors():
        loc = [p for p in e["loc"] if isinstance(p, (str, int))]
        path = ".".join(str(p) for p in loc) or "(top level)"
        parent, info = _field_at(model, loc)
        value = e["input"]
        renamed: Mapping[str, str] = getattr(parent, "renamed_fields", {})
        if e["type"] in _UNKNOWN_KEY and loc and loc[-1] in renamed:
            new = ".".join([*map(str, loc[:-1]), renamed[str(loc[-1])]])
            line = f"{path} was renamed {new}"
        elif e["type"] in _UNKNOWN_KEY:
            keys = ", ".join(settings_fields(parent)) if parent is not None else "?"
            line = f"{path}: unknown key; allowed keys here: {keys}"
        elif e["type"] == "missing":
            line = f"{path}: required, missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            line = f"{path}: {msg}, got {value!r}"
            if info is not None and e["type"] != "value_error":
                line += f"; allowed: {allowed(info.annotation, info.metadata, yaml=True)}"
        if path in overridden:
            line += f" (set by the override {path}=...)"
        lines.append(line)
    return f"invalid config ({len(lines)} error{'s' * (len(lines) > 1)}):\n  " + "\n  ".join(lines)
