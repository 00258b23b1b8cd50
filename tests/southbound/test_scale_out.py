"""Two controller replicas (``sdnc serve`` processes) on one PostgreSQL database, with agents
(the real session client, in this process) connected to either.

A write through one replica reaches agents on the other; when a replica goes away its agents
resume on the other without a snapshot and without losing or repeating a delta; a replica
started afresh serves agents (with a snapshot when they are older than its start). Each
agent's state is compared with what a brand-new replica computes for its host.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from controller import protocol
from controller.agent.session import AgentState
from controller.store.database import Database
from tests.conftest import create_database
from tests.support.bodies import acl, acl_rule, ref
from tests.support.nbi import Json, assert_configuration_state, get, props, put
from tests.support.server import ControllerServer
from tests.support.southbound import (
    BLUE_WEB,
    FAST_ENV,
    PROVIDER,
    WEB_ACL,
    Agents,
    Fabric,
    RecordingAgent,
    applied,
    build_fabric,
    eventually,
    placed_nic,
    put_waiting,
    reference_policy,
    revision_of,
    status_written,
    tokens,
)

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

A1 = "/networkInterfaces/a1"
B1 = "/networkInterfaces/b1"


@dataclass
class Deployment:
    url: str
    database: Database
    a: ControllerServer
    b: ControllerServer
    http: httpx.AsyncClient  # through replica A

    def replica(self) -> ControllerServer:
        """Another replica on the same database (not started)."""
        return ControllerServer(self.url, extra_env=FAST_ENV)


@pytest.fixture
def database_on_server(postgres_server: str) -> Iterator[str]:
    with create_database(postgres_server) as url:
        yield url


@pytest.fixture
async def deployment(database_on_server: str) -> AsyncIterator[Deployment]:
    url = database_on_server
    servers = [ControllerServer(url, extra_env=FAST_ENV) for _ in range(2)]
    database = Database(url)
    # Undone in reverse, every step even when another fails: each replica stopped, its log
    # shown and removed; the database connections closed.
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.push_async_callback(database.dispose)
        for server in servers:
            cleanup.callback(stopped_and_logged, server, "the controller")
            server.start()
        http = await cleanup.enter_async_context(
            httpx.AsyncClient(base_url=servers[0].base_url, timeout=30)
        )
        yield Deployment(url, database, servers[0], servers[1], http)


def stopped_and_logged(server: ControllerServer, what: str) -> None:
    """Stop ``server``, print its log (shown when the test fails) and remove it."""
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(server.remove_log)
        cleanup.callback(lambda: print(f"--- log of {what} ({server.port}) ---\n{server.log()}"))
        server.stop()


@pytest.fixture
async def agents() -> AsyncIterator[Agents]:
    running = Agents([])
    try:
        yield running
    finally:
        await running.close()


async def agents_connected(base_url: str) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.get("/southbound/v1/status")
    count: int = response.json()["agentsConnected"]
    return count


def policy_revisions(agent: RecordingAgent) -> list[int]:
    return [m["revision"] for m in agent.messages if m["type"] != protocol.BOOKMARK]


async def assert_hosts_hold_their_policy(
    database: Database, fabric: Fabric, running: dict[str, RecordingAgent]
) -> None:
    """Every agent holds exactly what a brand-new replica computes for its host."""
    revision = await revision_of(database)
    for agent in running.values():
        await applied(agent, revision)
    _, reference = await reference_policy(database)
    for host, agent in running.items():
        assert agent.state.objects == reference(fabric.servers[host]), host


def servers_connected(
    http: httpx.AsyncClient, hosts: Iterable[str]
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        states = [props(await connected_status(http, host)) for host in hosts]
        return all(state["configurationState"]["status"] == "Success" for state in states)

    return check


async def connected_status(http: httpx.AsyncClient, host: str) -> Json:
    return await get(http, f"/servers/{host}")


async def test_a_write_through_one_replica_reaches_agents_of_the_other(
    deployment: Deployment, agents: Agents
) -> None:
    fabric = await build_fabric(deployment.http)
    secrets = await tokens(deployment.database)
    on_b = [deployment.b.base_url]
    running = {
        host: agents.start(host, secrets[host], provider_address=PROVIDER[host], controllers=on_b)
        for host in ("hostA", "hostB")
    }
    await assert_hosts_hold_their_policy(deployment.database, fabric, running)
    assert await agents_connected(deployment.b.base_url) == 2
    assert await agents_connected(deployment.a.base_url) == 0
    # A learns of B's agents from the rows B writes on its status beat, not at once.
    await status_written(deployment.b.base_url)

    # Written through A, applied by B's agents, and A's wait sees their acks.
    moved = placed_nic(
        "hostA", BLUE_WEB, "24.30.1.14", "00155D000A01", accessControlList=ref(WEB_ACL)
    )
    response = await put_waiting(deployment.http, A1, moved)
    assert response.status_code == 200, response.text
    assert response.headers["x-sdnc-applied"] == "true"
    assert running["hostA"].state.objects[fabric.endpoint("a1")]["ip"] == "24.30.1.14"
    assert running["hostB"].state.objects[fabric.mapping("a1")]["ip"] == "24.30.1.14"
    assert_configuration_state(response.json(), "Success")
    # Through either replica, the servers show their agents connected.
    for base_url in (deployment.a.base_url, deployment.b.base_url):
        async with httpx.AsyncClient(base_url=base_url) as http:
            for host in ("hostA", "hostB"):
                assert_configuration_state(await get(http, f"/servers/{host}"), "Success")
    await assert_hosts_hold_their_policy(deployment.database, fabric, running)


async def test_agents_of_a_stopped_replica_resume_on_the_other(
    deployment: Deployment, agents: Agents
) -> None:
    fabric = await build_fabric(deployment.http)
    secrets = await tokens(deployment.database)
    # B first, A as the fallback.
    both = [deployment.b.base_url, deployment.a.base_url]
    running = {
        host: agents.start(host, secrets[host], provider_address=PROVIDER[host], controllers=both)
        for host in ("hostA", "hostB", "hostC")
    }
    await assert_hosts_hold_their_policy(deployment.database, fabric, running)
    assert await agents_connected(deployment.b.base_url) == 3

    # A few deltas while on B.
    await put(deployment.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    await put(deployment.http, B1, placed_nic("hostB", BLUE_WEB, "24.30.1.21", "00155D000B01"))
    await assert_hosts_hold_their_policy(deployment.database, fabric, running)

    deployment.b.stop()
    # Written while B is down (whether or not the agents are back yet).
    await put(deployment.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r3", 300)))
    await put(deployment.http, B1, placed_nic("hostB", BLUE_WEB, "24.30.1.22", "00155D000B01"))
    await put(
        deployment.http,
        "/networkInterfaces/c2",
        placed_nic("hostC", BLUE_WEB, "24.30.1.40", "00155D000C02"),
    )
    await eventually(
        lambda: all(a.stats.connects == 2 and a.connected.is_set() for a in running.values()),
        what="agents reconnecting to replica A",
    )
    await assert_hosts_hold_their_policy(deployment.database, fabric, running)
    assert await agents_connected(deployment.a.base_url) == 3
    for host, agent in running.items():
        assert (agent.stats.snapshots, agent.stats.resumes) == (1, 1), host
        # No delta twice, none out of order.
        revisions = policy_revisions(agent)
        assert revisions == sorted(set(revisions)), host
    # The servers show connected (to A now).
    await eventually(servers_connected(deployment.http, running), what="servers connected")
    for host in running:
        assert_configuration_state(await connected_status(deployment.http, host), "Success")


async def test_an_agent_that_moved_stays_connected_when_its_old_replica_wakes_up(
    deployment: Deployment, agents: Agents
) -> None:
    """Replica B stalls (SIGSTOP): its agents' pings go unanswered and they move to A. When B
    comes back it finds their old connections closed; that must not mark the servers
    disconnected, since A serves them now."""
    fabric = await build_fabric(deployment.http)
    secrets = await tokens(deployment.database)
    both = [deployment.b.base_url, deployment.a.base_url]
    running = {
        host: agents.start(
            host,
            secrets[host],
            provider_address=PROVIDER[host],
            controllers=both,
            ping_interval=0.5,
        )
        for host in ("hostA", "hostB")
    }
    await assert_hosts_hold_their_policy(deployment.database, fabric, running)

    deployment.b.pause()
    try:
        await eventually(
            lambda: all(a.stats.connects == 2 and a.connected.is_set() for a in running.values()),
            within=30,
            what="agents moving to replica A",
        )
        await assert_hosts_hold_their_policy(deployment.database, fabric, running)
        # A writes down the new connections in its next status flush.
        await eventually(servers_connected(deployment.http, running), what="servers connected")
        for host in running:
            assert_configuration_state(await connected_status(deployment.http, host), "Success")
    finally:
        deployment.b.resume()

    # B notices its connections are gone, and writes down what it makes of that.
    async def b_let_go() -> bool:
        return await agents_connected(deployment.b.base_url) == 0

    await eventually(b_let_go, what="replica B noticing its agents left")
    await status_written(deployment.b.base_url)  # what B made of it is in the database
    for host in running:
        nic_host = await connected_status(deployment.http, host)
        assert_configuration_state(nic_host, "Success")
    assert props(await get(deployment.http, A1))["configurationState"]["status"] == "Success"


async def test_a_replica_started_afresh_serves_agents_older_than_its_start_with_a_snapshot(
    deployment: Deployment, agents: Agents
) -> None:
    fabric = await build_fabric(deployment.http)
    secrets = await tokens(deployment.database)
    on_a = [deployment.a.base_url]
    first = {
        host: agents.start(host, secrets[host], provider_address=PROVIDER[host], controllers=on_a)
        for host in ("hostA", "hostB")
    }
    await assert_hosts_hold_their_policy(deployment.database, fabric, first)
    # The agents stop (their hosts keep the state), and the model moves on.
    states = {host: agent.state for host, agent in first.items()}
    for agent in first.values():
        await agents.stop(agent)
    await put(deployment.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r4", 400)))
    await put(deployment.http, B1, placed_nic("hostB", BLUE_WEB, "24.30.1.23", "00155D000B01"))
    # B restarts from scratch (so it starts at the current revision), A goes away.
    deployment.b.stop()
    fresh = deployment.replica()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(stopped_and_logged, fresh, "the restarted controller")
        fresh.start()
        deployment.a.stop()
        on_fresh = [fresh.base_url]
        again = {
            host: agents.start(
                host,
                secrets[host],
                provider_address=PROVIDER[host],
                controllers=on_fresh,
                state=AgentState(states[host].applied_revision, dict(states[host].objects)),
            )
            for host in ("hostA", "hostB")
        }
        await assert_hosts_hold_their_policy(deployment.database, fabric, again)
        for host, agent in again.items():
            # Its revision is older than the fresh replica's start: a snapshot.
            assert (agent.stats.snapshots, agent.stats.resumes) == (1, 0), host
        # And a write through it reaches them as deltas.
        async with httpx.AsyncClient(base_url=fresh.base_url, timeout=30) as http:
            moved = placed_nic(
                "hostA", BLUE_WEB, "24.30.1.19", "00155D000A01", accessControlList=ref(WEB_ACL)
            )
            response = await put_waiting(http, A1, moved)
            assert response.headers["x-sdnc-applied"] == "true"
        await assert_hosts_hold_their_policy(deployment.database, fabric, again)
        assert again["hostB"].state.objects[fabric.mapping("a1")]["ip"] == "24.30.1.19"
        for agent in again.values():
            assert agent.stats.deltas >= 1
