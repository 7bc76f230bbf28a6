"""``RaySampler``: the ``Sampler`` contract spread over Ray actors.

Each actor (a *worker*) holds one Gymnasium vector env of ``envs_per_worker``
sub-environments, built by ``metarl.sampling.make_vector_env``, and runs
``metarl.sampling.run_trials`` on its share of a collect call. The driver

1. puts the policy in the object store once per ``collect`` (``ray.put``); every
   worker receives the same reference and Ray resolves it to the policy there;
2. splits the trials into contiguous shares whose boundaries are multiples of
   ``envs_per_worker`` (whole waves; see ``metarl.sampling`` for trials, waves
   and seeds), as evenly as whole waves allow; with fewer waves than workers,
   some workers get no share;
3. passes each share's *global* trial indices and the collect call's index, so
   that every trial draws from the same seed as in ``LocalSampler``;
4. gathers the shares in task order into one ``EpisodeBatch`` whose arrays are
   copies owned by the driver (writable, as ``LocalSampler``'s, and not pinning
   Ray's shared-memory object store while an agent keeps them).

Because the waves are the ones ``LocalSampler(num_envs=envs_per_worker)`` runs and
the seeds are per trial, ``RaySampler`` and that ``LocalSampler`` return identical
batches for the same seed and policy, call after call.

Fault tolerance: workers are created with ``max_restarts`` (Ray restarts a worker
whose process dies) and ``max_task_retries=0`` (the driver, not Ray, decides what
to re-run). When a share fails because its worker died or became unreachable
(``RayActorError`` and its subclasses ``ActorDiedError`` / ``ActorUnavailableError``,
a lost result object, a dead node), the driver waits until the worker answers
again (Ray's restart) or, if Ray reports it dead for good, replaces it with a new
worker, and submits the same share again. Only whole shares are kept, so no
episode is lost or counted twice; since seeds are per trial, the re-collected
share is the one the first attempt would have returned. After
``max_share_attempts`` failed attempts of one share, ``collect`` raises
``WorkerFailedError``. An exception raised by the environment or the policy
inside a worker is not a worker failure: it is re-raised by ``collect`` as an
exception that is an instance of the original type (Ray's ``RayTaskError``
dual type), as ``LocalSampler`` would raise it. A worker that hangs without
dying is not detected: ``collect`` has no time limit.

Ray's lifetime: if Ray is already initialized in this process, the sampler uses
that connection (whatever ``address`` says) and ``close`` leaves Ray running. If
not, the sampler calls ``ray.init``: ``address=None`` starts a private local
instance (``ray.init(address="local")``, so ``RAY_ADDRESS`` is not read; quiet
logs, no dashboard, an object store of ``object_store_memory`` bytes, ``num_cpus``
CPUs or all of this machine's); a string connects to that cluster (``"auto"``:
the one ``ray start`` started on this machine or ``RAY_ADDRESS``;
``"ray://host:10001"``: Ray Client; ``"host:6379"``: the GCS).
A sampler that started or connected Ray shuts it down in ``close``.

On a cluster the workers import ``metarl`` (this module and the environments):
install it on every node, or pass ``runtime_env={"py_modules": [metarl]}`` (or a
``pip`` list). Nothing assumes that the driver and the workers share a
filesystem or a process: the policy, the tasks and the episodes travel through
Ray's object store and task arguments. Environment ids must be registered in
the worker processes; the ``metarl/`` ids are registered by importing
``metarl``, others can use Gymnasium's ``"module:EnvName-v0"`` form.

Threads: Ray sets ``OMP_NUM_THREADS`` of a worker to its CPU count
(``cpus_per_worker``, 1 by default). A torch policy whose results must match
``LocalSampler`` bit for bit should pin its inference to one thread (the RL2
policy does), since thread counts can change the order of floating-point sums.
A policy's numpy arrays reach the workers read-only (zero-copy from the object
store): ``act`` must not modify them in place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import ray
import ray.exceptions

from metarl.agents.policy import Policy
from metarl.checks import check_int, check_number
from metarl.envs.base import EnvWrapper
from metarl.episodes import Episode, EpisodeBatch
from metarl.sampling import (
    VECTORIZATION_MODES,
    Sampler,
    WorkerInfo,
    check_collect_request,
    make_vector_env,
    run_trials,
)
from metarl.tasks import Task

__all__ = [
    "CollectTiming",
    "RaySampler",
    "WorkerFailedError",
    "init_local_ray",
    "split_trials",
]

logger = logging.getLogger(__name__)

# Failures that mean "the worker (or its node, or its result) is gone", after which
# the share is collected again. Errors raised by the env or the policy are not here.
_WORKER_FAILURES: tuple[type[BaseException], ...] = (
    ray.exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,  # OwnerDiedError, ObjectReconstructionFailedError, ...
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.WorkerCrashedError,
)

DEFAULT_OBJECT_STORE_MEMORY = 512 * 1024**2
PLACEMENTS = {"pack": "DEFAULT", "spread": "SPREAD"}  # -> Ray's scheduling_strategy
# Ray 2.60 logs a warning here on every start of a new local instance that it turned
# token authentication on (its default, which stays on).
_TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def init_local_ray(**kwargs: Any) -> None:
    """``ray.init(address="local", **kwargs)``: a private Ray instance of this process,
    quiet (warnings only, no dashboard), with Ray's default token authentication and
    without its notice that it is on."""
    notice = logging.getLogger(_TOKEN_AUTH_LOGGER)
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, **kwargs)
    finally:
        notice.setLevel(level)


class CollectTiming(NamedTuple):
    """Where the seconds of one ``collect`` went (``RaySampler.last_timing``).

    - ``wall_s``: the whole call, on the driver;
    - ``put_s``: ``ray.put`` of the policy (the weight broadcast: one object, every
      worker reads it);
    - ``worker_s``: per worker with a share, the seconds its ``run_trials`` took;
    - ``gather_s``: ``ray.get`` of the results and their copies into driver memory.

    ``overhead_s`` = ``wall_s - max(worker_s)``: what the call cost beyond its slowest
    worker's collection (dispatch, broadcast, waiting on Ray, gathering).
    """

    wall_s: float
    put_s: float
    worker_s: tuple[float, ...]
    gather_s: float

    @property
    def overhead_s(self) -> float:
        return self.wall_s - max(self.worker_s, default=0.0)


class WorkerFailedError(RuntimeError):
    """A share could not be collected: its worker kept failing, or could not be (re)started."""


class _Worker:
    """A Ray actor: one vector env, and ``run_trials`` on it."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        vectorization: str,
        env_kwargs: dict[str, Any] | None,
        wrappers: Sequence[EnvWrapper],
    ):
        self.envs: Any = None
        self.error: BaseException | None = None
        try:
            self.envs = make_vector_env(env_id, num_envs, vectorization, env_kwargs, wrappers)
        except Exception as err:  # re-raised by ready()/run(), with its own type
            self.error = err

    def ready(self) -> int:
        """The worker's process id, once its env is built (raises the build error)."""
        if self.error is not None:
            raise self.error
        return os.getpid()

    def run(
        self,
        policy: Policy,
        tasks: list[Task],
        trial_indices: list[int],
        episodes_per_trial: int,
        seed: int,
        call_index: int,
    ) -> tuple[list[Episode], float]:
        """The share's episodes and the seconds ``run_trials`` took here."""
        self.ready()
        start = time.perf_counter()
        episodes = run_trials(
            self.envs, policy, tasks, trial_indices, episodes_per_trial, seed, call_index
        )
        return episodes, time.perf_counter() - start

    def info(self) -> WorkerInfo:
        """Where the worker runs and the peak resident memory of its process."""
        self.ready()
        return WorkerInfo(
            pid=os.getpid(),
            node_id=ray.get_runtime_context().get_node_id(),
            peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        )

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
            self.envs = None


