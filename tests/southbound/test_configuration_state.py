"""configurationState from what the host agents report, and ``?wait=applied``.

A NIC is ``Uninitialized`` while its host has not applied its last change (or it has no
server), ``Success`` once the host acknowledged it, ``Failure`` with the agent's codes when the
agent could not apply it, and ``Failure``/``HostNotConnectedToController`` when no agent serves
its host; ``provisioningState`` stays ``Succeeded`` throughout, and no write waits for a host
unless asked to with ``?wait=applied``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from controller.agent.session import Failure
from controller.agent.simulator import AgentSpec, Fleet
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule, credential, ref
from tests.support.figures import Figures
from tests.support.nbi import (
    PS_HEADERS,
    Json,
    assert_configuration_state,
    assert_error,
    get,
    props,
    put,
    url,
)
from tests.support.southbound import (
    BLUE_WEB,
    EVENT_BOUND,
    PROVIDER,
    RED_DB,
    WEB_ACL,
    Agents,
    Fabric,
    InProcessController,
    RecordingDataplane,
    applied,
    eventually,
    placed_nic,
    put_waiting,
    recorded_revision,
    revision_of,
    status_written,
)

A1 = "/networkInterfaces/a1"
B1 = "/networkInterfaces/b1"
C1 = "/networkInterfaces/c1"
# A PUT that waits for no host answers from what it wrote (in ~20 ms); one that waited for a
# stuck or absent host would answer only after its wait's timeout (60 s) or never. This
# bound tells the two apart on any machine; the time taken is recorded as a figure.
ANSWERED_BOUND = 30.0
WAIT_TIMEOUT = 60.0


def _codes(resource: Json) -> list[str]:
    state: Json = props(resource)["configurationState"]
    return [state["status"], *(d["code"] for d in state["detailedInfo"])]


async def becomes(
    http: httpx.AsyncClient, path: str, status: str, *codes: str, within: float = EVENT_BOUND
) -> Json:
    """Wait until ``path`` shows configurationState ``status`` with ``codes`` in its
    detailedInfo; returns the resource."""
    found: list[Json] = []

    async def check() -> bool:
        found[:] = [await get(http, path)]
        return _codes(found[0]) == [status, *codes]

    await eventually(check, within, f"{path} becoming {status} {codes}")
    return found[0]


def moved_a1(address: str) -> Json:
    return placed_nic("hostA", BLUE_WEB, address, "00155D000A01", accessControlList=ref(WEB_ACL))


@pytest.fixture
async def fleet(controller: InProcessController) -> AsyncIterator[list[Fleet]]:
    """Fleets a test starts; stopped at its end."""
    started: list[Fleet] = []
    async with contextlib.AsyncExitStack() as cleanup:  # every fleet stopped, even after a failure
        yield started
        for each in started:
            cleanup.push_async_callback(each.stop)


# -- the life of a NIC's configurationState ---------------------------------------------------


async def answered(
    http: httpx.AsyncClient, path: str, body: Json, figures: Figures, case: str
) -> Json:
    """PUT ``body``, which must answer without waiting for any host; records how long it
    took."""
    started = time.monotonic()
    async with asyncio.timeout(ANSWERED_BOUND):
        written = await put(http, path, body)
    figures.record(f"PUT answered ({case})", time.monotonic() - started, "s")
    return written


async def test_nic_state_follows_what_its_host_applied(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    figures: Figures,
) -> None:
    http = controller.http
    # No agent for host A yet.
    nic = await get(http, A1)
    assert props(nic)["provisioningState"] == "Succeeded"
    assert_configuration_state(nic, "Failure", "HostNotConnectedToController")
    assert_configuration_state(
        await get(http, "/servers/hostA"), "Failure", "HostNotConnectedToController"
    )
    # A NIC on no server has nothing to configure.
    unplaced = await put(
        http,
        "/networkInterfaces/spare",
        {"properties": {"ipConfigurations": [], "privateMacAddress": "00155D0000FF"}},
    )
    assert_configuration_state(unplaced, "Uninitialized")

    # The agent connects and applies its snapshot.
    dataplane = RecordingDataplane()
    agent = agents.start("hostA", agent_tokens["hostA"], dataplane=dataplane)
    await applied(agent, await revision_of(database))
    assert_configuration_state(await becomes(http, A1, "Success"), "Success")
    assert_configuration_state(await get(http, "/servers/hostA"), "Success")

    # Its dataplane gets stuck: a change of a1 is written (no waiting for the host, which
    # cannot apply it while stuck) and shows as not yet applied there.
    dataplane.gate.clear()
    changed = await answered(http, A1, moved_a1("24.30.1.12"), figures, "host stuck")
    assert not dataplane.gate.is_set()
    assert props(changed)["provisioningState"] == "Succeeded"
    assert_configuration_state(changed, "Uninitialized")
    assert_configuration_state(await get(http, A1), "Uninitialized")
    # Other NICs are not concerned: b1's host has no agent, c1's neither.
    assert_configuration_state(await get(http, B1), "Failure", "HostNotConnectedToController")
    # The server itself is connected all along.
    assert_configuration_state(await get(http, "/servers/hostA"), "Success")

    # The dataplane recovers: the host applies and acks.
    dataplane.gate.set()
    nic = await becomes(http, A1, "Success")
    assert props(nic)["provisioningState"] == "Succeeded"
    assert_configuration_state(nic, "Success")

    # The agent goes away: nothing is connected for host A any more.
    await agents.stop(agent)
    nic = await becomes(http, A1, "Failure", "HostNotConnectedToController")
    assert_configuration_state(nic, "Failure", "HostNotConnectedToController")
    assert props(nic)["provisioningState"] == "Succeeded"
    assert_configuration_state(
        await get(http, "/servers/hostA"), "Failure", "HostNotConnectedToController"
    )
    # And a write for the disconnected host still answers at once.
    changed = await answered(http, A1, moved_a1("24.30.1.13"), figures, "host disconnected")
    assert props(changed)["provisioningState"] == "Succeeded"
    assert_configuration_state(changed, "Failure", "HostNotConnectedToController")


async def test_a_failure_the_agent_reports_is_the_nics_detailed_info(
    controller: InProcessController,
    fleet: list[Fleet],
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    failing = fabric.endpoint("a1")
    hosts = Fleet([controller.base_url], [AgentSpec("hostA", agent_tokens["hostA"])])
    fleet.append(hosts)
    hosts.start(fail_keys=lambda key: key == failing)
    assert await hosts.connected(EVENT_BOUND)
    assert await hosts.applied(await revision_of(database), EVENT_BOUND)

    nic = await becomes(controller.http, A1, "Failure", "PolicyConfigurationFailure")
    state = assert_configuration_state(nic, "Failure", "PolicyConfigurationFailure")
    assert state["detailedInfo"] == [
        {
            "source": "VirtualSwitch",
            "code": "PolicyConfigurationFailure",
            "message": "simulated failure",
        }
    ]
    assert props(nic)["provisioningState"] == "Succeeded"
    # The host itself is connected and fine; only that NIC failed.
    assert_configuration_state(await get(controller.http, "/servers/hostA"), "Success")


async def test_a_reported_failure_stays_until_the_object_is_applied(
    controller: InProcessController,
    fleet: list[Fleet],
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    failing = fabric.endpoint("a1")
    hosts = Fleet([controller.base_url], [AgentSpec("hostA", agent_tokens["hostA"])])
    fleet.append(hosts)
    hosts.start(fail_keys=lambda key: key == failing)
    assert await hosts.applied(await revision_of(database), EVENT_BOUND)
    await becomes(controller.http, A1, "Failure", "PolicyConfigurationFailure")
    # Something unrelated to a1 is written: host A gets a bookmark (or a delta of the ACL).
    await put(controller.http, "/credentials/other", credential("X509Certificate", value="CD"))
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
    revision = await revision_of(database)
    assert await hosts.applied(revision, EVENT_BOUND)

    # Once the ack of that revision (which lists every failing object) is in the database,
    # the failure of a1 must still be there.
    async def written() -> bool:
        return await recorded_revision(database, fabric.servers["hostA"]) >= revision

    await eventually(written, what=f"host A's ack of revision {revision} written")
    nic = await get(controller.http, A1)
    assert_configuration_state(nic, "Failure", "PolicyConfigurationFailure")


async def test_a_failure_found_between_changes_is_reported_at_once_and_so_is_its_repair(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    """A resync finds an endpoint it cannot (re)build -- say its veth was deleted and cannot
    be made again -- with nothing new from the controller: the agent says so as an ack of the
    revision it holds, and says so again once the endpoint is repaired."""
    agent = agents.start("hostA", agent_tokens["hostA"])
    await applied(agent, await revision_of(database))
    await becomes(controller.http, A1, "Success")
    broken = Failure(fabric.endpoint("a1"), "PolicyConfigurationFailure", "veth is gone")
    await agent.report([broken])
    nic = await becomes(controller.http, A1, "Failure", "PolicyConfigurationFailure")
    assert nic["properties"]["configurationState"]["detailedInfo"][0]["message"] == ("veth is gone")
    await agent.report([])
    await becomes(controller.http, A1, "Success")


async def test_two_status_flushes_after_an_ack_it_is_in_the_database(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    """``statusFlushes`` (GET /southbound/v1/status) is what tests wait on instead of
    sleeping past the flush interval: it must mean what it says."""
    agent = agents.start("hostA", agent_tokens["hostA"])
    await applied(agent, await revision_of(database))
    await put(controller.http, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r7", 700)))
    revision = await revision_of(database)
    await applied(agent, revision)
    session = controller.southbound.hub.sessions[uuid.UUID(fabric.servers["hostA"])]
    await eventually(lambda: session.applied_revision >= revision, what="the ack received")
    await status_written(controller.base_url)
    assert await recorded_revision(database, fabric.servers["hostA"]) == revision


# -- ?wait=applied ------------------------------------------------------------------------------


async def test_wait_applied_answers_when_every_connected_host_acked(
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
    for agent in running.values():
        await applied(agent, await revision_of(database))
    await eventually(lambda: fabric.mapping("a1") in running["hostB"].state.objects)

    # a1 is on A and mapped on B: both must have applied it when the answer comes.
    response = await put_waiting(controller.http, A1, moved_a1("24.30.1.14"))
    assert response.status_code == 200, response.text
    assert response.headers["x-sdnc-applied"] == "true"
    assert running["hostA"].state.objects[fabric.endpoint("a1")]["ip"] == "24.30.1.14"
    assert running["hostB"].state.objects[fabric.mapping("a1")]["ip"] == "24.30.1.14"
    # The answer already shows it applied.
    nic = response.json()
    assert props(nic)["provisioningState"] == "Succeeded"
    assert_configuration_state(nic, "Success")

    # DELETE waits the same way.
    response = await controller.http.delete(url(f"{A1}?wait=applied&timeout={EVENT_BOUND:g}"))
    assert response.status_code == 200, response.text
    assert response.headers["x-sdnc-applied"] == "true"
    assert fabric.mapping("a1") not in running["hostB"].state.objects
    assert fabric.endpoint("a1") not in running["hostA"].state.objects


async def test_wait_applied_gives_up_after_the_timeout_when_a_host_does_not_ack(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    figures: Figures,
) -> None:
    stuck = RecordingDataplane()
    running = {
        "hostA": agents.start("hostA", agent_tokens["hostA"], provider_address=PROVIDER["hostA"]),
        "hostB": agents.start(
            "hostB", agent_tokens["hostB"], provider_address=PROVIDER["hostB"], dataplane=stuck
        ),
    }
    for agent in running.values():
        await applied(agent, await revision_of(database))
    await eventually(lambda: fabric.mapping("a1") in running["hostB"].state.objects)
    stuck.gate.clear()

    started = time.monotonic()
    response = await put_waiting(controller.http, A1, moved_a1("24.30.1.16"), within=0.5)
    elapsed = time.monotonic() - started
    figures.record("PUT ?wait=applied&timeout=0.5 with a stuck host answered", elapsed, "s")
    assert response.status_code == 200, response.text
    assert response.headers["x-sdnc-applied"] == "false"
    assert 0.5 <= elapsed < 0.5 + ANSWERED_BOUND
    # Written all the same, and applied on A (B is the one behind).
    nic = response.json()
    assert props(nic)["provisioningState"] == "Succeeded"
    assert_configuration_state(nic, "Success")
    assert running["hostA"].state.objects[fabric.endpoint("a1")]["ip"] == "24.30.1.16"

    # Once B catches up, the same wait succeeds.
    stuck.gate.set()
    await applied(running["hostB"], await revision_of(database))
    response = await put_waiting(controller.http, A1, moved_a1("24.30.1.17"))
    assert response.headers["x-sdnc-applied"] == "true"


async def test_wait_applied_does_not_wait_for_hosts_that_are_not_connected(
    controller: InProcessController,
    agents: Agents,
    database: Database,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    figures: Figures,
) -> None:
    agent = agents.start("hostA", agent_tokens["hostA"])
    await applied(agent, await revision_of(database))
    cases = (
        # c1 is on host C, which has no agent.
        (C1, placed_nic("hostC", RED_DB, "10.1.1.33", "00155D000C01")),
        # A credential concerns no host at all.
        ("/credentials/other", credential("X509Certificate", value="AB")),
    )
    for path, body in cases:
        started = time.monotonic()
        response = await put_waiting(controller.http, path, body, within=WAIT_TIMEOUT)
        elapsed = time.monotonic() - started
        figures.record(f"PUT {path} ?wait=applied with no connected host to wait for", elapsed, "s")
        assert elapsed < ANSWERED_BOUND, path
        assert response.status_code in (200, 201), response.text
        assert response.headers["x-sdnc-applied"] == "true"


@pytest.mark.parametrize(
    "query",
    [
        "wait=soon",
        "wait=",
        "wait=applied&timeout=abc",
        "wait=applied&timeout=0",
        "wait=applied&timeout=-1",
        "wait=applied&timeout=61",
        "wait=applied&timeout=nan",
        "wait=applied&timeout=inf",
    ],
)
async def test_bad_wait_parameters_are_refused_and_change_nothing(
    controller: InProcessController, fabric: Fabric, query: str
) -> None:
    http = controller.http
    before = await get(http, A1)
    response = await http.put(f"{url(A1)}?{query}", json=moved_a1("24.30.1.18"), headers=PS_HEADERS)
    assert_error(response, 400, "InvalidInput")
    after = await get(http, A1)
    assert after["etag"] == before["etag"]
    response = await http.delete(f"{url(A1)}?{query}")
    assert_error(response, 400, "InvalidInput")
    assert (await get(http, A1))["etag"] == before["etag"]
