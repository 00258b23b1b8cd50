"""Hot statements compiled once and run on psycopg itself (PostgreSQL).

SQLAlchemy Core builds every statement's cache key, looks its compiled form up, runs it through
its greenlet bridge and wraps each row, which profiling put at about 0.3 ms of CPU per statement
over psycopg's own execute (docs/performance.md). For the few statements every GET and every
write run, that overhead was the larger part of the request. A ``Compiled`` statement is still
written in SQLAlchemy Core (one definition, one place for SQL); it is compiled to PostgreSQL's
text once, and on PostgreSQL run on the transaction's own psycopg connection with psycopg's
parameter binding and rows as plain tuples. On SQLite it runs through SQLAlchemy as before.

psycopg's errors are re-raised as SQLAlchemy's ``DBAPIError`` (what ``Database.run`` retries or
answers), and a connection psycopg finds broken is invalidated, so the pool never hands it out
again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

R = TypeVar("R")

_POSTGRES = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]


class Compiled:
    """``statement``, with named bind parameters only (no expanding IN lists: on PostgreSQL
    use ``= ANY(:values)`` with an array parameter)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=_POSTGRES)  # type: ignore[attr-defined]
        self.sql: str = compiled.string

    async def rows(
        self, connection: AsyncConnection, params: Mapping[str, Any], *, is_postgres: bool
    ) -> Sequence[tuple[Any, ...]]:
        """The statement's rows (see :meth:`records` for many rows)."""
        if not is_postgres:
            result = await connection.execute(self.statement, params)
            return [tuple(row) for row in result] if result.returns_rows else []
        async with self._driver(connection, params) as driver:
            cursor = driver.cursor()
            await cursor.execute(self.sql, params)
            # A statement returning nothing (an INSERT) has no rows to fetch.
            if cursor.description is None:
                return []
            return await cursor.fetchall()

    async def run_many(
        self, connection: AsyncConnection, params: Sequence[Mapping[str, Any]]
    ) -> None:
        """PostgreSQL: the statement once for each of ``params`` (psycopg pipelines them, one
        round trip); its rows are not read."""
        async with self._driver(connection, params[0]) as driver:
            await driver.cursor().executemany(self.sql, params)

    async def records(
        self,
        connection: AsyncConnection,
        params: Mapping[str, Any],
        make: Callable[..., R],
        *,
        is_postgres: bool,
        chunk: int,
    ) -> list[R]:
        """The statement's rows, each made into ``make(*row)``. On PostgreSQL they are decoded
        and made ``chunk`` at a time, with the event loop's other tasks run in between:
        decoding a page of 600 rows at once kept every other request waiting, and making the
        10,001 rows of a big ACL into records at once held the loop for 50 ms."""
        if not is_postgres:
            result = await connection.execute(self.statement, params)
            return [make(*row) for row in result]
        made: list[R] = []
        async with self._driver(connection, params) as driver:
            cursor = driver.cursor()
            await cursor.execute(self.sql, params)
            while batch := await cursor.fetchmany(chunk):
                made.extend(make(*row) for row in batch)
                await _next_turn()
        return made

    async def rows_and_commit(
        self,
        connection: AsyncConnection,
        params: Mapping[str, Any],
        first: Sequence[Bound] = (),
    ) -> Sequence[tuple[Any, ...]]:
        """PostgreSQL: the statement's rows, with the transaction's COMMIT sent in the same
        round trip (a pipeline). The locks the statement takes (the change log's counter
        row) are then held for the commit alone, not also for a trip back to this process
        and a turn of its busy event loop: under 32 concurrent writes, that trip made every
        write wait 22-32 ms for the counter (docs/performance.md, fifth round). The
        statements ``first`` (whose rows no one reads: a write's audit event) go ahead of
        it in the same round trip. The transaction must have nothing left to do; what
        ``Database.run`` commits afterwards is a no-op on psycopg."""
        async with self._driver(connection, params) as driver, driver.pipeline():
            for bound in first:
                await driver.cursor().execute(bound.compiled.sql, bound.params)
            cursor = driver.cursor()
            await cursor.execute(self.sql, params)
            await driver.commit()
            return await cursor.fetchall()

    @asynccontextmanager
    async def _driver(
        self, connection: AsyncConnection, params: Mapping[str, Any]
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The transaction's psycopg connection; psycopg's errors re-raised as SQLAlchemy's."""
        raw = await connection.get_raw_connection()
        driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
        try:
            yield driver
        except psycopg.Error as exc:
            broken = driver.broken or driver.closed
            if broken:
                await connection.invalidate(exc)
            raise DBAPIError.instance(
                self.sql,
                dict(params),
                exc,
                psycopg.Error,
                connection_invalidated=broken,
                dialect=_POSTGRES,
            ) from exc


@dataclass(frozen=True)
class Bound:
    """A compiled statement and its parameters, to run later in the transaction (with its
    commit, ``Compiled.rows_and_commit``'s ``first``); its rows are not read."""

    compiled: Compiled
    params: Mapping[str, Any]

    async def run(self, connection: AsyncConnection, *, is_postgres: bool) -> None:
        await self.compiled.rows(connection, self.params, is_postgres=is_postgres)


async def _next_turn() -> None:
    """Let the event loop run whatever else is ready."""
    await asyncio.sleep(0)
