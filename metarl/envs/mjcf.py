"""``MJCFEnv`` (``metarl/MJCF-v0``): any MuJoCo model file (MJCF) as a Gymnasium environment.

For a robot of one's own, not one of Gymnasium's: system identification of it
(``metarl sysid`` with ``env: metarl/MJCF-v0, env_kwargs: {model_path: robot.xml}`` as
its simulator and its target), domain randomization (``PhysicsRandomization`` names its
bodies, joints and actuators), recording.

- Observation: ``[qpos, qvel]`` of the model, float32, ``Box(-inf, inf)``.
- Action: one entry per actuator, bounded by the actuators' ``ctrlrange`` (Gymnasium's
  ``MujocoEnv`` builds the space from it); every actuator must be ``ctrllimited``.
- Reward 0.0; never terminates (``metarl/MJCF-v0`` truncates at 1000 steps by
  registration; ``gymnasium.make(..., max_episode_steps=N)`` changes it); ``info`` is
  empty.
- ``dt = frame_skip * opt.timestep`` of the model.
- Reset: to ``qpos0`` (or the named ``keyframe``) at rest; ``reset_noise_scale > 0``
  adds uniform noise in ``[-scale, scale]`` to every ``qpos`` and ``qvel`` entry, as
  Gymnasium's Hopper and Walker2d do (quaternions renormalized).

Arguments (``gymnasium.make("metarl/MJCF-v0", model_path=...)``):

====================  ==========  =============================================
``model_path``        required    the MJCF file (str or path; ``~`` expanded)
``frame_skip``        1           MuJoCo steps per environment step (int >= 1)
``reset_noise_scale`` 0.0         half-width of the uniform reset noise (>= 0)
``keyframe``          ``None``    the name of a keyframe of the model to reset to
``render_mode`` ...               ``MujocoEnv``'s render settings (``width``,
                                  ``height``, ``camera_id``, ``camera_name``,
                                  ``default_camera_config``, ...)
====================  ==========  =============================================
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from metarl.checks import check_int, check_number

__all__ = ["MJCFEnv"]


class MJCFEnv(MujocoEnv, utils.EzPickle):
    """The MuJoCo model ``model_path`` as an environment (module docstring).

    Raises:
        ValueError: a missing or unreadable file, a file MuJoCo refuses (its message
            given), a model without actuators or with an actuator that has no control
            range, an unknown keyframe, a bad ``frame_skip`` or ``reset_noise_scale``.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium's convention)
        "render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]
    }

    def __init__(
        self,
        model_path: str | Path,
        frame_skip: int = 1,
        reset_noise_scale: float = 0.0,
        keyframe: str | None = None,
        **kwargs: Any,
    ):
        utils.EzPickle.__init__(self, model_path, frame_skip, reset_noise_scale, keyframe, **kwargs)
        check_int("MJCFEnv: frame_skip", frame_skip, ge=1)
        check_number("MJCFEnv: reset_noise_scale", reset_noise_scale, ge=0.0)
        path = Path(model_path).expanduser().resolve()
        if not path.is_file():
            what = "a folder, not a file" if path.is_dir() else "no such file"
            raise ValueError(f"MJCFEnv: model_path {str(model_path)!r}: {what} ({path})")
        self._reset_noise_scale = float(reset_noise_scale)
        # MujocoEnv resolves a relative path against Gymnasium's own assets: give it ours.
        MujocoEnv.__init__(self, str(path), int(frame_skip), observation_space=None, **kwargs)
        self._keyframe = _keyframe_id(self.model, keyframe, path)
        _check_actuators(self.model, path)
        size = self.model.nq + self.model.nv
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        try:
            model = mujoco.MjModel.from_xml_path(self.fullpath)
        except ValueError as err:  # MuJoCo's parse and compile errors
            raise ValueError(f"MJCFEnv: model_path {self.fullpath}: {err}") from None
        model.vis.global_.offwidth = self.width
        model.vis.global_.offheight = self.height
        return model, mujoco.MjData(model)

    def step(  # type: ignore[override]
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.do_simulation(action, self.frame_skip)
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), 0.0, False, False, {}

    def reset_model(self) -> np.ndarray:
        qpos, qvel = self.init_qpos.copy(), self.init_qvel.copy()
        if self._keyframe is not None:
            qpos[:] = self.model.key_qpos[self._keyframe]
            qvel[:] = self.model.key_qvel[self._keyframe]
        scale = self._reset_noise_scale
        if scale > 0:
            qpos += self.np_random.uniform(-scale, scale, size=self.model.nq)
            qvel += self.np_random.uniform(-scale, scale, size=self.model.nv)
            mujoco.mj_normalizeQuat(self.model, qpos)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float32)


def _keyframe_id(model: mujoco.MjModel, name: str | None, path: Path) -> int | None:
    if name is None:
        return None
    key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, name)
    if key < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_KEY, k) for k in range(model.nkey)]
        raise ValueError(
            f"MJCFEnv: keyframe {name!r} is not in {path}; its named keyframes: "
            f"{', '.join(repr(n) for n in names if n) or 'none'}"
        )
    return int(key)


def _check_actuators(model: mujoco.MjModel, path: Path) -> None:
    """Refuse a model whose action space would be empty or meaningless."""
    if model.nu == 0:
        raise ValueError(f"MJCFEnv: {path} has no actuators, so nothing can drive it")
    unlimited = [
        mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a) or f"#{a}"
        for a in range(model.nu)
        if not model.actuator_ctrllimited[a]
        or not all(math.isfinite(v) for v in model.actuator_ctrlrange[a])
    ]
    if unlimited:
        raise ValueError(
            f"MJCFEnv: {path}: actuator(s) {', '.join(unlimited)} have no control range; "
            'the action space is the actuators\' ctrlrange: give each ctrlrange="low high" '
            '(and ctrllimited="true" where the compiler does not infer it)'
        )
