"""A database upgraded from a version that recorded whole aggregates: until ``sdnc db
finish-upgrade`` says no replica of that version is left, writes are recorded whole (such a
replica would misread a patch as the whole aggregate) and no child is written alone; the
command fills in the sibling keys those replicas left unset, and patches follow."""

from __future__ import annotations

import orjson
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.app import create_app
from controller.resources import REGISTRY
from controller.service.changes import PATCHES_RECHECK, Patches
from controller.service.upgrade import finish_upgrade
from controller.settings import Settings
from controller.store.changes import COUNTER, ChangeLog
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule
from tests.support.nbi import V1, assert_error, put, serve

ACL = f"{V1}/accessControlLists/web"


async def last_document(database: Database) -> dict[str, object]:
    async def read(connection: AsyncConnection) -> dict[str, object]:
        log = ChangeLog(connection, is_postgres=database.is_postgres)
        [row] = await log.since(await log.current() - 1, limit=1)
        document = row.document()
        assert document is not None
        return document

    return await database.run(read, write=False)


async def run_sql(database: Database, statement: object) -> None:
    async def write(connection: AsyncConnection) -> None:
        await connection.execute(statement)  # type: ignore[call-overload]

    await database.run(write)


async def test_writes_are_whole_until_the_upgrade_is_finished(
    settings: Settings, database: Database
) -> None:
    # As migration 0009 leaves a database that replicas had written to.
    await run_sql(database, update(COUNTER).values(patches=False))
    rules = [acl_rule(f"r{i}", 100 + i) for i in range(3)]
    async with serve(create_app(settings, database=database)) as client:
        await put(client, ACL, acl(*rules))
        await put(client, f"{ACL}/aclRules/r9", acl_rule("r9", 109), status=201)
        document = await last_document(database)
        assert "removed" not in document
        assert len(document["rows"]) == 5  # type: ignore[arg-type]
    # What a replica of the earlier version left: rules without their sibling key.
    await run_sql(database, text("UPDATE resources SET sibling_key = NULL"))

    assert await finish_upgrade(database, REGISTRY) == 4
    assert await finish_upgrade(database, REGISTRY) == 0

    async with serve(create_app(settings, database=database)) as client:
        # Checked alone, against the keys filled in: r1 holds 101.
        response = await client.put(f"{ACL}/aclRules/r5", json=acl_rule("r5", 101))
        error = assert_error(response, 400, "InvalidInput")
        assert "'r1'" in error["message"]
        await put(client, f"{ACL}/aclRules/r5", acl_rule("r5", 105), status=201)
        document = await last_document(database)
        assert document["removed"] == []
        rows = document["rows"]
        assert isinstance(rows, list)
        assert [row["ref"] for row in rows] == [
            "/accessControlLists/web",
            f"{ACL[len(V1) :]}/aclRules/r5",
        ]
        stored = orjson.loads((await client.get(ACL)).content)
        assert [r["resourceId"] for r in stored["properties"]["aclRules"]] == [
            "r0",
            "r1",
            "r2",
            "r9",
            "r5",
        ]


async def test_a_replica_learns_that_patches_are_allowed_within_the_recheck(
    database: Database,
) -> None:
    now = [0.0]
    patches = Patches(clock=lambda: now[0])

    async def allowed() -> bool:
        async def read(connection: AsyncConnection) -> bool:
            return await patches.allowed(connection, is_postgres=database.is_postgres)

        return await database.run(read, write=False)

    await run_sql(database, update(COUNTER).values(patches=False))
    assert not await allowed()
    await run_sql(database, update(COUNTER).values(patches=True))
    now[0] = PATCHES_RECHECK - 0.1
    assert not await allowed()  # not asked again yet
    now[0] = PATCHES_RECHECK
    assert await allowed()
    await run_sql(database, update(COUNTER).values(patches=False))
    now[0] = 10 * PATCHES_RECHECK
    assert await allowed()  # once allowed, never asked again
