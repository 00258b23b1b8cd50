"""ipConfigurations in virtual subnets: Static and Dynamic addresses, what is reserved, what
is kept across re-PUTs, what is released, exhaustion."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import ip_configuration, nic, ref
from tests.support.fabrikam import (
    NIC,
    OTHER_WEB,
    POOL,
    TINY,
    VNET,
    WEB,
    address,
    build_fabrikam,
    create_other_vnet,
)
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_put_rejected,
    delete,
    get,
    props,
    put,
    refs,
)


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return await build_fabrikam(client)


async def put_nic(
    client: httpx.AsyncClient, name: str, *configs: Json, **properties: object
) -> Json:
    return await put(client, f"/networkInterfaces/{name}", nic(*configs, **properties))


# -- methods and defaults -----------------------------------------------------------------


async def test_method_defaults_to_static_with_an_address_else_dynamic(
    fabric: httpx.AsyncClient,
) -> None:
    created = await put_nic(
        fabric,
        "WebVM1_Nic1",
        ip_configuration("static", WEB, "24.30.1.100"),
        ip_configuration("dynamic", WEB),
        ip_configuration("lower", WEB, privateIPAllocationMethod="dynamic"),
    )
    methods = {
        c["resourceId"]: props(c)["privateIPAllocationMethod"]
        for c in props(created)["ipConfigurations"]
    }
    assert methods == {"static": "Static", "dynamic": "Dynamic", "lower": "Dynamic"}
    assert address(created, "static") == "24.30.1.100"
    dynamic = {address(created, "dynamic"), address(created, "lower")}
    assert len(dynamic) == 2
    assert dynamic.isdisjoint({"24.30.1.0", "24.30.1.1", "24.30.1.100", "24.30.1.255"})


async def test_dynamic_addresses_skip_network_gateway_and_broadcast_until_exhausted(
    fabric: httpx.AsyncClient,
) -> None:
    got = [
        address(await put_nic(fabric, f"n{i}", ip_configuration("ip", TINY)), "ip")
        for i in range(5)
    ]
    assert got == ["24.30.2.2", "24.30.2.3", "24.30.2.4", "24.30.2.5", "24.30.2.6"]
    refs_in_tiny = refs(props(await get(fabric, TINY))["ipConfigurations"])
    assert refs_in_tiny == [f"/networkInterfaces/n{i}/ipConfigurations/ip" for i in range(5)]

    error = await assert_put_rejected(
        fabric,
        NIC,
        nic(ip_configuration("ip", TINY)),
        code="IpAddressExhausted",
        status=409,
        target="WebVM1_Nic1/ipConfigurations/ip/properties/subnet",
        watch=(TINY, POOL),
    )
    assert "24.30.2.0/29" in error["message"]
    # Nor at the child URI of an existing NIC.
    await put_nic(fabric, "WebVM1_Nic1")
    await assert_put_rejected(
        fabric,
        f"{NIC}/ipConfigurations/ip",
        ip_configuration("ip", TINY),
        code="IpAddressExhausted",
        status=409,
        target="ipConfigurations/ip/properties/subnet",
        watch=(TINY,),
    )
    # One NIC going frees its address for the next.
    await delete(fabric, "/networkInterfaces/n2")
    created = await put(fabric, f"{NIC}/ipConfigurations/ip", ip_configuration("ip", TINY))
    assert address(created) == "24.30.2.4"


@pytest.mark.parametrize(
    ("subnet", "static", "target"),
    [
        pytest.param(
            WEB, "24.30.2.5", "ipConfigurations/ip/properties/privateIPAddress", id="outside"
        ),
        pytest.param(
            WEB, "24.30.1.0", "ipConfigurations/ip/properties/privateIPAddress", id="network"
        ),
        pytest.param(
            WEB, "24.30.1.1", "ipConfigurations/ip/properties/privateIPAddress", id="gateway"
        ),
        pytest.param(
            WEB, "24.30.1.255", "ipConfigurations/ip/properties/privateIPAddress", id="broadcast"
        ),
        pytest.param(
            TINY,
            "24.30.2.7",
            "ipConfigurations/ip/properties/privateIPAddress",
            id="tiny-broadcast",
        ),
        pytest.param(
            WEB, "2001:db8::5", "ipConfigurations/ip/properties/privateIPAddress", id="other-family"
        ),
        pytest.param(
            WEB,
            "24.30.1.256",
            "ipConfigurations/ip/properties/privateIPAddress",
            id="not-an-address",
        ),
        pytest.param(
            WEB,
            "24.30.1.5/24",
            "ipConfigurations/ip/properties/privateIPAddress",
            id="a-prefix",
        ),
    ],
)
async def test_static_address_must_be_a_usable_address_of_its_subnet(
    fabric: httpx.AsyncClient, subnet: str, static: str, target: str
) -> None:
    await assert_put_rejected(
        fabric,
        NIC,
        nic(ip_configuration("ip", subnet, static)),
        target=target,
        watch=(POOL, subnet),
    )
    await assert_absent(fabric, NIC)


@pytest.mark.parametrize(
    ("properties", "code", "target"),
    [
        pytest.param(
            {"privateIPAllocationMethod": "Static"},
            "InvalidInput",
            "ipConfigurations/ip/properties/privateIPAddress",
            id="static-without-address",
        ),
        pytest.param(
            {"privateIPAddress": "24.30.1.5", "privateIPAddressVersion": "IPv6"},
            "InvalidInput",
            "ipConfigurations/ip/properties/privateIPAddressVersion",
            id="address-of-other-version",
        ),
        pytest.param(
            {"privateIPAllocationMethod": "Reserved"},
            "InvalidInput",
            "ipConfigurations/ip/properties/privateIPAllocationMethod",
            id="unknown-method",
        ),
        pytest.param(
            {"subnet": None},
            "InvalidInput",
            "ipConfigurations/ip/properties/subnet",
            id="no-subnet",
        ),
        pytest.param(
            {"subnet": ref(f"{VNET}/subnets/Nope")},
            "InvalidReference",
            "ipConfigurations/ip/properties/subnet",
            id="missing-subnet",
        ),
        pytest.param(
            {"subnet": ref(VNET)},
            "InvalidReference",
            "ipConfigurations/ip/properties/subnet",
            id="network-not-subnet",
        ),
        pytest.param(
            {"accessControlList": ref("/accessControlLists/Nope")},
            "InvalidReference",
            "ipConfigurations/ip/properties/accessControlList",
            id="missing-acl",
        ),
    ],
)
async def test_bad_ip_configuration_is_rejected(
    fabric: httpx.AsyncClient, properties: Json, code: str, target: str
) -> None:
    body = nic(ip_configuration("ip", WEB))
    body["properties"]["ipConfigurations"][0]["properties"].update(properties)
    await assert_put_rejected(fabric, NIC, body, code=code, target=target, watch=(POOL, WEB))


# -- static addresses ---------------------------------------------------------------------


async def test_static_address_held_elsewhere_is_in_use(fabric: httpx.AsyncClient) -> None:
    await put_nic(fabric, "a", ip_configuration("ip", WEB, "24.30.1.5"))
    b = await put_nic(fabric, "b", ip_configuration("ip", WEB))
    for taken, holder in (
        ("24.30.1.5", "/networkInterfaces/a"),
        (address(b, "ip"), "/networkInterfaces/b"),
    ):
        error = await assert_put_rejected(
            fabric,
            NIC,
            nic(ip_configuration("ip", WEB, taken)),
            code="IpAddressInUse",
            status=409,
            target="WebVM1_Nic1/ipConfigurations/ip/properties/privateIPAddress",
            watch=("/networkInterfaces/a", "/networkInterfaces/b", POOL),
        )
        assert f"{holder}/ipConfigurations/ip" in error["message"]
        assert taken in error["message"]
    # At the child URI of an existing NIC, and by an existing ipConfiguration changing address.
    await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", WEB, "24.30.1.9"))
    for path in (f"{NIC}/ipConfigurations/ip2", f"{NIC}/ipConfigurations/ip"):
        await assert_put_rejected(
            fabric,
            path,
            ip_configuration(None, WEB, "24.30.1.5"),
            code="IpAddressInUse",
            status=409,
            target=f"{path}/properties/privateIPAddress",
            watch=("/networkInterfaces/a",),
        )


async def test_dynamic_allocation_skips_static_addresses(fabric: httpx.AsyncClient) -> None:
    await put_nic(
        fabric,
        "a",
        ip_configuration("ip", WEB, "24.30.1.2"),
        ip_configuration("ip3", WEB, "24.30.1.3"),
    )
    b = await put_nic(fabric, "b", ip_configuration("ip", WEB))
    assert address(b, "ip") == "24.30.1.4"


async def test_same_address_in_overlapping_subnets_of_two_networks(
    fabric: httpx.AsyncClient,
) -> None:
    await create_other_vnet(fabric)
    a = await put_nic(
        fabric, "a", ip_configuration("ip", WEB, "24.30.1.5"), ip_configuration("d", WEB)
    )
    b = await put_nic(
        fabric,
        "b",
        ip_configuration("ip", OTHER_WEB, "24.30.1.5"),
        ip_configuration("d", OTHER_WEB),
    )
    assert address(a, "ip") == address(b, "ip") == "24.30.1.5"
    assert address(a, "d") == address(b, "d")


async def test_changing_a_static_address_frees_the_old_one(fabric: httpx.AsyncClient) -> None:
    await put_nic(fabric, "a", ip_configuration("ip", WEB, "24.30.1.5"))
    moved = await put_nic(fabric, "a", ip_configuration("ip", WEB, "24.30.1.6"))
    assert address(moved, "ip") == "24.30.1.6"
    taken = await put_nic(fabric, "b", ip_configuration("ip", WEB, "24.30.1.5"))
    assert address(taken, "ip") == "24.30.1.5"


# -- dynamic addresses are kept -----------------------------------------------------------


async def test_dynamic_address_is_kept_across_re_puts(fabric: httpx.AsyncClient) -> None:
    created = await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", WEB))
    await put_nic(fabric, "other", ip_configuration("ip", WEB))
    held = address(created, "ip")
    assert held == "24.30.1.2"

    config = f"{NIC}/ipConfigurations/ip"
    for path, body in (
        (NIC, nic(ip_configuration("ip", WEB))),  # a fresh body
        (NIC, await get(fabric, NIC)),  # the GET output, address and Dynamic echoed
        (NIC, nic(ip_configuration("IP", "/VirtualNetworks/fabrikam/subnets/web"))),
        (config, ip_configuration("ip", WEB)),  # at the child URI
        (config, await get(fabric, config)),
        # The address echoed without a method is a Static request for the same address.
        (config, ip_configuration("ip", WEB, held)),
    ):
        again = await put(fabric, path, body, status=200)
        assert address(await get(fabric, config)) == held, body
        assert again["etag"] == (await get(fabric, NIC))["etag"]
    assert props(await get(fabric, config))["privateIPAllocationMethod"] == "Static"


async def test_moving_to_another_subnet_takes_a_new_address(fabric: httpx.AsyncClient) -> None:
    created = await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", WEB))
    moved = await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", TINY))
    assert address(created, "ip") == "24.30.1.2"
    assert address(moved, "ip") == "24.30.2.2"
    assert props(await get(fabric, WEB))["ipConfigurations"] == []
    back = await put_nic(fabric, "b", ip_configuration("ip", WEB, "24.30.1.2"))
    assert address(back, "ip") == "24.30.1.2"


# -- releases -------------------------------------------------------------------------------


async def test_deleting_a_nic_releases_its_addresses_and_mac(fabric: httpx.AsyncClient) -> None:
    created = await put_nic(
        fabric, "WebVM1_Nic1", ip_configuration("s", WEB, "24.30.1.5"), ip_configuration("d", TINY)
    )
    assert props(await get(fabric, POOL))["usage"]["numberofMacAddressesAllocated"] == 1
    await delete(fabric, NIC)
    await assert_absent(fabric, f"{NIC}/ipConfigurations/s")
    assert props(await get(fabric, POOL))["usage"]["numberofMacAddressesAllocated"] == 0
    assert props(await get(fabric, WEB))["ipConfigurations"] == []
    again = await put_nic(
        fabric,
        "b",
        ip_configuration("s", WEB, "24.30.1.5"),
        ip_configuration("d", TINY, address(created, "d")),
        privateMacAddress=props(created)["privateMacAddress"],
    )
    assert address(again, "d") == "24.30.2.2"
    await delete(fabric, NIC, status=204)


async def test_deleting_or_dropping_an_ip_configuration_releases_its_address(
    fabric: httpx.AsyncClient,
) -> None:
    await put_nic(
        fabric,
        "WebVM1_Nic1",
        ip_configuration("a", WEB, "24.30.1.5"),
        ip_configuration("b", WEB, "24.30.1.6"),
    )
    await delete(fabric, f"{NIC}/ipConfigurations/a")
    await put_nic(fabric, "WebVM1_Nic1", ip_configuration("c", WEB))  # drops b
    assert refs(props(await get(fabric, WEB))["ipConfigurations"]) == [f"{NIC}/ipConfigurations/c"]
    other = await put_nic(
        fabric,
        "other",
        ip_configuration("a", WEB, "24.30.1.5"),
        ip_configuration("b", WEB, "24.30.1.6"),
    )
    assert [address(other, "a"), address(other, "b")] == ["24.30.1.5", "24.30.1.6"]
