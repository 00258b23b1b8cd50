"""Connections and transactions for PostgreSQL (production) and SQLite (embedded default).

``Database.run`` executes one unit of work in one transaction (on PostgreSQL a read, or a unit of
one statement, without BEGIN/COMMIT: see ``Database._engine_for``) and retries it, in a fresh
transaction, when PostgreSQL reports a serialization failure, a deadlock or a constraint race
(two writers creating the same row, a reference racing a delete): on the retry the work sees the
winner's commit and produces the proper answer (an update, a 400, a 409) instead of a 500.
SQLite write transactions start with ``BEGIN IMMEDIATE``, so writers queue instead of failing.

Every unit of work is bounded in time (``Timeouts``): getting a connection, every statement and
every retry share one deadline, past which the caller gets ``ServiceUnavailable``. A frozen
PostgreSQL server still accepts TCP connections and never answers, so the bound is kept on the
client: opening a connection has psycopg's ``connect_timeout``, waiting for a pooled one the
pool's timeout, and a statement a watchdog that shuts the connection's socket down at the
deadline. The statement then fails at once as a broken connection, which the pool discards.
Cancelling the task instead would not do: psycopg answers a cancellation by asking the server
to cancel the query and waiting for it, 5 s for the request and 5 s for the answer, which a
frozen server never gives. On SQLite the wait for the write lock (``busy_timeout``) is bounded
by the same deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from controller.errors import ControllerError, ServiceUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# SQLSTATEs that mean "a concurrent transaction won; run again on fresh data".
RETRYABLE_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "23505",  # unique_violation: a concurrent create of the same resource
        "23503",  # foreign_key_violation: a reference racing a delete
        "55P03",  # lock_not_available
    }
)
QUERY_CANCELED = "57014"  # statement_timeout: the server gave up on a statement


@dataclass(frozen=True)
class Timeouts:
    """How long the controller waits for the database, in seconds."""

    # One unit of work, all of it: getting a connection, every statement, every retry.
    total: float = 5.0
    # Getting one connection: a free one from the pool, or a new one opened.
    connect: float = 2.0

    @property
    def retry_after(self) -> int:
        """What a client that got a 503 is told to wait (the Retry-After header)."""
        return max(1, math.ceil(self.total))


def async_url(url: str) -> URL:
    """The driver URL the controller runs on: psycopg 3 or aiosqlite."""
    parsed = make_url(_normalise(url))
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database URL '{parsed.render_as_string()}'")


def sync_url(url: str) -> URL:
    """The same database through a synchronous driver (for migrations)."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed


def _normalise(url: str) -> str:
    return "postgresql" + url[len("postgres") :] if url.startswith("postgres://") else url


