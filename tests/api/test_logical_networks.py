"""logicalNetworks with their subnets and ipPools, embedded or written at their own URIs."""

from __future__ import annotations

import copy

import httpx
import pytest

from tests.support.bodies import ip_pool, logical_network, logical_subnet
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_error,
    assert_put_rejected,
    child,
    delete,
    get,
    get_all,
    ids,
    props,
    put,
    without_etags,
)

LN = "/logicalNetworks/HNVPA"
SUBNET = f"{LN}/subnets/PA"
POOL = f"{SUBNET}/ipPools/PAPool"


def subnet(
    resource_id: str = "PA",
    prefix: str = "10.10.56.0/23",
    *,
    gateways: tuple[str, ...] = ("10.10.56.1",),
    pools: list[Json] | None = None,
    **extra: object,
) -> Json:
    """A logical subnet the way the SDN Express wrappers build it (vlanid as a string)."""
    members: Json = {"vlanid": "7", "defaultGateways": list(gateways), "IsPublic": False, **extra}
    return logical_subnet(resource_id, prefix, *(pools or ()), **members)


def hnvpa(*subnets: Json, hnv: str = "True") -> Json:
    """The HNV provider network as the SDN Express wrappers send it."""
    return logical_network(*subnets, resource_id="HNVPA", networkVirtualizationEnabled=hnv)


def with_subnet_property(body: Json, member: str, value: object) -> Json:
    changed = copy.deepcopy(body)
    changed["properties"]["subnets"][0]["properties"][member] = value
    return changed


def refs_of(network: Json) -> list[str]:
    """Every subnet and pool resourceRef of an embedded logical network, in order."""
    found: list[str] = []
    for sub in props(network)["subnets"]:
        found.append(sub["resourceRef"])
        found.extend(pool["resourceRef"] for pool in props(sub)["ipPools"])
    return found


async def create_pa_network(client: httpx.AsyncClient) -> Json:
    body = hnvpa(
        subnet(pools=[ip_pool("PAPool", "10.10.56.10", "10.10.56.200")]),
    )
    return await put(client, LN, body, status=201)


# -- accepted input and canonical output ------------------------------------------------


async def test_sdn_express_hnv_provider_network_is_canonical(client: httpx.AsyncClient) -> None:
    body = hnvpa(
        subnet(
            dnsServers=["10.10.0.10", "10.10.0.11"],
            pools=[ip_pool("PAPool", "10.10.56.10", "10.10.57.200")],
        ),
    )
    created = await put(client, "/logicalnetworks/HNVPA", body, status=201)

    assert created["resourceRef"] == LN
    assert props(created)["networkVirtualizationEnabled"] is True
    assert props(created)["virtualNetworks"] == []
    pa = child(created, "subnets", "PA")
    assert pa["resourceRef"] == SUBNET
    assert pa["etag"] == created["etag"]
    assert props(pa) | {"ipPools": None} == {
        "provisioningState": "Succeeded",
        "addressPrefix": "10.10.56.0/23",
        "vlanID": 7,
        "defaultGateways": ["10.10.56.1"],
        "dnsServers": ["10.10.0.10", "10.10.0.11"],
        "isPublic": False,
        "routes": [],
        "gatewayPools": [],
        "ipPools": None,
        "ipConfigurations": [],
        "networkInterfaces": [],
    }
    pool = child(pa, "ipPools", "PAPool")
    assert pool["resourceRef"] == POOL
    assert props(pool) == {
        "provisioningState": "Succeeded",
        "startIpAddress": "10.10.56.10",
        "endIpAddress": "10.10.57.200",
        "usage": {
            "numberOfIPAddresses": 447,
            "numberofIPAddressesAllocated": 0,
            "numberOfIPAddressesInTransition": 0,
        },
    }
    assert await get(client, LN) == created
    assert await get(client, SUBNET) == pa
    assert await get(client, POOL) == pool


