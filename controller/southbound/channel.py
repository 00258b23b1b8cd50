"""The WebSocket endpoint agents connect to: ``/southbound/v1/servers/{serverId}/channel``.

The agent authenticates with its server's token (``Authorization: Bearer ...``); a missing,
malformed or wrong token, a token of another server, or a server id that cannot name a server
is refused before the WebSocket is accepted (HTTP 403). Then: ``hello`` within
``hello_timeout``, the snapshot or resume, and from there deltas and bookmarks down, acks up.
Every agent message is checked by ``controller.protocol``; a violation is answered with an
``error`` message and a close (1008), and logged as one warning. Dead peers are found by
WebSocket pings (the server's ``ws_ping_interval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from controller import protocol
from controller.core.values import check_resource_id
from controller.errors import ServiceUnavailable
from controller.southbound import tokens
from controller.southbound.hub import Hub, Session

log = logging.getLogger(__name__)
# (server instanceId, server resourceRef) of a server resourceId, or None.
ServerLookup = Callable[[str], Awaitable[tuple[uuid.UUID, str] | None]]
SecretSource = Callable[[], Awaitable[str]]
AddressRegistry = Callable[[uuid.UUID, str, str], Awaitable[None]]
# Records DIP health changes a server's agent reported (server id, server resourceRef).
HealthRegistry = Callable[[uuid.UUID, str, Sequence[protocol.Health]], Awaitable[None]]
# Whether this replica has (or, within a bounded wait, gets to) a revision an agent names.
RevisionCheck = Callable[[int], Awaitable[bool]]

# A token is 43 characters (base64 of an HMAC-SHA256); anything much longer is not one.
MAX_TOKEN_LENGTH = 256
# A refused agent's retries are logged once per server in this many seconds; the ids logged
# are cut to MAX_LOGGED_ID characters, and at most MAX_REFUSALS_REMEMBERED are remembered
# (a scan of made-up ids cannot grow the memory or the log without bound).
REFUSAL_LOG_INTERVAL = 60.0
MAX_LOGGED_ID = 128
MAX_REFUSALS_REMEMBERED = 4096


class Channel:
    def __init__(
        self,
        hub: Hub,
        *,
        find_server: ServerLookup,
        secret: SecretSource,
        register_address: AddressRegistry,
        known_addresses: Callable[[uuid.UUID], str | None],
        has_revision: RevisionCheck,
        report_health: HealthRegistry | None = None,
        hello_timeout: float = 10.0,
    ) -> None:
        self.hub = hub
        self.find_server = find_server
        self.secret = secret
        self.register_address = register_address
        self.known_addresses = known_addresses
        self.has_revision = has_revision
        self.report_health = report_health
        self.hello_timeout = hello_timeout
        # When a refusal of each server's agent was last logged (monotonic seconds).
        self._refusals_logged: dict[str, float] = {}

    async def serve(self, websocket: WebSocket, server_resource_id: str) -> None:
        try:
            server = await self._authenticate(websocket, server_resource_id)
        except ServiceUnavailable as exc:
            await _unavailable(websocket, exc)
            return
        if isinstance(server, Refusal):
            self._log_refusal(server_resource_id, server)
            await websocket.close(code=protocol.POLICY_VIOLATION)
            return
        await websocket.accept()
        server_id, server_ref = server
        try:
            hello = await self._hello(websocket, server_id, server_ref)
        except protocol.ProtocolError as exc:
            await _refuse(websocket, server_id, exc)
            return
        except ServiceUnavailable:
            # The provider address could not be recorded: the agent comes back later.
            await websocket.close(code=protocol.TRY_AGAIN_LATER)
            return
        except WebSocketDisconnect:
            return
        await self._run(websocket, server_id, server_ref, hello)

    async def _hello(
        self, websocket: WebSocket, server_id: uuid.UUID, server_ref: str
    ) -> protocol.Hello:
        try:
            frame = await _receive(websocket, self.hello_timeout)
        except TimeoutError:
            raise protocol.ProtocolError(
                f"no hello within {self.hello_timeout:g} s", protocol.BAD_HELLO
            ) from None
        hello = protocol.read_hello(frame)
        # An agent may come from a replica ahead of this one; a revision the change log does
        # not have is made up, and resuming from it would skip what the host never had.
        if not await self.has_revision(hello.applied_revision):
            raise protocol.ProtocolError(
                f"appliedRevision {hello.applied_revision} is not in the change log",
                protocol.BAD_HELLO,
            )
        address = hello.provider_address
        if address is not None and address != self.known_addresses(server_id):
            await self.register_address(server_id, server_ref, address)
        return hello

    async def _run(
        self, websocket: WebSocket, server: uuid.UUID, server_ref: str, hello: protocol.Hello
    ) -> None:
        session = Session(server, websocket.send_bytes)
        session.on_overflow = lambda: _close_soon(websocket, protocol.TRY_AGAIN_LATER)
        applied = hello.applied_revision
        kind = self.hub.attach(session, applied)
        self.hub.status.connected(server, applied, hello.provider_address)
        log.info("agent of %s connected (applied %d, sent a %s)", server, applied, kind)
        pump = asyncio.create_task(self._send(websocket, session), name=f"send-{server}")
        violation: protocol.ProtocolError | None = None
        try:
            await self._receive_acks(websocket, session, server_ref)
            await websocket.close(code=protocol.TRY_AGAIN_LATER)  # it overflowed
        except protocol.ProtocolError as exc:
            violation = exc
        except ServiceUnavailable as exc:
            # Health it reported could not be recorded: it reconnects later and reports
            # again what it holds.
            log.warning("agent of %s: its report could not be recorded (%s)", server, exc)
            with contextlib.suppress(Exception):
                await websocket.close(code=protocol.TRY_AGAIN_LATER)
        except (WebSocketDisconnect, RuntimeError) as exc:
            log.info("agent of %s disconnected: %s", server, exc or type(exc).__name__)
        finally:
            self.hub.detach(session)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        if violation is not None:
            await _refuse(websocket, server, violation)

    async def _receive_acks(self, websocket: WebSocket, session: Session, server_ref: str) -> None:
        while not session.overflowed:
            ack = protocol.read_ack(await _receive(websocket, None))
            # Everything the agent holds came from this session (after its hello): a higher
            # revision is one it cannot have applied.
            if ack.revision > max(session.sent_revision, session.applied_revision):
                raise protocol.ProtocolError(
                    f"ack of revision {ack.revision}, but this connection was sent only up "
                    f"to {session.sent_revision}"
                )
            self.hub.acked(session, ack.revision, ack.reported())
            if ack.health and self.report_health is not None:
                await self.report_health(session.server, server_ref, ack.health)

    @staticmethod
    async def _send(websocket: WebSocket, session: Session) -> None:
        await session.pump()
        # The hub stopped feeding this session: a newer connection of the same server took
        # its place, the replica is shutting down, or what it reports cannot be recorded.
        # Close it, so the agent does not wait on a connection nothing comes through any more.
        farewell = session.farewell
        if farewell is None:
            return
        if farewell.error is not None:
            await websocket.send_bytes(
                protocol.encode(protocol.error(farewell.error, farewell.reason))
            )
        await websocket.close(code=farewell.code, reason=farewell.reason)

    async def _authenticate(
        self, websocket: WebSocket, server_resource_id: str
    ) -> tuple[uuid.UUID, str] | Refusal:
        """The server the agent's credential opens, or why it opens none (for the log only:
        the agent is told no more than 403, whatever the reason)."""
        header = websocket.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Refusal("it sent no bearer token")
        if not _plausible_token(token):
            return Refusal("its token is malformed")
        try:
            check_resource_id(server_resource_id)
        except ValueError:
            return Refusal("no server can have this id")
        server = await self.find_server(server_resource_id)
        if server is None:
            return Refusal("there is no such server")
        if not tokens.verify(await self.secret(), str(server[0]), token):
            return Refusal("its token is not this server's (a wrong or another server's token)")
        return server

    def _log_refusal(self, server_resource_id: str, refusal: Refusal) -> None:
        """One warning per server and ``REFUSAL_LOG_INTERVAL``: a refused agent retries every
        few seconds, forever, and each retry would say the same."""
        now = time.monotonic()
        key = server_resource_id[:MAX_LOGGED_ID]
        last = self._refusals_logged.get(key)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            return
        if len(self._refusals_logged) >= MAX_REFUSALS_REMEMBERED:
            self._refusals_logged.clear()
        self._refusals_logged[key] = now
        log.warning(
            "refused the agent channel of server %r (HTTP 403): %s; give the agent the token "
            "`sdnc agent-token SERVER` prints",
            key,
            refusal.reason,
        )


@dataclass(frozen=True)
class Refusal:
    """Why an agent's credential opens no channel."""

    reason: str


