"""Dynamic MACs and addresses without waiting for other writers to commit.

Inside a write's transaction, picking "the value after the highest in use" is only safe while
no other writer can pick at the same time, so allocators used to take their subnet's (or the
MACs') lock exclusively and hold it until their commit: the NICs of one subnet, and all NICs
for their MACs, were written one after another (about 100 NIC creations/s however many cores
or replicas). On PostgreSQL a write now takes those locks shared and reserves each Dynamic
value with one autocommitted statement on the database's side pool
(``ReservationRepository.reserve``): the value is set aside for the write at once, visible to
every other allocator, whatever becomes of the write. The write's transaction deletes its
reservations as it inserts the allocations (``claim``); when it fails, ``release`` deletes
them after it. A reservation whose writer died expires (``RESERVATION_SECONDS``); until then
its value is skipped, never handed out twice.

Why shared locks are enough for what still takes them exclusively (a subnet or macPool being
narrowed, VIPs and public IPs being allocated in-transaction): a writer holds the shared lock
from before it reads the subnet or pool until its commit, and only ever claims reservations it
made in that transaction. So once the exclusive lock is held, every reservation still live
belongs to a writer that has failed and will never be claimed: the allocation tables alone
tell what is held. Static values are still checked in the write's transaction; two writers
wanting one value, or a Static value racing a reserved one, meet at the allocation table's
primary key, and ``Database.run`` runs the loser again (a Static loser then gets its 409, a
Dynamic one another value).

SQLite serialises its writers anyway: there a value is still picked in the transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core import ipam
from controller.errors import ServiceUnavailable
from controller.service.numbering import Plan, free_value
from controller.store.allocations import SCAN_BATCH, AllocationRepository, Numbering
from controller.store.database import Database
from controller.store.reservations import ReservationRepository

log = logging.getLogger(__name__)

# How long a reservation outlives its making at least: longer than any write's transaction
# may run (``Database.run``'s deadline; see ``Reservations.expiry``).
RESERVATION_SECONDS = 60.0
# Values offered per reserving statement: when allocators race, the first few above the
# highest in use go to the others, and the statement takes the first still free.
CANDIDATES = 8
# Reserving statements one draw may take before it gives up (each reads what is in use anew).
ATTEMPTS = 16


@dataclass
class Reservations:
    """The reservations of one write (its unit of work, retries included)."""

    database: Database
    clock: Callable[[], datetime]
    token: uuid.UUID = field(default_factory=uuid.uuid4)
    # Whether a reserving statement was sent (whatever its answer was).
    made: bool = False

    @property
    def expiry(self) -> timedelta:
        return timedelta(seconds=max(RESERVATION_SECONDS, 4 * self.database.timeouts.total))

    async def draw(
        self,
        allocations: AllocationRepository,
        plan: Plan,
        numbering: Numbering,
        ranges: Sequence[ipam.Range],
        scope: uuid.UUID | None,
    ) -> int | None:
        """A value of ``ranges`` for this write that nobody holds, reserves, or this plan has
        taken; None when there is none."""
        if not self.database.is_postgres:
            return await free_value(allocations, plan, numbering, ranges, scope)
        taken = plan.taken[(numbering, scope)]
        for _ in range(ATTEMPTS):
            now = self.clock()
            first = await free_value(_InUse(self.database, now), plan, numbering, ranges, scope)
            if first is None:
                return None
            value = await self._reserve(numbering, scope, _candidates(ranges, first, taken), now)
            if value is not None:
                return value
            plan.forget_highest(numbering, scope, ranges)
        raise ServiceUnavailable(
            f"no {numbering.value} could be reserved: other writers took every one offered",
            retry_after=1,
        )

    async def _reserve(
        self,
        numbering: Numbering,
        scope: uuid.UUID | None,
        candidates: Sequence[int],
        now: datetime,
    ) -> int | None:
        self.made = True
        expires_at = now + self.expiry
        return await self.database.run(
            lambda connection: ReservationRepository(connection).reserve(
                numbering, scope, candidates, token=self.token, now=now, expires_at=expires_at
            ),
            aside=True,
        )

    async def claim(self, connection: AsyncConnection) -> None:
        """In the write's transaction, with its allocations."""
        if self.made and self.database.is_postgres:
            await ReservationRepository(connection).claim(self.token)

    async def release(self) -> None:
        """After the write failed (its transaction rolled back): give its values back now
        rather than when they expire. A failure here only delays that."""
        if not self.made or not self.database.is_postgres:
            return
        now = self.clock()
        try:
            await self.database.run(
                lambda connection: ReservationRepository(connection).release(self.token, now=now),
                aside=True,
            )
        except Exception as exc:
            log.warning("reservations of a failed write stay until they expire: %s", exc)


def _candidates(ranges: Sequence[ipam.Range], first: int, taken: set[int]) -> list[int]:
    """``first`` and the values of ``ranges`` after it that this plan has not taken,
    ``CANDIDATES`` at most."""
    candidates = [first]
    value: int | None = first
    while len(candidates) < CANDIDATES:
        value = ipam.next_after(ranges, value)
        if value is None:
            break
        if value not in taken:
            candidates.append(value)
    return candidates


class _InUse:
    """What is held or reserved, each question one autocommitted statement on the side pool
    (``free_value`` asks)."""

    def __init__(self, database: Database, now: datetime) -> None:
        self.database = database
        self.now = now

    async def highest(
        self, numbering: Numbering, low: int, high: int, scope_id: uuid.UUID | None = None
    ) -> int | None:
        return await self.database.run(
            lambda connection: ReservationRepository(connection).highest(
                numbering, low, high, scope_id, now=self.now
            ),
            aside=True,
        )

    async def used_from(
        self,
        numbering: Numbering,
        start: int,
        high: int,
        scope_id: uuid.UUID | None = None,
        *,
        limit: int = SCAN_BATCH,
    ) -> list[int]:
        return await self.database.run(
            lambda connection: ReservationRepository(connection).used_from(
                numbering, start, high, scope_id, limit=limit, now=self.now
            ),
            aside=True,
        )
