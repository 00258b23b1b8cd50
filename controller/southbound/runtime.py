"""The southbound side of one controller replica, wired together: the compiler, the change
follower, the hub of connected agents, their status board and the WebSocket channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.websockets import WebSocket

from controller import protocol
from controller.errors import ServiceUnavailable
from controller.policy import Compiler
from controller.policy.documents import (
    DIP_HEALTH_KIND,
    PROVIDER_ADDRESS_KIND,
    dip_health_document,
    dip_health_root,
    provider_address_document,
    provider_address_root,
)
from controller.policy.objects.lb import probe_dips
from controller.southbound import heap
from controller.southbound.channel import Channel
from controller.southbound.directory import ServerDirectory
from controller.southbound.follower import Follower
from controller.southbound.hub import Farewell, Hub
from controller.southbound.status import StatusBoard
from controller.southbound.tokens import SECRET_NAME
from controller.store.agents import STALE_AFTER, AgentRepository, AgentState, is_live
from controller.store.changes import ChangeLog
from controller.store.database import Database
from controller.store.health import HealthRepository, Recorded

log = logging.getLogger(__name__)
CHANNEL_PATH = "/southbound/v1/servers/{serverId}/channel"
# How the web server runs the agent channel (uvicorn's options): small JSON frames to many
# peers, where compressing each costs more CPU than it saves on a datacenter network; pings
# find dead peers; an agent's frame over the transport limit is cut off unread.
WEBSOCKET_OPTIONS: dict[str, Any] = {
    "ws_per_message_deflate": False,
    "ws_ping_interval": 10.0,
    "ws_ping_timeout": 10.0,
    "ws_max_size": protocol.TRANSPORT_MAX_BYTES,
}


@dataclass(frozen=True)
class SouthboundOptions:
    poll_interval: float = 1.0
    bookmark_interval: float = 5.0
    status_interval: float = 0.1
    stale_after: float = STALE_AFTER.total_seconds()
    # How long a hello naming a revision this replica has not processed yet waits for it.
    revision_wait: float = 5.0


STATUS_REFUSED = Farewell(
    protocol.INTERNAL_ERROR,
    "this agent's reported state could not be recorded",
    protocol.STATUS_NOT_RECORDED,
)

# How often hosts served by other replicas are looked up while waiting for them (seconds).
REMOTE_POLL = 0.05
# The least time a database call in a wait for hosts gets, however little of the wait is left
# (one quick read or write; seconds).
DATABASE_MINIMUM = 0.5


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
        self._thresholds: tuple[int, int, int] | None = None  # the collector's, before start
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
        # An agent whose reports the database refuses is told so and disconnected.
        self.status.on_refused = lambda server: self.hub.drop(server, STATUS_REFUSED)
        self.servers = ServerDirectory(self._find_server)
        self.channel = Channel(
            self.hub,
            find_server=self.servers.find,
            secret=self.secret,
            register_address=self._register_address,
            report_health=self._report_health,
            known_addresses=self._known_address,
            has_revision=self._has_revision,
        )
        self._secret: str | None = None
        self._secret_read = asyncio.Lock()  # a flood of first connects reads it once

    async def start(self) -> None:
        await self.follower.start()
        # The policy just loaded is the bulk of the heap and lives as long as the replica.
        heap.freeze()
        self._thresholds = heap.collect_young_less_often()
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
        if self._thresholds is not None:
            heap.restore_thresholds(self._thresholds)
            self._thresholds = None

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
        async with self._secret_read:
            if self._secret is None:

                async def work(connection: AsyncConnection) -> str:
                    agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
                    return await agents.secret(SECRET_NAME)

                self._secret = await self.database.run(work)
            return self._secret

    async def caught_up(self, within: float) -> int | None:
        """This replica's compiled revision once it has compiled everything committed when
        called (waiting up to ``within`` seconds); None if it is still behind then."""

        async def committed(connection: AsyncConnection) -> int:
            return await ChangeLog(connection, is_postgres=self.database.is_postgres).current()

        head = await self.database.run(committed, write=False)
        if head > self.compiler.revision:
            self.follower.wake()
            if not await self.follower.processed(head, within):
                return None
        return self.compiler.revision

    async def _has_revision(self, revision: int) -> bool:
        """Whether this replica has processed ``revision`` -- waiting for it a while when it
        is committed but this replica lags behind the one the agent came from."""
        if revision <= self.compiler.revision:
            return True

        async def committed(connection: AsyncConnection) -> int:
            return await ChangeLog(connection, is_postgres=self.database.is_postgres).current()

        if revision > await self.database.run(committed, write=False):
            return False  # no replica can have sent it
        self.follower.wake()
        return await self.follower.processed(revision, self.options.revision_wait)

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
                PROVIDER_ADDRESS_KIND,
                provider_address_document(ref, address),
                now,
                resource=False,
                commit=True,
            )

        revision = await self.database.run(work)
        self.follower.wake(revision)

    async def _report_health(
        self, server: uuid.UUID, ref: str, reports: Sequence[protocol.Health]
    ) -> None:
        """Record the DIP health changes an agent reported, as changes every replica follows
        (the compiler takes a DIP that is Down out of the slot tables of the rules that probe
        it). A report of a DIP that is not this host's under that probe (any more: the NIC
        moved, the probe changed) is ignored, as is one that changes nothing."""
        model = self.compiler.model
        host = str(server)
        wanted: dict[tuple[str, str], str] = {
            (report.probe, report.dip): report.state
            for report in reports
            if probe_dips(model, report.probe).get(report.dip) == host
        }
        if not wanted:
            return

        async def work(connection: AsyncConnection) -> int:
            now = datetime.now(UTC)
            health = HealthRepository(connection)
            changed: list[tuple[uuid.UUID, uuid.UUID, str]] = []
            for (probe_id, dip_id), state in wanted.items():
                probe, dip = uuid.UUID(probe_id), uuid.UUID(dip_id)
                done = await health.record(server, probe, dip, state, now)
                # A DIP is Up for the compiler until reported Down, so a first Up is stored
                # (slbState shows it) but not logged: the first ack of every connection says
                # Up of each healthy DIP. Decided by the database's row, not the model, which
                # lags it: an Up right after a Down the follower has not applied yet must be
                # logged (else the DIP stays out of its rules).
                if done is Recorded.REPLACED or (done is Recorded.FIRST and state == protocol.DOWN):
                    changed.append((probe, dip, state))
            changes = ChangeLog(connection, is_postgres=self.database.is_postgres)
            revision = 0
            for n, (probe, dip, state) in enumerate(changed, 1):
                # Logged last: the counter row stays locked until the commit.
                revision = await changes.record(
                    dip_health_root(dip, probe),
                    DIP_HEALTH_KIND,
                    dip_health_document(ref, probe, dip, state),
                    now,
                    resource=False,
                    commit=n == len(changed),
                )
            return revision

        revision = await self.database.run(work)
        if revision:
            self.follower.wake(revision)

    # -- waiting for hosts ----------------------------------------------------------------

    async def wait_applied(self, revision: int, within: float) -> ApplyOutcome:
        """Wait until every connected host ``revision`` touched has acknowledged it: hosts
        connected here are followed as their acks arrive, those of other replicas are polled
        from the database. Then the acks go to the database, so that reads show them. All of
        it within ``within`` (a database that does not answer in time only costs the acks of
        other replicas' hosts, which count as pending, and the flush, which is retried)."""
        deadline = time.monotonic() + within
        outcome = await self._wait_acks(revision, within, deadline)
        with contextlib.suppress(ServiceUnavailable):
            await self.status.flush(within=self._database_time(deadline))
        return outcome

    def _database_time(self, deadline: float) -> float:
        """How long the database may take before ``deadline``: what is left of it, yet
        enough for one quick read, and never more than the database's own bound."""
        left = max(deadline - time.monotonic(), DATABASE_MINIMUM)
        return min(left, self.database.timeouts.total)

    async def _wait_acks(self, revision: int, within: float, deadline: float) -> ApplyOutcome:
        if not await self.follower.processed(revision, within):
            return ApplyOutcome(False, frozenset())
        hosts = self.hub.affected.get(revision, frozenset())
        watch = self.hub.watch(revision, set(hosts))
        remote = {host for host in hosts if host not in self.hub.sessions}
        try:
            while True:
                remote = await self._remote_pending(remote, revision, deadline)
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

    async def _remote_pending(
        self, remote: set[uuid.UUID], revision: int, deadline: float
    ) -> set[uuid.UUID]:
        """Those of ``remote`` (hosts served by other replicas) that are live and have not
        applied ``revision`` yet (all of them, when the database does not answer in time)."""
        if not remote:
            return remote

        async def work(connection: AsyncConnection) -> dict[uuid.UUID, AgentState]:
            agents = AgentRepository(connection, is_postgres=self.database.is_postgres)
            return await agents.states(list(remote))

        try:
            states = await self.database.run(
                work, write=False, within=self._database_time(deadline)
            )
        except ServiceUnavailable:
            return remote
        now = datetime.now(UTC)
        stale = timedelta(seconds=self.options.stale_after)
        return {
            server
            for server in remote
            if (state := states.get(server)) is not None
            and is_live(state.connected, state.last_seen, now, stale)
            and state.applied_revision < revision
        }
