"""The agents connected to this replica and what each is sent.

Every message for a host goes through its session's queue, in revision order: the snapshot or
resume computed when it attached, then the delta of every later revision that touches it, and
bookmarks in between. Attaching and dispatching run without yielding to the event loop, so no
revision falls between a snapshot and the deltas after it. Each object body is encoded once
(per version) and the same bytes are spliced into every host's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from controller import protocol
from controller.policy import Body, Compiler, HostDelta
from controller.southbound.status import StatusBoard

log = logging.getLogger(__name__)
Sender = Callable[[bytes], Awaitable[None]]
QUEUE_LIMIT = 10_000
AFFECTED_MEMORY = 4096


@dataclass(frozen=True)
class Farewell:
    """Why the hub stopped feeding a session: the close code, and the ``error`` message to
    send first (None when there is nothing to report)."""

    code: int
    reason: str
    error: str | None = None


SUPERSEDED = Farewell(protocol.GOING_AWAY, "replaced by a newer connection")
SHUTTING_DOWN = Farewell(protocol.GOING_AWAY, "shutting down")


@dataclass(eq=False)
class Session:
    server: uuid.UUID
    send: Sender
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    sent_revision: int = 0
    applied_revision: int = 0
    sent_bytes: int = 0
    overflowed: bool = False
    # Called once when the queue overflows (the channel closes the connection).
    on_overflow: Callable[[], None] = lambda: None
    # Set when the hub stops feeding it (a newer connection of the same server replaced it,
    # the replica shuts down, or what its agent reported cannot be recorded).
    farewell: Farewell | None = None

    @property
    def host(self) -> str:
        return str(self.server)

    async def pump(self) -> None:
        """Write queued messages to the socket until told to stop (None)."""
        while (frame := await self.queue.get()) is not None:
            await self.send(frame)

    def put(self, frame: bytes, revision: int) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            # Too far behind: stop feeding it; the channel closes and the agent resumes.
            self.overflowed = True
            self.on_overflow()
            return
        self.sent_revision = revision
        self.sent_bytes += len(frame)


@functools.lru_cache(maxsize=65536)
def _server_id(host: str) -> uuid.UUID:
    """The server instanceId of a host name the compiler uses (parsed once per host: a
    change fans out to thousands)."""
    return uuid.UUID(host)


@dataclass(eq=False)
class ApplyWatch:
    """The local hosts that still have to acknowledge ``revision``; ``done`` is set when none
    are left. Kept up to date by the hub as acks come, so a waiter never rescans hosts."""

    revision: int
    pending: set[uuid.UUID]
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self, server: uuid.UUID) -> None:
        self.pending.discard(server)
        if not self.pending:
            self.done.set()


class Hub:
    def __init__(self, compiler: Compiler, status: StatusBoard) -> None:
        self.compiler = compiler
        self.status = status
        self.sessions: dict[uuid.UUID, Session] = {}
        # Which hosts each recent revision touched (for "wait until applied").
        self.affected: OrderedDict[int, frozenset[uuid.UUID]] = OrderedDict()
        self._fragments: dict[str, tuple[int, orjson.Fragment]] = {}
        self._watches: list[ApplyWatch] = []
        # Acknowledgements received (for the metrics).
        self.acks = 0

    # -- sessions -------------------------------------------------------------------------

    def attach(self, session: Session, applied: int) -> str:
        """Register ``session`` and queue what it is missing: a resume delta when the compiler
        can tell what changed since ``applied``, else a snapshot. Returns which it was."""
        previous = self.sessions.pop(session.server, None)
        if previous is not None:
            previous.farewell = SUPERSEDED
            with contextlib.suppress(asyncio.QueueFull):  # an overflowed one is closing anyway
                previous.queue.put_nowait(None)
        revision = self.compiler.revision
        resume = self.compiler.resume(session.host, applied)
        if resume is not None:
            frame = self._delta_frame(revision, resume, resume=True)
            kind = "resume"
        else:
            objects = self.compiler.snapshot(session.host)
            message = {"type": protocol.SNAPSHOT, "revision": revision, "objects": objects}
            frame = protocol.encode(self._with_fragments(message, objects, "objects"))
            kind = "snapshot"
        session.put(frame, revision)
        session.applied_revision = applied
        self.sessions[session.server] = session
        return kind

    def detach(self, session: Session, farewell: Farewell = SHUTTING_DOWN) -> None:
        if session.farewell is None:
            session.farewell = farewell
        if self.sessions.get(session.server) is session:
            del self.sessions[session.server]
            self.status.disconnected(session.server)
            for watch in self._watches:  # a host that left is no longer waited for here
                watch.settle(session.server)
        with contextlib.suppress(asyncio.QueueFull):  # an overflowed one is closing anyway
            session.queue.put_nowait(None)

    def drop(self, server: uuid.UUID, farewell: Farewell) -> None:
        """Stop serving ``server``'s agent: its connection is closed with ``farewell``."""
        session = self.sessions.get(server)
        if session is not None:
            self.detach(session, farewell)

    # -- fan-out --------------------------------------------------------------------------

    def dispatch(self, revision: int, deltas: dict[str, HostDelta]) -> None:
        """Queue the delta of ``revision`` for every connected host it touches."""
        servers = {_server_id(host): delta for host, delta in deltas.items()}
        self.affected[revision] = frozenset(servers)
        while len(self.affected) > AFFECTED_MEMORY:
            self.affected.popitem(last=False)
        for server, delta in servers.items():
            session = self.sessions.get(server)
            if session is not None:
                session.put(self._delta_frame(revision, delta), revision)

    def bookmark(self, revision: int) -> None:
        """Tell idle hosts nothing concerned them up to ``revision``."""
        frame = protocol.encode({"type": protocol.BOOKMARK, "revision": revision})
        for session in self.sessions.values():
            if session.sent_revision < revision:
                session.put(frame, revision)

    def _delta_frame(self, revision: int, delta: HostDelta, *, resume: bool = False) -> bytes:
        message: dict[str, Any] = {
            "type": protocol.DELTA,
            "revision": revision,
            "upserts": delta.upserts,
            "deletes": delta.deletes,
        }
        if resume:
            message["resume"] = True
        return protocol.encode(self._with_fragments(message, delta.upserts, "upserts"))

    def _with_fragments(
        self, message: dict[str, Any], objects: dict[str, Body], member: str
    ) -> dict[str, Any]:
        versions = self.compiler.versions
        encoded: dict[str, orjson.Fragment] = {}
        for key, body in objects.items():
            version = versions(key)
            cached = self._fragments.get(key)
            if cached is None or cached[0] != version:
                cached = (version, orjson.Fragment(protocol.encode(body)))
                self._fragments[key] = cached
            encoded[key] = cached[1]
        return {**message, member: encoded}

    def forget(self, keys: list[str]) -> None:
        """Drop the encodings of objects that no longer exist (frames already queued hold
        their own copy)."""
        for key in keys:
            self._fragments.pop(key, None)

    # -- acks -----------------------------------------------------------------------------

    def acked(self, session: Session, revision: int, failures: list[dict[str, Any]]) -> None:
        if session.farewell is not None:
            return  # no longer served: the server's status is not this connection's
        self.acks += 1
        session.applied_revision = max(session.applied_revision, revision)
        self.status.acked(session.server, revision, failures)
        for watch in self._watches:
            if revision >= watch.revision:
                watch.settle(session.server)

    def watch(self, revision: int, hosts: set[uuid.UUID]) -> ApplyWatch:
        """Start following which of ``hosts`` connected here have yet to apply ``revision``
        (call ``unwatch`` when done)."""
        pending = {
            host
            for host in hosts
            if (session := self.sessions.get(host)) is not None
            and session.applied_revision < revision
        }
        watch = ApplyWatch(revision, pending)
        if not pending:
            watch.done.set()
        self._watches.append(watch)
        return watch

    def unwatch(self, watch: ApplyWatch) -> None:
        with contextlib.suppress(ValueError):
            self._watches.remove(watch)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            self.detach(session)
