"""Follows the change log: every committed write, in revision order, through the compiler and
out to the connected agents.

At start the replica reads the current model at one revision, in one consistent read, and
builds the compiler from it; from then on it reads the log after that revision. It wakes on
PostgreSQL ``NOTIFY sdnc_changes`` (or, in one process, on the service's commit hook), and
polls anyway every ``poll_interval`` because notifications are not durable. Each wake-up names
the revision it is for, so the second of a write of this replica (its commit's, then its
notification's) reads nothing.

While the database is unavailable each read fails within the database's timeout and the next
one follows a poll interval later (one at a time); the first that gets through catches up
from the last revision compiled, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import ServiceUnavailable
from controller.lifecycle import Stopper, stop_tasks
from controller.policy import Change, Compiler
from controller.policy.compiler import Prepared, prepare
from controller.policy.documents import (
    DIP_HEALTH_KIND,
    PROVIDER_ADDRESS_KIND,
    SOURCE_ROOTS,
    DocumentRow,
    aggregate_document,
    dip_health_document,
    dip_health_root,
    provider_address_document,
    provider_address_root,
)
from controller.policy.topology import Entity
from controller.service.heavy import off_loop
from controller.southbound.hub import Hub
from controller.store.allocations import VSIDS, AllocationRepository
from controller.store.changes import CHANNEL, ChangeLog, ChangeRow
from controller.store.database import Database, connect_timeout
from controller.store.health import HealthRepository, HealthRow

log = logging.getLogger(__name__)
BATCH = 500
# A change document of this many characters of JSON or more (a 400-rule ACL) is decoded and
# prepared off the event loop: about 10 ms of Python.
HEAVY_DOCUMENT = 100_000
# Reading the whole model when a replica starts takes seconds at 100,000 endpoints: it gets
# more than a request's time, and is bounded all the same.
LOAD_TIMEOUT = 300.0


@dataclass
class FollowerStats:
    changes: int = 0
    compile_seconds: float = 0.0
    last_compile_ms: float = 0.0


class Follower:
    def __init__(
        self,
        database: Database,
        compiler: Compiler,
        hub: Hub,
        *,
        poll_interval: float = 1.0,
        bookmark_interval: float = 5.0,
    ) -> None:
        self.database = database
        self.compiler = compiler
        self.hub = hub
        self.poll_interval = poll_interval
        self.bookmark_interval = bookmark_interval
        self.stats = FollowerStats()
        # Told the seconds each change took to compile (the metrics' histogram).
        self.on_compiled: Callable[[float], None] = lambda seconds: None
        self._wake = asyncio.Event()
        # The newest revision a wake-up asked for (infinite: whatever is new); a wake-up for
        # revisions compiled already reads nothing (a write of this replica wakes it twice:
        # by its commit and by its notification).
        self._wanted: float = 0
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopper = Stopper()
        # Waits on notifications only (psycopg's own asyncio, no driver thread): cancelled.
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._load()
        self._tasks.append(asyncio.create_task(self._follow(), name="change-follower"))
        self._tasks.append(asyncio.create_task(self._bookmarks(), name="bookmarks"))
        if self.database.is_postgres:
            self._listener = asyncio.create_task(self._listen(), name="change-listener")

    async def stop(self) -> None:
        # The follow loop sees the stop at once (stop_tasks asks again below).
        self._stopper.stop()
        self._wake.set()
        # The step under way (a read of the change log) ends; only a stuck one is cancelled.
        grace = self.database.timeouts.total + 1.0
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await stop_tasks(self._stopper, self._tasks, grace=grace)
        self._tasks.clear()

    def wake(self, revision: int | None = None) -> None:
        """Read the change log soon: up to ``revision`` (committed), or whatever is new."""
        self._wanted = max(self._wanted, math.inf if revision is None else revision)
        self._wake.set()

    async def processed(self, revision: int, within: float) -> bool:
        """Wait (up to ``within`` seconds) until this replica has compiled ``revision``."""
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._progress.wait_for(lambda: self.compiler.revision >= revision)
        return self.compiler.revision >= revision

    # -- loading --------------------------------------------------------------------------

    async def _load(self) -> None:
        async def read(connection: AsyncConnection) -> tuple[int, list[Change]]:
            log_ = ChangeLog(connection, is_postgres=self.database.is_postgres)
            revision = await log_.current()
            rows = await log_.resource_rows(SOURCE_ROOTS)
            addresses = await log_.provider_addresses()
            subnets = [r["instance_id"] for r in rows if r["kind"] == "virtualNetworks/subnets"]
            allocations = AllocationRepository(connection, is_postgres=self.database.is_postgres)
            vsids = await allocations.held_by(VSIDS, subnets)
            health = await HealthRepository(connection).all()
            changes = _changes(revision, rows, {s: a.value for s, a in vsids.items()}, addresses)
            return revision, changes + _health_changes(revision, health)

        revision, changes = await self.database.run(
            read, write=False, isolation="REPEATABLE READ", within=LOAD_TIMEOUT
        )
        started = time.perf_counter()
        self.compiler.load(changes, revision)
        log.info(
            "policy loaded at revision %d: %d objects in %.2f s",
            revision,
            len(self.compiler.objects),
            time.perf_counter() - started,
        )

    # -- following ------------------------------------------------------------------------

    async def _follow(self) -> None:
        unavailable = False
        while not self._stopper.stopping():
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the wake-up does, and this loop would then never stop.
            polled = False
            try:
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                polled = True
            self._wake.clear()
            if self._stopper.stopping():
                return
            if not polled and self._wanted <= self.compiler.revision:
                continue  # what the wake-ups asked for was read already
            self._wanted = 0
            try:
                await self.catch_up()
            except ServiceUnavailable as exc:
                if not unavailable:
                    log.warning("the change log cannot be read (%s); retrying", exc)
                unavailable = True
                self._wanted = math.inf  # not read: the next wake-up reads, whatever it names
                continue
            except Exception:
                log.exception("following the change log failed; retrying")
                self._wanted = math.inf
                await self._stopper.pause(self.poll_interval)
                continue
            if unavailable:
                log.info("following the change log again at revision %d", self.compiler.revision)
                unavailable = False

    async def catch_up(self) -> None:
        while True:
            rows = await self.database.run(self._read_after, write=False)
            for row in rows:
                change, prepared = await self._change(row)
                if change.revision > self.compiler.revision:  # not applied meanwhile
                    self._apply(change, prepared)
            if rows:
                async with self._progress:
                    self._progress.notify_all()
            if len(rows) < BATCH:
                return

    async def _read_after(self, connection: AsyncConnection) -> list[ChangeRow]:
        changes = ChangeLog(connection, is_postgres=self.database.is_postgres)
        return await changes.since(self.compiler.revision, limit=BATCH)

    async def _change(self, row: ChangeRow) -> tuple[Change, Prepared | None]:
        """The change ``row`` records; a big one decoded and prepared on the heavy-work thread
        (the rest of the compile reads the state the southbound serves, so it stays on the
        loop). A small one is decoded here and prepared by ``apply`` itself."""
        text = row.document_text
        if text is None or len(text) < HEAVY_DOCUMENT:
            return _change_of(row), None
        old = self.compiler.contributed(str(row.root_id))
        return await off_loop(_prepared_change, row, old)

    def _apply(self, change: Change, prepared: Prepared | None = None) -> None:
        started = time.perf_counter()
        deltas = self.compiler.apply(change, prepared)
        elapsed = time.perf_counter() - started
        self.stats.changes += 1
        self.stats.compile_seconds += elapsed
        self.stats.last_compile_ms = elapsed * 1000
        self.on_compiled(elapsed)
        self.hub.dispatch(change.revision, deltas)
        self.hub.forget(self.compiler.vanished)

    async def _bookmarks(self) -> None:
        while await self._stopper.pause(self.bookmark_interval):
            self.hub.bookmark(self.compiler.revision)

    async def _listen(self) -> None:
        """Wake on NOTIFY; reconnect after a failure (the poll covers the gap)."""
        url = self.database.url.set(drivername="postgresql").render_as_string(hide_password=False)
        timeout = connect_timeout(self.database.timeouts.connect)
        lost = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=timeout
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if lost:
                        log.info("change notifications restored")
                        lost = False
                    async for notify in conn.notifies():
                        self.wake(_revision(notify.payload))
            except Exception:
                if not lost:
                    log.warning("change notifications lost; polling until reconnected")
                lost = True
                await asyncio.sleep(self.poll_interval)


def _revision(payload: str) -> int | None:
    """The revision a change notification names (None: any)."""
    try:
        return int(payload)
    except ValueError:
        return None


def _changes(
    revision: int,
    rows: list[dict[str, Any]],
    vsids: dict[uuid.UUID, int],
    addresses: list[tuple[uuid.UUID, str, str]],
) -> list[Change]:
    """The current documents of every policy aggregate, as changes at ``revision``."""
    by_root: defaultdict[uuid.UUID, list[DocumentRow]] = defaultdict(list)
    kinds: dict[uuid.UUID, str] = {}
    for row in rows:
        instance = row["instance_id"]
        by_root[row["root_id"]].append(
            DocumentRow(
                instance, row["kind"], row["resource_ref"], row["properties"], vsids.get(instance)
            )
        )
        kinds[row["root_id"]] = row["root_kind"]
    changes = [
        Change(revision, str(root), kinds[root], aggregate_document(documents))
        for root, documents in by_root.items()
    ]
    changes += [
        Change(
            revision,
            str(provider_address_root(server)),
            PROVIDER_ADDRESS_KIND,
            provider_address_document(ref, address),
        )
        for server, ref, address in addresses
    ]
    return changes


def _health_changes(revision: int, rows: list[HealthRow]) -> list[Change]:
    """The DIP health the hosts reported, as changes at ``revision``."""
    return [
        Change(
            revision,
            str(dip_health_root(row.dip_id, row.probe_id)),
            DIP_HEALTH_KIND,
            dip_health_document(row.server_ref, row.probe_id, row.dip_id, row.state),
        )
        for row in rows
    ]


def _change_of(row: ChangeRow) -> Change:
    return Change(row.revision, str(row.root_id), row.root_kind, row.document())


def _prepared_change(row: ChangeRow, old: list[Entity]) -> tuple[Change, Prepared]:
    change = _change_of(row)
    return change, prepare(change, old)
