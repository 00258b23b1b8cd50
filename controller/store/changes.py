"""The change log: one row per committed write, in commit order, with the documents a replica
needs to follow the model without reading the resource tables.

Revisions come from the single row of ``revision_counter``, updated as the last statements of
the writing transaction: its row lock is held until the commit, so revisions commit in order
and a reader that has seen revision R never later finds a row below R (a sequence would not
give that guarantee). Every write waits for that lock, so it is held as briefly as can be: on
PostgreSQL the COMMIT is sent together with the statement that takes it. On PostgreSQL the
same transaction NOTIFYs ``sdnc_changes``, which is delivered at commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
import sqlalchemy
from psycopg.types.json import Json
from sqlalchemy import Table, Text, bindparam, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.compiled import Bound, Compiled
from controller.store.database import json_text
from controller.store.tables import AgentStatus, Change, Resource, RevisionCounter

CHANGES = cast(Table, Change.__table__)
COUNTER = cast(Table, RevisionCounter.__table__)
RESOURCES = cast(Table, Resource.__table__)
AGENTS = cast(Table, AgentStatus.__table__)
CHANNEL = "sdnc_changes"
# PostgreSQL: the whole record in one round trip (the four statements below, as one).
_RECORD = Compiled(
    text(
        """
        WITH bumped AS (
            UPDATE revision_counter SET revision = revision + 1 WHERE id = 1
            RETURNING revision
        ), logged AS (
            INSERT INTO change_log (revision, root_id, root_kind, document, created_at)
            SELECT revision, :root_id, :root_kind, :document, :created_at FROM bumped
        ), stamped AS (
            UPDATE resources SET revision = (SELECT revision FROM bumped)
            WHERE :stamp AND instance_id = :root_id
        )
        SELECT revision, pg_notify(:channel, revision::text) FROM bumped
        """
    )
)

# What every replica runs after every commit it hears of. The documents come as JSON text:
# the follower decodes them, a big one (a 10,000-rule ACL: 2.5 MB) off its event loop.
_SINCE = Compiled(
    select(
        CHANGES.c.revision,
        CHANGES.c.root_id,
        CHANGES.c.root_kind,
        sqlalchemy.cast(CHANGES.c.document, Text).label("document"),
    )
    .where(CHANGES.c.revision > bindparam("revision"))
    .order_by(CHANGES.c.revision)
    .limit(bindparam("limit"))
)


def _encoder(encoded: str | None) -> Callable[[Any], str]:
    """How psycopg gets a document's JSON text: ``encoded`` when it was made beforehand."""
    if encoded is None:
        return json_text
    return lambda _document: encoded


@dataclass(frozen=True)
class ChangeRow:
    revision: int
    root_id: uuid.UUID
    root_kind: str
    document_text: str | None  # JSON; None (or "null") for a deletion

    def document(self) -> dict[str, Any] | None:
        """The documents, decoded."""
        if self.document_text is None:
            return None
        decoded: dict[str, Any] | None = orjson.loads(self.document_text)
        return decoded


