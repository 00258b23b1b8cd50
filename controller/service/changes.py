"""What a write records in the change log: the aggregate's documents after the write, as the
policy compiler reads them (``controller.policy.documents``), with the VSID of each virtual
subnet, which lives in its allocation rather than in its document."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from controller.policy.documents import DocumentRow, aggregate_document
from controller.resources.virtual_networks import VIRTUAL_SUBNETS
from controller.service.heavy import HEAVY_ROWS, off_loop
from controller.store.allocations import VSIDS, AllocationRepository
from controller.store.changes import ChangeLog
from controller.store.repository import ResourceRepository, StoredResource


async def record_write(
    repo: ResourceRepository,
    rows: Sequence[StoredResource],
    *,
    now: datetime,
    is_postgres: bool,
) -> int:
    """Record the aggregate ``rows`` (its state after the write) and commit the write's
    transaction (``ChangeLog.record``'s ``commit``: nothing may follow); returns the
    revision."""
    root = next(row for row in rows if row.parent_id is None)
    subnets = [row.instance_id for row in rows if row.kind == VIRTUAL_SUBNETS.key]
    held = await AllocationRepository(repo.connection, is_postgres=is_postgres).held_by(
        VSIDS, subnets
    )
    documented = [
        DocumentRow(
            row.instance_id,
            row.kind,
            row.resource_ref,
            row.properties,
            held[row.instance_id].value if row.instance_id in held else None,
        )
        for row in rows
    ]
    if len(documented) < HEAVY_ROWS:
        document = aggregate_document(documented)
    else:
        document = await off_loop(aggregate_document, documented)
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(root.instance_id, root.kind, document, now, commit=True)


async def record_deletion(
    repo: ResourceRepository, root: StoredResource, *, now: datetime, is_postgres: bool
) -> int:
    """Record the deletion of the aggregate ``root`` and commit, as :func:`record_write`."""
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(root.instance_id, root.kind, None, now, commit=True)
