"""Queries on ``allocation_reservations``: values of a numbering (the MACs, the addresses of
one subnet) set aside for a write that has yet to commit (service/reservations.py).

Every statement here stands alone (PostgreSQL autocommits it on the side pool) except
``claim``, which runs in the write's own transaction. What allocators look at is the values
held (the allocation tables) and the values reserved and not expired, together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.allocations import MACS, AllocationRepository, Numbering
from controller.store.tables import AllocationReservation

RESERVATIONS = cast(Table, AllocationReservation.__table__)
# The scope of a numbering that has none (the MACs are unique across the deployment).
NO_SCOPE = uuid.UUID(int=0)


def reserved_text(value: int) -> str:
    """How a value is stored in ``allocation_reservations``: 32 hex digits."""
    return f"{value:032x}"


def _scope(scope_id: uuid.UUID | None) -> uuid.UUID:
    return NO_SCOPE if scope_id is None else scope_id


class ReservationRepository:
    """The values in use, held or reserved, as the allocators of one numbering see them."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.allocations = AllocationRepository(connection, is_postgres=True)

    def _live(
        self, numbering: Numbering, scope_id: uuid.UUID | None, low: int, high: int, now: datetime
    ) -> list[ColumnElement[bool]]:
        return [
            RESERVATIONS.c.numbering == numbering.table.name,
            RESERVATIONS.c.scope_id == _scope(scope_id),
            RESERVATIONS.c.value >= reserved_text(low),
            RESERVATIONS.c.value <= reserved_text(high),
            RESERVATIONS.c.expires_at > now,
        ]

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
        column = numbering.value_column
        held = (
            select(func.max(column))
            .where(
                self.allocations.in_scope(numbering, scope_id),
                column >= numbering.encode(low),
                column <= numbering.encode(high),
            )
            .scalar_subquery()
        )
        reserved = (
            select(func.max(RESERVATIONS.c.value))
            .where(*self._live(numbering, scope_id, low, high, now))
            .scalar_subquery()
        )
        row = (await self.connection.execute(select(held, reserved))).one()
        tops = [numbering.decode(row[0]) if row[0] is not None else None]
        tops.append(int(row[1], 16) if row[1] is not None else None)
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
        held = await self.allocations.used_from(numbering, start, high, scope_id, limit=limit)
        query = (
            select(RESERVATIONS.c.value)
            .where(*self._live(numbering, scope_id, start, high, now))
            .order_by(RESERVATIONS.c.value)
            .limit(limit)
        )
        reserved = [int(v, 16) for v in (await self.connection.execute(query)).scalars()]
        return sorted({*held, *reserved})[:limit]

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
        table, value = numbering.table.name, numbering.value
        native = "bigint" if numbering is MACS else "text"
        in_scope = f"a.{numbering.scope} = CAST(:scope AS uuid) AND " if numbering.scope else ""
        query = text(
            f"""
            INSERT INTO allocation_reservations (numbering, scope_id, value, token, expires_at)
            SELECT CAST(:numbering AS varchar), CAST(:scope AS uuid), c.value,
                CAST(:token AS uuid), CAST(:expires_at AS timestamptz)
            FROM unnest(CAST(:values AS text[]), CAST(:natives AS {native}[]))
                WITH ORDINALITY AS c(value, native, position)
            WHERE NOT EXISTS (
                SELECT 1 FROM {table} a WHERE {in_scope}a.{value} = c.native
            ) AND NOT EXISTS (
                SELECT 1 FROM allocation_reservations r
                WHERE r.numbering = CAST(:numbering AS varchar)
                    AND r.scope_id = CAST(:scope AS uuid)
                    AND r.value = c.value AND r.expires_at > CAST(:now AS timestamptz)
            )
            ORDER BY c.position
            LIMIT 1
            ON CONFLICT (numbering, scope_id, value) DO UPDATE
                SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
                WHERE allocation_reservations.expires_at <= CAST(:now AS timestamptz)
            RETURNING value
            """
        )
        parameters = {
            "numbering": table,
            "scope": _scope(scope_id),
            "values": [reserved_text(c) for c in candidates],
            "natives": [numbering.encode(c) for c in candidates],
            "token": token,
            "now": now,
            "expires_at": expires_at,
        }
        found = (await self.connection.execute(query, parameters)).scalar()
        return None if found is None else int(found, 16)

    async def claim(self, token: uuid.UUID) -> None:
        """In the write's transaction, as it inserts the allocations: its reservations go
        with its commit."""
        await self.connection.execute(delete(RESERVATIONS).where(RESERVATIONS.c.token == token))

    async def release(self, token: uuid.UUID, *, now: datetime) -> None:
        """After a write failed: its reservations, and any that expired (their writer's
        process died before it could do this)."""
        await self.connection.execute(
            delete(RESERVATIONS).where(
                or_(RESERVATIONS.c.token == token, RESERVATIONS.c.expires_at <= now)
            )
        )
