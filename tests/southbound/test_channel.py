"""The southbound channel over real WebSockets: who may connect, the hello, snapshot or resume
on (re)connection, bookmarks, one connection per server, and which host is sent what.

The controller runs in-process (uvicorn on a free port); the agents are the real session
client or, for tests about single messages, a raw WebSocket client speaking the protocol.
"""

from __future__ import annotations

import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from controller import protocol
from controller.settings import Settings
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule, ref
from tests.support.figures import Figures
from tests.support.nbi import delete, get, put
from tests.support.southbound import (
    BLUE_WEB,
    FAST,
    PROVIDER,
    RED_DB,
    WEB_ACL,
    Agents,
    Fabric,
    InProcessController,
    RecordingAgent,
    applied,
    channel,
    channel_url,
    closed_by_the_controller,
    eventually,
    in_process_controller,
    placed_nic,
    receive,
    receive_policy,
    reference_policy,
    revision_of,
    say_hello,
)

# How long the first bookmark after a write may take before the test fails: many intervals,
# for a loaded machine; the time it took is recorded.
BOOKMARK_BOUND = 10.0

# -- who may connect ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_id", "token_of", "scheme"),
    [
        pytest.param("hostA", None, "Bearer", id="missing-token"),
        pytest.param("hostA", "wrong", "Bearer", id="wrong-token"),
        pytest.param("hostA", "", "Bearer", id="empty-token"),
        pytest.param("hostA", "hostB", "Bearer", id="another-servers-token"),
        pytest.param("hostA", "hostA", "Basic", id="not-a-bearer-token"),
        pytest.param("hostZ", "hostA", "Bearer", id="unknown-server"),
    ],
)
async def test_refused_before_the_websocket_opens(
    controller: InProcessController,
    agent_tokens: dict[str, str],
    server_id: str,
    token_of: str | None,
    scheme: str,
) -> None:
    token = None if token_of is None else agent_tokens.get(token_of, token_of)
    with pytest.raises(InvalidStatus) as refused:
        async with channel(controller.base_url, server_id, token, scheme=scheme):
            pass
    assert refused.value.response.status_code == 403


