"""The WebSocket endpoint agents connect to: ``/southbound/v1/servers/{serverId}/channel``.

The agent authenticates with its server's token (``Authorization: Bearer ...``); a missing or
wrong token, or a token of another server, is refused before the WebSocket is accepted (HTTP
403). Then: ``hello`` within ``hello_timeout``, the snapshot or resume, and from there deltas
and bookmarks down, acks up. Dead peers are found by WebSocket pings (the server's
``ws_ping_interval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from controller import protocol
from controller.errors import ServiceUnavailable
from controller.southbound import tokens
from controller.southbound.hub import Hub, Session

log = logging.getLogger(__name__)
# (server instanceId, server resourceRef) of a server resourceId, or None.
ServerLookup = Callable[[str], Awaitable[tuple[uuid.UUID, str] | None]]
SecretSource = Callable[[], Awaitable[str]]
AddressRegistry = Callable[[uuid.UUID, str, str], Awaitable[None]]

GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class Channel:
    def __init__(
        self,
        hub: Hub,
        *,
        find_server: ServerLookup,
        secret: SecretSource,
        register_address: AddressRegistry,
        known_addresses: Callable[[uuid.UUID], str | None],
        hello_timeout: float = 10.0,
    ) -> None:
        self.hub = hub
        self.find_server = find_server
        self.secret = secret
        self.register_address = register_address
        self.known_addresses = known_addresses
        self.hello_timeout = hello_timeout

    async def serve(self, websocket: WebSocket, server_resource_id: str) -> None:
        try:
            server = await self._authenticate(websocket, server_resource_id)
        except ServiceUnavailable as exc:
            await _unavailable(websocket, exc)
            return
        if server is None:
            await websocket.close(code=POLICY_VIOLATION)
            return
        await websocket.accept()
        server_id, server_ref = server
        try:
            hello = protocol.decode(await self._receive(websocket, self.hello_timeout))
            applied = _check_hello(hello)
            address = hello.get("providerAddress")
            if isinstance(address, str) and address != self.known_addresses(server_id):
                await self.register_address(server_id, server_ref, address)
        except (protocol.ProtocolError, TimeoutError) as exc:
            await self._refuse(websocket, "BadHello", str(exc) or "no hello in time")
            return
        except ServiceUnavailable:
            # The provider address could not be recorded: the agent comes back later.
            await websocket.close(code=TRY_AGAIN_LATER)
            return
        except WebSocketDisconnect:
            return
        await self._run(websocket, server_id, applied, address)

    async def _run(
        self, websocket: WebSocket, server: uuid.UUID, applied: int, address: Any
    ) -> None:
        session = Session(server, websocket.send_bytes)
        session.on_overflow = lambda: _close_soon(websocket, TRY_AGAIN_LATER)
        kind = self.hub.attach(session, applied)
        self.hub.status.connected(server, applied, address if isinstance(address, str) else None)
        log.info("agent of %s connected (applied %d, sent a %s)", server, applied, kind)
        pump = asyncio.create_task(self._send(websocket, session), name=f"send-{server}")
        try:
            while not session.overflowed:
                message = protocol.decode(await self._receive(websocket, None))
                if message["type"] == protocol.ACK:
                    failures = message.get("failures") or []
                    self.hub.acked(session, protocol.revision_of(message), list(failures))
            await websocket.close(code=TRY_AGAIN_LATER)
        except (WebSocketDisconnect, protocol.ProtocolError, RuntimeError) as exc:
            log.info("agent of %s disconnected: %s", server, exc or type(exc).__name__)
        finally:
            self.hub.detach(session)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    @staticmethod
    async def _send(websocket: WebSocket, session: Session) -> None:
        await session.pump()
        # The hub stopped feeding this session: a newer connection of the same server took
        # its place, or the replica is shutting down. Close it, so the agent does not wait
        # on a connection nothing comes through any more.
        reason = "replaced by a newer connection" if session.superseded else "shutting down"
        await websocket.close(code=GOING_AWAY, reason=reason)

    async def _authenticate(
        self, websocket: WebSocket, server_resource_id: str
    ) -> tuple[uuid.UUID, str] | None:
        header = websocket.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        server = await self.find_server(server_resource_id)
        if server is None or not tokens.verify(await self.secret(), str(server[0]), token.strip()):
            return None
        return server

    @staticmethod
    async def _receive(websocket: WebSocket, within: float | None) -> str | bytes:
        async with asyncio.timeout(within):
            message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        frame = message.get("text") if message.get("text") is not None else message.get("bytes")
        if frame is None:
            raise protocol.ProtocolError("empty frame")
        return frame  # type: ignore[no-any-return]

    @staticmethod
    async def _refuse(websocket: WebSocket, code: str, message: str) -> None:
        with contextlib.suppress(Exception):
            await websocket.send_bytes(
                protocol.encode({"type": protocol.ERROR, "code": code, "message": message})
            )
            await websocket.close(code=POLICY_VIOLATION)


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
        await websocket.close(code=TRY_AGAIN_LATER)


def _close_soon(websocket: WebSocket, code: int) -> None:
    async def close() -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=code)

    _closing.add(task := asyncio.get_running_loop().create_task(close()))
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


def _check_hello(hello: protocol.Message) -> int:
    if hello["type"] != protocol.HELLO:
        raise protocol.ProtocolError("the first message must be 'hello'")
    if hello.get("protocol") != protocol.PROTOCOL_VERSION:
        raise protocol.ProtocolError(
            f"protocol {hello.get('protocol')} is not served; this controller speaks "
            f"{protocol.PROTOCOL_VERSION}"
        )
    applied = hello.get("appliedRevision", 0)
    if not isinstance(applied, int) or isinstance(applied, bool) or applied < 0:
        raise protocol.ProtocolError("'appliedRevision' must be a non-negative integer")
    address = hello.get("providerAddress")
    if address is not None:
        try:
            ipaddress.ip_address(address)
        except (TypeError, ValueError):
            raise protocol.ProtocolError(f"'{address}' is not a provider IP address") from None
    return applied
