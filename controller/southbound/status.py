"""Reported state of the agents connected to this replica, written to the database in batches.

Acks arrive at thousands per second when a change reaches every host; each one only updates
memory here, and a flush every ``interval`` writes all that changed in one statement (and, on
PostgreSQL, NOTIFYs ``sdnc_acks`` so replicas waiting for an apply wake up). Liveness is renewed
on the same beat, so a replica that dies leaves its agents looking disconnected once
``stale_after`` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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
        self._last_touch = 0.0
        # Flushes completed (with or without anything to write): once it has moved twice,
        # everything reported before it was read has been written.
        self.flushes = 0

    def connected(self, server: uuid.UUID, applied: int, provider_address: str | None) -> None:
        now = self.clock()
        self.states[server] = AgentState(
            server, self.replica, True, applied, None, provider_address, now, now
        )
        self._gone.pop(server, None)
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
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for server in list(self.states):
            self.disconnected(server)
        await self.flush()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
                if loop.time() - self._last_touch >= self.touch_every:
                    self._last_touch = loop.time()
                    await self._touch()
            except Exception:
                log.exception("writing agent status failed; will retry")

    async def flush(self) -> None:
        if self._dirty:
            await self._write()
        self.flushes += 1

    async def _write(self) -> None:
        dirty, self._dirty = self._dirty, set()
        rows = [
            self.states.get(server) or self._gone.pop(server)
            for server in dirty
            if server in self.states or server in self._gone
        ]

        async def work(connection: AsyncConnection) -> None:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            await agents.save(rows)
            if self.database.is_postgres:
                await connection.execute(text(f"NOTIFY {ACKS_CHANNEL}"))

        try:
            await self.database.run(work)
        except Exception:
            self._dirty |= dirty
            raise

    async def _touch(self) -> None:
        servers = list(self.states)
        now = self.clock()

        async def work(connection: AsyncConnection) -> None:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            await agents.touch(self.replica, servers, now)

        await self.database.run(work)


def is_live(state: AgentState, now: datetime, stale_after: timedelta) -> bool:
    """Whether ``state`` says the agent is connected to a replica that is still alive."""
    return state.connected and now - state.last_seen <= stale_after