async def test_values_sent_as_strings_and_odd_casing_are_typed(client: httpx.AsyncClient) -> None:
    body = {
        "ResourceId": "PublicVIP",
        "Properties": {
            "NetworkVirtualizationEnabled": "false",
            "Subnets": [
                {
                    "ResourceID": "PublicVIP",
                    "Properties": {
                        "AddressPrefix": "41.40.40.0/27",
                        "VLANID": "0",
                        "DefaultGateways": ["41.40.40.1"],
                        "IsPublic": "True",
                        "IpPools": [
                            {
                                "resourceId": "PublicVIPPool",
                                "properties": {
                                    "StartIPAddress": "41.40.40.8",
                                    "EndIPAddress": "41.40.40.30",
                                },
                            }
                        ],
                    },
                }
            ],
        },
    }
    created = await put(client, "/LogicalNetworks/PublicVIP", body, status=201)
    assert props(created)["networkVirtualizationEnabled"] is False
    vip = child(created, "subnets", "PublicVIP")
    assert props(vip)["vlanID"] == 0
    assert props(vip)["isPublic"] is True
    assert props(child(vip, "ipPools", "PublicVIPPool"))["startIpAddress"] == "41.40.40.8"


async def test_vlan_id_defaults_to_untagged_and_4094_is_the_top(client: httpx.AsyncClient) -> None:
    body = hnvpa(
        logical_subnet("untagged", "10.0.0.0/24"),
        logical_subnet("top", "10.0.1.0/24", vlanID=4094),
        hnv="False",
    )
    created = await put(client, LN, body)
    assert props(child(created, "subnets", "untagged"))["vlanID"] == 0
    assert props(child(created, "subnets", "top"))["vlanID"] == 4094
    assert props(created)["networkVirtualizationEnabled"] is False


async def test_ipv6_prefixes_and_addresses_are_normalised(client: httpx.AsyncClient) -> None:
    body = hnvpa(
        subnet(
            "v6",
            "FD00:0DB8:0:0::/64",
            gateways=("FD00:DB8::0001",),
            dnsServers=["FD00:DB8:0:0::53"],
            pools=[ip_pool("v6pool", "FD00:DB8::1:0", "fd00:db8::1:ffff")],
        )
    )
    created = await put(client, LN, body)
    v6 = props(child(created, "subnets", "v6"))
    assert v6["addressPrefix"] == "fd00:db8::/64"
    assert v6["defaultGateways"] == ["fd00:db8::1"]
    assert v6["dnsServers"] == ["fd00:db8::53"]
    pool = props(child(child(created, "subnets", "v6"), "ipPools", "v6pool"))
    assert (pool["startIpAddress"], pool["endIpAddress"]) == ("fd00:db8::1:0", "fd00:db8::1:ffff")
    assert pool["usage"]["numberOfIPAddresses"] == 65536


async def test_point_to_point_subnet_pool_may_use_both_addresses(
    client: httpx.AsyncClient,
) -> None:
    body = hnvpa(
        subnet(
            "p2p", "192.0.2.0/31", gateways=(), pools=[ip_pool("both", "192.0.2.0", "192.0.2.1")]
        )
    )
    created = await put(client, LN, body)
    pool = child(child(created, "subnets", "p2p"), "ipPools", "both")
    assert props(pool)["usage"]["numberOfIPAddresses"] == 2


async def test_subnet_and_pool_written_at_their_own_uris(client: httpx.AsyncClient) -> None:
    """New-NetworkControllerLogicalNetwork, then ...LogicalSubnet, then ...IPPool."""
    network = await put(
        client,
        LN,
        {"resourceId": "HNVPA", "properties": {"networkVirtualizationEnabled": "True"}},
        status=201,
    )
    assert props(network)["subnets"] == []

    created_subnet = await put(client, "/logicalNetworks/hnvpa/subnets/PA", subnet(), status=201)
    assert created_subnet["resourceRef"] == SUBNET
    after_subnet = await get(client, LN)
    assert after_subnet["etag"] != network["etag"]
    assert created_subnet["etag"] == after_subnet["etag"]

    created_pool = await put(
        client,
        f"{SUBNET}/ipPools/PAPool",
        ip_pool("PAPool", "10.10.56.10", "10.10.56.200"),
        status=201,
    )
    assert props(created_pool)["usage"]["numberOfIPAddresses"] == 191
    after_pool = await get(client, LN)
    assert after_pool["etag"] != after_subnet["etag"]
    assert refs_of(after_pool) == [SUBNET, POOL]
    assert await get(client, POOL) == created_pool
    assert ids(await get_all(client, f"{LN}/subnets")) == ["PA"]
    assert ids(await get_all(client, f"{SUBNET}/ipPools")) == ["PAPool"]


