"""The software load balancing steps of the Network Controller guides, as a new user runs them
with the NetworkController PowerShell cmdlets (PascalCase members, numbers and booleans as
strings, whole objects where a reference is expected, read-modify-write of what GET returned):

1. the SLB manager with its VIP pools (as SDN Express configures it) and a MUX;
2. a public VIP load balancer: frontend, backend pool, health probe, load-balancing rule;
3. the web VMs' NICs join the backend pool;
4. an inbound NAT rule (RDP to one VM);
5. an outbound NAT rule for the pool;
6. a public IP on a NIC;
7. a dump of the SLB state, polled as the SDN diagnostics scripts poll it;
8. the teardown, in the order the in-use checks require.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.support.bodies import (
    cmdlet_body,
    connection,
    credential,
    ip_configuration,
    nic,
    ref,
    server,
)
from tests.support.nbi import (
    PS_HEADERS,
    Json,
    assert_delete_rejected,
    child,
    delete,
    get,
    props,
    put,
    refs,
    url,
)
from tests.support.slb import MANAGER, PUBLIC_VIP, WEB, slb_fabric

LB = "/loadBalancers/WebLB"
HOSTS = ("/servers/Host1", "/servers/Host2")
WEB_NICS = ("/networkInterfaces/WebVM1_Nic1", "/networkInterfaces/WebVM2_Nic1")


async def fabric(client: httpx.AsyncClient) -> None:
    """What the SLB steps start from: the VIP logical networks, two hosts, two web VMs."""
    await slb_fabric(client, with_manager=False)
    await put(client, "/credentials/NCHostCert", credential("X509Certificate", value="AB12"))
    for host in HOSTS:
        address = host.rsplit("/", 1)[1].lower()
        await put(client, host, server(connection("/credentials/NCHostCert", address=address)))
    for nic_path, host in zip(WEB_NICS, HOSTS, strict=True):
        await put(client, nic_path, nic(ip_configuration("ip1", WEB), server=ref(host)))


async def step_1_slb_manager_and_mux(client: httpx.AsyncClient) -> None:
    # New-NetworkControllerLoadBalancerConfiguration: the pools are the objects the script got
    # from Get-NetworkControllerIpPool.
    public_pool = await get(client, f"{PUBLIC_VIP}/ipPools/PublicVIP_Pool")
    private_pool = await get(
        client, "/logicalNetworks/PrivateVIP/subnets/PrivateVIP_0/ipPools/PrivateVIP_Pool"
    )
    body = cmdlet_body(
        "config",
        LoadBalancerManagerIPAddress="10.10.56.100",
        VipIpPools=[public_pool, private_pool],
        OutboundNatIPExemptions=["10.10.56.0/23"],
        VipPoolsInUse=None,
    )
    config = await put(client, "/LoadBalancerManager/Config", body, status=200)
    assert refs(props(config)["vipIpPools"]) == [
        public_pool["resourceRef"],
        private_pool["resourceRef"],
    ]
    mux = cmdlet_body(
        "MUX1",
        Server={"ResourceRef": HOSTS[0]},
        RouterConfiguration={
            "LocalASN": "64628",
            "PeerRouterConfigurations": [
                {
                    "LocalIPAddress": "10.10.56.30",
                    "PeerASN": "64623",
                    "RouterIPAddress": "10.10.56.1",
                    "RouterName": "ToR1",
                }
            ],
        },
    )
    created = await put(client, "/LoadBalancerMuxes/MUX1", mux, status=201)
    assert props(created)["routerConfiguration"]["localASN"] == 64628


async def step_2_public_vip_load_balancer(client: httpx.AsyncClient) -> Json:
    # As the guide builds it: children reference each other by the paths they will have.
    fe_ref = f"{LB}/frontendIPConfigurations/FE1"
    be_ref = f"{LB}/backendAddressPools/BE1"
    probe_ref = f"{LB}/Probes/Probe1"
    subnet = await get(client, PUBLIC_VIP)
    body = cmdlet_body(
        "WebLB",
        FrontendIPConfigurations=[
            cmdlet_body(
                "FE1",
                PrivateIPAddress="41.40.40.10",
                PrivateIPAllocationMethod="static",
                Subnet=subnet,
                LoadBalancingRules=None,
            )
        ],
        BackendAddressPools=[cmdlet_body("BE1", BackendIPConfigurations=None)],
        Probes=[
            cmdlet_body(
                "Probe1",
                Protocol="HTTP",
                Port="80",
                RequestPath="/health.htm",
                IntervalInSeconds="5",
                NumberOfProbes="11",
            )
        ],
        LoadBalancingRules=[
            cmdlet_body(
                "Rule1",
                Protocol="TCP",
                FrontendPort="80",
                BackendPort="8080",
                EnableFloatingIP="False",
                IdleTimeoutInMinutes="4",
                LoadDistribution="default",
                FrontendIPConfigurations=[{"ResourceRef": fe_ref.upper()}],
                BackendAddressPool={"ResourceRef": be_ref.lower()},
                Probe={"ResourceRef": probe_ref},
            )
        ],
        InboundNatRules=[],
        OutboundNatRules=[],
    )
    lb = await put(client, LB, body, status=201)
    fe = child(lb, "frontendIPConfigurations", "FE1")
    assert props(fe)["privateIPAddress"] == "41.40.40.10"
    assert refs(props(fe)["loadBalancingRules"]) == [f"{LB}/loadBalancingRules/Rule1"]
    rule = props(child(lb, "loadBalancingRules", "Rule1"))
    assert (rule["protocol"], rule["frontendPort"], rule["backendPort"]) == ("Tcp", 80, 8080)
    assert rule["probe"] == ref(f"{LB}/probes/Probe1")
    return lb


async def step_3_nics_join_the_pool(client: httpx.AsyncClient) -> None:
    lb = await get(client, LB)
    pool = props(lb)["backendAddressPools"][0]
    for nic_path in WEB_NICS:
        # $nic.properties.IpConfigurations[0].properties.LoadBalancerBackendAddressPools += $pool
        vm_nic = await get(client, nic_path)
        config = props(vm_nic)["ipConfigurations"][0]
        props(config)["loadBalancerBackendAddressPools"].append(pool)
        await put(client, nic_path, vm_nic, status=200)
    members = props(await get(client, f"{LB}/backendAddressPools/BE1"))["backendIPConfigurations"]
    assert refs(members) == [f"{n}/ipConfigurations/ip1" for n in WEB_NICS]


async def step_4_inbound_nat_rule(client: httpx.AsyncClient) -> None:
    lb = await get(client, LB)
    fe = props(lb)["frontendIPConfigurations"][0]
    rdp = cmdlet_body(
        "RDP_VM1",
        Protocol="TCP",
        FrontendPort="3389",
        BackendPort="3389",
        IdleTimeoutInMinutes="4",
        EnableFloatingIP="false",
        FrontendIPConfigurations=[fe],
    )
    props(lb)["inboundNatRules"].append(rdp)
    lb = await put(client, LB, lb, status=200)
    nat = child(lb, "inboundNatRules", "RDP_VM1")
    vm_nic = await get(client, WEB_NICS[0])
    props(props(vm_nic)["ipConfigurations"][0])["loadBalancerInboundNatRules"].append(nat)
    await put(client, WEB_NICS[0], vm_nic, status=200)
    assert props(await get(client, nat["resourceRef"]))["backendIPConfiguration"] == ref(
        f"{WEB_NICS[0]}/ipConfigurations/ip1"
    )


async def step_5_outbound_nat_rule(client: httpx.AsyncClient) -> None:
    lb = await get(client, LB)
    outbound = cmdlet_body(
        "onat1",
        Protocol="All",
        FrontendIPConfigurations=[props(lb)["frontendIPConfigurations"][0]],
        BackendAddressPool=props(lb)["backendAddressPools"][0],
    )
    response = await client.put(
        url(f"{LB}/OutboundNatRules/onat1"), json=outbound, headers=PS_HEADERS
    )
    assert response.status_code == 201, response.text
    pool = await get(client, f"{LB}/backendAddressPools/BE1")
    assert refs(props(pool)["outboundNatRules"]) == [f"{LB}/outboundNatRules/onat1"]


async def step_6_public_ip_on_a_nic(client: httpx.AsyncClient) -> None:
    public_ip = cmdlet_body(
        "MyPIP",
        IpAddress="41.40.40.12",
        PublicIPAllocationMethod="static",
        IdleTimeoutInMinutes="4",
    )
    created = await put(client, "/PublicIPAddresses/MyPIP", public_ip, status=201)
    vm_nic = await get(client, WEB_NICS[1])
    props(props(vm_nic)["ipConfigurations"][0])["publicIPAddress"] = created
    await put(client, WEB_NICS[1], vm_nic, status=200)
    assert props(await get(client, "/publicIPAddresses/MyPIP"))["ipConfiguration"] == ref(
        f"{WEB_NICS[1]}/ipConfigurations/ip1"
    )


async def step_7_dump_the_slb_state(client: httpx.AsyncClient) -> list[Json]:
    response = await client.put(
        url("/Diagnostics/SlbState"), json={"properties": {}}, headers=PS_HEADERS
    )
    assert response.status_code == 201, response.text
    operation_id = response.json()["properties"]["operationId"]
    for _ in range(20):
        result = await get(client, f"/diagnostics/slbStateResults/{operation_id}")
        if props(result)["provisioningState"] != "Updating":
            break
        await asyncio.sleep(0.1)
    assert props(result)["provisioningState"] == "Succeeded"
    entries: list[Json] = props(result)["result"]
    return entries


async def test_the_slb_steps_of_the_nc_guides(client: httpx.AsyncClient) -> None:
    await fabric(client)
    await step_1_slb_manager_and_mux(client)
    await step_2_public_vip_load_balancer(client)
    await step_3_nics_join_the_pool(client)
    await step_4_inbound_nat_rule(client)
    await step_5_outbound_nat_rule(client)
    await step_6_public_ip_on_a_nic(client)
    entries = await step_7_dump_the_slb_state(client)

    assert [e["vip"] for e in entries] == ["41.40.40.10", "41.40.40.12"]
    web, pip = entries
    assert [r["resourceRef"] for r in web["loadBalancingRules"]] == [
        f"{LB}/loadBalancingRules/Rule1"
    ]
    assert [r["resourceRef"] for r in web["inboundNatRules"]] == [f"{LB}/inboundNatRules/RDP_VM1"]
    assert [r["resourceRef"] for r in web["outboundNatRules"]] == [f"{LB}/outboundNatRules/onat1"]
    assert [
        (d["ipConfiguration"]["resourceRef"], d["server"]["resourceRef"], d["health"])
        for d in web["dips"]
    ] == [
        (f"{WEB_NICS[0]}/ipConfigurations/ip1", HOSTS[0], "Unknown"),
        (f"{WEB_NICS[1]}/ipConfigurations/ip1", HOSTS[1], "Unknown"),
    ]
    assert [d["ipConfiguration"]["resourceRef"] for d in pip["dips"]] == [
        f"{WEB_NICS[1]}/ipConfigurations/ip1"
    ]
    assert refs(props(await get(client, MANAGER))["vipPoolsInUse"]) == [
        f"{PUBLIC_VIP}/ipPools/PublicVIP_Pool"
    ]

    # Teardown: what is in use goes last.
    await assert_delete_rejected(
        client, "/publicIPAddresses/MyPIP", target="/publicIPAddresses/MyPIP"
    )
    await assert_delete_rejected(client, LB, target=f"{LB}/backendAddressPools/BE1")
    for nic_path in WEB_NICS:
        vm_nic = await get(client, nic_path)
        config = props(props(vm_nic)["ipConfigurations"][0])
        config["loadBalancerBackendAddressPools"] = []
        config["loadBalancerInboundNatRules"] = []
        config.pop("publicIPAddress", None)
        await put(client, nic_path, vm_nic, status=200)
    await delete(client, "/publicIPAddresses/MyPIP")
    await delete(client, LB)
    await delete(client, "/loadBalancerMuxes/MUX1")
    assert props(await get(client, MANAGER))["vipPoolsInUse"] == []
    assert await step_7_dump_the_slb_state(client) == []
