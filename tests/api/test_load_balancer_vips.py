"""The VIPs of load balancer frontends: Static and Dynamic addresses of the VIP pools of a
logical subnet, or of a virtual subnet (internal load balancer), in the same numbering as NIC
addresses; released on delete or change; a clear 409 when none is left."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import (
    ip_configuration,
    ip_pool,
    logical_network,
    logical_subnet,
    nic,
    ref,
)
from tests.support.nbi import (
    assert_put_rejected,
    child,
    delete,
    get,
    props,
    put,
)
from tests.support.slb import (
    PRIVATE_ADDRESSES,
    PRIVATE_VIP,
    PUBLIC_ADDRESSES,
    PUBLIC_POOL,
    PUBLIC_VIP,
    WEB,
    frontend,
    load_balancer,
    public_ip,
    slb_fabric,
)

LB = "/loadBalancers/LB1"
Json = dict[str, object]


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await slb_fabric(client)
    return client


def frontends(*bodies: Json) -> Json:
    return load_balancer(frontends=bodies)  # type: ignore[arg-type]


def vips(resource: dict[str, object]) -> dict[str, str | None]:
    """Each frontend's privateIPAddress."""
    found = props(resource)["frontendIPConfigurations"]  # type: ignore[arg-type]
    return {f["resourceId"]: f["properties"].get("privateIPAddress") for f in found}


async def test_static_and_dynamic_frontends_share_the_vip_pools(
    fabric: httpx.AsyncClient,
) -> None:
    body = frontends(
        frontend("Public", PUBLIC_VIP, "41.40.40.8"),
        frontend("Next", PUBLIC_VIP),
        frontend("Private", PRIVATE_VIP),
    )
    created = await put(fabric, LB, body, status=201)
    assert vips(created) == {"Public": "41.40.40.8", "Next": "41.40.40.9", "Private": "20.20.20.8"}
    fe = props(child(created, "frontendIPConfigurations", "Public"))
    assert fe["privateIPAllocationMethod"] == "Static"
    # The pool's usage counts VIPs like any other address.
    pool = await get(fabric, PUBLIC_POOL)
    assert props(pool)["usage"]["numberofIPAddressesAllocated"] == 2
    # Public IPs draw from the same numbering.
    assert props(await put(fabric, "/publicIPAddresses/PIP1", public_ip()))["ipAddress"] == (
        "41.40.40.10"
    )


async def test_a_static_vip_lies_in_a_vip_pool_of_its_subnet(fabric: httpx.AsyncClient) -> None:
    # 41.40.40.20 is in the subnet but in no VIP pool; .1 is its gateway.
    for address in ("41.40.40.20", "41.40.40.1", "20.20.20.8"):
        await assert_put_rejected(
            fabric,
            LB,
            frontends(frontend("FE1", PUBLIC_VIP, address)),
            target="frontendIPConfigurations/FE1/properties/privateIPAddress",
        )


async def test_a_held_vip_is_refused_naming_its_holder(fabric: httpx.AsyncClient) -> None:
    await put(fabric, "/publicIPAddresses/PIP1", public_ip("41.40.40.12"))
    error = await assert_put_rejected(
        fabric,
        LB,
        frontends(frontend("FE1", PUBLIC_VIP, "41.40.40.12")),
        target="frontendIPConfigurations/FE1/properties/privateIPAddress",
        code="IpAddressInUse",
        status=409,
    )
    assert "/publicIPAddresses/PIP1" in error["message"]
    await assert_put_rejected(
        fabric,
        LB,
        frontends(
            frontend("FE1", PUBLIC_VIP, "41.40.40.13"), frontend("FE2", PUBLIC_VIP, "41.40.40.13")
        ),
        target="frontendIPConfigurations/FE2/properties/privateIPAddress",
    )


async def test_a_subnet_without_vip_pools_is_no_frontend_subnet(
    fabric: httpx.AsyncClient,
) -> None:
    subnet = logical_subnet(
        "Mgmt_0", "192.168.10.0/24", ip_pool("pool", "192.168.10.10", "192.168.10.20")
    )
    await put(fabric, "/logicalNetworks/Mgmt", logical_network(subnet))
    error = await assert_put_rejected(
        fabric,
        LB,
        frontends(frontend("FE1", "/logicalNetworks/Mgmt/subnets/Mgmt_0")),
        target="frontendIPConfigurations/FE1/properties/subnet",
    )
    assert "vipIpPools" in error["message"]


