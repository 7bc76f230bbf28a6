"""Scalar distributions of physical parameters, each with a stated support.

A ``PhysicsParam`` (``metarl.envs.physics_param``) draws its value(s) from one of
these: ``Uniform``, ``LogUniform`` (``LogUniform.power(1.5, -3, 3)`` is
rand_param_envs' ``1.5 ** U(-3, 3)``), ``Normal``, ``TruncatedNormal``, ``Beta``
(scaled to ``[low, high]``) and ``Fixed``. Every distribution samples from an
explicit ``numpy.random.Generator``, states its support as ``(low, high)`` and
validates values against it with a ``ValueError`` that names the parameter and
the allowed range. They are frozen dataclasses, so a randomization schedule
that widens a range makes a new one (``dataclasses.replace``), and they
round-trip through plain dicts (``to_dict`` / ``distribution_from_dict``) for
configuration files.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from metarl.checks import check_number

__all__ = [
    "Beta",
    "Fixed",
    "LogUniform",
    "Normal",
    "ScalarDistribution",
    "TruncatedNormal",
    "Uniform",
    "distribution_from_dict",
]

# Support checks accept values this far (relative) outside the bounds: a draw such
# as ``exp(log(high))`` may land one rounding step above ``high``.
_REL_TOL = 1e-12


def _fmt(x: float) -> str:
    return f"{x:.6g}"


class ScalarDistribution(ABC):
    """A distribution over real numbers with a support ``[low, high]`` (bounds may be infinite)."""

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[ScalarDistribution]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            ScalarDistribution._kinds[cls.kind] = cls

    @abstractmethod
    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Return a float64 array of ``shape`` with independent draws made with ``rng``."""

    @property
    @abstractmethod
    def support(self) -> tuple[float, float]:
        """The closed interval ``(low, high)`` holding every draw."""

    def validate(self, name: str, value: Any) -> np.ndarray:
        """Return ``value`` as a float64 array if every entry lies in the support.

        Raises:
            ValueError: an entry is not finite or lies outside the support; the
                message names ``name``, the offending value and the allowed range.
        """
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got {value!r}")
        low, high = self.support
        tol_low = _REL_TOL * max(1.0, abs(low)) if math.isfinite(low) else 0.0
        tol_high = _REL_TOL * max(1.0, abs(high)) if math.isfinite(high) else 0.0
        bad = (arr < low - tol_low) | (arr > high + tol_high)
        if np.any(bad):
            first = float(arr[bad].flat[0])
            raise ValueError(
                f"{name} = {_fmt(first)} is outside the allowed range "
                f"[{_fmt(low)}, {_fmt(high)}] of {self}"
            )
        return arr

    def to_dict(self) -> dict[str, Any]:
        """A plain dict ``{"kind": ..., <field>: <value>}`` for ``distribution_from_dict``."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = getattr(self, f.name)
        return out


def distribution_from_dict(data: Mapping[str, Any]) -> ScalarDistribution:
    """Build a distribution from ``ScalarDistribution.to_dict``'s output.

    Raises:
        ValueError: missing or unknown ``kind``, or fields the kind does not have.
    """
    if not isinstance(data, Mapping) or "kind" not in data:
        raise ValueError(
            f"a distribution dict needs a 'kind' (one of {sorted(ScalarDistribution._kinds)}), "
            f"got {data!r}"
        )
    cls = ScalarDistribution._kinds.get(data["kind"])
    if cls is None:
        raise ValueError(
            f"unknown distribution kind {data['kind']!r}; "
            f"known kinds: {sorted(ScalarDistribution._kinds)}"
        )
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names) - {"kind"})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; its fields: {names}")
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"{cls.__name__} dict is missing field(s) {missing}; its fields: {names}")
    return cls(**{k: v for k, v in data.items() if k != "kind"})


@dataclass(frozen=True)
class Uniform(ScalarDistribution):
    """``U(low, high)``."""

    kind: ClassVar[str] = "uniform"
    low: float
    high: float

    def __post_init__(self) -> None:
        low, high = check_number("Uniform.low", self.low), check_number("Uniform.high", self.high)
        if not low < high:
            raise ValueError(f"Uniform needs low < high, got low={low}, high={high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.asarray(rng.uniform(self.low, self.high, size=shape), dtype=np.float64)

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __str__(self) -> str:
        return f"U({_fmt(self.low)}, {_fmt(self.high)})"


@dataclass(frozen=True)
class LogUniform(ScalarDistribution):
    """Log-uniform on ``[low, high]``: ``log x ~ U(log low, log high)``, ``0 < low < high``.

    ``base`` only changes how the distribution is written: ``LogUniform.power(1.5,
    -3, 3)`` is ``1.5 ** U(-3, 3)``, the same distribution as
    ``LogUniform(1.5 ** -3, 1.5 ** 3)``.
    """

    kind: ClassVar[str] = "log_uniform"
    low: float
    high: float
    base: float | None = None

    def __post_init__(self) -> None:
        low = check_number("LogUniform.low", self.low)
        high = check_number("LogUniform.high", self.high)
        if not 0.0 < low < high:
            raise ValueError(f"LogUniform needs 0 < low < high, got low={low}, high={high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.base is not None:
            base = check_number("LogUniform.base", self.base)
            if not (base > 0.0 and base != 1.0):
                raise ValueError(f"LogUniform.base must be positive and not 1, got {base}")
            object.__setattr__(self, "base", base)

    @classmethod
    def power(cls, base: float, low_exponent: float, high_exponent: float) -> LogUniform:
        """``base ** U(low_exponent, high_exponent)`` with ``base > 1``."""
        base = check_number("LogUniform.base", base)
        if not base > 1.0:
            raise ValueError(f"LogUniform.power needs base > 1, got {base}")
        return cls(base**low_exponent, base**high_exponent, base=base)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        from scipy import stats  # imported on first use: scipy.stats takes ~1.4 s to import

        draws = stats.loguniform(self.low, self.high).rvs(size=shape, random_state=rng)
        return np.asarray(draws, dtype=np.float64)

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __str__(self) -> str:
        if self.base is not None:
            lo = math.log(self.low) / math.log(self.base)
            hi = math.log(self.high) / math.log(self.base)
            return f"{_fmt(self.base)} ** U({round(lo, 9):g}, {round(hi, 9):g})"
        return f"LogUniform({_fmt(self.low)}, {_fmt(self.high)})"


@dataclass(frozen=True)
class Normal(ScalarDistribution):
    """``N(mean, std^2)``; support: all real numbers."""

    kind: ClassVar[str] = "normal"
    mean: float
    std: float

    def __post_init__(self) -> None:
        mean = check_number("Normal.mean", self.mean)
        std = check_number("Normal.std", self.std, gt=0.0)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.asarray(rng.normal(self.mean, self.std, size=shape), dtype=np.float64)

    @property
    def support(self) -> tuple[float, float]:
        return (-math.inf, math.inf)

    def __str__(self) -> str:
        return f"N({_fmt(self.mean)}, {_fmt(self.std)}^2)"


@dataclass(frozen=True)
class TruncatedNormal(ScalarDistribution):
    """``N(mean, std^2)`` conditioned on ``[low, high]`` (scipy's ``truncnorm``)."""

    kind: ClassVar[str] = "truncated_normal"
    mean: float
    std: float
    low: float
    high: float

    def __post_init__(self) -> None:
        for name in ("mean", "std", "low", "high"):
            gt = 0.0 if name == "std" else None
            value = check_number(f"TruncatedNormal.{name}", getattr(self, name), gt=gt)
            object.__setattr__(self, name, value)
        if not self.low < self.high:
            raise ValueError(
                f"TruncatedNormal needs low < high, got low={self.low}, high={self.high}"
            )

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        a = (self.low - self.mean) / self.std
        b = (self.high - self.mean) / self.std
        from scipy import stats  # imported on first use (see LogUniform.sample)

        draws = stats.truncnorm(a, b, loc=self.mean, scale=self.std).rvs(
            size=shape, random_state=rng
        )
        return np.asarray(draws, dtype=np.float64)

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __str__(self) -> str:
        return (
            f"N({_fmt(self.mean)}, {_fmt(self.std)}^2) truncated to "
            f"[{_fmt(self.low)}, {_fmt(self.high)}]"
        )


@dataclass(frozen=True)
class Beta(ScalarDistribution):
    """``low + (high - low) * Beta(a, b)``."""

    kind: ClassVar[str] = "beta"
    a: float
    b: float
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        for name in ("a", "b", "low", "high"):
            gt = 0.0 if name in ("a", "b") else None
            object.__setattr__(self, name, check_number(f"Beta.{name}", getattr(self, name), gt=gt))
        if not self.low < self.high:
            raise ValueError(f"Beta needs low < high, got low={self.low}, high={self.high}")

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        unit = rng.beta(self.a, self.b, size=shape)
        return np.asarray(self.low + (self.high - self.low) * unit, dtype=np.float64)

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __str__(self) -> str:
        return (
            f"Beta({_fmt(self.a)}, {_fmt(self.b)}) scaled to [{_fmt(self.low)}, {_fmt(self.high)}]"
        )


@dataclass(frozen=True)
class Fixed(ScalarDistribution):
    """Always ``value``: a parameter held at one value (e.g. a system-identification estimate)."""

    kind: ClassVar[str] = "fixed"
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_number("Fixed.value", self.value))

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.full(shape, self.value, dtype=np.float64)

    @property
    def support(self) -> tuple[float, float]:
        return (self.value, self.value)

    def __str__(self) -> str:
        return f"Fixed({_fmt(self.value)})"