async def test_the_servers_own_token_opens_its_channel(
    controller: InProcessController, agent_tokens: dict[str, str]
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", 0)
        assert (await receive(websocket))["type"] == protocol.SNAPSHOT
    # The server's resourceId is matched as NC matches URIs: without regard to case.
    async with channel(controller.base_url, "HOSTA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", 0)
        assert (await receive(websocket))["type"] == protocol.SNAPSHOT


# -- the hello ---------------------------------------------------------------------------------


def _hello(**members: object) -> bytes:
    return protocol.encode(protocol.hello("hostA", 0) | members)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(_hello(protocol=2), id="newer-protocol"),
        pytest.param(_hello(protocol=None), id="no-protocol"),
        pytest.param(_hello(protocol="1"), id="protocol-as-text"),
        pytest.param(b"\x00garbage", id="not-json"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b'{"protocol": 1}', id="no-type"),
        pytest.param(protocol.encode(protocol.ack(1)), id="ack-first"),
        pytest.param(_hello(appliedRevision=-1), id="negative-revision"),
        pytest.param(_hello(appliedRevision="7"), id="revision-as-text"),
        pytest.param(_hello(appliedRevision=True), id="revision-as-boolean"),
        pytest.param(_hello(providerAddress="host.contoso.com"), id="provider-not-an-address"),
    ],
)
async def test_a_bad_hello_gets_an_error_and_the_channel_closes(
    controller: InProcessController, agent_tokens: dict[str, str], frame: bytes
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await websocket.send(frame)
        error = await receive(websocket)
        assert error["type"] == protocol.ERROR
        assert error["code"] == "BadHello"
        assert error["message"]
        with pytest.raises(ConnectionClosed):
            await receive(websocket, within=5)
        assert websocket.close_code == 1008
    # Nothing was registered for the host: it is not shown as connected.
    assert "hostA" not in {str(s) for s in controller.southbound.hub.sessions}
    assert not controller.southbound.hub.sessions


async def test_a_wrong_protocol_version_is_named_in_the_error(
    controller: InProcessController, agent_tokens: dict[str, str]
) -> None:
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await websocket.send(_hello(protocol=99))
        error = await receive(websocket)
    assert "99" in error["message"]
    assert str(protocol.PROTOCOL_VERSION) in error["message"]


# -- snapshot and resume ---------------------------------------------------------------------


async def test_a_first_connection_gets_a_snapshot_of_its_hosts_policy(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    revision = await revision_of(database)
    async with channel(controller.base_url, "hostA", agent_tokens["hostA"]) as websocket:
        await say_hello(websocket, "hostA", 0)
        snapshot = await receive(websocket)
    assert snapshot["type"] == protocol.SNAPSHOT
    assert snapshot["revision"] == revision
    objects = snapshot["objects"]
    # No provider address is known for host B yet (its agent never said hello): no mapping.
    rules = {key: body for key, body in objects.items() if key.startswith("aclRule/")}
    assert set(objects) - set(rules) == {
        fabric.host("hostA"),
        fabric.endpoint("a1"),
        fabric.network(BLUE_WEB),
        fabric.acl(WEB_ACL),
    }
    # The ACL's one rule, as an object of its own.
    assert [(r["acl"], r["priority"]) for r in rules.values()] == [(fabric.acls[WEB_ACL], 100)]
    endpoint = objects[fabric.endpoint("a1")]
    assert endpoint["ip"] == "24.30.1.10"
    assert endpoint["mac"] == "00155D000A01"
    assert endpoint["acls"] == [fabric.acls[WEB_ACL]]
    _, reference = await reference_policy(database)
    assert objects == reference(fabric.servers["hostA"])


async def test_reconnecting_with_the_applied_revision_resumes_with_what_changed(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    http = controller.http
    # Host B's agent reports its provider address (then leaves): A maps b1.
    async with channel(controller.base_url, "hostB", agent_tokens["hostB"]) as websocket:
        await say_hello(websocket, "hostB", 0, provider_address=PROVIDER["hostB"])
        await receive(websocket)
    token = agent_tokens["hostA"]
    async with channel(controller.base_url, "hostA", token) as websocket:
        await say_hello(websocket, "hostA", 0, provider_address=PROVIDER["hostA"])
        snapshot = await receive(websocket)
        state, applied_revision = dict(snapshot["objects"]), snapshot["revision"]
        # Follow until A holds B's mapping and everything committed so far.
        while fabric.mapping("b1") not in state or applied_revision < await revision_of(database):
            message = await receive(websocket)
            for key in message.get("deletes", []):
                state.pop(key)
            state.update(message.get("upserts", {}))
            applied_revision = message["revision"]
    assert state == controller.southbound.compiler.snapshot(fabric.servers["hostA"])

    # While host A is away: a new NIC a2 comes to A, a1 goes (and with it A's only user of the
    # ACL, which changes too), b1 (same virtual network, host B) moves to another address,
    # c1 (other network, host C) changes.
    await put(
        http, "/networkInterfaces/a2", placed_nic("hostA", BLUE_WEB, "24.30.1.11", "00155D000A02")
    )
    config_a2 = (await get(http, "/networkInterfaces/a2/ipConfigurations/ip"))["instanceId"]
    await delete(http, "/networkInterfaces/a1")
    await put(http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    await put(
        http, "/networkInterfaces/b1", placed_nic("hostB", BLUE_WEB, "24.30.1.21", "00155D000B01")
    )
    await put(
        http, "/networkInterfaces/c1", placed_nic("hostC", RED_DB, "10.1.1.31", "00155D000C01")
    )
    revision = await revision_of(database)
    await eventually(lambda: controller.southbound.compiler.revision >= revision)

    async with channel(controller.base_url, "hostA", token) as websocket:
        await say_hello(websocket, "hostA", applied_revision, provider_address=PROVIDER["hostA"])
        resume = await receive(websocket)
    assert resume["type"] == protocol.DELTA
    assert resume["resume"] is True
    assert resume["revision"] == revision
    web_rules = [key for key in state if key.startswith("aclRule/")]
    assert len(web_rules) == 1  # r1 (r2 came while A was away, and A left the ACL's hosts)
    assert sorted(resume["deletes"]) == sorted(
        [fabric.endpoint("a1"), fabric.acl(WEB_ACL), *web_rules]
    )
    assert set(resume["upserts"]) == {f"endpoint/{config_a2}", fabric.mapping("b1")}
    assert resume["upserts"][fabric.mapping("b1")]["ip"] == "24.30.1.21"
    for key in resume["deletes"]:
        state.pop(key)
    state.update(resume["upserts"])
    _, reference = await reference_policy(database)
    assert state == reference(fabric.servers["hostA"])


async def test_resume_carries_a_changed_object_and_nothing_unchanged(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    token = agent_tokens["hostA"]
    applied_revision = await revision_of(database)
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    await eventually(lambda: controller.southbound.compiler.revision > applied_revision)
    async with channel(controller.base_url, "hostA", token) as websocket:
        await say_hello(websocket, "hostA", applied_revision)
        resume = await receive(websocket)
    assert resume.get("resume") is True
    assert resume["deletes"] == []
    # Only the new rule: r1 and the ACL's defaults are as the agent has them.
    ((key, rule),) = resume["upserts"].items()
    assert key.startswith("aclRule/")
    assert rule["acl"] == fabric.acls[WEB_ACL]
    assert (rule["type"], rule["priority"], rule["action"]) == ("Inbound", 200, "Allow")


async def test_resume_when_nothing_changed_is_empty(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    revision = await revision_of(database)
    await eventually(lambda: controller.southbound.compiler.revision >= revision)
    async with channel(controller.base_url, "hostC", agent_tokens["hostC"]) as websocket:
        await say_hello(websocket, "hostC", revision)
        resume = await receive(websocket)
    assert resume == {
        "type": protocol.DELTA,
        "revision": revision,
        "upserts": {},
        "deletes": [],
        "resume": True,
    }


async def test_revision_zero_after_changes_gets_a_snapshot(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    assert await revision_of(database) > 0
    async with channel(controller.base_url, "hostB", agent_tokens["hostB"]) as websocket:
        await say_hello(websocket, "hostB", 0)
        first = await receive(websocket)
    assert first["type"] == protocol.SNAPSHOT
    assert fabric.endpoint("b1") in first["objects"]


async def test_a_revision_older_than_the_replica_can_resume_gets_a_snapshot(
    controller: InProcessController,
    database_url: str,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    old = await revision_of(database)
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    current = await revision_of(database)
    # A replica started now knows the model at ``current`` but not how it got there.
    settings = Settings(database_url=database_url, **FAST)
    async with in_process_controller(settings) as fresh:
        assert fresh.southbound.compiler.floor == current
        token = agent_tokens["hostA"]
        async with channel(fresh.base_url, "hostA", token) as websocket:
            await say_hello(websocket, "hostA", old)
            snapshot = await receive(websocket)
        assert snapshot["type"] == protocol.SNAPSHOT
        assert snapshot["revision"] == current
        _, reference = await reference_policy(database)
        assert snapshot["objects"] == reference(fabric.servers["hostA"])
        # From the revision it started at, it resumes.
        async with channel(fresh.base_url, "hostA", token) as websocket:
            await say_hello(websocket, "hostA", current)
            resume = await receive(websocket)
        assert resume["type"] == protocol.DELTA
        assert resume["resume"] is True
        # A revision no replica has committed cannot have been applied: refused.
        async with channel(fresh.base_url, "hostA", token) as websocket:
            await say_hello(websocket, "hostA", current + 100)
            error = await receive(websocket)
            assert (error["type"], error["code"]) == (protocol.ERROR, protocol.BAD_HELLO)


async def test_the_agent_session_resumes_after_losing_its_connection(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    agent = agents.start("hostA", agent_tokens["hostA"], provider_address=PROVIDER["hostA"])
    await applied(agent, await revision_of(database))
    assert (agent.stats.snapshots, agent.stats.resumes) == (1, 0)
    state = agent.state
    await agents.stop(agent)
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r9", 900)))
    again = agents.start(
        "hostA", agent_tokens["hostA"], provider_address=PROVIDER["hostA"], state=state
    )
    await applied(again, await revision_of(database))
    assert (again.stats.snapshots, again.stats.resumes) == (0, 1)
    _, reference = await reference_policy(database)
    assert again.state.objects == reference(fabric.servers["hostA"])


# -- bookmarks ---------------------------------------------------------------------------------


async def test_an_idle_agents_applied_revision_moves_with_bookmarks(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    agent = agents.start("hostC", agent_tokens["hostC"])
    await applied(agent, await revision_of(database))
    # Writes that concern no host at all (credentials), then one on host A only.
    for value in ("CD34", "EF56"):
        await put(
            controller.http,
            "/credentials/other",
            {"properties": {"type": "X509Certificate", "value": value}},
        )
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    revision = await revision_of(database)
    await applied(agent, revision)
    assert agent.kinds() == ["snapshot"]
    assert any(m["type"] == protocol.BOOKMARK for m in agent.messages)
    # The controller saw the acks.
    session = next(iter(controller.southbound.hub.sessions.values()))
    await eventually(lambda: session.applied_revision >= revision)


async def test_bookmarks_come_every_bookmark_interval(
    controller: InProcessController,
    database: Database,
    agent_tokens: dict[str, str],
    figures: Figures,
) -> None:
    async with channel(controller.base_url, "hostC", agent_tokens["hostC"]) as websocket:
        await say_hello(websocket, "hostC", 0)
        assert (await receive(websocket))["type"] == protocol.SNAPSHOT
        await put(
            controller.http,
            "/credentials/other",
            {"properties": {"type": "X509Certificate", "value": "AB"}},
        )
        started = time.monotonic()
        revision = await revision_of(database)
        bookmark = await receive(websocket, within=BOOKMARK_BOUND)
        waited = time.monotonic() - started
        interval = FAST["bookmark_interval"]
        figures.record(f"bookmark after a write for no host (interval {interval} s)", waited, "s")
        assert bookmark == {"type": protocol.BOOKMARK, "revision": revision}


# -- one connection per server -----------------------------------------------------------------


async def test_a_second_connection_for_a_server_replaces_the_first(
    controller: InProcessController,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    token = agent_tokens["hostA"]
    url = channel_url(controller.base_url, "hostA")
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers) as first:
        await say_hello(first, "hostA", 0)
        assert (await receive(first))["type"] == protocol.SNAPSHOT
        async with connect(url, additional_headers=headers) as second:
            await say_hello(second, "hostA", 0)
            assert (await receive(second))["type"] == protocol.SNAPSHOT
            # The first connection is closed by the controller, and gets nothing more.
            assert await closed_by_the_controller(first, within=5)
            # Changes go to the second.
            await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
            delta = await receive_policy(second)
            ((rule),) = delta["upserts"].values()
            assert (rule["acl"], rule["priority"]) == (fabric.acls[WEB_ACL], 200)
            assert len(controller.southbound.hub.sessions) == 1


# -- what each host is sent --------------------------------------------------------------------


async def test_deltas_reach_only_the_hosts_they_concern(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    running = {
        host: agents.start(host, agent_tokens[host], provider_address=PROVIDER[host])
        for host in ("hostA", "hostB", "hostC")
    }
    # Every host has reported its provider address (each report is a change of its own, which
    # reaches the host after its snapshot) and holds it: A and B map each other's endpoints.
    await eventually(
        lambda: all(
            agent.state.objects.get(fabric.host(host), {}).get("providerAddress") == PROVIDER[host]
            for host, agent in running.items()
        ),
        what="every host holding its reported provider address",
    )
    await eventually(
        lambda: (
            fabric.mapping("b1") in running["hostA"].state.objects
            and fabric.mapping("a1") in running["hostB"].state.objects
        )
    )
    revision = await revision_of(database)
    for agent in running.values():
        await applied(agent, revision)

    def policy_messages() -> dict[str, int]:
        return {host: len(agent.kinds()) for host, agent in running.items()}

    # An ACL change reaches only the host with an endpoint using the ACL.
    before = policy_messages()
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    revision = await revision_of(database)
    for agent in running.values():
        await applied(agent, revision)
    after = policy_messages()
    assert after["hostA"] == before["hostA"] + 1
    assert (after["hostB"], after["hostC"]) == (before["hostB"], before["hostC"])
    delta = running["hostA"].messages[-1]
    if delta["type"] == protocol.BOOKMARK:
        delta = next(m for m in reversed(running["hostA"].messages) if m["type"] == protocol.DELTA)
    ((key, rule),) = delta["upserts"].items()  # the new rule, nothing else
    assert key.startswith("aclRule/")
    assert (rule["acl"], rule["priority"]) == (fabric.acls[WEB_ACL], 200)

    # A change of NIC a1 (on A): A gets the endpoint, B (same virtual network) the mapping
    # only, C nothing.
    before = policy_messages()
    moved = placed_nic(
        "hostA", BLUE_WEB, "24.30.1.15", "00155D000A01", accessControlList=ref(WEB_ACL)
    )
    await put(controller.http, "/networkInterfaces/a1", moved)
    revision = await revision_of(database)
    for agent in running.values():
        await applied(agent, revision)
    after = policy_messages()
    assert after == {**before, "hostA": before["hostA"] + 1, "hostB": before["hostB"] + 1}
    assert running["hostA"].state.objects[fabric.endpoint("a1")]["ip"] == "24.30.1.15"
    assert running["hostB"].state.objects[fabric.mapping("a1")]["ip"] == "24.30.1.15"
    assert (
        running["hostB"].state.objects[fabric.mapping("a1")]["providerAddress"]
        == (PROVIDER["hostA"])
    )

    # A third NIC in blue, on C: C joins blue (network, mappings of a1 and b1); A and B get
    # its mapping.
    await put(
        controller.http,
        "/networkInterfaces/c2",
        placed_nic("hostC", BLUE_WEB, "24.30.1.40", "00155D000C02"),
    )
    revision = await revision_of(database)
    for agent in running.values():
        await applied(agent, revision)
    config_c2 = (await get(controller.http, "/networkInterfaces/c2/ipConfigurations/ip"))[
        "instanceId"
    ]
    assert {fabric.mapping("a1"), fabric.mapping("b1"), fabric.network(BLUE_WEB)} <= set(
        running["hostC"].state.objects
    )
    for host in ("hostA", "hostB"):
        assert f"mapping/{config_c2}" in running[host].state.objects

    # Throughout: a host was never sent another host's endpoint, nor the ACL of endpoints
    # elsewhere, nor a mapping of a network it has no endpoint in.
    own = {"hostA": {"a1"}, "hostB": {"b1"}, "hostC": {"c1", "c2"}}
    for host, agent in running.items():
        sent = agent.dataplane_log.upserted()
        for nic_id in ("a1", "b1", "c1"):
            if nic_id not in own[host]:
                assert fabric.endpoint(nic_id) not in sent, (host, nic_id)
        if host != "hostA":
            assert fabric.acl(WEB_ACL) not in sent, host
            assert not {key for key in sent if key.startswith("aclRule/")}, host
    # c1 is alone in red: nobody maps it.
    for agent in running.values():
        assert fabric.mapping("c1") not in agent.dataplane_log.upserted()
    # B never had anything of A but the mapping; nothing of red at all.
    assert running["hostB"].dataplane_log.upserted() <= {
        fabric.host("hostB"),
        fabric.endpoint("b1"),
        fabric.network(BLUE_WEB),
        fabric.mapping("a1"),
        f"mapping/{config_c2}",
    }
    assert fabric.network(RED_DB) not in running["hostB"].dataplane_log.upserted()

    # And every host holds exactly what a brand-new replica computes for it.
    _, reference = await reference_policy(database)
    for host, agent in running.items():
        assert agent.state.objects == reference(fabric.servers[host]), host


async def test_deleting_the_virtual_network_users_removes_the_mappings(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    running = {
        host: agents.start(host, agent_tokens[host], provider_address=PROVIDER[host])
        for host in ("hostA", "hostB")
    }
    await eventually(lambda: fabric.mapping("a1") in running["hostB"].state.objects)
    await delete(controller.http, "/networkInterfaces/a1")
    revision = await revision_of(database)
    for agent in running.values():
        await applied(agent, revision)
    assert fabric.mapping("a1") not in running["hostB"].state.objects
    assert fabric.endpoint("a1") not in running["hostA"].state.objects
    # A has no endpoint left in blue: the network and B's mapping leave it too.
    assert set(running["hostA"].state.objects) == {fabric.host("hostA")}
    _, reference = await reference_policy(database)
    for host, agent in running.items():
        assert agent.state.objects == reference(fabric.servers[host]), host


async def test_policy_messages_come_in_revision_order_each_once(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    agent: RecordingAgent = agents.start("hostA", agent_tokens["hostA"])
    for priority in (200, 300, 400):
        await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("rx", priority)))
    await applied(agent, await revision_of(database))
    revisions = [m["revision"] for m in agent.messages if m["type"] != protocol.BOOKMARK]
    assert revisions == sorted(set(revisions))
    _, reference = await reference_policy(database)
    assert agent.state.objects == reference(fabric.servers["hostA"])
