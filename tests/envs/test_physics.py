"""Named physical parameters: distributions, PhysicsSpace, and the PhysicsRandomization wrapper."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from metarl.envs.physics import PHYSICS_FIELDS, PhysicsSpace
from metarl.envs.physics_distributions import (
    Beta,
    Fixed,
    LogUniform,
    Normal,
    ScalarDistribution,
    TruncatedNormal,
    Uniform,
    distribution_from_dict,
)
from metarl.envs.physics_param import PhysicsParam
from metarl.envs.physics_wrapper import PhysicsRandomization
from metarl.tasks import GoalTask, PhysicsTask, Task

# A small model with every kind of element: a slider with a motor, a hinge with a
# position and a velocity servo, a free body (6 dofs), named geoms.
XML = """
<mujoco>
  <option timestep="0.005"/>
  <worldbody>
    <geom name="floor" type="plane" size="5 5 0.1"/>
    <body name="base" pos="0 0 1">
      <joint name="slide" type="slide" axis="1 0 0" damping="0.5" armature="0.1"
             frictionloss="0.2" stiffness="3"/>
      <geom name="base_geom" type="box" size="0.1 0.1 0.1" mass="2"/>
      <body name="arm" pos="0.2 0 0">
        <joint name="hinge" type="hinge" axis="0 1 0" damping="0.3" armature="0.05"/>
        <geom name="arm_geom" type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" mass="0.5"/>
      </body>
    </body>
    <body name="ball" pos="1 0 0.5">
      <freejoint name="ball_free"/>
      <geom name="ball_geom" type="sphere" size="0.1" mass="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="push" joint="slide" gear="10" ctrlrange="-1 1"/>
    <position name="servo" joint="hinge" kp="20" ctrlrange="-1 1"/>
    <velocity name="spin" joint="hinge" kv="2" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


def small_model() -> Any:
    return mujoco.MjModel.from_xml_string(XML)


def model_arrays(model: Any) -> dict[str, np.ndarray]:
    """Every numeric array of the model, its options and its statistics."""
    out: dict[str, np.ndarray] = {}
    for prefix, obj in (("", model), ("opt.", model.opt), ("stat.", model.stat)):
        for name in dir(obj):
            if name.startswith("_"):
                continue
            value = getattr(obj, name, None)
            if isinstance(value, np.ndarray) or (
                prefix and isinstance(value, (int, float)) and not isinstance(value, bool)
            ):
                out[prefix + name] = np.array(value, copy=True)
    return out


def differing(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    return [k for k in a if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k])]


def space_of(model: Any, **kwargs: Any) -> PhysicsSpace:
    return PhysicsSpace({"p": PhysicsParam(**kwargs)}, model)


# --------------------------------------------------------------------------- distributions

DISTRIBUTIONS: list[ScalarDistribution] = [
    Uniform(0.8, 1.2),
    LogUniform.power(1.5, -3, 3),
    LogUniform(0.1, 10.0),
    Normal(0.0, 2.0),
    TruncatedNormal(1.0, 0.5, 0.5, 1.2),
    Beta(2.0, 5.0, low=-1.0, high=3.0),
    Fixed(0.7),
]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=str)
def test_distribution_samples_inside_its_support_reproducibly(dist: ScalarDistribution) -> None:
    draws = dist.sample(np.random.default_rng(0), (2000,))
    assert draws.shape == (2000,) and draws.dtype == np.float64
    low, high = dist.support
    assert np.all((draws >= low) & (draws <= high))
    np.testing.assert_array_equal(draws, dist.sample(np.random.default_rng(0), (2000,)))
    assert np.shape(dist.sample(np.random.default_rng(0))) == ()
    dist.validate("x", draws)
    assert distribution_from_dict(json.loads(json.dumps(dist.to_dict()))) == dist


def test_log_uniform_power_is_rand_param_envs_law() -> None:
    dist = LogUniform.power(1.5, -3, 3)
    assert dist.support == (1.5**-3, 1.5**3)
    assert str(dist) == "1.5 ** U(-3, 3)"
    exponents = np.log(dist.sample(np.random.default_rng(1), (20000,))) / np.log(1.5)
    # uniform on [-3, 3]: mean 0, variance 36 / 12 = 3
    assert abs(exponents.mean()) < 0.05 and abs(exponents.var() - 3.0) < 0.1


