"""The HTTP server's own refusals, over a real socket to the controller as ``sdnc serve``
configures it: requests that are malformed, oversized or too slow, and connections over the
caps, are answered before the application sees them, always with the NC error envelope and
their own status (400, 408, 414, 429, 431, 503); real requests near the limits pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from controller.settings import Settings
from tests.support.bodies import acl, acl_rule
from tests.support.figures import Figures
from tests.support.raw_http import (
    HOSTILE,
    Outcome,
    assert_envelope,
    converse,
    exchange,
    open_raw,
    parse_responses,
    request,
)
from tests.support.southbound import InProcessController, eventually, in_process_controller

HOST = "127.0.0.1"
ACL = "/networking/v1/accessControlLists/hostile"
# Generous bounds (a loaded 2-core machine); the strict figures are recorded.
PROMPTLY = 5.0
WITHIN = 15.0

EXTRA_HOSTILE: list[tuple[str, bytes, int, str]] = [
    (
        "40 KB of header fields",
        request("GET", "/networking/discovery", *(f"X-H{i}: {'a' * 7000}" for i in range(6))),
        431,
        "RequestHeaderFieldsTooLarge",
    ),
    (
        # The parser keeps an unfinished field to itself: the bytes received bound it.
        "an unfinished 40 KB header field",
        b"GET /networking/discovery HTTP/1.1\r\nHost: nc\r\nX-Endless: " + b"a" * 40_000,
        431,
        "RequestHeaderFieldsTooLarge",
    ),
    ("an unknown HTTP version", b"GET / HTTP/9.9\r\nHost: nc\r\n\r\n", 400, "MalformedRequest"),
    ("a space in a field name", request("GET", "/", "Bad Name: x"), 400, "MalformedRequest"),
    ("a control character in the target", b"GET /a\x01b HTTP/1.1\r\n\r\n", 400, "MalformedRequest"),
]


ALL_HOSTILE = HOSTILE + EXTRA_HOSTILE
SLOW_HEAD = b"GET /networking/discovery HTTP/1.1\r\nHost: nc\r\nX-Slow: "


@asynccontextmanager
async def controller(settings: Settings, **limits: Any) -> AsyncIterator[InProcessController]:
    async with in_process_controller(settings.model_copy(update=limits)) as running:
        yield running


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[InProcessController]:
    async with controller(settings) as running:
        yield running


# -- refused before the application ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [pytest.param(raw, status, code, id=name) for name, raw, status, code in ALL_HOSTILE],
)
async def test_protocol_refusals_are_the_envelope(
    served: InProcessController, raw: bytes, status: int, code: str
) -> None:
    outcome = await exchange(HOST, served.port, raw, within=WITHIN)
    assert_envelope(outcome.response, status, code)
    assert outcome.response is not None
    assert outcome.response.headers["connection"] == "close"
    assert outcome.closed_after is not None, "the connection was left open"
    # Nothing reached the database (the bad chunked body was a PUT).
    assert (await served.http.get(ACL)).status_code == 404


async def test_an_oversized_header_is_named_in_target(served: InProcessController) -> None:
    raw = request("GET", "/networking/discovery", "X-Kerberos-Like: " + "a" * 9000)
    error = assert_envelope(
        (await exchange(HOST, served.port, raw)).response, 431, "RequestHeaderFieldsTooLarge"
    )
    assert error["target"] == "X-Kerberos-Like"


async def test_real_requests_near_the_limits_pass(served: InProcessController) -> None:
    long_id = "n" * 256
    long_path = f"/networking/v1/accessControlLists/{long_id}?" + "x" * 7000
    answered = await exchange(HOST, served.port, request("GET", long_path, "Connection: close"))
    # The application answered (it does not know the resource), not the server.
    assert_envelope(answered.response, 404, "NotFound")

    many = request(
        "GET",
        "/networking/discovery",
        *(f"X-H{i}: {'v' * 200}" for i in range(90)),
        "X-Token: " + "t" * 7000,
        "Connection: close",
    )
    passed = (await exchange(HOST, served.port, many)).response
    assert passed is not None
    assert passed.status == 200, passed.body


async def test_a_chunked_put_and_kept_alive_requests_pass(served: InProcessController) -> None:
    body = orjson.dumps(acl(acl_rule("r1", 100)))
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    put = request(
        "PUT",
        ACL,
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        body=chunked + b"0\r\n\r\n",
    )
    get = request("GET", "/networking/discovery")
    last = request("GET", ACL, "Connection: close")
    outcome = await exchange(HOST, served.port, put + get + last)
    assert [r.status for r in parse_responses(outcome.received)] == [201, 200, 200]


# -- deadlines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "drip", "what"),
    [
        pytest.param(b"", b"", "nothing", id="silent"),
        pytest.param(SLOW_HEAD, b"a", "headers", id="head"),
        pytest.param(
            request("PUT", ACL, "Content-Type: application/json", "Content-Length: 5000"),
            b" ",
            "body",
            id="body",
        ),
    ],
)
async def test_slow_requests_are_dropped_at_the_deadline(
    settings: Settings, figures: Figures, head: bytes, drip: bytes, what: str
) -> None:
    """A request trickled a byte every 50 ms (or not sent at all) gets a 408 once the deadline
    passes: the trickle does not extend it."""
    deadline = 0.5
    limits = {"http_header_timeout": deadline, "http_body_timeout": deadline}
    async with controller(settings, **limits) as running:
        outcome = await converse(HOST, running.port, head, drip=drip, every=0.05, within=WITHIN)
        assert (await running.http.get(ACL)).status_code == 404
    assert_envelope(outcome.response, 408, "RequestTimeout")
    assert outcome.closed_after is not None
    assert deadline <= outcome.closed_after < deadline + PROMPTLY
    if drip:
        assert outcome.sent > len(head) + 5, "the client kept sending until the deadline"
    figures.record(f"{what}: closed after", outcome.closed_after, "s")


async def test_the_head_deadline_starts_with_each_request(settings: Settings) -> None:
    """On a kept-alive connection the next request's deadline starts with its first byte: an
    idle pause longer than the deadline (but within keep-alive) costs nothing, a trickled
    second request is dropped."""
    async with controller(settings, http_header_timeout=0.5) as running:
        reader, writer = await open_raw(HOST, running.port)
        try:
            for _ in range(2):
                writer.write(request("GET", "/networking/discovery"))
                assert (await _response(reader)).status == 200
                await asyncio.sleep(0.8)  # idle, between requests: keep-alive's business
            writer.write(b"GET /networking/discovery HTTP/1.1\r\nHost: nc\r\n")
            started = time.monotonic()
            assert_envelope(await _response(reader), 408, "RequestTimeout")
            assert time.monotonic() - started < PROMPTLY
        finally:
            writer.close()


async def _response(reader: asyncio.StreamReader) -> Any:
    received = b""
    async with asyncio.timeout(WITHIN):
        while not (responses := parse_responses(received)):
            chunk = await reader.read(65536)
            assert chunk, "closed without an answer"
            received += chunk
    return responses[0]


# -- connection caps ---------------------------------------------------------------------------


async def test_connections_over_an_address_cap_are_refused_at_once(
    settings: Settings, figures: Figures
) -> None:
    async with controller(settings, http_max_connections_per_address=4) as running:
        held = [await open_raw(HOST, running.port, "127.0.0.3") for _ in range(4)]
        await eventually(lambda: running.admission.held_by("127.0.0.3") == 4, WITHIN, "admission")
        refused = await exchange(HOST, running.port, b"", within=WITHIN, local_address="127.0.0.3")
        assert_envelope(refused.response, 429, "TooManyConnections")
        assert refused.response is not None
        assert refused.response.headers["retry-after"] == "1"
        assert refused.closed_after is not None
        assert refused.closed_after < PROMPTLY
        figures.record("refused after", refused.closed_after, "s")

        other = await exchange(HOST, running.port, _get_closing(), local_address="127.0.0.4")
        assert _status(other) == 200, "another address is not capped"

        held.pop()[1].close()
        await eventually(lambda: running.admission.held_by("127.0.0.3") == 3, WITHIN, "release")
        again = await exchange(HOST, running.port, _get_closing(), local_address="127.0.0.3")
        assert _status(again) == 200
        for _, writer in held:
            writer.close()


async def test_connections_over_the_total_cap_are_refused_at_once(settings: Settings) -> None:
    limits = {"http_max_connections": 16, "http_max_connections_per_address": 0}
    async with controller(settings, **limits) as running:
        held = [await open_raw(HOST, running.port, f"127.0.1.{i}") for i in range(1, 17)]
        await eventually(lambda: running.admission.open == 16, WITHIN, "admission")
        refused = await exchange(HOST, running.port, _get_closing(), local_address="127.0.2.1")
        assert_envelope(refused.response, 503, "ServiceUnavailable")
        for _, writer in held:
            writer.close()
        await eventually(lambda: running.admission.open == 0, WITHIN, "every slot released")


def _get_closing() -> bytes:
    return request("GET", "/networking/discovery", "Connection: close")


def _status(outcome: Outcome) -> int | None:
    return outcome.response.status if outcome.response else None
