"""Automatic DR and DORAEMON: they widen their distributions while the policy succeeds
and shrink them when it fails, within their limits and trust regions."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from metarl.envs import PhysicsParam, Uniform
from metarl.envs.physics_distributions import Beta, Fixed
from metarl.sim2real.adaptive import DORAEMON, AdaptiveSchedule, AutomaticDR
from metarl.tasks import PhysicsTask

PARAMS = {
    "mass": PhysicsParam("body_mass", Uniform(0.5, 2.0), elements=("torso",)),
    "friction": PhysicsParam("geom_friction", Uniform(0.2, 1.5), components=("sliding",)),
}
NOMINAL = {"mass": 1.0, "friction": 0.8}


def run(
    schedule: AdaptiveSchedule,
    returns: Callable[[PhysicsTask], float],
    iterations: int,
    episodes: int = 40,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Iterations of: draw tasks, 'train' (the return is a function of the task), record,
    update. Returns ``describe()`` after each update."""
    rng = np.random.default_rng(seed)
    history = []
    for it in range(1, iterations + 1):
        tasks = schedule.sample_tasks(rng, episodes)
        schedule.record(tasks, [returns(t) for t in tasks])
        schedule.update(it, {})
        history.append(schedule.describe())
    return history


def adr(**kw: Any) -> AutomaticDR:
    return AutomaticDR(
        PARAMS,
        step=0.05,
        low_threshold=0.3,
        high_threshold=0.8,
        nominal=NOMINAL,
        buffer_size=5,
        **kw,
    )


def test_adr_widens_while_the_policy_succeeds_within_its_limits() -> None:
    schedule = adr()
    assert schedule.params()["mass"].dist == Fixed(1.0)  # a point at the nominal value
    history = run(schedule, lambda t: 1.0, 60)
    width = [h["mass.high"] - h["mass.low"] for h in history]
    assert width[5] > width[0] >= 0
    assert schedule.bounds["mass"] == [0.5, 2.0]  # widened to the limits, not beyond
    assert schedule.bounds["friction"] == [0.2, 1.5]
    assert schedule.params()["mass"].dist == Uniform(0.5, 2.0)


def test_adr_shrinks_where_the_policy_fails() -> None:
    """Success only below a mass of 1.3: the upper bound stops near 1.3 and is pushed
    back when it goes beyond; the others widen."""
    schedule = adr()

    def returns(task: PhysicsTask) -> float:
        return 1.0 if float(task.values["mass"]) < 1.3 else 0.0

    run(schedule, returns, 80)
    assert 1.2 <= schedule.bounds["mass"][1] <= 1.35
    assert schedule.bounds["mass"][0] == 0.5
    wide = adr()
    run(wide, lambda t: 1.0, 40)
    before = wide.bounds["mass"][1]
    run(wide, lambda t: 0.0, 20)  # everything fails now
    assert wide.bounds["mass"][1] < before and wide.bounds["mass"][0] > 0.5


def test_adr_decides_on_each_full_buffer_and_drops_returns_of_a_moved_bound() -> None:
    schedule = adr()
    schedule.buffers[("mass", 1)] = [0.5] * 5 + [1.0] * 5 + [1.0] * 3  # mid, high, rest
    assert schedule.update(0, {})
    assert schedule.bounds["mass"][1] == pytest.approx(NOMINAL["mass"] + 0.05)  # one move
    assert schedule.buffers[("mass", 1)] == []  # the 3 left were earned at the old bound
    schedule.buffers[("mass", 1)] = [0.5] * 7  # one undecided buffer, 2 kept for the next
    assert not schedule.update(1, {})
    assert schedule.buffers[("mass", 1)] == [0.5] * 2


def test_adr_attributes_returns_to_boundary_episodes_only() -> None:
    schedule = adr(boundary_probability=0.5)
    rng = np.random.default_rng(0)
    tasks = schedule.sample_tasks(rng, 100)
    schedule.record(tasks, [1.0] * 100)
    recorded = sum(len(b) for b in schedule.buffers.values())
    assert 30 < recorded < 70  # about half are boundary episodes


