"""Reported state of the agents connected to this replica, written to the database in batches.

Acks arrive at thousands per second when a change reaches every host; each one only updates
memory here, and a flush every ``interval`` writes all that changed in one statement (and, on
PostgreSQL, NOTIFYs ``sdnc_acks`` so replicas waiting for an apply wake up). Liveness is renewed
on the same beat, so a replica that dies leaves its agents looking disconnected once
``stale_after`` has passed.

While the database is unavailable, flushes keep failing one after the other (each bounded by
the database's timeout, never more than one at a time from the beat) and nothing is dropped:
what was not written stays marked and is written by the first flush that gets through.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import ServiceUnavailable
from controller.lifecycle import Stopper, stop_tasks
from controller.store.agents import AgentRepository, AgentState
from controller.store.database import Database

log = logging.getLogger(__name__)
ACKS_CHANNEL = "sdnc_acks"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StatusBoard:
    def __init__(
        self,
        database: Database,
        replica: str,
        *,
        interval: float = 0.1,
        touch_every: float = 5.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.database = database
        self.replica = replica
        self.interval = interval
        self.touch_every = touch_every
        self.clock = clock
        self.states: dict[uuid.UUID, AgentState] = {}  # agents connected here
        self._gone: dict[uuid.UUID, AgentState] = {}  # disconnected, not yet written
        self._dirty: set[uuid.UUID] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopper = Stopper()
        self._last_touch = 0.0
        self._failing: set[str] = set()  # beats failing now (logged once)
        self._refused: set[uuid.UUID] = set()  # set aside, to be marked disconnected
        # Told the server whose row was refused, to close its agent's connection.
        self.on_refused: Callable[[uuid.UUID], None] = lambda server: None
        # Flushes completed (with or without anything to write): once it has moved twice,
        # everything reported before it was read has been written.
        self.flushes = 0

    def connected(self, server: uuid.UUID, applied: int, provider_address: str | None) -> None:
        now = self.clock()
        self.states[server] = AgentState(
            server, self.replica, True, applied, None, provider_address, now, now
        )
        self._gone.pop(server, None)
        self._refused.discard(server)
        self._dirty.add(server)

    def acked(self, server: uuid.UUID, revision: int, failures: list[dict[str, Any]]) -> None:
        """The agent applied everything up to ``revision`` except ``failures`` (all objects
        it holds that are failing, so they replace what it reported before)."""
        state = self.states.get(server)
        if state is None:
            return
        self.states[server] = replace(
            state,
            applied_revision=max(state.applied_revision, revision),
            failures={"revision": revision, "failures": failures} if failures else None,
            last_seen=self.clock(),
        )
        self._dirty.add(server)

    def disconnected(self, server: uuid.UUID) -> None:
        state = self.states.pop(server, None)
        if state is not None:
            self._gone[server] = replace(state, connected=False, last_seen=self.clock())
            self._dirty.add(server)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="agent-status")

    async def stop(self) -> None:
        if self._task is not None:
            # The flush under way ends (a write is never cut in half); a stuck one is cancelled.
            grace = self.database.timeouts.total + 1.0
            await stop_tasks(self._stopper, [self._task], grace=grace)
        for server in list(self.states):
            self.disconnected(server)
        try:
            await self.flush()
        except ServiceUnavailable as exc:
            # Their rows go stale instead: they look disconnected after ``stale_after``.
            log.warning("the last agent status was not written (%s)", exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while await self._stopper.pause(self.interval):
            # Each on its own: liveness is renewed even while reports cannot be written.
            await self._beat("writing agent status", self.flush)
            if loop.time() - self._last_touch >= self.touch_every:
                self._last_touch = loop.time()
                await self._beat("renewing agent liveness", self._touch)

    async def _beat(self, what: str, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except Exception as exc:
            # Once per outage, not every 100 ms.
            if what not in self._failing:
                log.warning("%s failed (%s: %s); retrying", what, type(exc).__name__, exc)
            self._failing.add(what)
        else:
            if what in self._failing:
                log.warning("%s works again", what)
            self._failing.discard(what)

    async def flush(self, *, within: float | None = None) -> None:
        """Write what changed since the last flush, in one statement (in ``within`` seconds,
        by default the database's bound); on failure it stays marked for the next one. If the
        database refuses the statement, each row is written on its own, so that one agent's
        row cannot hold back the others; an agent whose row is refused even alone is set
        aside (``on_refused``)."""
        if self._refused:
            await self._mark_refused()
        if self._dirty:
            await self._flush_dirty(within)
        self.flushes += 1

    async def _flush_dirty(self, within: float | None) -> None:
        dirty, self._dirty = self._dirty, set()
        rows = [
            state
            for server in dirty
            if (state := self.states.get(server) or self._gone.get(server)) is not None
        ]
        try:
            await self._save(rows, within)
        except Exception as exc:
            if not _row_refused(exc):
                self._dirty |= dirty
                raise
            await self._save_each(rows, within)
        except BaseException:  # cancelled (a bounded wait gave up): written next time
            self._dirty |= dirty
            raise
        else:
            self._written(rows)

    async def _save_each(self, rows: list[AgentState], within: float | None) -> None:
        for index, row in enumerate(rows):
            try:
                await self._save([row], within)
            except Exception as exc:
                if not _row_refused(exc):  # the database, not the row: retry what is left
                    self._dirty |= {later.server_id for later in rows[index:]}
                    raise
                self._set_aside(row, exc)
            else:
                self._written([row])

    def _written(self, rows: list[AgentState]) -> None:
        for row in rows:
            if self._gone.get(row.server_id) is row:  # not gone again meanwhile
                del self._gone[row.server_id]

    def _set_aside(self, row: AgentState, exc: Exception) -> None:
        """Stop reporting an agent whose state the database refuses; its agent is told and
        disconnected, and its row marked disconnected by a statement that carries none of
        what it reported."""
        log.warning(
            "the status of the agent of %s cannot be written (%s: %s); disconnecting it",
            row.server_id,
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
        )
        self.states.pop(row.server_id, None)
        self._gone.pop(row.server_id, None)
        self._refused.add(row.server_id)
        self.on_refused(row.server_id)

    async def _save(self, rows: list[AgentState], within: float | None) -> None:
        async def work(connection: AsyncConnection) -> None:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            await agents.save(rows)
            if self.database.is_postgres:
                await connection.execute(text(f"NOTIFY {ACKS_CHANNEL}"))

        await self.database.run(work, within=within)

    async def _touch(self) -> None:
        servers = list(self.states)
        now = self.clock()

        async def work(connection: AsyncConnection) -> None:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            await agents.touch(self.replica, servers, now)

        await self.database.run(work)

    async def _mark_refused(self) -> None:
        refused, self._refused = self._refused, set()
        now = self.clock()

        async def work(connection: AsyncConnection) -> None:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            await agents.mark_disconnected(self.replica, list(refused), now)

        try:
            await self.database.run(work)
        except Exception:
            self._refused |= refused
            raise


def _row_refused(exc: Exception) -> bool:
    """Whether ``exc`` says the database refused the values of a row (out of range, too long,
    its server deleted meanwhile) rather than that it could not do any work."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, DataError | IntegrityError)
    # Raised while binding a value (SQLite's driver: an integer over 64 bits).
    return isinstance(exc, StatementError | ValueError | TypeError | OverflowError)
