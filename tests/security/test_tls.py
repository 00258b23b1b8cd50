"""TLS for ``sdnc serve``: real handshakes against the controller's own server class, with
certificates made for each test. What reaches the application is the client certificate the
handshake verified (uvicorn passes none on by itself), over HTTP and the agent WebSocket alike;
what fails verification, or speaks below TLS 1.2, gets no answer at all; a certificate rotated
on disk is served after SIGHUP, by the same listener."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from controller.service.identities import client_certificate
from controller.settings import Settings
from controller.tls import TlsFiles, TlsReloader
from tests.support.pki import CertificateAuthority
from tests.support.secure import (
    exchange,
    legacy_client,
    legacy_server,
    presented_certificate,
    server_certificate,
    tls_server,
)
from tests.support.server import ControllerServer


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Answers with what the scope says of the connection's TLS state."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    der = client_certificate(scope)
    tls = (scope.get("extensions") or {}).get("tls")
    seen = {
        "scheme": scope["scheme"],
        "tls": tls is not None,
        "version": tls["tls_version"] if tls else None,
        "thumbprint": hashlib.sha1(der).hexdigest().upper() if der else None,
    }
    body = json.dumps(seen).encode()
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body.decode()})
        await send({"type": "websocket.close", "code": 1000})
        return
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture
def reloader(ca: CertificateAuthority) -> TlsReloader:
    server = ca.server()
    return TlsReloader(TlsFiles(server.cert_path, server.key_path, ca.cert_path))


def _seen(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:200]
    seen: dict[str, Any] = json.loads(body)
    return seen


async def test_the_verified_client_certificate_reaches_requests_and_the_websocket(
    ca: CertificateAuthority, reloader: TlsReloader
) -> None:
    client = ca.client("portal", "portal.contoso.test")
    async with tls_server(_echo, Settings(), reloader) as port:
        seen = _seen(await exchange(port, client.client_context(ca)))
        assert seen == {
            "scheme": "https",
            "tls": True,
            "version": seen["version"],
            "thumbprint": client.thumbprint,
        }
        assert seen["version"] in (0x0303, 0x0304)
        # Several requests on one kept-alive connection: each scope carries it.
        async with httpx.AsyncClient(verify=client.client_context(ca)) as http:
            for _ in range(3):
                answer = await http.get(f"https://localhost:{port}/x")
                assert answer.json()["thumbprint"] == client.thumbprint
        async with connect(f"wss://localhost:{port}/ws", ssl=client.client_context(ca)) as ws:
            seen = json.loads(await ws.recv())
        assert seen["scheme"] == "wss"
        assert seen["thumbprint"] == client.thumbprint


async def test_a_client_without_certificate_is_served_and_plain_http_has_no_tls(
    ca: CertificateAuthority, reloader: TlsReloader
) -> None:
    async with tls_server(_echo, Settings(), reloader) as port:
        seen = _seen(await exchange(port, ca.client_trust()))
        assert seen["tls"] is True
        assert seen["thumbprint"] is None
    async with tls_server(_echo, Settings(), None) as port:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/x")
        seen = answer.json()
        assert seen == {"scheme": "http", "tls": False, "version": None, "thumbprint": None}


@pytest.mark.parametrize("case", ["another CA", "expired", "TLS 1.1", "untrusted server"])
async def test_handshakes_that_fail(
    case: str, ca: CertificateAuthority, reloader: TlsReloader, tmp_path: Path
) -> None:
    other = CertificateAuthority(tmp_path, "other CA")
    context: ssl.SSLContext
    if case == "another CA":
        context = other.client("stranger", "stranger").client_context(ca)
    elif case == "expired":
        context = ca.client("late", "late", expired=True).client_context(ca)
    elif case == "TLS 1.1":
        context = legacy_client()
        # The control: this client does speak TLS 1.1 to a server that accepts it.
        assert await _legacy_handshake(context, ca) == "TLSv1.1"
    else:  # the client does not trust this server's CA
        context = other.client_trust()
    async with tls_server(_echo, Settings(), reloader) as port:
        assert await exchange(port, context) == b""
        # The refusal harmed nobody else.
        assert _seen(await exchange(port, ca.client_trust()))["tls"] is True


async def _legacy_handshake(context: ssl.SSLContext, ca: CertificateAuthority) -> str | None:
    issued = ca.server("legacy")

    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(
        greet, "127.0.0.1", 0, ssl=legacy_server(issued.cert_path, issued.key_path)
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        version: str | None = writer.get_extra_info("ssl_object").version()
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
    return version


def test_the_server_context_refuses_below_tls_1_2(reloader: TlsReloader) -> None:
    assert reloader.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert reloader.context.verify_mode == ssl.CERT_OPTIONAL


async def test_a_bad_pair_on_disk_keeps_the_certificate_in_force(
    ca: CertificateAuthority, reloader: TlsReloader
) -> None:
    before = reloader.files.cert.read_bytes()
    stray = ca.server("stray")
    async with tls_server(_echo, Settings(), reloader) as port:
        served = await server_certificate(port, ca.client_trust())
        # A new certificate whose key is not the one on disk: refused as a whole.
        shutil.copyfile(stray.cert_path, reloader.files.cert)
        assert reloader.reload() is False
        assert await server_certificate(port, ca.client_trust()) == served
        reloader.files.cert.write_bytes(before)
        assert reloader.reload() is True


@pytest.mark.slow
def test_sighup_serves_a_rotated_certificate_on_the_same_listener(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    first = ca.server("first")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copyfile(first.cert_path, live_cert)
    shutil.copyfile(first.key_path, live_key)
    args = ["--tls-cert", str(live_cert), "--tls-key", str(live_key)]
    server = ControllerServer(
        f"sqlite:///{tmp_path / 'c.db'}", extra_args=args, trust=ca.client_trust()
    )
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(server.remove_log)
        cleanup.callback(server.stop)
        server.start()
        assert presented_certificate(server.port, ca.client_trust()) == first.der
        with httpx.Client(verify=ca.client_trust()) as kept:
            assert kept.get(f"{server.base_url}/networking/discovery").status_code == 200
            second = ca.server("second")
            shutil.copyfile(second.key_path, live_key)
            shutil.copyfile(second.cert_path, live_cert)
            os.kill(server.pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while presented_certificate(server.port, ca.client_trust()) != second.der:
                assert time.monotonic() < deadline, f"not rotated:\n{server.log()}"
                time.sleep(0.05)
            # The connection opened before the rotation is still served.
            assert kept.get(f"{server.base_url}/networking/discovery").status_code == 200
        assert "TLS certificate reloaded" in server.log()


def test_serve_refuses_half_a_tls_configuration(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    server = ControllerServer(
        f"sqlite:///{tmp_path / 'c.db'}",
        extra_args=["--tls-cert", str(ca.server().cert_path)],
        trust=ca.client_trust(),
    )
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(server.remove_log)
        cleanup.callback(server.stop)
        with pytest.raises(RuntimeError, match="SDNC_TLS_CERT and SDNC_TLS_KEY go together"):
            server.start()
