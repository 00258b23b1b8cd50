"""A tenant build-out as a PowerShell script sends it, end to end: the fabric it needs, ACLs,
a three-tier virtual network, VM NICs placed on a host, a container host with one endpoint per
container; then what the script must not be allowed to do; then the teardown."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.bodies import (
    acl_rule,
    cmdlet_body,
    connection,
    ip_configuration,
    mac_pool,
    network_interface,
    nic,
    server,
    virtual_subnet,
)
from tests.support.nbi import (
    PS_HEADERS,
    Json,
    assert_absent,
    assert_configuration_state,
    assert_delete_rejected,
    assert_error,
    assert_put_rejected,
    delete,
    get,
    get_all,
    ids,
    props,
    put,
    refs,
    url,
    without_read_times,
)

HOST_CERT = "/credentials/NCHostCert"
MAC_POOL = "/macPools/DefaultMacPool"
HNVPA = "/logicalNetworks/HNVPA"
PA_SUBNET = f"{HNVPA}/subnets/10.10.56.0_23"
SWITCH_ID = "3d2e1f0a-9b8c-4d7e-a6f5-e4d3c2b1a098"
HOST = f"/servers/{SWITCH_ID}"
WEB_ACL = "/accessControlLists/Fabrikam-Web"
APP_ACL = "/accessControlLists/Fabrikam-App"
CONTAINER_ACL = "/accessControlLists/Fabrikam-Container"
VNET = "/virtualNetworks/Fabrikam_VNet1"
WEB = f"{VNET}/subnets/Web"
APP = f"{VNET}/subnets/App"
DB = f"{VNET}/subnets/DB"
WEB_NICS = ("/networkInterfaces/WebVM1_Nic1", "/networkInterfaces/WebVM2_Nic1")
APP_NICS = ("/networkInterfaces/AppVM1_Nic1", "/networkInterfaces/AppVM2_Nic1")
CONTAINER_HOST = "/networkInterfaces/ContainerHost1_Nic1"
CONTAINERS = tuple(f"IP_24_30_3_{101 + i}" for i in range(11))
NICS = (*WEB_NICS, *APP_NICS, CONTAINER_HOST)


async def wait_succeeded(client: httpx.AsyncClient, path: str) -> Json:
    """Poll ``path`` while it is Updating, as the NetworkController cmdlets do."""
    for _ in range(50):
        resource = await get(client, path)
        if props(resource)["provisioningState"] != "Updating":
            assert props(resource)["provisioningState"] == "Succeeded", resource
            return resource
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} stays Updating")


def powershell_nic(resource_id: str, *configs: Json) -> Json:
    """New-NetworkControllerNetworkInterface's body for a VM NIC on the host, MAC from the
    pool."""
    return cmdlet_body(
        resource_id,
        PrivateMacAllocationMethod="dynamic",
        PrivateMacAddress=None,
        IsPrimary="True",
        IsHostVirtualNetworkInterface="False",
        DnsSettings={"DnsServers": ["24.30.1.250"]},
        Server={"ResourceRef": f"/Servers/{SWITCH_ID}"},
        PortSettings={"MacSpoofingEnabled": "Disabled", "QosSettings": None},
        IpConfigurations=list(configs),
    )


def powershell_ip_configuration(
    resource_id: str, subnet: Json, address: str | None = None, acl: Json | None = None
) -> Json:
    """An ipConfiguration as the cmdlets serialise it: the subnet and ACL are the objects the
    script got from Get-NetworkControllerVirtualSubnet / ...AccessControlList."""
    return cmdlet_body(
        resource_id,
        PrivateIPAddress=address,
        PrivateIPAllocationMethod="Static" if address else "Dynamic",
        Subnet=subnet,
        AccessControlList=acl,
    )


async def build_fabric(client: httpx.AsyncClient) -> None:
    await put(
        client,
        HOST_CERT,
        cmdlet_body("NCHostCert", Type="X509Certificate", Value="8E7D6C5B4A3C4A9F1E8B2D7C6A5F4E3D"),
        status=201,
    )
    await put(
        client,
        MAC_POOL,
        mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF", resource_id="DefaultMacPool"),
        status=201,
    )
    await put(
        client,
        HNVPA,
        cmdlet_body("HNVPA", NetworkVirtualizationEnabled="True", Subnets=None),
        status=201,
    )
    await put(
        client,
        PA_SUBNET,
        cmdlet_body(
            "10.10.56.0_23",
            AddressPrefix="10.10.56.0/23",
            VlanID="11",
            DefaultGateways=["10.10.56.1"],
            IpPools=[
                {
                    "resourceId": "PAPool",
                    "properties": {"startIpAddress": "10.10.56.10", "endIpAddress": "10.10.57.200"},
                }
            ],
        ),
        status=201,
    )
    host_nic = network_interface(SWITCH_ID, PA_SUBNET, instance_id=SWITCH_ID)
    body = server(
        connection(HOST_CERT, address="sdnhost1.contoso.com", port="6645"),
        resource_id=SWITCH_ID,
        instance_id=SWITCH_ID,
        networkInterfaces=[host_nic],
    )
    await put(client, f"/Servers/{SWITCH_ID}", body, status=201)


async def build_acls(client: httpx.AsyncClient) -> None:
    web_rules = [
        acl_rule("AllowHTTP", "100", destinationPortRange="80", protocol="tcp"),
        acl_rule("AllowHTTPS", "101", destinationPortRange="443", protocol="TCP"),
    ]
    await put(
        client,
        WEB_ACL,
        cmdlet_body("Fabrikam-Web", AclRules=web_rules, InboundDefaultAction="Deny"),
        status=201,
    )
    app_rule = acl_rule(
        "AllowFromWeb",
        "100",
        destinationPortRange="8080",
        sourceAddressPrefix="24.30.1.0/24",
        type="INBOUND",
    )
    await put(
        client,
        APP_ACL,
        cmdlet_body("Fabrikam-App", AclRules=[app_rule], InboundDefaultAction="deny"),
        status=201,
    )
    container_rule = acl_rule("AllowSQL", 100, destinationPortRange="1433")
    body = cmdlet_body("Fabrikam-Container", AclRules=[container_rule], InboundDefaultAction="Deny")
    await put(client, CONTAINER_ACL, body, status=201)


async def build_virtual_network(client: httpx.AsyncClient) -> None:
    # $vsubnet.Properties.AccessControlList = $acl: the whole ACL object goes in the body.
    web_acl, app_acl = await get(client, WEB_ACL), await get(client, APP_ACL)
    subnets = [
        cmdlet_body("Web", AddressPrefix="24.30.1.0/24", AccessControlList=web_acl),
        cmdlet_body("App", AddressPrefix="24.30.2.0/24", AccessControlList=app_acl),
        cmdlet_body("DB", AddressPrefix="24.30.3.0/24", AccessControlList=None),
    ]
    body = cmdlet_body(
        "Fabrikam_VNet1",
        AddressSpace={"AddressPrefixes": ["24.30.0.0/16"]},
        LogicalNetwork=await get(client, HNVPA),
        DhcpOptions={"DnsServers": ["24.30.1.250"]},
        Subnets=subnets,
    )
    await put(client, VNET, body, status=201)


async def build_nics(client: httpx.AsyncClient) -> None:
    web, app = await get(client, WEB), await get(client, APP)
    placements = (
        (WEB_NICS[0], web, "24.30.1.101"),
        (WEB_NICS[1], web, None),
        (APP_NICS[0], app, "24.30.2.101"),
        (APP_NICS[1], app, None),
    )
    for path, subnet, address in placements:
        name = path.rsplit("/", 1)[1]
        config = powershell_ip_configuration(name.replace("_Nic1", "_IP1"), subnet, address)
        await put(client, path, powershell_nic(name, config), status=201)

    # The container host VM: its own address in DB, then one ipConfiguration per container,
    # each written at its own URI as the container host agent adds endpoints.
    db = await get(client, DB)
    own = powershell_ip_configuration("ContainerHost1_IP1", db, "24.30.3.10")
    await put(client, CONTAINER_HOST, powershell_nic("ContainerHost1_Nic1", own), status=201)
    container_acl = await get(client, CONTAINER_ACL)
    for index, endpoint in enumerate(CONTAINERS):
        address = f"24.30.3.{101 + index}"
        acl = container_acl if index % 3 == 0 else None
        body = powershell_ip_configuration(endpoint, db, address, acl)
        created = await put(
            client, f"{CONTAINER_HOST}/ipConfigurations/{endpoint}", body, status=201
        )
        assert props(created)["privateIPAddress"] == address


async def snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    """Everything the tenant build-out created, as read back."""
    shots: dict[str, Any] = {}
    for collection in (
        "/macPools",
        "/logicalNetworks",
        "/servers",
        "/accessControlLists",
        "/virtualNetworks",
        "/networkInterfaces",
    ):
        shots[collection] = without_read_times(await get_all(client, collection))
    return shots


async def test_tenant_buildout_and_teardown(client: httpx.AsyncClient) -> None:
    await build_fabric(client)
    await build_acls(client)
    await build_virtual_network(client)
    await build_nics(client)

    # -- every resource reaches Succeeded -------------------------------------------------
    for path in (HOST_CERT, MAC_POOL, HNVPA, HOST, WEB_ACL, APP_ACL, CONTAINER_ACL, VNET, *NICS):
        await wait_succeeded(client, path)

    # -- the virtual network: subnets with VSIDs and their ipConfigurations ---------------
    vnet = await get(client, VNET)
    assert props(vnet)["logicalNetwork"] == {"resourceRef": HNVPA}
    assert ids(props(vnet)["subnets"]) == ["Web", "App", "DB"]
    numbers = [props(s)["vsid"] for s in props(vnet)["subnets"]]
    assert len(set(numbers)) == 3
    assert all(4096 <= n <= 16_777_214 for n in numbers)
    web, app, db = props(vnet)["subnets"]
    assert props(web)["accessControlList"] == {"resourceRef": WEB_ACL}
    assert props(app)["accessControlList"] == {"resourceRef": APP_ACL}
    assert "accessControlList" not in props(db)
    assert refs(props(web)["ipConfigurations"]) == [
        f"{WEB_NICS[0]}/ipConfigurations/WebVM1_IP1",
        f"{WEB_NICS[1]}/ipConfigurations/WebVM2_IP1",
    ]
    assert refs(props(app)["ipConfigurations"]) == [
        f"{APP_NICS[0]}/ipConfigurations/AppVM1_IP1",
        f"{APP_NICS[1]}/ipConfigurations/AppVM2_IP1",
    ]
    container_configs = [
        f"{CONTAINER_HOST}/ipConfigurations/{name}" for name in ("ContainerHost1_IP1", *CONTAINERS)
    ]
    assert sorted(refs(props(db)["ipConfigurations"])) == sorted(container_configs)
    assert refs(props(await get(client, HNVPA))["virtualNetworks"]) == [VNET]

    # -- all NICs in one GET ----------------------------------------------------------------
    nics = await get_all(client, "/networkInterfaces")
    assert sorted(n["resourceRef"] for n in nics) == sorted(NICS)
    macs = {n["resourceRef"]: props(n)["privateMacAddress"] for n in nics}
    assert len(set(macs.values())) == len(NICS)
    assert all(m.startswith("001DD8B71") and len(m) == 12 for m in macs.values())
    addresses: dict[str, str] = {}
    for item in nics:
        assert props(item)["provisioningState"] == "Succeeded"
        assert props(item)["privateMacAllocationMethod"] == "Dynamic"
        assert props(item)["server"] == {"resourceRef": HOST}
        # The host has no agent connected: provisioned, but not configured there.
        assert_configuration_state(item, "Failure", "HostNotConnectedToController")
        # What the client sent, and NC's defaults for the port settings it did not send.
        assert props(item)["portSettings"] == {
            "macSpoofingEnabled": "Disabled",
            "arpGuardEnabled": "Disabled",
            "dhcpGuardEnabled": "Disabled",
            "stormLimit": 0,
            "portFlowLimit": 0,
            "vmqWeight": 100,
            "iovWeight": 0,
        }
        for config in props(item)["ipConfigurations"]:
            assert props(config)["provisioningState"] == "Succeeded"
            assert config["etag"] == item["etag"]
            addresses[config["resourceRef"]] = props(config)["privateIPAddress"]
    assert len(addresses) == 4 + 12
    assert len(set(addresses.values())) == len(addresses)
    assert addresses[f"{WEB_NICS[0]}/ipConfigurations/WebVM1_IP1"] == "24.30.1.101"
    assert addresses[f"{WEB_NICS[1]}/ipConfigurations/WebVM2_IP1"] not in (
        "24.30.1.0",
        "24.30.1.1",
        "24.30.1.101",
        "24.30.1.255",
    )
    assert addresses[f"{WEB_NICS[1]}/ipConfigurations/WebVM2_IP1"].startswith("24.30.1.")
    assert addresses[f"{APP_NICS[1]}/ipConfigurations/AppVM2_IP1"].startswith("24.30.2.")
    container_host = next(n for n in nics if n["resourceRef"] == CONTAINER_HOST)
    assert len(props(container_host)["ipConfigurations"]) == 12
    with_acl = [
        c["resourceId"]
        for c in props(container_host)["ipConfigurations"]
        if props(c).get("accessControlList") == {"resourceRef": CONTAINER_ACL}
    ]
    assert with_acl == [CONTAINERS[i] for i in (0, 3, 6, 9)]
    assert sorted(refs(props(await get(client, CONTAINER_ACL))["ipConfigurations"])) == sorted(
        f"{CONTAINER_HOST}/ipConfigurations/{c}" for c in with_acl
    )
    assert refs(props(await get(client, WEB_ACL))["subnets"]) == [WEB]
    assert sorted(refs(props(await get(client, HOST))["virtualNetworkInterfaces"])) == sorted(NICS)
    pool = await get(client, MAC_POOL)
    assert props(pool)["usage"] == {
        "numberOfMacAddresses": 1024,
        "numberofMacAddressesAllocated": 5,
    }

    # -- what the script must not be allowed to do: 4xx, nothing changed ----------------------
    before = await snapshot(client)
    await assert_put_rejected(
        client,
        f"{VNET}/subnets/Web2",
        virtual_subnet("Web2", "24.30.1.128/25"),
        target="subnets/Web2/properties/addressPrefix",
    )
    await assert_put_rejected(
        client,
        f"{VNET}/subnets/Mgmt",
        virtual_subnet("Mgmt", "10.0.0.0/24"),
        target="subnets/Mgmt/properties/addressPrefix",
    )
    error = await assert_put_rejected(
        client,
        "/networkInterfaces/WebVM3_Nic1",
        nic(ip_configuration("WebVM3_IP1", WEB, "24.30.1.101")),
        code="IpAddressInUse",
        status=409,
        target="WebVM3_IP1/properties/privateIPAddress",
        watch=(WEB_NICS[0],),
    )
    assert f"{WEB_NICS[0]}/ipConfigurations/WebVM1_IP1" in error["message"]
    await assert_put_rejected(
        client,
        f"{CONTAINER_HOST}/ipConfigurations/IP_outside",
        ip_configuration("IP_outside", DB, "24.30.2.50"),
        target="IP_outside/properties/privateIPAddress",
    )
    assert await snapshot(client) == before

    # A script holding an etag from before someone else's write (a subnet re-PUT) loses.
    stale = vnet["etag"]
    rewritten = await put(client, DB, await get(client, DB), status=200)
    assert rewritten["etag"] != stale
    assert props(rewritten)["vsid"] == props(db)["vsid"]
    before = await snapshot(client)
    for path in (VNET, WEB):
        response = await client.put(
            url(path), json=await get(client, path), headers={**PS_HEADERS, "If-Match": stale}
        )
        assert_error(response, 412, "PreconditionFailed", target=path)
    response = await client.delete(url(WEB_NICS[0]), headers={"If-Match": stale})
    assert_error(response, 412, "PreconditionFailed", target=WEB_NICS[0])
    # (what is deleted, the resource the 409 names, one of the users it lists)
    in_use = (
        (WEB_ACL, WEB_ACL, WEB),
        (APP_ACL, APP_ACL, APP),
        (CONTAINER_ACL, CONTAINER_ACL, f"{CONTAINER_HOST}/ipConfigurations/{CONTAINERS[0]}"),
        (VNET, APP, f"{APP_NICS[0]}/ipConfigurations/AppVM1_IP1"),
        (DB, DB, f"{CONTAINER_HOST}/ipConfigurations/ContainerHost1_IP1"),
        (HNVPA, PA_SUBNET, VNET),
        (PA_SUBNET, PA_SUBNET, f"{HOST}/networkInterfaces/{SWITCH_ID}"),
        (MAC_POOL, MAC_POOL, WEB_NICS[0]),
        (HOST, HOST, CONTAINER_HOST),
        (HOST_CERT, HOST_CERT, HOST),
    )
    for path, target, user in in_use:
        error = await assert_delete_rejected(client, path, target=target)
        assert user in [d["target"] for d in error["details"]]
    for path, body in (
        ("/networkInterfaces/Missing/ipConfigurations/IP1", ip_configuration("IP1", WEB)),
        ("/virtualNetworks/Missing/subnets/Web", virtual_subnet("Web", "24.30.1.0/24")),
    ):
        parent = path.rsplit("/", 2)[0]
        await assert_put_rejected(
            client, path, body, code="PreconditionFailed", status=412, target=parent
        )
        await assert_absent(client, parent)
    assert await snapshot(client) == before

    # -- teardown: users before what they use -------------------------------------------------
    teardown = (
        *(f"{CONTAINER_HOST}/ipConfigurations/{c}" for c in CONTAINERS),
        *NICS,
        VNET,
        CONTAINER_ACL,
        APP_ACL,
        WEB_ACL,
        HOST,
        HOST_CERT,
        HNVPA,
    )
    for path in teardown:
        await delete(client, path)
        await assert_absent(client, path)
        await delete(client, path, status=204)
    pool = await get(client, MAC_POOL)
    assert props(pool)["usage"]["numberofMacAddressesAllocated"] == 0
    await delete(client, MAC_POOL)
    await delete(client, MAC_POOL, status=204)
    for collection in before:
        assert await get_all(client, collection) == [], collection
