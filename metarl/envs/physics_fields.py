"""What a ``PhysicsParam`` can change in a MuJoCo model, and how to reach it by name.

``PHYSICS_FIELDS`` maps a field name to the ``mujoco.MjModel`` attribute it
lives in, the kind of element its rows belong to and the names of its
components:

| field | MjModel attribute | element | components | derived constants |
| --- | --- | --- | --- | --- |
| ``body_mass`` | ``body_mass`` | body | - | yes |
| ``body_inertia`` | ``body_inertia`` | body | x, y, z (principal axes) | yes |
| ``body_ipos`` | ``body_ipos`` (centre of mass) | body | x, y, z | yes |
| ``geom_friction`` | ``geom_friction`` | geom | sliding, torsional, rolling | no |
| ``dof_damping`` | ``dof_damping`` | dof (named by joint) | - | no |
| ``dof_armature`` | ``dof_armature`` | dof | - | yes |
| ``dof_frictionloss`` | ``dof_frictionloss`` | dof | - | no |
| ``jnt_stiffness`` | ``jnt_stiffness`` | joint | - | no |
| ``actuator_gear`` | ``actuator_gear`` | actuator | x (default), y, z, rx, ry, rz | yes |
| ``actuator_gain`` | ``actuator_gainprm[:, 0]`` | actuator | - | no |
| ``actuator_kp`` | ``actuator_gainprm[:, 0]``, ``-actuator_biasprm[:, 1]`` | actuator | - | no |
| ``actuator_ctrlrange`` | ``actuator_ctrlrange`` | actuator | low, high | no |
| ``gravity`` / ``wind`` | ``opt.gravity`` / ``opt.wind`` | - | x, y, z | no |
| ``timestep`` / ``density`` / ``viscosity`` | ``opt.<name>`` | - | - | no |

"Derived constants" marks the fields from which MuJoCo precomputes constants
(``body_subtreemass``, ``dof_M0``, ``dof_invweight0``, ``actuator_acc0``,
``stat.meaninertia``, ...); after changing one, ``mj_setConst`` must run.

The helpers below read and write those attributes as 2-D (rows, columns) views
and resolve element names, so that no caller handles indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

__all__ = [
    "DERIVED_FIELDS",
    "ELEMENT_KINDS",
    "OPS",
    "PHYSICS_FIELDS",
    "PhysicsField",
    "available_names",
    "dofs_of_joint",
    "element_names",
    "has_field",
    "model_view",
    "snapshot",
    "write_back",
]

OPS = ("scale", "add", "set")
"""How a drawn value ``v`` changes the default ``d``: ``d * v``, ``d + v`` or ``v``."""

ELEMENT_KINDS = ("body", "geom", "joint", "dof", "actuator")


@dataclass(frozen=True)
class PhysicsField:
    """One changeable quantity of a ``mujoco.MjModel``.

    Attributes:
        name: the key in ``PHYSICS_FIELDS``.
        attr: the ``MjModel`` attribute (``"opt.<name>"`` for the global options).
        element: the kind of element a row belongs to (``ELEMENT_KINDS``), or
            ``None`` for a global option. ``"dof"`` rows are named by their joint.
        components: names of the columns a param may pick (empty: one value per element).
        columns: the column of ``attr`` that holds each component.
        default_components: the components a param touches when it names none.
        minimum: the smallest physically meaningful value (``None``: no bound).
        strict_minimum: whether the value must exceed ``minimum`` rather than reach it.
        setconst: whether MuJoCo derives constants from it (``mj_setConst`` must run).
        coupled: further ``(attr, column, factor)`` entries written as ``factor * value``
            with the main one, to keep an actuator consistent (a position servo's kp).
        doc: one line for the table in the documentation.
    """

    name: str
    attr: str
    element: str | None
    components: tuple[str, ...] = ()
    columns: tuple[int, ...] = ()
    default_components: tuple[str, ...] = ()
    minimum: float | None = None
    strict_minimum: bool = False
    setconst: bool = False
    coupled: tuple[tuple[str, int, float], ...] = ()
    doc: str = ""


def _field(
    name: str,
    attr: str,
    element: str | None,
    components: tuple[str, ...] = (),
    default_components: tuple[str, ...] | None = None,
    columns: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> PhysicsField:
    return PhysicsField(
        name=name,
        attr=attr,
        element=element,
        components=components,
        columns=tuple(range(len(components))) if columns is None else columns,
        default_components=components if default_components is None else default_components,
        **kwargs,
    )


_XYZ = ("x", "y", "z")

PHYSICS_FIELDS: dict[str, PhysicsField] = {
    f.name: f
    for f in [
        _field("body_mass", "body_mass", "body", minimum=0.0, setconst=True, doc="mass (kg)"),
        _field(
            "body_inertia",
            "body_inertia",
            "body",
            _XYZ,
            minimum=0.0,
            setconst=True,
            doc="principal moments of inertia about the inertial frame's axes (kg m^2)",
        ),
        _field(
            "body_ipos",
            "body_ipos",
            "body",
            _XYZ,
            setconst=True,
            doc="centre of mass in the body frame (m)",
        ),
        _field(
            "geom_friction",
            "geom_friction",
            "geom",
            ("sliding", "torsional", "rolling"),
            minimum=0.0,
            doc="contact friction coefficients (a contact uses the larger of its two geoms')",
        ),
        _field("dof_damping", "dof_damping", "dof", minimum=0.0, doc="viscous damping (N s/m)"),
        _field(
            "dof_armature",
            "dof_armature",
            "dof",
            minimum=0.0,
            setconst=True,
            doc="rotor inertia added to the mass matrix diagonal",
        ),
        _field("dof_frictionloss", "dof_frictionloss", "dof", minimum=0.0, doc="dry friction (N)"),
        _field(
            "jnt_stiffness", "jnt_stiffness", "joint", minimum=0.0, doc="spring stiffness (N/m)"
        ),
        _field(
            "actuator_gear",
            "actuator_gear",
            "actuator",
            ("x", "y", "z", "rx", "ry", "rz"),
            default_components=("x",),
            setconst=True,
            doc="transmission gear; x is the scalar gear of joint and tendon transmissions",
        ),
        _field(
            "actuator_gain",
            "actuator_gainprm",
            "actuator",
            columns=(0,),
            doc="gain of a fixed-gain actuator: force = gain * ctrl + bias (motor, general)",
        ),
        _field(
            "actuator_kp",
            "actuator_gainprm",
            "actuator",
            columns=(0,),
            minimum=0.0,
            coupled=(("actuator_biasprm", 1, -1.0),),
            doc="position-servo stiffness kp: writes gainprm[0] = kp and biasprm[1] = -kp",
        ),
        _field(
            "actuator_ctrlrange",
            "actuator_ctrlrange",
            "actuator",
            ("low", "high"),
            doc="control range (MuJoCo clamps ctrl to it; the action space is not changed)",
        ),
        _field("gravity", "opt.gravity", None, _XYZ, doc="gravitational acceleration (m/s^2)"),
        _field(
            "timestep",
            "opt.timestep",
            None,
            minimum=0.0,
            strict_minimum=True,
            doc="simulation timestep (s); Gymnasium's dt = frame_skip * timestep follows it",
        ),
        _field("density", "opt.density", None, minimum=0.0, doc="medium density (kg/m^3)"),
        _field("viscosity", "opt.viscosity", None, minimum=0.0, doc="medium viscosity (Pa s)"),
        _field("wind", "opt.wind", None, _XYZ, doc="medium velocity (m/s)"),
    ]
}

# Fields that mj_setConst writes from the ones above (MuJoCo 3.3), restored from a
# cached copy so that ``restore`` is exact whatever mj_setConst computes.
DERIVED_FIELDS = (
    "body_subtreemass",
    "body_invweight0",
    "dof_invweight0",
    "dof_M0",
    "tendon_invweight0",
    "tendon_length0",
    "actuator_acc0",
    "actuator_length0",
    "cam_pos0",
    "cam_poscom0",
    "cam_mat0",
    "light_pos0",
    "light_poscom0",
    "light_dir0",
    "flexedge_length0",
    "flexedge_invweight0",
    "stat.meaninertia",
    "stat.meanmass",
    "stat.meansize",
    "stat.extent",
    "stat.center",
)


# --------------------------------------------------------------------------- model access


def _owner(model: Any, attr: str) -> tuple[Any, str]:
    if attr.startswith("opt."):
        return model.opt, attr[4:]
    if attr.startswith("stat."):
        return model.stat, attr[5:]
    return model, attr


def has_field(model: Any, attr: str) -> bool:
    """Whether ``model`` has ``attr`` (``DERIVED_FIELDS`` names some only newer models have)."""
    return hasattr(*_owner(model, attr))


def model_view(model: Any, attr: str) -> np.ndarray | None:
    """A 2-D view (rows, columns) of an array attribute; ``None`` for a scalar option."""
    owner, name = _owner(model, attr)
    value = getattr(owner, name)
    if not isinstance(value, np.ndarray):
        return None
    if owner is not model:
        return value.reshape(1, -1)
    return value.reshape(value.shape[0], -1)


def snapshot(model: Any, attr: str) -> np.ndarray:
    owner, name = _owner(model, attr)
    return np.array(getattr(owner, name), dtype=np.float64, copy=True)


def write_back(model: Any, attr: str, saved: np.ndarray) -> None:
    owner, name = _owner(model, attr)
    current = getattr(owner, name)
    if isinstance(current, np.ndarray):
        current[...] = saved
    else:
        setattr(owner, name, float(saved))


def _obj_name(model: Any, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or ""


def element_names(model: Any, kind: str) -> list[str]:
    """Names of the elements of ``kind`` in id order ("" for unnamed ones).

    An unnamed actuator is named by its transmission target (joint, tendon, site
    or body), as Gymnasium's models leave their motors unnamed.
    """
    if kind in ("joint", "dof"):
        return [_obj_name(model, mujoco.mjtObj.mjOBJ_JOINT, i) for i in range(model.njnt)]
    if kind == "body":
        return [_obj_name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(model.nbody)]
    if kind == "geom":
        return [_obj_name(model, mujoco.mjtObj.mjOBJ_GEOM, i) for i in range(model.ngeom)]
    assert kind == "actuator"
    target_obj = {
        int(mujoco.mjtTrn.mjTRN_JOINT): mujoco.mjtObj.mjOBJ_JOINT,
        int(mujoco.mjtTrn.mjTRN_JOINTINPARENT): mujoco.mjtObj.mjOBJ_JOINT,
        int(mujoco.mjtTrn.mjTRN_TENDON): mujoco.mjtObj.mjOBJ_TENDON,
        int(mujoco.mjtTrn.mjTRN_SITE): mujoco.mjtObj.mjOBJ_SITE,
        int(mujoco.mjtTrn.mjTRN_SLIDERCRANK): mujoco.mjtObj.mjOBJ_SITE,
        int(mujoco.mjtTrn.mjTRN_BODY): mujoco.mjtObj.mjOBJ_BODY,
    }
    names = [_obj_name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(model.nu)]
    fallback = []
    for i in range(model.nu):
        obj = target_obj.get(int(model.actuator_trntype[i]))
        fallback.append(_obj_name(model, obj, int(model.actuator_trnid[i, 0])) if obj else "")
    out = []
    for i, name in enumerate(names):
        alt = fallback[i]
        usable = alt and fallback.count(alt) == 1 and alt not in names
        out.append(name or (alt if usable else ""))
    return out


def dofs_of_joint(model: Any, j: int) -> list[int]:
    width = {
        int(mujoco.mjtJoint.mjJNT_FREE): 6,
        int(mujoco.mjtJoint.mjJNT_BALL): 3,
    }.get(int(model.jnt_type[j]), 1)
    start = int(model.jnt_dofadr[j])
    return list(range(start, start + width))


def available_names(names: list[str], kind: str) -> str:
    named = [n for n in names if n]
    unnamed = len(names) - len(named)
    text = f"the model's {kind} names: {named}"
    if unnamed:
        text += f" (and {unnamed} unnamed, reachable only through 'all')"
    return text
