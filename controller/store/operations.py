"""What operators ask the database: the schema's migration revision (for readiness) and every
server with its agent's reported status (for ``sdnc hosts``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.changes import ChangeLog
from controller.store.tables import AgentStatus, Resource

AGENTS = cast(Table, AgentStatus.__table__)
RESOURCES = cast(Table, Resource.__table__)


@dataclass(frozen=True)
class DatabaseFacts:
    """Read in one transaction: the Alembic revision the schema is at (None: not migrated)
    and the newest committed change-log revision."""

    schema_revision: str | None
    committed_revision: int


@dataclass(frozen=True)
class ServerStatus:
    """One server and what its agent last reported (None when it never connected)."""

    instance_id: uuid.UUID
    resource_ref: str
    replica: str | None
    connected: bool
    applied_revision: int | None
    failures: list[dict[str, Any]]
    provider_address: str | None
    last_seen: datetime | None


async def database_facts(connection: AsyncConnection, *, is_postgres: bool) -> DatabaseFacts:
    try:
        # A savepoint: on PostgreSQL a missing table would abort the whole transaction.
        async with connection.begin_nested():
            schema = await connection.execute(text("SELECT version_num FROM alembic_version"))
            revision = schema.scalar()
    except DBAPIError:
        revision = None
    committed = await ChangeLog(connection, is_postgres=is_postgres).current()
    return DatabaseFacts(None if revision is None else str(revision), committed)


async def server_statuses(connection: AsyncConnection) -> list[ServerStatus]:
    """Every server, in resourceRef order, with its agent's row when there is one."""
    query = (
        select(RESOURCES.c.instance_id, RESOURCES.c.resource_ref, AGENTS)
        .select_from(RESOURCES.outerjoin(AGENTS, AGENTS.c.server_id == RESOURCES.c.instance_id))
        .where(RESOURCES.c.kind == "servers")
        .order_by(RESOURCES.c.path_key)
    )
    return [_status(row._mapping) for row in await connection.execute(query)]


def _status(row: Any) -> ServerStatus:
    reported = row["failures"] or {}
    last_seen = row["last_seen"]
    return ServerStatus(
        instance_id=row["instance_id"],
        resource_ref=row["resource_ref"],
        replica=row["replica"] or None,
        connected=bool(row["connected"]),
        applied_revision=row["applied_revision"],
        failures=list(reported.get("failures") or []),
        provider_address=row["provider_address"],
        last_seen=last_seen,
    )
