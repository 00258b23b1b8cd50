"""An SDN Express style fabric build-out, end to end: create everything the way the deployment
scripts do, read it all back, then tear it down in reverse order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from tests.support.bodies import (
    cmdlet_body,
    connection,
    mac_pool,
    network_interface,
    route,
    route_table,
    server,
)
from tests.support.nbi import (
    assert_absent,
    assert_delete_rejected,
    child,
    delete,
    get,
    get_all,
    props,
    put,
    refs,
)

HOST_CERT = "/credentials/NCHostCert"
HOST_USER = "/credentials/NCHostUser"
MAC_POOL = "/macPools/DefaultMacPool"
HNVPA = "/logicalNetworks/HNVPA"
PA_SUBNET = f"{HNVPA}/subnets/10.10.56.0_23"
PA_POOL = f"{PA_SUBNET}/ipPools/10.10.56.0_23_Pool"
SWITCH_ID = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
SERVER = f"/servers/{SWITCH_ID}"
SERVER_NIC = f"{SERVER}/networkInterfaces/{SWITCH_ID}"
ACL = "/accessControlLists/Tenant1-Web"
ROUTE_TABLE = "/routeTables/Tenant1-NVA"

# Everything the build-out creates, in creation order (children after their parents).
CREATED = (
    HOST_CERT,
    HOST_USER,
    MAC_POOL,
    HNVPA,
    PA_SUBNET,
    PA_POOL,
    SERVER,
    SERVER_NIC,
    ACL,
    f"{ACL}/aclRules/AllowRDP",
    f"{ACL}/aclRules/AllowWeb",
    f"{ACL}/aclRules/DenyOutboundSMB",
    ROUTE_TABLE,
    f"{ROUTE_TABLE}/routes/default",
)
COLLECTIONS = (
    "/credentials",
    "/macPools",
    "/logicalNetworks",
    "/servers",
    "/accessControlLists",
    "/routeTables",
)


def resources_in(document: object) -> Iterator[dict[str, Any]]:
    """Every resource (anything with a resourceRef and properties) inside ``document``."""
    if isinstance(document, dict):
        if "resourceRef" in document and "properties" in document:
            yield document
        for value in document.values():
            yield from resources_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from resources_in(item)


async def build_fabric(client: httpx.AsyncClient) -> None:
    # Credentials the NC uses to reach the hosts: the host certificate and an admin account.
    await put(
        client,
        "/Credentials/NCHostCert",
        cmdlet_body(
            "NCHostCert", Type="X509Certificate", Value="3C4A9F1E8B2D7C6A5F4E3D2C1B0A9F8E7D6C5B4A"
        ),
        status=201,
    )
    await put(
        client,
        "/Credentials/NCHostUser",
        cmdlet_body(
            "NCHostUser",
            Type="usernamePassword",
            UserName="CONTOSO\\sdnadmin",
            Value="Str0ng!Passw0rd",
        ),
        status=201,
    )
    await put(
        client,
        "/MacPools/DefaultMacPool",
        mac_pool("001DD8B71C00", "00:1D:D8:B7:1F:FF", resource_id="DefaultMacPool"),
        status=201,
    )

    # The HNV provider network, then its subnet, then the subnet's pool: three separate PUTs
    # as New-NetworkControllerLogicalNetwork / ...LogicalSubnet / ...IPPool send them.
    await put(
        client,
        "/logicalnetworks/HNVPA",
        cmdlet_body("HNVPA", NetworkVirtualizationEnabled="True", Subnets=None),
        status=201,
    )
    await put(
        client,
        "/logicalnetworks/HNVPA/subnets/10.10.56.0_23",
        cmdlet_body(
            "10.10.56.0_23",
            AddressPrefix="10.10.56.0/23",
            VlanID="11",
            DefaultGateways=["10.10.56.1"],
            DnsServers=["10.10.0.10"],
            IsPublic=False,
            IpPools=None,
            NetworkInterfaces=None,
        ),
        status=201,
    )
    await put(
        client,
        "/logicalnetworks/HNVPA/subnets/10.10.56.0_23/ippools/10.10.56.0_23_Pool",
        cmdlet_body(
            "10.10.56.0_23_Pool",
            StartIpAddress="10.10.56.10",
            EndIpAddress="10.10.57.200",
            Usage=None,
        ),
        status=201,
    )

    # The host: resourceId = its vSwitch id; a certificate and a password connection; one NIC
    # on the PA subnet.
    host = "sdnhost1.contoso.com"
    host_nic = network_interface(
        SWITCH_ID,
        "/logicalnetworks/hnvpa/subnets/10.10.56.0_23",
        instance_id=SWITCH_ID,
        isBMC=False,
    )
    body = server(
        connection("/credentials/NCHostCert", "X509Certificate", address=host, port="6645"),
        connection("/credentials/NCHostUser", "UsernamePassword", address=host),
        resource_id=SWITCH_ID,
        instance_id=SWITCH_ID,
        networkInterfaces=[host_nic],
        certificate="MIIBszCCAVmgAwIBAgIQ",
    )
    await put(client, f"/Servers/{SWITCH_ID}", body, status=201)

    # A tenant ACL created empty, then filled rule by rule at the child URI.
    await put(
        client,
        ACL,
        cmdlet_body("Tenant1-Web", AclRules=None, InboundDefaultAction="Deny"),
        status=201,
    )
    rules = [
        ("AllowRDP", "Inbound", "TCP", "3389", "100"),
        ("AllowWeb", "inbound", "tcp", "80,443", "110"),
        ("DenyOutboundSMB", "OUTBOUND", "Tcp", "445", "110"),
    ]
    for rule_id, direction, protocol, ports, priority in rules:
        await put(
            client,
            f"{ACL}/aclRules/{rule_id}",
            cmdlet_body(
                rule_id,
                Protocol=protocol,
                SourcePortRange="0-65535",
                DestinationPortRange=ports,
                SourceAddressPrefix="*" if direction.lower() == "inbound" else "10.0.1.0/24",
                DestinationAddressPrefix="10.0.1.0/24" if direction.lower() == "inbound" else "*",
                Action="Deny" if rule_id.startswith("Deny") else "Allow",
                Type=direction,
                Priority=priority,
                Logging="Enabled",
            ),
            status=201,
        )

    # A route table sending everything through a virtual appliance.
    default = route("default", "0.0.0.0/0", "VirtualAppliance", "10.0.1.4")
    await put(client, ROUTE_TABLE, route_table(default), status=201)


async def test_sdn_express_buildout_and_teardown(client: httpx.AsyncClient) -> None:
    await build_fabric(client)

    # -- read everything back -----------------------------------------------------------
    fetched = {path: await get(client, path) for path in CREATED}
    for path, resource in fetched.items():
        assert resource["resourceRef"] == path
        assert props(resource)["provisioningState"] == "Succeeded", path
    listed = {collection: await get_all(client, collection) for collection in COLLECTIONS}
    every = [r for resources in listed.values() for r in resources_in(resources)]
    assert sorted(r["resourceRef"] for r in every) == sorted(CREATED)
    assert all(props(r)["provisioningState"] == "Succeeded" for r in every)

    # Secrets stay secret, certificates are shown, MACs and values are canonical.
    assert "value" not in props(fetched[HOST_USER])
    assert props(fetched[HOST_CERT])["value"] == "3C4A9F1E8B2D7C6A5F4E3D2C1B0A9F8E7D6C5B4A"
    assert "Str0ng!Passw0rd" not in repr(listed)
    assert props(fetched[MAC_POOL])["endMacAddress"] == "00-1D-D8-B7-1F-FF"
    assert props(fetched[MAC_POOL])["usage"]["numberOfMacAddresses"] == 1024
    assert props(fetched[HNVPA])["networkVirtualizationEnabled"] is True
    assert props(fetched[PA_SUBNET])["vlanID"] == 11
    assert props(fetched[PA_POOL])["usage"]["numberOfIPAddresses"] == 447
    assert [c["credential"]["resourceRef"] for c in props(fetched[SERVER])["connections"]] == [
        HOST_CERT,
        HOST_USER,
    ]
    assert props(fetched[SERVER])["connections"][0]["port"] == 6645
    assert refs(props(fetched[PA_SUBNET])["networkInterfaces"]) == [SERVER_NIC]
    assert props(fetched[ACL])["inboundDefaultAction"] == "Deny"
    assert [props(r)["priority"] for r in props(fetched[ACL])["aclRules"]] == [100, 110, 110]
    assert (
        props(child(fetched[ROUTE_TABLE], "routes", "default"))["nextHopType"] == "VirtualAppliance"
    )

    # Every child shows its top-level resource's etag.
    for path, resource in fetched.items():
        top = "/" + "/".join(path.strip("/").split("/")[:2])
        assert resource["etag"] == fetched[top]["etag"], path

    # The fabric is in use: what the server needs cannot go first.
    await assert_delete_rejected(client, HOST_CERT, target=HOST_CERT)
    await assert_delete_rejected(client, PA_SUBNET, target=PA_SUBNET)

    # -- tear down in reverse order -------------------------------------------------------
    for path in reversed(CREATED):
        await delete(client, path)
        await assert_absent(client, path)
        await delete(client, path, status=204)
    for collection in COLLECTIONS:
        assert await get_all(client, collection) == []
