"""Rules across the ipConfigurations of one NIC (one address each, one virtual network unless
multitenant), per-ipConfiguration ACLs, IPv6, a container host with many endpoints, and the
subnets and networks ipConfigurations keep in use."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import (
    acl,
    acl_rule,
    ip_configuration,
    ip_pool,
    logical_network,
    logical_subnet,
    nic,
    virtual_network,
    virtual_subnet,
)
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
    assert_delete_rejected,
    assert_put_rejected,
    child,
    delete,
    get,
    get_all,
    props,
    put,
    refs,
    without_read_times,
)
from tests.support.store import watch_whole_loads

VLAN = "/logicalNetworks/Tenant_VLAN"
VLAN_SUBNET = f"{VLAN}/subnets/VLAN10"  # 10.0.10.0/24, gateway .1, pools .10-.12 and .20-.21


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return await build_fabrikam(client)


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


async def put_nic(
    client: httpx.AsyncClient, name: str, *configs: Json, **properties: object
) -> Json:
    return await put(client, f"/networkInterfaces/{name}", nic(*configs, **properties))


# -- one NIC, several ipConfigurations --------------------------------------------------------


async def test_one_nic_cannot_ask_twice_for_one_address(fabric: httpx.AsyncClient) -> None:
    body = nic(ip_configuration("ip1", WEB, "24.30.1.5"), ip_configuration("ip2", WEB, "24.30.1.5"))
    error = await assert_put_rejected(
        fabric, NIC, body, target="ipConfigurations/ip2/properties/privateIPAddress", watch=(WEB,)
    )
    assert "ip1" in error["message"]
    await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip1", WEB, "24.30.1.5"))
    await assert_put_rejected(
        fabric,
        f"{NIC}/ipConfigurations/ip2",
        ip_configuration("ip2", WEB, "24.30.1.5"),
        target="ipConfigurations/ip2/properties/privateIPAddress",
    )


async def test_address_moves_between_ip_configurations_of_one_put(
    fabric: httpx.AsyncClient,
) -> None:
    await put_nic(fabric, "WebVM1_Nic1", ip_configuration("old", WEB, "24.30.1.5"))
    moved = await put_nic(fabric, "WebVM1_Nic1", ip_configuration("new", WEB, "24.30.1.5"))
    assert [c["resourceId"] for c in props(moved)["ipConfigurations"]] == ["new"]
    assert address(moved, "new") == "24.30.1.5"
    await assert_absent(fabric, f"{NIC}/ipConfigurations/old")


async def test_ip_configurations_of_one_nic_can_swap_addresses(fabric: httpx.AsyncClient) -> None:
    await put_nic(
        fabric,
        "WebVM1_Nic1",
        ip_configuration("a", WEB, "24.30.1.5"),
        ip_configuration("b", WEB, "24.30.1.6"),
    )
    swapped = await put_nic(
        fabric,
        "WebVM1_Nic1",
        ip_configuration("a", WEB, "24.30.1.6"),
        ip_configuration("b", WEB, "24.30.1.5"),
    )
    assert (address(swapped, "a"), address(swapped, "b")) == ("24.30.1.6", "24.30.1.5")


# -- one ipConfiguration at its own URI (written alone) ----------------------------------------


def config_ids(resource: Json) -> list[str]:
    return [c["resourceId"] for c in props(resource)["ipConfigurations"]]


async def test_an_ip_configuration_at_its_uri_is_checked_against_its_siblings(
    fabric: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PUT or DELETE at an ipConfiguration's URI loads the NIC and that one configuration,
    not its siblings (service/alone.py): what the siblings decide is asked of the database,
    and answers as a PUT of the whole NIC would."""
    whole_loads = watch_whole_loads(monkeypatch)
    await create_other_vnet(fabric)
    await create_vlan(fabric)
    await put_nic(
        fabric,
        "WebVM1_Nic1",
        ip_configuration("a", WEB, "24.30.1.5"),
        ip_configuration("b", WEB),
        ip_configuration("c", WEB),
    )
    # A Dynamic one: a free address, after the last sibling.
    whole_loads.clear()
    await put(fabric, f"{NIC}/ipConfigurations/d", ip_configuration("d", WEB), status=201)
    assert whole_loads == []
    whole = await get(fabric, NIC)
    assert config_ids(whole) == ["a", "b", "c", "d"]
    addresses = [address(whole, config) for config in "abcd"]
    assert len(set(addresses)) == 4
    # Static, and the address a sibling asked for: 400 naming it.
    error = await assert_put_rejected(
        fabric,
        f"{NIC}/ipConfigurations/e",
        ip_configuration("e", WEB, "24.30.1.5"),
        target="ipConfigurations/e/properties/privateIPAddress",
        watch=(NIC,),
    )
    assert "'a'" in error["message"]
    # The address a Dynamic sibling was given: the allocator's 409, as for a whole NIC.
    await assert_put_rejected(
        fabric,
        f"{NIC}/ipConfigurations/e",
        ip_configuration("e", WEB, addresses[1]),
        target="ipConfigurations/e/properties/privateIPAddress",
        code="IpAddressInUse",
        status=409,
    )
    # Another virtual network than the siblings': 400 on the NIC, as for a whole NIC; a
    # logical subnet does not count.
    await assert_put_rejected(
        fabric,
        f"{NIC}/ipConfigurations/b",
        ip_configuration("b", OTHER_WEB),
        target="WebVM1_Nic1/properties/isMultitenantStack",
    )
    await put(fabric, f"{NIC}/ipConfigurations/v", ip_configuration("v", VLAN_SUBNET), status=201)
    # A sibling rewritten in the middle keeps its place and its address; one deleted frees
    # its address for a Static one.
    await put(fabric, f"{NIC}/ipConfigurations/b", ip_configuration("b", TINY))
    await delete(fabric, f"{NIC}/ipConfigurations/c")
    await put(fabric, f"{NIC}/ipConfigurations/f", ip_configuration("f", WEB, addresses[2]))
    assert NIC not in whole_loads
    whole = await get(fabric, NIC)
    assert config_ids(whole) == ["a", "b", "d", "v", "f"]
    assert address(whole, "b").startswith("24.30.2.")
    assert [address(whole, c) for c in "adf"] == [addresses[0], addresses[3], addresses[2]]
    # Once the NIC is a multitenant stack, another network is fine.
    await put_nic(fabric, "WebVM1_Nic1", *props(whole)["ipConfigurations"], isMultitenantStack=True)
    await put(fabric, f"{NIC}/ipConfigurations/o", ip_configuration("o", OTHER_WEB), status=201)
    assert config_ids(await get(fabric, NIC)) == ["a", "b", "d", "v", "f", "o"]


