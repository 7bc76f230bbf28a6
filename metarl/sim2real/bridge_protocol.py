"""The wire protocol of the network bridge (``metarl.sim2real.bridge``): its messages,
their encoding and the framing.

Frames: a 4-byte big-endian length and a UTF-8 JSON body, at most ``max_message_bytes``
(``MAX_MESSAGE_BYTES`` by default). Each body is one message, validated against its
schema (the pydantic models below, unknown fields refused), with a ``type``:

- client -> server: ``hello`` (protocol ``version`` and the shared ``token``; the
  first message of a connection), ``reset`` (``seq``, ``seed``), ``command``
  (``seq``, ``action``; answered by the reading right after it, an acknowledgement),
  ``read`` (``seq``: the reading now, at the end of a control period), ``bye``;
- server -> client: ``welcome`` (``version``, the robot's spaces and observation
  names), ``reading`` (``seq`` of the request it answers, observation, reward,
  terminated, truncated, numeric ``info``), ``error`` (``seq`` or null, ``reason``).

``encode`` makes a frame of a message, ``read_frame`` reads one frame's body from a
socket and ``decode`` validates it into a message; each refuses what breaks the protocol
with a ``ProtocolError`` that says how. ``box_spec`` / ``box_from_spec`` carry a
Gymnasium ``Box`` and ``plain_info`` a reading's ``info`` as JSON numbers. Numbers
travel as float64 and arrive bit for bit (JSON holds each in its shortest exact
decimal form), so a robot's measured state loses nothing on the way.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Annotated, Any, Literal

import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "BoxSpec",
    "Bye",
    "Command",
    "Error",
    "Hello",
    "Message",
    "ProtocolError",
    "Read",
    "Reading",
    "Reset",
    "Welcome",
    "box_from_spec",
    "box_spec",
    "decode",
    "encode",
    "plain_info",
    "read_frame",
]

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20
_HEADER = struct.Struct(">I")


class ProtocolError(ValueError):
    """A frame or message that breaks the protocol; the message says how."""


class _Message(BaseModel):
    # NaN and infinities travel as JSON's NaN/Infinity (a faulty sensor's reading is
    # passed on as it is, for the safety layer and the recording to see).
    model_config = ConfigDict(extra="forbid", strict=True, ser_json_inf_nan="constants")


class Hello(_Message):
    type: Literal["hello"]
    version: int
    token: str


class BoxSpec(_Message):
    low: list[float]
    high: list[float]
    shape: list[int]
    dtype: str


class Welcome(_Message):
    type: Literal["welcome"]
    version: int
    observation_space: BoxSpec
    action_space: BoxSpec
    observation_names: list[str] | None = None


class Reset(_Message):
    type: Literal["reset"]
    seq: int = Field(ge=0)
    seed: int | None = Field(default=None, ge=0)


class Read(_Message):
    type: Literal["read"]
    seq: int = Field(ge=0)


class Command(_Message):
    type: Literal["command"]
    seq: int = Field(ge=0)
    action: list[float]


class Reading(_Message):
    type: Literal["reading"]
    seq: int = Field(ge=0)
    observation: list[float]
    reward: float | None = None
    terminated: bool = False
    truncated: bool = False
    info: dict[str, float | list[float]] = Field(default_factory=dict)


class Error(_Message):
    type: Literal["error"]
    seq: int | None = None
    reason: str


class Bye(_Message):
    type: Literal["bye"]


Message = Annotated[
    Hello | Welcome | Reset | Read | Command | Reading | Error | Bye, Field(discriminator="type")
]
_MESSAGE: TypeAdapter[Any] = TypeAdapter(Message)


def encode(message: _Message, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """One frame of ``message``.

    Raises:
        ProtocolError: the frame would exceed ``max_bytes``.
    """
    body = message.model_dump_json().encode()
    if len(body) > max_bytes:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {max_bytes}")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> Any:
    """The message in a frame's ``body``.

    Raises:
        ProtocolError: not UTF-8 JSON, or not a valid message (the reason names the
            field).
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError too
        raise ProtocolError(f"not a JSON message: {str(err)[:200]}") from None
    try:
        return _MESSAGE.validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError(f"invalid message: {where}: {first['msg']}") from None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(
    sock: socket.socket, max_bytes: int = MAX_MESSAGE_BYTES, first: bytes = b""
) -> bytes:
    """The body of the next frame on ``sock``; ``first``: the frame's first bytes, already
    received (a server waiting for a frame to start reads one byte at a time).

    Raises:
        ProtocolError: a length above ``max_bytes`` (the body is not read).
        ConnectionError: the peer closed the connection; ``TimeoutError`` on timeout.
    """
    header = first + _recv_exact(sock, _HEADER.size - len(first))
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {max_bytes}")
    return _recv_exact(sock, size)


def box_spec(space: spaces.Box) -> BoxSpec:
    """``space`` as a message field."""
    return BoxSpec(
        low=[float(x) for x in np.ravel(space.low)],
        high=[float(x) for x in np.ravel(space.high)],
        shape=list(space.shape),
        dtype=str(space.dtype),
    )


def box_from_spec(spec: BoxSpec) -> spaces.Box:
    """The ``Box`` that ``box_spec`` gave ``spec`` of."""
    shape, dtype = tuple(spec.shape), np.dtype(spec.dtype)
    return spaces.Box(
        np.reshape(np.array(spec.low, dtype=dtype), shape),
        np.reshape(np.array(spec.high, dtype=dtype), shape),
        dtype=dtype.type,
    )


def plain_info(info: dict[str, Any]) -> dict[str, float | list[float]]:
    """A reading's ``info`` as JSON numbers: scalars as floats, arrays as flat lists."""
    out: dict[str, float | list[float]] = {}
    for key, value in info.items():
        arr = np.asarray(value, dtype=np.float64)
        out[key] = float(arr) if arr.ndim == 0 else [float(x) for x in arr.ravel()]
    return out
