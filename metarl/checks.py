"""Validation that every layer shares: settings classes, the words for what a value may
be, and the checks of plain arguments.

- ``settings``: makes a class of settings (an agent's hyperparameters, the trainer's)
  a frozen pydantic dataclass in strict mode, each setting declared once with its
  constraint on the field (``PositiveInt``, ``Annotated[float, Field(ge=0, le=1)]``,
  ``Literal[...]``), its docstring below it and cross-field checks as
  ``model_validator``s that raise ``CrossFieldError`` naming the settings they concern.
  Nothing is coerced (``"5"`` is not an integer, ``True`` is not one, a list is not a
  float), unknown keywords and non-finite floats are refused, and a refusal raises
  ``SettingsError`` (a ``ConfigError``) naming the field and what it allows
  (``RL2Config.gamma must be in [0, 1], got 1.5``). A class renames a setting by
  listing ``renamed_fields = {old: new}``: the old keyword is refused with the new name.
  ``is_settings`` tells a settings class apart. The experiment config
  (``metarl.config``) validates its YAML sections through the same classes, so a
  setting has one declaration for Python and YAML.
- ``allowed``: what a type with constraints accepts, in words (``a positive
  integer``, ``in [0, 1]``, ``one of ['tanh', 'relu']``); the errors of settings,
  of the experiment config and of the plain checks all use it.
- ``check_int``, ``check_number``: checks of arguments that are not settings (a
  wrapper's delay, a sampler's number of environments, a task's parameter), raising
  ``ValueError`` in the same words; ``is_integer`` and ``is_real`` the tests they make
  (a bool is neither), for checks with their own message.

This module imports nothing of metarl, so that every layer (the task types and
environments included) can use it.
"""

from __future__ import annotations

import functools
import math
import numbers
import types
import typing
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeGuard, TypeVar

import annotated_types
import pydantic.dataclasses
from pydantic import ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = [
    "SETTINGS",
    "ConfigError",
    "CrossFieldError",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "SettingsError",
    "UnitInterval",
    "allowed",
    "check_int",
    "check_number",
    "cross_field_error",
    "is_integer",
    "is_real",
    "is_settings",
    "settings",
    "settings_fields",
]


class ConfigError(ValueError):
    """A config that cannot be used; the message names each bad field, value and what is allowed."""


class SettingsError(ConfigError):
    """A settings class refused its values. The message has one line per problem;
    ``errors`` holds pydantic's details of each (``loc``, ``type``, ``msg``, ``input``,
    ``ctx``), from which the experiment config names the problems by their paths in
    the file."""

    def __init__(self, message: str, errors: list[ErrorDetails]) -> None:
        super().__init__(message)
        self.errors = errors