def test_truncated_normal_and_beta_follow_their_laws() -> None:
    draws = TruncatedNormal(0.0, 1.0, -1.0, 1.0).sample(np.random.default_rng(2), (20000,))
    assert abs(draws.std() - 0.5380) < 0.01  # std of N(0, 1) truncated to [-1, 1]
    beta = Beta(2.0, 5.0, low=-1.0, high=3.0).sample(np.random.default_rng(3), (20000,))
    assert abs(beta.mean() - (-1.0 + 4.0 * 2.0 / 7.0)) < 0.02


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Uniform(1.0, 1.0), "low < high"),
        (lambda: LogUniform(0.0, 1.0), "0 < low < high"),
        (lambda: LogUniform.power(0.5, -1, 1), "base > 1"),
        (lambda: Normal(0.0, -1.0), "std must be a finite positive number"),
        (lambda: TruncatedNormal(0.0, 1.0, 2.0, 1.0), "low < high"),
        (lambda: Beta(0.0, 1.0), "Beta.a must be a finite positive number, got 0.0"),
        (lambda: Fixed(float("nan")), "finite"),
        (lambda: distribution_from_dict({"kind": "cauchy"}), "unknown distribution kind"),
    ],
)
def test_bad_distribution_arguments(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_distribution_validate_names_the_parameter_and_range() -> None:
    with pytest.raises(ValueError, match=r"mass = 2 is outside the allowed range \[0.8, 1.2\]"):
        Uniform(0.8, 1.2).validate("mass", [1.0, 2.0])


# --------------------------------------------------------------------------- each field

# field, elements, components, op, value, {attr: (rows, cols, expected function of default)}
FIELD_CASES: list[tuple[str, Any, Any, str, float, dict[str, tuple[Any, Any, Any]]]] = [
    ("body_mass", ["arm"], None, "scale", 2.0, {"body_mass": (2, 0, lambda d: d * 2)}),
    ("body_inertia", ["ball"], ["x"], "scale", 1.5, {"body_inertia": (3, 0, lambda d: d * 1.5)}),
    ("body_ipos", ["arm"], ["z"], "add", 0.01, {"body_ipos": (2, 2, lambda d: d + 0.01)}),
    ("geom_friction", ["arm_geom"], ["sliding"], "scale", 0.5, {"geom_friction": (2, 0, None)}),
    ("geom_friction", ["arm_geom"], ["torsional"], "set", 0.02, {"geom_friction": (2, 1, None)}),
    ("geom_friction", ["arm_geom"], ["rolling"], "set", 0.001, {"geom_friction": (2, 2, None)}),
    ("dof_damping", ["hinge"], None, "scale", 2.0, {"dof_damping": (1, 0, lambda d: d * 2)}),
    ("dof_armature", ["slide"], None, "set", 0.3, {"dof_armature": (0, 0, lambda d: 0.3)}),
    ("dof_frictionloss", ["slide"], None, "add", 0.1, {"dof_frictionloss": (0, 0, None)}),
    ("jnt_stiffness", ["slide"], None, "scale", 2.0, {"jnt_stiffness": (0, 0, lambda d: 6.0)}),
    ("actuator_gear", ["push"], None, "scale", 2.0, {"actuator_gear": (0, 0, lambda d: 20.0)}),
    ("actuator_gain", ["push"], None, "scale", 3.0, {"actuator_gainprm": (0, 0, lambda d: 3.0)}),
    (
        "actuator_kp",
        ["servo"],
        None,
        "scale",
        2.0,
        {"actuator_gainprm": (1, 0, lambda d: 40.0), "actuator_biasprm": (1, 1, lambda d: -40.0)},
    ),
    ("actuator_ctrlrange", ["push"], ["high"], "set", 0.5, {"actuator_ctrlrange": (0, 1, None)}),
    ("gravity", "all", ["z"], "set", -5.0, {"opt.gravity": (0, 2, lambda d: -5.0)}),
    ("timestep", "all", None, "set", 0.001, {"opt.timestep": (0, 0, lambda d: 0.001)}),
    ("density", "all", None, "set", 1.2, {"opt.density": (0, 0, lambda d: 1.2)}),
    ("viscosity", "all", None, "set", 0.001, {"opt.viscosity": (0, 0, lambda d: 0.001)}),
    ("wind", "all", ["x"], "set", 2.0, {"opt.wind": (0, 0, lambda d: 2.0)}),
]


def _expected(op: str, default: float, value: float) -> float:
    return {"scale": default * value, "add": default + value, "set": value}[op]


def _entry(arrays: dict[str, np.ndarray], attr: str, row: int, col: int) -> float:
    arr = arrays[attr]
    if arr.ndim == 0:
        return float(arr)
    if attr.startswith("opt."):
        return float(arr[col])
    return float(arr.reshape(arr.shape[0], -1)[row, col])


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: f"{c[0]}-{c[2] or ''}-{c[3]}")
def test_each_field_changes_the_model_as_expected(case: Any) -> None:
    field, elements, components, op, value, expect = case
    model = small_model()
    before = model_arrays(model)
    space = PhysicsSpace(
        {"p": PhysicsParam(field, Fixed(value), elements=elements, components=components, op=op)},
        model,
    )
    space.apply(model, PhysicsTask({"p": value}))
    after = model_arrays(model)
    for attr, (row, col, check) in expect.items():
        old, new = _entry(before, attr, row, col), _entry(after, attr, row, col)
        want = check(old) if check is not None else _expected(op, old, value)
        assert new == pytest.approx(want) and new != old
        # the other entries of the attribute keep their defaults
        mask = np.ones_like(before[attr], dtype=bool)
        if before[attr].ndim == 1 and attr.startswith("opt."):
            mask[col] = False
        elif before[attr].ndim > 0:
            mask.reshape(mask.shape[0], -1)[row, col] = False
        else:
            mask[...] = False
        np.testing.assert_array_equal(after[attr][mask], before[attr][mask])
    changed = set(differing(before, after))
    derived = {
        "body_subtreemass",
        "body_invweight0",
        "dof_invweight0",
        "dof_M0",
        "actuator_acc0",
        "actuator_length0",
        "cam_poscom0",
        "light_poscom0",
        "stat.meaninertia",
        "stat.meanmass",
        "stat.meansize",
        "stat.extent",
        "stat.center",
    }
    assert changed - derived == set(expect), changed
    if PHYSICS_FIELDS[field].setconst:
        assert changed & derived, "mj_setConst did not update MuJoCo's derived constants"
    space.restore(model)
    assert differing(before, model_arrays(model)) == []


