"""One agent's state cannot hold back the status of the others, on PostgreSQL and on SQLite.

Acks reach the database in one statement per flush for every agent that reported. If the
database refuses one agent's row (a value it cannot store, a server deleted meanwhile), the
others are written all the same, the offender is told (``StatusNotRecorded``) and disconnected,
and the healthy agents' servers keep showing ``configurationState`` ``Success``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller import protocol
from controller.settings import Settings
from controller.store import migrate
from controller.store.database import Database
from tests.conftest import BACKEND
from tests.support.bodies import connection, server
from tests.support.figures import Figures
from tests.support.nbi import delete, get, props, put
from tests.support.refusals import server_status, status_written_after, tracebacks
from tests.support.southbound import (
    BLUE_WEB,
    FAST,
    PROVIDER,
    Agents,
    Fabric,
    InProcessController,
    applied,
    build_fabric,
    eventually,
    in_process_controller,
    placed_nic,
    revision_of,
    tokens,
)

B1_MAC = "00155D000B01"


@pytest.fixture(params=["postgres", "sqlite"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'controller.db'}"
        migrate.upgrade(url)
        return url
    if BACKEND != "postgres":
        pytest.skip("the PostgreSQL case runs with the PostgreSQL suite")
    url: str = request.getfixturevalue("database_url")
    return url


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[Database]:
    database = Database(backend_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def running(backend_url: str) -> AsyncIterator[InProcessController]:
    async with in_process_controller(Settings(database_url=backend_url, **FAST)) as controller:
        yield controller


@pytest.fixture
async def fleet(running: InProcessController) -> AsyncIterator[Agents]:
    agents = Agents([running.base_url])
    try:
        yield agents
    finally:
        await agents.close()


async def _reported(database: Database, server_instance_id: str, revision: int) -> None:
    async def check() -> bool:
        row = await server_status(database, server_instance_id)
        return row is not None and row.connected and row.applied_revision >= revision

    await eventually(check, 10, f"{server_instance_id} reported as applying {revision}")


async def _server_status(controller: InProcessController, server_id: str) -> str:
    resource = await get(controller.http, f"/servers/{server_id}")
    status: str = props(resource)["configurationState"]["status"]
    return status


async def test_a_row_the_database_refuses_holds_back_no_other_agent(
    running: InProcessController,
    store: Database,
    fleet: Agents,
    caplog: pytest.LogCaptureFixture,
    figures: Figures,
) -> None:
    fabric: Fabric = await build_fabric(running.http)
    token = await tokens(store, ("hostA", "hostB"))
    healthy = fleet.start("hostB", token["hostB"], provider_address=PROVIDER["hostB"])
    victim = fleet.start("hostA", token["hostA"], provider_address=PROVIDER["hostA"])
    revision = await revision_of(store)
    for agent in (healthy, victim):
        await applied(agent, revision)
    moment = datetime.now(UTC)
    started = time.monotonic()

    # A future bug lets a value through that the database cannot store (the channel's
    # validation would refuse this revision): bypass it and put it on the status board.
    board = running.southbound.status
    board.acked(uuid.UUID(fabric.servers["hostA"]), protocol.MAX_REVISION + 1, [])

    # The healthy agent's next report (of a change to its NIC) is written all the same ...
    await put(
        running.http, "/networkInterfaces/b1", placed_nic("hostB", BLUE_WEB, "24.30.1.21", B1_MAC)
    )
    changed = await revision_of(store)
    await _reported(store, fabric.servers["hostB"], changed)
    figures.record("healthy agent's ack written after the bad row", time.monotonic() - started, "s")
    assert await _server_status(running, "hostB") == "Success"
    # ... and its liveness renewed.
    await status_written_after(store, fabric.servers["hostB"], datetime.now(UTC), within=15)
    # ... the offender is told, and disconnected ...
    await eventually(lambda: victim.stats.refusals >= 1, 10, "the victim to be refused")
    assert victim.last_refusal is not None
    assert victim.last_refusal[0] == protocol.STATUS_NOT_RECORDED
    # ... and, reconnected with a state the database takes, it is reported again.
    await status_written_after(store, fabric.servers["hostA"], moment)
    await eventually(lambda: victim.connected.is_set(), 10, "the victim to reconnect")
    assert healthy.stats.connects == 1
    assert await _server_status(running, "hostA") == "Success"
    assert await _server_status(running, "hostB") == "Success"
    assert tracebacks(caplog.records) == []
    figures.record("backend", store.url.get_backend_name())


async def test_deleting_a_connected_agents_server_disturbs_no_other_agent(
    running: InProcessController,
    store: Database,
    fleet: Agents,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fabric: Fabric = await build_fabric(running.http)
    created = await put(
        running.http, "/servers/hostD", server(connection("/credentials/cert", address="hostD"))
    )
    token = await tokens(store, ("hostB", "hostD"))
    healthy = fleet.start("hostB", token["hostB"], provider_address=PROVIDER["hostB"])
    doomed = fleet.start("hostD", token["hostD"])
    revision = await revision_of(store)
    for agent in (healthy, doomed):
        await applied(agent, revision)
    await status_written_after(store, created["instanceId"], datetime.min.replace(tzinfo=UTC))

    # The server goes (its status row with it) while its agent still reports: that row can no
    # longer be written (its server is not there), but it is in the same flush as the others.
    await delete(running.http, "/servers/hostD")
    moment = datetime.now(UTC)
    await eventually(lambda: doomed.stats.refusals >= 1, 15, "the agent of hostD to be refused")
    assert doomed.last_refusal is not None
    assert doomed.last_refusal[0] == protocol.STATUS_NOT_RECORDED
    await status_written_after(store, fabric.servers["hostB"], moment)
    assert await _server_status(running, "hostB") == "Success"
    assert await server_status(store, created["instanceId"]) is None
    assert healthy.stats.connects == 1
    assert tracebacks(caplog.records) == []
