"""Queries on ``dip_health``: the latest health of each DIP under each probe, as the hosts
reported it. A report goes with its DIP, its probe and its reporting server (ON DELETE
CASCADE)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.tables import DipHealthReport, Resource

HEALTH = cast(Table, DipHealthReport.__table__)
RESOURCES = cast(Table, Resource.__table__)


@dataclass(frozen=True)
class HealthRow:
    probe_id: uuid.UUID
    dip_id: uuid.UUID
    server_id: uuid.UUID
    server_ref: str
    state: str


class Recorded(enum.Enum):
    """What ``HealthRepository.record`` did with a report."""

    UNCHANGED = "unchanged"
    REPLACED = "replaced"
    FIRST = "first"


class HealthRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def record(
        self, server: uuid.UUID, probe: uuid.UUID, dip: uuid.UUID, state: str, now: datetime
    ) -> Recorded:
        """Keep ``state`` as the health of ``dip`` under ``probe``, reported by ``server``:
        ``UNCHANGED`` when nothing changed, or the probe or the DIP no longer exists (a report
        that raced its deletion); ``REPLACED`` a report held before; ``FIRST`` the first one.
        The row is locked until the transaction ends, so reports of one DIP are decided one
        after the other, by what the database holds."""
        held = (
            await self.connection.execute(
                select(HEALTH.c.server_id, HEALTH.c.state)
                .where(HEALTH.c.probe_id == probe, HEALTH.c.dip_id == dip)
                .with_for_update()
            )
        ).first()
        if held is not None:
            if tuple(held) == (server, state):
                return Recorded.UNCHANGED
            await self.connection.execute(
                update(HEALTH)
                .where(HEALTH.c.probe_id == probe, HEALTH.c.dip_id == dip)
                .values(server_id=server, state=state, reported_at=now)
            )
            return Recorded.REPLACED
        existing = await self.connection.execute(
            select(RESOURCES.c.instance_id).where(RESOURCES.c.instance_id.in_([probe, dip]))
        )
        if len(existing.all()) != 2:
            return Recorded.UNCHANGED
        await self.connection.execute(
            insert(HEALTH).values(
                probe_id=probe, dip_id=dip, server_id=server, state=state, reported_at=now
            )
        )
        return Recorded.FIRST

    async def all(self) -> list[HealthRow]:
        query = select(
            HEALTH.c.probe_id,
            HEALTH.c.dip_id,
            HEALTH.c.server_id,
            RESOURCES.c.resource_ref,
            HEALTH.c.state,
        ).join(RESOURCES, RESOURCES.c.instance_id == HEALTH.c.server_id)
        return [HealthRow(*row) for row in await self.connection.execute(query)]
