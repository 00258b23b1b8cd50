"""Raw HTTP/1.1 over TCP, for tests about what the server does with bytes no client library
sends: oversized or malformed heads, requests trickled a byte at a time, silent connections.

Every wait is bounded. ``local_address`` picks the client's source address: any 127.x.y.z is
loopback on Linux, so tests can play several client addresses against one controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

# Where the head of a response ends.
HEAD_END = b"\r\n\r\n"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse_response(data: bytes) -> RawResponse | None:
    """The first response in ``data``, or None when its head is not all there."""
    responses = parse_responses(data)
    return responses[0] if responses else None


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every complete response in ``data`` (with a Content-Length), in order."""
    responses = []
    while True:
        head, found, rest = data.partition(HEAD_END)
        if not found:
            return responses
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", len(rest)))
        responses.append(RawResponse(int(status_line.split(" ")[1]), headers, rest[:length]))
        data = rest[length:]


def assert_envelope(response: RawResponse | None, status: int, code: str) -> dict[str, Any]:
    """``response`` is the NC error envelope with ``status`` and ``code``, as the controller
    answers every refusal (never a plain-text page); its ``error`` object is returned."""
    assert response is not None, "the server closed without an answer"
    assert response.status == status, (response.status, response.body)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.headers.get("x-ms-request-id"), response.headers
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"], error
    return dict(error)


@dataclass
class Outcome:
    """What one raw connection saw: the bytes the server sent, and when it closed."""

    received: bytes = b""
    # Seconds from the connection to the server closing it (None: still open at the end).
    closed_after: float | None = None
    reset: bool = False
    sent: int = 0

    @property
    def response(self) -> RawResponse | None:
        return parse_response(self.received)


async def open_raw(
    host: str, port: int, local_address: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    local = (local_address, 0) if local_address else None
    return await asyncio.open_connection(host, port, local_addr=local)


async def converse(
    host: str,
    port: int,
    head: bytes,
    *,
    drip: bytes = b"",
    every: float = 0.2,
    within: float = 15.0,
    local_address: str | None = None,
) -> Outcome:
    """Connect, send ``head`` at once, then ``drip`` one byte every ``every`` seconds (over and
    over, unless it is empty), reading until the server closes or ``within`` seconds pass."""
    outcome = Outcome()
    started = time.monotonic()
    reader, writer = await open_raw(host, port, local_address)

    async def read() -> None:
        try:
            while chunk := await reader.read(65536):
                outcome.received += chunk
        except ConnectionError:
            outcome.reset = True
        outcome.closed_after = time.monotonic() - started

    async def write() -> None:
        writer.write(head)
        outcome.sent += len(head)
        index = 0
        while drip:
            await writer.drain()
            await asyncio.sleep(every)
            writer.write(drip[index % len(drip) : index % len(drip) + 1])
            outcome.sent += 1
            index += 1

    reading = asyncio.create_task(read())
    writing = asyncio.create_task(write())
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), within)
    finally:
        writing.cancel()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await writing
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return outcome


async def exchange(
    host: str, port: int, raw: bytes, *, within: float = 15.0, local_address: str | None = None
) -> Outcome:
    """Send ``raw`` at once and read until the server closes (or ``within`` seconds pass)."""
    return await converse(host, port, raw, within=within, local_address=local_address)


def request(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    """A request head (with ``Host``) and ``body``; ``headers`` are ``Name: value`` lines."""
    lines = [f"{method} {target} HTTP/1.1", "Host: nc", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_DISCOVERY = "/networking/discovery"
_ACL = "/networking/v1/accessControlLists/hostile"

# Requests the server must refuse before the application sees them: (id, bytes, status, code).
HOSTILE: list[tuple[str, bytes, int, str]] = [
    ("100 KB URL", request("GET", "/networking/v1/" + "a" * 100_000), 414, "UriTooLong"),
    (
        "10 KB header",
        request("GET", _DISCOVERY, "X-Big: " + "a" * 10_000),
        431,
        "RequestHeaderFieldsTooLarge",
    ),
    (
        "1,000 headers",
        request("GET", _DISCOVERY, *(f"X-H{i}: v" for i in range(1000))),
        431,
        "RequestHeaderFieldsTooLarge",
    ),
    ("malformed request line", b"GARBAGE\r\n\r\n", 400, "MalformedRequest"),
    (
        "bad chunked encoding",
        request(
            "PUT",
            _ACL,
            "Content-Type: application/json",
            "Transfer-Encoding: chunked",
            body=b"zz\r\n{}\r\n0\r\n\r\n",
        ),
        400,
        "MalformedRequest",
    ),
]
