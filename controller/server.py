"""The HTTP server, built in one place from the settings: ``sdnc serve`` and the tests' in-process
controller run the same uvicorn configuration, with the protocol classes of
``controller/api/connection.py`` and the agent channel's WebSocket options.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
import ssl

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from controller.api.connection import GuardedWebSocketProtocol, guarded_protocol
from controller.api.limits import HttpLimits
from controller.core.hosts import is_loopback
from controller.settings import Settings
from controller.southbound.runtime import WEBSOCKET_OPTIONS
from controller.tls import TlsFiles, TlsReloader

log = logging.getLogger(__name__)

# File descriptors kept out of the connection cap: the database pool, log files, the event
# loop's own, and the connections accepted in one burst before they can be refused.
FD_RESERVE = 1024
# When the hard limit is "unlimited", the soft limit is raised this far (some systems refuse
# an unlimited number of open files).
UNLIMITED_OPEN_FILES = 1 << 20


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the soft limit now
    in force. A process serving thousands of agents and clients needs more than the usual
    default of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = UNLIMITED_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if wanted <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, wanted, exc)
        return soft
    return wanted


def connection_cap(configured: int, open_files: int) -> int:
    """The total connection cap: as configured, but below the open-files limit."""
    budget = open_files - min(FD_RESERVE, open_files // 2)
    if configured > budget:
        log.warning(
            "SDNC_HTTP_MAX_CONNECTIONS is %d, but %d files may be open: serving at most %d "
            "connections",
            configured,
            open_files,
            budget,
        )
        return budget
    return configured


def http_limits(settings: Settings, open_files: int) -> HttpLimits:
    return HttpLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        max_url_bytes=settings.http_max_url_bytes,
        max_header_bytes=settings.http_max_header_bytes,
        max_headers=settings.http_max_headers,
        max_head_bytes=settings.http_max_head_bytes,
        max_connections=connection_cap(settings.http_max_connections, open_files),
        max_connections_per_address=settings.http_max_connections_per_address,
    )


def build_config(
    app: ASGIApp,
    settings: Settings,
    *,
    host: str,
    port: int,
    log_level: str | None = None,
    own_logging: bool = True,
    tls: ssl.SSLContext | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration serving ``app`` on ``host:port`` (over TLS with the context
    ``tls``); without ``own_logging`` uvicorn's loggers propagate to the root logger instead of
    having handlers of their own."""
    open_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)

    def tls_context(_: uvicorn.Config, __: object) -> ssl.SSLContext:
        assert tls is not None
        return tls

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(http_limits(settings, open_files)),
        ws=GuardedWebSocketProtocol,
        log_level=(log_level or settings.log_level).lower(),
        log_config=LOGGING_CONFIG if own_logging else None,
        proxy_headers=False,
        server_header=False,
        # Our own context rather than uvicorn's ssl_* options: it is the one a reload changes.
        ssl_context_factory=tls_context if tls is not None else None,
        **WEBSOCKET_OPTIONS,
    )


def exposure_problem(settings: Settings, host: str) -> str | None:
    """Why serving on ``host`` with these settings would expose the network to anyone, or
    None. Without authentication every client is an admin: acceptable where only this
    machine's users can connect, and only on purpose anywhere else."""
    if "none" not in settings.auth_modes() or is_loopback(host) or settings.insecure:
        return None
    return (
        f"refusing to listen on {host} without authentication: anyone who can reach it could "
        "rewrite every tenant's network. Choose --auth token, x509 or oidc (see docs/security.md), "
        "listen on 127.0.0.1, or give --insecure to accept the risk."
    )


def tls_reloader(settings: Settings) -> TlsReloader | None:
    """The TLS context of the configured certificate and key, None when TLS is not configured
    (``Settings`` checks that both or neither are)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return TlsReloader(TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca))


class Server(uvicorn.Server):
    """uvicorn's server, and SIGHUP reloading the TLS certificate (the listener stays open)."""

    def __init__(self, config: uvicorn.Config, reloader: TlsReloader | None = None) -> None:
        super().__init__(config)
        self.reloader = reloader

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        reloader = self.reloader
        if reloader is None:
            await super().serve(sockets)
            return
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
        try:
            await super().serve(sockets)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
