"""Finishing an upgrade from an earlier version, once its last replica has stopped
(``sdnc db finish-upgrade``): what such replicas could not do or would have misread."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core.kinds import Registry
from controller.service.trees import load_trees
from controller.service.validation import sibling_key_text
from controller.store.changes import ChangeLog
from controller.store.database import Database
from controller.store.repository import ResourceRepository

# Filling in sibling keys reads every row that lacks one: more than a request's time.
FINISH_TIMEOUT = 300.0


async def finish_upgrade(database: Database, registry: Registry) -> int:
    """Give the rows that replicas of an earlier version wrote the sibling key they left
    unset (a child written alone is checked against it), then let the replicas record
    writes as patches (which those replicas would have misread); returns how many rows
    were filled in. One transaction; running it again changes nothing."""
    kinds = [kind.key for kind in registry.kinds if kind.sibling_key is not None]

    async def work(connection: AsyncConnection) -> int:
        repo = ResourceRepository(connection, is_postgres=database.is_postgres)
        filled = 0
        for row in await repo.without_sibling_key(kinds):
            # The node of one child, on its own (its parent is not loaded).
            node = load_trees(registry, [replace(row, parent_id=None)])[0]
            key = sibling_key_text(node)
            if key is not None:  # a Dynamic ipConfiguration holds none
                await repo.update(row.instance_id, {"sibling_key": key})
                filled += 1
        await ChangeLog(connection, is_postgres=database.is_postgres).allow_patches()
        return filled

    return await database.run(work, within=FINISH_TIMEOUT)
