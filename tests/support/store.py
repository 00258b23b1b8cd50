"""Direct access to the test database: emptying it for tests that start many apps on one
database, and rewriting stored documents as an older controller left them."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.database import Database
from controller.store.tables import Base, Resource


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
