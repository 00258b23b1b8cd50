"""Every SQL statement on resources and references. Callers own the transaction."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from psycopg.types.json import Json
from sqlalchemy import (
    Select,
    Table,
    any_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Uuid

from controller.store.compiled import Compiled
from controller.store.database import json_text
from controller.store.siblings import SiblingQueries
from controller.store.tables import Resource, ResourceReference

RESOURCES = cast(Table, Resource.__table__)
REFERENCES = cast(Table, ResourceReference.__table__)
# Built once: constructing aliases per query costs more than running the cached statement.
_ROOTS = RESOURCES.alias("roots")
_TARGETS = RESOURCES.alias("targets")
_ORDER = (RESOURCES.c.position, RESOURCES.c.path_key)
# Rows of a big result decoded between two turns of the event loop.
_DECODED_AT_ONCE = 100
# Keep IN lists well below driver parameter limits (SQLite allows 32766).
_CHUNK = 2000


@dataclass(frozen=True)
class StoredResource:
    instance_id: uuid.UUID
    kind: str
    path_key: str
    resource_ref: str
    resource_id: str
    parent_id: uuid.UUID | None
    root_id: uuid.UUID
    position: int
    properties: dict[str, Any]
    sibling_key: str | None
    secret: dict[str, Any] | None
    tags: dict[str, Any] | None
    resource_metadata: dict[str, Any] | None
    etag: str | None
    provisioning_state: str
    revision: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Reference:
    source_id: uuid.UUID
    member: str
    target_id: uuid.UUID


@dataclass(frozen=True)
class Referrer:
    """A resource that references ``target_id``."""

    target_id: uuid.UUID
    source_id: uuid.UUID
    source_kind: str
    source_ref: str
    source_root_id: uuid.UUID
    member: str


# The columns of ``StoredResource``, in its fields' order: its rows are built positionally
# (by name, through each row's mapping, took a third of the time of listing a collection).
_STORED_COLUMNS = tuple(RESOURCES.c[field.name] for field in fields(StoredResource))


def _stored(rows: Iterable[Any]) -> list[StoredResource]:
    """``StoredResource`` of each row of a ``select(*_STORED_COLUMNS)``."""
    return [StoredResource(*row) for row in rows]


def _referrers() -> Select[Any]:
    """References joined with the resource making them, in the shape of ``Referrer``."""
    return (
        select(
            REFERENCES.c.target_id,
            REFERENCES.c.source_id,
            RESOURCES.c.kind,
            RESOURCES.c.resource_ref,
            RESOURCES.c.root_id,
            REFERENCES.c.member,
        )
        .join(RESOURCES, RESOURCES.c.instance_id == REFERENCES.c.source_id)
        .order_by(RESOURCES.c.path_key, REFERENCES.c.member)
    )


# What every GET runs: its aggregate by the top-level resource's key, and who references it.
_AGGREGATE_AT = Compiled(
    select(*_STORED_COLUMNS)
    .where(
        RESOURCES.c.root_id
        == select(_ROOTS.c.instance_id)
        .where(_ROOTS.c.path_key == bindparam("root_key"))
        .scalar_subquery()
    )
    .order_by(*_ORDER)
)
# What every write runs next: its aggregate by the top-level row's instanceId.
_AGGREGATE = Compiled(
    select(*_STORED_COLUMNS).where(RESOURCES.c.root_id == bindparam("root_id")).order_by(*_ORDER)
)
# Every write's new rows: through SQLAlchemy's executemany this was a tenth of a create's
# CPU (docs/performance.md, tenth round).
_INSERT = Compiled(insert(RESOURCES))
_JSON_COLUMNS = ("properties", "secret", "tags", "resource_metadata")
# What every write runs first: its top-level row, locked (FOR UPDATE to delete it).
_LOCK_ROOT = Compiled(
    select(*_STORED_COLUMNS)
    .where(RESOURCES.c.path_key == bindparam("path_key"))
    .with_for_update(key_share=True)
)
_LOCK_ROOT_FOR_DELETE = Compiled(
    select(*_STORED_COLUMNS).where(RESOURCES.c.path_key == bindparam("path_key")).with_for_update()
)
# A page of a top-level collection: the whole aggregates of the next ``limit`` top-level
# resources of ``kind`` whose keys follow ``after``, in the collection's order.
_PAGE_ROOTS = (
    select(_ROOTS.c.instance_id)
    .where(
        _ROOTS.c.kind == bindparam("kind"),
        _ROOTS.c.parent_id.is_(None),
        _ROOTS.c.path_key > bindparam("after"),
    )
    .order_by(_ROOTS.c.path_key)
    .limit(bindparam("limit"))
)
_AGGREGATES_PAGE = Compiled(
    select(*_STORED_COLUMNS).where(RESOURCES.c.root_id.in_(_PAGE_ROOTS)).order_by(*_ORDER)
)
# Who references any resource of such a page (the page's keys again, rather than its rows'
# instanceIds as an array parameter: converting 600 UUIDs cost more than the statement).
_PAGE_REFERRERS = Compiled(
    _referrers()
    .join(_TARGETS, _TARGETS.c.instance_id == REFERENCES.c.target_id)
    .where(_TARGETS.c.root_id.in_(_PAGE_ROOTS))
)
# PostgreSQL only: the targets as one array parameter (one statement text for any count).
_REFERRERS_OF_ANY = Compiled(
    _referrers().where(REFERENCES.c.target_id == any_(bindparam("targets", type_=ARRAY(Uuid))))
)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class ResourceRepository(SiblingQueries):
    def __init__(self, connection: AsyncConnection, *, is_postgres: bool) -> None:
        self.connection = connection
        self.is_postgres = is_postgres

    async def lock_root(self, path_key: str, *, deleting: bool = False) -> StoredResource | None:
        """The top-level row, locked until the transaction ends (SQLite write transactions are
        exclusive anyway). Writers take FOR NO KEY UPDATE, which serialises them but lets other
        transactions add references to the row meanwhile; a delete takes FOR UPDATE."""
        statement = _LOCK_ROOT_FOR_DELETE if deleting else _LOCK_ROOT
        rows = await statement.rows(
            self.connection, {"path_key": path_key}, is_postgres=self.is_postgres
        )
        return StoredResource(*rows[0]) if rows else None

    async def lock_kind(self, kind: str) -> None:
        """Serialise writers of one kind whose invariants span resources (PostgreSQL)."""
        if self.is_postgres:
            key = zlib.crc32(f"kind:{kind}".encode())
            await self.connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    async def lock_target(self, target_id: uuid.UUID) -> None:
        """Serialise writers binding one resource through an exclusive reference (PostgreSQL;
        SQLite write transactions are exclusive anyway)."""
        if self.is_postgres:
            key = zlib.crc32(f"ref:{target_id}".encode())
            await self.connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    async def aggregate(self, root_id: uuid.UUID) -> list[StoredResource]:
        """A top-level resource and all its descendants."""
        params = {"root_id": root_id}
        return await _AGGREGATE.records(
            self.connection,
            params,
            StoredResource,
            is_postgres=self.is_postgres,
            chunk=_DECODED_AT_ONCE,
        )

    async def aggregate_at(self, root_key: str) -> list[StoredResource]:
        """The aggregate whose top-level resource has ``root_key``, in one round trip."""
        return await _AGGREGATE_AT.records(
            self.connection,
            {"root_key": root_key},
            StoredResource,
            is_postgres=self.is_postgres,
            chunk=_DECODED_AT_ONCE,
        )

    async def aggregates_of_kind(self, kind: str) -> list[StoredResource]:
        """Every resource whose top-level resource is of ``kind``."""
        query = (
            select(*_STORED_COLUMNS)
            .join(_ROOTS, _ROOTS.c.instance_id == RESOURCES.c.root_id)
            .where(_ROOTS.c.kind == kind)
            .order_by(*_ORDER)
        )
        return _stored(await self.connection.execute(query))

    async def aggregates_page(self, kind: str, after: str, limit: int) -> list[StoredResource]:
        """The aggregates of the first ``limit`` top-level resources of ``kind`` whose key sorts
        after ``after`` ("" for the first page), in the order the collection lists them."""
        params = {"kind": kind, "after": after, "limit": limit}
        return await _AGGREGATES_PAGE.records(
            self.connection,
            params,
            StoredResource,
            is_postgres=self.is_postgres,
            chunk=_DECODED_AT_ONCE,
        )

    async def page_referrers(self, kind: str, after: str, limit: int) -> list[Referrer]:
        """Who references the resources of ``aggregates_page(kind, after, limit)``."""
        params = {"kind": kind, "after": after, "limit": limit}
        rows = await _PAGE_REFERRERS.rows(self.connection, params, is_postgres=self.is_postgres)
        return [Referrer(*row) for row in rows]

    async def with_children(self, instance_ids: Sequence[uuid.UUID]) -> list[StoredResource]:
        """The rows of ``instance_ids`` and of their direct children."""
        found: list[StoredResource] = []
        for chunk in _chunks(instance_ids):
            query = select(*_STORED_COLUMNS).where(
                or_(RESOURCES.c.instance_id.in_(chunk), RESOURCES.c.parent_id.in_(chunk))
            )
            found.extend(_stored(await self.connection.execute(query)))
        return found

    async def properties_of(self, instance_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
        found: dict[uuid.UUID, Any] = {}
        for chunk in _chunks(instance_ids):
            query = select(RESOURCES.c.instance_id, RESOURCES.c.properties).where(
                RESOURCES.c.instance_id.in_(chunk)
            )
            found.update({row[0]: row[1] for row in await self.connection.execute(query)})
        return found

    async def find(self, path_keys: Collection[str]) -> dict[str, tuple[uuid.UUID, str]]:
        """instanceId and canonical resourceRef of each existing resource among ``path_keys``."""
        found: dict[str, tuple[uuid.UUID, str]] = {}
        for chunk in _chunks(sorted(path_keys)):
            query = select(
                RESOURCES.c.path_key, RESOURCES.c.instance_id, RESOURCES.c.resource_ref
            ).where(RESOURCES.c.path_key.in_(chunk))
            for key, instance_id, ref in await self.connection.execute(query):
                found[key] = (instance_id, ref)
        return found

    async def refs_of(self, instance_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The resourceRef of each existing resource among ``instance_ids``."""
        found: dict[uuid.UUID, str] = {}
        for chunk in _chunks(sorted(instance_ids, key=str)):
            query = select(RESOURCES.c.instance_id, RESOURCES.c.resource_ref).where(
                RESOURCES.c.instance_id.in_(chunk)
            )
            found.update({row[0]: row[1] for row in await self.connection.execute(query)})
        return found

    async def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert whole rows (every column) in one batch."""
        if not rows:
            return
        if self.is_postgres:
            await _INSERT.run_many(self.connection, [_json_bound(row) for row in rows])
            return
        await self.connection.execute(insert(RESOURCES), list(rows))

    async def update(self, instance_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        await self.connection.execute(
            update(RESOURCES).where(RESOURCES.c.instance_id == instance_id).values(**values)
        )

    async def update_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite whole rows (every column but the key and created_at) in one batch."""
        if not rows:
            return
        columns = tuple(c for c in rows[0] if c not in ("instance_id", "created_at"))
        values = [{"row_id": row["instance_id"], **{c: row[c] for c in columns}} for row in rows]
        if self.is_postgres:
            compiled = _rewrite(columns)
            await compiled.run_many(self.connection, [_json_bound(row) for row in values])
            return
        await self.connection.execute(_rewrite(columns).statement, values)

    async def delete(self, instance_ids: Sequence[uuid.UUID]) -> None:
        for chunk in _chunks(instance_ids):
            await self.connection.execute(
                delete(RESOURCES).where(RESOURCES.c.instance_id.in_(chunk))
            )

    async def references_within(self, root_id: uuid.UUID) -> set[Reference]:
        """Every reference the resources of one aggregate make (one statement, whatever its
        size)."""
        query = (
            select(REFERENCES.c.source_id, REFERENCES.c.member, REFERENCES.c.target_id)
            .join(RESOURCES, RESOURCES.c.instance_id == REFERENCES.c.source_id)
            .where(RESOURCES.c.root_id == root_id)
        )
        return {Reference(*row) for row in await self.connection.execute(query)}

    async def references_from(self, source_ids: Sequence[uuid.UUID]) -> set[Reference]:
        """Every reference ``source_ids`` make."""
        found: set[Reference] = set()
        for chunk in _chunks(source_ids):
            query = select(
                REFERENCES.c.source_id, REFERENCES.c.member, REFERENCES.c.target_id
            ).where(REFERENCES.c.source_id.in_(chunk))
            found.update(Reference(*row) for row in await self.connection.execute(query))
        return found

    # -- one child of a big aggregate, without the aggregate ------------------------------

    async def at_keys(self, root_id: uuid.UUID, path_keys: Sequence[str]) -> list[StoredResource]:
        """The rows of aggregate ``root_id`` at ``path_keys`` (those that exist), in order."""
        query = (
            select(*_STORED_COLUMNS)
            .where(RESOURCES.c.root_id == root_id, RESOURCES.c.path_key.in_(path_keys))
            .order_by(*_ORDER)
        )
        return _stored(await self.connection.execute(query))

    async def without_sibling_key(self, kinds: Sequence[str]) -> list[StoredResource]:
        """The rows of ``kinds`` (kinds with a sibling key) whose ``sibling_key`` is unset:
        written by a version before it existed."""
        query = select(*_STORED_COLUMNS).where(
            RESOURCES.c.kind.in_(kinds), RESOURCES.c.sibling_key.is_(None)
        )
        return _stored(await self.connection.execute(query))

    async def add_references(self, references: Collection[Reference]) -> None:
        if references:
            await self.connection.execute(
                insert(REFERENCES),
                [
                    {"source_id": r.source_id, "member": r.member, "target_id": r.target_id}
                    for r in references
                ],
            )

    async def remove_references_from(self, source_ids: Sequence[uuid.UUID]) -> None:
        """Drop every reference ``source_ids`` make (before deleting them: PostgreSQL checks the
        references to a deleted row before it cascades away those its siblings make)."""
        for chunk in _chunks(source_ids):
            await self.connection.execute(
                delete(REFERENCES).where(REFERENCES.c.source_id.in_(chunk))
            )

    async def remove_references(self, references: Collection[Reference]) -> None:
        for reference in references:
            await self.connection.execute(
                delete(REFERENCES).where(
                    REFERENCES.c.source_id == reference.source_id,
                    REFERENCES.c.member == reference.member,
                    REFERENCES.c.target_id == reference.target_id,
                )
            )

    async def referrers(self, target_ids: Sequence[uuid.UUID]) -> list[Referrer]:
        """Who references any of ``target_ids`` (for reverse links and in-use checks)."""
        if not target_ids:  # a write that binds nothing exclusively asks of none
            return []
        if self.is_postgres:
            params = {"targets": list(target_ids)}
            rows = await _REFERRERS_OF_ANY.rows(self.connection, params, is_postgres=True)
            return [Referrer(*row) for row in rows]
        found: list[Referrer] = []
        for chunk in _chunks(target_ids):
            query = _referrers().where(REFERENCES.c.target_id.in_(chunk))
            found.extend(Referrer(*row) for row in await self.connection.execute(query))
        return found

    async def referrers_of_kind(self, kind: str) -> list[Referrer]:
        """Who references any resource whose top-level resource is of ``kind``."""
        query = (
            _referrers()
            .join(_TARGETS, _TARGETS.c.instance_id == REFERENCES.c.target_id)
            .join(_ROOTS, _ROOTS.c.instance_id == _TARGETS.c.root_id)
            .where(_ROOTS.c.kind == kind)
        )
        return [Referrer(*row) for row in await self.connection.execute(query)]


def _json_bound(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` as psycopg binds it: its JSON columns as JSON text, None as JSON's null (what
    SQLAlchemy's JSON type stores for it)."""
    json = {column: Json(row[column], dumps=json_text) for column in _JSON_COLUMNS if column in row}
    return {**row, **json}


_REWRITES: dict[tuple[str, ...], Compiled] = {}


def _rewrite(columns: tuple[str, ...]) -> Compiled:
    """The rewrite of ``columns`` of the row ``row_id``, compiled once per set of columns (a
    write rewrites every column but the key and created_at)."""
    compiled = _REWRITES.get(columns)
    if compiled is None:
        statement = (
            update(RESOURCES)
            .where(RESOURCES.c.instance_id == bindparam("row_id"))
            .values({column: bindparam(column) for column in columns})
        )
        compiled = _REWRITES[columns] = Compiled(statement)
    return compiled
