"""Serving over TLS in tests: the controller's own server class (``controller/server.py``) on a
free port of 127.0.0.1, in this event loop, and raw handshakes that tell whether the server
answered a request over them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.types import ASGIApp

from controller.server import Server, build_config
from controller.settings import Settings
from controller.tls import TlsReloader
from tests.support.postgres import free_port

START_TIMEOUT = 30.0


class _QuietServer(Server):
    """Without uvicorn's signal handlers: the test runner keeps Ctrl-C."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@contextlib.asynccontextmanager
async def tls_server(
    app: ASGIApp, settings: Settings, reloader: TlsReloader | None
) -> AsyncIterator[int]:
    """Serve ``app`` as ``sdnc serve`` does (with ``reloader``'s context when given); yields
    the port."""
    port = free_port()
    tls = reloader.context if reloader is not None else None
    config = build_config(
        app, settings, host="127.0.0.1", port=port, log_level="warning", own_logging=False, tls=tls
    )
    server = _QuietServer(config, reloader)
    task = asyncio.create_task(server.serve(), name=f"tls-server-{port}")
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped while starting")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        async with asyncio.timeout(START_TIMEOUT):
            await task


async def exchange(port: int, context: ssl.SSLContext, path: str = "/") -> bytes:
    """Handshake with ``context``, send one GET of ``path`` and return what came back ("" when
    the server closed the connection or failed the handshake without answering)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"),
            10,
        )
    except (ssl.SSLError, ConnectionError):
        return b""
    try:
        request = f"GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
        writer.write(request.encode())
        return await asyncio.wait_for(reader.read(), 10)
    except (ssl.SSLError, ConnectionError):
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def server_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The DER of the certificate the server presents to a new connection."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der: bytes = ssl_object.getpeercert(binary_form=True)
        return der
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


def presented_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """``server_certificate`` for tests outside an event loop."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def legacy_client(ca: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """A client that speaks at most TLS 1.1 (and lowers its own security level so that its
    side offers it at all)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError, ValueError):
        context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():  # the versions are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def legacy_server(certificate: Path, key: Path) -> ssl.SSLContext:
    """A server context that accepts TLS 1.1: the control showing a legacy client can speak."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with contextlib.suppress(ssl.SSLError, ValueError):
        context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.load_cert_chain(certificate, key)
    return context
