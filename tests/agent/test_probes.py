"""The health probes of the Linux agent (``controller.agent.linux.probes``): which DIPs a host
probes, the states their outcomes give, and real TCP and HTTP probes against local servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from controller import protocol
from controller.agent.linux.probes import (
    Connect,
    ProbeRunner,
    Target,
    Tracker,
    probe,
    targets_from_objects,
)
from controller.agent.linux.runner import connect_in
from tests.support.processes import stop_process

HOST = "server-1"


def probe_body(**members: Any) -> dict[str, Any]:
    return {
        "protocol": "Http",
        "port": 8080,
        "requestPath": "/health",
        "intervalInSeconds": 5,
        "numberOfProbes": 2,
        "dips": [
            {"ipConfiguration": "ip-a", "ip": "192.0.2.17", "host": HOST},
            {"ipConfiguration": "ip-b", "ip": "192.0.2.18", "host": "server-2"},
        ],
    } | members


def target(**members: Any) -> Target:
    values: dict[str, Any] = {
        "probe": "p", "dip": "ip-a", "address": "127.0.0.1", "kind": "tcp", "port": 1,
        "path": "/", "interval": 5, "threshold": 2,
    } | members  # fmt: skip
    return Target(**values)


# ---------------------------------------------------------------- what to probe


def test_a_host_probes_only_its_own_dips() -> None:
    targets, problems = targets_from_objects({"probe/p": probe_body(), "lbRule/r": {}}, HOST)
    assert problems == []
    assert targets == [
        Target("p", "ip-a", "192.0.2.17", "http", 8080, "/health", 5, 2),
    ]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"protocol": "Udp"}, "protocol"),
        ({"port": 0}, "port"),
        ({"requestPath": "health"}, "requestPath"),
        ({"requestPath": "/a b"}, "requestPath"),
    ],
)
def test_a_probe_that_cannot_run_is_reported(members: dict[str, Any], message: str) -> None:
    targets, problems = targets_from_objects({"probe/p": probe_body(**members)}, HOST)
    assert targets == []
    assert [key for key, _ in problems] == ["probe/p"]
    assert message in problems[0][1]


def test_intervals_and_thresholds_have_floors() -> None:
    body = probe_body(intervalInSeconds=0, numberOfProbes=0)
    (found,), _ = targets_from_objects({"probe/p": body}, HOST)
    assert (found.interval, found.threshold) == (1, 1)


# ---------------------------------------------------------------- states


def test_a_new_dip_is_down_until_its_first_success() -> None:
    tracker = Tracker()
    tracker.keep([target()])
    assert tracker.states() == {("p", "ip-a"): protocol.DOWN}
    assert not tracker.record(target(), succeeded=False), "still down: no change"
    assert tracker.record(target(), succeeded=True)
    assert tracker.states() == {("p", "ip-a"): protocol.UP}


def test_a_dip_goes_down_after_threshold_failures_in_a_row() -> None:
    tracker, probed = Tracker(), target(threshold=3)
    tracker.record(probed, succeeded=True)
    changes = [tracker.record(probed, succeeded=ok) for ok in (False, False, True, False, False)]
    assert changes == [False, False, False, False, False], "a success resets the count"
    assert tracker.record(probed, succeeded=False)
    assert tracker.states()[probed.key] == protocol.DOWN


def test_pairs_no_longer_probed_are_forgotten() -> None:
    tracker = Tracker()
    tracker.keep([target(), target(dip="ip-b")])
    tracker.keep([target(dip="ip-b")])
    assert list(tracker.states()) == [("p", "ip-b")]


# ---------------------------------------------------------------- real probes

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    listening = await asyncio.start_server(handler, "127.0.0.1", 0)
    async with listening:
        yield listening.sockets[0].getsockname()[1]


def answering(status: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        ok = request.startswith(b"GET /health HTTP/1.0\r\n")
        writer.write(status if ok else b"HTTP/1.0 404 Not Found\r\n\r\n")
        await writer.drain()
        writer.close()

    return handle


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)
    writer.close()


async def run_probe(kind: str, handler: Handler | None) -> bool:
    if handler is None:  # nothing listens: a port just released
        async with server(silent) as port:
            pass
        return await probe(target(kind=kind, port=port), asyncio.open_connection, 0.5)
    async with server(handler) as port:
        found = target(kind=kind, port=port, path="/health")
        return await probe(found, asyncio.open_connection, 0.5)


@pytest.mark.parametrize(
    ("kind", "handler", "expected"),
    [
        ("tcp", silent, True),
        ("tcp", None, False),
        ("http", answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), True),
        ("http", answering(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"), False),
        ("http", answering(b"garbage\r\n"), False),
        ("http", silent, False),
        ("http", None, False),
    ],
)
def test_probes_against_real_servers(kind: str, handler: Handler | None, expected: bool) -> None:
    assert asyncio.run(run_probe(kind, handler)) is expected


# ---------------------------------------------------------------- from a namespace

HEALTH_SERVER = """
import http.server
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Health)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.mark.dataplane
def test_a_probe_leaves_from_the_namespace_it_is_given() -> None:
    """A server listening on loopback inside a namespace answers a probe made in that
    namespace; from this namespace the same address and port reach nothing of it."""
    name = f"sdnc-test-probe-{uuid.uuid4().hex[:6]}"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(subprocess.run, ["ip", "netns", "del", name], check=False)
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        command = ["ip", "netns", "exec", name, sys.executable, "-c", HEALTH_SERVER]
        served = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        cleanup.callback(stop_process, served)
        assert served.stdout is not None
        port = int(served.stdout.readline())

        def connect(namespace: str) -> Connect:
            return lambda address, port: connect_in(namespace, address, port)

        health = target(kind="http", port=port, path="/health")
        assert asyncio.run(probe(health, connect(name), 2.0))
        missing = target(kind="http", port=port, path="/missing")
        assert not asyncio.run(probe(missing, connect(name), 2.0))
        assert not asyncio.run(probe(health, connect(""), 2.0)) or _listening_here(port)


