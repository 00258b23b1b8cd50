"""A big aggregate's change takes the heavy path: the writer builds and encodes its change-log
document on the heavy-work thread, the follower decodes and prepares it there. A later write
of it records only what it changed (a patch), however big the aggregate. What the hosts are
sent is still what a brand-new replica computes from the stored documents."""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.southbound.follower import HEAVY_DOCUMENT
from controller.store.changes import ChangeLog
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule, ip_configuration, nic, ref
from tests.support.nbi import delete, put
from tests.support.slb import (
    PUBLIC_ADDRESSES,
    PUBLIC_VIP,
    SLB_HOSTS,
    backend_pool,
    balanced_deployment,
    frontend,
    lb_rule,
    outbound_nat_rule,
    probe,
)
from tests.support.southbound import (
    RED_DB,
    WEB_ACL,
    Fabric,
    InProcessController,
    as_a_fresh_replica_computes,
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
    snapshots = await as_a_fresh_replica_computes(controller, database, fabric.servers.values())
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
    snapshots = await as_a_fresh_replica_computes(controller, database, fabric.servers.values())
    assert any("10.1.1.250" in orjson.dumps(snapshot).decode() for snapshot in snapshots.values())


async def test_a_load_balancers_children_at_their_uris_reach_the_hosts(
    controller: InProcessController, database: Database
) -> None:
    """Each child of a load balancer written or deleted at its own URI is written alone and
    recorded as the load balancer's row and that child's; the hosts get what a fresh replica
    computes: a frontend's new VIP, a rule on a frontend added and taken away, an outbound NAT
    rule, a probe rewritten."""
    ids = await balanced_deployment(controller.http)
    lb = "/loadBalancers/LB1"
    fe1, fe2 = f"{lb}/frontendIPConfigurations/FE1", f"{lb}/frontendIPConfigurations/FE2"
    be1, r2 = f"{lb}/backendAddressPools/BE1", f"{lb}/loadBalancingRules/R2"
    writes = [
        (fe1, frontend(None, PUBLIC_VIP, PUBLIC_ADDRESSES[6])),
        (fe2, frontend(None, PUBLIC_VIP)),
        (r2, lb_rule(None, (fe2,), be1, frontend_port=443)),
        (f"{lb}/outboundNatRules/OUT1", outbound_nat_rule(None, (fe1,), be1)),
        (f"{lb}/probes/P1", probe(None, "Tcp", 8080, None)),
        (f"{lb}/backendAddressPools/BE2", backend_pool(None)),
    ]
    for path, body in writes:
        await put(controller.http, path, body)
        assert await last_change_length(database) < 2_000, path
    hosts = [ids[host] for host in SLB_HOSTS]
    added = await as_a_fresh_replica_computes(controller, database, hosts)
    assert "443" in orjson.dumps(added).decode()
    for path in (r2, fe2):
        await delete(controller.http, path)
        assert await last_change_length(database) < 1_000, path
    snapshots = orjson.dumps(await as_a_fresh_replica_computes(controller, database, hosts))
    assert PUBLIC_ADDRESSES[6] in snapshots.decode()
    assert "lbOutbound/" in snapshots.decode()
    assert "443" not in snapshots.decode()