def test_every_field_of_the_table_is_covered_by_a_case() -> None:
    assert {c[0] for c in FIELD_CASES} == set(PHYSICS_FIELDS)


def test_mass_scaling_updates_subtree_mass_through_setconst() -> None:
    model = small_model()
    space = space_of(model, field="body_mass", elements=["arm"], dist=Fixed(3.0))
    space.apply(model, PhysicsTask({"p": 3.0}))
    assert model.body_subtreemass[model.body("base").id] == pytest.approx(2.0 + 1.5)


def test_multi_dof_joint_values_are_labelled_per_dof() -> None:
    model = small_model()
    space = space_of(
        model, field="dof_damping", elements=["ball_free", "hinge"], dist=Fixed(1.0), op="add"
    )
    assert space.labels("p") == [f"ball_free[{k}]" for k in range(6)] + ["hinge"]
    space.apply(model, PhysicsTask({"p": 1.0}))
    np.testing.assert_array_equal(model.dof_damping[2:8], np.ones(6))


def test_unnamed_actuators_are_named_by_their_joint() -> None:
    model = gym.make("Hopper-v5").unwrapped.model  # type: ignore[attr-defined]
    space = space_of(model, field="actuator_gear", elements=["leg_joint"], dist=Fixed(2.0))
    space.apply(model, PhysicsTask({"p": 2.0}))
    np.testing.assert_array_equal(model.actuator_gear[:, 0], [200.0, 400.0, 200.0])


