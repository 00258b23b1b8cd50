"""Queries on the allocation tables (VSIDs, IP addresses, MACs).

The three tables are "numberings": a value unique within a scope (the whole deployment for
VSIDs and MACs, one subnet for addresses), held by an owner resource that cascades its
allocation away when it is deleted. The same few queries serve all three.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Column, Table, delete, func, insert, null, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.tables import IpAllocation, MacAllocation, Resource, VsidAllocation

RESOURCES = cast(Table, Resource.__table__)
SCAN_BATCH = 1000


@dataclass(frozen=True)
class Numbering:
    table: Table
    value: str
    owner: str = "owner_id"
    scope: str | None = None
    pool: str | None = None
    hex_width: int | None = None  # values stored as zero-padded hex text

    @property
    def owner_column(self) -> Column[Any]:
        return self.table.c[self.owner]

    @property
    def value_column(self) -> Column[Any]:
        return self.table.c[self.value]

    def encode(self, value: int) -> object:
        return f"{value:0{self.hex_width}x}" if self.hex_width else value

    def decode(self, stored: object) -> int:
        return int(str(stored), 16) if self.hex_width else int(cast(int, stored))


VSIDS = Numbering(cast(Table, VsidAllocation.__table__), "vsid", owner="subnet_id")
MACS = Numbering(cast(Table, MacAllocation.__table__), "mac", pool="pool_id")
ADDRESSES = Numbering(
    cast(Table, IpAllocation.__table__), "address", scope="subnet_id", hex_width=32
)


@dataclass(frozen=True)
class Held:
    """An allocation: ``value`` held by ``owner_id`` (in ``scope_id`` / from ``pool_id``)."""

    owner_id: uuid.UUID
    value: int
    scope_id: uuid.UUID | None = None
    pool_id: uuid.UUID | None = None


class AllocationRepository:
    def __init__(self, connection: AsyncConnection, *, is_postgres: bool) -> None:
        self.connection = connection
        self.is_postgres = is_postgres

    async def lock(self, name: str, *, shared: bool = False) -> None:
        """Serialise allocators of one numbering (and scope) until the transaction ends; a
        ``shared`` lock excludes only the exclusive holders of ``name``."""
        if self.is_postgres:
            key = zlib.crc32(f"alloc:{name}".encode())
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            await self.connection.execute(text(f"SELECT {function}(:k)"), {"k": key})

    def _in_scope(self, numbering: Numbering, scope_id: uuid.UUID | None) -> Any:
        if numbering.scope is None:
            return True
        return numbering.table.c[numbering.scope] == scope_id

    async def highest(
        self, numbering: Numbering, low: int, high: int, scope_id: uuid.UUID | None = None
    ) -> int | None:
        column = numbering.value_column
        # Not max(): see store/reservations.py's highest (a stale generic plan aggregates).
        query = (
            select(column)
            .where(
                self._in_scope(numbering, scope_id),
                column >= numbering.encode(low),
                column <= numbering.encode(high),
            )
            .order_by(column.desc())
            .limit(1)
        )
        found = (await self.connection.execute(query)).scalar()
        return None if found is None else numbering.decode(found)

    async def used_from(
        self,
        numbering: Numbering,
        start: int,
        high: int,
        scope_id: uuid.UUID | None = None,
        *,
        limit: int = SCAN_BATCH,
    ) -> list[int]:
        """Up to ``limit`` held values from ``start`` to ``high``, ascending."""
        column = numbering.value_column
        query = (
            select(column)
            .where(
                self._in_scope(numbering, scope_id),
                column >= numbering.encode(start),
                column <= numbering.encode(high),
            )
            .order_by(column)
            .limit(limit)
        )
        return [numbering.decode(v) for v in (await self.connection.execute(query)).scalars()]

    async def count(
        self, numbering: Numbering, low: int, high: int, scope_id: uuid.UUID | None = None
    ) -> int:
        column = numbering.value_column
        query = select(func.count()).where(
            self._in_scope(numbering, scope_id),
            column >= numbering.encode(low),
            column <= numbering.encode(high),
        )
        return int((await self.connection.execute(query)).scalar() or 0)

    async def counts(
        self, numbering: Numbering, ranges: Sequence[tuple[int, int, uuid.UUID | None]]
    ) -> list[int]:
        """:meth:`count` of each ``(low, high, scope_id)``, in that order. On PostgreSQL one
        statement of constant text counts them all (the ranges travel as three arrays, and
        each is counted by its own index range scan), so a collection of many pools costs
        one round trip and one prepared statement instead of one per pool; SQLite runs in
        this process, where a statement per range costs no round trip."""
        if not self.is_postgres or numbering.scope is None or not ranges:
            return [await self.count(numbering, low, high, scope) for low, high, scope in ranges]
        table, value, scope = numbering.table.name, numbering.value, numbering.scope
        query = text(
            f"SELECT (SELECT count(*) FROM {table} a WHERE a.{scope} = r.scope"
            f" AND a.{value} >= r.low AND a.{value} <= r.high)"
            " FROM unnest(CAST(:scopes AS uuid[]), CAST(:lows AS text[]),"
            " CAST(:highs AS text[])) WITH ORDINALITY AS r(scope, low, high, position)"
            " ORDER BY r.position"
        )
        parameters = {
            "scopes": [str(scope_id) for _, _, scope_id in ranges],
            "lows": [numbering.encode(low) for low, _, _ in ranges],
            "highs": [numbering.encode(high) for _, high, _ in ranges],
        }
        return [int(n) for n in (await self.connection.execute(query, parameters)).scalars()]

    async def holder(
        self, numbering: Numbering, value: int, scope_id: uuid.UUID | None = None
    ) -> tuple[uuid.UUID, str] | None:
        """Owner instanceId and resourceRef of ``value``, if someone holds it."""
        owner = numbering.owner_column
        query = (
            select(owner, RESOURCES.c.resource_ref)
            .join(RESOURCES, RESOURCES.c.instance_id == owner)
            .where(
                self._in_scope(numbering, scope_id),
                numbering.value_column == numbering.encode(value),
            )
        )
        row = (await self.connection.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def held_in(
        self,
        numbering: Numbering,
        low: int,
        high: int,
        scope_id: uuid.UUID | None,
        *,
        owner_kinds: Collection[str],
        limit: int,
    ) -> list[tuple[int, uuid.UUID, str]]:
        """Up to ``limit`` values from ``low`` to ``high`` held by resources of
        ``owner_kinds``, ascending, with their holder's instanceId and resourceRef."""
        column = numbering.value_column
        owner = numbering.owner_column
        query = (
            select(column, owner, RESOURCES.c.resource_ref)
            .join(RESOURCES, RESOURCES.c.instance_id == owner)
            .where(
                self._in_scope(numbering, scope_id),
                column >= numbering.encode(low),
                column <= numbering.encode(high),
                RESOURCES.c.kind.in_(list(owner_kinds)),
            )
            .order_by(column)
            .limit(limit)
        )
        rows = await self.connection.execute(query)
        return [(numbering.decode(row[0]), row[1], row[2]) for row in rows]

    async def held_by(
        self, numbering: Numbering, owner_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, Held]:
        if not owner_ids:
            return {}
        table = numbering.table
        scope = table.c[numbering.scope] if numbering.scope else null()
        pool = table.c[numbering.pool] if numbering.pool else null()
        query = select(numbering.owner_column, numbering.value_column, scope, pool).where(
            numbering.owner_column.in_(list(owner_ids))
        )
        return {
            row[0]: Held(row[0], numbering.decode(row[1]), row[2], row[3])
            for row in await self.connection.execute(query)
        }

    async def add(self, numbering: Numbering, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self.connection.execute(insert(numbering.table), list(rows))

    async def release(self, numbering: Numbering, owner_ids: Collection[uuid.UUID]) -> None:
        if owner_ids:
            await self.connection.execute(
                delete(numbering.table).where(numbering.owner_column.in_(list(owner_ids)))
            )

    async def pool_macs_outside(
        self, pool_id: uuid.UUID, low: int, high: int, *, limit: int
    ) -> list[tuple[int, str]]:
        """MACs drawn from ``pool_id`` that lie outside ``low``..``high``, with their holder."""
        table = MACS.table
        query = (
            select(table.c.mac, RESOURCES.c.resource_ref)
            .join(RESOURCES, RESOURCES.c.instance_id == table.c.owner_id)
            .where(table.c.pool_id == pool_id, or_(table.c.mac < low, table.c.mac > high))
            .order_by(table.c.mac)
            .limit(limit)
        )
        return [(int(row[0]), row[1]) for row in await self.connection.execute(query)]

    async def mac_counts(self, pool_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        table = MACS.table
        query = (
            select(table.c.pool_id, func.count())
            .where(table.c.pool_id.in_(list(pool_ids)))
            .group_by(table.c.pool_id)
        )
        return {row[0]: int(row[1]) for row in await self.connection.execute(query)}
