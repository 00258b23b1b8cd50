"""DIPs: NIC ipConfigurations join backend pools and inbound NAT rules through real references
(400 when dangling, 409 when deleting what they use), shown on the load balancer as
``backendIPConfigurations`` and ``backendIPConfiguration``; an inbound NAT rule forwards to one
ipConfiguration at most."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import ip_configuration, nic, ref
from tests.support.nbi import (
    assert_delete_rejected,
    assert_put_rejected,
    child,
    delete,
    get,
    props,
    put,
    refs,
)
from tests.support.slb import WEB, dip_nic, inbound_nat_rule, slb_fabric, web_lb

LB = "/loadBalancers/LB1"
FE = f"{LB}/frontendIPConfigurations/FE1"
BE = f"{LB}/backendAddressPools/BE1"
NAT = f"{LB}/inboundNatRules/RDP"
VM1 = "/networkInterfaces/VM1"
VM2 = "/networkInterfaces/VM2"
VM1_IP = f"{VM1}/ipConfigurations/ip1"
VM2_IP = f"{VM2}/ipConfigurations/ip1"


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await slb_fabric(client)
    body = web_lb()
    body["properties"]["inboundNatRules"] = [inbound_nat_rule("RDP", (FE,), 3389)]
    await put(client, LB, body)
    return client


async def test_nics_join_a_backend_pool(fabric: httpx.AsyncClient) -> None:
    # PowerShell adds the pool object it got from a GET of the load balancer.
    pool = await get(fabric, BE)
    created = await put(fabric, VM1, dip_nic(loadBalancerBackendAddressPools=[pool]), status=201)
    config = props(child(created, "ipConfigurations", "ip1"))
    assert config["loadBalancerBackendAddressPools"] == [ref(BE)]
    assert config["loadBalancerInboundNatRules"] == []
    await put(
        fabric,
        VM2,
        dip_nic(loadBalancerBackendAddressPools=["/LoadBalancers/lb1/BackendAddressPools/be1"]),
    )
    assert refs(props(await get(fabric, BE))["backendIPConfigurations"]) == [VM1_IP, VM2_IP]
    lb = await get(fabric, LB)
    assert refs(props(child(lb, "backendAddressPools", "BE1"))["backendIPConfigurations"]) == [
        VM1_IP,
        VM2_IP,
    ]
    # Leaving the pool is a NIC re-PUT without it.
    await put(fabric, VM1, dip_nic(), status=200)
    assert refs(props(await get(fabric, BE))["backendIPConfigurations"]) == [VM2_IP]
    await delete(fabric, VM2)
    assert props(await get(fabric, BE))["backendIPConfigurations"] == []


@pytest.mark.parametrize(
    ("member", "value", "code"),
    [
        (
            "loadBalancerBackendAddressPools",
            [ref(f"{LB}/backendAddressPools/nope")],
            "InvalidReference",
        ),
        ("loadBalancerBackendAddressPools", [ref(f"{LB}/probes/P1")], "InvalidReference"),
        ("loadBalancerBackendAddressPools", [ref(BE), ref(BE.lower())], "InvalidInput"),
        ("loadBalancerInboundNatRules", [ref(f"{LB}/inboundNatRules/nope")], "InvalidReference"),
        ("loadBalancerInboundNatRules", [ref(BE)], "InvalidReference"),
        ("loadBalancerInboundNatRules", [ref(NAT), ref(NAT)], "InvalidInput"),
    ],
)
async def test_bad_load_balancer_references_are_refused(
    fabric: httpx.AsyncClient, member: str, value: list[object], code: str
) -> None:
    await assert_put_rejected(
        fabric,
        VM1,
        dip_nic(**{member: value}),
        target=f"ipConfigurations/ip1/properties/{member}",
        code=code,
    )


async def test_what_dips_use_cannot_be_deleted(fabric: httpx.AsyncClient) -> None:
    await put(
        fabric,
        VM1,
        dip_nic(loadBalancerBackendAddressPools=[ref(BE)], loadBalancerInboundNatRules=[ref(NAT)]),
    )
    error = await assert_delete_rejected(fabric, BE, target=BE)
    assert {d["target"] for d in error["details"]} == {VM1_IP, f"{LB}/loadBalancingRules/R1"}
    await assert_delete_rejected(fabric, NAT, target=NAT)
    await assert_delete_rejected(fabric, LB, target=BE)
    # Nor may a load balancer PUT drop them.
    body = web_lb()
    body["properties"]["backendAddressPools"] = []
    body["properties"]["loadBalancingRules"] = []
    await assert_put_rejected(fabric, LB, body, target=BE, code="ResourceInUse", status=409)
    # Once the NIC lets go, they can.
    await put(fabric, VM1, dip_nic(), status=200)
    await delete(fabric, NAT)
    await delete(fabric, LB)


async def test_an_inbound_nat_rule_forwards_to_one_ip_configuration(
    fabric: httpx.AsyncClient,
) -> None:
    with_nat = {"loadBalancerInboundNatRules": [ref("/loadBalancers/LB1/InboundNatRules/rdp")]}
    both = nic(ip_configuration("ip1", WEB, **with_nat), ip_configuration("ip2", WEB, **with_nat))
    await assert_put_rejected(
        fabric, VM1, both, target="ipConfigurations/ip2/properties/loadBalancerInboundNatRules"
    )
    await put(fabric, VM1, dip_nic(**with_nat), status=201)
    assert props(await get(fabric, NAT))["backendIPConfiguration"] == ref(VM1_IP)
    error = await assert_put_rejected(
        fabric,
        VM2,
        dip_nic(**with_nat),
        target="ipConfigurations/ip1/properties/loadBalancerInboundNatRules",
        code="ResourceInUse",
        status=409,
    )
    assert VM1_IP in error["message"]
    # Re-PUTs of the holder, and its child at its own URI, keep it.
    await put(fabric, VM1, dip_nic(**with_nat), status=200)
    await put(fabric, VM1_IP, ip_configuration(None, WEB, **with_nat), status=200)
    # Another ipConfiguration of the same NIC cannot take it at its own URI either.
    await assert_put_rejected(
        fabric,
        f"{VM1}/ipConfigurations/ip2",
        ip_configuration(None, WEB, **with_nat),
        target="ipConfigurations/ip2/properties/loadBalancerInboundNatRules",
    )
    # Once released, another NIC may take it.
    await put(fabric, VM1, dip_nic(), status=200)
    assert "backendIPConfiguration" not in props(await get(fabric, NAT))
    await put(fabric, VM2, dip_nic(**with_nat), status=201)
    assert props(await get(fabric, NAT))["backendIPConfiguration"] == ref(VM2_IP)