# -- several virtual networks ----------------------------------------------------------------


async def test_ip_configurations_in_two_networks_need_a_multitenant_stack(
    fabric: httpx.AsyncClient,
) -> None:
    await create_other_vnet(fabric)
    await create_vlan(fabric)
    two = (ip_configuration("fabrikam", WEB), ip_configuration("contoso", OTHER_WEB))
    await assert_put_rejected(
        fabric,
        NIC,
        nic(*two),
        target="WebVM1_Nic1/properties/isMultitenantStack",
        watch=(WEB, OTHER_WEB),
    )
    await assert_put_rejected(
        fabric,
        NIC,
        nic(*two, isMultitenantStack="false"),
        target="WebVM1_Nic1/properties/isMultitenantStack",
    )
    # A virtual subnet and a logical one, or two subnets of one network, are fine.
    mixed = await put_nic(
        fabric,
        "WebVM1_Nic1",
        ip_configuration("fabrikam", WEB),
        ip_configuration("tiny", TINY),
        ip_configuration("vlan", VLAN_SUBNET),
    )
    assert address(mixed, "vlan") == "10.0.10.10"
    await assert_put_rejected(
        fabric,
        f"{NIC}/ipConfigurations/contoso",
        ip_configuration("contoso", OTHER_WEB),
        target="WebVM1_Nic1/properties/isMultitenantStack",
    )
    # A gateway's NIC may join both.
    gateway = await put_nic(fabric, "gw", *two, isMultitenantStack="True")
    assert props(gateway)["isMultitenantStack"] is True
    assert address(gateway, "contoso") == "24.30.1.2"
    assert address(gateway, "fabrikam") not in ("24.30.1.2", address(mixed, "fabrikam"))


