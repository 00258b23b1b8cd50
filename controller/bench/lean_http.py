"""The benchmark's load generator: HTTP/1.1 keep-alive connections on asyncio streams, with
httptools (the parser uvicorn uses) reading the answers.

Why not httpx for the timed phases: on this project's reference machine (2 cores shared by the
client, the controller and PostgreSQL) httpx spent 3.3 ms of client CPU per request, more than
the controller spent answering most of them, so the client's share of the cores set the
measured throughput (280 discovery GETs/s with the controller two-thirds idle). This client
spends a small fraction of that (docs/performance.md has the figures). It sends what the
benchmark needs and nothing more: a request line, Host, Content-Type and Content-Length; it
reads the status and drains the body. A connection the server closes is opened again for the
next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

READ_CHUNK = 256 * 1024


@dataclass
class Answer:
    status: int = 0
    complete: bool = False
    keep_alive: bool = True
    body_bytes: int = 0
    headers_done: bool = False
    # time.perf_counter() when the status line and headers were in.
    headers_at: float = 0.0
    # The parser calls these back (httptools' protocol: methods named on_*).
    parser: httptools.HttpResponseParser | None = field(default=None, repr=False)

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        self.headers_at = time.perf_counter()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        self.complete = True


class LeanConnection:
    """One keep-alive connection to ``base_url``; one request at a time."""

    def __init__(self, base_url: str, *, timeout: float = 120.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._host_header = parts.netloc.encode("idna")
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> int:
        """Send one request and read its whole answer; the status code."""
        return (await self.exchange(method, path, body)).status

    async def exchange(self, method: str, path: str, body: bytes | None = None) -> Answer:
        """Send one request and read its whole answer (the body counted, not kept)."""
        async with asyncio.timeout(self._timeout):
            if self._writer is None:
                await self._open()
            try:
                return await self._exchange(method, path, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection: one fresh attempt.
                await self.close()
                await self._open()
                return await self._exchange(method, path, body)

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, limit=READ_CHUNK
        )

    async def _exchange(self, method: str, path: str, body: bytes | None) -> Answer:
        assert self._reader is not None
        assert self._writer is not None
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), b"Host: ", self._host_header, b"\r\n"]
        if body is not None:
            head.append(b"Content-Type: application/json\r\n")
            head.append(f"Content-Length: {len(body)}\r\n".encode())
        elif method in ("PUT", "POST", "PATCH"):
            head.append(b"Content-Length: 0\r\n")
        head.append(b"\r\n")
        if body is not None:
            head.append(body)
        self._writer.write(b"".join(head))
        answer = Answer()
        answer.parser = httptools.HttpResponseParser(answer)
        while not answer.complete:
            data = await self._reader.read(READ_CHUNK)
            if not data:
                raise ConnectionResetError("the server closed the connection")
            answer.parser.feed_data(data)
        if not answer.keep_alive:
            await self.close()
        return answer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            # Already gone: nothing to close politely.
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
