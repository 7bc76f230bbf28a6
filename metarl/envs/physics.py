"""Spaces of named physical parameters bound to a MuJoCo model, which are task distributions.

One mechanism serves the *Params environments, domain randomization and system
identification:

- ``PHYSICS_FIELDS`` (``metarl.envs.physics_fields``, where a table lists them)
  is what can be changed: a name (``"body_mass"``, ``"geom_friction"``,
  ``"gravity"``, ...) -> the ``mujoco.MjModel`` attribute, the kind of element
  it belongs to (body, geom, joint, dof, actuator, or none for the global
  options) and the names of its components (``sliding``/``torsional``/``rolling``
  for friction, ``x``/``y``/``z`` for inertia axes, ...).
- ``PhysicsParam`` (``metarl.envs.physics_param``) names one field, the elements it
  touches *by name* (or ``"all"``), optionally some components, an operation relative
  to the model's defaults (``scale``, ``add``, ``set``), a distribution, and whether one
  draw is shared by every touched entry or each entry gets its own (``independent``).
- ``PhysicsSpace`` (here) is a set of named params bound to one model. It is a
  ``TaskDistribution`` of ``PhysicsTask``s; ``apply(model, task)`` writes
  ``default <op> value`` from the defaults cached at binding (so applications
  never compound), recomputes the constants MuJoCo derives from the model, and
  ``restore(model)`` brings back the defaults bit for bit. Binding resolves each
  param's element names to rows of the model's arrays and checks what the field needs
  of them (a position servo for ``actuator_kp``, ...).

Example::

    space = PhysicsSpace(
        {
            "torso_mass": PhysicsParam("body_mass", elements=["torso"], dist=Uniform(0.8, 1.2)),
            "friction": PhysicsParam(
                "geom_friction", components=["sliding"], dist=LogUniform(0.5, 2.0)
            ),
        },
        env.unwrapped.model,
    )
    task = space.sample(rng, 1)[0]     # PhysicsTask(values={"friction": 1.3, "torso_mass": 0.9})
    space.apply(env.unwrapped.model, task)
    space.restore(env.unwrapped.model)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from metarl.checks import check_int
from metarl.envs.physics_fields import (
    DERIVED_FIELDS,
    OPS,
    PHYSICS_FIELDS,
    PhysicsField,
    available_names,
    dofs_of_joint,
    element_names,
    has_field,
    model_view,
    snapshot,
    write_back,
)
from metarl.envs.physics_param import PhysicsParam
from metarl.tasks import PhysicsTask, Task, TaskDistribution

__all__ = [
    "OPS",
    "PHYSICS_FIELDS",
    "PhysicsField",
    "PhysicsSpace",
]

# --------------------------------------------------------------------------- binding


def _resolve_rows(model: Any, name: str, param: PhysicsParam) -> tuple[list[int], list[str]]:
    """Rows of the field's attribute that ``param`` touches, with a label for each."""
    kind = param.spec.element
    if kind is None:
        return [0], [param.field]
    names = element_names(model, kind)
    label_kind = "joint" if kind == "dof" else kind
    if param.elements == "all":
        ids = list(range(1 if kind == "body" else 0, len(names)))
    else:
        index = {n: i for i, n in enumerate(names) if n}
        ids = []
        for element in param.elements:
            if element not in index:
                raise ValueError(
                    f"physics param {name!r} ({param.field}): unknown {label_kind} {element!r}; "
                    + available_names(names, label_kind)
                )
            ids.append(index[element])
    if not ids:
        raise ValueError(f"physics param {name!r} ({param.field}): the model has no {kind}s")
    if kind != "dof":
        return ids, [names[i] or f"<unnamed {kind} {i}>" for i in ids]
    rows: list[int] = []
    labels: list[str] = []
    for j in ids:
        dofs = dofs_of_joint(model, j)
        joint = names[j] or f"<unnamed joint {j}>"
        rows.extend(dofs)
        labels.extend([joint] if len(dofs) == 1 else [f"{joint}[{k}]" for k in range(len(dofs))])
    return rows, labels


