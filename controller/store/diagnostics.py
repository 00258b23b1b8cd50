"""Queries on ``diagnostic_results``: the stored results of diagnostics operations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.tables import DiagnosticResult

RESULTS = cast(Table, DiagnosticResult.__table__)


@dataclass(frozen=True)
class StoredResult:
    operation_id: uuid.UUID
    kind: str
    result: dict[str, Any]
    created_at: datetime
    expires_at: datetime


class DiagnosticResults:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def prune(self, now: datetime) -> None:
        """Forget every result that has expired."""
        await self.connection.execute(delete(RESULTS).where(RESULTS.c.expires_at <= now))

    async def save(self, stored: StoredResult) -> None:
        await self.connection.execute(
            insert(RESULTS).values(
                operation_id=stored.operation_id,
                kind=stored.kind,
                result=stored.result,
                created_at=stored.created_at,
                expires_at=stored.expires_at,
            )
        )

    async def load(self, operation_id: uuid.UUID, kind: str, now: datetime) -> StoredResult | None:
        """The result of ``operation_id`` if it is of ``kind`` and has not expired."""
        query = select(RESULTS).where(
            RESULTS.c.operation_id == operation_id,
            RESULTS.c.kind == kind,
            RESULTS.c.expires_at > now,
        )
        row = (await self.connection.execute(query)).first()
        return None if row is None else StoredResult(**row._mapping)

    async def of_kind(self, kind: str, now: datetime, *, limit: int) -> list[StoredResult]:
        """The unexpired results of ``kind``, newest first, at most ``limit``."""
        query = (
            select(RESULTS)
            .where(RESULTS.c.kind == kind, RESULTS.c.expires_at > now)
            .order_by(RESULTS.c.created_at.desc(), RESULTS.c.operation_id)
            .limit(limit)
        )
        return [StoredResult(**row._mapping) for row in await self.connection.execute(query)]
