"""A big aggregate's change takes the heavy path: the writer builds and encodes its change-log
document on the heavy-work thread, the follower decodes and prepares it there. A later write
of it records only what it changed (a patch), however big the aggregate. What the hosts are
sent is still what a brand-new replica computes from the stored documents."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.southbound.follower import HEAVY_DOCUMENT
from controller.store.changes import ChangeLog
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule, ip_configuration, nic, ref
from tests.support.nbi import delete, put
from tests.support.southbound import (
    RED_DB,
    WEB_ACL,
    Fabric,
    InProcessController,
    eventually,
    reference_policy,
    revision_of,
)

RULES = 600  # well over the heavy-work thresholds (HEAVY_ROWS rows, HEAVY_DOCUMENT chars)


async def last_change_length(database: Database) -> int:
    """How many characters of JSON the last change's document has."""
    revision = await revision_of(database)

    async def read(connection: AsyncConnection) -> int:
        log = ChangeLog(connection, is_postgres=database.is_postgres)
        rows = await log.since(revision - 1, limit=1)
        return len(rows[0].document_text or "")

    return await database.run(read, write=False)


async def as_a_fresh_replica_computes(
    controller: InProcessController, database: Database, fabric: Fabric
) -> dict[str, Any]:
    """Once the controller has compiled the last change, each host's snapshot, which must be
    what a brand-new replica computes from the stored documents."""
    revision = await revision_of(database)
    await eventually(lambda: controller.southbound.compiler.revision >= revision)
    _, reference = await reference_policy(database)
    compiler = controller.southbound.compiler
    snapshots = {server: compiler.snapshot(server) for server in fabric.servers.values()}
    assert snapshots == {server: reference(server) for server in snapshots}
    return snapshots


async def test_a_big_acl_reaches_the_hosts_as_a_fresh_replica_computes_it(
    controller: InProcessController, database: Database, fabric: Fabric
) -> None:
    rules = [
        acl_rule(f"r{i:03d}", 100 + i, destinationPortRange=str(1000 + i)) for i in range(RULES)
    ]
    await put(controller.http, WEB_ACL, acl(*rules))
    # The change really was big: its document went the heavy way on both sides.
    assert await last_change_length(database) >= HEAVY_DOCUMENT
    # One rule less (a child deleted), one more at its own URI, then one changed and the new
    # one dropped by a PUT of the whole list: each recorded as what it changed, the
    # aggregate's top-level row and at most one rule.
    await delete(controller.http, f"{WEB_ACL}/aclRules/r007")
    assert await last_change_length(database) < 1_000
    await put(controller.http, f"{WEB_ACL}/aclRules/extra", acl_rule("extra", 5000))
    assert await last_change_length(database) < 1_000
    rules[9] = acl_rule("r009", 109, destinationPortRange="9999")
    await put(controller.http, WEB_ACL, acl(*(r for r in rules if r["resourceId"] != "r007")))
    assert await last_change_length(database) < 2_000
    snapshots = await as_a_fresh_replica_computes(controller, database, fabric)
    # The last change reached the hosts that use the ACL.
    assert any("9999" in orjson.dumps(snapshot).decode() for snapshot in snapshots.values())


ENDPOINTS = 200


async def test_a_container_hosts_endpoint_costs_one_endpoint(
    controller: InProcessController, database: Database, fabric: Fabric
) -> None:
    """One ipConfiguration added, rewritten or deleted at its own URI, on a NIC of 200, is
    written alone and recorded as the NIC's row and that ipConfiguration's; the hosts still
    get what a fresh replica computes."""
    nic_path = "/networkInterfaces/containers"
    configs = [ip_configuration(f"c{i:03d}", RED_DB) for i in range(ENDPOINTS)]
    body = nic(*configs, server=ref("/servers/hostA"), privateMacAddress="00155D000A99")
    await put(controller.http, nic_path, body)
    whole = await last_change_length(database)
    assert whole > 50_000
    config_path = f"{nic_path}/ipConfigurations"
    await put(controller.http, f"{config_path}/extra", ip_configuration("extra", RED_DB))
    assert await last_change_length(database) < 2_000
    await put(
        controller.http, f"{config_path}/c010", ip_configuration("c010", RED_DB, "10.1.1.250")
    )
    assert await last_change_length(database) < 2_000
    await delete(controller.http, f"{config_path}/c020")
    assert await last_change_length(database) < 1_000
    snapshots = await as_a_fresh_replica_computes(controller, database, fabric)
    assert any("10.1.1.250" in orjson.dumps(snapshot).decode() for snapshot in snapshots.values())
