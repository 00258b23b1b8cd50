"""networkInterfaces (tenant NICs): what a PowerShell body becomes, MAC notation, port and QoS
settings, DNS settings and flags, the host a NIC is placed on, ipConfigurations at their own
URI. MAC allocation is in test_mac_allocation, addresses in test_ip_*."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import (
    acl,
    acl_rule,
    connection,
    credential,
    ip_configuration,
    mac_pool,
    nic,
    provider_network,
    ref,
    server,
    virtual_network,
    virtual_subnet,
)
from tests.support.nbi import (
    Json,
    assert_absent,
    assert_configuration_state,
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
    without_etags,
    without_read_times,
)

POOL = "/macPools/DefaultMacPool"
VNET = "/virtualNetworks/Fabrikam"
WEB = f"{VNET}/subnets/Web"
NIC = "/networkInterfaces/WebVM1_Nic1"
HOST1 = "/servers/host1"
HOST2 = "/servers/host2"


async def create_pool(client: httpx.AsyncClient) -> None:
    await put(client, POOL, mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1C-FF"), status=201)


async def create_vnet(client: httpx.AsyncClient) -> None:
    await put(client, "/logicalNetworks/HNVPA", provider_network(), status=201)
    body = virtual_network(virtual_subnet("Web", "24.30.1.0/24"))
    await put(client, VNET, body, status=201)


async def create_hosts(client: httpx.AsyncClient) -> None:
    await put(client, "/credentials/cert", credential("X509Certificate", value="AB12"), status=201)
    for host in (HOST1, HOST2):
        address = f"{host.rsplit('/', 1)[1]}.contoso.com"
        body = server(connection("/credentials/cert", address=address))
        await put(client, host, body, status=201)


# -- accepted input and canonical output ------------------------------------------------


async def test_powershell_nic_comes_back_canonical(client: httpx.AsyncClient) -> None:
    await create_vnet(client)
    await create_hosts(client)
    await put(client, "/accessControlLists/Web", acl(acl_rule("AllowWeb", 100)), status=201)
    # $nic.Properties as New-NetworkControllerNetworkInterface sends it after a GET.
    body = {
        "resourceId": "WebVM1_Nic1",
        "resourceRef": None,
        "instanceId": "f00dfeed-0000-0000-0000-000000000000",
        "etag": 'W/"f00dfeed-0000-0000-0000-000000000000"',
        "tags": None,
        "resourceMetadata": None,
        "properties": {
            "ProvisioningState": "Failed",
            "ConfigurationState": None,
            "PrivateMacAddress": "00-15-5d-3a-55-01",
            "PrivateMacAllocationMethod": "STATIC",
            "PreviousPrivateMacAddress": None,
            "DnsSettings": {"DnsServers": ["24.30.1.250", "24.30.1.251"]},
            "IsHostVirtualNetworkInterface": "False",
            "IsPrimary": "true",
            "IsMultitenantStack": "FALSE",
            "InternalDnsNameLabel": "webvm1",
            "Server": {"resourceRef": "/Servers/HOST1", "properties": {"connections": []}},
            "PortSettings": {
                "MacSpoofingEnabled": "disabled",
                "ArpGuardEnabled": "True",
                "DhcpGuardEnabled": False,
                "StormLimit": "0",
                "PortFlowLimit": "1000",
                "VmqWeight": "100",
                "IovWeight": "0",
                "IovInterruptModeration": "default",
                "IovQueuePairsRequested": "1",
                "QosSettings": {
                    "OutboundReservedValue": "10",
                    "OutboundMaximumMbps": "1000",
                    "InboundMaximumMbps": "500",
                    "EnableHardwareLimits": "false",
                },
            },
            "IpConfigurations": [
                {
                    "ResourceId": "WebVM1_IP1",
                    "Etag": None,
                    "Properties": {
                        "ProvisioningState": "Updating",
                        "PrivateIPAddress": "24.30.1.101",
                        "PrivateIPAllocationMethod": "static",
                        "PrivateIPAddressVersion": "ipv4",
                        "Subnet": {"ResourceRef": "/virtualnetworks/fabrikam/subnets/web"},
                        "AccessControlList": "/accessControlLists/web",
                        "LoadBalancerBackendAddressPools": None,
                    },
                }
            ],
        },
    }
    created = await put(client, "/NetworkInterfaces/WebVM1_Nic1", body, status=201)

    assert created["resourceRef"] == NIC
    assert created["instanceId"] != body["instanceId"]
    config = child(created, "ipConfigurations", "WebVM1_IP1")
    # Placed on host1, whose agent is not connected: the NIC cannot be configured there.
    state = assert_configuration_state(created, "Failure", "HostNotConnectedToController")
    assert "server /servers/" in state["detailedInfo"][0]["message"]
    assert props(created) == {
        "provisioningState": "Succeeded",
        "configurationState": state,
        "privateMacAddress": "00155D3A5501",
        "privateMacAllocationMethod": "Static",
        "dnsSettings": {"dnsServers": ["24.30.1.250", "24.30.1.251"]},
        "portSettings": {
            "macSpoofingEnabled": "Disabled",
            "arpGuardEnabled": "Enabled",
            "dhcpGuardEnabled": "Disabled",
            "stormLimit": 0,
            "portFlowLimit": 1000,
            "vmqWeight": 100,
            "iovWeight": 0,
            "iovInterruptModeration": "Default",
            "iovQueuePairsRequested": 1,
            "qosSettings": {
                "outboundReservedValue": 10,
                "outboundMaximumMbps": 1000,
                "inboundMaximumMbps": 500,
                "enableHardwareLimits": False,
            },
        },
        "isHostVirtualNetworkInterface": False,
        "isPrimary": True,
        "isMultitenantStack": False,
        "internalDnsNameLabel": "webvm1",
        "server": {"resourceRef": HOST1},
        "serviceInsertionElements": [],
        "ipConfigurations": [config],
    }
    assert config["resourceRef"] == f"{NIC}/ipConfigurations/WebVM1_IP1"
    assert config["etag"] == created["etag"]
    assert props(config) == {
        "provisioningState": "Succeeded",
        "privateIPAddress": "24.30.1.101",
        "privateIPAllocationMethod": "Static",
        "privateIPAddressVersion": "IPv4",
        "subnet": {"resourceRef": WEB},
        "accessControlList": {"resourceRef": "/accessControlLists/Web"},
        # What NC renders even when empty (clients iterate them without checking).
        "loadBalancerBackendAddressPools": [],
        "loadBalancerInboundNatRules": [],
    }
    assert without_read_times(await get(client, NIC)) == without_read_times(created)
    assert await get(client, config["resourceRef"]) == config
    listed = await get_all(client, "/networkInterfaces")
    assert without_read_times(listed) == [without_read_times(created)]
    assert refs(props(await get(client, HOST1))["virtualNetworkInterfaces"]) == [NIC]
    assert refs(props(await get(client, WEB))["ipConfigurations"]) == [config["resourceRef"]]
    assert refs(props(await get(client, "/accessControlLists/Web"))["ipConfigurations"]) == [
        config["resourceRef"]
    ]
    # Read-modify-write: the GET output, configurationState and all, goes back unchanged.
    fetched = await get(client, NIC)
    again = await put(client, NIC, fetched, status=200)
    assert without_read_times(without_etags(again)) == without_read_times(without_etags(created))


async def test_defaults_of_a_bare_nic(client: httpx.AsyncClient) -> None:
    created = await put(client, NIC, nic(privateMacAddress="00155D3A5501"), status=201)
    # On no server yet: nothing to configure, nothing failed.
    state = assert_configuration_state(created, "Uninitialized")
    assert props(created) == {
        "provisioningState": "Succeeded",
        "configurationState": state,
        "privateMacAddress": "00155D3A5501",
        "privateMacAllocationMethod": "Static",
        "isHostVirtualNetworkInterface": False,
        "isPrimary": True,
        "isMultitenantStack": False,
        # What NC renders for a NIC that never set them (docs/nbi.md).
        "dnsSettings": {"dnsServers": []},
        "portSettings": {
            "macSpoofingEnabled": "Disabled",
            "arpGuardEnabled": "Disabled",
            "dhcpGuardEnabled": "Disabled",
            "stormLimit": 0,
            "portFlowLimit": 0,
            "vmqWeight": 100,
            "iovWeight": 0,
        },
        "serviceInsertionElements": [],
        "ipConfigurations": [],
    }
    flags = {"isHostVirtualNetworkInterface": "true", "isPrimary": "False"}
    host_vnic = await put(client, NIC, nic(privateMacAddress="00155D3A5501", **flags))
    assert props(host_vnic)["isHostVirtualNetworkInterface"] is True
    assert props(host_vnic)["isPrimary"] is False


@pytest.mark.parametrize(
    "mac",
    ["00155D3A5501", "00155d3a5501", "00-15-5D-3A-55-01", "00:15:5d:3a:55:01", " 00155D3A5501 "],
)
async def test_static_mac_in_any_notation_is_answered_bare_upper_case(
    client: httpx.AsyncClient, mac: str
) -> None:
    created = await put(client, NIC, nic(privateMacAddress=mac), status=201)
    assert props(created)["privateMacAddress"] == "00155D3A5501"
    assert props(created)["privateMacAllocationMethod"] == "Static"


@pytest.mark.parametrize(
    ("properties", "target"),
    [
        pytest.param(
            {"privateMacAllocationMethod": "Static"},
            "WebVM1_Nic1/properties/privateMacAddress",
            id="static-without-mac",
        ),
        pytest.param(
            {"privateMacAllocationMethod": "static", "privateMacAddress": None},
            "WebVM1_Nic1/properties/privateMacAddress",
            id="static-with-null-mac",
        ),
        pytest.param(
            {"privateMacAddress": "00155D3A55"}, "properties.privateMacAddress", id="short-mac"
        ),
        pytest.param(
            {"privateMacAddress": "00155D3A55G1"}, "properties.privateMacAddress", id="not-hex"
        ),
        pytest.param(
            {"privateMacAllocationMethod": "Sticky"},
            "properties.privateMacAllocationMethod",
            id="unknown-method",
        ),
        pytest.param(
            {"dnsSettings": {"dnsServers": ["dns.contoso.com"]}},
            "properties.dnsSettings.dnsServers[0]",
            id="dns-server-not-an-address",
        ),
        pytest.param({"isPrimary": "maybe"}, "properties.isPrimary", id="flag-not-a-boolean"),
        pytest.param(
            {"portSettings": {"vmqWeight": 101}},
            "properties.portSettings.vmqWeight",
            id="vmq-weight-above-100",
        ),
        pytest.param(
            {"portSettings": {"macSpoofingEnabled": "Sometimes"}},
            "properties.portSettings.macSpoofingEnabled",
            id="unknown-switch",
        ),
    ],
)
async def test_bad_nic_is_rejected(
    client: httpx.AsyncClient, properties: Json, target: str
) -> None:
    await create_pool(client)
    await assert_put_rejected(client, NIC, nic(**properties), target=target, watch=(POOL,))
    await assert_absent(client, NIC)


# -- QoS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "qos",
    [
        {"outboundReservedValue": 100, "outboundMaximumMbps": 100},
        {"outboundReservedValue": "500", "outboundMaximumMbps": "0"},
        {"outboundReservedValue": 0, "outboundMaximumMbps": 0, "inboundMaximumMbps": 0},
        {"inboundMaximumMbps": "10000"},
    ],
    ids=["reservation-at-maximum", "maximum-0-means-unlimited", "all-zero", "inbound-only"],
)
async def test_valid_qos_settings(client: httpx.AsyncClient, qos: Json) -> None:
    body = nic(privateMacAddress="00155D3A5501", portSettings={"qosSettings": qos})
    created = await put(client, NIC, body, status=201)
    assert props(created)["portSettings"]["qosSettings"] == {k: int(v) for k, v in qos.items()}


@pytest.mark.parametrize(
    ("qos", "target"),
    [
        pytest.param(
            {"outboundReservedValue": -1},
            "properties.portSettings.qosSettings.outboundReservedValue",
            id="negative-reservation",
        ),
        pytest.param(
            {"outboundMaximumMbps": "-100"},
            "properties.portSettings.qosSettings.outboundMaximumMbps",
            id="negative-outbound-maximum",
        ),
        pytest.param(
            {"inboundMaximumMbps": -5},
            "properties.portSettings.qosSettings.inboundMaximumMbps",
            id="negative-inbound-maximum",
        ),
        pytest.param(
            {"outboundReservedValue": "ten"},
            "properties.portSettings.qosSettings.outboundReservedValue",
            id="not-a-number",
        ),
        pytest.param(
            {"outboundReservedValue": 101, "outboundMaximumMbps": 100},
            "WebVM1_Nic1/properties/portSettings/qosSettings/outboundReservedValue",
            id="reservation-above-maximum",
        ),
    ],
)
async def test_bad_qos_settings_are_rejected(
    client: httpx.AsyncClient, qos: Json, target: str
) -> None:
    await put(client, NIC, nic(privateMacAddress="00155D3A5501"), status=201)
    body = nic(privateMacAddress="00155D3A5501", portSettings={"qosSettings": qos})
    await assert_put_rejected(client, NIC, body, target=target)


# -- placement on a server ------------------------------------------------------------------


async def test_nic_placed_on_a_server(client: httpx.AsyncClient) -> None:
    await create_hosts(client)
    body = nic(privateMacAddress="00155D3A5501", server=ref("/servers/HOST1"))
    created = await put(client, NIC, body, status=201)
    assert props(created)["server"] == {"resourceRef": HOST1}
    assert_configuration_state(created, "Failure", "HostNotConnectedToController")
    assert refs(props(await get(client, HOST1))["virtualNetworkInterfaces"]) == [NIC]

    error = await assert_delete_rejected(client, HOST1, target=HOST1, watch=(NIC,))
    assert [d["target"] for d in error["details"]] == [NIC]

    # Live migration: the NIC moves to host2.
    moved = body | {"properties": {**body["properties"], "server": HOST2}}
    await put(client, NIC, moved, status=200)
    assert props(await get(client, HOST1))["virtualNetworkInterfaces"] == []
    assert refs(props(await get(client, HOST2))["virtualNetworkInterfaces"]) == [NIC]
    await delete(client, HOST1)

    # A missing server, or something that is not a server, is refused.
    for path in ("/servers/host9", WEB, "/credentials/cert"):
        bad = body | {"properties": {**body["properties"], "server": ref(path)}}
        await assert_put_rejected(
            client,
            NIC,
            bad,
            code="InvalidReference",
            target="WebVM1_Nic1/properties/server",
            watch=(HOST2,),
        )
    await delete(client, NIC)
    assert props(await get(client, HOST2))["virtualNetworkInterfaces"] == []


# -- ipConfigurations at their own URI --------------------------------------------------------


async def test_ip_configurations_at_their_own_uri(client: httpx.AsyncClient) -> None:
    await create_pool(client)
    await create_vnet(client)
    created = await put(client, NIC, nic(), status=201)
    config = await put(
        client,
        f"{NIC}/IPConfigurations/ip1",
        {"properties": {"subnet": ref(WEB)}},
        status=201,
    )
    assert config["resourceRef"] == f"{NIC}/ipConfigurations/ip1"
    updated = await get(client, NIC)
    assert updated["etag"] != created["etag"]
    assert updated["etag"] == config["etag"]
    assert ids(props(updated)["ipConfigurations"]) == ["ip1"]
    assert await get_all(client, f"{NIC}/ipConfigurations") == props(updated)["ipConfigurations"]
    # A NIC re-PUT without the list keeps the child.
    body = nic()
    del body["properties"]["ipConfigurations"]
    kept = await put(client, NIC, body, status=200)
    assert ids(props(kept)["ipConfigurations"]) == ["ip1"]

    await delete(client, f"{NIC}/ipConfigurations/ip1")
    await assert_absent(client, f"{NIC}/ipConfigurations/ip1")
    await delete(client, f"{NIC}/ipConfigurations/ip1", status=204)
    assert props(await get(client, NIC))["ipConfigurations"] == []


async def test_ip_configuration_under_missing_nic_is_a_failed_precondition(
    client: httpx.AsyncClient,
) -> None:
    await create_vnet(client)
    await assert_put_rejected(
        client,
        f"{NIC}/ipConfigurations/ip1",
        ip_configuration("ip1", WEB),
        code="PreconditionFailed",
        status=412,
        target=NIC,
        watch=(WEB,),
    )
    await assert_absent(client, NIC)
    assert props(await get(client, WEB))["ipConfigurations"] == []