class CrossFieldError(ValueError):
    """Raised by a settings class's check of several settings together (a
    ``model_validator``): ``fields`` are the settings it concerns, which the error names
    as its field paths (``PEARLConfig.num_steps_prior, PEARLConfig.num_steps_posterior:
    ...``; in a config file ``agent.num_steps_prior, agent.num_steps_posterior: ...``).
    The message says what the settings must satisfy and the values given."""

    def __init__(self, fields: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


def cross_field_error(error: ErrorDetails) -> CrossFieldError | None:
    """The ``CrossFieldError`` behind one of pydantic's error details, if any."""
    cause = error.get("ctx", {}).get("error")
    return cause if isinstance(cause, CrossFieldError) else None


# --------------------------------------------------------------------------- constrained types

PositiveInt = Annotated[int, annotated_types.Ge(1)]
NonNegativeInt = Annotated[int, annotated_types.Ge(0)]
PositiveFloat = Annotated[float, annotated_types.Gt(0)]
NonNegativeFloat = Annotated[float, annotated_types.Ge(0)]
UnitInterval = Annotated[float, annotated_types.Ge(0), annotated_types.Le(1)]
"""A number in [0, 1]: a discount, a probability, a GAE lambda."""


# --------------------------------------------------------------------------- words


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_words(
    integer: bool,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> str:
    """What a number with these bounds may be: ``a positive integer``, ``an integer >= 2``,
    ``in [0, 1]``, ``a finite non-negative number``, ``a finite number > 1``. Every number
    checked here must be finite (settings, config sections and ``check_number`` refuse
    infinity and NaN); the words say so where the bounds leave infinity in."""
    noun = "integer" if integer else "number"
    finite = "" if integer else "finite "
    low = ("[", ge) if ge is not None else ("(", gt) if gt is not None else None
    high = ("]", le) if le is not None else (")", lt) if lt is not None else None
    if low is not None and high is not None:
        interval = f"in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
        return f"an integer {interval}" if integer else interval
    if low is not None:
        bracket, bound = low
        if (bracket == "(" and bound == 0) or (integer and bracket == "[" and bound == 1):
            return f"a {finite}positive {noun}"
        if bracket == "[" and bound == 0:
            return f"a {finite}non-negative {noun}"
        words = f"{finite}{noun} {'>=' if bracket == '[' else '>'} {_number(bound)}"
    elif high is not None:
        bracket, bound = high
        words = f"{finite}{noun} {'<=' if bracket == ']' else '<'} {_number(bound)}"
    else:
        words = f"{finite}{noun}"
    return f"{'an' if integer else 'a'} {words}"


def _plural(words: str) -> str:
    """``a positive integer`` -> ``positive integers``; ``in [0, 1]`` -> ``numbers in [0, 1]``."""
    for article in ("a ", "an "):
        if words.startswith(article):
            words = words[len(article) :]
            break
    for noun in ("integer", "number", "string"):
        if noun in words:
            return words.replace(noun, noun + "s", 1)
    return f"numbers {words}" if words.startswith("in ") else f"values each {words}"


_BOUNDS = (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)


def _constraints(metadata: Sequence[Any]) -> dict[str, Any]:
    """Bounds (``ge``, ``gt``, ``le``, ``lt``) and ``min_length`` from annotation metadata."""
    out: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, FieldInfo):
            out.update(_constraints(m.metadata))
        elif isinstance(m, _BOUNDS):
            name = type(m).__name__.lower()
            out[name] = getattr(m, name)
        elif isinstance(m, annotated_types.Interval):
            out.update({k: v for k in ("ge", "gt", "le", "lt") if (v := getattr(m, k)) is not None})
        elif isinstance(m, annotated_types.MinLen):
            out["min_length"] = m.min_length
    return out


def allowed(annotation: Any, metadata: Sequence[Any] = (), *, yaml: bool = False) -> str:
    """What a value of ``annotation`` (with constraints ``metadata``, e.g. a field's)
    may be, in words: ``a positive integer``, ``in [0, 1]``, ``one of ['tanh', 'relu']``,
    ``True or False``, ``positive integers``, ``a string or None``. ``yaml``: name
    booleans and None as YAML writes them (``true or false``, ``null``)."""
    metadata = list(metadata)
    while typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata.extend(extra)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        words = " or ".join(allowed(a, metadata, yaml=yaml) for a in options)
        return f"{words} or {'null' if yaml else 'None'}" if len(options) < len(args) else words
    if origin is Literal:
        return f"one of {list(args)!r}"
    if annotation is bool:
        return "true or false" if yaml else "True or False"
    c = _constraints(metadata)
    if annotation in (int, float):
        bounds = {k: c[k] for k in ("ge", "gt", "le", "lt") if k in c}
        return _range_words(annotation is int, **bounds)
    if origin in (tuple, list, Sequence) and args:
        items = _plural(allowed(args[0], yaml=yaml))
        return f"one or more {items}" if c.get("min_length", 0) >= 1 else items
    if annotation is str:
        return "a non-empty string" if c.get("min_length", 0) >= 1 else "a string"
    if origin in (dict, Mapping) or annotation is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


# --------------------------------------------------------------------------- settings

SETTINGS = ConfigDict(
    strict=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
)
"""The pydantic config of every settings class."""

T = TypeVar("T")


def settings_fields(cls: type) -> dict[str, FieldInfo]:
    """The fields of a settings class (or any pydantic dataclass or model), by name,
    each with its description: the docstring of the class that declares it."""
    fields: dict[str, FieldInfo] | None = getattr(cls, "__pydantic_fields__", None)
    if fields is None:
        fields = getattr(cls, "model_fields", {})
    assert fields is not None
    for name, info in fields.items():
        if info.description is None:  # inherited: the declaring class has the docstring
            for base in cls.__mro__[1:]:
                declared = getattr(base, "__pydantic_fields__", {}).get(name)
                if declared is not None and declared.description is not None:
                    info.description = declared.description
                    break
    return fields


def _error_lines(cls: type, err: ValidationError, given: Mapping[str, Any]) -> list[str]:
    name = cls.__name__
    fields = settings_fields(cls)
    renamed: Mapping[str, str] = getattr(cls, "renamed_fields", {})
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        field = e["loc"][0] if e["loc"] else None
        cross = cross_field_error(e)
        if cross is not None:
            lines.append(f"{', '.join(f'{name}.{f}' for f in cross.fields)}: {msg}")
        elif not isinstance(field, str):
            lines.append(f"{name}: {msg}")
        elif e["type"] == "unexpected_keyword_argument":
            if field in renamed:
                lines.append(f"{name}.{field} was renamed {name}.{renamed[field]}")
            else:
                lines.append(f"{name}.{field} is not a setting; settings: {', '.join(fields)}")
        elif field not in fields or e["type"] in ("value_error", "assertion_error"):
            lines.append(f"{name}.{field}: {msg}, got {given.get(field, e['input'])!r}")
        else:
            info = fields[field]
            words = allowed(info.annotation, info.metadata)
            lines.append(f"{name}.{field} must be {words}, got {given.get(field, e['input'])!r}")
    return lines


_settings_classes: weakref.WeakSet[type] = weakref.WeakSet()


@typing.dataclass_transform(frozen_default=True, field_specifiers=(Field,))
def settings(cls: type[T]) -> type[T]:
    """Make ``cls`` a settings class (module docstring): a frozen pydantic dataclass
    with ``SETTINGS``, whose constructor raises ``SettingsError`` naming the field and
    what it allows. Subclasses of a settings class are decorated again."""
    out: Any = pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)(cls)
    init: Callable[..., None] = out.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as err:
            given = {**dict(zip(settings_fields(type(self)), args, strict=False)), **kwargs}
            lines = _error_lines(type(self), err, given)
            raise SettingsError("\n".join(lines), err.errors()) from None

    out.__init__ = __init__
    _settings_classes.add(out)
    return typing.cast(type[T], out)


