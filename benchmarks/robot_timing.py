"""Control-rate jitter, round-trip latency and the delay estimate over the network
bridge on loopback (issue 8's measurements).

A simulated robot server (``metarl serve``: HalfCheetah-v5, which never terminates)
runs in its own process; this process drives it through ``RealRobotEnv`` over
``RemoteRobot`` at 50, 100 and 500 Hz with zero commands, and reports the control
periods (jitter = period - nominal), overruns and the round trips of the commands
(send, server steps the simulation, reading back). For scale, the same run measures
a bare loopback echo of a frame of the same size (socket send and receive only).

Then the delay estimate (``estimate_delay``) against the served target's true action
delay: for each true delay, a server with that delay (InvertedPendulum-v5 and
HalfCheetah-v5 with observation noise of std 0.01), excited at 500 Hz over the bridge.

Usage::

    python benchmarks/robot_timing.py [--seconds 10] [--delays 0 1 2 3 5]
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from machine import machine_line, versions_line

from metarl.sim2real.bridge import RemoteRobot
from metarl.sim2real.bridge_protocol import Command, encode, read_frame
from metarl.sim2real.latency import estimate_delay, latency_stats
from metarl.sim2real.robot import RealRobotEnv

TOKEN = "benchmark-token"


class Server:
    """``metarl serve`` of ``target`` in a child process; ``port`` once it listens."""

    def __init__(self, target: dict[str, Any], folder: Path):
        path = folder / f"serve_{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump({"serve": {"target": target, "port": 0}}))
        env = {**os.environ, "METARL_ROBOT_TOKEN": TOKEN}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "metarl.cli", "serve", str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "serving <env> on HOST:PORT"
        self.port = int(line.rsplit(":", 1)[1])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def echo_rtt(steps: int, size: int) -> dict[str, float]:
    """Round trips of a bare loopback echo of ``size``-byte frames (a thread echoes)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def echo() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                conn.sendall(_frame(read_frame(conn)))
        except (ConnectionError, OSError):
            conn.close()

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = b"x" * size
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        client.sendall(_frame(body))
        read_frame(client)
        times.append(time.perf_counter() - start)
    client.close()
    listener.close()
    return latency_stats(times)


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def rates(seconds: float, folder: Path) -> list[dict[str, Any]]:
    server = Server({"env": "HalfCheetah-v5"}, folder)
    rows = []
    try:
        for hz in (50, 100, 500):
            robot = RemoteRobot("127.0.0.1", server.port, TOKEN)
            env = RealRobotEnv(robot, hz=hz)
            env.reset(seed=0)
            zero = np.zeros(env.action_space.shape, env.action_space.dtype)
            steps = int(seconds * hz)
            for _ in range(steps):
                env.step(zero)
            timing = env.timing().to_dict()
            rtt = latency_stats(robot.rtts[1:])  # the first is the reset's
            env.close()
            size = len(encode(Command(type="command", seq=1, action=[0.0] * 6)))
            rows.append({"hz": hz, "steps": steps, "timing": timing, "rtt": rtt, "frame": size})
    finally:
        server.close()
    return rows


def delays(true_delays: list[int], folder: Path) -> list[dict[str, Any]]:
    rows = []
    for env_id in ("InvertedPendulum-v5", "HalfCheetah-v5"):
        for k in true_delays:
            effects = [
                {"name": "action_delay", "steps": k},
                {"name": "observation_noise", "std": 0.01},
            ]
            server = Server({"env": env_id, "effects": effects}, folder)
            try:
                env = RealRobotEnv(RemoteRobot("127.0.0.1", server.port, TOKEN), hz=500)
                estimate = estimate_delay(env, transitions=400, seed=k)
                env.close()
            finally:
                server.close()
            rows.append({"env": env_id, "true": k, **estimate.to_dict()})
    return rows


def report(
    rate_rows: list[dict[str, Any]], echo: dict[str, float], delay_rows: list[dict[str, Any]]
) -> str:
    command = " ".join(["python benchmarks/robot_timing.py", *sys.argv[1:]])
    us = 1e6
    lines = [
        "## Robot bridge: control rate, round trips, delay estimate (issue 8)",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}; loopback TCP, server in its own process",
        f"- versions: {versions_line('mujoco', 'gymnasium', 'pydantic')}",
        "",
        "Control periods and round trips of `RealRobotEnv` over `RemoteRobot` (zero commands "
        "to a served HalfCheetah-v5; jitter = |period - nominal|; round trip = command sent "
        "until its reading is back, the server's simulation step included):",
        "",
        "| rate | steps | period mean | jitter p50 | jitter p99 | jitter max | overruns "
        "| round trip p50 | p90 | p99 | max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rate_rows:
        t, rtt = r["timing"], r["rtt"]
        lines.append(
            f"| {r['hz']} Hz | {r['steps']} | {t['period_mean'] * 1e3:.3f} ms "
            f"| {t['jitter_p50'] * us:.1f} us | {t['jitter_p99'] * us:.0f} us "
            f"| {t['jitter_max'] * us:.0f} us | {t['overruns']} "
            f"| {rtt['p50'] * us:.0f} us | {rtt['p90'] * us:.0f} us | {rtt['p99'] * us:.0f} us "
            f"| {rtt['max'] * us:.0f} us |"
        )
    lines += [
        "",
        f"Reference in the same run: a bare loopback echo of {rate_rows[0]['frame']}-byte frames "
        f"(socket only): p50 {echo['p50'] * us:.0f} us, p99 {echo['p99'] * us:.0f} us; the "
        f"bridge's median round trip at 100 Hz is "
        f"{rate_rows[1]['rtt']['p50'] / echo['p50']:.1f}x it.",
        "",
        "Delay estimate (`estimate_delay`, 400 steps of white excitation at 500 Hz over the "
        "bridge, observation noise std 0.01) against the served target's true action delay:",
        "",
        "| target | true delay | estimate | onset margin |",
        "|---|---:|---:|---:|",
    ]
    for r in delay_rows:
        lines.append(f"| {r['env']} | {r['true']} | {r['steps']} | {r['margin']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per control rate")
    parser.add_argument("--delays", nargs="+", type=int, default=[0, 1, 2, 3, 5])
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error("--seconds must be positive")
    if min(args.delays) < 0:
        parser.error("--delays must be integers >= 0")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate_rows = rates(args.seconds, folder)
        echo = echo_rtt(2000, rate_rows[0]["frame"])
        delay_rows = delays(args.delays, folder)
    print(report(rate_rows, echo, delay_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
