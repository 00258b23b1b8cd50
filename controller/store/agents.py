"""Agent status (connection, applied revision, failures, provider address) and the shared
secret agent tokens are signed with."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.tables import AgentStatus, ControllerSecret, Resource

AGENTS = cast(Table, AgentStatus.__table__)
SECRETS = cast(Table, ControllerSecret.__table__)
RESOURCES = cast(Table, Resource.__table__)


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


class AgentRepository:
    def __init__(self, connection: AsyncConnection, *, is_postgres: bool) -> None:
        self.connection = connection
        self.is_postgres = is_postgres

    async def save(self, states: Sequence[AgentState]) -> None:
        """Insert or overwrite the status of these agents -- unless a row describes a newer
        connection than the state written (the agent has moved on to another replica)."""
        if not states:
            return
        rows = [state.__dict__ for state in states]
        insert = pg_insert if self.is_postgres else sqlite_insert
        statement = insert(AGENTS).values(rows)
        await self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[AGENTS.c.server_id],
                set_={c: statement.excluded[c] for c in rows[0] if c != "server_id"},
                where=AGENTS.c.connected_since <= statement.excluded.connected_since,
            )
        )

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
            values = dict(row._mapping)
            # SQLite hands timestamps back without their zone; they were written in UTC.
            for moment in ("last_seen", "connected_since"):
                if values[moment].tzinfo is None:
                    values[moment] = values[moment].replace(tzinfo=UTC)
            states[row.server_id] = AgentState(**values)
        return states

    async def touch(self, replica: str, server_ids: Sequence[uuid.UUID], now: datetime) -> None:
        """Renew the liveness of the agents connected to ``replica``."""
        if server_ids:
            await self.connection.execute(
                update(AGENTS)
                .where(AGENTS.c.server_id.in_(list(server_ids)), AGENTS.c.replica == replica)
                .values(last_seen=now)
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
