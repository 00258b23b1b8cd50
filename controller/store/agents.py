"""Agent status (connection, applied revision, failures, provider address) and the shared
secret agent tokens are signed with."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.tables import AgentStatus, ControllerSecret, Resource

AGENTS = cast(Table, AgentStatus.__table__)
SECRETS = cast(Table, ControllerSecret.__table__)
RESOURCES = cast(Table, Resource.__table__)

# A replica renews its agents' rows every few seconds (``StatusBoard.touch_every``); a row
# not renewed for this long belongs to a replica that died, so its agent is not connected.
STALE_AFTER = timedelta(seconds=30)


def is_live(
    connected: bool,
    last_seen: datetime | None,
    now: datetime,
    stale_after: timedelta = STALE_AFTER,
) -> bool:
    """The one liveness rule: an agent is connected when its row says so and the replica
    holding its connection has renewed the row within ``stale_after``."""
    return connected and last_seen is not None and now - last_seen <= stale_after


@dataclass(frozen=True)
class AgentState:
    server_id: uuid.UUID
    replica: str
    connected: bool
    applied_revision: int
    failures: dict[str, Any] | None
    provider_address: str | None
    last_seen: datetime
    connected_since: datetime


_COLUMNS = (
    "server_id",
    "replica",
    "connected",
    "applied_revision",
    "failures",
    "provider_address",
    "last_seen",
    "connected_since",
)
_TYPES = ("uuid", "text", "bool", "bigint", "json", "text", "timestamptz", "timestamptz")
_PG_SAVE = (
    f"INSERT INTO agent_status ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _TYPES)}) "
    "ON CONFLICT (server_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    + " WHERE agent_status.connected_since <= excluded.connected_since"
)


def _row(state: AgentState) -> tuple[Any, ...]:
    failures = None if state.failures is None else json.dumps(state.failures)
    return (
        state.server_id,
        state.replica,
        state.connected,
        state.applied_revision,
        failures,
        state.provider_address,
        state.last_seen,
        state.connected_since,
    )


def _sqlite_save() -> Any:
    statement = sqlite_insert(AGENTS)
    return statement.on_conflict_do_update(
        index_elements=[AGENTS.c.server_id],
        set_={c.name: statement.excluded[c.name] for c in AGENTS.c if c.name != "server_id"},
        where=AGENTS.c.connected_since <= statement.excluded.connected_since,
    )


class AgentRepository:
    def __init__(self, connection: AsyncConnection, *, is_postgres: bool) -> None:
        self.connection = connection
        self.is_postgres = is_postgres

    async def save(self, states: Sequence[AgentState]) -> None:
        """Insert or overwrite the status of these agents -- unless a row describes a newer
        connection than the state written (the agent has moved on to another replica)."""
        if not states:
            return
        if self.is_postgres:
            # A thousand acks are flushed at once when a change reaches every host: one
            # statement over arrays costs a round trip, where per-row parameters cost
            # tens of milliseconds of Python.
            columns = list(zip(*(_row(state) for state in states), strict=True))
            await self.connection.exec_driver_sql(_PG_SAVE, tuple(list(c) for c in columns))
            return
        await self.connection.execute(_sqlite_save(), [state.__dict__ for state in states])

    async def record_address(self, server: uuid.UUID, address: str, now: datetime) -> None:
        """Keep the provider address ``server``'s agent reported (the rest of its row is its
        connection's to write)."""
        insert = pg_insert if self.is_postgres else sqlite_insert
        never = datetime.fromtimestamp(0, UTC)
        row = AgentState(server, "", False, 0, None, address, now, never)
        statement = insert(AGENTS).values(row.__dict__)
        await self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[AGENTS.c.server_id], set_={"provider_address": address}
            )
        )

    async def states(self, server_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, AgentState]:
        if not server_ids:
            return {}
        query = select(AGENTS).where(AGENTS.c.server_id.in_(list(server_ids)))
        states: dict[uuid.UUID, AgentState] = {}
        for row in await self.connection.execute(query):
            states[row.server_id] = AgentState(**row._mapping)
        return states

    async def touch(self, replica: str, server_ids: Sequence[uuid.UUID], now: datetime) -> None:
        """Renew the liveness of the agents connected to ``replica``."""
        if server_ids:
            await self.connection.execute(
                update(AGENTS)
                .where(AGENTS.c.server_id.in_(list(server_ids)), AGENTS.c.replica == replica)
                .values(last_seen=now)
            )

    async def mark_disconnected(
        self, replica: str, server_ids: Sequence[uuid.UUID], now: datetime
    ) -> None:
        """Show the agents of ``server_ids`` connected to ``replica`` as disconnected, whatever
        else their rows hold."""
        if server_ids:
            await self.connection.execute(
                update(AGENTS)
                .where(AGENTS.c.server_id.in_(list(server_ids)), AGENTS.c.replica == replica)
                .values(connected=False, last_seen=now)
            )

    async def server_by_resource_id(self, resource_id: str) -> tuple[uuid.UUID, str] | None:
        """instanceId and resourceRef of the server ``resource_id``."""
        query = select(RESOURCES.c.instance_id, RESOURCES.c.resource_ref).where(
            RESOURCES.c.path_key == f"/servers/{resource_id}".lower()
        )
        row = (await self.connection.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def server_by_instance_id(self, instance_id: uuid.UUID) -> str | None:
        query = select(RESOURCES.c.resource_ref).where(
            RESOURCES.c.instance_id == instance_id, RESOURCES.c.kind == "servers"
        )
        return (await self.connection.execute(query)).scalar()

    async def secret(self, name: str) -> str:
        """The shared secret ``name``, created on first use by whichever replica gets there."""
        query = select(SECRETS.c.value).where(SECRETS.c.name == name)
        found = (await self.connection.execute(query)).scalar()
        if found is not None:
            return str(found)
        insert = pg_insert if self.is_postgres else sqlite_insert
        value = secrets.token_urlsafe(48)
        await self.connection.execute(
            insert(SECRETS).values(name=name, value=value).on_conflict_do_nothing()
        )
        return str((await self.connection.execute(query)).scalar_one())