# -- ACLs on ipConfigurations ------------------------------------------------------------------


async def test_acl_of_an_ip_configuration(fabric: httpx.AsyncClient) -> None:
    acl_path = "/accessControlLists/Web"
    await put(fabric, acl_path, acl(acl_rule("AllowWeb", 100)), status=201)
    config = f"{NIC}/ipConfigurations/ip"
    await put_nic(fabric, "WebVM1_Nic1", ip_configuration("ip", WEB, accessControlList=acl_path))
    assert refs(props(await get(fabric, acl_path))["ipConfigurations"]) == [config]
    error = await assert_delete_rejected(fabric, acl_path, target=acl_path, watch=(NIC,))
    assert [d["target"] for d in error["details"]] == [config]
    await put(fabric, config, ip_configuration("ip", WEB))
    assert props(await get(fabric, acl_path))["ipConfigurations"] == []
    await delete(fabric, acl_path)


# -- IPv6 -----------------------------------------------------------------------------------


async def test_ipv6_addresses(fabric: httpx.AsyncClient) -> None:
    v6 = "/virtualNetworks/V6"
    subnet = f"{v6}/subnets/Web"
    body = virtual_network(virtual_subnet("Web", "fd00:0:0:1::/64"), prefixes=("fd00::/48",))
    await put(fabric, v6, body, status=201)
    created = await put_nic(
        fabric,
        "WebVM1_Nic1",
        ip_configuration("d", subnet, privateIPAddressVersion="ipv6"),
        ip_configuration("s", subnet, "FD00:0:0:1:0:0:0:FF"),
    )
    assert address(created, "d") == "fd00:0:0:1::2"
    assert address(created, "s") == "fd00:0:0:1::ff"
    assert props(child(created, "ipConfigurations", "d"))["privateIPAddressVersion"] == "IPv6"
    for reserved in ("fd00:0:0:1::", "fd00:0:0:1::1"):
        await assert_put_rejected(
            fabric,
            "/networkInterfaces/b",
            nic(ip_configuration("s", subnet, reserved)),
            target="ipConfigurations/s/properties/privateIPAddress",
        )
    # The last address of an IPv6 subnet is no broadcast address.
    last = await put_nic(
        fabric, "b", ip_configuration("s", subnet, "fd00:0:0:1:ffff:ffff:ffff:ffff")
    )
    assert address(last, "s") == "fd00::1:ffff:ffff:ffff:ffff"


async def test_a_dual_stack_nic_and_an_ipv6_address_with_a_zone(
    fabric: httpx.AsyncClient,
) -> None:
    subnets = (virtual_subnet("Web", "24.30.1.0/24"), virtual_subnet("Web6", "2001:db8:1::/64"))
    body = virtual_network(*subnets, prefixes=("24.30.0.0/16", "2001:db8::/32"))
    await put(fabric, "/virtualNetworks/Dual", body, status=201)
    web6 = "/virtualNetworks/Dual/subnets/Web6"
    created = await put_nic(
        fabric,
        "Dual_Nic",
        ip_configuration("v4", "/virtualNetworks/Dual/subnets/Web"),
        ip_configuration("v6", web6, privateIPAddressVersion="IPv6"),
    )
    assert (address(created, "v4"), address(created, "v6")) == ("24.30.1.2", "2001:db8:1::2")
    await assert_put_rejected(
        fabric,
        "/networkInterfaces/b",
        nic(ip_configuration("s", web6, "2001:db8:1::5%eth0")),
        target="ipConfigurations/s/properties/privateIPAddress",  # the schema's
    )


async def test_dynamic_address_version_must_match_the_subnet(fabric: httpx.AsyncClient) -> None:
    body = nic(ip_configuration("ip", WEB, privateIPAddressVersion="IPv6"))
    await assert_put_rejected(
        fabric, NIC, body, target="ipConfigurations/ip/properties/privateIPAddressVersion"
    )


# -- many endpoints on one NIC --------------------------------------------------------------


