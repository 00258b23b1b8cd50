"""The status board keeps what it could not write: an agent's ack and its disconnection,
learned while the database was unreachable, reach the database with the first flush that
gets through. The board here talks to a real database that refuses every connection (nothing
listens on its port), then to the test's database."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import ServiceUnavailable
from controller.southbound.status import StatusBoard
from controller.store.agents import AgentRepository, AgentState
from controller.store.database import Database, Timeouts
from tests.support.bodies import connection, credential, server
from tests.support.nbi import put

UNREACHABLE = "postgresql+psycopg://sdnc@127.0.0.1:1/sdnc"


async def stored_state(database: Database, server_id: uuid.UUID) -> AgentState | None:
    async def read(connection: AsyncConnection) -> dict[uuid.UUID, AgentState]:
        agents = AgentRepository(connection, is_postgres=database.is_postgres)
        return await agents.states([server_id])

    return (await database.run(read, write=False)).get(server_id)


@pytest.fixture
async def server_id(client: httpx.AsyncClient) -> uuid.UUID:
    await put(client, "/credentials/cert", credential("X509Certificate", value="AB12"))
    created = await put(client, "/servers/hostA", server(connection("/credentials/cert")))
    return uuid.UUID(created["instanceId"])


async def test_what_a_flush_could_not_write_is_written_by_the_next(
    database: Database, server_id: uuid.UUID
) -> None:
    unreachable = Database(UNREACHABLE, timeouts=Timeouts(total=2.0, connect=1.0))
    board = StatusBoard(unreachable, "replica-1")
    try:
        board.connected(server_id, 0, None)
        board.acked(server_id, 7, [])
        board.disconnected(server_id)
        with pytest.raises(ServiceUnavailable):
            await board.flush()
        with pytest.raises(ServiceUnavailable):
            await board.flush()  # a second failure forgets nothing either
    finally:
        await unreachable.dispose()

    board.database = database  # the database is back
    await board.flush()
    state = await stored_state(database, server_id)
    assert state is not None
    assert not state.connected
    assert state.applied_revision == 7
