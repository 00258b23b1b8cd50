"""The HTTP/1.1 connection as the controller serves it: uvicorn's httptools protocol with the
defences uvicorn lacks.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``, reset by every
byte), answers parse errors with a plain-text 400 and sets no limit on the request target or
the header fields. ``GuardedHttpProtocol`` adds, per connection:

* admission: a connection over the server's total cap (503) or its client address's cap (429)
  is answered and closed at once (``controller/api/limits.py`` keeps the count);
* deadlines: the request line and headers must arrive within ``header_timeout`` of the
  connection (or of the request's first byte on a kept-alive connection), the body within
  ``body_timeout`` of the headers. Both are total deadlines, so a byte a second does not
  extend them; the answer is 408. A deadline is extended only while the server, not the
  client, holds things up: reading paused (a busy application, a pipelined request), a
  previous answer still under way, a client waiting for ``100 Continue``;
* size limits, checked as the bytes arrive: the request target (414), one header field, the
  number of fields, the request line and headers together (431);
* the NC error envelope for every refusal, parse errors included (400 ``MalformedRequest``).
  After a refusal the server reads no more requests: it half-closes and discards what the
  client still sends for a moment (a lingering close), so that the client reads the answer
  rather than a connection reset.

``GuardedWebSocketProtocol`` (the agent channel after the upgrade) holds the connection's
admission slot until it closes.

Both extend uvicorn internals; ``check_uvicorn`` verifies them when a server is built,
pyproject.toml pins the uvicorn versions they were checked against, and
``tests/project/test_uvicorn_internals.py`` fails if they move. Both also hand the application
the connection's TLS state (the verified client certificate), which uvicorn does not: read from
the transport in ``connection_made``, added to every request's scope in ``on_message_begin``
and to the WebSocket handshake's in ``handle_connect`` (``controller/api/peer.py``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

import httptools
import orjson
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.http11 import Request

from controller.api.limits import Admission, HttpLimits, Slot
from controller.api.peer import tls_extension, with_tls
from controller.api.responses import JSON_MEDIA_TYPE, error_body
from controller.errors import (
    ControllerError,
    MalformedRequest,
    RequestHeaderFieldsTooLarge,
    RequestTimeout,
    UriTooLong,
)

log = logging.getLogger(__name__)

# After a refusal, what the client still sends is read and dropped for at most this long (and
# this much), so that closing does not reset the connection before the answer is read.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 1024 * 1024
# Clients refused for a full server or address may come back after this many seconds.
RETRY_AFTER_SECONDS = 1

# What this module extends, checked by check_uvicorn.
EXTENDED: dict[type, tuple[str, ...]] = {
    HttpToolsProtocol: (
        "connection_made",
        "connection_lost",
        "data_received",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_message_complete",
        "handle_websocket_upgrade",
        "_should_upgrade",
        "_unsupported_upgrade_warning",
        "_unset_keepalive_if_required",
    ),
    RequestResponseCycle: ("receive", "send"),
    WebSocketsSansIOProtocol: ("connection_made", "connection_lost", "handle_connect"),
}


def check_uvicorn() -> None:
    """Fail loudly, at start, if this uvicorn lacks a method the protocols extend."""
    missing = [
        f"{owner.__name__}.{name}"
        for owner, names in EXTENDED.items()
        for name in names
        if not callable(getattr(owner, name, None))
    ]
    if missing:
        raise RuntimeError(
            f"uvicorn {uvicorn.__version__} lacks {', '.join(missing)}, which "
            "controller/api/connection.py extends; install a version pyproject.toml allows"
        )


def guarded_protocol(limits: HttpLimits) -> type[GuardedHttpProtocol]:
    """The protocol class for one server: its connections share ``limits`` and one count."""
    check_uvicorn()

    class ServerHttpProtocol(GuardedHttpProtocol):
        pass

    ServerHttpProtocol.limits = limits
    ServerHttpProtocol.admission = Admission(
        limits.max_connections, limits.max_connections_per_address
    )
    return ServerHttpProtocol


def render_refusal(error: ControllerError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole ``connection: close`` response carrying the NC error envelope of ``error``."""
    body = orjson.dumps(error_body(error))
    status = HTTPStatus(error.status)
    headers = [
        *default_headers,
        (b"content-type", JSON_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-ms-request-id", str(uuid.uuid4()).encode()),
        (b"connection", b"close"),
    ]
    if status in (HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE):
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join([*lines, b"", body])


def peer_address(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the refusal is kept on the protocol."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, size limits, connection caps and the NC
    envelope for its refusals; ``guarded_protocol`` binds it to one server's limits."""

    limits: ClassVar[HttpLimits]
    admission: ClassVar[Admission]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._slot: Slot | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # Between the end of a request's headers and the end of its body.
        self._in_body = False
        # Bytes received towards the head being read (the parser keeps a header field to
        # itself until the field is complete, so the callbacks alone cannot bound it).
        self._head_bytes = 0
        self._header_count = 0
        self._header_bytes = 0
        self._refusal: ControllerError | None = None
        self._lingering = False
        self._lingered_bytes = 0
        self._tls: dict[str, Any] | None = None

    # -- the connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        address = peer_address(transport)
        admitted = self.admission.admit(address)
        if isinstance(admitted, ControllerError):
            log.info("refused a connection from %s: %d %s", address, admitted.status, admitted.code)
            transport.write(render_refusal(admitted, self.server_state.default_headers))
            transport.close()
            return
        self._slot = admitted
        self._tls = tls_extension(transport)
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._head_deadline_passed)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is None:  # refused at admission: uvicorn never saw it
            return
        self._disarm()
        self._slot.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._slot is None:
            return
        if self._lingering:
            self._lingered_bytes += len(data)
            if self._lingered_bytes > LINGER_MAX_BYTES:
                self.transport.close()
            return
        if not self._in_body:
            self._head_bytes += len(data)
        # uvicorn's own version of this method, but refusing with the envelope and the status
        # the error calls for (uvicorn answers every parser error with a plain-text 400).
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            reason = f"the request is not valid HTTP/1.1: {str(exc)[:200]}"
            self._refuse(self._refusal or MalformedRequest(reason))
            return
        if not self._in_body and self._head_bytes > self.limits.max_head_bytes:
            self._refuse(self._head_too_large())

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()
        successor = self.transport.get_protocol()
        if self._slot is not None:
            if isinstance(successor, GuardedWebSocketProtocol):
                successor.adopt(self._slot)
            else:
                self._slot.release()

    # -- the parser's callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = with_tls(self.scope.get("extensions"), self._tls)
        self._header_count = self._header_bytes = 0
        if self._deadline is None:
            self._arm(self.limits.header_timeout, self._head_deadline_passed)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._abort(
                UriTooLong(f"the request target is longer than {self.limits.max_url_bytes} bytes")
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._header_count += 1
        self._header_bytes += size
        if size > self.limits.max_header_bytes:
            field = name.decode("latin-1")[:100]
            self._abort(
                RequestHeaderFieldsTooLarge(
                    f"the header field '{field}' is longer than "
                    f"{self.limits.max_header_bytes} bytes",
                    target=field,
                )
            )
        if self._header_count > self.limits.max_headers:
            self._abort(
                RequestHeaderFieldsTooLarge(
                    f"the request has more than {self.limits.max_headers} header fields"
                )
            )
        if len(self.url) + self._header_bytes > self.limits.max_head_bytes:
            self._abort(self._head_too_large())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_bytes = 0
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        super().on_headers_complete()
        if not upgrading:
            self._in_body = True
            self._arm(self.limits.body_timeout, self._body_deadline_passed)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._in_body:
            self._in_body = False
            self._disarm()

    # -- deadlines -----------------------------------------------------------------------------

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_deadline_passed(self) -> None:
        self._deadline = None
        if self._server_holds_up():
            self._arm(self.limits.header_timeout, self._head_deadline_passed)
            return
        seconds = self.limits.header_timeout
        self._refuse(
            RequestTimeout(f"the request line and headers did not arrive within {seconds:g} s")
        )

    def _body_deadline_passed(self) -> None:
        self._deadline = None
        if self._server_holds_up():
            self._arm(self.limits.body_timeout, self._body_deadline_passed)
            return
        seconds = self.limits.body_timeout
        self._refuse(
            RequestTimeout(f"the request body did not arrive within {seconds:g} s of its headers")
        )

    def _server_holds_up(self) -> bool:
        """Whether the client waits on the server rather than the other way round."""
        if self.flow.read_paused:
            return True
        cycle = self._cycle()
        if cycle is None or cycle.response_complete:
            return False
        # Reading a head while the previous request is still being answered, or a body the
        # client sends only once it is asked to continue.
        return not self._in_body or cycle.waiting_for_100_continue

    # -- refusing ------------------------------------------------------------------------------

    def _abort(self, error: ControllerError) -> None:
        self._refusal = error
        raise _Refused(error.message)

    def _head_too_large(self) -> RequestHeaderFieldsTooLarge:
        return RequestHeaderFieldsTooLarge(
            f"the request line and headers are longer than {self.limits.max_head_bytes} bytes"
        )

    def _refuse(self, error: ControllerError) -> None:
        """Answer ``error`` if this connection can still answer, then stop reading requests."""
        self._disarm()
        self._unset_keepalive_if_required()
        if self._lingering or self.transport.is_closing():
            return
        address = peer_address(self.transport)
        log.info("refused a request from %s: %d %s: %s", address, error.status, error.code, error)
        cycle = self._cycle()
        can_answer = True
        if cycle is not None:
            # While reading a body the cycle is that request's; while reading a head it is
            # the previous request's, which must be fully answered before another answer.
            can_answer = not cycle.response_started if self._in_body else cycle.response_complete
            if not cycle.response_complete:
                # The application sees its client leave; whatever it still sends is dropped.
                cycle.disconnected = True
                cycle.message_event.set()
        if not can_answer:
            self.transport.close()
            return
        self.transport.write(render_refusal(error, self.server_state.default_headers))
        self._linger()

    def _linger(self) -> None:
        self._lingering = True
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self._arm(LINGER_SECONDS, self.transport.close)

    def _cycle(self) -> RequestResponseCycle | None:
        # uvicorn declares the attribute non-optional but leaves it None until the first head.
        cycle: RequestResponseCycle | None = getattr(self, "cycle", None)
        return cycle


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """The agent channel's WebSocket; it holds the admission slot of the HTTP connection it
    took over until it closes."""

    _slot: Slot | None = None
    _tls: dict[str, Any] | None = None

    def adopt(self, slot: Slot) -> None:
        self._slot = slot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tls = tls_extension(transport)
        super().connection_made(transport)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The application's task is created but has not run yet: it sees the extension.
        scope = getattr(self, "scope", None)
        if scope is not None and self._tls is not None:
            scope["extensions"] = with_tls(scope.get("extensions"), self._tls)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self._slot is not None:
                self._slot.release()