def test_doraemon_widens_while_the_policy_succeeds() -> None:
    schedule = DORAEMON(PARAMS, success_return=0.5, success_rate=0.8, kl_bound=0.2, nominal=NOMINAL)
    entropies, steps = [schedule.describe()["entropy"]], []
    for i in range(8):
        before = schedule.ab.copy()
        run(schedule, lambda t: 1.0, 1, seed=i)
        entropies.append(schedule.describe()["entropy"])
        steps.append(DORAEMON.kl(schedule.ab, before))
    assert all(b > a for a, b in itertools.pairwise(entropies))
    assert max(steps) <= 0.2 * 1.001 and min(steps[:4]) > 0.05  # moves, within the trust region
    assert isinstance(schedule.params()["mass"].dist, Beta)
    assert schedule.ab.min() >= DORAEMON.MIN_AB  # never U-shaped
    assert 0 < schedule.describe()["ess"] <= 200


def test_doraemon_refuses_a_recorded_value_outside_its_limits() -> None:
    schedule = DORAEMON(PARAMS, success_return=0.5)
    with pytest.raises(ValueError, match=r"mass = 9.0 lies outside its limits"):
        schedule.record([PhysicsTask({"mass": 9.0, "friction": 1.0})], [1.0])


def test_doraemon_starts_at_a_nominal_on_a_limit() -> None:
    low = PARAMS["mass"].dist.support[0]
    schedule = DORAEMON(PARAMS, success_return=0.5, nominal={"mass": low})
    assert schedule.ab[0].tolist() == pytest.approx([1.0, 99.0])  # mode at the limit


