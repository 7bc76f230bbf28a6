"""SafetyLayer: every change to a command is an intervention with its cause; the
e-stop latch holds until cleared; the watchdog sends the safe action."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from metarl.sim2real.safety import SafetyConfig, SafetyLayer, StateLimit, Watchdog, kind_counts

BOX = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
OBS = np.zeros(3)


def layer(**fields: Any) -> SafetyLayer:
    return SafetyLayer(SafetyConfig(**fields), BOX, 3, ["x", "y", "z"])


def test_a_command_inside_every_limit_passes_unchanged() -> None:
    safety = layer(max_delta=0.5)
    sent, events, end = safety.filter(np.array([0.2, -0.3]), OBS)
    assert sent.tolist() == pytest.approx([0.2, -0.3]) and events == [] and not end
    assert sent.dtype == np.float32


def test_bounds_and_max_delta_are_interventions_not_silent_clips() -> None:
    safety = layer(action_low=[-0.5, -0.5], action_high=[0.5, 0.5], max_delta=0.2)
    sent, events, _ = safety.filter(np.array([0.9, 0.1]), OBS)
    assert sent.tolist() == pytest.approx([0.5, 0.1])
    assert [e.kind for e in events] == ["action_bounds"] and "entries [0]" in events[0].detail
    assert events[0].given == pytest.approx((0.9, 0.1)) and events[0].sent[0] == 0.5
    sent, events, _ = safety.filter(np.array([-0.5, 0.1]), OBS)  # 0.5 -> -0.5: too fast
    assert sent.tolist() == pytest.approx([0.3, 0.1])
    assert [e.kind for e in events] == ["max_delta"]
    assert len(safety.interventions) == 2


def test_nan_and_inf_commands_become_the_safe_action() -> None:
    safety = layer(safe_action=[0.1, 0.0])
    for bad in ([np.nan, 0.0], [0.0, np.inf]):
        sent, events, end = safety.filter(np.array(bad), OBS)
        assert sent.tolist() == pytest.approx([0.1, 0.0]) and not end
        assert [e.kind for e in events] == ["non_finite"]


def test_state_limits_respond_as_configured() -> None:
    limits = [
        StateLimit(dim="x", high=1.0, response="safe_action"),
        StateLimit(dim=1, low=-1.0, response="truncate"),
    ]
    safety = layer(state_limits=limits)
    sent, events, end = safety.filter(np.array([0.5, 0.5]), np.array([2.0, 0.0, 0.0]))
    assert sent.tolist() == [0.0, 0.0] and not end
    assert events[0].kind == "state_limit" and "observation[0] (x) = 2" in events[0].detail
    sent, events, end = safety.filter(np.array([0.5, 0.5]), np.array([0.0, -3.0, 0.0]))
    assert sent.tolist() == [0.0, 0.0] and end
    assert not safety.estopped


def test_the_estop_latches_until_cleared_explicitly() -> None:
    safety = layer(state_limits=[StateLimit(dim="z", high=0.5, response="estop")])
    _, events, end = safety.filter(np.array([0.5, 0.5]), np.array([0.0, 0.0, 0.9]))
    assert safety.estopped and end and events[0].kind == "state_limit"
    # Back inside the limits, and a new episode: still latched.
    safety.start_episode()
    sent, events, end = safety.filter(np.array([0.5, 0.5]), OBS)
    assert sent.tolist() == [0.0, 0.0] and end and [e.kind for e in events] == ["estop"]
    safety.clear_estop()
    sent, events, end = safety.filter(np.array([0.5, 0.5]), OBS)
    assert sent.tolist() == [0.5, 0.5] and events == [] and not end
    safety.trigger_estop("operator")
    assert safety.filter(np.array([0.5, 0.5]), OBS)[0].tolist() == [0.0, 0.0]


def test_a_new_episode_does_not_limit_its_first_command_by_the_last_one() -> None:
    safety = layer(max_delta=0.1)
    safety.filter(np.array([0.9, 0.9]), OBS)
    safety.start_episode()
    sent, events, _ = safety.filter(np.array([-0.9, -0.9]), OBS)
    assert sent.tolist() == pytest.approx([-0.9, -0.9]) and events == []


def test_a_command_of_the_wrong_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"command of shape \(3,\), the robot takes \(2,\)"):
        layer().filter(np.zeros(3), OBS)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action_low": [-2.0, -1.0]}, "must lie inside the robot's action space"),
        ({"action_low": [0.5, 0.5], "action_high": [0.0, 0.0]}, "exceeds action_high"),
        ({"max_delta": [0.1, 0.1, 0.1]}, r"safety.max_delta: expected 2 numbers"),
        ({"max_delta": 0.0}, "max_delta must be positive"),
        ({"safe_action": [2.0, 0.0]}, "safe_action .* must lie inside the bounds"),
        ({"action_low": [0.1, 0.1]}, "safe_action .* must lie inside the bounds"),
        ({"state_limits": [{"dim": "w"}]}, r"state_limits\[0\].dim: 'w' is not an observation"),
        ({"state_limits": [{"dim": 3}]}, r"state_limits\[0\].dim must be in \[0, 3\)"),
    ],
)
def test_bad_configs_are_named(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        layer(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"safe_action": [float("nan"), 0.0]}, "safe_action must be finite"),
        ({"max_delta": float("inf")}, "max_delta must be finite"),
        ({"max_delta": "0.1"}, "max_delta"),  # no coercion from strings
        ({"watchdog_s": float("inf")}, "watchdog_s"),
    ],
)
def test_non_finite_or_coerced_fields_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SafetyConfig(**fields)


def test_an_unbounded_action_space_needs_bounds() -> None:
    free = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    with pytest.raises(ValueError, match="unbounded .* give finite bounds"):
        SafetyLayer(SafetyConfig(), free, 3)
    bounded = SafetyLayer(SafetyConfig(action_low=[-1.0, -1.0], action_high=[1.0, 1.0]), free, 3)
    assert bounded.filter(np.array([1e30, 0.0]), OBS)[0].tolist() == [1.0, 0.0]


def test_a_state_limit_with_crossed_bounds_is_refused() -> None:
    with pytest.raises(ValueError, match="low .* must be below high"):
        StateLimit(dim=0, low=1.0, high=0.0)


def test_the_watchdog_fires_without_commands_and_not_while_kicked() -> None:
    fired = threading.Event()
    waits: list[float] = []

    def on_timeout(waited: float) -> None:
        waits.append(waited)
        fired.set()

    dog = Watchdog(0.2, on_timeout)  # 20 x the kick interval: no flake on a loaded machine
    try:
        dog.resume()
        for _ in range(10):  # kicked every 10 ms for 100 ms: never fires
            time.sleep(0.01)
            dog.kick()
        assert dog.fired == 0
        assert fired.wait(timeout=2.0)  # then silence: it fires
        assert waits[0] >= 0.2
        time.sleep(0.5)
        assert dog.fired >= 2  # and again while no command comes
        dog.pause()
        time.sleep(0.05)  # a firing under way finishes
        count = dog.fired
        time.sleep(0.5)
        assert dog.fired == count  # paused between episodes
    finally:
        dog.stop()


def test_interventions_are_summarized_once_per_episode_by_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    safety = layer(max_delta=0.1)
    caplog.set_level(logging.INFO, logger="metarl.sim2real.safety")
    for commands in [[0.0, 0.5, -0.5, 0.5], [0.0, 0.05], [0.0, np.nan, 0.9]]:
        safety.start_episode()
        for c in commands:
            safety.filter(np.array([c, 0.0]), OBS)
    safety.end_episode()
    summaries = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert summaries == [  # no line per step; episode 1 had nothing to report
        (logging.INFO, "safety: episode 0: 3 intervention(s) in 4 step(s): max_delta 3"),
        (
            logging.WARNING,  # a NaN command is not command shaping
            "safety: episode 2: 2 intervention(s) in 3 step(s): non_finite 1, max_delta 1",
        ),
    ]
    # The per-step record stays whole: episode, step and kind of each.
    assert [(e.episode, e.step, e.kind) for e in safety.interventions] == [
        (0, 1, "max_delta"),
        (0, 2, "max_delta"),
        (0, 3, "max_delta"),
        (2, 1, "non_finite"),
        (2, 2, "max_delta"),
    ]
    assert kind_counts(safety.interventions) == {"non_finite": 1, "max_delta": 4}
    assert safety.end_episode() == {}  # nothing left to summarize