async def test_the_vip_pool_runs_out_with_a_clear_409(fabric: httpx.AsyncClient) -> None:
    body = frontends(*(frontend(f"FE{i}", PRIVATE_VIP) for i in range(len(PRIVATE_ADDRESSES))))
    created = await put(fabric, LB, body, status=201)
    assert sorted(vips(created).values()) == sorted(PRIVATE_ADDRESSES)
    error = await assert_put_rejected(
        fabric,
        "/loadBalancers/LB2",
        frontends(frontend("FE1", PRIVATE_VIP)),
        target="frontendIPConfigurations/FE1/properties/subnet",
        code="IpAddressExhausted",
        status=409,
    )
    assert "PrivateVIP_0" in error["message"]
    # Deleting the load balancer frees them all at once.
    await delete(fabric, LB)
    again = await put(fabric, "/loadBalancers/LB2", frontends(frontend("FE1", PRIVATE_VIP)))
    assert vips(again) == {"FE1": PRIVATE_ADDRESSES[0]}


async def test_an_internal_load_balancer_takes_addresses_of_its_virtual_subnet(
    fabric: httpx.AsyncClient,
) -> None:
    body = frontends(frontend("Dyn", WEB), frontend("Fixed", WEB, "24.30.1.50"))
    created = await put(fabric, LB, body, status=201)
    assert vips(created) == {"Dyn": "24.30.1.2", "Fixed": "24.30.1.50"}
    # NICs and frontends of one subnet compete for the same addresses.
    taken = nic(ip_configuration("ip1", WEB, "24.30.1.50"))
    error = await assert_put_rejected(
        fabric,
        "/networkInterfaces/VM1",
        taken,
        target="ipConfigurations/ip1/properties/privateIPAddress",
        code="IpAddressInUse",
        status=409,
    )
    assert f"{LB}/frontendIPConfigurations/Fixed" in error["message"]
    dynamic = await put(fabric, "/networkInterfaces/VM1", nic(ip_configuration("ip1", WEB)))
    assert props(child(dynamic, "ipConfigurations", "ip1"))["privateIPAddress"] == "24.30.1.51"
    # The subnet's gateway is no VIP.
    await assert_put_rejected(
        fabric,
        "/loadBalancers/LB2",
        frontends(frontend("FE1", WEB, "24.30.1.1")),
        target="frontendIPConfigurations/FE1/properties/privateIPAddress",
    )


async def test_a_frontend_that_changes_gives_its_vip_back(fabric: httpx.AsyncClient) -> None:
    await put(fabric, LB, frontends(frontend("FE1", PUBLIC_VIP, "41.40.40.9")))
    moved = await put(fabric, LB, frontends(frontend("FE1", PRIVATE_VIP)), status=200)
    assert vips(moved) == {"FE1": "20.20.20.8"}
    pip = await put(fabric, "/publicIPAddresses/PIP1", public_ip("41.40.40.9"), status=201)
    assert props(pip)["ipAddress"] == "41.40.40.9"
    # A frontend that takes a public IP holds no address of its own.
    switched = frontends(frontend("FE1", None, publicIPAddress=ref("/publicIPAddresses/PIP1")))
    assert vips(await put(fabric, LB, switched, status=200)) == {"FE1": None}
    other = await put(fabric, "/loadBalancers/LB2", frontends(frontend("FE1", PRIVATE_VIP)))
    assert vips(other) == {"FE1": "20.20.20.8"}


async def test_two_frontends_can_swap_their_vips_in_one_put(fabric: httpx.AsyncClient) -> None:
    body = frontends(
        frontend("A", PUBLIC_VIP, "41.40.40.8"), frontend("B", PUBLIC_VIP, "41.40.40.9")
    )
    await put(fabric, LB, body)
    swapped = frontends(
        frontend("A", PUBLIC_VIP, "41.40.40.9"), frontend("B", PUBLIC_VIP, "41.40.40.8")
    )
    assert vips(await put(fabric, LB, swapped, status=200)) == {
        "A": "41.40.40.9",
        "B": "41.40.40.8",
    }


async def test_dynamic_vips_are_kept_over_re_puts(fabric: httpx.AsyncClient) -> None:
    created = await put(fabric, LB, frontends(frontend("FE1", PUBLIC_VIP)))
    await put(fabric, "/publicIPAddresses/PIP1", public_ip())
    assert vips(await put(fabric, LB, frontends(frontend("FE1", PUBLIC_VIP)))) == vips(created)
    assert vips(await put(fabric, LB, created)) == {"FE1": PUBLIC_ADDRESSES[0]}
