"""The network bridge on loopback against a simulated robot server: a full episode, a
killed server, malformed, oversized and out-of-order messages, a wrong token; and a
fuzz test of the message parser."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarl.sim2real.bridge import RemoteRobot, RobotServer
from metarl.sim2real.bridge_protocol import (
    PROTOCOL_VERSION,
    Command,
    Hello,
    ProtocolError,
    Reading,
    Reset,
    decode,
    encode,
    read_frame,
)
from metarl.sim2real.recording import Recorder
from metarl.sim2real.robot import RealRobotEnv, RobotDisconnected
from metarl.sim2real.safety import SafetyConfig, StateLimit
from metarl.sim2real.simulated_robot import SimulatedRobot
from metarl.sim2real.targets import load_target_config

TOKEN = "s3cret"
PENDULUM = {"env": "InvertedPendulum-v5", "effects": [{"name": "action_delay", "steps": 1}]}


@pytest.fixture
def server() -> Iterator[RobotServer]:
    robot = SimulatedRobot(load_target_config(PENDULUM))
    with RobotServer(robot, TOKEN, watchdog_s=0.2, frame_timeout_s=0.5) as srv:
        yield srv


def raw_client(server: RobotServer, token: str = TOKEN) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=2.0)
    sock.sendall(encode(Hello(type="hello", version=PROTOCOL_VERSION, token=token)))
    return sock


def reply(sock: socket.socket) -> object:
    return decode(read_frame(sock))


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_a_full_episode_over_the_bridge(server: RobotServer) -> None:
    assert server.address[0] == "127.0.0.1"  # loopback unless configured otherwise
    robot = RemoteRobot(*server.address, token=TOKEN)
    assert robot.action_space.shape == (1,) and robot.observation_space.shape == (4,)
    env = RealRobotEnv(robot, hz=500, max_episode_steps=10)
    env.reset(seed=1)
    steps, rtts = 0, []
    while True:
        _, reward, terminated, truncated, info = env.step(np.array([0.05], dtype=np.float32))
        steps += 1
        rtts.append(info["bridge.rtt_s"])
        if terminated or truncated:
            break
    assert not info["disconnected"] and reward == 1.0
    assert steps == 10 and truncated and not terminated
    assert all(0 < r < 0.5 for r in rtts)
    assert server.commands == steps + 1  # and the safe action at the episode's end
    assert server.rejections == []
    env.close()


def test_a_killed_server_ends_the_episode_flagged_and_keeps_what_was_read() -> None:
    srv = RobotServer(SimulatedRobot(load_target_config(PENDULUM)), TOKEN).start()
    env = RealRobotEnv(RemoteRobot(*srv.address, token=TOKEN, connect_attempts=1), hz=500)
    env.reset(seed=0)
    kept = [env.step(np.zeros(1, dtype=np.float32)) for _ in range(5)]
    srv.stop()
    obs, reward, terminated, truncated, info = env.step(np.zeros(1, dtype=np.float32))
    assert info["disconnected"] and truncated and not terminated and reward == 0.0
    np.testing.assert_array_equal(obs, kept[-1][0])  # the last observation read
    with pytest.raises(RobotDisconnected, match="no robot server"):
        env.reset()  # reconnecting fails: nothing listens any more
    env.close()


def test_malformed_messages_are_answered_with_their_reason_and_logged(
    server: RobotServer,
) -> None:
    sock = raw_client(server)
    assert reply(sock).type == "welcome"  # type: ignore[attr-defined]
    for body, reason in (
        (b"{not json", "not a JSON message"),
        (b'{"type": "command", "seq": 1}', "command.action: Field required"),
        (b'{"type": "teleport", "seq": 1}', "invalid message"),
        (b'{"type": "reading", "seq": 1, "observation": []}', "a client does not send reading"),
    ):
        sock.sendall(frame(body))
        answer = reply(sock)
        assert answer.type == "error" and reason in answer.reason  # type: ignore[attr-defined]
    assert len(server.rejections) == 4
    # the connection survives malformed bodies: a valid request still works
    sock.sendall(encode(Command(type="command", seq=1, action=[0.0])))
    assert reply(sock).type == "error"  # type: ignore[attr-defined]  (before any reset)
    sock.close()


def test_an_oversized_frame_closes_the_connection(server: RobotServer) -> None:
    sock = raw_client(server)
    reply(sock)
    sock.sendall(struct.pack(">I", 50_000_000))  # the body never comes
    assert sock.recv(1) == b""  # closed by the server
    assert "exceeds the limit" in server.rejections[-1].reason
    sock.close()


def test_out_of_order_commands_are_not_executed(server: RobotServer) -> None:
    sock = raw_client(server)
    reply(sock)
    sock.sendall(encode(Reset(type="reset", seq=5, seed=0)))
    assert isinstance(reply(sock), Reading)
    sock.sendall(encode(Command(type="command", seq=6, action=[0.1])))
    assert isinstance(reply(sock), Reading)
    executed = server.commands
    sock.sendall(encode(Command(type="command", seq=4, action=[0.1])))  # replayed
    answer = reply(sock)
    assert answer.type == "error" and "seq 4 not above 6" in answer.reason  # type: ignore[attr-defined]
    assert server.commands == executed
    sock.close()


def test_a_wrong_token_is_refused_and_closed(server: RobotServer) -> None:
    with pytest.raises(RobotDisconnected, match="refused: wrong token"):
        RemoteRobot(*server.address, token="guess")
    assert server.rejections[-1].reason.startswith("wrong token")
    sock = socket.create_connection(server.address, timeout=2.0)
    sock.sendall(encode(Command(type="command", seq=1, action=[0.0])))  # no handshake
    assert "before the handshake" in reply(sock).reason  # type: ignore[attr-defined]
    assert sock.recv(1) == b""
    sock.close()


def test_a_wrong_protocol_version_is_refused(server: RobotServer) -> None:
    sock = socket.create_connection(server.address, timeout=2.0)
    sock.sendall(encode(Hello(type="hello", version=PROTOCOL_VERSION + 1, token=TOKEN)))
    assert "protocol version" in reply(sock).reason  # type: ignore[attr-defined]
    sock.close()


def test_the_server_needs_a_token() -> None:
    with pytest.raises(ValueError, match="token must be a non-empty"):
        RobotServer(SimulatedRobot(load_target_config(PENDULUM)), "")


def test_no_server_is_named() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # a port nothing listens on
    start = time.perf_counter()
    with pytest.raises(RobotDisconnected, match=f"no robot server at 127.0.0.1:{port}"):
        RemoteRobot("127.0.0.1", port, TOKEN, connect_attempts=2)
    assert time.perf_counter() - start < 5


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_the_parser_with_bytes(body: bytes) -> None:
    try:
        decode(body)
    except ProtocolError:
        pass  # the one error a bad body may raise


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["hello", "reset", "command", "reading", "error", "bye", "x"])},
        optional={
            "seq": json_values,
            "action": json_values,
            "token": json_values,
            "extra": json_values,
        },
    )
)
def test_fuzz_the_parser_with_json_messages(data: dict[str, object]) -> None:
    body = json.dumps(data).encode()
    try:
        message = decode(body)
    except ProtocolError:
        return
    assert decode(encode(message)[4:]) == message  # what parses, round-trips


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=20))
def test_readings_round_trip_every_float(values: list[float]) -> None:
    message = Reading(type="reading", seq=3, observation=values)
    back = decode(encode(message)[4:])
    np.testing.assert_array_equal(np.array(back.observation), np.array(values))


def test_over_the_bridge_a_stall_nan_actions_and_the_estop_lose_no_recorded_step(
    server: RobotServer,
) -> None:
    limit = StateLimit(dim=1, low=-0.05, high=0.05, response="estop")  # pole angle; ends at 0.2
    safety = SafetyConfig(safe_action=[0.0], watchdog_s=0.03, state_limits=[limit])
    env = Recorder(RealRobotEnv(RemoteRobot(*server.address, token=TOKEN), hz=200, safety=safety))
    robot_env = env.env
    assert isinstance(robot_env, RealRobotEnv)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([np.nan], np.float32))
    assert info["command"].tolist() == [0.0] and info["safety.interventions"] == 1
    served = server.commands
    time.sleep(0.12)  # the policy stalls: the watchdog sends the safe action
    assert server.commands > served
    steps = 1
    _, _, _, _, info = env.step(np.array([0.0], np.float32))
    steps += 1
    assert info["safety.watchdog"] >= 1  # the next step tells of the stall
    for _ in range(200):  # small pushes until the pole leaves the limits: the e-stop latches
        _, _, terminated, truncated, info = env.step(np.array([0.3], np.float32))
        steps += 1
        if terminated or truncated:
            break
    else:
        pytest.fail("the pole never left the limits")
    assert robot_env.safety.estopped and truncated and not terminated
    kinds = {i.kind for i in robot_env.safety.interventions}
    assert {"watchdog", "non_finite", "state_limit"} <= kinds
    env.finish()
    (episode,) = env.episodes
    assert len(episode.actions) == steps  # every step the env took is recorded
    assert np.isnan(episode.actions[0][0])  # the policy's NaN, as given
    assert episode.info_arrays()["command"][1].tolist() == [0.0]  # and what was sent
    env.close()


def greeted_client(server: RobotServer) -> socket.socket:
    sock = raw_client(server)
    assert reply(sock).type == "welcome"  # type: ignore[attr-defined]
    return sock


def test_the_server_filters_commands_itself(server: RobotServer) -> None:
    sock = greeted_client(server)
    sock.sendall(encode(Reset(type="reset", seq=1, seed=0)))
    reply(sock)
    for seq, action in ((2, [float("nan")]), (3, [1e300]), (4, [0.5])):
        sock.sendall(encode(Command(type="command", seq=seq, action=action)))
        assert isinstance(reply(sock), Reading)
    kinds = [i.kind for i in server.interventions]
    assert kinds == ["non_finite", "action_bounds"]  # a bad message cannot reach the robot
    assert server.interventions[1].sent == (3.0,)  # brought into the robot's bounds
    sock.close()


def test_a_silent_client_gets_the_safe_action_and_so_does_a_session_end(
    server: RobotServer,
) -> None:
    sock = greeted_client(server)
    sock.sendall(encode(Reset(type="reset", seq=1, seed=0)))
    reply(sock)
    sock.sendall(encode(Command(type="command", seq=2, action=[0.5])))
    reply(sock)
    time.sleep(0.7)  # > 2 watchdog periods of silence
    fired = [i for i in server.interventions if i.kind == "watchdog"]
    assert len(fired) >= 2 and fired[0].sent == (0.0,)
    sock.close()
    deadline = time.perf_counter() + 2
    while not any("session ended" in i.detail for i in server.interventions):
        assert time.perf_counter() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 50_000,  # deep nesting
        b'{"type": "reset", "seq": 1, "seed": ' + b"9" * 5000 + b"}",  # a huge integer
        b'{"type": "reset", "seq": 1, "seed": -1}',  # a seed the robot would refuse
        b"\xff\xfe",  # not UTF-8
    ],
)
def test_no_message_stops_the_server(server: RobotServer, body: bytes) -> None:
    sock = greeted_client(server)
    sock.sendall(frame(body))
    answer = reply(sock)
    assert answer.type == "error"  # type: ignore[attr-defined]
    sock.close()
    robot = RemoteRobot(*server.address, token=TOKEN)  # still serving
    robot.reset(seed=0)
    robot.disconnect()


def test_a_stalled_frame_or_a_silent_hello_closes_the_connection(server: RobotServer) -> None:
    sock = greeted_client(server)
    sock.sendall(b"\x00\x00")  # half a header, then nothing
    sock.settimeout(3.0)
    assert sock.recv(1) == b""
    assert "stalled" in server.rejections[-1].reason
    quiet = socket.create_connection(server.address, timeout=3.0)  # never says hello
    assert quiet.recv(1) == b""
    assert "no hello" in server.rejections[-1].reason
    quiet.close()
    RemoteRobot(*server.address, token=TOKEN).disconnect()  # others get served


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    st.integers(min_value=0, max_value=400),
)
def test_fuzz_deep_and_large_json(inner: object, depth: int) -> None:
    body = ("[" * depth + json.dumps(inner) + "]" * depth).encode()
    try:
        decode(body)
    except ProtocolError:
        pass