async def test_logical_subnets_alias_uri_reaches_the_same_subnet(
    client: httpx.AsyncClient,
) -> None:
    await create_pa_network(client)
    via_alias = await get(client, f"{LN}/logicalSubnets/PA")
    assert via_alias == await get(client, SUBNET)
    updated = await put(
        client, f"{LN}/logicalSubnets/PA", subnet(gateways=("10.10.56.254",)), status=200
    )
    assert props(updated)["defaultGateways"] == ["10.10.56.254"]
    # The stored pool survives: the body had no ipPools member.
    assert ids(props(updated)["ipPools"]) == ["PAPool"]


async def test_re_put_without_subnets_keeps_them_and_with_subnets_replaces_them(
    client: httpx.AsyncClient,
) -> None:
    created = await create_pa_network(client)
    kept = await put(
        client, LN, {"properties": {"networkVirtualizationEnabled": True, "subnets": None}}
    )
    assert refs_of(kept) == refs_of(created)
    assert (
        child(kept, "subnets", "PA")["instanceId"] == child(created, "subnets", "PA")["instanceId"]
    )

    replaced = await put(client, LN, hnvpa(subnet("Other", "10.20.0.0/24", gateways=())))
    assert refs_of(replaced) == [f"{LN}/subnets/Other"]
    await assert_absent(client, SUBNET)
    await assert_absent(client, POOL)


async def test_re_put_of_what_get_returned_changes_only_the_etag(
    client: httpx.AsyncClient,
) -> None:
    await create_pa_network(client)
    fetched = await get(client, LN)
    rewritten = await put(client, LN, fetched, status=200)
    assert rewritten["etag"] != fetched["etag"]
    assert rewritten["instanceId"] == fetched["instanceId"]
    assert without_etags(rewritten) == without_etags(fetched)


async def test_deleting_children_and_the_network(client: httpx.AsyncClient) -> None:
    created = await create_pa_network(client)
    await delete(client, POOL)
    await delete(client, POOL, status=204)
    after_pool = await get(client, LN)
    assert after_pool["etag"] != created["etag"]
    assert props(child(after_pool, "subnets", "PA"))["ipPools"] == []

    await delete(client, SUBNET)
    await delete(client, SUBNET, status=204)
    assert props(await get(client, LN))["subnets"] == []

    await put(client, SUBNET, subnet(pools=[ip_pool("PAPool", "10.10.56.10", "10.10.56.20")]))
    await delete(client, LN)
    for path in (LN, SUBNET, POOL):
        await assert_absent(client, path)
    await delete(client, LN, status=204)


async def test_child_under_a_missing_parent_is_a_precondition_failure(
    client: httpx.AsyncClient,
) -> None:
    await assert_put_rejected(
        client,
        "/logicalNetworks/nope/subnets/PA",
        subnet(),
        status=412,
        code="PreconditionFailed",
        target="logicalNetworks/nope",
    )
    await assert_absent(client, "/logicalNetworks/nope")
    await put(client, LN, hnvpa())
    await assert_put_rejected(
        client,
        f"{LN}/subnets/nope/ipPools/P",
        ip_pool("P", "10.10.56.10", "10.10.56.20"),
        status=412,
        code="PreconditionFailed",
        target="subnets/nope",
    )
    response = await client.get(f"/networking/v1{LN}/subnets/nope/ipPools")
    assert_error(response, 404, "NotFound", "subnets/nope")


# -- validation of the logical network and its subnets ---------------------------------


@pytest.mark.parametrize("vlan", [-1, 4095, "4095", "abc", 1.5, "", [7]], ids=repr)
async def test_vlan_id_must_be_0_to_4094(client: httpx.AsyncClient, vlan: object) -> None:
    body = with_subnet_property(hnvpa(subnet()), "vlanid", vlan)
    await assert_put_rejected(client, LN, body, target="subnets/PA/properties/vlanID")
    await assert_absent(client, LN)


@pytest.mark.parametrize(
    "prefix",
    ["10.10.56.1/23", "10.10.56.0", "10.10.56.0/33", "10.10.56.0/-1", "not-a-prefix", "", 17],
    ids=repr,
)
async def test_address_prefix_must_be_a_cidr_prefix_without_host_bits(
    client: httpx.AsyncClient, prefix: object
) -> None:
    body = with_subnet_property(hnvpa(subnet()), "addressPrefix", prefix)
    await assert_put_rejected(client, LN, body, target="subnets/PA/properties/addressPrefix")