_RemoteWorker: Any = ray.remote(_Worker)


def _owned(episodes: list[Episode]) -> list[Episode]:
    """The episodes with arrays of their own.

    Arrays that ``ray.get`` returns from the object store are read-only views of shared
    memory that pin the whole result there while any of them lives: a replay buffer
    that kept them would fill the object store. Copies are writable, as
    ``LocalSampler``'s are, and let Ray free the result at once.
    """
    return [
        dataclasses.replace(
            ep,
            observations=np.array(ep.observations),
            next_observations=np.array(ep.next_observations),
            actions=np.array(ep.actions),
            rewards=np.array(ep.rewards),
            terminations=np.array(ep.terminations),
            truncations=np.array(ep.truncations),
            env_infos={k: np.array(v) for k, v in ep.env_infos.items()},
            agent_infos={k: np.array(v) for k, v in ep.agent_infos.items()},
        )
        for ep in episodes
    ]


def split_trials(num_trials: int, num_workers: int, envs_per_worker: int) -> list[range]:
    """Contiguous shares of ``range(num_trials)``, one per worker, in whole waves.

    The ``ceil(num_trials / envs_per_worker)`` waves are dealt out as evenly as
    possible, the first workers taking one more; every share but the last ends on
    a multiple of ``envs_per_worker``. Workers past the last wave get an empty share.
    """
    num_waves = -(-num_trials // envs_per_worker)
    base, extra = divmod(num_waves, num_workers)
    shares, start_wave = [], 0
    for w in range(num_workers):
        stop_wave = start_wave + base + (1 if w < extra else 0)
        shares.append(
            range(
                min(start_wave * envs_per_worker, num_trials),
                min(stop_wave * envs_per_worker, num_trials),
            )
        )
        start_wave = stop_wave
    return shares


class RaySampler(Sampler):
    """Collects over ``num_workers`` Ray actors, each with ``envs_per_worker`` sub-envs.

    Gives the same batches, call after call, as
    ``LocalSampler(env_id, num_envs=envs_per_worker, seed=seed)`` (see the module
    docstring for how shares, seeds, failures and Ray's lifetime are handled).

    Args:
        env_id: a task environment registered in the workers (e.g. ``"metarl/PointRobot-v0"``).
        num_workers: Ray actors, each with its own vector env.
        envs_per_worker: sub-environments of each worker's vector env (trials per wave).
        seed: the root of every trial's seed.
        vectorization: ``"sync"`` (sub-envs in the worker's process) or ``"async"``
            (one process per sub-env; give the worker ``cpus_per_worker=envs_per_worker``).
        env_kwargs: keyword arguments of ``gymnasium.make``.
        wrappers: applied to each sub-environment, innermost first, as in ``LocalSampler``.
            ``env_kwargs`` and ``wrappers`` are shipped to the workers, so they must be
            picklable (a class or function defined in ``__main__`` or in a module that
            the workers cannot import travels by value only if registered with
            ``ray.cloudpickle.register_pickle_by_value``).
        address: ``None`` to start a local Ray instance, or a cluster address
            (``"auto"``, ``"ray://host:port"``, ``"host:port"``); ignored when Ray is
            already initialized.
        cpus_per_worker: CPUs Ray reserves for each worker (fractions allowed).
        placement: ``"pack"`` (Ray's default scheduling: fill a node first) or
            ``"spread"`` (across the cluster's nodes as evenly as Ray can).
        max_restarts: how often Ray restarts a dead worker (``-1``: without limit).
        max_share_attempts: attempts of one share before ``collect`` gives up.
        restart_timeout_s: how long to wait for a failed worker to come back (or for a
            replacement to start) before giving up, and for the workers to start.
        num_cpus: CPUs of a local instance that the sampler starts (``None``: all).
        object_store_memory: bytes of a local instance's object store (the policy and
            the episodes pass through it).
        runtime_env: Ray runtime environment of the workers (e.g. ``{"py_modules":
            [metarl]}`` on a cluster whose nodes lack ``metarl``).

    Raises:
        ValueError: a field out of range (the message names it), or more CPUs asked of
            a local instance that the sampler starts than it has.
        WorkerFailedError: the workers could not be started within ``restart_timeout_s``.
        Exception: the error of an environment that cannot be built (e.g. Gymnasium's
            for an unknown ``env_id``), re-raised from the worker with its own type.
    """

    def __init__(
        self,
        env_id: str,
        num_workers: int = 2,
        envs_per_worker: int = 4,
        seed: int = 0,
        vectorization: str = "sync",
        env_kwargs: dict[str, Any] | None = None,
        wrappers: Sequence[EnvWrapper] = (),
        address: str | None = None,
        cpus_per_worker: float = 1.0,
        placement: str = "pack",
        max_restarts: int = -1,
        max_share_attempts: int = 3,
        restart_timeout_s: float = 120.0,
        num_cpus: int | None = None,
        object_store_memory: int = DEFAULT_OBJECT_STORE_MEMORY,
        runtime_env: dict[str, Any] | None = None,
    ):
        self.num_workers = check_int("RaySampler.num_workers", num_workers, ge=1)
        self.envs_per_worker = check_int("RaySampler.envs_per_worker", envs_per_worker, ge=1)
        self.max_share_attempts = check_int(
            "RaySampler.max_share_attempts", max_share_attempts, ge=1
        )
        if vectorization not in VECTORIZATION_MODES:
            raise ValueError(
                f"RaySampler: vectorization must be one of {list(VECTORIZATION_MODES)}, "
                f"got {vectorization!r}"
            )
        check_number("RaySampler.cpus_per_worker", cpus_per_worker, gt=0)
        if placement not in PLACEMENTS:
            raise ValueError(
                f"RaySampler: placement must be one of {list(PLACEMENTS)}, got {placement!r}"
            )
        check_int("RaySampler.max_restarts (-1: no limit)", max_restarts, ge=-1)
        check_number("RaySampler.restart_timeout_s", restart_timeout_s, gt=0)
        check_int("RaySampler.seed", seed)
        if address is not None and not isinstance(address, str):
            raise ValueError(f"RaySampler: address must be None or a string, got {address!r}")
        self.env_id = env_id
        self.seed = int(seed)
        self.vectorization = vectorization
        self.env_kwargs = dict(env_kwargs or {})
        self.wrappers = list(wrappers)
        self.cpus_per_worker = cpus_per_worker
        self.placement = placement
        self.last_timing: CollectTiming | None = None  # of the last collect call
        self.max_restarts = int(max_restarts)
        self.restart_timeout_s = float(restart_timeout_s)
        self.runtime_env = runtime_env
        self.calls = 0
        self.replacements = 0  # workers replaced after Ray gave them up
        self.retried_shares = 0  # shares collected again after a worker failure
        self._workers: list[Any] = []
        self._closed = False
        self._owns_ray = False

        if not ray.is_initialized():
            if address is None:
                self._check_local_cpus(num_cpus if num_cpus is not None else os.cpu_count())
                init_local_ray(num_cpus=num_cpus, object_store_memory=object_store_memory)
                self._owns_ray = True
                try:  # Ray may detect fewer CPUs than os.cpu_count (a container's quota)
                    self._check_local_cpus(ray.cluster_resources().get("CPU", 0.0))
                except ValueError:
                    self.close()
                    raise
            else:
                ray.init(address=address, logging_level=logging.WARNING)
                self._owns_ray = True
        elif address is not None:
            logger.info("RaySampler: Ray is already initialized; address %r is ignored", address)

        try:
            self._workers = [self._new_worker() for _ in range(self.num_workers)]
            self._wait_started(list(range(self.num_workers)))
        except BaseException:
            self.close()
            raise

    def _check_local_cpus(self, available: float | None) -> None:
        needed = self.num_workers * float(self.cpus_per_worker)
        if available is not None and needed > available:
            raise ValueError(
                f"RaySampler: num_workers * cpus_per_worker = {needed:g} CPUs, but a local "
                f"Ray instance would have {available:g}; lower num_workers or cpus_per_worker "
                "(fractions allowed), or raise num_cpus"
            )

    # -- workers -------------------------------------------------------------------------

    def _new_worker(self) -> Any:
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_worker,
            "max_restarts": self.max_restarts,
            "max_task_retries": 0,
            "scheduling_strategy": PLACEMENTS[self.placement],
        }
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        return _RemoteWorker.options(**options).remote(
            self.env_id, self.envs_per_worker, self.vectorization, self.env_kwargs, self.wrappers
        )

    def _wait_started(self, slots: list[int]) -> list[int]:
        """Wait until the workers in ``slots`` answer; return their pids."""
        refs = [self._workers[w].ready.remote() for w in slots]
        _, not_ready = ray.wait(refs, num_returns=len(refs), timeout=self.restart_timeout_s)
        if not_ready:
            raise WorkerFailedError(
                f"RaySampler: {len(not_ready)} of {len(refs)} workers did not start within "
                f"restart_timeout_s={self.restart_timeout_s:g} s (each needs "
                f"{self.cpus_per_worker:g} CPU; the cluster has "
                f"{ray.cluster_resources().get('CPU', 0):g} in all, "
                f"{ray.available_resources().get('CPU', 0):g} free)"
            )
        return [int(pid) for pid in ray.get(refs)]

    def _recover(self, slot: int) -> None:
        """Wait until the worker of ``slot`` answers again, replacing it if Ray gave it up."""
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerFailedError(
                    f"RaySampler: worker {slot} did not come back within "
                    f"restart_timeout_s={self.restart_timeout_s:g} s"
                )
            try:
                ray.get(self._workers[slot].ready.remote(), timeout=remaining)
                return
            except ray.exceptions.GetTimeoutError:
                continue  # the deadline check above raises
            except ray.exceptions.ActorUnavailableError:
                time.sleep(0.1)  # restarting or unreachable for now: ask again
            except ray.exceptions.ActorDiedError:
                # Dead for good (restarts used up, or its node is gone): replace it.
                logger.warning("RaySampler: worker %d is dead; starting a replacement", slot)
                self._kill(self._workers[slot])
                self._workers[slot] = self._new_worker()
                self.replacements += 1

    @staticmethod
    def _kill(worker: Any) -> None:
        try:
            ray.kill(worker, no_restart=True)
        except Exception:  # already gone
            pass

    def worker_pids(self) -> list[int]:
        """The process id of each worker (after a restart, the new process's)."""
        self._check_open()
        return [int(pid) for pid in ray.get([w.ready.remote() for w in self._workers])]

    def worker_info(self) -> list[WorkerInfo]:
        """Process, node and peak memory of each worker (after a restart, the new process's)."""
        self._check_open()
        return list(ray.get([w.info.remote() for w in self._workers]))

    # -- the contract ----------------------------------------------------------------

    def collect(
        self, policy: Policy, tasks: Sequence[Task], episodes_per_trial: int
    ) -> EpisodeBatch:
        self._check_open()
        check_collect_request(tasks, episodes_per_trial)
        tasks = list(tasks)
        shares = split_trials(len(tasks), self.num_workers, self.envs_per_worker)
        start = time.perf_counter()
        policy_ref = ray.put(policy)
        put_s = time.perf_counter() - start
        call_index = self.calls
        worker_s: dict[int, float] = {}
        gather_s = 0.0

        def submit(slot: int) -> Any:
            share = shares[slot]
            return self._workers[slot].run.remote(
                policy_ref,
                tasks[share.start : share.stop],
                list(share),
                episodes_per_trial,
                self.seed,
                call_index,
            )

        pending: dict[Any, int] = {submit(w): w for w, share in enumerate(shares) if len(share)}
        results: dict[int, list[Episode]] = {}
        attempts = dict.fromkeys(pending.values(), 1)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    slot = pending.pop(ref)
                    try:
                        got = time.perf_counter()
                        episodes, worker_s[slot] = ray.get(ref)
                        results[slot] = _owned(episodes)
                        gather_s += time.perf_counter() - got
                    except _WORKER_FAILURES as err:
                        share = shares[slot]
                        if attempts[slot] >= self.max_share_attempts:
                            raise WorkerFailedError(
                                f"RaySampler: the share of trials {share.start}..{share.stop - 1} "
                                f"failed {attempts[slot]} times (max_share_attempts="
                                f"{self.max_share_attempts}); last error: "
                                f"{type(err).__name__}: {err}"
                            ) from err
                        logger.warning(
                            "RaySampler: worker %d failed (%s) on trials %d..%d; "
                            "collecting them again",
                            slot,
                            type(err).__name__,
                            share.start,
                            share.stop - 1,
                        )
                        self._recover(slot)
                        attempts[slot] += 1
                        self.retried_shares += 1
                        pending[submit(slot)] = slot
        except BaseException:
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:
                    pass
            raise
        episodes = [ep for slot in sorted(results) for ep in results[slot]]
        self.calls += 1
        self.last_timing = CollectTiming(
            wall_s=time.perf_counter() - start,
            put_s=put_s,
            worker_s=tuple(worker_s[slot] for slot in sorted(worker_s)),
            gather_s=gather_s,
        )
        return EpisodeBatch(tuple(episodes), tuple(tasks), episodes_per_trial)

    def __enter__(self) -> RaySampler:
        return self

    def close(self) -> None:
        """Kill the workers; shut Ray down if this sampler initialized it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if ray.is_initialized():
            for worker in self._workers:
                self._kill(worker)
        self._workers = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RaySampler is closed")
