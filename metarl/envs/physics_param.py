"""One named physical parameter of a MuJoCo model: ``PhysicsParam``, the declaration of
what a randomization, a *Params family or a system identification changes.

A ``PhysicsParam`` names one field of ``PHYSICS_FIELDS`` (``metarl.envs.physics_fields``),
the elements it touches *by name* (or ``"all"``), optionally some components, an
operation relative to the model's defaults (``scale``, ``add``, ``set``), a distribution
(``metarl.envs.physics_distributions``), and whether one draw is shared by every touched
entry or each entry gets its own (``independent``). It is checked when built and knows
nothing of a model; ``PhysicsSpace`` (``metarl.envs.physics``) binds a set of them to
one. ``to_dict`` / ``from_dict`` and ``params_from_dicts`` are their form in files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metarl.envs.physics_distributions import ScalarDistribution, distribution_from_dict
from metarl.envs.physics_fields import OPS, PHYSICS_FIELDS, PhysicsField

__all__ = ["PhysicsParam", "params_from_dicts"]


@dataclass(frozen=True)
class PhysicsParam:
    """One randomizable physical parameter: a field, the entries it touches, an op and a law.

    Args:
        field: a key of ``PHYSICS_FIELDS`` (``"body_mass"``, ``"geom_friction"``, ...).
        dist: the distribution of the drawn value(s).
        elements: ``"all"`` or a sequence of body / geom / joint / actuator names
            (dof fields are named by their joint; an unnamed actuator by the
            joint, tendon, site or body it drives). ``"all"`` leaves out the
            world body. Global fields (gravity, timestep, ...) take only ``"all"``.
        components: names of the components to touch (``["sliding"]`` of
            ``geom_friction``); ``None``: the field's default components.
        op: ``"scale"`` (default * value), ``"add"`` (default + value) or
            ``"set"`` (value), always relative to the model's defaults.
        independent: ``False``: one draw shared by every touched entry (the
            task's value is a number); ``True``: each element and component gets
            its own draw (the value is a nested tuple of shape ``(elements,
            components)``, leaving out an axis the field does not have), as
            rand_param_envs does.

    Raises:
        ValueError: unknown field (the message lists the known ones), op or
            component, or malformed elements.
    """

    field: str
    dist: ScalarDistribution
    elements: str | Sequence[str] = "all"
    components: Sequence[str] | None = None
    op: str = "scale"
    independent: bool = False

    def __post_init__(self) -> None:
        if self.field not in PHYSICS_FIELDS:
            raise ValueError(
                f"unknown physics field {self.field!r}; known fields: {sorted(PHYSICS_FIELDS)}"
            )
        spec = PHYSICS_FIELDS[self.field]
        if not isinstance(self.dist, ScalarDistribution):
            raise ValueError(
                f"PhysicsParam({self.field!r}).dist must be a ScalarDistribution "
                f"(Uniform, LogUniform, ...), got {self.dist!r}"
            )
        if self.op not in OPS:
            raise ValueError(
                f"PhysicsParam({self.field!r}).op must be one of {list(OPS)}, got {self.op!r}"
            )
        if not isinstance(self.independent, (bool, np.bool_)):
            raise ValueError(
                f"PhysicsParam({self.field!r}).independent must be a bool, got {self.independent!r}"
            )
        object.__setattr__(self, "independent", bool(self.independent))
        object.__setattr__(self, "elements", self._check_elements(spec))
        object.__setattr__(self, "components", self._check_components(spec))

    def _check_elements(self, spec: PhysicsField) -> str | tuple[str, ...]:
        elements = self.elements
        if isinstance(elements, str):
            if elements != "all":
                raise ValueError(
                    f"PhysicsParam({self.field!r}).elements must be 'all' or a list of names, "
                    f"got {elements!r}"
                )
            return "all"
        if spec.element is None:
            raise ValueError(
                f"PhysicsParam({self.field!r}) is a global option; elements must be 'all', "
                f"got {elements!r}"
            )
        if not isinstance(elements, (list, tuple)):
            raise ValueError(
                f"PhysicsParam({self.field!r}).elements must be 'all' or a list of "
                f"{spec.element} names, got {elements!r}"
            )
        names = tuple(elements)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(
                f"PhysicsParam({self.field!r}).elements must be 'all' or a non-empty list of "
                f"{spec.element} names, got {elements!r}"
            )
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"PhysicsParam({self.field!r}).elements names {dup} more than once")
        return names

    def _check_components(self, spec: PhysicsField) -> tuple[str, ...] | None:
        if self.components is None:
            return None
        if not spec.components:
            raise ValueError(
                f"PhysicsParam({self.field!r}) has no components; leave components=None"
            )
        if isinstance(self.components, str):
            raise ValueError(
                f"PhysicsParam({self.field!r}).components must be a list of names, "
                f"got {self.components!r}"
            )
        comps = tuple(self.components)
        unknown = [c for c in comps if c not in spec.components]
        if unknown or not comps or len(set(comps)) != len(comps):
            raise ValueError(
                f"PhysicsParam({self.field!r}).components must be distinct names from "
                f"{list(spec.components)}, got {list(comps)}"
            )
        return comps

    @property
    def spec(self) -> PhysicsField:
        """The field's entry in ``PHYSICS_FIELDS``."""
        return PHYSICS_FIELDS[self.field]

    @property
    def selected_components(self) -> tuple[str, ...]:
        """The components this param touches (empty for a field without components)."""
        return self.spec.default_components if self.components is None else tuple(self.components)

    def describe(self) -> str:
        """One line: what is changed, how, and by what law."""
        what = self.field if self.elements == "all" else f"{self.field} of {list(self.elements)}"
        if self.components is not None:
            what += f" ({', '.join(self.components)})"
        law = {"scale": "scaled by", "add": "plus", "set": "set to"}[self.op]
        draw = "independent draws per entry" if self.independent else "one shared draw"
        return f"{what} {law} {self.dist}, {draw}"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON/YAML) that ``PhysicsParam.from_dict`` reads back."""
        return {
            "field": self.field,
            "dist": self.dist.to_dict(),
            "elements": self.elements if isinstance(self.elements, str) else list(self.elements),
            "components": None if self.components is None else list(self.components),
            "op": self.op,
            "independent": self.independent,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhysicsParam:
        """Build a param from ``to_dict``'s output (``dist`` may be a dict or a distribution).

        Raises:
            ValueError: unknown or missing keys, or invalid values.
        """
        allowed = {"field", "dist", "elements", "components", "op", "independent"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"PhysicsParam has no key(s) {unknown}; its keys: {sorted(allowed)}")
        missing = [k for k in ("field", "dist") if k not in data]
        if missing:
            raise ValueError(f"PhysicsParam dict is missing {missing}")
        kwargs = dict(data)
        if isinstance(kwargs["dist"], Mapping):
            kwargs["dist"] = distribution_from_dict(kwargs["dist"])
        if isinstance(kwargs.get("elements"), list):
            kwargs["elements"] = tuple(kwargs["elements"])
        if isinstance(kwargs.get("components"), list):
            kwargs["components"] = tuple(kwargs["components"])
        return cls(**kwargs)


def params_from_dicts(data: Mapping[str, Mapping[str, Any]]) -> dict[str, PhysicsParam]:
    """name -> ``PhysicsParam`` from name -> ``PhysicsParam.to_dict`` output (the form of
    configs).

    Raises:
        ValueError: an invalid dict; the message starts with its name.
    """
    out = {}
    for name, d in data.items():
        try:
            out[name] = PhysicsParam.from_dict(d)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: {err}") from None
    return out