async def test_nic_with_64_ip_configurations_added_one_by_one(fabric: httpx.AsyncClient) -> None:
    path = "/networkInterfaces/ContainerHost"
    await put(fabric, path, nic(), status=201)
    # Half the endpoints ask for an address (.10 to .41), the others let the controller pick.
    for i in range(64):
        static = f"24.30.1.{10 + i}" if i < 32 else None
        config = ip_configuration(f"ep{i}", WEB, static)
        created = await put(fabric, f"{path}/ipConfigurations/ep{i}", config, status=201)
        if static is not None:
            assert address(created) == static

    host = await get(fabric, path)
    configs = props(host)["ipConfigurations"]
    assert [c["resourceId"] for c in configs] == [f"ep{i}" for i in range(64)]
    assert all(props(c)["provisioningState"] == "Succeeded" for c in configs)
    assert [address(c) for c in configs[:32]] == [f"24.30.1.{10 + i}" for i in range(32)]
    hosts = {f"24.30.1.{i}" for i in range(2, 255)}
    addresses = {address(c) for c in configs}
    assert len(addresses) == 64
    assert addresses <= hosts
    listed = await get_all(fabric, "/networkInterfaces")
    assert without_read_times(listed) == [without_read_times(host)]
    assert sorted(refs(props(await get(fabric, WEB))["ipConfigurations"])) == sorted(
        f"{path}/ipConfigurations/ep{i}" for i in range(64)
    )
    # All endpoints share the NIC's one MAC.
    assert props(await get(fabric, POOL))["usage"]["numberofMacAddressesAllocated"] == 1


# -- subnets and networks in use -------------------------------------------------------------


async def test_subnet_and_network_used_by_ip_configurations_cannot_be_deleted(
    fabric: httpx.AsyncClient,
) -> None:
    await put_nic(
        fabric, "web1", ip_configuration("ip1", WEB), ip_configuration("ip2", WEB, "24.30.1.9")
    )
    users = [
        "/networkInterfaces/web1/ipConfigurations/ip1",
        "/networkInterfaces/web1/ipConfigurations/ip2",
    ]
    watch = ("/networkInterfaces/web1",)

    error = await assert_delete_rejected(fabric, WEB, target=WEB, watch=watch)
    assert sorted(d["target"] for d in error["details"]) == users
    error = await assert_delete_rejected(fabric, VNET, target=WEB, watch=watch)
    assert sorted(d["target"] for d in error["details"]) == users
    # Dropping the subnet from a re-PUT of the network is the same delete.
    await assert_put_rejected(
        fabric,
        VNET,
        virtual_network(virtual_subnet("Tiny", "24.30.2.0/29")),
        code="ResourceInUse",
        status=409,
        target=WEB,
        watch=watch,
    )
    # The unused sibling can go.
    await delete(fabric, TINY)
    assert refs(props(await get(fabric, WEB))["ipConfigurations"]) == users

    await delete(fabric, "/networkInterfaces/web1")
    assert props(await get(fabric, WEB))["ipConfigurations"] == []
    await delete(fabric, VNET)
    await assert_absent(fabric, WEB)


async def test_subnet_prefix_cannot_move_away_from_held_addresses(
    fabric: httpx.AsyncClient,
) -> None:
    await put_nic(
        fabric, "web1", ip_configuration("ip1", WEB), ip_configuration("ip2", WEB, "24.30.1.9")
    )
    watch = ("/networkInterfaces/web1",)
    # Away from the held addresses, at its own URI or in a re-PUT of the network; or so that
    # the held 24.30.1.9 becomes the gateway of 24.30.1.8/29.
    for path, body in (
        (WEB, virtual_subnet("Web", "24.30.1.128/25")),
        (WEB, virtual_subnet("Web", "24.30.1.8/29")),
        (VNET, virtual_network(virtual_subnet("Web", "24.30.3.0/24"))),
    ):
        error = await assert_put_rejected(
            fabric,
            path,
            body,
            code="ResourceInUse",
            status=409,
            target="Web/properties/addressPrefix",
            watch=watch,
        )
        assert "/networkInterfaces/web1/ipConfigurations/ip" in error["message"]
    # Growing around them is fine, and the addresses stay.
    grown = await put(fabric, WEB, virtual_subnet("Web", "24.30.0.0/23"), status=200)
    assert props(grown)["addressPrefix"] == "24.30.0.0/23"
    nic_after = await get(fabric, "/networkInterfaces/web1")
    assert address(nic_after, "ip2") == "24.30.1.9"
