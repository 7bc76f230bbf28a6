"""Recording real rollouts as Minari datasets, and loading them as the fits' real data.

``Recorder`` wraps an environment (a ``RealRobotEnv``, a simulated robot's) and keeps
every step of every episode: observations, the actions the policy gave, rewards,
terminations and truncations, and the step infos (``RealRobotEnv``'s: the command as
sent after the safety layer, timing, interventions, a lost link), flattened to ``a.b``
keys and stored as float64 arrays (the system's ``state`` and ``next_state``, where the
robot or target gives them, kept bit for bit). An info key that appears later in an
episode is NaN before (at the reset, for instance): nothing is dropped. An episode that
does not end by termination or truncation (the env raised, the caller reset or closed
early) is kept too, its last step marked truncated; ``recorder.partial`` is 1 on every
step of such an episode and of one cut by a lost link.

Each episode also keeps its context (``metarl.sim2real.env_record.EpisodeContext``):
the recorder's ``phase`` (the part of a session it belongs to), the task the
environment ran and the physics in force in its model, read at the reset.

``save_dataset`` writes the recorded episodes as a Minari dataset (HDF5) under a
folder of the caller's (``MINARI_DATASETS_PATH`` is set for the call only). An
environment made by ``gymnasium.make`` (a task environment, ``PhysicsRandomization``
and effects included) is stored as its spec (``env_record.portable_spec``), so that
``minari.load_dataset(id).recover_environment()`` rebuilds it in any process; each
episode's context is its Minari episode metadata (``metarl.phase``, ``metarl.task``,
``metarl.inner_tasks``, ``metarl.physics``: JSON strings, read with
``dataset.storage.get_episode_metadata`` or ``episode_contexts``). A robot
(``RealRobotEnv``) has no Gymnasium spec: its dataset holds the robot's spaces
(``dataset.observation_space`` / ``action_space``) and every step, and Minari's
``recover_environment()`` raises ``ValueError`` (no ``env_spec``); the dataset's
metadata ``metarl.env`` names the environment recorded and ``metarl.no_env_spec`` why
there is no spec.

``load_episodes`` reads a dataset back as ``Episode``s, whose actions are by default
the commands as sent (``info["command"]``, what the robot applied), for the fits of
``metarl.sim2real.sysid``; an episode's task is the recorded one (a robot's:
``RealTask(dataset_id)``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import gymnasium as gym
import numpy as np

from metarl.episodes import Episode
from metarl.sim2real.env_record import EpisodeContext, portable_spec
from metarl.sim2real.targets import flatten_info
from metarl.tasks import RealTask

__all__ = ["Recorder", "episode_contexts", "load_episodes", "save_dataset"]

PARTIAL = "recorder.partial"
ERROR = "recorder.error"
# Transitions that are not one control period from the recorded state with the recorded
# command: the watchdog moved the robot before it, the link was lost, the env raised.
IRREGULAR = ("safety.watchdog", "disconnected", ERROR)


class _EpisodeRecord:
    def __init__(self, obs: Any, info: dict[str, Any], seed: int | None, context: EpisodeContext):
        self.seed = seed
        self.context = context
        self.observations = [np.asarray(obs)]
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terminations: list[bool] = []
        self.truncations: list[bool] = []
        self.infos: list[dict[str, np.ndarray]] = [_numeric(info)]
        self.partial = False

    def add(self, action: Any, obs: Any, reward: float, term: bool, trunc: bool, info: Any) -> None:
        self.actions.append(np.array(action, copy=True))
        self.observations.append(np.asarray(obs))
        self.rewards.append(float(reward))
        self.terminations.append(bool(term))
        self.truncations.append(bool(trunc))
        numeric = _numeric(info)
        self.infos.append(numeric)
        if numeric.get("disconnected", np.zeros(())).any():
            self.partial = True

    def add_error(self, action: Any) -> None:
        """A step whose command may have gone out but whose result never came (the env
        raised): kept, with a NaN observation and reward, flagged ``recorder.error``."""
        self.actions.append(np.array(action, dtype=np.float64, copy=True))
        self.observations.append(np.full(np.shape(self.observations[-1]), np.nan))
        self.rewards.append(float("nan"))
        self.terminations.append(False)
        self.truncations.append(True)
        self.infos.append({ERROR: np.ones(())})
        self.partial = True

    def info_arrays(self) -> dict[str, np.ndarray]:
        """Per key, an array over the T + 1 infos (reset and steps), NaN where absent.

        Raises:
            ValueError: a key whose shape changes within the episode.
        """
        shapes: dict[str, tuple[int, ...]] = {}
        for info in self.infos:
            for key, value in info.items():
                shapes.setdefault(key, value.shape)
        out = {}
        for key, shape in shapes.items():
            missing = np.full(shape, np.nan)
            rows = [info.get(key, missing) for info in self.infos]
            for i, row in enumerate(rows):
                if row.shape != shape:
                    raise ValueError(
                        f"Recorder: info {key!r} has shape {row.shape} at step {i}, "
                        f"{shape} before; a dataset needs one shape per key"
                    )
            out[key] = np.stack(rows)
        out[PARTIAL] = np.full(len(self.infos), 1.0 if self.partial else 0.0)
        return out


def _numeric(info: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in flatten_info(dict(info)).items():
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            out[key] = arr.astype(np.float64)
    return out


class Recorder(gym.Wrapper[Any, Any, Any, Any]):
    """Keeps every step of ``env`` (module docstring); ``episodes`` holds the finished
    ones (``finish`` closes the current one). ``phase``, when set, names the part of a
    session the episodes from the next reset on belong to (kept in their context)."""

    def __init__(self, env: gym.Env[Any, Any]):
        super().__init__(env)
        self.episodes: list[_EpisodeRecord] = []
        self._current: _EpisodeRecord | None = None
        self.phase = ""

    def finish(self) -> None:
        """End the current episode (if any step was taken) as it stands: an episode that
        did not end is marked truncated at its last step and partial."""
        episode, self._current = self._current, None
        if episode is None or not episode.actions:
            return
        if not (episode.terminations[-1] or episode.truncations[-1]):
            episode.truncations[-1] = True
            episode.partial = True
        self.episodes.append(episode)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.finish()
        obs, info = self.env.reset(seed=seed, options=options)
        self._current = _EpisodeRecord(obs, info, seed, EpisodeContext.of(self.env, self.phase))
        return obs, info

    def step(self, action: Any) -> Any:
        if self._current is None:
            raise RuntimeError("Recorder.step before reset")
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except BaseException:  # keep what was sent, then let the error through
            self._current.add_error(action)
            self.finish()
            raise
        self._current.add(action, obs, float(reward), terminated, truncated, info)
        if terminated or truncated:
            self.finish()
        return obs, reward, terminated, truncated, info

    @property
    def steps(self) -> int:
        """Steps recorded in all (finished episodes and the current one)."""
        current = len(self._current.actions) if self._current is not None else 0
        return sum(len(e.actions) for e in self.episodes) + current

    def close(self) -> None:
        self.finish()
        super().close()


def _datasets_path(root: Path) -> Any:
    """Minari's dataset folder set to ``root`` for a ``with`` block (then as it was)."""
    return mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(root)})


