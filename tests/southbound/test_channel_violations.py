"""What the channel does with agents that break the protocol, and with connection attempts
that cannot be agents: every violation is answered with an ``error`` message naming it and a
close frame (1008), logged as one warning without a traceback; a URL or header that cannot
name a server or carry a token is refused (403) before the database is asked anything.

The controller runs in-process (uvicorn on a free port); the abusers are raw WebSocket (or raw
TCP) clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from controller import protocol
from controller.agent.session import AgentState
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule
from tests.support.nbi import put
from tests.support.refusals import (
    channel_warnings,
    raw_handshake,
    refused_with,
    server_status,
    tracebacks,
)
from tests.support.southbound import (
    WEB_ACL,
    Agents,
    Fabric,
    InProcessController,
    applied,
    channel,
    eventually,
    receive,
    revision_of,
    say_hello,
)

TOO_MANY = protocol.MAX_FAILURES + 1


def _ack(revision: object, failures: object = ()) -> bytes:
    return protocol.encode({"type": protocol.ACK, "revision": revision, "failures": failures})


def _failure(key: str = "endpoint/x", code: str = "Broken", message: str = "no") -> dict[str, str]:
    return {"key": key, "code": code, "message": message}


AFTER_HELLO = [
    pytest.param(b"{oops", protocol.BAD_MESSAGE, id="not-json"),
    pytest.param(b"\xff\x00\x9cgarbage", protocol.BAD_MESSAGE, id="binary-garbage"),
    pytest.param(b"[1, 2, 3]", protocol.BAD_MESSAGE, id="not-an-object"),
    pytest.param(b'"ack"', protocol.BAD_MESSAGE, id="a-string"),
    pytest.param(b'{"revision": 1}', protocol.BAD_MESSAGE, id="no-type"),
    pytest.param(b'{"type": "subscribe"}', protocol.BAD_MESSAGE, id="unknown-type"),
    pytest.param(
        protocol.encode(protocol.hello("hostA", 0)), protocol.BAD_MESSAGE, id="hello-again"
    ),
    pytest.param(_ack(-5), protocol.BAD_MESSAGE, id="negative-revision"),
    pytest.param(_ack(2**63), protocol.BAD_MESSAGE, id="revision-over-64-bits"),
    pytest.param(
        b'{"type": "ack", "revision": 36893488147419103233}',
        protocol.BAD_MESSAGE,
        id="revision-as-huge-number",
    ),
    pytest.param(_ack("7"), protocol.BAD_MESSAGE, id="revision-as-text"),
    pytest.param(_ack(1.5), protocol.BAD_MESSAGE, id="revision-as-fraction"),
    pytest.param(_ack(True), protocol.BAD_MESSAGE, id="revision-as-boolean"),
    pytest.param(_ack(None), protocol.BAD_MESSAGE, id="revision-null"),
    pytest.param(_ack(1, "none"), protocol.BAD_MESSAGE, id="failures-not-a-list"),
    pytest.param(_ack(1, ["broken"]), protocol.BAD_MESSAGE, id="failure-not-an-object"),
    pytest.param(
        _ack(1, [{"key": "k", "code": 5, "message": ""}]), protocol.BAD_MESSAGE, id="code-not-text"
    ),
    pytest.param(_ack(1, [{"key": "k"}]), protocol.BAD_MESSAGE, id="failure-without-code"),
    pytest.param(_ack(1, [_failure(key="k" * 300)]), protocol.BAD_MESSAGE, id="key-too-long"),
    pytest.param(
        _ack(1, [_failure(message="m" * 5000)]), protocol.BAD_MESSAGE, id="message-too-long"
    ),
    pytest.param(_ack(1, [_failure()] * TOO_MANY), protocol.BAD_MESSAGE, id="too-many-failures"),
    pytest.param(
        b" " * (protocol.MAX_FRAME_BYTES + 1), protocol.MESSAGE_TOO_LARGE, id="oversized-frame"
    ),
]


@pytest.mark.parametrize(("frame", "code"), AFTER_HELLO)
async def test_a_violation_after_the_hello_is_answered_and_closed(
    controller: InProcessController,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    frame: bytes,
    code: str,
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", 0)
        assert (await receive(websocket))["type"] == protocol.SNAPSHOT
        await websocket.send(frame)
        await refused_with(websocket, code)
        assert websocket.close_code == protocol.POLICY_VIOLATION
    await eventually(lambda: not controller.southbound.hub.sessions, 5, "the session to end")
    assert len(channel_warnings(caplog.records, fabric.servers["hostA"])) == 1
    assert tracebacks(caplog.records) == []


async def test_a_text_frame_is_held_to_the_same_limits(
    controller: InProcessController, fabric: Fabric, agent_tokens: dict[str, str]
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", 0)
        await receive(websocket)
        # 1.5 M characters of three bytes each: 4.5 MB.
        await websocket.send(_ack(1, [_failure(message="€" * 1000)] * 1500).decode())
        await refused_with(websocket, protocol.MESSAGE_TOO_LARGE)


async def test_an_ack_ahead_of_what_was_sent_is_refused(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", 0)
        snapshot = await receive(websocket)
        # The revision it was sent is fine (as often as it likes), the next one is not yet.
        await websocket.send(_ack(snapshot["revision"]))
        await websocket.send(_ack(snapshot["revision"]))
        await websocket.send(_ack(snapshot["revision"] + 1))
        error = await refused_with(websocket, protocol.BAD_MESSAGE)
    assert str(snapshot["revision"] + 1) in error["message"]
    # What it acknowledged before is recorded; the impossible revision is not.
    await eventually(lambda: not controller.southbound.hub.sessions, 5, "the session to end")
    await controller.southbound.status.flush()
    row = await server_status(database, fabric.servers["hostA"])
    assert row is not None
    assert (row.connected, row.applied_revision) == (False, snapshot["revision"])


async def test_a_frame_over_the_transport_limit_is_cut_off_unread(
    controller: InProcessController,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", 0)
        await receive(websocket)
        with contextlib.suppress(ConnectionClosed):  # it may close while the frame goes out
            await websocket.send(b" " * (protocol.TRANSPORT_MAX_BYTES + 1))
        await _closed(websocket)
        assert websocket.close_code == 1009  # message too big
    await eventually(lambda: not controller.southbound.hub.sessions, 5, "the session to end")
    assert tracebacks(caplog.records) == []


# -- the hello ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "members",
    [
        pytest.param({"appliedRevision": 2**63}, id="revision-over-64-bits"),
        pytest.param({"appliedRevision": 1e30}, id="revision-as-huge-number"),
        pytest.param({"providerAddress": "fe80::1%" + "x" * 80}, id="address-with-zone"),
        pytest.param({"providerAddress": 17}, id="address-not-text"),
        pytest.param({"server": None}, id="no-server"),
        pytest.param({"agent": "a" * 1000}, id="agent-name-too-long"),
    ],
)
async def test_a_hello_out_of_range_is_refused(
    controller: InProcessController,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    members: dict[str, object],
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await websocket.send(protocol.encode(protocol.hello("hostA", 0) | members))
        await refused_with(websocket, protocol.BAD_HELLO)
        assert websocket.close_code == protocol.POLICY_VIOLATION
    assert not controller.southbound.hub.sessions
    assert not controller.southbound.status.states
    assert tracebacks(caplog.records) == []


async def test_a_hello_ahead_of_a_lagging_replica_waits_for_it(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    southbound = controller.southbound
    waiting = asyncio.Event()  # set when the channel starts waiting for the follower
    processed = southbound.follower.processed

    async def watched(revision: int, within: float) -> bool:
        waiting.set()
        return await processed(revision, within)

    monkeypatch.setattr(southbound.follower, "processed", watched)
    # This replica stops following the change log (as if it lagged behind the replica the
    # agent was on); a change is committed meanwhile.
    await southbound.follower.stop()
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    ahead = await revision_of(database)
    assert southbound.compiler.revision < ahead
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", ahead)
        async with asyncio.timeout(10):
            await waiting.wait()
        await southbound.follower.catch_up()  # the replica catches up while the hello waits
        resume = await receive(websocket)
    assert resume["type"] == protocol.DELTA
    assert resume["resume"] is True
    assert resume["revision"] == ahead

    # A revision that is committed but never reaches this replica: refused once the wait ends.
    southbound.options = dataclasses.replace(southbound.options, revision_wait=0.3)
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r3", 300)))
    stuck = await revision_of(database)
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", stuck)
        error = await refused_with(websocket, protocol.BAD_HELLO)
    assert str(stuck) in error["message"]


async def test_an_agent_holding_a_revision_the_controller_never_had_starts_over(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    agents: Agents,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As after the controller's database was restored from an older backup.
    stale = AgentState(applied_revision=10**9, objects={"host/gone": {}})
    agent = agents.start("hostA", agent_tokens["hostA"], state=stale)
    await eventually(lambda: agent.stats.snapshots == 1, 10, "a snapshot")
    await applied(agent, await revision_of(database))
    assert agent.state.applied_revision < 10**9
    assert agent.stats.refusals == 1
    assert agent.last_refusal is not None
    assert agent.last_refusal[0] == protocol.BAD_HELLO
    assert agent.stats.snapshots == 1
    assert agent.state.objects == controller.southbound.compiler.snapshot(fabric.servers["hostA"])
    said = [r.getMessage() for r in caplog.records if r.name == "controller.agent.session"]
    assert any(protocol.BAD_HELLO in line and "10" in line for line in said), said
    assert tracebacks(caplog.records) == []


# -- who may connect ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(b"/southbound/v1/servers/%00x/channel", id="nul"),
        pytest.param(b"/southbound/v1/servers/host%0AA/channel", id="newline"),
        pytest.param(b"/southbound/v1/servers/%25/channel", id="percent"),
        pytest.param(b"/southbound/v1/servers/" + b"a" * 300 + b"/channel", id="too-long"),
        pytest.param(b"/southbound/v1/servers/%C3%28/channel", id="bad-utf8"),
        pytest.param(b"/southbound/v1/servers/%20hostA/channel", id="leading-space"),
    ],
)
async def test_a_url_that_cannot_name_a_server_is_refused(
    controller: InProcessController,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    path: bytes,
) -> None:
    headers = [(b"Authorization", b"Bearer " + agent_tokens["hostA"].encode())]
    assert await raw_handshake(controller.base_url, path, headers) == 403
    assert tracebacks(caplog.records) == []


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(b"Bearer \xff\xfe\x00", id="odd-bytes"),
        pytest.param(b"Bearer \xc3\xa9t\xc3\xa9", id="non-ascii"),
        pytest.param(b"Bearer " + b"A" * 4000, id="long-token"),
        pytest.param(b"Bearer", id="scheme-only"),
        pytest.param(b"Bearer  \t ", id="blank-token"),
        pytest.param(b"\x01\x02", id="garbage"),
    ],
)
async def test_a_malformed_authorization_is_refused(
    controller: InProcessController,
    fabric: Fabric,
    caplog: pytest.LogCaptureFixture,
    authorization: bytes,
) -> None:
    headers = [(b"Authorization", authorization)]
    path = b"/southbound/v1/servers/hostA/channel"
    # Control characters are not HTTP: the web server answers 400 before the app sees them.
    assert await raw_handshake(controller.base_url, path, headers) in (400, 403)
    assert tracebacks(caplog.records) == []


async def test_a_huge_header_is_refused_by_the_web_server(
    controller: InProcessController, fabric: Fabric, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [(b"Authorization", b"Bearer " + b"A" * 200_000)]
    path = b"/southbound/v1/servers/hostA/channel"
    status = await raw_handshake(controller.base_url, path, headers)
    assert status in (0, 400, 413, 431)
    assert tracebacks(caplog.records) == []


async def _closed(websocket: ClientConnection) -> None:
    async def drain() -> None:
        while True:
            await websocket.recv()

    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(drain(), 10)
