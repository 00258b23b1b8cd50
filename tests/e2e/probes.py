"""Real traffic between endpoint namespaces: TCP listeners and probes, ping, iperf3; and the
timings the test measures (printed at the end of the run)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tests.e2e.netns import in_ns, run
from tests.support.processes import stop_process

# What the tests measured, by what it is, reported at the end of the session.
TIMINGS: dict[str, list[str]] = {}

# Accepts on every port given, prints "port peer" per connection, closes it.
LISTENER = """
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, peer = s.accept(); print(port, peer[0], flush=True); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Connects to host:port until the outcome is the one wanted (1: connected, 0: not), then
# prints the CLOCK_MONOTONIC time of that attempt's start (the same clock as the test's).
PROBE = """
import socket, sys, time
host, port, want, until = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4])
while time.monotonic() < until:
    start = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=0.2).close(); ok = True
    except OSError:
        ok = False
    if ok == want:
        print(start); sys.exit(0)
    time.sleep(max(0.0, 0.02 - (time.monotonic() - start)))
sys.exit(1)
"""


def record(what: str, seconds: float) -> None:
    note(what, f"{seconds * 1000:.0f} ms")


def note(what: str, value: str) -> None:
    TIMINGS.setdefault(what, []).append(value)


@contextmanager
def listening(namespace: str, ports: Sequence[int]) -> Iterator[subprocess.Popen[str]]:
    """TCP listeners on ``ports`` inside ``namespace``; its stdout lists connections."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", LISTENER, *map(str, ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", line + process.stdout.read()
        yield process
    finally:
        stop_process(process)


def connections(listener: subprocess.Popen[str]) -> list[str]:
    """What ``listener`` accepted so far (it is stopped to read them)."""
    listener.kill()
    assert listener.stdout is not None
    return listener.stdout.read().split("\n")[:-1]


def connects(namespace: str, address: str, port: int) -> bool:
    """Whether one TCP connection from ``namespace`` to ``address:port`` succeeds (1 s)."""
    result = run(
        "ip", "netns", "exec", namespace, "nc", "-z", "-w", "1", address, str(port), check=False
    )
    return result.returncode == 0


def first_time(
    namespace: str, address: str, port: int, *, connected: bool, within: float = 10.0
) -> subprocess.Popen[str]:
    """Start probing ``address:port`` from ``namespace`` until connecting succeeds
    (``connected``) or fails; ``probe_time`` reads when."""
    until = time.monotonic() + within
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            "-c",
            PROBE,
            address,
            str(port),
            "1" if connected else "0",
            f"{until:.3f}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def probe_time(probe: subprocess.Popen[str]) -> float | None:
    out, _ = probe.communicate(timeout=30)
    return float(out.strip()) if probe.returncode == 0 else None


@contextmanager
def pinging(
    namespace: str, address: str, *, count: int, interval: float = 0.01
) -> Iterator[subprocess.Popen[str]]:
    """A ping running in the background; ``ping_result`` waits for it."""
    process = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            "ping",
            "-n",
            "-q",
            "-c",
            str(count),
            "-i",
            f"{interval:g}",
            "-W",
            "1",
            address,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        stop_process(process)


def ping_result(process: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, int]:
    """(transmitted, received) of a finished ping."""
    out, _ = process.communicate(timeout=timeout)
    match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert match is not None, out
    return int(match.group(1)), int(match.group(2))


def first_ping(namespace: str, address: str, within: float = 30.0) -> float:
    """Ping ``address`` from ``namespace`` (which may not exist yet) until a reply comes;
    the monotonic time the successful attempt started."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        start = time.monotonic()
        result = run(
            "ip",
            "netns",
            "exec",
            namespace,
            "ping",
            "-n",
            "-q",
            "-c",
            "1",
            "-W",
            "0.2",
            address,
            check=False,
        )
        if result.returncode == 0:
            return start
        time.sleep(max(0.0, 0.02 - (time.monotonic() - start)))
    raise AssertionError(f"no ping from {namespace} to {address} within {within} s")


def iperf_mbps(server_ns: str, server_ip: str, client_ns: str, seconds: int = 4) -> float:
    """Throughput of a TCP stream from ``client_ns`` to ``server_ns`` in Mbit/s, as the
    receiver counted it (the first second, slow start, is omitted)."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-B", server_ip, "-p", "5201"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while "5201" not in in_ns(server_ns, "ss", "-Hltn", "sport = :5201"):
            assert time.monotonic() < deadline, "the iperf3 server did not start"
            time.sleep(0.05)
        out = in_ns(
            client_ns,
            "iperf3",
            "-c",
            server_ip,
            "-p",
            "5201",
            "-t",
            str(seconds),
            "-O",
            "1",
            "-J",
            timeout=seconds + 30,
        )
    finally:
        stop_process(server)
    report = json.loads(out)
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6
