"""diagnostics/slbState: NC's asynchronous pattern (PUT answers an operationId, GET
slbStateResults/{id} the result), the state per VIP with its rules and DIPs, their hosts and
health, results kept in the database for any replica, and their expiry."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.app import create_app
from controller.errors import NotFound
from controller.service.slb_state import SlbDiagnostics
from controller.settings import Settings
from controller.store.database import Database
from controller.store.diagnostics import RESULTS
from tests.support.bodies import connection, credential, ip_configuration, nic, ref, server
from tests.support.nbi import PS_HEADERS, assert_error, get, put, serve, url
from tests.support.slb import (
    WEB,
    frontend,
    inbound_nat_rule,
    outbound_nat_rule,
    public_ip,
    slb_fabric,
    web_lb,
)

Json = dict[str, object]
LB = "/loadBalancers/LB1"
FE = f"{LB}/frontendIPConfigurations/FE1"
BE = f"{LB}/backendAddressPools/BE1"
P1 = f"{LB}/probes/P1"


async def take_state(client: httpx.AsyncClient, body: object = None) -> Json:
    """PUT slbState as the SDN diagnostics scripts do, then GET its result."""
    response = await client.put(
        url("/diagnostics/slbstate"), json={} if body is None else body, headers=PS_HEADERS
    )
    assert response.status_code == 201, response.text
    operation = response.json()
    operation_id = operation["properties"]["operationId"]
    uuid.UUID(operation_id)
    result_ref = f"/diagnostics/slbStateResults/{operation_id}"
    assert operation["properties"]["slbStateResult"] == ref(result_ref)
    assert operation["properties"]["provisioningState"] == "Succeeded"
    assert response.headers["location"] == f"/networking/v1{result_ref}"
    result = await get(client, result_ref)
    assert result["resourceRef"] == result_ref
    assert result["properties"]["provisioningState"] == "Succeeded"
    assert result["properties"]["status"] == "Succeeded"
    return result


def vips(result: Json) -> list[Json]:
    found = result["properties"]["result"]  # type: ignore[index]
    assert isinstance(found, list)
    return found


async def build_slb(client: httpx.AsyncClient) -> dict[str, str]:
    """LB1 (FE1 at 41.40.40.8; rule R1 TCP 80 probed by P1; NAT rule RDP 3389 to VM3; outbound
    NAT for BE1), VM1 and VM2 in BE1 on hosts h1 and h2, VM3 on h2, public IP PIP1
    (41.40.40.9) on VM4. Returns the instanceIds of the ipConfigurations and of P1."""
    await slb_fabric(client)
    await put(client, "/credentials/cert", credential("X509Certificate", value="AB12"))
    for host in ("h1", "h2"):
        await put(client, f"/servers/{host}", server(connection("/credentials/cert", address=host)))
    body = web_lb()
    body["properties"]["inboundNatRules"] = [inbound_nat_rule("RDP", (FE,), 3389)]
    body["properties"]["outboundNatRules"] = [outbound_nat_rule("OUT", (FE,), BE)]
    created = await put(client, LB, body)
    await put(client, "/publicIPAddresses/PIP1", public_ip())
    members = {
        "VM1": ("h1", {"loadBalancerBackendAddressPools": [ref(BE)]}),
        "VM2": ("h2", {"loadBalancerBackendAddressPools": [ref(BE)]}),
        "VM3": ("h2", {"loadBalancerInboundNatRules": [ref(f"{LB}/inboundNatRules/RDP")]}),
        "VM4": ("h1", {"publicIPAddress": ref("/publicIPAddresses/PIP1")}),
    }
    ids = {"P1": created["properties"]["probes"][0]["instanceId"]}
    for name, (host, members_of) in members.items():
        body = nic(ip_configuration("ip1", WEB, **members_of), server=ref(f"/servers/{host}"))
        made = await put(client, f"/networkInterfaces/{name}", body)
        ids[name] = made["properties"]["ipConfigurations"][0]["instanceId"]
    return ids


def dip(name: str, address: str, host: str, health: str, *probes: tuple[str, str]) -> Json:
    return {
        "ipConfiguration": ref(f"/networkInterfaces/{name}/ipConfigurations/ip1"),
        "privateIPAddress": address,
        "server": ref(f"/servers/{host}"),
        "health": health,
        "probes": [{"probe": ref(p), "state": state} for p, state in probes],
    }


async def test_the_state_lists_every_vip_with_its_rules_and_dips(
    client: httpx.AsyncClient,
) -> None:
    await build_slb(client)
    result = await take_state(client)
    assert vips(result) == [
        {
            "vip": "41.40.40.8",
            "loadBalancer": ref(LB),
            "frontendIPConfiguration": ref(FE),
            "loadBalancingRules": [
                {
                    "resourceRef": f"{LB}/loadBalancingRules/R1",
                    "protocol": "Tcp",
                    "frontendPort": 80,
                    "backendPort": 80,
                    "backendAddressPool": ref(BE),
                    "probe": ref(P1),
                }
            ],
            "inboundNatRules": [
                {
                    "resourceRef": f"{LB}/inboundNatRules/RDP",
                    "protocol": "Tcp",
                    "frontendPort": 3389,
                    "backendPort": 3389,
                    "backendIPConfiguration": ref("/networkInterfaces/VM3/ipConfigurations/ip1"),
                }
            ],
            "outboundNatRules": [
                {
                    "resourceRef": f"{LB}/outboundNatRules/OUT",
                    "protocol": "All",
                    "backendAddressPool": ref(BE),
                }
            ],
            # No host has reported yet: probed DIPs are Unknown.
            "dips": [
                dip("VM1", "24.30.1.2", "h1", "Unknown", (P1, "Unknown")),
                dip("VM2", "24.30.1.3", "h2", "Unknown", (P1, "Unknown")),
                dip("VM3", "24.30.1.4", "h2", "NotProbed"),
            ],
        },
        {
            "vip": "41.40.40.9",
            "publicIPAddress": ref("/publicIPAddresses/PIP1"),
            "loadBalancingRules": [],
            "inboundNatRules": [],
            "outboundNatRules": [],
            "dips": [dip("VM4", "24.30.1.5", "h1", "NotProbed")],
        },
    ]
    # The same entries in NC's output layout, which SDN diagnostics reads per VIP.
    output = result["properties"]["output"]  # type: ignore[index]
    tenant = next(g for g in output["datagroups"] if g["name"] == "Tenant")
    units = {u["name"]: u["value"] for s in tenant["dataSections"] for u in s["dataunits"]}
    assert units == {entry["vip"]: entry for entry in vips(result)}


async def test_health_is_what_the_hosts_reported(settings: Settings, database: Database) -> None:
    reported: dict[str, Mapping[str, str]] = {}

    async def health() -> Mapping[str, Mapping[str, str]]:
        return reported

    async with serve(create_app(settings, database=database, dip_health=health)) as client:
        ids = await build_slb(client)
        reported[ids["VM1"]] = {ids["P1"]: "Up"}
        reported[ids["VM2"]] = {ids["P1"]: "Down"}
        dips = vips(await take_state(client))[0]["dips"]
        assert [(d["health"], d["probes"][0]["state"]) for d in dips[:2]] == [
            ("Up", "Up"),
            ("Down", "Down"),
        ]
        reported[ids["VM2"]] = {ids["P1"]: "Up"}
        dips = vips(await take_state(client))[0]["dips"]
        assert [d["health"] for d in dips] == ["Up", "Up", "NotProbed"]


async def test_any_replica_answers_the_result(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    await slb_fabric(client)
    await put(client, LB, web_lb())
    result = await take_state(client)
    other = Database(database_url)
    try:
        async with serve(create_app(settings, database=other)) as replica:
            assert await get(replica, result["resourceRef"]) == result  # type: ignore[arg-type]
    finally:
        await other.dispose()


async def test_unknown_results_are_404(client: httpx.AsyncClient) -> None:
    for operation_id in (str(uuid.uuid4()), "not-a-guid"):
        response = await client.get(url(f"/diagnostics/slbStateResults/{operation_id}"))
        assert_error(response, 404, "NotFound")


@pytest.mark.parametrize("body", [{"properties": []}, {"Properties": "x"}])
async def test_a_bad_slb_state_request_is_400(client: httpx.AsyncClient, body: Json) -> None:
    response = await client.put(url("/diagnostics/slbState"), json=body, headers=PS_HEADERS)
    assert_error(response, 400, "InvalidInput", "properties")


async def test_an_empty_controller_has_no_vips(client: httpx.AsyncClient) -> None:
    result = await take_state(client, {"properties": {}})
    assert vips(result) == []


async def test_results_expire_and_are_pruned_on_write(database: Database) -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    clock = [now]
    diagnostics = SlbDiagnostics(database, lifetime=timedelta(hours=1), clock=lambda: clock[0])
    first = await diagnostics.run()
    clock[0] = now + timedelta(minutes=59)
    assert (await diagnostics.result(str(first.operation_id))).vips == []
    clock[0] = now + timedelta(minutes=61)
    with pytest.raises(NotFound):
        await diagnostics.result(str(first.operation_id))
    assert await stored_results(database) == 1
    second = await diagnostics.run()
    assert await stored_results(database) == 1
    assert (await diagnostics.result(str(second.operation_id))).operation_id == second.operation_id


async def stored_results(database: Database) -> int:
    async def count(connection: AsyncConnection) -> int:
        return int(
            (await connection.execute(select(func.count()).select_from(RESULTS))).scalar() or 0
        )

    return await database.run(count, write=False)


async def test_a_frontend_on_a_public_ip_shows_the_public_address(
    client: httpx.AsyncClient,
) -> None:
    await slb_fabric(client)
    await put(client, "/publicIPAddresses/PIP1", public_ip("41.40.40.12"))
    body = web_lb()
    body["properties"]["frontendIPConfigurations"] = [
        frontend("FE1", None, publicIPAddress=ref("/publicIPAddresses/PIP1"))
    ]
    await put(client, LB, body)
    (entry,) = vips(await take_state(client))
    assert entry["vip"] == "41.40.40.12"
    assert entry["publicIPAddress"] == ref("/publicIPAddresses/PIP1")
    assert entry["frontendIPConfiguration"] == ref(FE)
    assert entry["dips"] == []
