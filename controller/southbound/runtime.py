"""The southbound side of one controller replica, wired together: the compiler, the change
follower, the hub of connected agents, their status board and the WebSocket channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.websockets import WebSocket

from controller.policy import Compiler
from controller.southbound import heap
from controller.southbound.channel import Channel
from controller.southbound.follower import PROVIDER_ADDRESS, Follower, provider_address_root
from controller.southbound.hub import Hub
from controller.southbound.status import StatusBoard, is_live
from controller.southbound.tokens import SECRET_NAME
from controller.store.agents import AgentRepository, AgentState
from controller.store.changes import ChangeLog
from controller.store.database import Database

log = logging.getLogger(__name__)
CHANNEL_PATH = "/southbound/v1/servers/{serverId}/channel"


@dataclass(frozen=True)
class SouthboundOptions:
    poll_interval: float = 1.0
    bookmark_interval: float = 5.0
    status_interval: float = 0.1
    stale_after: float = 30.0


# How often hosts served by other replicas are looked up while waiting for them (seconds).
REMOTE_POLL = 0.05


@dataclass(frozen=True)
class ApplyOutcome:
    applied: bool
    pending: frozenset[str]


class Southbound:
    def __init__(self, database: Database, options: SouthboundOptions | None = None) -> None:
        self.database = database
        self.options = options or SouthboundOptions()
        self.replica = uuid.uuid4().hex[:16]
        self._heap: asyncio.Task[None] | None = None
        self.compiler = Compiler()
        self.status = StatusBoard(database, self.replica, interval=self.options.status_interval)
        self.hub = Hub(self.compiler, self.status)
        self.follower = Follower(
            database,
            self.compiler,
            self.hub,
            poll_interval=self.options.poll_interval,
            bookmark_interval=self.options.bookmark_interval,
        )
        self.channel = Channel(
            self.hub,
            find_server=self._find_server,
            secret=self.secret,
            register_address=self._register_address,
            known_addresses=self._known_address,
        )
        self._secret: str | None = None

    async def start(self) -> None:
        await self.follower.start()
        # The policy just loaded is the bulk of the heap and lives as long as the replica.
        heap.freeze()
        self._heap = asyncio.create_task(heap.keep_frozen(), name="heap")
        self.status.start()

    async def stop(self) -> None:
        await self.hub.close_all()
        await self.follower.stop()
        await self.status.stop()
        if self._heap is not None:
            self._heap.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heap

    def on_commit(self, revision: int) -> None:
        self.follower.wake(revision)

    def router(self) -> APIRouter:
        router = APIRouter()

        async def channel(websocket: WebSocket, serverId: str) -> None:
            await self.channel.serve(websocket, serverId)

        router.add_api_websocket_route(CHANNEL_PATH, channel, name="agent_channel")
        router.add_api_route(
            "/southbound/v1/status",
            self._status,
            methods=["GET"],
            tags=["southbound"],
            summary="This replica's southbound state: revision, objects, connected agents",
            operation_id="southbound_status",
        )
        return router

    async def _status(self) -> dict[str, object]:
        stats = self.follower.stats
        return {
            "replica": self.replica,
            "revision": self.compiler.revision,
            "resumableFrom": self.compiler.floor,
            "objects": len(self.compiler.objects),
            "agentsConnected": len(self.hub.sessions),
            "statusFlushes": self.status.flushes,
            "changesCompiled": stats.changes,
            "compileSecondsTotal": round(stats.compile_seconds, 6),
            "lastCompileMs": round(stats.last_compile_ms, 3),
            "bytesSent": sum(s.sent_bytes for s in self.hub.sessions.values()),
        }

    # -- helpers for the channel ----------------------------------------------------------

    async def secret(self) -> str:
        if self._secret is None:

            async def work(connection: AsyncConnection) -> str:
                agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
                return await agents.secret(SECRET_NAME)

            self._secret = await self.database.run(work)
        return self._secret

    async def _find_server(self, resource_id: str) -> tuple[uuid.UUID, str] | None:
        async def work(connection: AsyncConnection) -> tuple[uuid.UUID, str] | None:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            return await agents.server_by_resource_id(resource_id)

        return await self.database.run(work, write=False)

    def _known_address(self, server: uuid.UUID) -> str | None:
        model = self.compiler.model
        key = model.server_keys.get(str(server))
        return model.provider.get(key) if key else None

    async def _register_address(self, server: uuid.UUID, ref: str, address: str) -> None:
        """Record a provider address an agent reported, as a change every replica follows."""

        async def work(connection: AsyncConnection) -> int:
            now = datetime.now(UTC)
            postgres = self.database.is_postgres
            # Kept with the server's status (where a replica loading the policy reads it) and
            # logged as a change (which the running replicas follow), in one transaction.
            await AgentRepository(connection, is_postgres=postgres).record_address(
                server, address, now
            )
            return await ChangeLog(connection, is_postgres=postgres).record(
                provider_address_root(server),
                PROVIDER_ADDRESS,
                {"server": ref, "address": address},
                now,
            )

        revision = await self.database.run(work)
        self.follower.wake(revision)

    # -- waiting for hosts ----------------------------------------------------------------

    async def wait_applied(self, revision: int, within: float) -> ApplyOutcome:
        """Wait until every connected host ``revision`` touched has acknowledged it: hosts
        connected here are followed as their acks arrive, those of other replicas are polled
        from the database."""
        deadline = time.monotonic() + within
        if not await self.follower.processed(revision, within):
            return ApplyOutcome(False, frozenset())
        hosts = self.hub.affected.get(revision, frozenset())
        watch = self.hub.watch(revision, set(hosts))
        remote = {host for host in hosts if host not in self.hub.sessions}
        try:
            while True:
                remote = await self._remote_pending(remote, revision)
                left = deadline - time.monotonic()
                if (not watch.pending and not remote) or left <= 0:
                    pending = frozenset(str(host) for host in watch.pending | remote)
                    return ApplyOutcome(not pending, pending)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, REMOTE_POLL) if remote else left):
                        # Local acks end the wait as they come; remote ones are polled.
                        await (watch.done.wait() if watch.pending else asyncio.sleep(left))
        finally:
            self.hub.unwatch(watch)

    async def _remote_pending(self, remote: set[uuid.UUID], revision: int) -> set[uuid.UUID]:
        """Those of ``remote`` (hosts served by other replicas) that are live and have not
        applied ``revision`` yet."""
        if not remote:
            return remote

        async def work(connection: AsyncConnection) -> dict[uuid.UUID, AgentState]:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            return await agents.states(list(remote))

        states = await self.database.run(work, write=False)
        now = datetime.now(UTC)
        stale = timedelta(seconds=self.options.stale_after)
        return {
            server
            for server in remote
            if (state := states.get(server)) is not None
            and is_live(state, now, stale)
            and state.applied_revision < revision
        }