def _listening_here(port: int) -> bool:
    """Something of this namespace happens to listen on ``port`` (then that probe says
    nothing about namespaces)."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- the runner


async def watch_a_dip_come_and_go() -> list[dict[tuple[str, str], str]]:
    seen: list[dict[tuple[str, str], str]] = []
    changed = asyncio.Event()
    namespaces: list[str] = []

    async def connect(namespace: str, address: str, port: int) -> Any:
        namespaces.append(namespace)
        return await asyncio.open_connection(address, port)

    runner = ProbeRunner("server-resource", connect, lambda address: "sdnc-rd-x")

    async def report() -> None:
        seen.append(runner.tracker.states())
        changed.set()

    listening = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    dip = {"ipConfiguration": "ip-a", "ip": "127.0.0.1", "host": HOST}
    body = probe_body(protocol="Tcp", port=port, intervalInSeconds=1, numberOfProbes=1, dips=[dip])
    seen.append(runner.prober({f"host/{HOST}": {}, "probe/p": body}))
    task = asyncio.create_task(runner.run(report))
    try:
        await asyncio.wait_for(changed.wait(), 5)
        changed.clear()
        listening.close()
        await asyncio.wait_for(changed.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert set(namespaces) == {"sdnc-rd-x"}
    return seen


def test_the_runner_reports_a_dip_up_after_its_first_probe_and_down_when_it_fails() -> None:
    states = [found[("p", "ip-a")] for found in asyncio.run(watch_a_dip_come_and_go())]
    assert states == [protocol.DOWN, protocol.UP, protocol.DOWN]


def test_a_dip_not_in_the_kernel_stays_down() -> None:
    async def unreachable(namespace: str, address: str, port: int) -> Any:
        raise AssertionError("no namespace: nothing to connect from")

    runner = ProbeRunner(HOST, unreachable, lambda address: None)
    runner.prober({"probe/p": probe_body(protocol="Tcp")})
    assert not asyncio.run(runner.round(0.0))
    assert runner.tracker.states() == {("p", "ip-a"): protocol.DOWN}
