"""loadBalancerManager/config: the singleton naming the VIP pools, its defaults, its references
and what it refuses."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import ref
from tests.support.nbi import (
    assert_delete_rejected,
    assert_error,
    assert_put_rejected,
    get,
    props,
    put,
    refs,
    url,
)
from tests.support.slb import (
    MANAGER,
    PRIVATE_POOL,
    PUBLIC_POOL,
    PUBLIC_VIP,
    frontend,
    load_balancer,
    manager,
    public_ip,
    slb_fabric,
)


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await slb_fabric(client, with_manager=False)
    return client


async def test_the_manager_exists_from_the_start_with_its_defaults(
    client: httpx.AsyncClient,
) -> None:
    config = await get(client, MANAGER)
    assert config["resourceRef"] == MANAGER
    assert props(config) == {
        "provisioningState": "Succeeded",
        "vipIpPools": [],
        "outboundNatIPExemptions": [],
        "isOutboundNatEnabled": True,
        "vipPoolsInUse": [],
    }
    assert (await client.get(url("/LoadBalancerManager/Config"))).status_code == 200


async def test_the_manager_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete(url(MANAGER)), 405, "MethodNotAllowed")


async def test_vip_pools_are_references_in_any_casing(fabric: httpx.AsyncClient) -> None:
    body = manager(
        "/LogicalNetworks/publicvip/Subnets/PUBLICVIP_0/IpPools/publicvip_pool",
        PRIVATE_POOL,
        outboundNatIPExemptions=["10.0.0.0/8", "192.168.1.0/24"],
        isOutboundNatEnabled="False",
    )
    config = await put(fabric, MANAGER, body, status=200)
    assert props(config)["loadBalancerManagerIPAddress"] == "10.10.56.100"
    assert refs(props(config)["vipIpPools"]) == [PUBLIC_POOL, PRIVATE_POOL]
    assert props(config)["outboundNatIPExemptions"] == ["10.0.0.0/8", "192.168.1.0/24"]
    assert props(config)["isOutboundNatEnabled"] is False
    assert props(config)["vipPoolsInUse"] == []


@pytest.mark.parametrize(
    ("properties", "target", "code"),
    [
        (
            {"vipIpPools": [ref("/logicalNetworks/PublicVIP/subnets/PublicVIP_0/ipPools/nope")]},
            "properties/vipIpPools",
            "InvalidReference",
        ),
        ({"vipIpPools": [ref(PUBLIC_VIP)]}, "properties/vipIpPools", "InvalidReference"),
        (
            {"vipIpPools": [ref(PUBLIC_POOL), ref(PUBLIC_POOL.upper())]},
            "properties/vipIpPools",
            "InvalidInput",
        ),
        (
            {"outboundNatIPExemptions": ["10.0.0.1/8"]},
            "properties.outboundNatIPExemptions[0]",
            "InvalidInput",
        ),
        (
            {"loadBalancerManagerIPAddress": "10.0.0.300"},
            "properties.loadBalancerManagerIPAddress",
            "InvalidInput",
        ),
        ({"isOutboundNatEnabled": 1}, "properties.isOutboundNatEnabled", "InvalidInput"),
    ],
)
async def test_bad_settings_are_refused_naming_the_member(
    fabric: httpx.AsyncClient, properties: dict[str, object], target: str, code: str
) -> None:
    await assert_put_rejected(fabric, MANAGER, {"properties": properties}, target=target, code=code)


async def test_a_vip_pool_cannot_be_deleted_while_the_manager_names_it(
    fabric: httpx.AsyncClient,
) -> None:
    await put(fabric, MANAGER, manager(PUBLIC_POOL))
    error = await assert_delete_rejected(fabric, PUBLIC_POOL, target=PUBLIC_POOL)
    assert MANAGER in error["message"]


async def test_vip_pools_in_use_lists_the_pools_holding_vips(fabric: httpx.AsyncClient) -> None:
    await put(fabric, MANAGER, manager(PUBLIC_POOL, PRIVATE_POOL))
    await put(fabric, "/publicIPAddresses/PIP1", public_ip())
    config = await get(fabric, MANAGER)
    assert refs(props(config)["vipPoolsInUse"]) == [PUBLIC_POOL]
    # What a client echoes back is ignored.
    echoed = await put(fabric, MANAGER, config, status=200)
    assert refs(props(echoed)["vipPoolsInUse"]) == [PUBLIC_POOL]
    await put(
        fabric,
        "/loadBalancers/ILB",
        load_balancer(
            frontends=(frontend("FE1", "/logicalNetworks/PrivateVIP/subnets/PrivateVIP_0"),)
        ),
    )
    assert refs(props(await get(fabric, MANAGER))["vipPoolsInUse"]) == [PUBLIC_POOL, PRIVATE_POOL]


async def test_a_pool_holding_vips_stays_a_vip_pool(fabric: httpx.AsyncClient) -> None:
    await put(fabric, MANAGER, manager(PUBLIC_POOL, PRIVATE_POOL))
    await put(fabric, "/publicIPAddresses/PIP1", public_ip())
    error = await assert_put_rejected(
        fabric,
        MANAGER,
        manager(PRIVATE_POOL),
        target="properties/vipIpPools",
        code="ResourceInUse",
        status=409,
    )
    assert "/publicIPAddresses/PIP1" in error["message"]
    # Once no VIP is held there, the pool can go.
    await fabric.delete(url("/publicIPAddresses/PIP1"))
    config = await put(fabric, MANAGER, manager(PRIVATE_POOL), status=200)
    assert refs(props(config)["vipIpPools"]) == [PRIVATE_POOL]
