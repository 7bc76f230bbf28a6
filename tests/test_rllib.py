"""RLlib interop: metarl's environments as RLlib environments, schedules on all env runners."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from metarl.envs import PhysicsRandomization, Uniform
from metarl.envs.physics import PhysicsParam
from metarl.envs.wrappers import MultiTaskEnv
from metarl.rllib import (
    make_rllib_env,
    physics_on_env_runners,
    randomization_callbacks,
    register_rllib_env,
    set_task_on_env_runners,
)
from metarl.sim2real.schedules import LinearWidening
from metarl.tasks import GoalTask


def test_env_creator_builds_what_the_config_says() -> None:
    mass = PhysicsParam("body_mass", Uniform(0.5, 2.0), elements=["pole"])
    env = make_rllib_env({"env_id": "InvertedPendulum-v5", "physics": {"m": mass.to_dict()}})
    assert isinstance(env, PhysicsRandomization) and env.task_distribution.names == ["m"]
    assert 0.5 <= env.reset(seed=0)[1]["physics"]["m"] <= 2.0

    goals = [GoalTask(goal=(0.5, 0.5)), GoalTask(goal=(-0.5, 0.2))]
    env = make_rllib_env({"env_id": "metarl/PointRobot-v0", "tasks": [g.to_dict() for g in goals]})
    assert isinstance(env, MultiTaskEnv) and env.tasks == tuple(goals)
    env.reset(seed=0)
    assert env.get_task() in goals  # RLlib's task-settable convention
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
def test_ppo_trains_under_a_schedule_updated_on_every_env_runner() -> None:
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    schedule = LinearWidening(["body_mass"], start=0.0, end=2.0, iterations=2)
    initial = {k: p.to_dict() for k, p in schedule.params().items()}
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
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
        # RLlib's task-settable convention over all env runners: one fixed physics task.
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
        ray.shutdown()


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
