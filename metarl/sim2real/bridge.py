"""The network bridge: a robot served over TCP (``RobotServer``) and reached as a
``Robot`` (``RemoteRobot``).

They speak the protocol of ``metarl.sim2real.bridge_protocol``: length-prefixed JSON
frames, one validated message each (``hello``, ``reset``, ``command``, ``read``,
``bye`` from the client; ``welcome``, ``reading``, ``error`` from the server).

The server rejects, with a logged reason (``RobotServer.rejections`` and the
``metarl.sim2real.bridge`` logger), and answers ``error``: a body that is not JSON or
not a valid message, a message before the handshake, a wrong version or token (the
token is compared in constant time; the connection is closed), and a ``seq`` not above
the last one accepted (out of order or replayed: not executed). An oversized frame
closes the connection (the stream cannot be trusted after it). The server listens on
the loopback interface unless given another host, and serves one client at a time.

The server keeps the robot safe by itself (``RobotServer``: its own safety layer on
every command, the safe action on silence and at a session's end), since a network
cannot be trusted to deliver the client's.

``RemoteRobot`` is the env side: each ``send_command`` waits for its acknowledgement
and measures the round trip (``info["bridge.rtt_s"]``), ``read`` asks for the state at
the end of the control period; a closed socket, a
timeout or an ``error`` reply raises ``RobotDisconnected`` (``RealRobotEnv`` ends the
episode cleanly, flagged); ``connect`` reconnects, retrying ``connect_attempts`` times.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from metarl.checks import check_number
from metarl.sim2real.bridge_protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Bye,
    Command,
    Error,
    Hello,
    Message,
    ProtocolError,
    Read,
    Reading,
    Reset,
    Welcome,
    box_from_spec,
    box_spec,
    decode,
    encode,
    plain_info,
    read_frame,
)
from metarl.sim2real.robot import Robot, RobotDisconnected, RobotReading
from metarl.sim2real.safety import Intervention, SafetyConfig, SafetyLayer

__all__ = ["Rejection", "RemoteRobot", "RobotServer"]

log = logging.getLogger("metarl.sim2real.bridge")


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class Rejection:
    """A message the server refused: when, from whom, why."""

    time: float
    peer: str
    reason: str


class RobotServer:
    """Serves ``robot`` to one client at a time (module docstring).

    The server keeps the robot safe on its own, whatever the network does: every
    command passes its own ``SafetyLayer`` (``safety``: by default the robot's action
    bounds, NaN and infinite values replaced by the safe action), and when no message
    comes for ``watchdog_s`` during an episode, or a session ends, it sends the safe
    action itself (each time recorded in ``interventions``). A frame that stalls half
    way for ``frame_timeout_s`` (or a client that does not say hello within it) closes
    the connection, so a slow client cannot hold the robot.

    Args:
        robot: the robot (a ``SimulatedRobot`` in sim-to-sim work).
        token: the shared secret a client must present.
        host: the interface to listen on (default loopback only).
        port: 0 picks a free port (``address`` says which).
        safety: the server's own safety layer (its ``watchdog_s`` is not used: see
            ``watchdog_s``).
        watchdog_s: silence during an episode after which the safe action is sent.

    Raises:
        ValueError: an empty token, non-positive timeouts, or an invalid safety config.
    """

    def __init__(
        self,
        robot: Robot,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        safety: SafetyConfig | None = None,
        watchdog_s: float = 0.5,
        frame_timeout_s: float = 2.0,
    ):
        if not token:
            raise ValueError("RobotServer.token must be a non-empty shared secret")
        for name, value in (("watchdog_s", watchdog_s), ("frame_timeout_s", frame_timeout_s)):
            check_number(f"RobotServer.{name}", value, gt=0)
        self.robot = robot
        self._token = token.encode()
        self.max_message_bytes = max_message_bytes
        self.watchdog_s = float(watchdog_s)
        self.frame_timeout_s = float(frame_timeout_s)
        self.safety = SafetyLayer(
            safety or SafetyConfig(),
            robot.action_space,
            int(np.prod(robot.observation_space.shape)),
            getattr(robot, "observation_names", None),
        )
        self.rejections: list[Rejection] = []
        self.commands = 0
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.1)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._client: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="metarl-robot-server", daemon=True)
        self._welcome = Welcome(
            type="welcome",
            version=PROTOCOL_VERSION,
            observation_space=box_spec(robot.observation_space),
            action_space=box_spec(robot.action_space),
            observation_names=getattr(robot, "observation_names", None),
        )
        self._obs: np.ndarray | None = None  # the latest observation, for state limits

    @property
    def interventions(self) -> list[Intervention]:
        """Every change the server's safety layer made (its watchdog included)."""
        return self.safety.interventions

    def start(self) -> RobotServer:
        self.robot.connect()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: the current client's connection is cut (what a crashed or
        killed server does to its client); the robot gets the safe action."""
        self._stop.set()
        client = self._client
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=2.0)
        self._sock.close()

    def __enter__(self) -> RobotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _reject(self, peer: str, reason: str) -> None:
        self.rejections.append(Rejection(time.time(), peer, reason))
        log.warning("bridge: rejected from %s: %s", peer, reason)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer = f"{addr[0]}:{addr[1]}"
            self._client = client
            episode = [False]
            try:
                self._session(client, peer, episode)
            except Exception as err:  # one client's failure must not stop the server
                self._reject(peer, f"session ended by {type(err).__name__}: {err}")
            finally:
                self._client = None
                client.close()
                if episode[0]:
                    self._safe_stop("session ended")
                self.safety.end_episode()

    def _safe_stop(self, cause: str) -> None:
        """Send the safe action to the robot (a silent client, a session's end)."""
        command = self.safety.record_watchdog(self.watchdog_s, cause)
        try:
            self.robot.send_command(command)
        except Exception as err:  # the robot itself failed: nothing more to do here
            log.error("bridge: the safe action could not be sent (%s: %s)", cause, err)

    def _send(self, client: socket.socket, message: Message) -> None:
        client.sendall(encode(message, self.max_message_bytes))

    def _next_frame(self, client: socket.socket, greeted: bool, episode: list[bool]) -> bytes:
        """The next frame's body. While waiting for a frame to start in an episode, each
        ``watchdog_s`` of silence sends the safe action; a frame (or, before the
        handshake, the first one) must then arrive within ``frame_timeout_s``.

        Raises:
            ProtocolError: an oversized or stalled frame; ConnectionError: closed.
        """
        while True:
            client.settimeout(self.watchdog_s if greeted else self.frame_timeout_s)
            try:
                first = client.recv(1)
            except TimeoutError:
                if not greeted:
                    raise ProtocolError("no hello within the frame timeout") from None
                if episode[0]:
                    self._safe_stop(f"no command for {self.watchdog_s:g} s")
                continue
            if not first:
                raise ConnectionError("connection closed")
            break
        client.settimeout(self.frame_timeout_s)
        try:
            return read_frame(client, self.max_message_bytes, first)
        except TimeoutError:
            raise ProtocolError(f"a frame stalled for {self.frame_timeout_s:g} s") from None

    def _session(self, client: socket.socket, peer: str, episode: list[bool]) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        greeted, last_seq = False, -1
        while not self._stop.is_set():
            try:
                body = self._next_frame(client, greeted, episode)
            except ProtocolError as err:
                self._reject(peer, f"{err}; connection closed")
                return
            except (ConnectionError, OSError):
                return
            try:
                message = decode(body)
            except ProtocolError as err:
                self._reject(peer, str(err))
                self._send(client, Error(type="error", reason=str(err)))
                continue
            if not greeted:
                if not isinstance(message, Hello):
                    reason = f"{message.type} before the handshake (hello); connection closed"
                elif message.version != PROTOCOL_VERSION:
                    reason = (
                        f"protocol version {message.version}, this server speaks "
                        f"{PROTOCOL_VERSION}; connection closed"
                    )
                elif not hmac.compare_digest(message.token.encode(), self._token):
                    reason = "wrong token; connection closed"
                else:
                    greeted = True
                    self._send(client, self._welcome)
                    continue
                self._reject(peer, reason)
                self._send(client, Error(type="error", reason=reason))
                return
            if isinstance(message, Bye):
                return
            if not isinstance(message, Reset | Read | Command):
                reason = f"a client does not send {message.type}"
                self._reject(peer, reason)
                self._send(client, Error(type="error", reason=reason))
                continue
            if message.seq <= last_seq:
                reason = f"seq {message.seq} not above {last_seq} (out of order): not executed"
                self._reject(peer, reason)
                self._send(client, Error(type="error", seq=message.seq, reason=reason))
                continue
            last_seq = message.seq
            try:
                reading = self._execute(message, episode)
            except Exception as err:  # the robot refused: say why, keep serving
                reason = f"{type(err).__name__}: {err}"
                self._reject(peer, reason)
                self._send(client, Error(type="error", seq=message.seq, reason=reason))
                continue
            self._send(
                client,
                Reading(
                    type="reading",
                    seq=message.seq,
                    observation=[float(x) for x in np.ravel(reading.observation)],
                    reward=None if reading.reward is None else float(reading.reward),
                    terminated=bool(reading.terminated),
                    truncated=bool(reading.truncated),
                    info=plain_info(reading.info),
                ),
            )

    def _execute(self, message: Reset | Read | Command, episode: list[bool]) -> RobotReading:
        if isinstance(message, Reset):
            reading = self.robot.reset(message.seed)
            self.safety.start_episode()
            episode[0] = True
        elif isinstance(message, Read):
            reading = self.robot.read()
        else:
            if self._obs is None:
                raise RuntimeError("command before the first reset")
            shape = self.robot.action_space.shape
            if len(message.action) != int(np.prod(shape)):
                raise ValueError(
                    f"command of {len(message.action)} numbers; the robot takes {shape}"
                )
            action = np.asarray(message.action, dtype=np.float64).reshape(shape)
            sent, _, _ = self.safety.filter(action, self._obs)
            self.robot.send_command(sent)
            self.commands += 1
            reading = self.robot.read()
            if reading.terminated or reading.truncated:
                episode[0] = False
                self.safety.end_episode()
        self._obs = np.asarray(reading.observation, dtype=np.float64)
        return reading


# --------------------------------------------------------------------------- client


class RemoteRobot:
    """A ``Robot`` served by a ``RobotServer`` at ``host:port`` (module docstring).
    Connects (the handshake gives the spaces) when built.

    Raises:
        RobotDisconnected: no server answers, or it refuses the handshake (its reason).
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        timeout_s: float = 1.0,
        connect_attempts: int = 3,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        self.host, self.port, self._token = host, port, token
        self.timeout_s = timeout_s
        self.connect_attempts = connect_attempts
        self.max_message_bytes = max_message_bytes
        self._sock: socket.socket | None = None
        self._seq = 0
        self._reading: RobotReading | None = None
        self.rtts: list[float] = []
        """Round trips of the resets and commands (a command: sent until acknowledged)."""
        self.last_rtt_s = 0.0
        welcome = self._open()
        self.observation_space = box_from_spec(welcome.observation_space)
        self.action_space = box_from_spec(welcome.action_space)
        self.observation_names = welcome.observation_names

    def _open(self) -> Welcome:
        last: Exception | None = None
        for attempt in range(self.connect_attempts):
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(
                    encode(Hello(type="hello", version=PROTOCOL_VERSION, token=self._token))
                )
                reply = decode(read_frame(sock, self.max_message_bytes))
            except (OSError, ConnectionError, ProtocolError) as err:
                last = err
                time.sleep(0.05 * 2**attempt)
                continue
            if isinstance(reply, Error):
                sock.close()
                raise RobotDisconnected(f"the robot server refused: {reply.reason}")
            if not isinstance(reply, Welcome):
                sock.close()
                raise RobotDisconnected(f"the robot server answered {reply.type}, not welcome")
            self._sock = sock
            return reply
        raise RobotDisconnected(
            f"no robot server at {self.host}:{self.port} after {self.connect_attempts} "
            f"attempts ({last})"
        )

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        if self._sock is None:
            self._open()

    def _request(self, message: Reset | Read | Command) -> RobotReading:
        if self._sock is None:
            raise RobotDisconnected("RemoteRobot: not connected")
        start = time.perf_counter()
        try:
            self._sock.sendall(encode(message, self.max_message_bytes))
            reply = decode(read_frame(self._sock, self.max_message_bytes))
        except (OSError, ConnectionError, ProtocolError) as err:
            self._close()
            raise RobotDisconnected(f"RemoteRobot: link lost ({err})") from None
        rtt = time.perf_counter() - start
        if isinstance(reply, Error):
            raise RobotDisconnected(f"RemoteRobot: the server refused: {reply.reason}")
        if not isinstance(reply, Reading) or reply.seq != message.seq:
            self._close()
            got = reply.type if not isinstance(reply, Reading) else f"seq {reply.seq}"
            raise RobotDisconnected(
                f"RemoteRobot: expected the reading of {message.seq}, got {got}"
            )
        self.rtts.append(rtt)
        info: dict[str, Any] = {k: np.asarray(v) for k, v in reply.info.items()}
        info["bridge.rtt_s"] = rtt
        obs = np.reshape(np.array(reply.observation), self.observation_space.shape)
        return RobotReading(obs, reply.reward, reply.terminated, reply.truncated, info)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def reset(self, seed: int | None = None) -> RobotReading:
        self._reading = self._request(Reset(type="reset", seq=self._next_seq(), seed=seed))
        return self._reading

    def send_command(self, action: np.ndarray) -> None:
        """Send a command and wait for the server's acknowledgement (a reading taken
        right after the command was applied; ``last_rtt_s`` is its round trip)."""
        values = [float(x) for x in np.ravel(action)]
        self._request(Command(type="command", seq=self._next_seq(), action=values))
        self.last_rtt_s = self.rtts[-1]

    def read(self) -> RobotReading:
        """A fresh reading (a ``read`` request: the robot's state now, at the end of
        the control period), with the command's round trip in ``bridge.rtt_s``."""
        if self._reading is None:
            raise RuntimeError("RemoteRobot.read before reset")
        reading = self._request(Read(type="read", seq=self._next_seq()))
        self.rtts.pop()  # the read's own round trip is not the command's
        reading.info["bridge.rtt_s"] = self.last_rtt_s
        self._reading = reading
        return reading

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(encode(Bye(type="bye")))
            except OSError:
                pass
        self._close()
