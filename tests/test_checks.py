"""metarl.checks: settings classes, the words for allowed values, the shared argument
checks, and that no module keeps a private copy of them."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pytest
from pydantic import Field, model_validator

import metarl
from metarl.checks import (
    ConfigError,
    CrossFieldError,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SettingsError,
    UnitInterval,
    allowed,
    check_int,
    check_number,
    is_settings,
    settings,
    settings_fields,
)

PACKAGE = Path(metarl.__file__).parent


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (PositiveInt, "a positive integer"),
        (NonNegativeInt, "a non-negative integer"),
        (Annotated[int, Field(ge=2)], "an integer >= 2"),
        (Annotated[int, Field(ge=0, le=49)], "an integer in [0, 49]"),
        (PositiveFloat, "a finite positive number"),
        (NonNegativeFloat, "a finite non-negative number"),
        (UnitInterval, "in [0, 1]"),
        (Annotated[float, Field(gt=0, lt=1)], "in (0, 1)"),
        (Annotated[float, Field(gt=1)], "a finite number > 1"),
        (float, "a finite number"),
        (bool, "True or False"),
        (Literal["tanh", "relu"], "one of ['tanh', 'relu']"),
        (tuple[PositiveInt, ...], "positive integers"),
        (Annotated[tuple[PositiveInt, ...], Field(min_length=1)], "one or more positive integers"),
        (PositiveInt | None, "a positive integer or None"),
        (Annotated[str, Field(min_length=1)] | None, "a non-empty string or None"),
    ],
)
def test_allowed_says_what_a_constraint_allows(annotation: Any, words: str) -> None:
    assert allowed(annotation) == words


def test_allowed_speaks_yaml_where_asked() -> None:
    assert allowed(bool, yaml=True) == "true or false"
    assert allowed(PositiveInt | None, yaml=True) == "a positive integer or null"


@settings
class _Toy:
    """A settings class."""

    renamed_fields: ClassVar[dict[str, str]] = {"tasks": "batch"}

    batch: PositiveInt = 4
    """Tasks per update."""
    rate: PositiveFloat = 0.1
    """A step size."""
    low: float = 0.0
    """A lower end."""
    high: float = 1.0
    """An upper end."""

    @model_validator(mode="after")
    def _ordered(self) -> _Toy:
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got {self.low}, {self.high}")
        return self


@settings
class _Child(_Toy):
    """A settings class that extends another."""

    mode: Literal["a", "b"] = "a"
    """A choice."""


def _refusal(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _Child(**kwargs)
    return str(info.value)


def test_a_settings_class_names_the_field_and_what_it_allows() -> None:
    assert _refusal(batch=0) == "_Child.batch must be a positive integer, got 0"
    assert _refusal(rate=float("nan")) == "_Child.rate must be a finite positive number, got nan"
    assert _refusal(mode="c") == "_Child.mode must be one of ['a', 'b'], got 'c'"
    assert _refusal(low=2.0) == "_Child: low must be below high, got 2.0, 1.0"
    assert _refusal(tasks=3) == "_Child.tasks was renamed _Child.batch"
    assert _refusal(bach=3).startswith("_Child.bach is not a setting; settings: batch, rate")
    # Every problem at once, one line each.
    assert _refusal(batch=0, rate=0).splitlines() == [
        "_Child.batch must be a positive integer, got 0",
        "_Child.rate must be a finite positive number, got 0",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"batch": "5"}, {"batch": True}, {"batch": 2.0}, {"rate": "0.1"}, {"rate": True}],
)
def test_a_settings_class_coerces_nothing(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=f"_Child.{next(iter(kwargs))} must be"):
        _Child(**kwargs)


def test_a_settings_class_is_a_frozen_dataclass_checked_on_replace() -> None:
    child = _Child(batch=2, rate=1)
    assert child.rate == 1.0 and isinstance(child.rate, float)
    assert dataclasses.asdict(child) == {
        "batch": 2,
        "rate": 1.0,
        "low": 0.0,
        "high": 1.0,
        "mode": "a",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        child.batch = 3  # type: ignore[misc]
    with pytest.raises(ConfigError, match="_Child.batch must be a positive integer"):
        dataclasses.replace(child, batch=-1)
    # The docstrings are the fields' descriptions, inherited ones included.
    fields = settings_fields(_Child)
    assert fields["batch"].description == "Tasks per update."
    assert fields["mode"].description == "A choice."


def test_argument_checks_use_the_same_words() -> None:
    assert check_int("n", np.int64(3), ge=0) == 3
    with pytest.raises(ValueError, match=r"^n must be a non-negative integer, got -1$"):
        check_int("n", -1, ge=0)
    with pytest.raises(ValueError, match="n must be a positive integer, got True"):
        check_int("n", True, ge=1)
    assert check_number("p", 1, ge=0, le=1) == 1.0
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        check_number("p", 1.5, ge=0, le=1)
    with pytest.raises(ValueError, match="hz must be a finite positive number, got inf"):
        check_number("hz", float("inf"), gt=0)


def test_check_number_is_the_one_check_of_a_number() -> None:
    """Without bounds it takes any finite number and says so; there is no second check."""
    assert not hasattr(metarl.checks, "check_real")
    assert check_number("x", np.float32(-2.5)) == -2.5
    for bad in (math.inf, math.nan, "a", True):
        with pytest.raises(ValueError, match=rf"^x must be a finite number, got {bad!r}$"):
            check_number("x", bad)


@settings
class _Pair:
    """Two settings checked together."""

    prior: NonNegativeInt = 1
    """Steps before."""
    posterior: NonNegativeInt = 1
    """Steps after."""

    @model_validator(mode="after")
    def _some(self) -> _Pair:
        if self.prior + self.posterior < 1:
            raise CrossFieldError(
                ("prior", "posterior"), f"prior + posterior must be positive, got {self.prior}"
            )
        return self


def test_a_check_of_several_settings_names_them_and_keeps_its_details() -> None:
    with pytest.raises(SettingsError) as info:
        _Pair(prior=0, posterior=0)
    assert (
        str(info.value) == "_Pair.prior, _Pair.posterior: prior + posterior must be positive, got 0"
    )
    (error,) = info.value.errors
    assert error["loc"] == () and isinstance(error["ctx"]["error"], CrossFieldError)


@dataclasses.dataclass
class _PlainDataclass:
    x: int = 1


def test_is_settings_tells_settings_classes_apart() -> None:
    assert is_settings(_Toy) and is_settings(_Child) and is_settings(_Pair)
    assert not is_settings(_PlainDataclass) and not is_settings(_Toy())
    assert not is_settings(type("Undecorated", (_Toy,), {}))


def test_no_module_keeps_its_own_copy_of_the_checks() -> None:
    """The test that a value is an integer or a number but not a bool is written once,
    in ``metarl/checks.py``; everything else calls it."""
    pattern = re.compile(r"isinstance\([^()]*,\s*bool\)")
    found = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "checks.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, found