def _plausible_token(token: str) -> bool:
    return 0 < len(token) <= MAX_TOKEN_LENGTH and token.isascii() and token.isprintable()


async def _receive(websocket: WebSocket, within: float | None) -> str | bytes:
    async with asyncio.timeout(within):
        message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    frame = message.get("text") if message.get("text") is not None else message.get("bytes")
    if frame is None:
        raise protocol.ProtocolError("empty frame")
    return frame  # type: ignore[no-any-return]


async def _refuse(websocket: WebSocket, server: uuid.UUID, error: protocol.ProtocolError) -> None:
    """Tell the agent what it did wrong, then close (1008)."""
    log.warning("agent of %s broke the protocol (%s): %s", server, error.code, error)
    with contextlib.suppress(Exception):
        await websocket.send_bytes(protocol.encode(protocol.error(error.code, str(error))))
        await websocket.close(code=protocol.POLICY_VIOLATION)


async def _unavailable(websocket: WebSocket, error: ServiceUnavailable) -> None:
    """Refuse the connection with 503 and Retry-After (an HTTP answer to the handshake, where
    the server can give one), so the agent tries again later."""
    body = {"error": {"code": error.code, "message": error.message}}
    response = Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type="application/json",
        headers={"Retry-After": str(error.retry_after)},
    )
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        await websocket.close(code=protocol.TRY_AGAIN_LATER)


def _close_soon(websocket: WebSocket, code: int) -> None:
    async def close() -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=code)

    _closing.add(task := asyncio.get_running_loop().create_task(close()))
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
