"""routeTables and their routes: next hop types, virtual appliance hops, unique prefixes."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import route, route_table
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_put_rejected,
    child,
    delete,
    get,
    get_all,
    ids,
    props,
    put,
    refs,
)

RT = "/routeTables/NVARoutes"
ROUTES = f"{RT}/routes"


def table(*routes: Json) -> Json:
    """The NVARoutes table, echoing its empty reverse references."""
    return route_table(*routes, resource_id="NVARoutes", subnets=[])


# -- accepted input and canonical output ------------------------------------------------


async def test_virtual_appliance_default_route_is_canonical(client: httpx.AsyncClient) -> None:
    body = table(route("0_0_0_0_0", "0.0.0.0/0", "virtualappliance", "192.168.1.10"))
    created = await put(client, "/RouteTables/NVARoutes", body, status=201)

    assert created["resourceRef"] == RT
    assert props(created)["subnets"] == []
    default = child(created, "routes", "0_0_0_0_0")
    assert default["resourceRef"] == f"{ROUTES}/0_0_0_0_0"
    assert default["etag"] == created["etag"]
    assert props(default) == {
        "provisioningState": "Succeeded",
        "addressPrefix": "0.0.0.0/0",
        "nextHopType": "VirtualAppliance",
        "nextHopIpAddress": "192.168.1.10",
    }
    assert await get(client, RT) == created
    assert await get(client, f"{ROUTES}/0_0_0_0_0") == default


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("VNETLOCAL", "VnetLocal"),
        ("virtualNetworkGateway", "VirtualNetworkGateway"),
        ("internet", "Internet"),
        ("none", "None"),
    ],
)
async def test_next_hop_types_without_an_address(
    client: httpx.AsyncClient, spelling: str, canonical: str
) -> None:
    created = await put(client, RT, table(route("r", "10.0.0.0/8", spelling, None)))
    assert props(child(created, "routes", "r")) == {
        "provisioningState": "Succeeded",
        "addressPrefix": "10.0.0.0/8",
        "nextHopType": canonical,
    }


async def test_ipv6_route_is_normalised(client: httpx.AsyncClient) -> None:
    created = await put(client, RT, table(route("v6", "FD00:0:0::/48", next_hop="FD00:0::0010")))
    assert props(child(created, "routes", "v6"))["addressPrefix"] == "fd00::/48"
    assert props(child(created, "routes", "v6"))["nextHopIpAddress"] == "fd00::10"


async def test_routes_added_one_by_one_at_their_own_uri(client: httpx.AsyncClient) -> None:
    created = await put(client, RT, {"properties": {}}, status=201)
    assert props(created)["routes"] == []
    first = await put(client, f"{ROUTES}/default", route("default", "0.0.0.0/0"), status=201)
    second = await put(
        client,
        "/routetables/nvaroutes/Routes/blackhole",
        route("blackhole", "10.66.0.0/16", "None", None),
        status=201,
    )
    assert created["etag"] != first["etag"] != second["etag"]
    stored = await get(client, RT)
    assert stored["etag"] == second["etag"]
    assert refs(props(stored)["routes"]) == [f"{ROUTES}/default", f"{ROUTES}/blackhole"]
    assert ids(await get_all(client, ROUTES)) == ["default", "blackhole"]


async def test_re_put_of_what_get_returned_is_accepted(client: httpx.AsyncClient) -> None:
    await put(
        client,
        RT,
        table(route("default", "0.0.0.0/0"), route("local", "10.0.0.0/8", "VnetLocal", None)),
    )
    fetched = await get(client, RT)
    rewritten = await put(client, RT, fetched, status=200)
    assert [props(r) for r in props(rewritten)["routes"]] == [
        props(r) for r in props(fetched)["routes"]
    ]


async def test_deleting_routes_and_the_table(client: httpx.AsyncClient) -> None:
    await put(
        client,
        RT,
        table(route("default", "0.0.0.0/0"), route("local", "10.0.0.0/8", "VnetLocal", None)),
    )
    await delete(client, f"{ROUTES}/default")
    await delete(client, f"{ROUTES}/default", status=204)
    assert ids(props(await get(client, RT))["routes"]) == ["local"]
    # The prefix is free again.
    await put(client, f"{ROUTES}/again", route("again", "0.0.0.0/0"), status=201)
    await delete(client, RT)
    await assert_absent(client, RT)
    await assert_absent(client, f"{ROUTES}/local")
    await delete(client, RT, status=204)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("hop", [None, ""], ids=["missing", "empty"])
async def test_virtual_appliance_needs_a_next_hop_address(
    client: httpx.AsyncClient, hop: str | None
) -> None:
    body = table(route("default", "0.0.0.0/0", "VirtualAppliance", None))
    if hop is not None:
        # A blank address is no address (NC answers a VnetLocal route's so).
        body["properties"]["routes"][0]["properties"]["nextHopIpAddress"] = hop
    target = "routes/default/properties/nextHopIpAddress"
    await assert_put_rejected(client, RT, body, target=target)
    await assert_absent(client, RT)


async def test_virtual_appliance_at_the_route_uri_needs_a_next_hop(
    client: httpx.AsyncClient,
) -> None:
    await put(client, RT, table(route("default", "0.0.0.0/0")))
    await assert_put_rejected(
        client,
        f"{ROUTES}/default",
        {
            "properties": {
                "addressPrefix": "0.0.0.0/0",
                "nextHopType": "VirtualAppliance",
                "nextHopIpAddress": None,
            }
        },
        target="routes/default/properties/nextHopIpAddress",
    )


@pytest.mark.parametrize(
    ("prefix", "hop"),
    [("0.0.0.0/0", "fd00::1"), ("::/0", "192.168.1.10")],
    ids=["v4-route-v6-hop", "v6-route-v4-hop"],
)
async def test_next_hop_must_be_of_the_route_family(
    client: httpx.AsyncClient, prefix: str, hop: str
) -> None:
    await assert_put_rejected(
        client,
        RT,
        table(route("r", prefix, next_hop=hop)),
        target="routes/r/properties/nextHopIpAddress",
    )


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("NextHopType", "Gateway"),
        ("NextHopType", ""),
        ("NextHopType", None),
        ("NextHopIpAddress", "192.168.1.300"),
        ("NextHopIpAddress", "nva.contoso.com"),
        ("AddressPrefix", "10.0.0.1/8"),
        ("AddressPrefix", "10.0.0.0"),
        ("AddressPrefix", "default"),
        ("AddressPrefix", None),
    ],
    ids=repr,
)
async def test_route_members_must_be_valid(
    client: httpx.AsyncClient, member: str, value: object
) -> None:
    body = table(route("r", "0.0.0.0/0"))
    body["properties"]["routes"][0]["properties"][member] = value
    canonical = member[0].lower() + member[1:]
    await assert_put_rejected(client, RT, body, target=f"routes/r/properties/{canonical}")


@pytest.mark.parametrize(
    ("first", "second"),
    [("10.0.0.0/8", "10.0.0.0/8"), ("fd00::/48", "FD00:0:0::/48"), (" 0.0.0.0/0", "0.0.0.0/0")],
    ids=["same", "ipv6-spellings", "padded"],
)
async def test_duplicate_prefix_in_one_table_is_rejected(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    hop = "fd00::1" if ":" in first else "192.168.1.10"
    body = table(route("a", first, next_hop=hop), route("b", second, "None", None))
    error = await assert_put_rejected(client, RT, body, target="routes/b/properties/addressPrefix")
    assert "'a'" in error["message"]
    await assert_absent(client, RT)


async def test_duplicate_prefix_added_at_the_route_uri_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    await put(client, RT, table(route("default", "0.0.0.0/0")))
    await assert_put_rejected(
        client,
        f"{ROUTES}/blackhole",
        route("blackhole", "0.0.0.0/0", "None", None),
        target="routes/blackhole/properties/addressPrefix",
        watch=(f"{ROUTES}/default",),
    )
    await assert_absent(client, f"{ROUTES}/blackhole")


async def test_same_prefix_in_two_tables_is_allowed(client: httpx.AsyncClient) -> None:
    await put(client, RT, table(route("default", "0.0.0.0/0")))
    other = route_table(route("default", "0.0.0.0/0", "Internet", None))
    await put(client, "/routeTables/Other", other, status=201)
