"""Hopper and Walker2d with randomized physical parameters (rand_param_envs' task families).

``HopperParamsEnv`` (``metarl/HopperParams-v0``) and ``Walker2dParamsEnv``
(``metarl/Walker2dParams-v0``) subclass Gymnasium's v5 ``HopperEnv`` and
``Walker2dEnv`` (model, frame skip, observations, reward, healthy checks) and
make each task a ``PhysicsTask`` of the ``PhysicsSpace`` that
``rand_params_space`` defines, the one ``docs/tasks.md`` gives: per element
multipliers of body mass, body inertia and geom friction drawn from
``1.5 ** U(-3, 3)``, and of dof damping from ``1.3 ** U(-3, 3)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.utils import EzPickle

from metarl.checks import check_number
from metarl.envs.mujoco_task import MujocoTaskEnv
from metarl.envs.physics import PhysicsSpace
from metarl.envs.physics_distributions import Fixed, LogUniform, ScalarDistribution
from metarl.envs.physics_param import PhysicsParam
from metarl.tasks import Task

__all__ = ["RAND_PARAMS", "HopperParamsEnv", "Walker2dParamsEnv", "rand_params_space"]


RAND_PARAMS = ("body_mass", "body_inertia", "dof_damping", "geom_friction")


def rand_params_space(
    model: Any, log_scale_limit: float = 3.0, params: Sequence[str] = RAND_PARAMS
) -> PhysicsSpace:
    """rand_param_envs' physics space (``base.py``), bound to ``model``.

    Every entry gets its own multiplier of its default (independent draws per
    element and component, sampled in this order):

    - ``body_mass``: every body but the world, ``1.5 ** U(-l, l)``
    - ``body_inertia``: every body but the world, each of the 3 axes, ``1.5 ** U(-l, l)``
    - ``dof_damping``: every dof, ``1.3 ** U(-l, l)``
    - ``geom_friction``: every geom (the floor too), sliding, torsional and
      rolling, ``1.5 ** U(-l, l)``

    with ``l = log_scale_limit`` (3 in ``docs/tasks.md`` and rand_param_envs; 0: every
    multiplier is 1, the nominal model). ``params``: the subset of these four to
    randomize (a domain-randomization study's knob; the others keep their defaults).

    Raises:
        ValueError: ``log_scale_limit`` negative or not a finite number, or ``params`` empty,
            repeated or not among the four (the message lists them).
    """
    limit = check_number("log_scale_limit", log_scale_limit, ge=0.0)
    chosen = list(params) if not isinstance(params, str) else [params]
    unknown = [p for p in chosen if p not in RAND_PARAMS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"params must be distinct names among {list(RAND_PARAMS)}, got {list(params)!r}"
        )
    laws: dict[str, ScalarDistribution]
    if limit == 0:
        laws = dict.fromkeys(RAND_PARAMS, Fixed(1.0))
    else:
        big: ScalarDistribution = LogUniform.power(1.5, -limit, limit)
        laws = dict.fromkeys(RAND_PARAMS, big) | {
            "dof_damping": LogUniform.power(1.3, -limit, limit)
        }
    return PhysicsSpace(
        {
            name: PhysicsParam(name, laws[name], independent=True)
            for name in RAND_PARAMS
            if name in chosen
        },
        model,
    )


class _RandParamsEnv(MujocoTaskEnv, MujocoEnv):
    """What the two *Params environments share: the task is the model's physics.

    ``set_task`` writes the multipliers into the model at once, relative to the
    defaults cached when the environment was built; ``restore_defaults`` brings
    the defaults back bit for bit. The control cost is computed on the applied
    action (the action clipped to the control range), ``docs/tasks.md``'s convention; for
    actions inside the action space this is Gymnasium's value.
    """

    task_distribution: PhysicsSpace
    _ctrl_cost_weight: float
    _forward_reward_weight: float
    _healthy_reward: float
    _terminate_when_unhealthy: bool
    is_healthy: bool

    def __init__(
        self,
        task: Task | dict[str, Any] | None = None,
        *,
        log_scale_limit: float = 3.0,
        params: Sequence[str] = RAND_PARAMS,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)  # the Gymnasium environment's __init__
        # After the Gymnasium class's own EzPickle call, so that unpickling rebuilds this class.
        EzPickle.__init__(
            self,  # type: ignore[arg-type]
            task,
            log_scale_limit=log_scale_limit,
            params=tuple(params),
            **kwargs,
        )
        self._use_float32_observations()
        self.task_distribution = rand_params_space(self.model, log_scale_limit, params)
        self._init_task(task)

    def _apply_task(self, task: Task) -> None:
        self.task_distribution.apply(self.model, task)

    def restore_defaults(self) -> None:
        """Write the model's default physics back; the task becomes ``default_task()`` (all 1)."""
        self.task_distribution.restore(self.model)
        self._task = self.task_distribution.default_task()

    def control_cost(self, action: np.ndarray) -> float:
        return self._ctrl_cost_weight * self._squared_norm(self._applied_action(action))

    # MujocoEnv annotates float64 observations; these are float32 (the platform's convention).
    def step(  # type: ignore[override]
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Gymnasium v5's Hopper / Walker2d step, with its healthy check evaluated once.

        Gymnasium's own ``step`` evaluates ``is_healthy`` twice (survive bonus and
        termination); doing it once pays for the float32 observation and the
        applied-action control cost. The result equals Gymnasium's except for the
        survive bonus on the terminating step (see the class docstring and the tests).
        """
        qpos = self.data.qpos
        x_before = float(qpos[0])
        self.do_simulation(action, self.frame_skip)
        x_after = float(qpos[0])
        x_velocity = (x_after - x_before) / self.dt
        healthy = bool(self.is_healthy)
        reward_forward = self._forward_reward_weight * x_velocity
        # docs/tasks.md's `x_velocity + 1 - 1e-3 ||a||^2`: the bonus on every step, the one that
        # ends the episode included (rand_param_envs, like the Ant and Humanoid families here).
        reward_survive = self._healthy_reward
        reward_ctrl = -self.control_cost(action)
        info = {
            "x_position": x_after,
            "z_distance_from_origin": qpos[1] - self.init_qpos[1],
            "x_velocity": x_velocity,
            "reward_forward": reward_forward,
            "reward_ctrl": reward_ctrl,
            "reward_survive": reward_survive,
        }
        if self.render_mode == "human":
            self.render()
        terminated = (not healthy) and self._terminate_when_unhealthy
        # The registered TimeLimit truncates.
        reward = reward_forward + reward_survive + reward_ctrl
        return self._get_obs(), reward, terminated, False, info


class HopperParamsEnv(_RandParamsEnv, HopperEnv):
    """Gymnasium's Hopper-v5 whose masses, inertias, frictions and dampings are the task.

    ## Description
    The planar one-legged hopper of Gymnasium's ``Hopper-v5`` (torso, thigh,
    leg, foot; three hinge motors) must hop forward. Each task is a set of
    physical parameters; the agent does not observe it and must adapt to it.

    ## Action space
    ``Box(-1, 1, (3,), float32)``: torques at the thigh, leg and foot hinges
    (Gymnasium's layout, gear 200).

    ## Observation space
    Gymnasium v5's default, as float32: ``Box(-inf, inf, (11,), float32)``,
    ``qpos[1:]`` (the x position is left out) then ``qvel`` clipped to ``[-10, 10]``.

    ## Reward
    ``reward = reward_forward + reward_survive + reward_ctrl`` (Gymnasium v5's), with
    - ``reward_forward = x_velocity``, ``x_velocity = (x_after - x_before) / dt`` of
      the root slider ``qpos[0]``, ``dt = frame_skip * opt.timestep = 0.008`` s
    - ``reward_survive = 1`` on every step, the one that ends the episode included
      (rand_param_envs and ``docs/tasks.md``; Gymnasium v5 gives 0 on that step)
    - ``reward_ctrl = -1e-3 * ||a||^2`` of the applied action

    ``info`` holds the three terms, ``x_position``, ``x_velocity`` and
    ``z_distance_from_origin``.

    ## Success
    None: the task is the physics, not a goal, so ``info`` has no ``"success"`` flag.

    ## Task distribution
    ``PhysicsTask`` of ``rand_params_space(model)``: independent multipliers of
    the defaults for ``body_mass`` (4 bodies: torso, thigh, leg, foot),
    ``body_inertia`` (4 x 3 axes) and ``geom_friction`` (5 geoms incl. the
    floor x sliding, torsional, rolling), each ``1.5 ** U(-3, 3)``, and
    ``dof_damping`` (6 dofs: rootx, rootz, rooty, thigh, leg, foot) ``1.3 **
    U(-3, 3)``. 40 train / 10 test tasks (``n_train_tasks`` / ``n_test_tasks``).
    ``set_task`` changes the model at once.

    ## Episode end
    Terminates when Gymnasium v5 calls the hopper unhealthy (``state[2:]``
    outside ``(-100, 100)``, height ``z <= 0.7`` or torso angle outside
    ``(-0.2, 0.2)``); truncated after 200 steps by the registered ``TimeLimit``.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (a ``PhysicsTask`` or its dict); ``None``: a fixed draw |
    | ``log_scale_limit`` | 3 | ``l`` of the ranges ``1.5 ** U(-l, l)`` (damping: base 1.3) |
    | ``params`` | all four | the fields randomized (e.g. ``["body_mass", "geom_friction"]``) |
    | other keywords | Gymnasium's | passed to ``HopperEnv`` (``xml_file``, ``frame_skip``, ...) |

    ## Source
    rand_param_envs (``base.py``, ``hopper_rand_params.py``), used by PEARL and
    VariBAD. Differences: Gymnasium v5's model (rand_param_envs ships gym v2's
    with MuJoCo 1.31) and v5's observation layout and healthy checks; the survive
    bonus is paid on every step as in rand_param_envs (v5 pays none on the
    terminating step); the world body, whose mass
    and inertia are 0, gets no multiplier; MuJoCo's derived constants
    (``mj_setConst``) are recomputed after a change, which rand_param_envs did not do.
    """

    n_train_tasks = 40
    n_test_tasks = 10


class Walker2dParamsEnv(_RandParamsEnv, Walker2dEnv):
    """Gymnasium's Walker2d-v5 whose masses, inertias, frictions and dampings are the task.

    ## Description
    The planar biped of Gymnasium's ``Walker2d-v5`` (torso and two legs of
    thigh, leg and foot; six hinge motors) must walk forward. Each task is a set
    of physical parameters; the agent does not observe it.

    ## Action space
    ``Box(-1, 1, (6,), float32)``: torques at the right then left thigh, leg and
    foot hinges (gear 100).

    ## Observation space
    Gymnasium v5's default, as float32: ``Box(-inf, inf, (17,), float32)``,
    ``qpos[1:]`` then ``qvel`` clipped to ``[-10, 10]``.

    ## Reward
    As ``HopperParamsEnv``: ``x_velocity + reward_survive - 1e-3 ||a||^2``, with
    ``reward_survive = 1`` on every step; ``dt = 0.008`` s. ``info`` holds the
    terms, ``x_position``, ``x_velocity`` and ``z_distance_from_origin``.

    ## Success
    None: the task is the physics, not a goal, so ``info`` has no ``"success"`` flag.

    ## Task distribution
    As ``HopperParamsEnv``, over Walker2d's 7 bodies (torso and both legs'
    thigh, leg, foot), 8 geoms (with the floor) and 9 dofs; 40 train / 10 test tasks.

    ## Episode end
    Terminates when Gymnasium v5 calls the walker unhealthy (height ``z``
    outside ``(0.8, 2.0)`` or torso angle outside ``(-1, 1)``); truncated after
    200 steps.

    ## Arguments
    | name | default | meaning |
    | --- | --- | --- |
    | ``task`` | ``None`` | initial task (a ``PhysicsTask`` or its dict); ``None``: a fixed draw |
    | ``log_scale_limit``, ``params`` | 3, all four | as for ``HopperParamsEnv`` |
    | other keywords | Gymnasium's | passed to ``Walker2dEnv`` |

    ## Source
    rand_param_envs ``walker2d_rand_params.py``; the differences of
    ``HopperParamsEnv`` apply (Gymnasium v5's ``walker2d_v5.xml``, whose feet
    differ from gym v2's, and v5's healthy checks).
    """

    n_train_tasks = 40
    n_test_tasks = 10