def test_doraemon_shrinks_back_when_the_policy_fails_away_from_nominal() -> None:
    schedule = DORAEMON(
        PARAMS,
        success_return=0.5,
        success_rate=0.8,
        kl_bound=0.3,
        nominal=NOMINAL,
        init_concentration=10.0,
    )
    run(schedule, lambda t: 1.0, 6)
    wide = schedule.describe()

    def near_nominal(task: PhysicsTask) -> float:
        return 1.0 if abs(float(task.values["mass"]) - 1.0) < 0.1 else 0.0

    history = run(schedule, near_nominal, 6, episodes=200, seed=1)
    assert history[-1]["mass.std"] < wide["mass.std"]
    assert history[-1]["entropy"] < wide["entropy"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: AutomaticDR(PARAMS, step=0.0, low_threshold=0, high_threshold=1),
            "step.mass must be a finite positive number",
        ),
        (
            lambda: AutomaticDR(PARAMS, step=0.1, low_threshold=1, high_threshold=0),
            "low_threshold < high_threshold",
        ),
        (lambda: DORAEMON(PARAMS, success_return=1, success_rate=1.5), r"success_rate must be in"),
        (
            lambda: DORAEMON(PARAMS, success_return=1, nominal={"mass": 9.0}),
            r"nominal.mass: 9.0 lies outside the limits \[0.5, 2.0\]",
        ),
        (
            lambda: DORAEMON(
                {"m": PhysicsParam("body_mass", Uniform(0.5, 2.0), independent=True)}, 1.0
            ),
            "must be shared",
        ),
    ],
)
def test_bad_arguments_are_named(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


class Counting(AutomaticDR):
    """Automatic DR that counts the episodes recorded in it (module level: checkpoints
    pickle the schedule)."""

    recorded = 0

    def record(self, tasks: Any, returns: Any) -> None:
        assert all(isinstance(t, PhysicsTask) for t in tasks)
        type(self).recorded += len(tasks)
        super().record(tasks, returns)


def test_the_trainer_draws_from_records_in_and_updates_a_schedule(tmp_path: Any) -> None:
    """PPO on a physics-randomized pendulum under automatic DR: every iteration's tasks
    come from the schedule, every episode goes back to it, its state is logged and
    checkpointed, and a resumed trainer continues with the saved schedule."""
    import csv
    import functools

    import gymnasium as gym

    from metarl.agents.ppo import PPOAgent, PPOConfig
    from metarl.envs import PhysicsRandomization
    from metarl.sampling import LocalSampler
    from metarl.trainer import Trainer, TrainerConfig

    limits = {"pole": PhysicsParam("body_mass", Uniform(0.5, 3.0), elements=("pole",))}

    def schedule() -> Counting:
        return Counting(
            limits,
            step=0.1,
            low_threshold=1,
            high_threshold=2,
            buffer_size=2,
            boundary_probability=1.0,
        )

    env = gym.make("InvertedPendulum-v5")
    agent = PPOAgent(env.observation_space, env.action_space, PPOConfig(meta_batch_size=8))
    test_tasks = PhysicsRandomization(env, limits).task_distribution.sample(
        np.random.default_rng(0), 2
    )
    wrap = functools.partial(PhysicsRandomization, params=limits)
    sampler = LocalSampler("InvertedPendulum-v5", num_envs=4, seed=0, wrappers=[wrap])
    config = TrainerConfig(iterations=3, eval_every=0, checkpoint_every=1, progress=False)
    first = schedule()
    trainer = Trainer(agent, sampler, test_tasks, test_tasks, tmp_path, config, schedule=first)
    trainer.train()
    assert Counting.recorded == 3 * 8
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert float(rows[-1]["randomization.pole.high"]) == first.bounds["pole"][1]
    assert first.bounds["pole"][0] < 1.75 < first.bounds["pole"][1]  # returns >= 2: widened

    resumed = Trainer(agent, sampler, test_tasks, test_tasks, tmp_path, config, schedule=schedule())
    assert resumed.resume()
    assert isinstance(resumed.schedule, AutomaticDR)
    assert resumed.schedule.bounds == first.bounds
    sampler.close()


@pytest.mark.parametrize("make", [adr, lambda: DORAEMON(PARAMS, success_return=0.5)])
def test_describe_keeps_its_keys_across_updates(make: Callable[[], AdaptiveSchedule]) -> None:
    """The trainer logs ``describe()`` every iteration as columns: the keys must not change."""
    schedule = make()
    before = set(schedule.describe())
    run(schedule, lambda t: 1.0, 2)
    assert set(schedule.describe()) == before


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: AutomaticDR(PARAMS, step={"mass": 0.1}, low_threshold=0, high_threshold=1),
            r"give one step per parameter \['mass', 'friction'\]",
        ),
        (
            lambda: AutomaticDR(PARAMS, step=0.1, low_threshold=0, high_threshold=1, buffer_size=0),
            "AutomaticDR.buffer_size must be a positive integer",
        ),
        (
            lambda: AutomaticDR(
                PARAMS, step=0.1, low_threshold=0, high_threshold=1, boundary_probability=0
            ),
            r"boundary_probability must be in \(0, 1\]",
        ),
        (
            lambda: DORAEMON(PARAMS, success_return=1, kl_bound=0),
            "kl_bound must be a finite positive number",
        ),
        (
            lambda: DORAEMON(PARAMS, success_return=1, init_concentration=2),
            "init_concentration must be a finite number > 2",
        ),
        (
            lambda: DORAEMON(PARAMS, success_return=1, nominal={"mas": 1.0}),
            r"DORAEMON.nominal: unknown parameter\(s\) \['mas'\]",
        ),
    ],
)
def test_more_bad_arguments_are_named(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_resuming_a_schedule_from_a_checkpoint_without_one_is_refused(tmp_path: Any) -> None:
    import gymnasium as gym

    from metarl.agents.ppo import PPOAgent
    from metarl.sampling import LocalSampler
    from metarl.trainer import Trainer, TrainerConfig

    env = gym.make("metarl/PointRobot-v0")
    agent = PPOAgent(env.observation_space, env.action_space)
    tasks = env.unwrapped.task_distribution.sample(np.random.default_rng(0), 2)  # type: ignore[attr-defined]
    config = TrainerConfig(iterations=1, eval_every=0, progress=False)
    with LocalSampler("metarl/PointRobot-v0", num_envs=2, seed=0) as sampler:
        Trainer(agent, sampler, tasks, tasks, tmp_path, config).train()
        with_schedule = Trainer(agent, sampler, tasks, tasks, tmp_path, config, schedule=adr())
        with pytest.raises(ValueError, match="saved without a task schedule"):
            with_schedule.resume()
