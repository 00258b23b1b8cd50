"""The northbound calls the convergence benchmarks make: PUTs (one, many at once, or timed with
``?wait=applied``), the southbound status, the agents' tokens, and latency summaries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.bench.common import BenchError, percentile
from controller.southbound.admin import server_tokens
from controller.store.database import Database

API = "/networking/v1"
HEADERS = {"Content-Type": "application/json"}
ANALYZE_TIMEOUT = 300.0  # seconds


async def put(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    response = await client.put(API + path, content=orjson.dumps(body), headers=HEADERS)
    if response.status_code not in (200, 201):
        raise BenchError(f"PUT {path}: {response.status_code} {response.text[:500]}")
    return response


async def put_all(
    client: httpx.AsyncClient, limit: int, puts: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(path: str, body: dict[str, Any]) -> None:
        async with gate:
            await put(client, path, body)

    await asyncio.gather(*(one(path, body) for path, body in puts))


async def agent_tokens(database_url: str, count: int) -> dict[str, str]:
    """The agents' tokens; on PostgreSQL, first refresh the planner's statistics, as
    autovacuum would after a bulk load (where it is off, plans made for empty tables turn
    millisecond queries into hundreds of milliseconds)."""
    database = Database(database_url)
    try:
        if database.is_postgres:

            async def analyze(connection: AsyncConnection) -> None:
                await connection.execute(text("ANALYZE"))

            # A request's database bound is too short for the statistics of 100,000
            # endpoints on a busy machine.
            await database.run(analyze, within=ANALYZE_TIMEOUT)
        return dict(await server_tokens(database, count + 100))
    finally:
        await database.dispose()


async def southbound_status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/southbound/v1/status")
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


async def timed_puts(
    client: httpx.AsyncClient, paths_and_bodies: Sequence[tuple[str, dict[str, Any]]], within: float
) -> tuple[list[float], int]:
    """PUT each with ?wait=applied, one after the other; latencies (ms) and how many timed out."""
    latencies: list[float] = []
    timeouts = 0
    for path, body in paths_and_bodies:
        started = time.perf_counter()
        response = await put(client, f"{path}?wait=applied&timeout={within:g}", body)
        latencies.append((time.perf_counter() - started) * 1000)
        timeouts += response.headers.get("x-sdnc-applied") != "true"
    return latencies, timeouts


def summary(name: str, latencies: list[float], timeouts: int) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        f"{name}_p50_ms": percentile(ordered, 50),
        f"{name}_p99_ms": percentile(ordered, 99),
        f"{name}_max_ms": round(ordered[-1], 2) if ordered else 0.0,
        f"{name}_timeouts": timeouts,
    }