class ChangeLog:
    def __init__(self, connection: AsyncConnection, *, is_postgres: bool) -> None:
        self.connection = connection
        self.is_postgres = is_postgres

    async def record(
        self,
        root_id: uuid.UUID,
        root_kind: str,
        document: dict[str, Any] | None,
        now: datetime,
        *,
        resource: bool = True,
        commit: bool = False,
        encoded: str | None = None,
        first: Sequence[Bound] = (),
    ) -> int:
        """Append the write of one aggregate; returns its revision. Call last in the
        transaction: the counter row stays locked until the commit. ``resource``: the root
        is a resource row, whose revision column follows its writes (an agent's report is
        not). ``commit``: nothing follows in the transaction, so on PostgreSQL the COMMIT
        goes with this statement, in one round trip (``Compiled.rows_and_commit``); on
        SQLite, which serialises its writers anyway, the transaction commits as usual.
        ``encoded``: ``document`` as JSON text already (a big one is encoded off the event
        loop). ``first``: statements of the transaction to run before this one, whose rows
        no one reads (with ``commit``, in the same round trip)."""
        if not self.is_postgres:
            for bound in first:
                await bound.run(self.connection, is_postgres=False)
            return await self._record_on_sqlite(root_id, root_kind, document, now, resource)
        params = {
            "root_id": root_id,
            "root_kind": root_kind,
            "document": None if document is None else Json(document, dumps=_encoder(encoded)),
            "created_at": now,
            "stamp": document is not None and resource,
            "channel": CHANNEL,
        }
        if commit:
            rows = await _RECORD.rows_and_commit(self.connection, params, first)
        else:
            for bound in first:
                await bound.run(self.connection, is_postgres=True)
            rows = await _RECORD.rows(self.connection, params, is_postgres=True)
        return int(rows[0][0])

    async def _record_on_sqlite(
        self,
        root_id: uuid.UUID,
        root_kind: str,
        document: dict[str, Any] | None,
        now: datetime,
        resource: bool,
    ) -> int:
        bump = (
            update(COUNTER)
            .where(COUNTER.c.id == 1)
            .values(revision=COUNTER.c.revision + 1)
            .returning(COUNTER.c.revision)
        )
        revision = int((await self.connection.execute(bump)).scalar_one())
        await self.connection.execute(
            insert(CHANGES).values(
                revision=revision,
                root_id=root_id,
                root_kind=root_kind,
                document=document,
                created_at=now,
            )
        )
        if document is not None and resource:
            await self.connection.execute(
                update(RESOURCES)
                .where(RESOURCES.c.instance_id == root_id)
                .values(revision=revision)
            )
        return revision

    async def patches_allowed(self) -> bool:
        """Whether writes may be recorded as patches (``revision_counter.patches``)."""
        query = select(COUNTER.c.patches).where(COUNTER.c.id == 1)
        return bool((await self.connection.execute(query)).scalar_one())

    async def allow_patches(self) -> None:
        await self.connection.execute(update(COUNTER).where(COUNTER.c.id == 1).values(patches=True))

    async def current(self) -> int:
        query = select(COUNTER.c.revision).where(COUNTER.c.id == 1)
        return int((await self.connection.execute(query)).scalar_one())

    async def since(self, revision: int, *, limit: int) -> list[ChangeRow]:
        params = {"revision": revision, "limit": limit}
        rows = await _SINCE.rows(self.connection, params, is_postgres=self.is_postgres)
        return [ChangeRow(*row) for row in rows]

    async def oldest(self) -> int | None:
        found = (await self.connection.execute(select(func.min(CHANGES.c.revision)))).scalar()
        return None if found is None else int(found)

    async def prune(self, below: int) -> None:
        await self.connection.execute(delete(CHANGES).where(CHANGES.c.revision < below))

    async def resource_rows(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Rows of every aggregate whose top-level kind is one of ``kinds``."""
        roots = RESOURCES.alias("roots")
        query = (
            select(
                RESOURCES.c.instance_id,
                RESOURCES.c.root_id,
                RESOURCES.c.parent_id,
                RESOURCES.c.kind,
                RESOURCES.c.resource_ref,
                RESOURCES.c.properties,
                roots.c.kind.label("root_kind"),
            )
            .join(roots, roots.c.instance_id == RESOURCES.c.root_id)
            .where(roots.c.kind.in_(list(kinds)))
            .order_by(RESOURCES.c.position, RESOURCES.c.path_key)
        )
        return [dict(row._mapping) for row in await self.connection.execute(query)]

    async def provider_addresses(self) -> list[tuple[uuid.UUID, str, str]]:
        """(server instanceId, server resourceRef, address) the agents reported."""
        query = (
            select(AGENTS.c.server_id, RESOURCES.c.resource_ref, AGENTS.c.provider_address)
            .join(RESOURCES, RESOURCES.c.instance_id == AGENTS.c.server_id)
            .where(AGENTS.c.provider_address.is_not(None))
        )
        return [(row[0], row[1], row[2]) for row in await self.connection.execute(query)]

    async def begin_consistent_read(self) -> None:
        """Make the rest of this (read) transaction see one snapshot (PostgreSQL)."""
        if self.is_postgres:
            await self.connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
