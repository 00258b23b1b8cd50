"""Direct access to the test database, for tests that start many apps on one database."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.database import Database
from controller.store.tables import Base


async def empty(database: Database) -> None:
    """Remove every row the app wrote, children before what they refer to."""

    async def work(connection: AsyncConnection) -> None:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "revision_counter":
                await connection.execute(update(table).values(revision=0))
            else:
                await connection.execute(delete(table))

    await database.run(work)