def json_text(value: Any) -> str:
    """A JSON document as the database is given it (every JSON column, the change log's)."""
    return orjson.dumps(value).decode()


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def side_pool_size(pool_size: int) -> int:
    """Connections of the side pool (``Database.run``'s ``aside``) next to a main pool of
    ``pool_size``: its statements are short, so a few serve many writers."""
    return max(2, pool_size // 4)


def connect_timeout(seconds: float) -> int:
    """psycopg's ``connect_timeout``: whole seconds, and libpq counts anything below 2 as 2."""
    return max(2, math.ceil(seconds))


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, timeouts: Timeouts | None = None) -> None:
        self.url = async_url(url)
        self.timeouts = timeouts or Timeouts()
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        if self.is_postgres:
            self.engine = self._postgres_engine(pool_size)
            self._write_engine = self.engine
            # Reads without BEGIN/COMMIT, on the same pool. Under READ COMMITTED each
            # statement sees its own snapshot whether or not a transaction encloses it, so a
            # read-only unit gains nothing from one but two round trips (docs/performance.md).
            self._read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            # Single statements run while a unit of work holds a connection of the main pool
            # (an allocation's reservation, service/reservations.py): on a pool of their own,
            # so units of work that hold every main connection cannot make them wait for one.
            self._side_pool = self._postgres_engine(side_pool_size(pool_size))
            self._side_engine = self._side_pool.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self.engine = self._sqlite_engine(immediate=False)
            self._write_engine = self._sqlite_engine(immediate=True)
            self._read_engine = self.engine
            self._side_pool = self._side_engine = self._write_engine

    def _postgres_engine(self, pool_size: int) -> AsyncEngine:
        return create_async_engine(
            self.url,
            pool_size=pool_size,
            # No overflow: a connection opened for a burst and closed right after costs more
            # (a PostgreSQL backend start) than waiting briefly for a pooled one.
            max_overflow=0,
            pool_timeout=self.timeouts.connect,
            # No pre-ping: it runs inside the pool's checkout, out of the watchdog's reach,
            # where only a cancellation could interrupt it (see the module docstring). A
            # connection a restart broke fails on its first statement instead; that
            # invalidates it and every older pooled one, and the unit of work is retried.
            pool_pre_ping=False,
            connect_args={
                "connect_timeout": connect_timeout(self.timeouts.connect),
                # The server drops what no client waits for any more.
                "options": f"-c statement_timeout={_milliseconds(self.timeouts.total)}",
            },
            json_serializer=json_text,
            json_deserializer=orjson.loads,
        )

    def _sqlite_engine(self, *, immediate: bool) -> AsyncEngine:
        # A file has a pool of connections to wait for; an in-memory database (only ever
        # used to render the OpenAPI document) has its one connection.
        in_memory = self.url.database in (None, "", ":memory:")
        engine = create_async_engine(
            self.url,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
            **({} if in_memory else {"pool_timeout": self.timeouts.connect}),
        )
        busy_timeout = _milliseconds(self.timeouts.total)

        @event.listens_for(engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours to issue.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            for pragma in (
                # First: switching to WAL waits for the lock like any writer.
                f"busy_timeout={busy_timeout}",
                "journal_mode=WAL",
                "synchronous=FULL",
                "foreign_keys=ON",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    async def run(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        write: bool = True,
        isolation: str | None = None,
        within: float | None = None,
        one_statement: bool = False,
        aside: bool = False,
    ) -> T:
        """Run ``work`` in one transaction (but see ``one_statement`` and ``_engine_for``);
        commit if it returns, roll back if it raises.
        ``isolation`` (PostgreSQL) e.g. REPEATABLE READ for a consistent multi-query read.
        ``one_statement``: ``work`` runs a single statement, atomic by itself, so on
        PostgreSQL it needs no BEGIN/COMMIT around it (nor does a read; see ``_engine_for``).
        ``within`` (default ``Timeouts.total``) seconds bound the whole of it, retries
        included; past them: ``ServiceUnavailable``.
        ``aside`` (PostgreSQL): ``work`` is one statement (autocommitted) run while the caller
        holds a connection of the main pool, so it runs on a small pool of its own."""
        budget = self.timeouts.total if within is None else within
        if aside and self.is_postgres:
            engine = self._side_engine
        else:
            engine = self._engine_for(write, one_statement, isolation, budget)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        for attempt in range(1, MAX_ATTEMPTS + 1):
            watchdog = _Watchdog(deadline)
            try:
                return await self._attempt(engine, work, isolation, watchdog, budget)
            except (TimeoutError, PoolTimeout) as exc:
                raise self._too_slow(budget) from exc
            except DBAPIError as exc:
                if watchdog.fired or _sqlstate(exc) == QUERY_CANCELED:
                    raise self._too_slow(budget) from exc
                if attempt < MAX_ATTEMPTS and _is_retryable(exc):
                    pause = random.uniform(0, 0.002 * 2**attempt)
                    if loop.time() + pause >= deadline:
                        raise self._too_slow(budget) from exc
                    log.debug("transaction retry %d after %s", attempt, _sqlstate(exc))
                    await asyncio.sleep(pause)
                    continue
                if _is_unavailable(exc):
                    raise ServiceUnavailable(
                        "the database is not reachable", retry_after=self.timeouts.retry_after
                    ) from exc
                raise
            except ControllerError:
                raise  # the work's own answer (nothing was committed)
            except Exception as exc:
                # However the broken connection surfaced, the deadline broke it.
                if watchdog.fired:
                    raise self._too_slow(budget) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _engine_for(
        self, write: bool, one_statement: bool, isolation: str | None, budget: float
    ) -> AsyncEngine:
        if not self.is_postgres:
            return self._write_engine if write else self.engine
        if write and not one_statement:
            return self._write_engine
        # A chosen isolation level needs its transaction, and so does a budget past the
        # connection's statement_timeout (raised by SET LOCAL, which lasts a transaction).
        if isolation is not None or budget > self.timeouts.total:
            return self.engine
        return self._read_engine

    async def _attempt(
        self,
        engine: AsyncEngine,
        work: Callable[[AsyncConnection], Awaitable[T]],
        isolation: str | None,
        watchdog: _Watchdog,
        budget: float,
    ) -> T:
        connection = engine.connect()
        # Getting a connection may be cancelled safely (a pool wait, or psycopg opening one);
        # a statement may not, so from here on the watchdog keeps the deadline.
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(min(watchdog.deadline, loop.time() + self.timeouts.connect)):
            await connection.start()
        try:
            with watchdog.watching(connection if self.is_postgres else None):
                if isolation is not None and self.is_postgres:
                    await connection.execution_options(isolation_level=isolation)
                async with connection.begin():
                    if self.is_postgres and budget > self.timeouts.total:
                        # A long unit of work (loading the whole model) outlives the
                        # connection's default statement_timeout.
                        milliseconds = _milliseconds(budget)
                        await connection.execute(
                            text(f"SET LOCAL statement_timeout = {milliseconds}")
                        )
                    return await work(connection)
        finally:
            await connection.close()

    def _too_slow(self, budget: float) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"the database did not answer within {budget:g} s",
            retry_after=self.timeouts.retry_after,
        )

    def pool_usage(self) -> tuple[int, int]:
        """Connections checked out of the pools now, and the pools' sizes (for the metrics;
        on SQLite the reader's and the writer's pools together)."""
        engines = {id(e): e for e in (self.engine, self._write_engine)}.values()
        in_use = size = 0
        for engine in engines:
            pool: Any = engine.pool
            if hasattr(pool, "checkedout") and hasattr(pool, "size"):
                in_use += int(pool.checkedout())
                size += int(pool.size())
        return in_use, size

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._write_engine is not self.engine:
            await self._write_engine.dispose()
        if self.is_postgres:
            await self._side_pool.dispose()


class _Watchdog:
    """Breaks the connection of an attempt that is still running at the deadline: its socket
    is shut down, so whatever psycopg waits for ends at once as a broken connection, which
    SQLAlchemy then discards (it never returns to the pool in an unknown state)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self._connection: Any = None

    @contextlib.contextmanager
    def watching(self, connection: AsyncConnection | None) -> Iterator[None]:
        if connection is None:  # SQLite: busy_timeout bounds the only wait
            yield
            return
        self._connection = connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        handle = asyncio.get_running_loop().call_at(self.deadline, self._fire)
        try:
            yield
        finally:
            handle.cancel()
            self._connection = None

    def _fire(self) -> None:
        self.fired = True
        try:
            fileno = self._connection.pgconn.socket
            # A duplicate descriptor of the same socket: shutting it down ends the connection
            # for psycopg too, while the descriptor psycopg watches stays valid until it closes.
            with socket.socket(fileno=os.dup(fileno)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            log.debug("the connection to interrupt was already gone")
        log.info("the database did not answer in time; its connection was discarded")


def _sqlstate(exc: DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def _is_retryable(exc: DBAPIError) -> bool:
    # A pooled connection that died (database restart) was just discarded; a new one may work.
    if exc.connection_invalidated or _sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    # SQLite: a writer outlived busy_timeout.
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _is_unavailable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    state = _sqlstate(exc)
    return isinstance(exc, OperationalError) and (state is None or state.startswith("08"))
