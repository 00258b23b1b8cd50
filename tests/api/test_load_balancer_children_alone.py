"""A load balancer's frontends, pools, probes and outbound NAT rules PUT or DELETEd at their own
URIs are written alone, as its rules and NAT rules are (service/alone.py): the load balancer's
other children are not loaded, and what they would have decided is asked of the database (a
frontend's Static address of its siblings' keys, a public IP of its stored binding, a rule's
frontends and pool of the stored children, what still uses a child that goes)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bodies import ref
from tests.support.nbi import (
    assert_delete_rejected,
    assert_put_rejected,
    delete,
    get,
    ids,
    props,
    put,
)
from tests.support.slb import (
    PUBLIC_ADDRESSES,
    PUBLIC_VIP,
    backend_pool,
    frontend,
    outbound_nat_rule,
    probe,
    public_ip,
    slb_fabric,
    web_lb,
)
from tests.support.store import watch_whole_loads

LB = "/loadBalancers/LB1"
FRONTENDS = f"{LB}/frontendIPConfigurations"
FE1 = f"{FRONTENDS}/FE1"
BE1 = f"{LB}/backendAddressPools/BE1"
P1 = f"{LB}/probes/P1"
R1 = f"{LB}/loadBalancingRules/R1"


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await slb_fabric(client)
    await put(client, LB, web_lb(address=PUBLIC_ADDRESSES[0]), status=201)
    await put(client, "/loadBalancers/Other", web_lb("Other"), status=201)
    return client


async def test_a_frontend_at_its_uri_is_checked_against_its_siblings(
    fabric: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole_loads = watch_whole_loads(monkeypatch)
    added = await put(fabric, f"{FRONTENDS}/FE2", frontend(None, PUBLIC_VIP), status=201)
    vip = props(added)["privateIPAddress"]
    assert vip in PUBLIC_ADDRESSES
    assert vip != PUBLIC_ADDRESSES[0]
    assert whole_loads == []
    # FE1's Static address, held by a sibling that was not loaded: its sibling key.
    error = await assert_put_rejected(
        fabric,
        f"{FRONTENDS}/FE3",
        frontend(None, PUBLIC_VIP, PUBLIC_ADDRESSES[0]),
        target="frontendIPConfigurations/FE3/properties/privateIPAddress",
    )
    assert "'FE1'" in error["message"], error
    # A public IP is bound to one frontend: a sibling holding it is found in the database.
    await put(fabric, "/publicIPAddresses/P", public_ip())
    by_public_ip = frontend(None, None, publicIPAddress=ref("/publicIPAddresses/P"))
    await put(fabric, f"{FRONTENDS}/FE3", by_public_ip, status=201)
    error = await assert_put_rejected(
        fabric,
        f"{FRONTENDS}/FE4",
        by_public_ip,
        target="frontendIPConfigurations/FE4/properties/publicIPAddress",
    )
    assert f"{FRONTENDS}/FE3" in error["message"], error
    # FE1 moves to another address in place; R1 still uses it, so it cannot go.
    moved = await put(fabric, FE1, frontend(None, PUBLIC_VIP, PUBLIC_ADDRESSES[5]))
    assert props(moved)["loadBalancingRules"] == [ref(R1)]
    await assert_delete_rejected(fabric, FE1, target=FE1)
    # FE2 goes, and FE1 moved: each gave its VIP back, for another sibling to ask for.
    await delete(fabric, f"{FRONTENDS}/FE2")
    for name, address in (("FE5", vip), ("FE6", PUBLIC_ADDRESSES[0])):
        await put(fabric, f"{FRONTENDS}/{name}", frontend(None, PUBLIC_VIP, address), status=201)
    frontends = ids(props(await get(fabric, LB))["frontendIPConfigurations"])
    assert frontends == ["FE1", "FE3", "FE5", "FE6"]
    assert LB not in whole_loads


async def test_pools_probes_and_outbound_rules_at_their_uris(
    fabric: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole_loads = watch_whole_loads(monkeypatch)
    be2 = f"{LB}/backendAddressPools/BE2"
    await put(fabric, be2, backend_pool(None), status=201)
    await assert_put_rejected(
        fabric,
        f"{LB}/probes/P2",
        probe(None, "Http", 8080, None),
        target="probes/P2/properties/requestPath",
    )
    await put(fabric, f"{LB}/probes/P2", probe(None, "Tcp", 8080, None), status=201)
    out1 = f"{LB}/outboundNatRules/OUT1"
    await put(fabric, out1, outbound_nat_rule(None, (FE1,), be2), status=201)
    assert whole_loads == []
    assert props(await get(fabric, be2))["outboundNatRules"] == [ref(out1)]
    cases = [
        (
            outbound_nat_rule(None, (FE1,), "/loadBalancers/Other/backendAddressPools/BE1"),
            "backendAddressPool",
            "another load balancer",
        ),
        (
            outbound_nat_rule(None, (f"{FRONTENDS}/FE9",), BE1),
            "frontendIPConfigurations",
            "does not exist",
        ),
    ]
    for body, member, named in cases:
        error = await assert_put_rejected(
            fabric,
            f"{LB}/outboundNatRules/OUT2",
            body,
            target=f"outboundNatRules/OUT2/properties/{member}",
            code="InvalidReference",
        )
        assert named in error["message"], error
    # What a sibling still uses stays; P1 rewritten in place keeps R1 probing it.
    await assert_delete_rejected(fabric, be2, target=be2)
    await assert_delete_rejected(fabric, P1, target=P1)
    rewritten = await put(fabric, P1, probe(None, "Tcp", 8081, None))
    assert props(rewritten)["loadBalancingRules"] == [ref(R1)]
    await delete(fabric, out1)
    await delete(fabric, be2)
    stored = props(await get(fabric, LB))
    assert ids(stored["backendAddressPools"]) == ["BE1"]
    assert ids(stored["probes"]) == ["P1", "P2"]
    assert stored["outboundNatRules"] == []
    assert LB not in whole_loads
