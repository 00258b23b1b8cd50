"""What a write records in the change log: the aggregate's documents after the write, as the
policy compiler reads them (``controller.policy.documents``), with the VSID of each virtual
subnet, which lives in its allocation rather than in its document. A write of an aggregate
that existed before records only what it changed (a patch), where the kind allows it and
every replica follows patches (``Patches``): a rule added to a 10,000-rule ACL is then a
document of one rule, not 2.5 MB."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.policy.documents import (
    DocumentRow,
    Json,
    aggregate_document,
    patch_document,
    patchable,
)
from controller.resources.virtual_networks import VIRTUAL_SUBNETS
from controller.service.heavy import HEAVY_ROWS, off_loop
from controller.store.allocations import VSIDS, AllocationRepository
from controller.store.changes import ChangeLog
from controller.store.compiled import Bound
from controller.store.database import json_text
from controller.store.repository import ResourceRepository, StoredResource

# How long a replica trusts that patches are not allowed yet before it asks again.
PATCHES_RECHECK = 5.0


class Patches:
    """Whether this replica may record writes as patches: read from the database until they
    are allowed, at most every ``PATCHES_RECHECK`` seconds (once allowed, always allowed), so
    a replica learns of ``sdnc db finish-upgrade`` within seconds at the cost of one small
    read per interval until then."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._allowed = False
        self._asked_at: float | None = None

    async def allowed(self, connection: AsyncConnection, *, is_postgres: bool) -> bool:
        if self._allowed:
            return True
        now = self._clock()
        if self._asked_at is None or now - self._asked_at >= PATCHES_RECHECK:
            self._asked_at = now
            log = ChangeLog(connection, is_postgres=is_postgres)
            self._allowed = await log.patches_allowed()
        return self._allowed


@dataclass(frozen=True)
class Changed:
    """What a write changed of an aggregate that existed before it: the instanceIds of the
    rows it inserted or rewrote, and the lower-cased resourceRefs of the rows it removed
    (with their descendants)."""

    rows: frozenset[uuid.UUID]
    removed: tuple[str, ...] = ()


async def record_write(
    repo: ResourceRepository,
    rows: Sequence[StoredResource],
    *,
    now: datetime,
    is_postgres: bool,
    changed: Changed | None = None,
    first: Sequence[Bound] = (),
) -> int:
    """Record the aggregate ``rows`` (its state after the write; only those ``changed`` names,
    and the ones it removed, when given and the kind allows) and commit the write's
    transaction (``ChangeLog.record``'s ``commit``: nothing may follow; ``first`` goes
    ahead, in the same round trip); returns the revision."""
    root = next(row for row in rows if row.parent_id is None)
    removed: tuple[str, ...] | None = None
    if changed is not None and patchable(root.kind):
        rows = [row for row in rows if row.instance_id in changed.rows]
        removed = changed.removed
    subnets = [row.instance_id for row in rows if row.kind == VIRTUAL_SUBNETS.key]
    held = await AllocationRepository(repo.connection, is_postgres=is_postgres).held_by(
        VSIDS, subnets
    )
    vsids = {subnet: allocation.value for subnet, allocation in held.items()}
    if len(rows) < HEAVY_ROWS:
        document, encoded = _documented(rows, vsids, removed), None
    else:
        # Tens of milliseconds of Python for a big aggregate: on the heavy-work thread, the
        # JSON text the change log stores included.
        document, encoded = await off_loop(_documented_and_encoded, rows, vsids, removed)
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(
        root.instance_id, root.kind, document, now, commit=True, encoded=encoded, first=first
    )


def _documented(
    rows: Sequence[StoredResource],
    vsids: Mapping[uuid.UUID, int],
    removed: Sequence[str] | None,
) -> Json:
    documented = (
        DocumentRow(
            row.instance_id, row.kind, row.resource_ref, row.properties, vsids.get(row.instance_id)
        )
        for row in rows
    )
    if removed is None:
        return aggregate_document(documented)
    return patch_document(documented, removed)


def _documented_and_encoded(
    rows: Sequence[StoredResource],
    vsids: Mapping[uuid.UUID, int],
    removed: Sequence[str] | None,
) -> tuple[Json, str]:
    document = _documented(rows, vsids, removed)
    return document, json_text(document)


async def record_deletion(
    repo: ResourceRepository,
    root: StoredResource,
    *,
    now: datetime,
    is_postgres: bool,
    first: Sequence[Bound] = (),
) -> int:
    """Record the deletion of the aggregate ``root`` and commit, as :func:`record_write`."""
    log = ChangeLog(repo.connection, is_postgres=is_postgres)
    return await log.record(root.instance_id, root.kind, None, now, commit=True, first=first)