def test_all_leaves_out_the_world_body_and_independent_draws_have_the_slice_shape() -> None:
    model = small_model()
    space = PhysicsSpace(
        {
            "mass": PhysicsParam("body_mass", LogUniform(0.5, 2.0), independent=True),
            "friction": PhysicsParam("geom_friction", LogUniform(0.5, 2.0), independent=True),
            "shared": PhysicsParam("dof_damping", Uniform(0.5, 2.0)),
        },
        model,
    )
    assert space.shapes == {"mass": (3,), "friction": (4, 3), "shared": ()}
    assert space.labels("mass") == ["base", "arm", "ball"]
    task = space.sample(np.random.default_rng(0), 1)[0]
    assert isinstance(task, PhysicsTask)
    mass = task.array("mass")
    space.apply(model, task)
    np.testing.assert_array_equal(model.body_mass[1:], space.default_values("mass") * mass)
    assert model.body_mass[0] == 0.0
    np.testing.assert_array_equal(
        model.dof_damping, space.default_values("shared") * task.values["shared"]
    )


# --------------------------------------------------------------------------- exact restore


def rich_space(model: Any) -> PhysicsSpace:
    """Params on every field of the small model, drawn per entry where it makes sense."""
    return PhysicsSpace(
        {
            "mass": PhysicsParam("body_mass", LogUniform(0.5, 2.0), independent=True),
            "inertia": PhysicsParam("body_inertia", LogUniform(0.5, 2.0), independent=True),
            "com": PhysicsParam("body_ipos", Uniform(-0.01, 0.01), op="add", independent=True),
            "friction": PhysicsParam("geom_friction", LogUniform(0.5, 2.0), independent=True),
            "damping": PhysicsParam("dof_damping", LogUniform(0.5, 2.0), independent=True),
            "armature": PhysicsParam("dof_armature", Uniform(0.5, 2.0)),
            "frictionloss": PhysicsParam("dof_frictionloss", Uniform(0.0, 0.2), op="add"),
            "stiffness": PhysicsParam("jnt_stiffness", Uniform(0.5, 2.0)),
            "gear": PhysicsParam("actuator_gear", Uniform(0.8, 1.2), elements=["push"]),
            "gain": PhysicsParam("actuator_gain", Uniform(0.8, 1.2), elements=["push"]),
            "kp": PhysicsParam("actuator_kp", Uniform(0.8, 1.2), elements=["servo"]),
            "ctrl": PhysicsParam("actuator_ctrlrange", Uniform(0.8, 1.2), independent=True),
            "gravity": PhysicsParam("gravity", Normal(0.0, 0.5), op="add", independent=True),
            "timestep": PhysicsParam("timestep", Uniform(0.8, 1.2)),
            "density": PhysicsParam("density", Uniform(0.0, 1.3), op="set"),
            "viscosity": PhysicsParam("viscosity", Uniform(0.0, 1e-3), op="set"),
            "wind": PhysicsParam("wind", Uniform(-1, 1), op="set", independent=True),
        },
        model,
    )


def test_applications_do_not_compound_and_restore_is_bit_exact() -> None:
    model = small_model()
    pristine = model_arrays(model)
    space = rich_space(model)
    assert differing(pristine, model_arrays(model)) == []  # binding leaves the model as it was
    tasks = space.sample(np.random.default_rng(0), 100)
    space.apply(model, tasks[0])
    once = model_arrays(model)
    space.apply(model, tasks[0])
    assert differing(once, model_arrays(model)) == []
    for task in tasks[1:]:
        space.apply(model, task)
    space.apply(model, tasks[0])
    assert differing(once, model_arrays(model)) == []
    space.restore(model)
    assert differing(pristine, model_arrays(model)) == []


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"])
def test_gymnasium_models_restore_bit_exact_and_setconst_round_trips(env_id: str) -> None:
    model = gym.make(env_id).unwrapped.model  # type: ignore[attr-defined]
    pristine = model_arrays(model)
    space = PhysicsSpace(
        {
            "mass": PhysicsParam("body_mass", LogUniform(0.5, 2.0), independent=True),
            "inertia": PhysicsParam("body_inertia", LogUniform(0.5, 2.0), independent=True),
            "com": PhysicsParam("body_ipos", Uniform(-0.01, 0.01), op="add", independent=True),
            "armature": PhysicsParam("dof_armature", Uniform(0.5, 2.0), independent=True),
            "gear": PhysicsParam("actuator_gear", Uniform(0.5, 2.0), independent=True),
        },
        model,
    )
    assert space.pinned_fields == ()  # mj_setConst reproduces the compiled constants
    for task in space.sample(np.random.default_rng(1), 100):
        space.apply(model, task)
    assert differing(pristine, model_arrays(model))
    space.restore(model)
    assert differing(pristine, model_arrays(model)) == []
    # measured fact: mj_setConst from the defaults gives back the compiled model exactly
    space.apply(model, space.default_task())
    assert differing(pristine, model_arrays(model)) == []


