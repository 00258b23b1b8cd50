"""DIP health through the southbound: the simulated agents run the probes of their DIPs and
report changes in their acks; the controller keeps the latest per (probe, DIP), takes a DIP
that is Down out of the slot tables and puts it back when it recovers, keeps a disconnected
host's reports, and shows them in slbState."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller import protocol
from controller.agent.simulator import AgentSpec, Fleet
from controller.store.database import Database
from controller.store.health import HEALTH
from tests.support.bodies import ref
from tests.support.nbi import delete, get, put
from tests.support.slb import SLB_HOSTS, balanced_deployment, dip_nic
from tests.support.southbound import (
    InProcessController,
    channel,
    closed_by_the_controller,
    eventually,
    receive_policy,
    say_hello,
    tokens,
)

LB = "/loadBalancers/LB1"
BE = f"{LB}/backendAddressPools/BE1"
PROVIDER = {"h1": "198.18.0.11", "h2": "198.18.0.12", "mux": "198.18.0.13"}


@pytest.fixture
async def fleet(
    controller: InProcessController, database: Database
) -> AsyncIterator[tuple[Fleet, dict[str, str]]]:
    ids = await balanced_deployment(controller.http)
    minted = await tokens(database, SLB_HOSTS)
    running = Fleet(
        [controller.base_url], [AgentSpec(h, minted[h], PROVIDER[h]) for h in SLB_HOSTS]
    )
    running.start()
    try:
        yield running, ids
    finally:
        await running.stop()


def _rule_dips(fleet: Fleet, host: str) -> list[str] | None:
    session = next(s for s in fleet.sessions if s.server == host)
    rules = [b for k, b in session.state.objects.items() if k.startswith("lbRule/")]
    return list(rules[0]["dips"]) if rules else None


async def _stored(database: Database) -> list[tuple[str, str, str]]:
    async def work(connection: AsyncConnection) -> list[tuple[str, str, str]]:
        rows = await connection.execute(select(HEALTH.c.probe_id, HEALTH.c.dip_id, HEALTH.c.state))
        return [(str(p), str(d), s) for p, d, s in rows]

    return await database.run(work, write=False)


async def _slb_health(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.put("/networking/v1/diagnostics/slbState", json={})
    assert response.status_code == 201, response.text
    operation = response.json()["properties"]["operationId"]
    result = await get(http, f"/diagnostics/slbStateResults/{operation}")
    dips = result["properties"]["result"][0]["dips"]
    return {d["privateIPAddress"]: d["health"] for d in dips}


async def test_a_failing_probe_takes_the_dip_out_and_recovery_puts_it_back(
    controller: InProcessController,
    database: Database,
    fleet: tuple[Fleet, dict[str, str]],
) -> None:
    agents, ids = fleet
    both = ["24.30.1.4", "24.30.1.5"]
    for host in SLB_HOSTS:
        await eventually(lambda h=host: _rule_dips(agents, h) == both, 10, f"{host} rule")
    # Each host probes its own DIP only.
    h2 = next(s for s in agents.sessions if s.server == "h2")
    assert set(h2.health) == {(ids["P1"], ids["VM2"])}

    await agents.fail_probe("h2", ids["VM2"])
    for host in SLB_HOSTS:
        await eventually(
            lambda h=host: _rule_dips(agents, h) == ["24.30.1.4"], 10, f"{host} without VM2"
        )
    # Each agent said what it found when it connected (Up), then VM2's change.
    assert sorted(await _stored(database)) == sorted(
        [(ids["P1"], ids["VM1"], "Up"), (ids["P1"], ids["VM2"], "Down")]
    )
    assert await _slb_health(controller.http) == {"24.30.1.4": "Up", "24.30.1.5": "Down"}

    # A disconnected host keeps its last report: the DIP stays out.
    await agents.stop()
    await asyncio.sleep(0.3)
    assert (ids["P1"], ids["VM2"], "Down") in await _stored(database)
    status = controller.app.state.southbound
    rule = next(p for p in status.compiler.objects.values() if p.wire.startswith("lbRule/"))
    assert rule.body["dips"] == ["24.30.1.4"]

    # A restarted agent remembers nothing: it says what its probes find now (VM2 answers).
    agents.sessions.clear()
    agents.start()
    for host in SLB_HOSTS:
        await eventually(lambda h=host: _rule_dips(agents, h) == both, 10, f"{host} with VM2")
    assert (ids["P1"], ids["VM2"], "Up") in await _stored(database)
    # Down and up again while connected.
    await agents.fail_probe("h2", ids["VM2"])
    await eventually(lambda: _rule_dips(agents, "mux") == ["24.30.1.4"], 10, "mux without VM2")
    await agents.fail_probe("h2", ids["VM2"], failing=False)
    for host in SLB_HOSTS:
        await eventually(lambda h=host: _rule_dips(agents, h) == both, 10, f"{host} with VM2")
    assert (ids["P1"], ids["VM2"], "Up") in await _stored(database)


async def test_reports_of_dips_a_host_does_not_probe_are_ignored(
    controller: InProcessController,
    database: Database,
    fleet: tuple[Fleet, dict[str, str]],
) -> None:
    agents, ids = fleet
    for host in SLB_HOSTS:
        await eventually(lambda h=host: _rule_dips(agents, h) is not None, 10, f"{host} rule")
    h1 = next(s for s in agents.sessions if s.server == "h1")
    h1.health[(ids["P1"], ids["VM2"])] = protocol.UP  # VM2 is h2's
    h1._health_unsent[(ids["P1"], ids["VM2"])] = protocol.DOWN
    await h1.probe_again()
    await asyncio.sleep(0.5)
    assert (ids["P1"], ids["VM2"], "Down") not in await _stored(database)
    assert _rule_dips(agents, "h1") == ["24.30.1.4", "24.30.1.5"]


async def test_a_malformed_health_report_is_refused(
    controller: InProcessController, database: Database
) -> None:
    await balanced_deployment(controller.http)
    minted = await tokens(database, SLB_HOSTS)
    async with channel(controller.base_url, "h1", minted["h1"]) as websocket:
        await say_hello(websocket, "h1", 0)
        snapshot = await receive_policy(websocket)
        ack = protocol.ack(snapshot["revision"])
        ack["health"] = [{"probe": "P1", "dip": "VM2", "state": "Down"}]
        await websocket.send(protocol.encode(ack))
        refusal = await receive_policy(websocket)
        assert (refusal["type"], refusal["code"]) == (protocol.ERROR, protocol.BAD_MESSAGE)
        assert "health.0.probe" in refusal["message"]
        assert await closed_by_the_controller(websocket)
    assert await _stored(database) == []


async def test_agents_told_to_fail_a_probe_report_it_when_they_connect(
    controller: InProcessController, database: Database
) -> None:
    ids = await balanced_deployment(controller.http)
    minted = await tokens(database, SLB_HOSTS)
    agents = Fleet([controller.base_url], [AgentSpec(h, minted[h], PROVIDER[h]) for h in SLB_HOSTS])
    agents.start(failing_dips=frozenset({ids["VM2"]}))
    try:
        for host in SLB_HOSTS:
            await eventually(
                lambda h=host: _rule_dips(agents, h) == ["24.30.1.4"], 10, f"{host} without VM2"
            )
        assert (ids["P1"], ids["VM2"], "Down") in await _stored(database)
    finally:
        await agents.stop()


async def test_a_host_declared_gone_takes_its_reports_with_it(
    controller: InProcessController,
    database: Database,
    fleet: tuple[Fleet, dict[str, str]],
) -> None:
    """VM2 is reported Down by h2, moves to h1 (its last report still holds: h1 has not said
    otherwise), then h2 is deleted: the report goes with it and VM2 is back in the tables."""
    agents, ids = fleet
    both = ["24.30.1.4", "24.30.1.5"]
    await eventually(lambda: _rule_dips(agents, "mux") == both, 10, "the mux's rule")
    await agents.fail_probe("h2", ids["VM2"])
    await eventually(lambda: _rule_dips(agents, "mux") == ["24.30.1.4"], 10, "VM2 out")
    body = dip_nic("ip1", "24.30.1.5", loadBalancerBackendAddressPools=[ref(BE)])
    body["properties"]["server"] = ref("/servers/h1")
    await put(controller.http, "/networkInterfaces/VM2", body)
    await asyncio.sleep(0.3)
    assert _rule_dips(agents, "mux") == ["24.30.1.4"]
    await delete(controller.http, "/servers/h2")
    await eventually(lambda: _rule_dips(agents, "mux") == both, 10, "VM2 back")
    assert (ids["P1"], ids["VM2"], "Down") not in await _stored(database)
    assert await _slb_health(controller.http) == {"24.30.1.4": "Up", "24.30.1.5": "Unknown"}


async def test_an_up_right_after_a_down_the_replica_has_not_applied_yet_puts_the_dip_back(
    controller: InProcessController,
    database: Database,
    fleet: tuple[Fleet, dict[str, str]],
) -> None:
    """A Down, then at once an Up (a new DIP's first probe, a flap): the second report comes
    before the follower applied the first. Deciding by the model (still without the Down)
    stored the Up without logging it, and the DIP stayed out of its rules for good."""
    agents, ids = fleet
    both = ["24.30.1.4", "24.30.1.5"]
    for host in SLB_HOSTS:
        await eventually(lambda h=host: _rule_dips(agents, h) == both, 10, f"{host} rule")
    runtime = controller.app.state.southbound
    server = uuid.UUID(ids["h2"])

    def report(state: str) -> list[protocol.Health]:
        return [protocol.Health(probe=ids["P1"], dip=ids["VM2"], state=state)]

    await runtime._report_health(server, "/servers/h2", report(protocol.DOWN))
    await runtime._report_health(server, "/servers/h2", report(protocol.UP))
    for host in SLB_HOSTS:
        await eventually(lambda h=host: _rule_dips(agents, h) == both, 10, f"{host} with VM2")
    await asyncio.sleep(0.3)  # the follower has applied both by now
    rule = next(p for p in runtime.compiler.objects.values() if p.wire.startswith("lbRule/"))
    assert rule.body["dips"] == both
    assert (ids["P1"], ids["VM2"], "Up") in await _stored(database)
