"""Direct access to the test database: emptying it for tests that start many apps on one
database, rewriting stored documents as an older controller left them, and watching which
aggregates a write loads whole."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.database import Database
from controller.store.repository import ResourceRepository, StoredResource
from controller.store.tables import Base, Resource


def watch_whole_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The resourceRef of every aggregate an in-process write loads whole from now on, in
    order (a child written alone loads none)."""
    loaded: list[str] = []
    load_whole = ResourceRepository.aggregate

    async def counted(repo: ResourceRepository, root_id: uuid.UUID) -> list[StoredResource]:
        rows = await load_whole(repo, root_id)
        loaded.append(rows[0].resource_ref)
        return rows

    monkeypatch.setattr(ResourceRepository, "aggregate", counted)
    return loaded


async def empty(database: Database) -> None:
    """Remove every row the app wrote, children before what they refer to."""

    async def work(connection: AsyncConnection) -> None:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "revision_counter":
                await connection.execute(update(table).values(revision=0, patches=True))
            else:
                await connection.execute(delete(table))

    await database.run(work)


async def drop_stored_members(database: Database, resource_ref: str, *members: str) -> None:
    """Remove ``members`` from the stored properties of the resource at ``resource_ref``, as a
    row written by an older controller (before those members existed) holds them."""
    table = Resource.__table__

    async def work(connection: AsyncConnection) -> None:
        key = table.c.path_key == resource_ref.lower()
        stored = (await connection.execute(select(table.c.properties).where(key))).scalar_one()
        kept = {name: value for name, value in stored.items() if name not in members}
        await connection.execute(update(table).where(key).values(properties=kept))

    await database.run(work)
