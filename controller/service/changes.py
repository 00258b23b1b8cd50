"""What a write records in the change log: the aggregate's documents after the write, as the
policy compiler reads them (instanceIds, kinds, resourceRefs, properties, and the VSID of each
virtual subnet, which lives in its allocation rather than in its document)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controller.resources.virtual_networks import VIRTUAL_SUBNETS
from controller.store.allocations import VSIDS, AllocationRepository
from controller.store.changes import ChangeLog
from controller.store.repository import ResourceRepository, StoredResource


def document(rows: Sequence[StoredResource], vsids: dict[Any, int]) -> dict[str, Any]:
    return {
        "rows": [
            {
                "id": str(row.instance_id),
                "kind": row.kind,
                "parent": str(row.parent_id) if row.parent_id else None,
                "ref": row.resource_ref,
                "properties": row.properties,
                **({"vsid": vsids[row.instance_id]} if row.instance_id in vsids else {}),
            }
            for row in rows
        ]
    }


async def record_write(
    repo: ResourceRepository,
    rows: Sequence[StoredResource],
    *,
    now: datetime,
    is_postgres: bool,
) -> int:
    """Record the aggregate ``rows`` (its state after the write); returns the revision."""
    root = next(row for row in rows if row.parent_id is None)
    subnets = [row.instance_id for row in rows if row.kind == VIRTUAL_SUBNETS.key]
    held = await AllocationRepository(repo.connection, is_postgres=is_postgres).held_by(
        VSIDS, subnets
    )
    vsids = {subnet: allocation.value for subnet, allocation in held.items()}
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(root.instance_id, root.kind, document(rows, vsids), now)


async def record_deletion(
    repo: ResourceRepository, root: StoredResource, *, now: datetime, is_postgres: bool
) -> int:
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(root.instance_id, root.kind, None, now)
