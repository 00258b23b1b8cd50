"""TLS for ``sdnc serve``: one server context (TLS 1.2 at least) whose certificate, key and
client CA are read again on SIGHUP.

The listener keeps one ``SSLContext`` for its whole life. Reloading loads the new files into
that same context, so the listening socket is never closed, connections already open keep their
session, and every handshake after the reload presents the new certificate. The files are first
loaded into a scratch context: a pair that does not match, or a file caught half-written, is
refused with a log line and the certificate in force stays in force.

A client CA, when given, makes the server ask for a client certificate without requiring one
(token and OIDC clients present none). A certificate that is presented must chain to that CA
and be valid now, or the handshake fails: what reaches the application was verified. Reloading
adds a new client CA to those trusted; to stop trusting one, restart the server.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None


class TlsError(Exception):
    """The certificate, key or client CA cannot be used (the message says which and why)."""


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    _load(context, files)
    if files.client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _load(context: ssl.SSLContext, files: TlsFiles) -> None:
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(
            f"cannot use the certificate {files.cert} with the key {files.key}: {exc}"
        ) from exc
    if files.client_ca is None:
        return
    try:
        context.load_verify_locations(cafile=files.client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot use the client CA {files.client_ca}: {exc}") from exc


class TlsReloader:
    """The server's context, and ``reload`` to put the files now on disk into it."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.context = server_context(files)
        self.reloads = 0

    def reload(self) -> bool:
        """Load the files again; False (the old certificate kept) if they cannot be used."""
        try:
            server_context(self.files)  # all or nothing: check them apart first
            _load(self.context, self.files)
        except TlsError as exc:
            log.error("TLS reload refused, keeping the certificate in force: %s", exc)
            return False
        self.reloads += 1
        log.warning("TLS certificate reloaded from %s", self.files.cert)
        return True