def test_author_set_statistics_stay_pinned() -> None:
    model = mujoco.MjModel.from_xml_string(
        XML.replace("<mujoco>", '<mujoco><statistic meaninertia="7"/>')
    )
    space = space_of(model, field="body_mass", dist=Fixed(2.0))
    assert space.pinned_fields == ("stat.meaninertia",)
    space.apply(model, PhysicsTask({"p": 2.0}))
    assert model.stat.meaninertia == 7.0


def test_apply_leaves_the_simulation_state_alone() -> None:
    model = small_model()
    data = mujoco.MjData(model)
    data.qpos[0] = 0.3
    data.qvel[1] = -1.0
    mujoco.mj_step(model, data)
    qpos, qvel, time = data.qpos.copy(), data.qvel.copy(), data.time
    space = space_of(model, field="body_mass", dist=Fixed(2.0))
    space.apply(model, PhysicsTask({"p": 2.0}))
    np.testing.assert_array_equal(data.qpos, qpos)
    np.testing.assert_array_equal(data.qvel, qvel)
    assert data.time == time


def test_scaling_a_mass_changes_the_dynamics() -> None:
    env = PhysicsRandomization(
        gym.make("Hopper-v5"),
        {"torso": PhysicsParam("body_mass", elements=["torso"], op="scale", dist=Uniform(0.5, 2))},
    )
    actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 3)).astype(np.float32)

    def rollout(scale: float) -> np.ndarray:
        env.set_task(PhysicsTask({"torso": scale}))
        obs, _ = env.reset(seed=3)
        out = [obs]
        for a in actions:
            out.append(env.step(a)[0])
        return np.stack(out)

    base, heavy, again = rollout(1.0), rollout(2.0), rollout(1.0)
    np.testing.assert_array_equal(base[0], heavy[0])
    assert not np.allclose(base[1:], heavy[1:])
    np.testing.assert_array_equal(base, again)


def test_tasks_round_trip_through_json() -> None:
    model = small_model()
    space = rich_space(model)
    for task in space.sample(np.random.default_rng(5), 5):
        back = Task.from_dict(json.loads(json.dumps(task.to_dict())))
        assert back == task
        space.validate(back)
        space.apply(model, back)


def test_params_round_trip_through_dicts() -> None:
    for param in rich_space(small_model()).params.values():
        assert PhysicsParam.from_dict(json.loads(json.dumps(param.to_dict()))) == param


def test_task_sets_are_reproducible() -> None:
    space = rich_space(small_model())
    a, b = space.task_sets(7, 4, 2), space.task_sets(7, 4, 2)
    assert a == b and a.train != space.task_sets(8, 4, 2).train


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"field": "body_masses"},
            r"unknown physics field 'body_masses'; known fields: \[.*'body_mass'",
        ),
        ({"field": "body_mass", "op": "multiply"}, r"op must be one of \['scale', 'add', 'set'\]"),
        (
            {"field": "geom_friction", "components": ["slide"]},
            r"\['sliding', 'torsional', 'rolling'\]",
        ),
        ({"field": "body_mass", "components": ["x"]}, "has no components"),
        ({"field": "body_mass", "elements": "torso"}, "must be 'all' or a list of names"),
        ({"field": "body_mass", "elements": ["a", "a"]}, "more than once"),
        ({"field": "gravity", "elements": ["torso"]}, "global option"),
        ({"field": "body_mass", "dist": (0.8, 1.2)}, "must be a ScalarDistribution"),
    ],
)
def test_bad_params(kwargs: dict[str, Any], match: str) -> None:
    kwargs.setdefault("dist", Uniform(0.8, 1.2))
    with pytest.raises(ValueError, match=match):
        PhysicsParam(**kwargs)


