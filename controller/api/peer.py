"""The TLS state of a connection, in the scope as the ASGI TLS extension describes it.

uvicorn leaves ``scope["extensions"]["tls"]`` out. The server's protocols
(``controller/api/connection.py``) read the TLS state from the transport when the connection is
made and add it to the scope of every request on it and of the WebSocket handshake, so that the
application sees the client certificate the handshake verified. A plain-text connection gets no
``tls`` extension at all.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

# The TLS versions the server accepts, as the extension numbers them (the protocol's own).
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ``tls`` extension of a connection over ``transport``, None when not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    # Only a certificate that chained to the client CA gets this far: with CERT_OPTIONAL a
    # presented certificate that fails verification fails the handshake.
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
    }


def with_tls(extensions: dict[str, Any] | None, tls: dict[str, Any] | None) -> dict[str, Any]:
    """``extensions`` with the ``tls`` one added (when the connection has one)."""
    merged = dict(extensions or {})
    if tls is not None:
        merged["tls"] = tls
    return merged
