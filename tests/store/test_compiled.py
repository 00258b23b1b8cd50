"""Statements compiled once and run on psycopg itself answer what SQLAlchemy would, and fail as
SQLAlchemy would: ``DBAPIError`` with the SQLSTATE ``Database.run`` retries on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from psycopg.types.json import Json
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store import compiled
from controller.store.compiled import Compiled
from controller.store.database import Database
from controller.store.repository import RESOURCES, ResourceRepository

INSERT_ROW = Compiled(insert(RESOURCES))
NOW = datetime(2026, 12, 7, tzinfo=UTC)


def row(key: str) -> dict[str, object]:
    instance_id = uuid.uuid4()
    return {
        "instance_id": instance_id,
        "kind": "accessControlLists",
        "path_key": key,
        "resource_ref": key,
        "resource_id": key.rsplit("/", 1)[-1],
        "parent_id": None,
        "root_id": instance_id,
        "position": 0,
        "properties": {"aclRules": []},
        "sibling_key": None,
        "secret": None,
        "tags": None,
        "resource_metadata": None,
        "etag": 'W/"1"',
        "provisioning_state": "Succeeded",
        "revision": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }


async def test_the_fast_aggregate_read_equals_sqlalchemys(database: Database) -> None:
    async def work(connection: AsyncConnection) -> None:
        await connection.execute(insert(RESOURCES), [row("/accesscontrollists/a")])
        repo = ResourceRepository(connection, is_postgres=database.is_postgres)
        fast = await repo.aggregate_at("/accesscontrollists/a")
        slow = await repo.aggregate(fast[0].root_id)
        assert fast == slow
        assert fast[0].properties == {"aclRules": []}
        assert await repo.aggregate_at("/accesscontrollists/missing") == []

    await database.run(work)


async def test_a_violation_raises_what_database_run_retries(database: Database) -> None:
    if not database.is_postgres:
        pytest.skip("the psycopg path runs on PostgreSQL only")
    # Bound by psycopg itself: a JSON value goes wrapped.
    first = {**row("/accesscontrollists/twice"), "properties": Json({})}

    async def twice(connection: AsyncConnection) -> None:
        await INSERT_ROW.rows(connection, first, is_postgres=True)
        await INSERT_ROW.rows(connection, {**first, "instance_id": uuid.uuid4()}, is_postgres=True)

    with pytest.raises(IntegrityError) as raised:
        await database.run(twice)
    assert getattr(raised.value.orig, "sqlstate", None) == "23505"

    async def count(connection: AsyncConnection) -> int:
        query = select(text("count(*)")).select_from(RESOURCES)
        return int((await connection.execute(query)).scalar_one())

    # Nothing of the failed unit stayed; the pooled connection works afterwards.
    assert await database.run(count, write=False) == 0


async def test_rows_decoded_in_chunks_let_the_event_loop_turn(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All 250 rows, in order, and the event loop got a turn after each chunk of 100
    (PostgreSQL: SQLite's rows are not decoded off a socket, and it ignores the chunk)."""
    if not database.is_postgres:
        pytest.skip("generate_series and chunked decoding are PostgreSQL's")
    numbers = Compiled(select(text("n FROM generate_series(1, 250) AS n")))
    turns = 0
    next_turn = compiled._next_turn

    async def counted() -> None:
        nonlocal turns
        turns += 1
        await next_turn()

    async def work(connection: AsyncConnection) -> list[int]:
        return await numbers.records(connection, {}, int, is_postgres=True, chunk=100)

    monkeypatch.setattr(compiled, "_next_turn", counted)
    assert await database.run(work, write=False) == list(range(1, 251))
    assert turns == 3


async def test_a_statement_and_its_commit_go_together(database: Database) -> None:
    """``rows_and_commit`` commits in the same round trip: another connection sees the row
    while the unit of work is still running, and what ``Database.run`` commits after it is
    no error; a failing statement commits nothing."""
    if not database.is_postgres:
        pytest.skip("the psycopg path runs on PostgreSQL only")
    insert_returning = Compiled(insert(RESOURCES).returning(RESOURCES.c.resource_id))
    seen: list[int] = []

    async def count(connection: AsyncConnection) -> int:
        query = select(text("count(*)")).select_from(RESOURCES)
        return int((await connection.execute(query)).scalar_one())

    async def work(connection: AsyncConnection) -> str:
        first = {**row("/accesscontrollists/first"), "properties": Json({})}
        rows = await insert_returning.rows_and_commit(connection, first)
        seen.append(await database.run(count, write=False))
        return str(rows[0][0])

    assert await database.run(work) == "first"
    assert seen == [1]

    async def failing(connection: AsyncConnection) -> None:
        again = {**row("/accesscontrollists/first"), "properties": Json({})}
        await insert_returning.rows_and_commit(connection, again)

    with pytest.raises(IntegrityError):
        await database.run(failing)
    assert await database.run(count, write=False) == 1


async def test_statements_sent_first_go_with_the_commit_or_fail_it(database: Database) -> None:
    """``rows_and_commit``'s ``first`` statements run ahead of it in the same round trip:
    committed with it, and one that fails commits nothing, the statement's row included."""
    if not database.is_postgres:
        pytest.skip("the psycopg path runs on PostgreSQL only")
    insert_returning = Compiled(insert(RESOURCES).returning(RESOURCES.c.resource_id))

    def bound(key: str) -> compiled.Bound:
        return compiled.Bound(INSERT_ROW, {**row(key), "properties": Json({})})

    async def keys(connection: AsyncConnection) -> list[str]:
        rows = await connection.execute(select(RESOURCES.c.path_key).order_by("path_key"))
        return list(rows.scalars())

    async def work(connection: AsyncConnection) -> str:
        last = {**row("/accesscontrollists/c"), "properties": Json({})}
        first = [bound("/accesscontrollists/a"), bound("/accesscontrollists/b")]
        rows = await insert_returning.rows_and_commit(connection, last, first)
        return str(rows[0][0])

    assert await database.run(work) == "c"
    committed = ["/accesscontrollists/a", "/accesscontrollists/b", "/accesscontrollists/c"]
    assert await database.run(keys, write=False) == committed

    async def failing(connection: AsyncConnection) -> None:
        last = {**row("/accesscontrollists/d"), "properties": Json({})}
        await insert_returning.rows_and_commit(connection, last, [bound("/accesscontrollists/a")])

    with pytest.raises(IntegrityError):
        await database.run(failing)
    assert await database.run(keys, write=False) == committed