@pytest.mark.parametrize(
    ("field", "element", "match"),
    [
        ("body_mass", "torso", r"unknown body 'torso'; the model's body names: \['world', 'base'"),
        (
            "dof_damping",
            "knee",
            r"unknown joint 'knee'; the model's joint names: \['slide', 'hinge'",
        ),
        ("jnt_stiffness", "knee", r"unknown joint 'knee'"),
        ("geom_friction", "foot", r"unknown geom 'foot'; the model's geom names: \['floor'"),
        ("actuator_gear", "motor", r"unknown actuator 'motor'; .*\['push', 'servo', 'spin'\]"),
    ],
)
def test_unknown_element_names_list_the_available_ones(
    field: str, element: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        space_of(small_model(), field=field, elements=[element], dist=Uniform(0.5, 2))


def test_actuator_fields_check_the_actuator_type() -> None:
    with pytest.raises(ValueError, match="'push' is not a position servo"):
        space_of(small_model(), field="actuator_kp", elements=["push"], dist=Uniform(0.5, 2))
    with pytest.raises(ValueError, match="'servo' is a position servo.*actuator_kp"):
        space_of(small_model(), field="actuator_gain", elements=["servo"], dist=Uniform(0.5, 2))
    with pytest.raises(ValueError, match="'spin' is a velocity servo"):
        space_of(small_model(), field="actuator_gain", elements=["spin"], dist=Uniform(0.5, 2))


def test_two_params_on_one_entry_are_refused() -> None:
    with pytest.raises(ValueError, match="'a' and 'b' both change body_mass"):
        PhysicsSpace(
            {
                "a": PhysicsParam("body_mass", Uniform(0.5, 2)),
                "b": PhysicsParam("body_mass", Uniform(0.5, 2), elements=["arm"]),
            },
            small_model(),
        )


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (
            {"mass": 5.0, "friction": ((1.0,) * 3,) * 4},
            r"'mass' = 5 is outside the allowed range \[0.5, 2\]",
        ),
        (
            {"mass": (1.0, 1.0), "friction": ((1.0,) * 3,) * 4},
            r"'mass'.*shape \(2,\), expected \(\)",
        ),
        (
            {"mass": 1.0, "friction": (1.0, 1.0, 1.0)},
            r"'friction'.*shape \(3,\), expected \(4, 3\)",
        ),
        ({"mass": 1.0}, r"missing \['friction'\]"),
        ({"mass": 1.0, "friction": ((1.0,) * 3,) * 4, "gravity": 1.0}, r"unknown \['gravity'\]"),
    ],
)
def test_bad_task_values(values: dict[str, Any], match: str) -> None:
    model = small_model()
    space = PhysicsSpace(
        {
            "mass": PhysicsParam("body_mass", Uniform(0.5, 2.0)),
            "friction": PhysicsParam("geom_friction", Uniform(0.5, 2.0), independent=True),
        },
        model,
    )
    before = model_arrays(model)
    with pytest.raises(ValueError, match=match):
        space.apply(model, PhysicsTask(values))
    assert differing(before, model_arrays(model)) == []  # nothing written
    assert not space.contains(PhysicsTask(values))


def test_unphysical_results_and_wrong_models_are_refused() -> None:
    model = small_model()
    space = space_of(model, field="body_mass", dist=Normal(0.0, 1.0), op="add", elements=["arm"])
    with pytest.raises(ValueError, match=r"arm would become -0.5 .* it must be >= 0"):
        space.apply(model, PhysicsTask({"p": -1.0}))
    ctrl = space_of(
        model, field="actuator_ctrlrange", components=["low"], dist=Uniform(0, 3), op="set"
    )
    with pytest.raises(ValueError, match=r"low must not exceed high"):
        ctrl.apply(model, PhysicsTask({"p": 2.0}))
    with pytest.raises(ValueError, match="bound to another MjModel"):
        space.apply(small_model(), PhysicsTask({"p": 0.1}))
    with pytest.raises(ValueError, match="must be a PhysicsTask"):
        space.apply(model, GoalTask((0.0, 0.0)))


# --------------------------------------------------------------------------- wrapper


