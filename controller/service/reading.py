"""The read side of the resource engine: one resource, and collections a page at a time.

A top-level collection is read in pages, each the whole aggregates of the next top-level
resources in the collection's order (their keys), each page its own read: a collection of
20,000 NICs is never all in memory at once, and no database connection is held while the
client takes its time reading. Each page is a consistent state of the aggregates in it; a
resource created or deleted while a collection is being read is listed or not depending on
which side of the reader it sorts (as with any paged listing), and a resource that exists
throughout is listed exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core.kinds import Facts, Registry
from controller.core.paths import CollectionPath, ResourcePath
from controller.errors import NotFound
from controller.service.configuration import Hosts, hosts_of, states_of
from controller.service.heavy import HEAVY_ROWS, off_loop
from controller.service.pools import allocation_facts
from controller.service.views import ResourceView, build_views
from controller.store.allocations import AllocationRepository
from controller.store.database import Database
from controller.store.repository import Referrer, ResourceRepository, StoredResource

# Rows one page aims at (a page holds whole aggregates, so the number of top-level resources
# it asks for adapts to how big the previous page's aggregates were).
PAGE_ROWS = 600
FIRST_PAGE_AGGREGATES = 100
# Pages of collections read at once (see Reader._page).
PAGES_AT_ONCE = 2


# The rows of a page, the views of its top-level resources, and whether it is the last.
_Read = tuple[list[StoredResource], list[ResourceView], bool]


@dataclass(frozen=True)
class Page:
    views: list[ResourceView]
    # No page follows.
    last: bool


class Reader:
    def __init__(self, database: Database, registry: Registry) -> None:
        self.database = database
        self.registry = registry
        self._page_gate = asyncio.Semaphore(PAGES_AT_ONCE)

    def repo(self, connection: AsyncConnection) -> ResourceRepository:
        return ResourceRepository(connection, is_postgres=self.database.is_postgres)

    def allocations(self, repo: ResourceRepository) -> AllocationRepository:
        return AllocationRepository(repo.connection, is_postgres=self.database.is_postgres)

    async def get(self, path: ResourcePath, *, within: float | None = None) -> ResourceView:
        """The resource at ``path``; ``within`` seconds shorten the database's bound."""

        async def work(connection: AsyncConnection) -> ResourceView:
            repo = self.repo(connection)
            view = await self.view(repo, await repo.aggregate_at(path.root.key), path)
            if view is None:
                raise NotFound(f"{path.ref} does not exist", target=path.ref)
            return view

        if within is not None:
            within = min(within, self.database.timeouts.total)
        return await self.database.run(work, write=False, within=within)

    async def pages(self, collection: CollectionPath) -> AsyncGenerator[Page, None]:
        """The members of ``collection`` in order, a page at a time (a child collection, part
        of one aggregate, in one page). The next page is read while the caller renders and
        sends the one it was given."""
        if collection.parent is not None:
            yield Page(await self._children(collection, collection.parent), last=True)
            return
        limit = FIRST_PAGE_AGGREGATES
        reading = self._reading(collection, "", limit)
        while True:
            rows, views, last = await reading
            if not last:
                roots = [row for row in rows if row.parent_id is None]
                # Aim the next page at PAGE_ROWS rows, from the size of these aggregates.
                limit = max(1, min(4 * limit, PAGE_ROWS * len(roots) // max(1, len(rows))))
                reading = self._reading(collection, roots[-1].path_key, limit)
            yield Page(views, last)
            if last:
                return

    def _reading(self, collection: CollectionPath, after: str, limit: int) -> asyncio.Task[_Read]:
        """The page after ``after``, being read. Abandoned (the client left), it ends by
        itself within the database's bound, its outcome dropped."""
        task = asyncio.ensure_future(self._page(collection, after, limit))
        task.add_done_callback(_drop_outcome)
        return task

    async def _page(self, collection: CollectionPath, after: str, limit: int) -> _Read:
        kind = collection.kind.key

        async def work(connection: AsyncConnection) -> _Read:
            repo = self.repo(connection)
            # One aggregate more than wanted tells whether another page follows (its rows
            # are dropped: the next page starts with it).
            rows = await repo.aggregates_page(kind, after, limit + 1)
            roots = [row for row in rows if row.parent_id is None]
            last = len(roots) <= limit
            if not last:
                extra = roots[-1].instance_id
                rows = [row for row in rows if row.root_id != extra]
            referrers = await repo.page_referrers(kind, after, limit) if rows else []
            views = await self.views(repo, rows, referrers)
            return rows, [views[row.instance_id] for row in rows if row.parent_id is None], last

        # Each page costs the event loop the driver's decoding of its rows: a few pages at a
        # time, however many collections are being read, keep the loop's other work going.
        async with self._page_gate:
            return await self.database.run(work, write=False)

    async def _children(
        self, collection: CollectionPath, parent: ResourcePath
    ) -> list[ResourceView]:
        async def work(connection: AsyncConnection) -> list[ResourceView]:
            repo = self.repo(connection)
            view = await self.view(repo, await repo.aggregate_at(parent.root.key), parent)
            if view is None:
                raise NotFound(f"{parent.ref} does not exist", target=parent.ref)
            return view.children[collection.kind.name]

        return await self.database.run(work, write=False)

    async def view(
        self,
        repo: ResourceRepository,
        rows: Sequence[StoredResource],
        path: ResourcePath,
        referrers: Sequence[Referrer] | None = None,
    ) -> ResourceView | None:
        """The view of ``path`` from the rows of its whole aggregate (None if not among them).
        Only its own subtree is viewed (and the top-level row, whose etag it shows): one rule
        of a 10,000-rule ACL costs one rule. ``referrers``: who references the rows, when
        known already (else asked of the database)."""
        wanted = next((row for row in rows if row.path_key == path.key), None)
        if wanted is None:
            return None
        below = wanted.path_key + "/"
        rows = [
            row
            for row in rows
            if row.parent_id is None or row is wanted or row.path_key.startswith(below)
        ]
        if referrers is None:
            referrers = await repo.referrers([row.instance_id for row in rows])
        views = await self.views(repo, rows, referrers)
        return views[wanted.instance_id]

    async def views(
        self,
        repo: ResourceRepository,
        rows: Sequence[StoredResource],
        referrers: Sequence[Referrer],
    ) -> dict[uuid.UUID, ResourceView]:
        facts = await self.facts(repo, rows)
        hosts = await hosts_of(repo, rows, is_postgres=self.database.is_postgres)
        if len(rows) < HEAVY_ROWS:
            return _built(self.registry, rows, referrers, facts, hosts)
        return await off_loop(_built, self.registry, rows, referrers, facts, hosts)

    async def facts(
        self, repo: ResourceRepository, rows: Sequence[StoredResource]
    ) -> dict[uuid.UUID, Facts]:
        return await allocation_facts(self.allocations(repo), repo, rows)


def _built(
    registry: Registry,
    rows: Sequence[StoredResource],
    referrers: Sequence[Referrer],
    facts: Mapping[uuid.UUID, Facts],
    hosts: Hosts | None,
) -> dict[uuid.UUID, ResourceView]:
    return build_views(registry, rows, referrers, facts, states_of(rows, hosts))


def _drop_outcome(task: asyncio.Task[_Read]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned page's failure is no one's to answer