async def test_address_prefix_is_required(client: httpx.AsyncClient) -> None:
    body = hnvpa({"resourceId": "S", "properties": {"vlanID": 7}})
    await assert_put_rejected(client, LN, body, target="subnets/S/properties/addressPrefix")


async def test_invalid_update_leaves_the_network_unchanged(client: httpx.AsyncClient) -> None:
    await create_pa_network(client)
    body = with_subnet_property(hnvpa(subnet()), "vlanID", 5000)
    await assert_put_rejected(
        client, LN, body, target="subnets/PA/properties/vlanID", watch=(SUBNET, POOL)
    )
    await assert_put_rejected(
        client,
        LN,
        hnvpa(subnet(), hnv="maybe"),
        target="properties.networkVirtualizationEnabled",
    )


@pytest.mark.parametrize(
    "other",
    ["10.10.57.0/24", "10.10.0.0/16", "10.10.56.128/25"],
    ids=["upper-half", "around", "inside"],
)
async def test_subnets_of_one_network_must_not_overlap(
    client: httpx.AsyncClient, other: str
) -> None:
    body = hnvpa(subnet(), subnet("Second", other, gateways=()))
    await assert_put_rejected(client, LN, body, target="subnets/Second/properties/addressPrefix")
    await assert_absent(client, LN)


async def test_overlapping_subnet_written_at_its_own_uri_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    await create_pa_network(client)
    await assert_put_rejected(
        client,
        f"{LN}/subnets/Second",
        subnet("Second", "10.10.57.0/24", gateways=()),
        target="subnets/Second/properties/addressPrefix",
    )
    await assert_absent(client, f"{LN}/subnets/Second")


async def test_subnets_of_different_networks_and_families_may_coexist(
    client: httpx.AsyncClient,
) -> None:
    body = hnvpa(subnet(), subnet("v6", "fd00::/64", gateways=("fd00::1",)))
    await put(client, LN, body, status=201)
    other = {"properties": {"subnets": [subnet("Mgmt", "10.10.56.0/23")]}}
    await put(client, "/logicalNetworks/Management", other, status=201)


async def test_duplicate_embedded_subnet_ids_are_rejected(client: httpx.AsyncClient) -> None:
    body = hnvpa(subnet("PA"), subnet("pa", "10.20.0.0/24", gateways=()))
    await assert_put_rejected(client, LN, body, target="properties/subnets/1")


async def test_embedded_subnet_needs_a_resource_id(client: httpx.AsyncClient) -> None:
    body = hnvpa(logical_subnet(None, "10.0.0.0/24"))
    await assert_put_rejected(client, LN, body, target="properties/subnets/0/resourceId")


@pytest.mark.parametrize(
    "gateways",
    [["10.10.58.1"], ["10.10.56.1", "192.168.0.1"], ["fd00::1"]],
    ids=["outside", "second-outside", "other-family"],
)
async def test_default_gateways_must_lie_inside_the_prefix(
    client: httpx.AsyncClient, gateways: list[str]
) -> None:
    body = hnvpa(subnet(gateways=tuple(gateways)))
    await assert_put_rejected(client, LN, body, target="subnets/PA/properties/defaultGateways")


async def test_default_gateway_moved_outside_at_the_subnet_uri_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    await create_pa_network(client)
    await assert_put_rejected(
        client,
        SUBNET,
        subnet(gateways=("10.0.0.1",)),
        target="subnets/PA/properties/defaultGateways",
        watch=(POOL,),
    )


@pytest.mark.parametrize(
    ("member", "value", "target"),
    [
        ("defaultGateways", ["10.10.56.1", "10.10.56.300"], "defaultGateways[1]"),
        ("dnsServers", ["dns.contoso.com"], "dnsServers[0]"),
        ("dnsServers", "10.0.0.1", "dnsServers"),
    ],
    ids=["gateway-not-ip", "dns-not-ip", "dns-not-a-list"],
)
async def test_gateways_and_dns_servers_must_be_ip_addresses(
    client: httpx.AsyncClient, member: str, value: object, target: str
) -> None:
    body = with_subnet_property(hnvpa(subnet()), member, value)
    await assert_put_rejected(client, LN, body, target=f"subnets/PA/properties/{target}")