def _check_gain_actuators(
    model: Any, name: str, field: str, rows: list[int], labels: list[str]
) -> None:
    """``actuator_kp`` needs position servos; ``actuator_gain`` fixed gains that are not servos."""
    for r, label in zip(rows, labels, strict=True):
        if int(model.actuator_gaintype[r]) != int(mujoco.mjtGain.mjGAIN_FIXED):
            raise ValueError(
                f"physics param {name!r} ({field}): actuator {label!r} has no fixed gain "
                "(gaintype is not 'fixed'), so gainprm[0] is not its gain"
            )
        if field == "actuator_kp":
            gain, bias = model.actuator_gainprm[r, 0], model.actuator_biasprm[r, 1]
            if int(model.actuator_biastype[r]) != int(mujoco.mjtBias.mjBIAS_AFFINE) or (
                bias != -gain
            ):
                raise ValueError(
                    f"physics param {name!r} (actuator_kp): actuator {label!r} is not a position "
                    f"servo (needs biastype 'affine' and biasprm[1] = -gainprm[0], got "
                    f"gainprm[0]={gain:g}, biasprm[1]={bias:g}); use 'actuator_gain'"
                )
        else:
            gain, bias = model.actuator_gainprm[r, 0], model.actuator_biasprm[r]
            affine = int(model.actuator_biastype[r]) == int(mujoco.mjtBias.mjBIAS_AFFINE)
            if affine and gain != 0 and -gain in (bias[1], bias[2]):
                kind = "position" if bias[1] == -gain else "velocity"
                hint = "use 'actuator_kp'" if kind == "position" else "set its kv in the model"
                raise ValueError(
                    f"physics param {name!r} (actuator_gain): actuator {label!r} is a {kind} "
                    f"servo; changing its gain alone would move its set point: {hint}"
                )


def _check_ctrl_limited(
    model: Any, name: str, field: str, rows: list[int], labels: list[str]
) -> None:
    """A control range only acts on a ctrl-limited actuator; elsewhere it would be ignored."""
    for r, label in zip(rows, labels, strict=True):
        if not model.actuator_ctrllimited[r]:
            raise ValueError(
                f"physics param {name!r} (actuator_ctrlrange): actuator {label!r} is not "
                "ctrl-limited (ctrllimited=false), so MuJoCo ignores its control range; "
                "set ctrllimited in the model or leave this actuator out"
            )


_FIELD_CHECKS: dict[str, Callable[[Any, str, str, list[int], list[str]], None]] = {
    "actuator_gain": _check_gain_actuators,
    "actuator_kp": _check_gain_actuators,
    "actuator_ctrlrange": _check_ctrl_limited,
}


class _Binding:
    """A param resolved against one model: rows, columns, defaults and the value shape."""

    def __init__(self, name: str, param: PhysicsParam, model: Any):
        spec = param.spec
        self.name, self.param, self.spec = name, param, spec
        rows, self.labels = _resolve_rows(model, name, param)
        comps = param.selected_components
        self.components = comps
        if comps:
            cols = [spec.columns[spec.components.index(c)] for c in comps]
        else:
            cols = list(spec.columns) or [0]
        check = _FIELD_CHECKS.get(param.field)
        if check is not None:
            check(model, name, param.field, rows, self.labels)
        self.rows = np.asarray(rows, dtype=np.intp)
        self.cols = np.asarray(cols, dtype=np.intp)
        self.index = np.ix_(self.rows, self.cols)
        self.default = self.read(model)
        full: tuple[int, ...] = ((len(rows),) if spec.element is not None else ()) + (
            (len(comps),) if comps else ()
        )
        self.entry_shape = full
        self.shape = full if param.independent else ()

    def entries(self) -> list[tuple[str, int, int]]:
        out = [(self.spec.attr, int(r), int(c)) for r in self.rows for c in self.cols]
        for attr, col, _ in self.spec.coupled:
            out.extend((attr, int(r), col) for r in self.rows)
        return out

    def read(self, model: Any) -> np.ndarray:
        """The model's current values of the touched entries, shape (rows, columns)."""
        view = model_view(model, self.spec.attr)
        if view is None:
            return np.full((1, 1), snapshot(model, self.spec.attr))
        return np.array(view[self.index], dtype=np.float64)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.param.dist.sample(rng, self.shape)

    def target(self, value: Any) -> np.ndarray:
        """The new entries ``default <op> value``; raises ValueError for a bad value."""
        param, where = self.param, f"physics param {self.name!r} ({self.param.field})"
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: value {value!r} is not a number or nested list") from None
        if arr.shape != self.shape:
            if param.independent:
                layout = f"one value per entry: elements {self.labels}" + (
                    f" x components {list(self.components)}" if self.components else ""
                )
            else:
                layout = "one value shared by every entry (independent=False)"
            raise ValueError(
                f"{where}: value has shape {arr.shape}, expected {self.shape} ({layout})"
            )
        param.dist.validate(f"physics param {self.name!r}", arr)
        v = arr.reshape(self.default.shape) if param.independent else arr
        if param.op == "scale":
            new = self.default * v
        elif param.op == "add":
            new = self.default + v
        else:
            new = np.broadcast_to(v, self.default.shape).astype(np.float64)
        low = self.spec.minimum
        if low is not None:
            bad = (new <= low) if self.spec.strict_minimum else (new < low)
            if np.any(bad):
                r, c = (int(i) for i in np.argwhere(bad)[0])
                comp = f" ({self.components[c]})" if self.components else ""
                bound = f"> {low:g}" if self.spec.strict_minimum else f">= {low:g}"
                raise ValueError(
                    f"{where}: {self.labels[r]}{comp} would become {new[r, c]:g} "
                    f"(default {self.default[r, c]:g} {param.op} value); it must be {bound}"
                )
        return new

    def write(self, model: Any, new: np.ndarray) -> None:
        view = model_view(model, self.spec.attr)
        if view is None:
            write_back(model, self.spec.attr, new[0, 0])
        else:
            view[self.index] = new
        for attr, col, factor in self.spec.coupled:
            other = model_view(model, attr)
            assert other is not None
            other[self.rows, col] = factor * new[:, 0]


