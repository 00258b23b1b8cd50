"""Queries on ``allocation_reservations``: values of a numbering (the MACs, the addresses of
one subnet) set aside for a write that has yet to commit (service/reservations.py).

Every statement here stands alone (PostgreSQL autocommits it on the side pool) except
``claim``, which runs in the write's own transaction. What allocators look at is the values
held (the allocation tables) and the values reserved and not expired, together. Reservations
are made on PostgreSQL only, so the statements every NIC creation runs are ``Compiled``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.allocations import ADDRESSES, MACS, Numbering
from controller.store.compiled import Compiled
from controller.store.tables import AllocationReservation

RESERVATIONS = cast(Table, AllocationReservation.__table__)
# The scope of a numbering that has none (the MACs are unique across the deployment).
NO_SCOPE = uuid.UUID(int=0)


def reserved_text(value: int) -> str:
    """How a value is stored in ``allocation_reservations``: 32 hex digits."""
    return f"{value:032x}"


def _scope(scope_id: uuid.UUID | None) -> uuid.UUID:
    return NO_SCOPE if scope_id is None else scope_id


def _live() -> list[ColumnElement[bool]]:
    """Reservations of ``numbering`` in ``reserved_scope``, from ``reserved_low`` to
    ``reserved_high``, that have not expired at ``now`` (bind parameters)."""
    return [
        RESERVATIONS.c.numbering == bindparam("numbering"),
        RESERVATIONS.c.scope_id == bindparam("reserved_scope"),
        RESERVATIONS.c.value >= bindparam("reserved_low"),
        RESERVATIONS.c.value <= bindparam("reserved_high"),
        RESERVATIONS.c.expires_at > bindparam("now"),
    ]


def _held_in(numbering: Numbering) -> list[ColumnElement[bool]]:
    column = numbering.value_column
    where = [column >= bindparam("low"), column <= bindparam("high")]
    if numbering.scope is not None:
        where.append(numbering.table.c[numbering.scope] == bindparam("scope"))
    return where


def _highest(numbering: Numbering) -> Compiled:
    """The highest value held, and the highest reserved above it. Each is one index entry
    read backwards (not max(): a prepared statement's generic plan made while the tables
    were small aggregated every value in range). Reservations are looked for above what is
    held only: below it lie those claimed and deleted, whose dead index entries a backward
    scan for a live one would have to pass, thousands late in a busy hour."""
    table, value = numbering.table.name, numbering.value
    in_scope = f" AND {numbering.scope} = CAST(:scope AS uuid)" if numbering.scope else ""
    held_text = "lpad(to_hex(top), 32, '0')" if numbering is MACS else "top"
    return Compiled(
        text(
            f"""
            WITH held AS (
                SELECT {value} AS top FROM {table}
                WHERE {value} >= :low AND {value} <= :high{in_scope}
                ORDER BY {value} DESC LIMIT 1
            )
            SELECT (SELECT top FROM held), (
                SELECT r.value FROM allocation_reservations r
                WHERE r.numbering = CAST(:numbering AS varchar)
                    AND r.scope_id = CAST(:reserved_scope AS uuid)
                    AND r.value > coalesce((SELECT {held_text} FROM held), '')
                    AND r.value >= CAST(:reserved_low AS varchar)
                    AND r.value <= CAST(:reserved_high AS varchar)
                    AND r.expires_at > CAST(:now AS timestamptz)
                ORDER BY r.value DESC LIMIT 1
            )
            """
        )
    )


def _used_from(numbering: Numbering) -> tuple[Compiled, Compiled]:
    column = numbering.value_column
    held = select(column).where(*_held_in(numbering)).order_by(column).limit(bindparam("limit"))
    reserved = (
        select(RESERVATIONS.c.value)
        .where(*_live())
        .order_by(RESERVATIONS.c.value)
        .limit(bindparam("limit"))
    )
    return Compiled(held), Compiled(reserved)


def _reserve(numbering: Numbering) -> Compiled:
    """Of the candidates (``values`` as stored here, ``natives`` as the allocation table
    stores them, in order), reserve the first nobody holds or reserves live. ``OFFSET 0``
    keeps each NOT EXISTS a lookup per candidate by primary key, stopping at the first free
    one: as anti-joins, a plan made while the tables were small read every allocation of the
    subnet for every candidate."""
    table, value = numbering.table.name, numbering.value
    native = "bigint" if numbering is MACS else "text"
    in_scope = f"a.{numbering.scope} = CAST(:scope AS uuid) AND " if numbering.scope else ""
    return Compiled(
        text(
            f"""
            INSERT INTO allocation_reservations (numbering, scope_id, value, token, expires_at)
            SELECT CAST(:numbering AS varchar), CAST(:scope AS uuid), c.value,
                CAST(:token AS uuid), CAST(:expires_at AS timestamptz)
            FROM unnest(CAST(:values AS text[]), CAST(:natives AS {native}[]))
                WITH ORDINALITY AS c(value, native, position)
            WHERE NOT EXISTS (
                SELECT 1 FROM {table} a WHERE {in_scope}a.{value} = c.native OFFSET 0
            ) AND NOT EXISTS (
                SELECT 1 FROM allocation_reservations r
                WHERE r.numbering = CAST(:numbering AS varchar)
                    AND r.scope_id = CAST(:scope AS uuid)
                    AND r.value = c.value AND r.expires_at > CAST(:now AS timestamptz)
                OFFSET 0
            )
            ORDER BY c.position
            LIMIT 1
            ON CONFLICT (numbering, scope_id, value) DO UPDATE
                SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
                WHERE allocation_reservations.expires_at <= CAST(:now AS timestamptz)
            RETURNING value
            """
        )
    )


_RESERVED = (MACS, ADDRESSES)
_HIGHEST = {numbering: _highest(numbering) for numbering in _RESERVED}
_USED_FROM = {numbering: _used_from(numbering) for numbering in _RESERVED}
_RESERVE = {numbering: _reserve(numbering) for numbering in _RESERVED}
_CLAIM = Compiled(delete(RESERVATIONS).where(RESERVATIONS.c.token == bindparam("token")))


class ReservationRepository:
    """The values in use, held or reserved, as the allocators of a reserved numbering (the
    MACs, the addresses of a subnet) see them; PostgreSQL only."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    def _range(
        self, numbering: Numbering, scope_id: uuid.UUID | None, low: int, high: int
    ) -> dict[str, object]:
        return {
            "low": numbering.encode(low),
            "high": numbering.encode(high),
            "scope": scope_id,
            "numbering": numbering.table.name,
            "reserved_scope": _scope(scope_id),
            "reserved_low": reserved_text(low),
            "reserved_high": reserved_text(high),
        }

    async def highest(
        self,
        numbering: Numbering,
        low: int,
        high: int,
        scope_id: uuid.UUID | None,
        *,
        now: datetime,
    ) -> int | None:
        """The highest value from ``low`` to ``high`` held or reserved (one statement)."""
        params = self._range(numbering, scope_id, low, high) | {"now": now}
        rows = await _HIGHEST[numbering].rows(self.connection, params, is_postgres=True)
        held, reserved = rows[0]
        tops = [numbering.decode(held) if held is not None else None]
        tops.append(int(reserved, 16) if reserved is not None else None)
        return max((top for top in tops if top is not None), default=None)

    async def used_from(
        self,
        numbering: Numbering,
        start: int,
        high: int,
        scope_id: uuid.UUID | None,
        *,
        limit: int,
        now: datetime,
    ) -> list[int]:
        """Up to ``limit`` values from ``start`` to ``high`` held or reserved, ascending: every
        one up to the last returned (each list is complete up to its own last value, and the
        merge stops at or below both)."""
        params = self._range(numbering, scope_id, start, high) | {"now": now, "limit": limit}
        held_statement, reserved_statement = _USED_FROM[numbering]
        held = await held_statement.rows(self.connection, params, is_postgres=True)
        reserved = await reserved_statement.rows(self.connection, params, is_postgres=True)
        values = {numbering.decode(row[0]) for row in held}
        values |= {int(row[0], 16) for row in reserved}
        return sorted(values)[:limit]

    async def reserve(
        self,
        numbering: Numbering,
        scope_id: uuid.UUID | None,
        candidates: Sequence[int],
        *,
        token: uuid.UUID,
        now: datetime,
        expires_at: datetime,
    ) -> int | None:
        """Reserve the first of ``candidates`` that is neither held nor reserved (an expired
        reservation does not count), for ``token``; None when every one was taken meanwhile.
        One statement: what two allocators reserving at once decide between them is settled
        by the primary key (the loser's row conflicts and is not written)."""
        params = {
            "numbering": numbering.table.name,
            "scope": _scope(scope_id),
            "values": [reserved_text(c) for c in candidates],
            "natives": [numbering.encode(c) for c in candidates],
            "token": token,
            "now": now,
            "expires_at": expires_at,
        }
        rows = await _RESERVE[numbering].rows(self.connection, params, is_postgres=True)
        return int(rows[0][0], 16) if rows else None

    async def claim(self, token: uuid.UUID) -> None:
        """In the write's transaction, as it inserts the allocations: its reservations go
        with its commit."""
        await _CLAIM.rows(self.connection, {"token": token}, is_postgres=True)

    async def release(self, token: uuid.UUID, *, now: datetime) -> None:
        """After a write failed: its reservations, and any that expired (their writer's
        process died before it could do this)."""
        await self.connection.execute(
            delete(RESERVATIONS).where(
                or_(RESERVATIONS.c.token == token, RESERVATIONS.c.expires_at <= now)
            )
        )
