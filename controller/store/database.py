"""Connections and transactions for PostgreSQL (production) and SQLite (embedded default).

``Database.run`` executes one unit of work in one transaction and retries it, in a fresh
transaction, when PostgreSQL reports a serialization failure, a deadlock or a constraint race
(two writers creating the same row, a reference racing a delete): on the retry the work sees the
winner's commit and produces the proper answer (an update, a 400, a 409) instead of a 500.
SQLite write transactions start with ``BEGIN IMMEDIATE``, so writers queue instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from controller.errors import ServiceUnavailable

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


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = async_url(url)
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        if self.is_postgres:
            self.engine = self._postgres_engine(pool_size)
            self._write_engine = self.engine
        else:
            self.engine = self._sqlite_engine(immediate=False)
            self._write_engine = self._sqlite_engine(immediate=True)

    def _postgres_engine(self, pool_size: int) -> AsyncEngine:
        return create_async_engine(
            self.url,
            pool_size=pool_size,
            # No overflow: a connection opened for a burst and closed right after costs more
            # (a PostgreSQL backend start) than waiting briefly for a pooled one.
            max_overflow=0,
            pool_pre_ping=True,
            json_serializer=_dumps,
            json_deserializer=orjson.loads,
        )

    def _sqlite_engine(self, *, immediate: bool) -> AsyncEngine:
        engine = create_async_engine(
            self.url, json_serializer=_dumps, json_deserializer=orjson.loads
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours to issue.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            for pragma in (
                "journal_mode=WAL",
                "synchronous=FULL",
                "foreign_keys=ON",
                "busy_timeout=30000",
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
    ) -> T:
        """Run ``work`` in one transaction; commit if it returns, roll back if it raises.
        ``isolation`` (PostgreSQL) e.g. REPEATABLE READ for a consistent multi-query read."""
        engine = self._write_engine if write else self.engine
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with engine.connect() as connection:
                    if isolation is not None and self.is_postgres:
                        await connection.execution_options(isolation_level=isolation)
                    async with connection.begin():
                        return await work(connection)
            except DBAPIError as exc:
                if attempt < MAX_ATTEMPTS and _is_retryable(exc):
                    log.debug("transaction retry %d after %s", attempt, _sqlstate(exc))
                    await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
                    continue
                if _is_unavailable(exc):
                    raise ServiceUnavailable("the database is not reachable") from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._write_engine is not self.engine:
            await self._write_engine.dispose()


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
