"""``Database.run`` keeps its deadline whatever the database does: frozen (every process of the
cluster stopped with SIGSTOP, so connections are accepted and never answered), holding a lock
forever, or holding SQLite's write lock. The caller gets ``ServiceUnavailable`` within the
bound, the event loop keeps running meanwhile, the interrupted connection is not handed out
again, and the next unit of work after the database is back succeeds.

The PostgreSQL tests share one throwaway cluster of their own (never the session's), frozen
only inside ``frozen()``, which thaws however the test ends.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from sqlalchemy import Integer, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import ServiceUnavailable
from controller.store.compiled import Compiled
from controller.store.database import Database, Timeouts
from tests.support.faults import ControllablePostgres
from tests.support.figures import Figures

T = TypeVar("T")
BOUND = Timeouts(total=1.5, connect=1.0)
# What a loaded 2-core machine may add to the bound before the test calls it a hang.
SLACK = 2.5
# Far beyond any bound: a unit of work still running then is hung.
HANG = 20.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControllablePostgres]:
    postgres = ControllablePostgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.stop()


@pytest.fixture
def cluster_url(cluster: ControllablePostgres) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/postgres"


@pytest.fixture
async def database(cluster_url: str) -> AsyncIterator[Database]:
    db = Database(cluster_url, pool_size=4, timeouts=BOUND)
    try:
        yield db
    finally:
        await db.dispose()


async def select_one(connection: AsyncConnection) -> int:
    return int((await connection.execute(text("SELECT 1"))).scalar_one())


@asynccontextmanager
async def loop_watch() -> AsyncIterator[list[float]]:
    """The longest the event loop went without running a 20 ms ticker, as ``[gap]``."""
    longest = [0.0]

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            longest[0] = max(longest[0], now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        yield longest
    finally:
        ticker.cancel()


async def refused_in(run: Callable[[], Awaitable[T]]) -> float:
    """Seconds until ``run`` fails with ServiceUnavailable (a hang fails the test)."""
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as refused:
        async with asyncio.timeout(HANG):
            await run()
    elapsed = time.monotonic() - started
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 1
    return elapsed


async def test_a_frozen_server_costs_a_unit_of_work_its_bound(
    cluster: ControllablePostgres, database: Database, figures: Figures
) -> None:
    # Pooled connections that were fine a moment ago, then nothing answers on them.
    await asyncio.gather(*(database.run(select_one, write=False) for _ in range(4)))
    async with loop_watch() as longest_pause:
        with cluster.frozen():
            elapsed = await asyncio.gather(
                *(refused_in(lambda: database.run(select_one, write=False)) for _ in range(6))
            )
    assert max(elapsed) < BOUND.total + SLACK, elapsed
    assert longest_pause[0] < 1.0, longest_pause
    figures.record("refused after (max)", max(elapsed), "s")
    figures.record("longest event loop pause", longest_pause[0], "s")
    started = time.monotonic()
    assert await database.run(select_one, write=False) == 1
    figures.record("first answer after the thaw", time.monotonic() - started, "s")


async def test_a_frozen_server_refuses_new_connections_within_the_bound(
    cluster: ControllablePostgres, database: Database
) -> None:
    # The pool is empty: every unit of work opens a connection the server never answers.
    with cluster.frozen():
        elapsed = await refused_in(lambda: database.run(select_one))
    assert elapsed < BOUND.total + SLACK
    assert await database.run(select_one) == 1


async def test_a_statement_waiting_on_a_lock_is_bounded_and_its_backend_released(
    cluster_url: str, database: Database
) -> None:
    libpq = cluster_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS deadline_rows (id int PRIMARY KEY, v int)")
        admin.execute("INSERT INTO deadline_rows VALUES (1, 0) ON CONFLICT DO NOTHING")
        with psycopg.connect(libpq) as holder:
            holder.execute("SELECT v FROM deadline_rows WHERE id = 1 FOR UPDATE")

            async def update(connection: AsyncConnection) -> None:
                await connection.execute(text("UPDATE deadline_rows SET v = v + 1 WHERE id = 1"))

            elapsed = await refused_in(lambda: database.run(update))
            assert elapsed < BOUND.total + SLACK
            # The backend the deadline abandoned stops waiting (it does not keep queueing
            # behind the lock for a client that is gone).
            deadline = time.monotonic() + HANG
            while admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone() != (0,):
                assert time.monotonic() < deadline, "an abandoned backend still waits"
                await asyncio.sleep(0.05)
            holder.rollback()
    await database.run(update)


async def test_sqlite_waits_for_the_write_lock_no_longer_than_the_bound(
    tmp_path: Path, figures: Figures
) -> None:
    path = tmp_path / "controller.db"
    with closing(sqlite3.connect(path)) as setup:
        setup.execute("PRAGMA journal_mode=WAL")  # as the migrations leave it
        setup.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY)")
        setup.commit()
    database = Database(f"sqlite:///{path}", timeouts=BOUND)

    async def insert(connection: AsyncConnection) -> None:
        await connection.execute(text("INSERT INTO rows DEFAULT VALUES"))

    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")  # another writer that does not finish
            elapsed = await refused_in(lambda: database.run(insert))
            holder.execute("ROLLBACK")
        await database.run(insert)
    finally:
        await database.dispose()
    assert elapsed < BOUND.total + SLACK
    figures.record("refused after", elapsed, "s")


def test_the_bound_is_read_from_the_settings() -> None:
    from controller.app import database_timeouts
    from controller.settings import Settings

    settings = Settings(database_timeout=3.5, database_connect_timeout=1.5)
    assert database_timeouts(settings) == Timeouts(total=3.5, connect=1.5)
    assert Timeouts(total=3.5).retry_after == 4


async def test_a_compiled_statement_on_a_frozen_server_keeps_the_bound(
    cluster: ControllablePostgres, database: Database
) -> None:
    # The hot statements run on psycopg itself: the watchdog still breaks them at the
    # deadline, and the broken connection is invalidated rather than pooled again.
    await asyncio.gather(*(database.run(compiled_one, write=False) for _ in range(4)))
    with cluster.frozen():
        elapsed = await asyncio.gather(
            *(refused_in(lambda: database.run(compiled_one, write=False)) for _ in range(4))
        )
    assert max(elapsed) < BOUND.total + SLACK, elapsed
    assert await asyncio.gather(*(database.run(compiled_one) for _ in range(4))) == [7] * 4


COMPILED_ONE = Compiled(select(bindparam("value", type_=Integer)))


async def compiled_one(connection: AsyncConnection) -> int:
    rows = await COMPILED_ONE.rows(connection, {"value": 7}, is_postgres=True)
    return int(rows[0][0])