async def test_subnet_route_next_hop_must_be_inside_the_subnet(client: httpx.AsyncClient) -> None:
    route = {"destinationPrefix": "0.0.0.0/0", "nextHop": "10.99.0.1", "metric": "10"}
    body = hnvpa(subnet(routes=[route]))
    await assert_put_rejected(client, LN, body, target="subnets/PA/properties/routes")
    route["nextHop"] = "10.10.56.1"
    created = await put(client, LN, hnvpa(subnet(routes=[route])))
    assert props(child(created, "subnets", "PA"))["routes"] == [
        {"destinationPrefix": "0.0.0.0/0", "nextHop": "10.10.56.1", "metric": 10}
    ]


# -- validation of ipPools ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "member"),
    [
        pytest.param("10.10.55.250", "10.10.56.20", "startIpAddress", id="start-outside"),
        pytest.param("10.10.56.10", "10.10.58.3", "endIpAddress", id="end-outside"),
        pytest.param("10.10.56.200", "10.10.56.100", "startIpAddress", id="reversed"),
        pytest.param("10.10.56.0", "10.10.56.20", "startIpAddress", id="network-address"),
        pytest.param("10.10.57.200", "10.10.57.255", "startIpAddress", id="broadcast-address"),
        pytest.param("10.10.56.1", "10.10.56.20", "startIpAddress", id="gateway"),
        pytest.param("fd00::10", "fd00::20", "startIpAddress", id="other-family"),
    ],
)
async def test_pool_must_be_a_usable_range_inside_its_subnet(
    client: httpx.AsyncClient, start: str, end: str, member: str
) -> None:
    body = hnvpa(subnet(pools=[ip_pool("Bad", start, end)]))
    await assert_put_rejected(client, LN, body, target=f"ipPools/Bad/properties/{member}")
    await assert_absent(client, LN)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("10.10.56.100", "10.10.56.250"),
        ("10.10.56.5", "10.10.56.10"),
        ("10.10.56.2", "10.10.57.254"),
    ],
    ids=["tail", "touches-start", "around"],
)
async def test_pools_of_one_subnet_must_not_overlap(
    client: httpx.AsyncClient, start: str, end: str
) -> None:
    await create_pa_network(client)
    error = await assert_put_rejected(
        client,
        f"{SUBNET}/ipPools/Second",
        ip_pool("Second", start, end),
        target="ipPools/Second/properties/startIpAddress",
        watch=(POOL,),
    )
    assert "PAPool" in error["message"]
    await assert_absent(client, f"{SUBNET}/ipPools/Second")


async def test_adjacent_pools_are_accepted(client: httpx.AsyncClient) -> None:
    await create_pa_network(client)
    created = await put(
        client,
        f"{SUBNET}/ipPools/Second",
        ip_pool("Second", "10.10.56.201", "10.10.57.254"),
        status=201,
    )
    assert props(created)["usage"]["numberOfIPAddresses"] == 310


@pytest.mark.parametrize(
    ("member", "value"),
    [("startIpAddress", "10.10.56.300"), ("endIpAddress", "PAPoolEnd"), ("startIpAddress", None)],
    ids=["start-not-ip", "end-not-ip", "start-missing"],
)
async def test_pool_addresses_must_be_ip_addresses(
    client: httpx.AsyncClient, member: str, value: object
) -> None:
    await put(client, LN, hnvpa(subnet()))
    body = ip_pool("P", "10.10.56.10", "10.10.56.20")
    body["properties"][member] = value
    await assert_put_rejected(client, f"{SUBNET}/ipPools/P", body, target=f"properties.{member}")


async def test_shrinking_a_subnet_away_from_its_pool_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    await create_pa_network(client)
    await assert_put_rejected(
        client,
        SUBNET,
        subnet(prefix="10.10.57.0/24", gateways=()),
        target="ipPools/PAPool/properties/startIpAddress",
        watch=(POOL,),
    )


async def test_a_new_gateway_inside_a_pool_is_rejected(client: httpx.AsyncClient) -> None:
    await create_pa_network(client)
    await assert_put_rejected(
        client,
        SUBNET,
        subnet(gateways=("10.10.56.1", "10.10.56.50")),
        target="ipPools/PAPool/properties/startIpAddress",
        watch=(POOL,),
    )
