"""Addresses of ipConfigurations in logical (VLAN) subnets: Dynamic ones come from the
subnet's ipPools only, whose usage counts them; Static ones anywhere in the subnet but its
network, broadcast and gateway addresses."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import (
    ip_configuration,
    ip_pool,
    logical_network,
    logical_subnet,
    mac_pool,
    nic,
)
from tests.support.nbi import (
    Json,
    assert_put_rejected,
    child,
    delete,
    get,
    props,
    put,
)

VLAN = "/logicalNetworks/Tenant_VLAN"
VLAN_SUBNET = f"{VLAN}/subnets/VLAN10"  # 10.0.10.0/24, gateway .1, pools .10-.12 and .20-.21
VLAN_POOL = f"{VLAN_SUBNET}/ipPools/Low"
NIC = "/networkInterfaces/WebVM1_Nic1"


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, with a macPool for the NICs."""
    await put(client, "/macPools/Default", mac_pool("001DD8B71C00", "001DD8B71FFF"), status=201)
    return client


async def create_vlan(client: httpx.AsyncClient) -> None:
    subnet = logical_subnet(
        "VLAN10",
        "10.0.10.0/24",
        ip_pool("Low", "10.0.10.10", "10.0.10.12"),
        ip_pool("High", "10.0.10.20", "10.0.10.21"),
        vlanID="10",
        defaultGateways=["10.0.10.1"],
    )
    await put(client, VLAN, logical_network(subnet), status=201)


def address(resource: Json, config_id: str | None = None) -> str:
    """The privateIPAddress of an ipConfiguration, or of ``config_id`` inside a NIC."""
    config = resource if config_id is None else child(resource, "ipConfigurations", config_id)
    found: str = props(config)["privateIPAddress"]
    return found


def used(pool: Json) -> int:
    count: int = props(pool)["usage"]["numberofIPAddressesAllocated"]
    return count


async def put_nic(
    client: httpx.AsyncClient, name: str, *configs: Json, **properties: object
) -> Json:
    return await put(client, f"/networkInterfaces/{name}", nic(*configs, **properties))


# -- logical subnets and their ipPools ------------------------------------------------------


async def test_dynamic_addresses_of_a_logical_subnet_come_from_its_pools(
    fabric: httpx.AsyncClient,
) -> None:
    await create_vlan(fabric)
    # A static address outside the pools is allowed and counts in no pool.
    await put_nic(fabric, "static", ip_configuration("ip", VLAN_SUBNET, "10.0.10.200"))
    got = []
    for i in range(5):
        created = await put_nic(fabric, f"n{i}", ip_configuration("ip", VLAN_SUBNET))
        got.append(address(created, "ip"))
    assert got == ["10.0.10.10", "10.0.10.11", "10.0.10.12", "10.0.10.20", "10.0.10.21"]
    subnet = await get(fabric, VLAN_SUBNET)
    assert [used(p) for p in props(subnet)["ipPools"]] == [3, 2]
    assert len(props(subnet)["ipConfigurations"]) == 6

    await assert_put_rejected(
        fabric,
        NIC,
        nic(ip_configuration("ip", VLAN_SUBNET)),
        code="IpAddressExhausted",
        status=409,
        target="ipConfigurations/ip/properties/subnet",
        watch=(VLAN,),
    )
    # A freed pool address is found again once the pools are full.
    await delete(fabric, "/networkInterfaces/n1")
    assert used(await get(fabric, VLAN_POOL)) == 2
    again = await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", VLAN_SUBNET))
    assert address(again, "ip") == "10.0.10.11"
    assert used(await get(fabric, VLAN_POOL)) == 3


async def test_static_addresses_of_a_logical_subnet(fabric: httpx.AsyncClient) -> None:
    await create_vlan(fabric)
    in_pool = await put_nic(fabric, "a", ip_configuration("ip", VLAN_SUBNET, "10.0.10.11"))
    assert address(in_pool, "ip") == "10.0.10.11"
    assert used(await get(fabric, VLAN_POOL)) == 1
    dynamic = await put_nic(fabric, "b", ip_configuration("ip", VLAN_SUBNET))
    assert address(dynamic, "ip") == "10.0.10.12"
    for reserved in ("10.0.10.0", "10.0.10.1", "10.0.10.255", "10.0.11.5"):
        await assert_put_rejected(
            fabric,
            NIC,
            nic(ip_configuration("ip", VLAN_SUBNET, reserved)),
            target="ipConfigurations/ip/properties/privateIPAddress",
            watch=(VLAN,),
        )
    await assert_put_rejected(
        fabric,
        NIC,
        nic(ip_configuration("ip", VLAN_SUBNET, "10.0.10.11")),
        code="IpAddressInUse",
        status=409,
        target="ipConfigurations/ip/properties/privateIPAddress",
        watch=(VLAN,),
    )


async def test_logical_subnet_without_pools_has_no_dynamic_addresses(
    fabric: httpx.AsyncClient,
) -> None:
    await put(fabric, VLAN, logical_network(logical_subnet("VLAN10", "10.0.10.0/24")), status=201)
    await assert_put_rejected(
        fabric,
        NIC,
        nic(ip_configuration("ip", VLAN_SUBNET)),
        code="IpAddressExhausted",
        status=409,
        target="ipConfigurations/ip/properties/subnet",
        watch=(VLAN,),
    )
    created = await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", VLAN_SUBNET, "10.0.10.1"))
    assert address(created, "ip") == "10.0.10.1"


async def test_logical_subnet_cannot_move_onto_or_away_from_a_held_address(
    fabric: httpx.AsyncClient,
) -> None:
    await create_vlan(fabric)
    await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", VLAN_SUBNET, "10.0.10.50"))
    body = logical_subnet("VLAN10", "10.0.10.0/24", vlanID=10, defaultGateways=["10.0.10.50"])
    await assert_put_rejected(
        fabric,
        VLAN_SUBNET,
        body,
        code="ResourceInUse",
        status=409,
        target="VLAN10/properties/defaultGateways",
        watch=(NIC,),
    )
    # Nor may the subnet move away from it.
    moved = logical_subnet("VLAN10", "10.0.11.0/24", vlanID=10, ipPools=[])
    await assert_put_rejected(
        fabric,
        VLAN_SUBNET,
        moved,
        code="ResourceInUse",
        status=409,
        target="VLAN10/properties/addressPrefix",
        watch=(NIC,),
    )
