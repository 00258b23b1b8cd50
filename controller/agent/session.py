"""The agent's side of the southbound channel: connect, say hello with the revision last
applied, keep the host's desired state from the snapshot and deltas, hand each change to the
dataplane, acknowledge what was applied, and reconnect (to the next controller, with jittered
back-off) when the connection drops -- resuming, not starting over.

The dataplane is anything with ``apply``: the reference Linux agent programs the kernel, the
simulator keeps the state in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from controller import protocol

log = logging.getLogger(__name__)
# A refused credential is said at WARNING on the first refusal and every this many retries
# after (about every 100 s at the longest backoff).
REFUSAL_WARNING_EVERY = 20
Body = dict[str, Any]
# (probe instanceId, DIP ipConfiguration instanceId) -> "Up" | "Down".
HealthStates = dict[tuple[str, str], str]
# Runs the probes of the host's DIPs over its desired state: their states now.
Prober = Callable[[dict[str, Body]], HealthStates]


@dataclass(frozen=True)
class Failure:
    key: str
    code: str
    message: str


class Dataplane(Protocol):
    # True when ``apply`` returns every object of the host that is failing (it reconciles
    # the whole host), False when it returns those of the change it was given.
    reports_all_failures: bool

    async def apply(
        self, desired: dict[str, Body], upserts: dict[str, Body], deletes: Sequence[str]
    ) -> list[Failure]:
        """Make the host match ``desired`` (the whole state after the change, which was
        ``upserts``/``deletes``); return the objects that could not be applied."""
        ...


@dataclass
class AgentState:
    """What the agent holds: the desired objects, the revision they are complete up to, and
    the objects among them the dataplane could not apply (yet)."""

    applied_revision: int = 0
    objects: dict[str, Body] = field(default_factory=dict)
    failing: dict[str, Failure] = field(default_factory=dict)

    def record(self, changed: Sequence[str], failures: Sequence[Failure]) -> None:
        """After applying ``changed``: those applied now stop failing, ``failures`` start."""
        for key in changed:
            self.failing.pop(key, None)
        self.failing.update((failure.key, failure) for failure in failures)


@dataclass
class SessionStats:
    connects: int = 0
    snapshots: int = 0
    resumes: int = 0
    deltas: int = 0
    bytes_received: int = 0
    refusals: int = 0  # ``error`` messages the controller sent


class AgentSession:
    def __init__(
        self,
        controllers: Sequence[str],
        server: str,
        token: str | None,
        dataplane: Dataplane,
        *,
        provider_address: str | None = None,
        tls: ssl.SSLContext | None = None,
        state: AgentState | None = None,
        ping_interval: float = 10.0,
        max_backoff: float = 5.0,
        prober: Prober | None = None,
    ) -> None:
        self.controllers = [url.rstrip("/") for url in controllers]
        self.server = server
        # None: the agent authenticates with the client certificate of ``tls`` alone.
        self.token = token
        self.tls = tls
        self.dataplane = dataplane
        self.provider_address = provider_address
        self.state = state or AgentState()
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff
        self.stats = SessionStats()
        self.prober = prober
        # The DIP states this agent found (a DIP not listed is Up, as the controller assumes
        # until told otherwise), and the changes the controller has not been sent yet.
        self.health: HealthStates = {}
        self._health_unsent: HealthStates = {}
        self._resend = False
        self.last_refusal: tuple[str, str] | None = None  # (code, message) of the last error
        self.connected = asyncio.Event()
        self._next = 0
        self._websocket: ClientConnection | None = None
        self._sending = asyncio.Lock()  # acks come from applies and from resyncs

    def url(self, base: str) -> str:
        scheme = "wss" if base.startswith("https") else "ws"
        host = base.split("://", 1)[-1]
        return f"{scheme}://{host}/southbound/v1/servers/{self.server}/channel"

    async def run(self) -> None:
        """Serve until cancelled, reconnecting as needed."""
        failures = 0
        while True:
            base = self.controllers[self._next % len(self.controllers)]
            try:
                await self._serve(base)
                failures = 0
            except InvalidStatus as exc:
                self._refused(base, exc.response.status_code, failures)
                failures += 1
            except (
                OSError,
                WebSocketException,
                protocol.ProtocolError,
            ) as exc:
                log.info("agent %s: connection to %s lost: %s", self.server, base, exc)
                failures += 1
            finally:
                self.connected.clear()
            self._next += 1
            delay = min(self.max_backoff, 0.05 * 2 ** min(failures, 7))
            await asyncio.sleep(random.uniform(delay / 2, delay))

    def _refused(self, base: str, status: int, failures: int) -> None:
        """The controller answered the channel's upgrade with an HTTP status: 403 means it
        does not take this agent's credential, which no retry will change -- said at WARNING
        on the first refusal and then every ``REFUSAL_WARNING_EVERY`` retries."""
        if status in (401, 403):
            self.stats.refusals += 1
            if failures % REFUSAL_WARNING_EVERY == 0:
                log.warning(
                    "agent %s: the controller at %s refuses this agent's credential (HTTP %d): "
                    "check --token (`sdnc agent-token %s` prints the right one, where the "
                    "controller's database is) and --server; retrying",
                    self.server,
                    base,
                    status,
                    self.server,
                )
            return
        log.info("agent %s: the controller at %s answered HTTP %d", self.server, base, status)

    async def _serve(self, base: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = self.url(base)
        async with connect(
            url,
            additional_headers=headers,
            # wss:// verifies the controller with this context (default: the system's CAs).
            ssl=self.tls if url.startswith("wss:") else None,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_interval,
            max_size=None,
            open_timeout=10,
            compression=None,
        ) as websocket:
            self.stats.connects += 1
            hello = protocol.hello(
                self.server, self.state.applied_revision, provider_address=self.provider_address
            )
            await websocket.send(protocol.encode(hello))
            # A new connection (perhaps to another replica, after a report was lost, or from
            # an agent that restarted and remembers nothing): say every state once more with
            # the first ack; the controller keeps only what differs from what it holds.
            self._resend = True
            self.connected.set()
            self._websocket = websocket
            try:
                async for frame in websocket:
                    self.stats.bytes_received += len(frame)
                    await self._handle(websocket, protocol.decode(frame))
            finally:
                self._websocket = None

    async def _handle(self, websocket: ClientConnection, message: protocol.Message) -> None:
        kind = message["type"]
        if kind == protocol.ERROR:
            # The controller names what it refused, then closes: say it once, plainly (the
            # reconnection that follows is logged as any other).
            code, text = protocol.error_of(message)
            self.stats.refusals += 1
            self.last_refusal = (code, text)
            log.warning(
                "agent %s: the controller refused the session: %s: %s", self.server, code, text
            )
            if code == protocol.BAD_HELLO and self.state.applied_revision:
                # Perhaps a revision the controller's change log does not have (its database
                # was restored from a backup, say): ask for a snapshot next time. It replaces
                # the state without wiping the dataplane, so this costs a resume at worst.
                self.state.applied_revision = 0
            raise protocol.ProtocolError(f"refused by the controller: {code}: {text}", code)
        revision = protocol.revision_of(message)
        if kind == protocol.SNAPSHOT:
            objects = dict(message.get("objects") or {})
            deletes = [key for key in self.state.objects if key not in objects]
            self.state.objects = objects
            failures = await self.dataplane.apply(self.state.objects, objects, deletes)
            self.state.failing = {failure.key: failure for failure in failures}
            self.stats.snapshots += 1
        elif kind == protocol.DELTA:
            upserts: dict[str, Body] = dict(message.get("upserts") or {})
            deletes = list(message.get("deletes") or [])
            for key in deletes:
                self.state.objects.pop(key, None)
            self.state.objects.update(upserts)
            failures = await self.dataplane.apply(self.state.objects, upserts, deletes)
            if self.dataplane.reports_all_failures:
                self.state.failing = {failure.key: failure for failure in failures}
            else:
                self.state.record([*upserts, *deletes], failures)
            self.stats.resumes += 1 if message.get("resume") else 0
            self.stats.deltas += 0 if message.get("resume") else 1
        elif kind != protocol.BOOKMARK:
            return
        self.state.applied_revision = max(self.state.applied_revision, revision)
        if kind != protocol.BOOKMARK:
            self._probe()
        await self._ack(websocket, revision)

    def _probe(self) -> None:
        """Run the probes over the state now; keep the changes to report."""
        if self.prober is None:
            return
        found = self.prober(self.state.objects)
        if self._resend:
            self._resend = False
            self._health_unsent = dict(found)
        for key in [k for k in self.health if k not in found]:
            del self.health[key]  # no longer this host's to probe
            self._health_unsent.pop(key, None)
        for key, state in found.items():
            if self.health.get(key, protocol.UP) != state:
                self._health_unsent[key] = state
            self.health[key] = state

    async def probe_again(self) -> None:
        """A probe's outcome changed between changes of the desired state: report it now, as
        an ack of the revision already applied."""
        self._probe()
        websocket = self._websocket
        if websocket is not None and self._health_unsent:
            with contextlib.suppress(WebSocketException):
                await self._ack(websocket, self.state.applied_revision)

    async def _ack(self, websocket: ClientConnection, revision: int) -> None:
        # An ack means "all up to revision is applied except these": every object still
        # failing, not only those of this apply.
        report = [
            {"key": f.key, "code": f.code, "message": f.message}
            for f in self.state.failing.values()
        ]
        health = [
            {"probe": probe, "dip": dip, "state": state}
            for (probe, dip), state in list(self._health_unsent.items())[
                : protocol.MAX_HEALTH_REPORTS
            ]
        ]
        try:
            async with self._sending:
                await websocket.send(protocol.encode(protocol.ack(revision, report, health)))
        except ConnectionClosed:
            # The controller is closing: what it sent before its close (perhaps an ``error``
            # saying why) is still to be read, so the read loop ends the session, not this.
            return
        for entry in health:  # sent; a change since is sent with the next ack
            key = (entry["probe"], entry["dip"])
            if self._health_unsent.get(key) == entry["state"]:
                del self._health_unsent[key]

    async def report(self, failures: Sequence[Failure]) -> None:
        """The host's failing objects changed outside an apply (a resync found drift it could
        not repair, or repaired an object that was failing): tell the controller at once, as
        an ack of the revision already applied."""
        failing = {failure.key: failure for failure in failures}
        if failing == self.state.failing:
            return
        self.state.failing = failing
        websocket = self._websocket
        if websocket is not None:
            with contextlib.suppress(WebSocketException):
                await self._ack(websocket, self.state.applied_revision)