def torso_wrapper(**kwargs: Any) -> PhysicsRandomization:
    return PhysicsRandomization(
        gym.make("Hopper-v5"),
        {
            "torso": PhysicsParam("body_mass", elements=["torso"], dist=Uniform(0.5, 2.0)),
            "friction": PhysicsParam(
                "geom_friction", components=["sliding"], dist=LogUniform(0.5, 2), independent=True
            ),
        },
        **kwargs,
    )


def test_wrapper_resamples_on_every_reset_from_its_seeded_generator() -> None:
    env = torso_wrapper()
    model = env.unwrapped.model  # type: ignore[attr-defined]
    default_mass = float(model.body_mass[1])
    assert env.get_task() == env.task_distribution.default_task()
    _, info = env.reset(seed=0)
    first = env.get_task()
    assert info["physics"] == first.values  # type: ignore[attr-defined]
    assert model.body_mass[1] == pytest.approx(default_mass * info["physics"]["torso"])
    draws = [env.reset()[1]["physics"]["torso"] for _ in range(3)]
    assert len({info["physics"]["torso"], *draws}) == 4
    env.reset(seed=0)
    assert env.get_task() == first  # same seed, same draws
    # the wrapper has its own stream: the env's reset state is that of plain Hopper-v5
    plain = gym.make("Hopper-v5")
    np.testing.assert_array_equal(env.reset(seed=4)[0], plain.reset(seed=4)[0])


def test_wrapper_resamples_every_n_steps() -> None:
    env = torso_wrapper(resample="steps", every=3)
    env.reset(seed=1)
    masses, drawn = [], []
    action = np.zeros(3, dtype=np.float32)
    for _ in range(7):
        info = env.step(action)[4]
        drawn.append("physics" in info)
        masses.append(env.get_task().values["torso"])  # type: ignore[attr-defined]
    assert drawn == [False, False, False, True, False, False, True]
    assert masses[0] == masses[2] != masses[3] == masses[5] != masses[6]
    before = env.get_task()
    env.reset()  # resets do not draw in this mode
    assert env.get_task() == before


def test_wrapper_draws_once() -> None:
    env = torso_wrapper(resample="once")
    env.reset(seed=2)
    task = env.get_task()
    for _ in range(3):
        env.reset()
        assert env.get_task() == task
    env.resume_resampling()
    env.reset()
    assert env.get_task() != task


def test_set_task_stops_resampling_until_resumed() -> None:
    env = torso_wrapper()
    env.reset(seed=0)
    task = PhysicsTask({"torso": 1.5, "friction": ((1.0,),) * 5})
    env.set_task(task)
    assert not env.resampling
    for _ in range(3):
        _, info = env.reset()
        assert env.get_task() == task and info["physics"] == task.values
    env.resume_resampling()
    env.reset()
    assert env.get_task() != task


def test_wrapper_restores_defaults_on_request_and_on_close() -> None:
    env = torso_wrapper()
    model = env.unwrapped.model  # type: ignore[attr-defined]
    pristine = model_arrays(model)
    env.reset(seed=0)
    assert differing(pristine, model_arrays(model))
    env.restore_defaults()
    assert differing(pristine, model_arrays(model)) == []
    assert not env.resampling
    env.resume_resampling()
    env.reset()
    assert differing(pristine, model_arrays(model))
    env.close()
    assert differing(pristine, model_arrays(model)) == []


def test_wrapper_is_a_task_env_that_vector_envs_can_drive() -> None:
    from metarl.envs import get_tasks, set_tasks

    envs = gym.vector.SyncVectorEnv([lambda: torso_wrapper() for _ in range(2)])
    tasks = envs.envs[0].get_wrapper_attr("sample_tasks")(2, np.random.default_rng(0))
    set_tasks(envs, tasks)
    assert get_tasks(envs) == tasks
    envs.reset(seed=0)
    assert get_tasks(envs) == tasks  # explicitly set tasks are not resampled


