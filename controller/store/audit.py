"""The audit log: appended to, read newest first with filters, pruned past its retention."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.compiled import Bound, Compiled
from controller.store.tables import AuditEvent, Resource

EVENTS = cast(Table, AuditEvent.__table__)
RESOURCES = cast(Table, Resource.__table__)


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    principal: str | None
    auth_method: str | None
    source: str | None
    method: str
    path: str
    status: int
    etag_before: str | None = None
    etag_after: str | None = None
    request_id: str | None = None
    outcome: str | None = None


# Every write runs both (docs/performance.md).
_COLUMNS = (*(field.name for field in fields(AuditRow)), "path_key")
_APPEND = Compiled(insert(EVENTS).values({name: bindparam(name) for name in _COLUMNS}))
_TOP_LEVEL_ETAG = Compiled(
    select(RESOURCES.c.etag).where(RESOURCES.c.path_key == bindparam("path_key"))
)


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    principal: str | None = None
    # Events on this path or below it (case-insensitive).
    path: str | None = None
    # Only events older than the one with this id (the next page).
    before_id: int | None = None
    limit: int = 100


def appended(row: AuditRow) -> Bound:
    """The statement appending ``row``, to run in a transaction (``Bound.run``)."""
    values: dict[str, Any] = {**asdict(row), "path_key": row.path.lower()}
    return Bound(_APPEND, values)


async def append(connection: AsyncConnection, row: AuditRow, *, is_postgres: bool) -> None:
    await appended(row).run(connection, is_postgres=is_postgres)


async def events(connection: AsyncConnection, query: AuditQuery) -> list[tuple[int, AuditRow]]:
    """(id, event) newest first, as ``query`` filters them."""
    statement = select(EVENTS.c.id, *(EVENTS.c[name] for name in _FIELDS))
    if query.since is not None:
        statement = statement.where(EVENTS.c.at >= query.since)
    if query.until is not None:
        statement = statement.where(EVENTS.c.at < query.until)
    if query.principal is not None:
        statement = statement.where(EVENTS.c.principal == query.principal)
    if query.path is not None:
        key = query.path.lower().rstrip("/")
        below = _escape_like(key) + "/%"
        statement = statement.where(
            (EVENTS.c.path_key == key) | EVENTS.c.path_key.like(below, escape="\\")
        )
    if query.before_id is not None:
        statement = statement.where(EVENTS.c.id < query.before_id)
    statement = statement.order_by(EVENTS.c.id.desc()).limit(query.limit)
    return [(row[0], AuditRow(*row[1:])) for row in await connection.execute(statement)]


async def prune(connection: AsyncConnection, older_than: datetime) -> int:
    result = await connection.execute(delete(EVENTS).where(EVENTS.c.at < older_than))
    return result.rowcount


async def top_level_etag(
    connection: AsyncConnection, resource_ref: str, *, is_postgres: bool
) -> str | None:
    """The etag of the top-level resource ``resource_ref`` (its aggregate's), None if absent."""
    params = {"path_key": resource_ref.lower()}
    found = await _TOP_LEVEL_ETAG.rows(connection, params, is_postgres=is_postgres)
    return str(found[0][0]) if found and found[0][0] is not None else None


async def count(connection: AsyncConnection) -> int:
    return int(await connection.scalar(select(func.count()).select_from(EVENTS)) or 0)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_FIELDS = tuple(AuditRow.__dataclass_fields__)
