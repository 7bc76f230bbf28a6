"""RLlib interop: metarl's environments as RLlib environments, schedules on all env runners.

The RLlib tests share one Ray session (``ray_session``) and train one or two tiny PPO
iterations; each route of ``metarl.rllib``'s docstring is trained once.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from metarl.envs import PhysicsRandomization, Uniform
from metarl.envs.physics_param import PhysicsParam
from metarl.envs.wrappers import MultiTaskEnv
from metarl.rllib import (
    _make_as_gymnasium,
    _make_by_id,
    make_rllib_env,
    physics_on_env_runners,
    randomization_callbacks,
    register_rllib_env,
    set_task_on_env_runners,
)
from metarl.sim2real.schedules import LinearWidening
from metarl.tasks import GoalTask

RAY_INIT = {
    "address": "local",
    "num_cpus": 2,
    "include_dashboard": False,
    "logging_level": logging.WARNING,
}


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One local Ray instance for the module's RLlib tests."""
    import ray

    ray.init(**RAY_INIT)
    try:
        yield
    finally:
        ray.shutdown()


def _train_and_record_tasks(
    env: str, env_config: dict[str, Any], env_runners: int
) -> list[list[Any]]:
    """PPO on ``env`` for one tiny iteration; per env runner, the task of each episode.

    An ``on_episode_start`` callback (after each reset) reads the sub-env's task, so
    the list holds the tasks of the episodes RLlib trained on.
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    def record(*, env_runner: Any, env: Any, env_index: int, **kwargs: Any) -> None:
        task = env.envs[env_index].get_wrapper_attr("get_task")()
        env_runner.__dict__.setdefault("metarl_tasks", []).append(task)

    config = (
        PPOConfig()
        .environment(env, env_config=env_config)
        .env_runners(num_env_runners=env_runners, num_cpus_per_env_runner=0.5)
        .training(train_batch_size_per_learner=100, minibatch_size=50, num_epochs=1)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[8]))
        .callbacks(on_episode_start=record)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 100
        assert np.isfinite(result["learners"]["default_policy"]["policy_loss"])
        return list(
            algo.env_runner_group.foreach_env_runner(
                lambda runner: list(runner.__dict__.get("metarl_tasks", [])),
                local_env_runner=env_runners == 0,
            )
        )
    finally:
        algo.stop()


def test_env_creator_builds_what_the_config_says() -> None:
    mass = PhysicsParam("body_mass", Uniform(0.5, 2.0), elements=["pole"])
    env = make_rllib_env({"env_id": "InvertedPendulum-v5", "physics": {"m": mass.to_dict()}})
    assert isinstance(env, PhysicsRandomization) and env.task_distribution.names == ["m"]
    assert 0.5 <= env.reset(seed=0)[1]["physics"]["m"] <= 2.0

    goals = [GoalTask(goal=(0.5, 0.5)), GoalTask(goal=(-0.5, 0.2))]
    env = make_rllib_env({"env_id": "metarl/PointRobot-v0", "tasks": [g.to_dict() for g in goals]})
    assert isinstance(env, MultiTaskEnv) and env.tasks == tuple(goals)
    env.reset(seed=0)
    assert env.get_task() in goals  # metarl's task API, through the creator's wrappers
    env.set_task(GoalTask(goal=(0.1, 0.1)))
    env.reset()
    assert env.get_task() == GoalTask(goal=(0.1, 0.1))

    env = make_rllib_env({"env_id": "metarl/PointRobot-v0"})  # the env's own distribution
    assert isinstance(env, MultiTaskEnv) and env.tasks is None
    assert not isinstance(make_rllib_env({"env_id": "CartPole-v1"}), MultiTaskEnv)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"env_id": "CartPole-v1", "phyiscs": {}}, r"unknown keys \['phyiscs'\]; allowed"),
        ({"env_kwargs": {}}, "env_id is required"),
        ({"env_id": "metarl/PointRobot-v0", "physics": {}, "tasks": []}, "not both"),
        ({"env_id": "CartPole-v1", "tasks": []}, "CartPole-v1 is not a task environment"),
    ],
)
def test_env_creator_names_bad_config(config: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_rllib_env(config)


@pytest.mark.slow  # RLlib PPO with 2 env runners: ~60 s on 2 cores
def test_ppo_trains_under_a_schedule_updated_on_every_env_runner(ray_session: None) -> None:
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    schedule = LinearWidening(["body_mass"], start=0.0, end=2.0, iterations=2)
    initial = {k: p.to_dict() for k, p in schedule.params().items()}
    algo = None
    try:
        config = (
            PPOConfig()
            .environment(
                register_rllib_env(),
                env_config={"env_id": "InvertedPendulum-v5", "physics": initial},
            )
            .env_runners(num_env_runners=2, num_envs_per_env_runner=2, num_cpus_per_env_runner=0.5)
            .training(train_batch_size_per_learner=400, minibatch_size=100, num_epochs=2)
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[16, 16]))
            .callbacks(**randomization_callbacks(schedule))
            .debugging(seed=0)
        )
        algo = config.build_algo()
        group = algo.env_runner_group
        sampled = 0
        for width in (1.0, 2.0, 2.0):
            result = algo.train()
            assert result["metarl_randomization"] == {"width": width, "sub_envs_updated": 4}
            steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
            assert steps > sampled  # PPO sampled and trained this iteration
            sampled = steps
            assert np.isfinite(result["learners"]["default_policy"]["policy_loss"])
            runners = [r for r in physics_on_env_runners(group) if r]  # the local one has no env
            assert len(runners) == 2
            want = {"kind": "log_uniform", "low": 1.5**-width, "high": 1.5**width, "base": 1.5}
            for runner in runners:
                assert [env["body_mass"]["dist"] for env in runner] == [pytest.approx(want)] * 2
        # The envs drew from the widened range in the last iteration's episodes.
        draws = group.foreach_env_runner(
            lambda r: [
                np.asarray(e.get_wrapper_attr("get_task")().values["body_mass"])
                for e in r.env.unwrapped.envs
            ],
            local_env_runner=False,
        )
        values = np.concatenate([d.ravel() for runner in draws for d in runner])
        assert np.all((values >= 1.5**-2 - 1e-12) & (values <= 1.5**2 + 1e-12))
        assert np.ptp(values) > 0.5
        # metarl's task API over all env runners: one fixed physics task.
        task = algo.env_runner_group.foreach_env_runner(
            lambda r: r.env.unwrapped.envs[0].get_wrapper_attr("get_task")(),
            local_env_runner=False,
        )[0]
        assert set_task_on_env_runners(group, task) == 4
        same = group.foreach_env_runner(
            lambda r: [e.get_wrapper_attr("get_task")() == task for e in r.env.unwrapped.envs],
            local_env_runner=False,
        )
        assert same == [[True, True], [True, True]]
    finally:
        if algo is not None:
            algo.stop()


def test_env_creator_applies_effects() -> None:
    from metarl.envs.effects import ActionDelay

    env = make_rllib_env(
        {"env_id": "metarl/PointRobot-v0", "effects": [{"name": "action_delay", "steps": 1}]}
    )
    assert isinstance(env, MultiTaskEnv) and isinstance(env.env, ActionDelay)
    with pytest.raises(ValueError, match=r"effects\[0\] \(action_delay\): .*steps"):
        make_rllib_env(
            {"env_id": "CartPole-v1", "effects": [{"name": "action_delay", "steps": -1}]}
        )


def test_adaptive_schedules_are_refused_with_the_way_to_train_them() -> None:
    from metarl.sim2real.adaptive import DORAEMON

    params = {
        "mass": PhysicsParam.from_dict(
            {
                "field": "body_mass",
                "elements": ["torso"],
                "op": "scale",
                "dist": {"kind": "uniform", "low": 0.5, "high": 2.0},
            }
        )
    }
    with pytest.raises(TypeError, match="DORAEMON is an adaptive schedule.*agent: ppo"):
        randomization_callbacks(DORAEMON(params, success_return=1.0))


def test_import_metarl_registers_its_ids_with_rllib_without_importing_ray() -> None:
    # Both import orders, each in a fresh process: metarl first (the ids are registered
    # when Ray Tune's registry is imported later), and Ray Tune first.
    check = (
        "from ray.tune.registry import ENV_CREATOR, _global_registry as r; "
        "assert r.contains(ENV_CREATOR, 'metarl/PointRobot-v0'); "
        "assert r.contains(ENV_CREATOR, 'metarl:metarl/HalfCheetahVel-v0')"
    )
    metarl_first = f"import sys, metarl; assert 'ray' not in sys.modules; {check}"
    tune_first = f"import ray.tune.registry, metarl; {check}"
    for code in (metarl_first, tune_first):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]


def test_plain_ids_stay_registered_across_a_ray_restart(ray_session: None) -> None:
    import ray
    from ray.tune.registry import ENV_CREATOR, _global_registry

    @ray.remote
    def registered_on_a_worker() -> bool:
        from ray.tune.registry import ENV_CREATOR, _global_registry

        return bool(_global_registry.contains(ENV_CREATOR, "metarl/AntGoal-v0"))

    ray.shutdown()  # a second session in one process (a notebook, this test module)
    ray.init(**RAY_INIT)
    assert _global_registry.contains(ENV_CREATOR, "metarl/AntGoal-v0")
    assert ray.get(registered_on_a_worker.remote())


def test_rllib_by_plain_id_trains_a_new_task_every_episode(ray_session: None) -> None:
    # A remote env runner, which has not imported metarl: RLlib finds the id in Ray
    # Tune's registry and builds make_rllib_env, drawing a task at every reset.
    [tasks] = _train_and_record_tasks("metarl/PointRobot-v0", {}, env_runners=1)
    assert len(tasks) >= 5 and all(isinstance(t, GoalTask) for t in tasks)
    assert len(set(tasks)) == len(tasks)  # a continuous distribution: all different


def test_rllib_by_plain_id_takes_make_rllib_env_config(ray_session: None) -> None:
    # The plain id with a list of training tasks and an effect, on another env (the
    # sparse point robot), in the driver's own env runner.
    goals = [GoalTask(goal=(np.cos(a), np.sin(a))) for a in (0.3, 1.2, 2.0, 2.9)]
    config = {
        "tasks": [g.to_dict() for g in goals],
        "effects": [{"name": "action_delay", "steps": 1}],
    }
    [tasks] = _train_and_record_tasks("metarl/PointRobotSparse-v0", config, env_runners=0)
    assert len(tasks) >= 5 and set(tasks) <= set(goals) and len(set(tasks)) >= 2


def test_rllib_by_register_rllib_env_trains_the_training_tasks(ray_session: None) -> None:
    goals = [GoalTask(goal=(0.5, 0.5)), GoalTask(goal=(-0.5, 0.2)), GoalTask(goal=(0.0, -0.7))]
    config = {"env_id": "metarl/PointRobot-v0", "tasks": [g.to_dict() for g in goals]}
    [tasks] = _train_and_record_tasks(register_rllib_env(), config, env_runners=1)
    assert len(tasks) >= 5 and set(tasks) <= set(goals) and len(set(tasks)) >= 2


def test_rllib_by_gymnasium_spelling_trains_one_task_and_says_so(ray_session: None) -> None:
    with pytest.warns(UserWarning, match=r"Gymnasium's spelling: every episode runs the one task"):
        [tasks] = _train_and_record_tasks("metarl:metarl/PointRobot-v0", {}, env_runners=0)
    assert len(tasks) >= 5 and len(set(tasks)) == 1


def test_gymnasium_spelling_with_a_task_builds_that_task_quietly() -> None:
    task = GoalTask(goal=(0.4, -0.9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = _make_as_gymnasium("metarl/PointRobot-v0", {"task": task.to_dict()})
    for seed in range(3):
        env.reset(seed=seed)
        assert env.get_wrapper_attr("get_task")() == task
    with pytest.warns(UserWarning, match=r"config.environment\('metarl/AntDir-v0'\)"):
        _make_as_gymnasium("metarl/AntDir-v0", {})


def test_plain_id_refuses_an_env_id_in_env_config() -> None:
    with pytest.raises(ValueError, match=r"env_id 'CartPole-v1' given with .*leave env_id out"):
        _make_by_id("metarl/PointRobot-v0", {"env_id": "CartPole-v1"})
    # A Gymnasium user's habit: the env's own argument straight in env_config.
    with pytest.raises(
        ValueError, match=r"unknown keys \['task'\]; allowed: .*go under env_kwargs"
    ):
        _make_by_id("metarl/PointRobot-v0", {"task": GoalTask(goal=(0.1, 0.1)).to_dict()})


def test_a_bad_env_config_on_a_remote_env_runner_reaches_the_driver(ray_session: None) -> None:
    from ray.rllib.algorithms.ppo import PPOConfig

    config = (
        PPOConfig()
        .environment("metarl/PointRobot-v0", env_config={"taks": []})
        .env_runners(num_env_runners=1, num_cpus_per_env_runner=0.5)
        .fault_tolerance(restart_failed_env_runners=False)
    )
    with pytest.raises(ValueError, match=r"unknown keys \['taks'\]; allowed: .*'tasks'"):
        config.build_algo()


def test_a_failed_registration_warns_instead_of_breaking_ray_tunes_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import metarl.rllib

    def fail() -> list[str]:
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr(metarl.rllib, "register_env_ids", fail)
    with pytest.warns(RuntimeWarning, match=r"registry unavailable.*register_rllib_env\(\)"):
        metarl.rllib._on_tune_registry_import(None)


def test_ray_workers_leave_the_registration_to_the_driver(
    ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    import metarl.rllib as rllib

    @ray.remote
    def in_worker() -> bool:
        return rllib._in_ray_worker()

    assert ray.get(in_worker.remote()) and not rllib._in_ray_worker()
    calls: list[int] = []
    monkeypatch.setattr(rllib, "register_env_ids", lambda: calls.append(1))
    monkeypatch.setattr(rllib, "_in_ray_worker", lambda: True)
    rllib._on_tune_registry_import(None)
    rllib._reregister()
    assert calls == []
    monkeypatch.setattr(rllib, "_in_ray_worker", lambda: False)
    rllib._on_tune_registry_import(None)
    rllib._reregister()
    assert calls == [1, 1]