def test_exact_randomization_same_reset_distinct_steps() -> None:
    """Brax's check: one reset seed; N distinct models give N distinct states after a step."""
    n = 4
    env = torso_wrapper()
    tasks = env.task_distribution.sample(np.random.default_rng(0), n)
    resets, steps = [], []
    action = np.full(3, 0.5, dtype=np.float32)
    for task in tasks:
        env.set_task(task)
        obs, _ = env.reset(seed=11)
        resets.append(obs)
        steps.append(env.step(action)[0])
    for obs in resets[1:]:
        np.testing.assert_array_equal(obs, resets[0])
    for i in range(n):
        for j in range(i + 1, n):
            assert not np.array_equal(steps[i], steps[j])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resample": "episode"}, r"resample must be one of \['reset', 'steps', 'once'\]"),
        ({"resample": "steps"}, "needs every = a positive number"),
        ({"resample": "steps", "every": 0}, "needs every = a positive number"),
        ({"resample": "reset", "every": 5}, "only used with resample='steps'"),
    ],
)
def test_bad_wrapper_configuration(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        torso_wrapper(**kwargs)


def test_wrapper_refuses_bad_tasks_and_non_mujoco_envs() -> None:
    env = torso_wrapper()
    with pytest.raises(ValueError, match="must be a PhysicsTask"):
        env.set_task(GoalTask((0.0, 0.0)))
    with pytest.raises(ValueError, match=r"missing \['friction'\]"):
        env.set_task(PhysicsTask({"torso": 1.0}))
    with pytest.raises(ValueError, match=r"unknown \['gravity'\]"):
        env.set_task(PhysicsTask({"torso": 1.0, "friction": ((1.0,),) * 5, "gravity": 1.0}))
    assert env.resampling  # a refused task changes nothing
    with pytest.raises(ValueError, match="needs a MuJoCo environment"):
        PhysicsRandomization(gym.make("Pendulum-v1"), [PhysicsParam("body_mass", Uniform(0.5, 2))])


def test_more_bad_physics_inputs_name_the_field() -> None:
    from metarl.envs.physics_distributions import distribution_from_dict

    with pytest.raises(ValueError, match=r"elements must be 'all' or a list of body names, got 5"):
        PhysicsParam("body_mass", Uniform(0.5, 2.0), elements=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Uniform dict is missing field\(s\) \['high'\]"):
        distribution_from_dict({"kind": "uniform", "low": 0.1})
    xml = """<mujoco><worldbody><body><joint name="j" type="hinge"/><geom size="0.1"/>
    </body></worldbody><actuator><motor name="m" joint="j" ctrllimited="false"/></actuator>
    </mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    param = PhysicsParam("actuator_ctrlrange", Uniform(0.5, 2.0), elements=["m"])
    with pytest.raises(ValueError, match="actuator 'm' is not ctrl-limited"):
        PhysicsSpace({"range": param}, model)


def test_set_params_swaps_the_space_at_the_next_reset() -> None:
    env = torso_wrapper()
    model = env.unwrapped.model  # type: ignore[attr-defined]
    pristine = model_arrays(model)
    env.reset(seed=0)
    fixed = PhysicsTask({"torso": 1.5, "friction": ((1.0,),) * 5})
    env.set_task(fixed)
    in_force = model_arrays(model)
    env.set_params({"mass": PhysicsParam("body_mass", Uniform(2.0, 3.0), elements=["thigh"])})
    # The episode in progress keeps its physics; resampling resumes.
    assert env.resampling and env.get_task() == fixed and list(env.next_params) == ["mass"]
    assert differing(in_force, model_arrays(model)) == []
    default_thigh = float(pristine["body_mass"][2])
    for _ in range(3):
        _, info = env.reset()  # the new space, bound to the defaults (not to `fixed`)
        assert env.task_distribution.names == ["mass"] and 2.0 <= info["physics"]["mass"] <= 3.0
        assert model.body_mass[2] == pytest.approx(default_thigh * info["physics"]["mass"])
        assert model.body_mass[1] == pristine["body_mass"][1]  # the torso is no longer drawn
    # The same params again: nothing to swap, the draws go on.
    env.set_params(env.task_distribution)
    assert 2.0 <= env.reset()[1]["physics"]["mass"] <= 3.0
    # A bad param: the error names it and nothing changes.
    before = env.get_task()
    bad = PhysicsParam("body_mass", Uniform(1.0, 2.0), elements=["no_such_body"])
    with pytest.raises(ValueError, match="no_such_body"):
        env.set_params({"bad": bad})
    assert env.get_task() == before and env.task_distribution.names == ["mass"]
    env.restore_defaults()
    assert differing(pristine, model_arrays(model)) == []