def is_settings(cls: Any) -> bool:
    """Whether ``cls`` is a settings class (made by ``settings`` itself, not merely
    inherited from one)."""
    return isinstance(cls, type) and cls in _settings_classes


# --------------------------------------------------------------------------- plain arguments


def is_integer(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is an integer: an ``int`` or a numpy integer (which the type
    checker is told is an ``int``: it behaves as one), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (ints and numpy numbers too, not a bool), finite
    or not."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, ge: int | None = None, le: int | None = None) -> int:
    """``value`` as an ``int`` (numpy integers too, never a bool) within the bounds.

    Raises:
        ValueError: otherwise, naming ``name`` and what is allowed
            (``name must be a positive integer, got 0``).
    """
    ok = is_integer(value)
    if not ok or (ge is not None and value < ge) or (le is not None and value > le):
        raise ValueError(f"{name} must be {_range_words(True, ge=ge, le=le)}, got {value!r}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> float:
    """``value`` as a finite ``float`` (ints and numpy numbers too, never a bool) within
    the bounds (none: any finite number).

    Raises:
        ValueError: otherwise, naming ``name`` and what is allowed
            (``name must be a finite positive number, got 0``, ``name must be a finite
            number, got inf``).
    """
    ok = is_real(value) and math.isfinite(value)
    ok = ok and (ge is None or value >= ge) and (gt is None or value > gt)
    ok = ok and (le is None or value <= le) and (lt is None or value < lt)
    if not ok:
        words = _range_words(False, ge=ge, gt=gt, le=le, lt=lt)
        raise ValueError(f"{name} must be {words}, got {value!r}")
    return float(value)