def _named_params(
    params: Mapping[str, PhysicsParam] | Sequence[PhysicsParam],
) -> dict[str, PhysicsParam]:
    if isinstance(params, Mapping):
        out = dict(params)
    else:
        out = {}
        for p in params:
            if not isinstance(p, PhysicsParam):
                raise ValueError(f"PhysicsSpace params must be PhysicsParams, got {p!r}")
            if p.field in out:
                raise ValueError(
                    f"two params change {p.field!r}; pass a mapping name -> PhysicsParam "
                    "to name them apart"
                )
            out[p.field] = p
    if not out:
        raise ValueError("a PhysicsSpace needs at least one PhysicsParam")
    for name, p in out.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"PhysicsSpace param names must be non-empty strings, got {name!r}")
        if not isinstance(p, PhysicsParam):
            raise ValueError(f"PhysicsSpace param {name!r} must be a PhysicsParam, got {p!r}")
    return out


# --------------------------------------------------------------------------- space


class PhysicsSpace(TaskDistribution):
    """Named ``PhysicsParam``s bound to one MuJoCo model: a distribution of ``PhysicsTask``s.

    Binding resolves every element name to its index once, checks that no two
    params touch the same entry, and caches the model's current values of every
    touched field as the defaults: the model must hold its defaults when the
    space is built. A task's value for each param is a number (a shared draw)
    or a nested tuple of ``shapes[name]`` (independent draws).

    Args:
        params: a mapping name -> ``PhysicsParam`` (the names are the task's keys),
            or a sequence of params, each then named by its field.
        model: the ``mujoco.MjModel`` to bind to (``env.unwrapped.model``).

    Raises:
        ValueError: an unknown element name (the message lists the model's names),
            two params touching one entry, or an actuator that does not fit
            ``actuator_gain`` / ``actuator_kp``.
    """

    task_type = PhysicsTask

    def __init__(
        self, params: Mapping[str, PhysicsParam] | Sequence[PhysicsParam], model: Any
    ) -> None:
        if not isinstance(model, mujoco.MjModel):
            raise ValueError(f"PhysicsSpace needs a mujoco.MjModel, got {type(model).__name__}")
        self.params = _named_params(params)
        self.model = model
        self._bindings = {name: _Binding(name, p, model) for name, p in self.params.items()}
        self._check_overlap()
        touched = {b.spec.attr for b in self._bindings.values()}
        touched |= {attr for b in self._bindings.values() for attr, _, _ in b.spec.coupled}
        self._saved = {attr: snapshot(model, attr) for attr in sorted(touched)}
        self._needs_setconst = any(b.spec.setconst for b in self._bindings.values())
        self._scratch: Any = None
        self._derived: dict[str, np.ndarray] = {}
        self._pinned: tuple[str, ...] = ()
        if self._needs_setconst:
            self._prepare_setconst()

    def _check_overlap(self) -> None:
        owner: dict[tuple[str, int, int], str] = {}
        for name, b in self._bindings.items():
            for entry in b.entries():
                if entry in owner and owner[entry] != name:
                    raise ValueError(
                        f"physics params {owner[entry]!r} and {name!r} both change "
                        f"{entry[0]}[{entry[1]}, {entry[2]}]; one entry can have one param"
                    )
                owner[entry] = name

    def _prepare_setconst(self) -> None:
        # mj_setConst works on an MjData of its own: it moves qpos to qpos0 and would
        # otherwise clobber the environment's state in the middle of an episode.
        model = self.model
        self._scratch = mujoco.MjData(model)
        self._derived = {a: snapshot(model, a) for a in DERIVED_FIELDS if has_field(model, a)}
        mujoco.mj_setConst(model, self._scratch)
        # A derived value that mj_setConst does not reproduce from the defaults was set
        # by the model's author (e.g. <statistic meaninertia=...>): keep it pinned.
        self._pinned = tuple(
            a for a, v in self._derived.items() if not np.array_equal(snapshot(model, a), v)
        )
        for a in self._derived:
            write_back(model, a, self._derived[a])

    # ----------------------------------------------------------------- description

    def bind(self, model: Any) -> PhysicsSpace:
        """The same params bound to another model (its current values are the defaults)."""
        return PhysicsSpace(self.params, model)

    def attach(self, model: Any) -> PhysicsSpace:
        """This space, with the defaults cached at binding, on ``model``: a model of the same
        structure as the bound one (e.g. the same environment rebuilt by unpickling).

        Unlike ``bind``, the defaults are not read from ``model``: ``restore(model)`` writes
        the bound model's defaults, whatever ``model`` holds now. ``model`` itself is not
        changed.

        Raises:
            ValueError: ``model`` is not a ``mujoco.MjModel``, or a param resolves to other
                entries in it than in the bound model, or a touched field has another size.
        """
        if not isinstance(model, mujoco.MjModel):
            raise ValueError(f"PhysicsSpace needs a mujoco.MjModel, got {type(model).__name__}")
        if model is self.model:
            return self
        for name, b in self._bindings.items():
            rows, _ = _resolve_rows(model, name, b.param)
            if list(rows) != b.rows.tolist():
                raise ValueError(
                    f"physics param {name!r} touches rows {b.rows.tolist()} of the bound model "
                    f"and {list(rows)} of the new one: the models differ in structure"
                )
        for attr, saved in (*self._saved.items(), *self._derived.items()):
            if np.shape(snapshot(model, attr)) != np.shape(saved):
                raise ValueError(
                    f"{attr} has shape {np.shape(snapshot(model, attr))} in the new model and "
                    f"{np.shape(saved)} in the bound one: the models differ in structure"
                )
        moved = copy.copy(self)
        moved.model = model
        moved._scratch = mujoco.MjData(model) if self._needs_setconst else None
        return moved

    @property
    def names(self) -> list[str]:
        """The params' names, in the order they are sampled."""
        return list(self._bindings)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each param's value in a task: ``()`` for a shared draw."""
        return {name: b.shape for name, b in self._bindings.items()}

    def labels(self, name: str) -> list[str]:
        """Labels of the rows param ``name`` touches (``joint[k]`` for a multi-dof joint)."""
        return list(self._binding(name).labels)

    def components(self, name: str) -> tuple[str, ...]:
        """The components param ``name`` touches (empty for a field without components)."""
        return self._binding(name).components

    def default_values(self, name: str) -> np.ndarray:
        """Cached defaults of the entries ``name`` touches, shape ``(elements[, components])``."""
        b = self._binding(name)
        return b.default.reshape(b.entry_shape).copy()

    def model_values(self, model: Any) -> dict[str, np.ndarray]:
        """The model's current values of each param's entries, as ``default_values``."""
        self._require_model(model)
        return {n: b.read(model).reshape(b.entry_shape) for n, b in self._bindings.items()}

    @property
    def pinned_fields(self) -> tuple[str, ...]:
        """Derived fields that ``apply`` keeps at the model's values (set by its author)."""
        return self._pinned

    @property
    def support(self) -> dict[str, str]:
        return {name: b.param.describe() for name, b in self._bindings.items()}

    def _binding(self, name: str) -> _Binding:
        if name not in self._bindings:
            raise KeyError(f"PhysicsSpace has no param {name!r}; its params: {self.names}")
        return self._bindings[name]

    # ----------------------------------------------------------------- distribution

    def sample(self, rng: np.random.Generator, n: int) -> list[Task]:
        return [
            PhysicsTask({name: b.sample(rng) for name, b in self._bindings.items()})
            for _ in range(check_int("n", n, ge=0))
        ]

    def default_task(self) -> PhysicsTask:
        """The task that reproduces the defaults: 1 for scale, 0 for add, the defaults for set.

        It need not lie in the support.

        Raises:
            ValueError: a shared ``set`` param whose entries have different defaults.
        """
        values: dict[str, Any] = {}
        for name, b in self._bindings.items():
            if b.param.op != "set":
                values[name] = np.full(b.shape, 1.0 if b.param.op == "scale" else 0.0)
            elif b.param.independent:
                values[name] = b.default.reshape(b.shape)
            elif np.all(b.default == b.default.flat[0]):
                values[name] = float(b.default.flat[0])
            else:
                raise ValueError(
                    f"physics param {name!r} sets one shared value but its entries have "
                    f"different defaults {b.default.ravel().tolist()}: no task reproduces them"
                )
        return PhysicsTask(values)

    def _check(self, task: Task) -> None:
        self._targets(task)

    def _targets(self, task: Task) -> list[tuple[_Binding, np.ndarray]]:
        assert isinstance(task, PhysicsTask)
        missing = [n for n in self._bindings if n not in task.values]
        extra = sorted(n for n in task.values if n not in self._bindings)
        if missing or extra:
            raise ValueError(
                f"PhysicsTask parameters {sorted(task.values)} do not match the space's "
                f"{sorted(self._bindings)} (missing {missing}, unknown {extra})"
            )
        targets = [(b, b.target(task.values[name])) for name, b in self._bindings.items()]
        self._check_ranges(targets)
        return targets

    def _check_ranges(self, targets: list[tuple[_Binding, np.ndarray]]) -> None:
        ranges = [(b, new) for b, new in targets if b.spec.name == "actuator_ctrlrange"]
        if not ranges:
            return
        prospective = self._saved["actuator_ctrlrange"].copy()
        for b, new in ranges:
            prospective[b.index] = new
        for b, _ in ranges:
            for r, label in zip(b.rows, b.labels, strict=True):
                low, high = prospective[r]
                if not low <= high:
                    raise ValueError(
                        f"physics param {b.name!r} (actuator_ctrlrange): actuator {label!r} would "
                        f"get the range [{low:g}, {high:g}]; low must not exceed high"
                    )

    # ----------------------------------------------------------------- model

    def _require_model(self, model: Any) -> None:
        if model is not self.model:
            raise ValueError(
                "this PhysicsSpace is bound to another MjModel; use space.bind(model) first"
            )

    def apply(self, model: Any, task: Task) -> None:
        """Write ``default <op> value`` of every param of ``task`` into ``model``.

        Values are computed from the defaults cached at binding, so applying a task
        twice, or after another task, gives the same model as applying it once.
        When a param changes a field MuJoCo derives constants from (mass, inertia,
        centre of mass, armature, gear), ``mj_setConst`` recomputes them. The
        environment's ``MjData`` is not touched: the change takes effect at the
        next ``mj_step`` / ``mj_forward``.

        Raises:
            ValueError: ``model`` is not the bound model, ``task`` is not a
                ``PhysicsTask``, its names differ from the space's, a value has the
                wrong shape or lies outside its distribution's support, or a
                resulting value is unphysical (negative mass, ...); nothing is
                written then.
        """
        self._require_model(model)
        if not isinstance(task, PhysicsTask):
            self.validate(task)  # raises the distribution's message for a wrong type
        for b, new in self._targets(task):
            b.write(model, new)
        if self._needs_setconst:
            mujoco.mj_setConst(model, self._scratch)
            for attr in self._pinned:
                write_back(model, attr, self._derived[attr])

    def restore(self, model: Any) -> None:
        """Bring back the defaults of every field the space touches, and of MuJoCo's derived ones.

        The derived constants are copied back from the values cached at binding,
        so the model equals its state at binding bit for bit.
        """
        self._require_model(model)
        for attr, saved in self._saved.items():
            write_back(model, attr, saved)
        for attr, saved in self._derived.items():
            write_back(model, attr, saved)

    def __repr__(self) -> str:
        lines = [f"  {name}: {desc}" for name, desc in self.support.items()]
        return "PhysicsSpace(\n" + "\n".join(lines) + "\n)"
