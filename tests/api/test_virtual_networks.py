"""virtualNetworks and their subnets: what a PowerShell body becomes, address space and subnet
rules, the provider network reference, ACL and route table references. VSIDs are in
test_vsids; subnets in use by ipConfigurations in test_ip_configurations."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import (
    acl,
    acl_rule,
    ip_pool,
    logical_network,
    logical_subnet,
    provider_network,
    ref,
    route,
    route_table,
    virtual_network,
    virtual_subnet,
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
    ids,
    props,
    put,
    refs,
)

LN = "/logicalNetworks/HNVPA"
VNET = "/virtualNetworks/Fabrikam_VNet1"
WEB = f"{VNET}/subnets/Web"
APP = f"{VNET}/subnets/App"
ACL = "/accessControlLists/AllowAll"
ROUTES = "/routeTables/ViaNVA"
VSID_DEFAULT_RANGE = range(4096, 16_777_215)


async def create_provider_network(client: httpx.AsyncClient) -> None:
    pa = logical_subnet("PA", "10.10.56.0/23", ip_pool("PAPool", "10.10.56.10", "10.10.56.200"))
    await put(client, LN, provider_network(pa), status=201)


async def create_vnet(client: httpx.AsyncClient, *subnets: Json) -> Json:
    await create_provider_network(client)
    return await put(client, VNET, virtual_network(*subnets), status=201)


def vsids(network: Json) -> dict[str, int]:
    return {s["resourceId"]: props(s)["vsid"] for s in props(network)["subnets"]}


# -- accepted input and canonical output ------------------------------------------------


async def test_powershell_virtual_network_comes_back_canonical(client: httpx.AsyncClient) -> None:
    await create_provider_network(client)
    await put(client, ACL, acl(acl_rule("AllowAll", 100)), status=201)
    await put(client, ROUTES, route_table(route("default", "0.0.0.0/0")), status=201)
    # How $vnet = New-Object ...VirtualNetwork serialises: PascalCase, nulls for unset members,
    # whole objects as references, read-only members echoed from an earlier GET.
    ln_object = (await get(client, LN)) | {"properties": {"networkVirtualizationEnabled": "True"}}
    body = {
        "ResourceId": "Fabrikam_VNet1",
        "ResourceRef": "/virtualNetworks/SomethingElse",
        "InstanceId": "00000000-0000-0000-0000-000000000001",
        "Etag": 'W/"00000000-0000-0000-0000-000000000002"',
        "Tags": None,
        "ResourceMetadata": None,
        "Properties": {
            "ProvisioningState": "Failed",
            "ConfigurationState": None,
            "AddressSpace": {"AddressPrefixes": ["24.30.1.0/24", " 2001:DB8:0:0::/48 "]},
            "LogicalNetwork": ln_object,
            "DhcpOptions": {"DnsServers": ["24.30.1.250", "2001:DB8::53"]},
            "Subnets": [
                {
                    "ResourceId": "Web",
                    "ResourceRef": None,
                    "Properties": {
                        "AddressPrefix": "24.30.1.0/26",
                        "AccessControlList": await get(client, ACL),
                        "RouteTable": "/routetables/vianva",
                        "Vsid": "7",
                        "IpConfigurations": [
                            {"resourceRef": "/networkInterfaces/x/ipConfigurations/y"}
                        ],
                        "ProvisioningState": "Updating",
                    },
                },
                {"ResourceId": "V6", "Properties": {"AddressPrefix": "2001:db8:0:1::/64"}},
            ],
        },
    }
    created = await put(client, "/VirtualNetworks/Fabrikam_VNet1", body, status=201)

    assert created["resourceRef"] == VNET
    assert created["instanceId"] != body["InstanceId"]
    web, v6 = props(created)["subnets"]
    assert props(created) == {
        "provisioningState": "Succeeded",
        "addressSpace": {"addressPrefixes": ["24.30.1.0/24", "2001:db8::/48"]},
        "logicalNetwork": {"resourceRef": LN},
        "dhcpOptions": {"dnsServers": ["24.30.1.250", "2001:db8::53"]},
        "subnets": [web, v6],
    }
    assert web["resourceRef"] == WEB
    assert web["etag"] == created["etag"]
    assert props(web) == {
        "provisioningState": "Succeeded",
        "addressPrefix": "24.30.1.0/26",
        "accessControlList": {"resourceRef": ACL},
        "routeTable": {"resourceRef": ROUTES},
        "vsid": props(web)["vsid"],
        "ipConfigurations": [],
    }
    assert props(v6)["addressPrefix"] == "2001:db8:0:1::/64"
    assert props(web)["vsid"] != 7
    assert {props(web)["vsid"], props(v6)["vsid"]} <= set(VSID_DEFAULT_RANGE)
    assert props(web)["vsid"] != props(v6)["vsid"]

    assert await get(client, VNET) == created
    assert await get(client, WEB) == web
    assert await get_all(client, f"{VNET}/subnets") == [web, v6]
    assert await get_all(client, "/virtualNetworks") == [created]
    assert refs(props(await get(client, LN))["virtualNetworks"]) == [VNET]
    assert refs(props(await get(client, ACL))["subnets"]) == [WEB]
    assert refs(props(await get(client, ROUTES))["subnets"]) == [WEB]


async def test_subnets_written_at_their_own_uri(client: httpx.AsyncClient) -> None:
    created = await create_vnet(client)
    assert props(created)["subnets"] == []
    web = await put(client, WEB, virtual_subnet("Web", "24.30.1.0/24"), status=201)
    app = await put(
        client,
        "/virtualnetworks/fabrikam_vnet1/Subnets/App",
        {"properties": {"addressPrefix": "24.30.2.0/24"}},
        status=201,
    )
    assert app["resourceRef"] == APP

    network = await get(client, VNET)
    assert network["etag"] not in (created["etag"], web["etag"])
    assert network["etag"] == app["etag"] == child(network, "subnets", "App")["etag"]
    assert ids(props(network)["subnets"]) == ["Web", "App"]
    # A vnet re-PUT without a subnet list keeps the subnets written at their own URIs.
    body = virtual_network()
    del body["properties"]["subnets"]
    again = await put(client, VNET, body, status=200)
    assert vsids(again) == vsids(network)


async def test_overlapping_prefixes_in_different_virtual_networks_are_allowed(
    client: httpx.AsyncClient,
) -> None:
    await create_provider_network(client)
    for tenant in ("Fabrikam", "Contoso"):
        body = virtual_network(virtual_subnet("Web", "24.30.1.0/24"), prefixes=("24.30.0.0/16",))
        await put(client, f"/virtualNetworks/{tenant}", body, status=201)
    fabrikam, contoso = await get_all(client, "/virtualNetworks")
    assert props(fabrikam)["addressSpace"] == props(contoso)["addressSpace"]
    assert vsids(fabrikam)["Web"] != vsids(contoso)["Web"]


async def test_smallest_subnets_with_an_address_to_hand_out(client: httpx.AsyncClient) -> None:
    # /30: network, gateway, one address, broadcast; /126: network, gateway, two addresses.
    network = await create_vnet(
        client, virtual_subnet("a", "24.30.1.0/30"), virtual_subnet("b", "24.30.1.4/30")
    )
    assert ids(props(network)["subnets"]) == ["a", "b"]
    body = virtual_network(virtual_subnet("tiny", "fd00:0:0:1::/126"), prefixes=("fd00::/48",))
    await put(client, "/virtualNetworks/v6net", body, status=201)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefixes", "subnets", "target"),
    [
        pytest.param(
            ("24.30.0.0/16", "24.30.128.0/17"),
            (),
            "Fabrikam_VNet1/properties/addressSpace/addressPrefixes",
            id="space-overlaps-itself",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "24.31.1.0/24"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-outside-space",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "24.30.0.0/15"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-around-space",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "2001:db8::/64"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-of-other-family",
        ),
        pytest.param(
            ("24.30.1.0/24", "24.30.3.0/24"),
            (virtual_subnet("Web", "24.30.0.0/22"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-across-two-prefixes",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "24.30.1.0/24"), virtual_subnet("App", "24.30.1.128/25")),
            "subnets/App/properties/addressPrefix",
            id="subnets-overlap",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "24.30.1.0/24"), virtual_subnet("App", "24.30.1.0/24")),
            "subnets/App/properties/addressPrefix",
            id="subnets-identical",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "24.30.1.0/31"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-slash-31",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "24.30.1.7/32"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-slash-32",
        ),
        pytest.param(
            ("fd00::/48",),
            (virtual_subnet("Web", "fd00::/127"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-slash-127",
        ),
        pytest.param(
            ("24.30.0.0/16",),
            (virtual_subnet("Web", "24.30.1.1/24"),),
            "subnets/Web/properties/addressPrefix",
            id="subnet-host-bits",
        ),
        pytest.param(
            ("24.30.0.0/33",), (), "properties.addressSpace.addressPrefixes[0]", id="bad-prefix"
        ),
        pytest.param(
            ("24.30.1.0",), (), "properties.addressSpace.addressPrefixes[0]", id="no-length"
        ),
        pytest.param((), (), "properties.addressSpace.addressPrefixes", id="empty-space"),
    ],
)
async def test_address_space_and_subnet_rules(
    client: httpx.AsyncClient, prefixes: tuple[str, ...], subnets: tuple[Json, ...], target: str
) -> None:
    await create_provider_network(client)
    body = virtual_network(*subnets, prefixes=prefixes)
    await assert_put_rejected(client, VNET, body, target=target, watch=(LN,))
    await assert_absent(client, VNET)


async def test_child_uri_subnet_must_fit_its_network(client: httpx.AsyncClient) -> None:
    await create_vnet(client, virtual_subnet("Web", "24.30.1.0/24"))
    for prefix in ("24.30.1.64/26", "24.31.0.0/24", "24.30.2.0/31"):
        await assert_put_rejected(
            client,
            APP,
            virtual_subnet("App", prefix),
            target="Fabrikam_VNet1/subnets/App/properties/addressPrefix",
        )
    # Moving a subnet onto a sibling is refused too.
    await put(client, APP, virtual_subnet("App", "24.30.2.0/24"), status=201)
    await assert_put_rejected(
        client, APP, virtual_subnet("App", "24.30.1.0/25"), target="App/properties/addressPrefix"
    )


async def test_address_space_cannot_shrink_below_a_subnet(client: httpx.AsyncClient) -> None:
    await create_vnet(client, virtual_subnet("Web", "24.30.1.0/24"))
    body = virtual_network(prefixes=("24.30.2.0/24",))
    del body["properties"]["subnets"]
    await assert_put_rejected(client, VNET, body, target="subnets/Web/properties/addressPrefix")


@pytest.mark.parametrize(
    ("properties", "code", "target"),
    [
        pytest.param(
            {"addressPrefix": None}, "InvalidInput", "properties.addressPrefix", id="null-prefix"
        ),
        pytest.param({}, "InvalidInput", "properties.addressPrefix", id="no-prefix"),
        pytest.param(
            {"addressPrefix": "24.30.1.0/24", "accessControlList": ref("/accessControlLists/no")},
            "InvalidReference",
            "App/properties/accessControlList",
            id="missing-acl",
        ),
        pytest.param(
            {"addressPrefix": "24.30.1.0/24", "routeTable": ref("/routeTables/no")},
            "InvalidReference",
            "App/properties/routeTable",
            id="missing-route-table",
        ),
        pytest.param(
            {"addressPrefix": "24.30.1.0/24", "routeTable": ref(LN)},
            "InvalidReference",
            "App/properties/routeTable",
            id="route-table-of-wrong-kind",
        ),
        pytest.param(
            {"addressPrefix": "24.30.1.0/24", "accessControlList": "not a reference"},
            "InvalidReference",
            "App/properties/accessControlList",
            id="malformed-acl-reference",
        ),
    ],
)
async def test_bad_subnet_is_rejected(
    client: httpx.AsyncClient, properties: Json, code: str, target: str
) -> None:
    await create_vnet(client)
    await assert_put_rejected(client, APP, {"properties": properties}, target=target, code=code)
    await assert_absent(client, APP)


@pytest.mark.parametrize(
    "logical_network_path",
    [
        pytest.param("/logicalNetworks/Mgmt", id="not-hnv"),
        pytest.param("/logicalNetworks/Nope", id="missing"),
        pytest.param("/macPools/Nope", id="wrong-kind"),
        pytest.param(f"{LN}/subnets/PA", id="provider-subnet"),
    ],
)
async def test_logical_network_must_be_an_hnv_provider_network(
    client: httpx.AsyncClient, logical_network_path: str
) -> None:
    await create_provider_network(client)
    await put(client, "/logicalNetworks/Mgmt", logical_network(), status=201)
    body = virtual_network(logical_network_path=logical_network_path)
    await assert_put_rejected(
        client,
        VNET,
        body,
        code="InvalidReference",
        target="Fabrikam_VNet1/properties/logicalNetwork",
        watch=("/logicalNetworks/Mgmt",),
    )
    assert props(await get(client, "/logicalNetworks/Mgmt"))["virtualNetworks"] == []


async def test_logical_network_is_required(client: httpx.AsyncClient) -> None:
    await create_provider_network(client)
    body = virtual_network()
    body["properties"]["logicalNetwork"] = None
    await assert_put_rejected(client, VNET, body, target="properties.logicalNetwork")
    del body["properties"]["addressSpace"]
    body["properties"]["logicalNetwork"] = ref(LN)
    await assert_put_rejected(client, VNET, body, target="properties.addressSpace")


async def test_provider_network_carrying_vnets_stays_one(client: httpx.AsyncClient) -> None:
    await create_vnet(client)
    turned_off = provider_network(resource_id="HNVPA")
    turned_off["properties"]["networkVirtualizationEnabled"] = "false"
    for body in (turned_off, {"properties": {}}):
        await assert_put_rejected(
            client,
            LN,
            body,
            code="ResourceInUse",
            status=409,
            target="HNVPA/properties/networkVirtualizationEnabled",
            watch=(VNET,),
        )
    error = await assert_delete_rejected(client, LN, target=LN, watch=(VNET,))
    assert [d["target"] for d in error["details"]] == [VNET]
    # Without the virtual network it may become an ordinary logical network again.
    await delete(client, VNET)
    updated = await put(client, LN, turned_off, status=200)
    assert props(updated)["networkVirtualizationEnabled"] is False


async def test_put_subnet_under_missing_network_is_a_failed_precondition(
    client: httpx.AsyncClient,
) -> None:
    await create_provider_network(client)
    await assert_put_rejected(
        client,
        WEB,
        virtual_subnet("Web", "24.30.1.0/24"),
        code="PreconditionFailed",
        status=412,
        target=VNET,
        watch=(LN,),
    )
    await assert_absent(client, VNET)


# -- ACL and route table references -----------------------------------------------------


async def test_acl_and_route_table_in_use_by_a_subnet_cannot_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    await put(client, ACL, acl(acl_rule("AllowAll", 100)), status=201)
    await put(client, ROUTES, route_table(route("default", "0.0.0.0/0")), status=201)
    web = virtual_subnet(
        "Web", "24.30.1.0/24", accessControlList=ref(ACL), routeTable=ref("/RouteTables/ViaNVA")
    )
    await create_vnet(client, web)
    for path, member in ((ACL, "accessControlList"), (ROUTES, "routeTable")):
        error = await assert_delete_rejected(client, path, target=path, watch=(VNET,))
        assert [d["target"] for d in error["details"]] == [WEB]
        assert member in error["message"]

    # Detaching them (a subnet re-PUT without the references) frees both.
    await put(client, WEB, virtual_subnet("Web", "24.30.1.0/24"), status=200)
    assert props(await get(client, ACL))["subnets"] == []
    assert props(await get(client, ROUTES))["subnets"] == []
    await delete(client, ACL)
    await delete(client, ROUTES)
