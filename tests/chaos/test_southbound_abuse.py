"""Chaos on the agent channel: abusive connections against a real controller over real
sockets (loopback), while a healthy agent -- the real ``AgentSession`` -- stays connected
throughout.

The abuse: bad tokens, a NUL in the URL, malformed frames (``{oops``, binary garbage, wrong
types), negative and overflowing revisions in the hello and in acks, acks ahead of what was
sent, oversized frames, huge failure lists, unknown message types, and a flood of connects
(bad ones and valid ones superseding each other). After each case the healthy agent's next
report is in the database and its server shows ``configurationState`` ``Success`` through the
NBI; every abusive connection that got past authentication received an ``error`` message and a
1008 close; the controller logged no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from websockets.exceptions import ConnectionClosed

from controller import protocol
from controller.agent.session import AgentSession
from controller.settings import Settings
from controller.store.database import Database
from tests.support.figures import Figures
from tests.support.flood import flood_from_another_process
from tests.support.nbi import get, props, put
from tests.support.refusals import raw_handshake, refused_with, server_status, tracebacks
from tests.support.southbound import (
    BLUE_WEB,
    FAST,
    PROVIDER,
    Agents,
    Fabric,
    InProcessController,
    applied,
    build_fabric,
    channel,
    eventually,
    in_process_controller,
    placed_nic,
    put_waiting,
    receive,
    revision_of,
    say_hello,
    tokens,
)

CHANNEL = "/southbound/v1/servers/{}/channel"
B1_MAC = "00155D000B01"


@dataclass
class Arena:
    controller: InProcessController
    database: Database
    fabric: Fabric
    tokens: dict[str, str]
    healthy: AgentSession
    moves: int = 0

    async def bad_handshake(self, server_id: bytes, authorization: bytes) -> int:
        path = CHANNEL.format(server_id.decode("latin-1")).encode("latin-1")
        return await raw_handshake(
            self.controller.base_url, path, [(b"Authorization", authorization)]
        )

    async def violate(self, frame: bytes | str, code: str, *, hello: bool = True) -> None:
        """Connect as host A, say hello (or not), send ``frame``: the controller must answer
        ``code`` and close with 1008."""
        async with channel(self.controller.base_url, "hostA", self.tokens["hostA"]) as ws:
            if hello:
                await say_hello(ws, "hostA", 0)
                assert (await receive(ws))["type"] == protocol.SNAPSHOT
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)
            await refused_with(ws, code)
            assert ws.close_code == protocol.POLICY_VIOLATION

    async def assert_healthy(self) -> None:
        """The healthy agent's next report reaches the database, and the NBI shows its
        server ``Success``."""
        self.moves += 1
        address = f"24.30.1.{20 + self.moves % 2}"
        await put(
            self.controller.http,
            "/networkInterfaces/b1",
            placed_nic("hostB", BLUE_WEB, address, B1_MAC),
        )
        revision = await revision_of(self.database)
        server = self.fabric.servers["hostB"]

        async def reported() -> bool:
            row = await server_status(self.database, server)
            return row is not None and row.connected and row.applied_revision >= revision

        await eventually(reported, 10, "the healthy agent's report reaching the database")
        resource = await get(self.controller.http, "/servers/hostB")
        assert props(resource)["configurationState"]["status"] == "Success"


Case = Callable[[Arena], Awaitable[None]]


def _ack(revision: object, failures: object = ()) -> bytes:
    return protocol.encode({"type": protocol.ACK, "revision": revision, "failures": failures})


def _failure(n: int) -> dict[str, str]:
    return {"key": f"endpoint/{n}", "code": "PolicyConfigurationFailure", "message": "no"}


async def _bad_tokens(arena: Arena) -> None:
    token_b = arena.tokens["hostB"].encode()
    for server_id, authorization in [
        (b"hostA", b"Bearer wrong"),
        (b"hostA", b"Bearer " + token_b),  # another server's token
        (b"hostA", b"Bearer \xc3\xa9\xff"),
        (b"hostA", b"Bearer " + b"A" * 5000),
        (b"hostZ", b"Bearer " + token_b),  # no such server
        (b"hostA", b"Basic " + token_b),
    ]:
        assert await arena.bad_handshake(server_id, authorization) == 403, authorization[:20]


async def _nul_in_url(arena: Arena) -> None:
    token = b"Bearer " + arena.tokens["hostA"].encode()
    assert await arena.bad_handshake(b"%00x", token) == 403
    assert await arena.bad_handshake(b"host%00A", token) == 403


async def _ack_ahead(arena: Arena) -> None:
    async with channel(arena.controller.base_url, "hostA", arena.tokens["hostA"]) as ws:
        await say_hello(ws, "hostA", 0)
        snapshot = await receive(ws)
        await ws.send(_ack(snapshot["revision"] + 1000))
        await refused_with(ws, protocol.BAD_MESSAGE)
        assert ws.close_code == protocol.POLICY_VIOLATION


def _violation(frame: bytes | str, code: str = protocol.BAD_MESSAGE, *, hello: bool = True) -> Case:
    async def case(arena: Arena) -> None:
        await arena.violate(frame, code, hello=hello)

    return case


def _hello_with(**members: object) -> bytes:
    return protocol.encode(protocol.hello("hostA", 0) | members)


def _bad_hello(frame: bytes) -> Case:
    return _violation(frame, protocol.BAD_HELLO, hello=False)


OVERSIZED = b" " * (protocol.MAX_FRAME_BYTES + 1)
TOO_MANY_FAILURES = [_failure(n) for n in range(protocol.MAX_FAILURES + 1)]

CASES: list[tuple[str, Case]] = [
    ("bad tokens", _bad_tokens),
    ("NUL in the URL", _nul_in_url),
    ("{oops", _violation(b"{oops")),
    ("binary garbage", _violation(b"\x00\xff\xfe\x9c\x01garbage")),
    ("text garbage", _violation("\u0000not json at all")),
    ("not an object", _violation(b"[1, 2]")),
    ("unknown type", _violation(b'{"type": "takeover"}')),
    ("revision as text", _violation(_ack("12"))),
    ("failures not a list", _violation(_ack(1, {"key": "x"}))),
    ("negative revision", _violation(_ack(-5))),
    ("overflowing ack revision", _violation(_ack(2**63))),
    ("ack ahead of what was sent", _ack_ahead),
    ("oversized frame", _violation(OVERSIZED, protocol.MESSAGE_TOO_LARGE)),
    ("huge failure list", _violation(_ack(1, TOO_MANY_FAILURES))),
    ("overflowing hello revision", _bad_hello(_hello_with(appliedRevision=2**63))),
    ("negative hello revision", _bad_hello(_hello_with(appliedRevision=-1))),
    ("made-up hello revision", _bad_hello(_hello_with(appliedRevision=10**12))),
    ("garbage instead of hello", _bad_hello(b"{oops")),
]


@pytest.fixture
async def arena(database_url: str, database: Database) -> AsyncIterator[Arena]:
    settings = Settings(database_url=database_url, **FAST)
    async with in_process_controller(settings) as controller:
        fabric = await build_fabric(controller.http)
        agent_tokens = await tokens(database)
        agents = Agents([controller.base_url])
        try:
            healthy = agents.start(
                "hostB", agent_tokens["hostB"], provider_address=PROVIDER["hostB"]
            )
            await applied(healthy, await revision_of(database))
            arena = Arena(controller, database, fabric, agent_tokens, healthy)
            await arena.assert_healthy()
            yield arena
        finally:
            await agents.close()


async def test_abuse_of_the_channel_leaves_a_healthy_agent_alone(
    arena: Arena, caplog: pytest.LogCaptureFixture, figures: Figures
) -> None:
    started = time.monotonic()
    for name, case in CASES:
        await case(arena)
        await arena.assert_healthy()
        assert tracebacks(caplog.records) == [], name
    assert arena.healthy.stats.connects == 1  # never dropped
    assert arena.healthy.stats.refusals == 0
    figures.record("cases run", len(CASES))
    figures.record("time for all cases", time.monotonic() - started, "s")
    figures.record("tracebacks seen", len(tracebacks(caplog.records)))
    figures.record("healthy agent status", "Success")


async def test_a_flood_of_connects_leaves_a_healthy_agent_alone(
    arena: Arena, caplog: pytest.LogCaptureFixture, figures: Figures
) -> None:
    servers = arena.controller.southbound.servers
    queries = servers.queries
    attempts = 400
    moves = itertools.cycle(range(22, 250))

    async def change_healthy_host() -> float:
        """Change the healthy host and wait until it applied the change (?wait=applied)."""
        began = time.monotonic()
        nic = placed_nic("hostB", BLUE_WEB, f"24.30.1.{next(moves)}", B1_MAC)
        response = await put_waiting(arena.controller.http, "/networkInterfaces/b1", nic)
        assert response.status_code == 200, response.text
        assert response.headers["x-sdnc-applied"] == "true"
        return time.monotonic() - began

    quiet = min([await change_healthy_host() for _ in range(3)])
    # The flood's clients run in a process of their own: what the healthy host sees is the
    # controller's doing, not the clients' share of this event loop.
    base_url, token = arena.controller.base_url, arena.tokens["hostA"]
    flood = asyncio.ensure_future(
        flood_from_another_process(base_url, "hostA", token, attempts=attempts)
    )
    during: list[float] = []
    while not flood.done() and len(during) < 20:
        during.append(await change_healthy_host())
    report = await flood
    refusals, closes = report["refusals"], report["closes"]
    assert isinstance(refusals, dict)
    assert isinstance(closes, dict)
    assert refusals == {"403": attempts // 2}
    superseded = closes.get(str(protocol.GOING_AWAY), 0)
    assert superseded >= attempts // 4  # valid connects did take each other's place
    seconds = report["seconds"]
    assert isinstance(seconds, float)
    assert seconds < 45  # a generous bound; the figures are the measure
    host_a = uuid.UUID(arena.fabric.servers["hostA"])
    sessions = arena.controller.southbound.hub.sessions
    await eventually(lambda: host_a not in sessions, 10, "host A's last connection to end")
    await arena.assert_healthy()
    assert arena.healthy.stats.connects == 1
    assert arena.healthy.stats.refusals == 0
    assert tracebacks(caplog.records) == []
    figures.record("connection attempts (half bad, half valid)", attempts)
    figures.record("time for the flood", seconds, "s")
    figures.record("attempts per second", attempts / seconds, "/s")
    figures.record("valid connects superseded by a newer one", superseded)
    figures.record("server lookups that reached the database", servers.queries - queries)
    figures.record("healthy host change applied, quiet (best of 3)", quiet, "s")
    if during:
        figures.record("healthy host changes applied during the flood", len(during))
        figures.record("  slowest of them", max(during), "s")
    figures.record("tracebacks seen", len(tracebacks(caplog.records)))
