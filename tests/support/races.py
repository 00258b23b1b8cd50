"""Races against a real controller process on PostgreSQL: one controller per test on a fresh
database, clients over sockets, and the judges of their answers (no 5xx, exactly so many
winners, the proper 409 for the others, values held once)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from tests.conftest import create_database
from tests.support.responses import assert_no_5xx, describe, error_code
from tests.support.server import ControllerServer, running_controller

Json = dict[str, Any]


@contextmanager
def started_controller(postgres_server: str, **env: str) -> Iterator[ControllerServer]:
    with create_database(postgres_server) as url, running_controller(url, extra_env=env) as server:
        yield server


@asynccontextmanager
async def connected(server: ControllerServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the controller's /networking/v1 for up to 64 concurrent requests; the
    controller's log of the test is printed afterwards (pytest shows it on failure)."""
    offset = server.log_size()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    try:
        async with httpx.AsyncClient(
            base_url=f"{server.base_url}/networking/v1", limits=limits, timeout=120.0
        ) as http:
            yield http
    finally:
        log = server.log_since(offset)
        if log:
            print(f"--- controller log during this test ---\n{log}")


def assert_outcomes(
    responses: Sequence[httpx.Response], winners: int, losers: int, code: str
) -> None:
    """``winners`` creations (201) and ``losers`` 409s with error ``code``, nothing else."""
    assert_no_5xx(responses)
    statuses = Counter(r.status_code for r in responses)
    failed = describe([r for r in responses if r.status_code != 201])
    assert statuses == +Counter({201: winners, 409: losers}), f"{statuses}\n{failed}"
    codes = Counter(error_code(r) for r in responses if r.status_code == 409)
    assert set(codes) <= {code}, f"{codes}\n{failed}"


def assert_distinct(values: Sequence[str], what: str) -> None:
    duplicates = {v: n for v, n in Counter(values).items() if n > 1}
    assert not duplicates, f"{what} held more than once: {duplicates}"


async def put_ok(nc: httpx.AsyncClient, path: str, body: Json) -> Json:
    response = await nc.put(path, json=body)
    assert response.status_code in (200, 201), response.text
    result: Json = response.json()
    return result


async def later(seconds: float, request: Awaitable[httpx.Response]) -> httpx.Response:
    await asyncio.sleep(seconds)
    return await request


def head_starts(round_: int, count: int, spread: float) -> tuple[float, list[float]]:
    """Delays for a change and ``count`` allocations racing it: in even rounds the change
    starts up to ``spread`` seconds late, in odd rounds the allocations do, so both get to go
    first."""
    if round_ % 2 == 0:
        return random.uniform(0, spread), [0.0] * count
    return 0.0, [random.uniform(0, spread) for _ in range(count)]