def save_dataset(
    recorder: Recorder,
    dataset_id: str,
    root: str | Path,
    *,
    description: str = "",
    algorithm_name: str = "",
) -> Path:
    """Write the recorder's episodes (the current one finished first) as the Minari
    dataset ``dataset_id`` under ``root``, with the environment's spec where it has one
    and each episode's context (module docstring); return its folder.

    Raises:
        ValueError: no recorded step, or a dataset of that id already under ``root``.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    recorder.finish()
    if not recorder.episodes:
        raise ValueError("save_dataset: nothing recorded")
    root = Path(root).resolve()  # minari joins a relative root with itself
    folder = root / dataset_id
    if folder.exists():
        raise ValueError(f"save_dataset: {folder} exists; give another dataset_id or root")
    obs_space, act_space = recorder.observation_space, recorder.action_space
    spec, no_spec = portable_spec(recorder.env, obs_space, act_space)
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=e.seed,
            observations=np.stack(e.observations).astype(obs_space.dtype),
            actions=np.stack(e.actions).astype(act_space.dtype),
            rewards=e.rewards,
            terminations=e.terminations,
            truncations=e.truncations,
            infos=e.info_arrays(),
        )
        for i, e in enumerate(recorder.episodes)
    ]
    summary = description or "metarl recording"
    if spec is None:
        summary += f"; no environment spec, recover_environment() refuses: {no_spec}"
        if recorder.env.spec is not None:  # made by gymnasium.make, yet not rebuildable
            warnings.warn(f"save_dataset {dataset_id!r}: {no_spec}", UserWarning, stacklevel=2)
    root.mkdir(parents=True, exist_ok=True)
    with _datasets_path(root), warnings.catch_warnings():
        # Minari warns of what a recording does without: an eval env, reference scores.
        warnings.filterwarnings("ignore", module="minari")
        dataset = minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=spec,
            observation_space=obs_space,
            action_space=act_space,
            description=summary,
            algorithm_name=algorithm_name or "metarl",
            author="metarl",
            author_email="none@localhost",
            code_permalink="metarl.sim2real.recording",
            data_format="hdf5",
            requirements=["metarl"],
        )
    dataset.storage.update_metadata(
        {"metarl.env": str(recorder.env), **({"metarl.no_env_spec": no_spec} if no_spec else {})}
    )
    dataset.storage.update_episode_metadata([e.context.to_metadata() for e in recorder.episodes])
    return folder


def _open(dataset_id: str, root: str | Path, caller: str) -> Any:
    """The Minari dataset ``dataset_id`` under ``root``.

    Raises:
        ValueError: no such dataset.
    """
    import minari

    root = Path(root).resolve()
    if not (root / dataset_id).exists():
        raise ValueError(f"{caller}: no dataset {dataset_id!r} under {root}")
    with _datasets_path(root):
        return minari.load_dataset(dataset_id)


def episode_contexts(dataset_id: str, root: str | Path) -> list[EpisodeContext]:
    """The context (task, physics) of each episode of the dataset, in episode order;
    empty contexts for a robot's.

    Raises:
        ValueError: no such dataset.
    """
    return _contexts(_open(dataset_id, root, "episode_contexts"))


def _contexts(dataset: Any) -> list[EpisodeContext]:
    metadata = dataset.storage.get_episode_metadata(dataset.episode_indices)
    return [EpisodeContext.from_metadata(m) for m in metadata]


def load_episodes(
    dataset_id: str, root: str | Path, actions: str = "sent", split_irregular: bool = True
) -> list[Episode]:
    """The episodes of the Minari dataset ``dataset_id`` under ``root`` as
    ``Episode``s (step infos without the reset's), each with its recorded task
    (``RealTask(dataset_id)`` for a robot's).

    ``actions``: ``"sent"`` (default), the commands the robot received
    (``info["command"]``, after the safety layer), else the policy's (``"policy"``).
    ``split_irregular``: leave out the transitions that are not one control period of
    the recorded command from the recorded state (the watchdog acted before it, the
    link was lost, the env raised: ``IRREGULAR`` infos), splitting an episode around
    them, so that the fits see only real transitions.

    Raises:
        ValueError: no such dataset, an unknown ``actions``, or ``"sent"`` with no
            ``command`` recorded.
    """
    if actions not in ("sent", "policy"):
        raise ValueError(f"load_episodes: actions must be 'sent' or 'policy', got {actions!r}")
    dataset = _open(dataset_id, root, "load_episodes")
    out = []
    for data, context in zip(dataset.iterate_episodes(), _contexts(dataset), strict=True):
        task = context.task or RealTask(system=dataset_id)
        infos = {k: np.asarray(v)[1:] for k, v in (data.infos or {}).items()}
        if actions == "sent":
            if "command" not in infos:
                raise ValueError(
                    f"load_episodes: dataset {dataset_id!r} holds no 'command' info; "
                    "use actions='policy'"
                )
            acts = infos["command"].reshape(np.asarray(data.actions).shape)
        else:
            acts = np.asarray(data.actions)
        obs = np.asarray(data.observations, dtype=np.float32)
        rewards = np.asarray(data.rewards, dtype=np.float64)
        terms = np.asarray(data.terminations, dtype=bool)
        truncs = np.asarray(data.truncations, dtype=bool)
        regular = np.ones(len(rewards), dtype=bool)
        if split_irregular:
            for key in IRREGULAR:
                if key in infos:
                    regular &= ~(np.nan_to_num(infos[key]) > 0)
        for start, stop in _runs(regular):
            out.append(
                Episode(
                    task=task,
                    observations=obs[start:stop],
                    next_observations=obs[start + 1 : stop + 1],
                    actions=acts[start:stop].astype(np.float32),
                    rewards=rewards[start:stop],
                    terminations=terms[start:stop],
                    truncations=truncs[start:stop]
                    | (np.arange(start, stop) == stop - 1) & ~terms[start:stop],
                    env_infos={k: v[start:stop] for k, v in infos.items()},
                )
            )
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
