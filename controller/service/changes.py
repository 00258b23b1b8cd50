"""What a write records in the change log: the aggregate's documents after the write, as the
policy compiler reads them (``controller.policy.documents``), with the VSID of each virtual
subnet, which lives in its allocation rather than in its document."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from controller.policy.documents import DocumentRow, Json, aggregate_document
from controller.resources.virtual_networks import VIRTUAL_SUBNETS
from controller.service.heavy import HEAVY_ROWS, off_loop
from controller.store.allocations import VSIDS, AllocationRepository
from controller.store.changes import ChangeLog
from controller.store.database import json_text
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
    vsids = {subnet: allocation.value for subnet, allocation in held.items()}
    if len(rows) < HEAVY_ROWS:
        document, encoded = _documented(rows, vsids), None
    else:
        # Tens of milliseconds of Python for a big aggregate: on the heavy-work thread, the
        # JSON text the change log stores included.
        document, encoded = await off_loop(_documented_and_encoded, rows, vsids)
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(
        root.instance_id, root.kind, document, now, commit=True, encoded=encoded
    )


def _documented(rows: Sequence[StoredResource], vsids: Mapping[uuid.UUID, int]) -> Json:
    return aggregate_document(
        DocumentRow(
            row.instance_id, row.kind, row.resource_ref, row.properties, vsids.get(row.instance_id)
        )
        for row in rows
    )


def _documented_and_encoded(
    rows: Sequence[StoredResource], vsids: Mapping[uuid.UUID, int]
) -> tuple[Json, str]:
    document = _documented(rows, vsids)
    return document, json_text(document)


async def record_deletion(
    repo: ResourceRepository, root: StoredResource, *, now: datetime, is_postgres: bool
) -> int:
    """Record the deletion of the aggregate ``root`` and commit, as :func:`record_write`."""
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(root.instance_id, root.kind, None, now, commit=True)
