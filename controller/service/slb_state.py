"""``diagnostics/slbState``: NC's asynchronous dump of the software load balancer state.

``PUT /diagnostics/slbState`` starts an operation and answers its ``operationId``; the result
is then read at ``/diagnostics/slbStateResults/{operationId}``. Here the operation completes
within the PUT (clients poll until ``provisioningState`` is not ``Updating``, and accept a
result that is already ``Succeeded``): the state is read in one consistent snapshot, with the
DIP health the hosts reported, and stored in the database, so that any replica answers the
GET. Results expire (an hour by default); expired ones are pruned when a new one is written.

DIP health comes through ``HealthReader``, a function the application wires in: by default
``stored_health``, what the hosts reported (``dip_health``); a DIP no host reported on is
``Unknown``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import NotFound
from controller.resources.load_balancers import LOAD_BALANCERS_KIND
from controller.resources.network_interfaces import IP_CONFIGURATIONS
from controller.resources.public_ip_addresses import PUBLIC_IP_ADDRESSES
from controller.service.slb_report import DipHealth, Json, SlbRows, build_slb_report
from controller.store.database import Database
from controller.store.diagnostics import DiagnosticResults, StoredResult
from controller.store.health import HealthRepository, HealthRow
from controller.store.repository import ResourceRepository

# Reads the DIP health the hosts reported:
# {ipConfiguration instanceId: {probe instanceId: "Up" | "Down"}}; what it lacks is Unknown.
HealthReader = Callable[[], Awaitable[DipHealth]]
SLB_STATE = "slbState"
RESULT_LIFETIME = timedelta(hours=1)


async def no_health_reports() -> DipHealth:
    """A health reader with no reports: every probed DIP is Unknown."""
    return {}


def stored_health(database: Database) -> HealthReader:
    """The health the hosts reported, as stored (any replica reads the same)."""

    async def read() -> DipHealth:
        async def work(connection: AsyncConnection) -> list[HealthRow]:
            return await HealthRepository(connection).all()

        health: dict[str, dict[str, str]] = {}
        for row in await database.run(work, write=False):
            health.setdefault(str(row.dip_id), {})[str(row.probe_id)] = row.state
        return health

    return read


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SlbStateOperation:
    operation_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True)
class SlbStateReport:
    """A stored result: the state per VIP (see ``slb_report``) when the operation ran."""

    operation_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    vips: list[Json]


class SlbDiagnostics:
    def __init__(
        self,
        database: Database,
        *,
        health: HealthReader = no_health_reports,
        lifetime: timedelta = RESULT_LIFETIME,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.database = database
        self.health = health
        self.lifetime = lifetime
        self.clock = clock

    async def run(self) -> SlbStateOperation:
        """Take the state now, store it under a new operationId, forget expired results."""
        health = await self.health()
        operation = SlbStateOperation(uuid.uuid4(), self.clock())

        async def work(connection: AsyncConnection) -> None:
            repo = ResourceRepository(connection, is_postgres=self.database.is_postgres)
            rows = await _load(repo)
            results = DiagnosticResults(connection)
            await results.prune(operation.created_at)
            await results.save(
                StoredResult(
                    operation.operation_id,
                    SLB_STATE,
                    {"vips": build_slb_report(rows, health)},
                    operation.created_at,
                    operation.created_at + self.lifetime,
                )
            )

        await self.database.run(work, isolation="REPEATABLE READ")
        return operation

    async def result(self, operation_id: str) -> SlbStateReport:
        """The stored result of ``operation_id``; 404 when unknown or expired."""
        try:
            wanted = uuid.UUID(operation_id)
        except ValueError:
            wanted = None

        async def work(connection: AsyncConnection) -> StoredResult | None:
            if wanted is None:
                return None
            return await DiagnosticResults(connection).load(wanted, SLB_STATE, self.clock())

        found = await self.database.run(work, write=False)
        if found is None:
            raise NotFound(
                f"no slbState result {operation_id} (unknown, or older than "
                f"{int(self.lifetime.total_seconds())} s)",
                target=operation_id,
            )
        vips: list[Json] = found.result.get("vips", [])
        created, expires = found.created_at, found.expires_at
        return SlbStateReport(found.operation_id, created, expires, vips)


async def _load(repo: ResourceRepository) -> SlbRows:
    load_balancers = await repo.aggregates_of_kind(LOAD_BALANCERS_KIND.key)
    public_ips = await repo.aggregates_of_kind(PUBLIC_IP_ADDRESSES.key)
    bindings = [
        *await repo.referrers_of_kind(LOAD_BALANCERS_KIND.key),
        *await repo.referrers_of_kind(PUBLIC_IP_ADDRESSES.key),
    ]
    nic_ids = sorted(
        {b.source_root_id for b in bindings if b.source_kind == IP_CONFIGURATIONS.key}, key=str
    )
    nics = await repo.with_children(nic_ids) if nic_ids else []
    return SlbRows(load_balancers, public_ips, bindings, nics)
