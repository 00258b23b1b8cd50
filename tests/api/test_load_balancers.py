"""loadBalancers and their six child kinds: the canonical shape with NC's defaults, children
at their own URIs, references between children of one body in any casing, back-references
computed on read, and every validation error with the member it names."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.bodies import ref
from tests.support.nbi import (
    assert_absent,
    assert_delete_rejected,
    assert_put_rejected,
    assert_stored,
    child,
    delete,
    get,
    get_all,
    ids,
    props,
    put,
    refs,
)
from tests.support.slb import (
    PUBLIC_ADDRESSES,
    PUBLIC_VIP,
    backend_pool,
    frontend,
    inbound_nat_rule,
    lb_rule,
    load_balancer,
    outbound_nat_rule,
    probe,
    public_ip,
    slb_fabric,
    web_lb,
)
from tests.support.store import watch_whole_loads

LB = "/loadBalancers/LB1"
FE = f"{LB}/frontendIPConfigurations/FE1"
BE = f"{LB}/backendAddressPools/BE1"
P1 = f"{LB}/probes/P1"
R1 = f"{LB}/loadBalancingRules/R1"
Json = dict[str, Any]


@pytest.fixture
async def fabric(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await slb_fabric(client)
    return client


def full_lb() -> Json:
    """Every child kind: FE1, BE1, P1, R1 (TCP 80 with P1), NAT1 (TCP 3389), OUT1."""
    body = web_lb()
    body["properties"]["inboundNatRules"] = [inbound_nat_rule("NAT1", (FE,), 3389)]
    body["properties"]["outboundNatRules"] = [outbound_nat_rule("OUT1", (FE,), BE)]
    return body


async def test_a_load_balancer_comes_back_canonical_with_nc_defaults(
    fabric: httpx.AsyncClient,
) -> None:
    created = await put(fabric, LB, full_lb(), status=201)
    assert created["resourceRef"] == LB
    # Its back-references, answered without asking the database who references the new
    # rows, are what a GET finds there.
    await assert_stored(fabric, created)
    assert set(props(created)) == {
        "provisioningState",
        "frontendIPConfigurations",
        "backendAddressPools",
        "loadBalancingRules",
        "probes",
        "inboundNatRules",
        "outboundNatRules",
    }
    fe = child(created, "frontendIPConfigurations", "FE1")
    assert fe["etag"] == created["etag"]
    assert props(fe) == {
        "provisioningState": "Succeeded",
        "privateIPAddress": PUBLIC_ADDRESSES[0],
        "privateIPAllocationMethod": "Dynamic",
        "subnet": {"resourceRef": "/logicalNetworks/PublicVIP/subnets/PublicVIP_0"},
        "loadBalancingRules": [ref(R1)],
        "inboundNatRules": [ref(f"{LB}/inboundNatRules/NAT1")],
        "outboundNatRules": [ref(f"{LB}/outboundNatRules/OUT1")],
    }
    assert props(child(created, "backendAddressPools", "BE1")) == {
        "provisioningState": "Succeeded",
        "backendIPConfigurations": [],
        "loadBalancingRules": [ref(R1)],
        "outboundNatRules": [ref(f"{LB}/outboundNatRules/OUT1")],
    }
    assert props(child(created, "probes", "P1")) == {
        "provisioningState": "Succeeded",
        "protocol": "Http",
        "port": 80,
        "requestPath": "/health",
        "intervalInSeconds": 15,
        "numberOfProbes": 2,
        "loadBalancingRules": [ref(R1)],
    }
    assert props(child(created, "loadBalancingRules", "R1")) == {
        "provisioningState": "Succeeded",
        "protocol": "Tcp",
        "frontendPort": 80,
        "backendPort": 80,
        "frontendIPConfigurations": [ref(FE)],
        "backendAddressPool": ref(BE),
        "probe": ref(P1),
        "enableFloatingIP": False,
        "idleTimeoutInMinutes": 4,
        "loadDistribution": "Default",
    }
    assert props(child(created, "inboundNatRules", "NAT1")) == {
        "provisioningState": "Succeeded",
        "protocol": "Tcp",
        "frontendIPConfigurations": [ref(FE)],
        "frontendPort": 3389,
        "backendPort": 3389,
        "idleTimeoutInMinutes": 4,
        "enableFloatingIP": False,
    }
    assert props(child(created, "outboundNatRules", "OUT1")) == {
        "provisioningState": "Succeeded",
        "protocol": "All",
        "frontendIPConfigurations": [ref(FE)],
        "backendAddressPool": ref(BE),
    }
    assert await get(fabric, LB) == created
    assert await get_all(fabric, "/loadBalancers") == [created]
    # Read-modify-write: the GET goes back unchanged (the VIP too).
    again = await put(fabric, LB, created, status=200)
    assert {k: v for k, v in again.items() if k != "etag"} == {
        k: v for k, v in created.items() if k != "etag"
    } | {"properties": again["properties"]}
    assert (
        props(child(again, "frontendIPConfigurations", "FE1"))["privateIPAddress"]
        == (PUBLIC_ADDRESSES[0])
    )


async def test_references_within_the_body_resolve_in_any_casing(
    fabric: httpx.AsyncClient,
) -> None:
    body = load_balancer(
        frontends=(frontend("FE1"),),
        pools=(backend_pool("BE1"),),
        probes=(probe("P1", "tcp", "8080", None),),
        rules=(
            lb_rule(
                "R1",
                ("/LOADBALANCERS/lb1/FrontendIPConfigurations/fe1",),
                "/networking/v1/loadbalancers/LB1/backendaddresspools/be1",
                probe_path="/loadBalancers/lb1/Probes/P1",
            ),
        ),
    )
    created = await put(fabric, LB, body, status=201)
    rule = props(child(created, "loadBalancingRules", "R1"))
    assert rule["frontendIPConfigurations"] == [ref(FE)]
    assert rule["backendAddressPool"] == ref(BE)
    assert rule["probe"] == ref(P1)


async def test_children_live_at_their_own_uris(fabric: httpx.AsyncClient) -> None:
    await put(fabric, LB, web_lb())
    created = await put(fabric, f"{LB}/probes/P2", probe(None, "Tcp", 8080, None), status=201)
    assert created["resourceRef"] == f"{LB}/probes/P2"
    rule = lb_rule(None, (FE,), BE, frontend_port=8080, probe_path=f"{LB}/probes/P2")
    await put(fabric, f"{LB}/loadBalancingRules/R2", rule, status=201)
    assert refs(props(await get(fabric, f"{LB}/probes/P2"))["loadBalancingRules"]) == [
        f"{LB}/loadBalancingRules/R2"
    ]
    assert ids(await get_all(fabric, f"{LB}/loadBalancingRules")) == ["R1", "R2"]
    assert refs(props(await get(fabric, FE))["loadBalancingRules"]) == [
        R1,
        f"{LB}/loadBalancingRules/R2",
    ]
    # A probe in use by a rule of its own load balancer cannot go ...
    error = await assert_delete_rejected(fabric, f"{LB}/probes/P2", target=f"{LB}/probes/P2")
    assert f"{LB}/loadBalancingRules/R2" in error["message"]
    # ... nor can a body drop it while a rule still names it.
    dropping = web_lb()
    dropping["properties"]["loadBalancingRules"].append(rule | {"resourceId": "R2"})
    await assert_put_rejected(
        fabric,
        LB,
        dropping,
        target="loadBalancingRules/R2/properties/probe",
        code="InvalidReference",
    )
    await delete(fabric, f"{LB}/loadBalancingRules/R2")
    await delete(fabric, f"{LB}/probes/P2")
    await assert_absent(fabric, f"{LB}/probes/P2")
    assert refs(props(await get(fabric, FE))["loadBalancingRules"]) == [R1]


async def test_back_references_a_client_sends_are_ignored(fabric: httpx.AsyncClient) -> None:
    body = web_lb()
    fe = body["properties"]["frontendIPConfigurations"][0]["properties"]
    fe["loadBalancingRules"] = [ref(f"{LB}/loadBalancingRules/Ghost")]
    fe["inboundNatRules"] = "nonsense"
    body["properties"]["backendAddressPools"][0]["properties"]["backendIPConfigurations"] = [
        ref("/networkInterfaces/ghost/ipConfigurations/ip1")
    ]
    created = await put(fabric, LB, body, status=201)
    assert refs(props(child(created, "frontendIPConfigurations", "FE1"))["loadBalancingRules"]) == [
        R1
    ]
    assert props(child(created, "frontendIPConfigurations", "FE1"))["inboundNatRules"] == []
    assert props(child(created, "backendAddressPools", "BE1"))["backendIPConfigurations"] == []


def _rule(**overrides: object) -> Json:
    body = lb_rule("R1", (FE,), BE, probe_path=P1)
    body["properties"].update(overrides)
    return body


def _with(**children: list[Json]) -> Json:
    body = web_lb()
    body["properties"].update(children)
    return body


PROBE_P2 = probe("P2", "Tcp", 8080, None)

INVALID: list[tuple[str, Json, str]] = [
    (
        "port 0 without All",
        _with(loadBalancingRules=[_rule(frontendPort=0, backendPort=0)]),
        "loadBalancingRules/R1/properties/frontendPort",
    ),
    (
        "backend 0 alone",
        _with(loadBalancingRules=[_rule(backendPort=0)]),
        "loadBalancingRules/R1/properties/backendPort",
    ),
    (
        "frontend 0 alone",
        _with(loadBalancingRules=[_rule(protocol="All", frontendPort=0, backendPort=80)]),
        "loadBalancingRules/R1/properties/backendPort",
    ),
    (
        "port too high",
        _with(loadBalancingRules=[_rule(frontendPort="65536")]),
        "loadBalancingRules/R1/properties/frontendPort",
    ),
    (
        "port a boolean",
        _with(loadBalancingRules=[_rule(backendPort=True)]),
        "loadBalancingRules/R1/properties/backendPort",
    ),
    (
        "idle timeout",
        _with(loadBalancingRules=[_rule(idleTimeoutInMinutes=31)]),
        "loadBalancingRules/R1/properties/idleTimeoutInMinutes",
    ),
    (
        "distribution",
        _with(loadBalancingRules=[_rule(loadDistribution="RoundRobin")]),
        "loadBalancingRules/R1/properties/loadDistribution",
    ),
    (
        "protocol",
        _with(loadBalancingRules=[_rule(protocol="Gre")]),
        "loadBalancingRules/R1/properties/protocol",
    ),
    (
        "floating IP",
        _with(loadBalancingRules=[_rule(enableFloatingIP="yes")]),
        "loadBalancingRules/R1/properties/enableFloatingIP",
    ),
    (
        "no frontend",
        _with(loadBalancingRules=[_rule(frontendIPConfigurations=[])]),
        "loadBalancingRules/R1/properties/frontendIPConfigurations",
    ),
    (
        "no pool",
        _with(loadBalancingRules=[_rule(backendAddressPool=None)]),
        "loadBalancingRules/R1/properties/backendAddressPool",
    ),
    (
        "frontend twice",
        _with(loadBalancingRules=[_rule(frontendIPConfigurations=[ref(FE), ref(FE)])]),
        "loadBalancingRules/R1/properties/frontendIPConfigurations",
    ),
    (
        "Http without path",
        _with(probes=[probe("P1", "Http", 80, None)]),
        "probes/P1/properties/requestPath",
    ),
    (
        "relative path",
        _with(probes=[probe("P1", "Http", 80, "health")]),
        "probes/P1/properties/requestPath",
    ),
    (
        "Tcp with path",
        _with(probes=[probe("P1", "Tcp", 80, "/health")]),
        "probes/P1/properties/requestPath",
    ),
    ("probe port", _with(probes=[probe("P1", port=0)]), "probes/P1/properties/port"),
    (
        "interval",
        _with(probes=[probe("P1", intervalInSeconds=301)]),
        "probes/P1/properties/intervalInSeconds",
    ),
    ("count", _with(probes=[probe("P1", numberOfProbes=0)]), "probes/P1/properties/numberOfProbes"),
    ("probe protocol", _with(probes=[probe("P1", "Https")]), "probes/P1/properties/protocol"),
    (
        "subnet and public IP",
        _with(
            frontendIPConfigurations=[frontend("FE1", publicIPAddress=ref("/publicIPAddresses/x"))]
        ),
        "frontendIPConfigurations/FE1/properties/subnet",
    ),
    (
        "neither",
        _with(frontendIPConfigurations=[frontend("FE1", None)]),
        "frontendIPConfigurations/FE1/properties/subnet",
    ),
    (
        "static without address",
        _with(frontendIPConfigurations=[frontend("FE1", privateIPAllocationMethod="Static")]),
        "frontendIPConfigurations/FE1/properties/privateIPAddress",
    ),
    (
        "same port twice",
        _with(loadBalancingRules=[_rule(), lb_rule("R2", (FE,), BE, protocol="All")]),
        "loadBalancingRules/R2/properties/frontendPort",
    ),
    (
        "NAT on a balanced port",
        _with(inboundNatRules=[inbound_nat_rule("N1", (FE,), 80)]),
        "inboundNatRules/N1/properties/frontendPort",
    ),
    (
        "all ports and another",
        _with(
            loadBalancingRules=[
                _rule(),
                lb_rule("R2", (FE,), BE, protocol="All", frontend_port=0, backend_port=0),
            ]
        ),
        "loadBalancingRules/R2/properties/frontendPort",
    ),
    (
        "NAT port 0",
        _with(inboundNatRules=[inbound_nat_rule("N1", (FE,), 0)]),
        "inboundNatRules/N1/properties/frontendPort",
    ),
    (
        "pool of another LB",
        _with(
            loadBalancingRules=[
                _rule(backendAddressPool=ref("/loadBalancers/Other/backendAddressPools/BE1"))
            ]
        ),
        "loadBalancingRules/R1/properties/backendAddressPool",
    ),
    (
        "missing probe",
        _with(loadBalancingRules=[_rule(probe=ref(f"{LB}/probes/nope"))]),
        "loadBalancingRules/R1/properties/probe",
    ),
    (
        "probe as frontend",
        _with(loadBalancingRules=[_rule(frontendIPConfigurations=[ref(P1)])]),
        "loadBalancingRules/R1/properties/frontendIPConfigurations",
    ),
    (
        "outbound without pool",
        _with(
            outboundNatRules=[
                {
                    "resourceId": "O1",
                    "properties": {"protocol": "All", "frontendIPConfigurations": [ref(FE)]},
                }
            ]
        ),
        "outboundNatRules/O1/properties/backendAddressPool",
    ),
]


@pytest.mark.parametrize(("case", "body", "target"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_load_balancers_are_refused_naming_the_member(
    fabric: httpx.AsyncClient, case: str, body: Json, target: str
) -> None:
    if case == "pool of another LB":
        await put(fabric, "/loadBalancers/Other", load_balancer(pools=(backend_pool("BE1"),)))
    if case == "subnet and public IP":
        await put(fabric, "/publicIPAddresses/x", public_ip())
    references = ("pool of another LB", "missing probe", "probe as frontend")
    code = "InvalidReference" if case in references else "InvalidInput"
    await assert_put_rejected(fabric, LB, body, target=target, code=code)


async def test_tcp_and_udp_may_share_a_frontend_port(fabric: httpx.AsyncClient) -> None:
    body = _with(
        loadBalancingRules=[_rule(), lb_rule("R2", (FE,), BE, protocol="Udp")],
        inboundNatRules=[inbound_nat_rule("N1", (FE,), 3389, protocol="udp")],
    )
    created = await put(fabric, LB, body, status=201)
    assert ids(props(created)["loadBalancingRules"]) == ["R1", "R2"]
    # One port, one protocol: a second rule at its own URI is refused the same way.
    await assert_put_rejected(
        fabric,
        f"{LB}/inboundNatRules/N2",
        inbound_nat_rule(None, (FE,), "80"),
        target="inboundNatRules/N2/properties/frontendPort",
    )


async def test_a_nat_rule_at_its_uri_is_checked_against_its_siblings(
    fabric: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inbound NAT rule PUT or DELETEd at its own URI loads the load balancer and that
    rule, not the other children (service/alone.py): its frontend is found in the database,
    and its port is checked against the stored rules and NAT rules, as a PUT of the whole
    load balancer would check them."""
    whole_loads = watch_whole_loads(monkeypatch)
    body = web_lb()
    body["properties"]["inboundNatRules"] = [
        inbound_nat_rule(f"N{i}", (FE,), 3390 + i) for i in range(3)
    ]
    await put(fabric, LB, body, status=201)
    await put(fabric, "/loadBalancers/Other", web_lb("Other"), status=201)
    whole_loads.clear()
    added = await put(fabric, f"{LB}/inboundNatRules/N9", inbound_nat_rule(None, (FE,), 3399))
    assert whole_loads == []
    assert props(added)["frontendIPConfigurations"] == [ref(FE)]
    assert props(await get(fabric, FE))["inboundNatRules"] == [
        ref(f"{LB}/inboundNatRules/{n}") for n in ("N0", "N1", "N2", "N9")
    ]
    cases = [
        # The port a stored NAT rule holds, and one the balancing rule R1 holds (TCP 80).
        (inbound_nat_rule(None, (FE,), 3391), "InvalidInput", f"{LB}/inboundNatRules/N1"),
        (inbound_nat_rule(None, (FE,), 80), "InvalidInput", R1),
        # The frontend of another load balancer, and one that does not exist.
        (
            inbound_nat_rule(None, ("/loadBalancers/Other/frontendIPConfigurations/FE1",), 5000),
            "InvalidReference",
            "another load balancer",
        ),
        (
            inbound_nat_rule(None, (f"{LB}/frontendIPConfigurations/FE9",), 5000),
            "InvalidReference",
            "does not exist",
        ),
    ]
    for body, code, named in cases:
        member = "frontendPort" if code == "InvalidInput" else "frontendIPConfigurations"
        error = await assert_put_rejected(
            fabric,
            f"{LB}/inboundNatRules/N5",
            body,
            target=f"inboundNatRules/N5/properties/{member}",
            code=code,
        )
        assert named in error["message"], error
    # UDP on a TCP port is free; a rule rewritten in the middle keeps its place.
    await put(
        fabric, f"{LB}/inboundNatRules/N5", inbound_nat_rule(None, (FE,), 3391, protocol="Udp")
    )
    await put(fabric, f"{LB}/inboundNatRules/N1", inbound_nat_rule(None, (FE,), 4001))
    await delete(fabric, f"{LB}/inboundNatRules/N0")
    assert nat_rules_of(await get(fabric, LB)) == ["N1", "N2", "N9", "N5"]
    assert LB not in whole_loads


async def test_a_nat_rule_at_its_uri_meets_a_rule_on_every_port(fabric: httpx.AsyncClient) -> None:
    """The database sends a NAT rule written alone only the siblings on its port or on every
    port (0): a rule balancing every port of a frontend leaves no port of it to a NAT rule."""
    fe2 = f"{LB}/frontendIPConfigurations/FE2"
    body = _with(
        frontendIPConfigurations=[frontend("FE1", PUBLIC_VIP), frontend("FE2", PUBLIC_VIP)],
        loadBalancingRules=[
            _rule(),
            lb_rule("ALL", (fe2,), BE, protocol="All", frontend_port=0, backend_port=0),
        ],
    )
    await put(fabric, LB, body, status=201)
    error = await assert_put_rejected(
        fabric,
        f"{LB}/inboundNatRules/N1",
        inbound_nat_rule(None, (fe2,), 5000),
        target="inboundNatRules/N1/properties/frontendPort",
    )
    assert f"{LB}/loadBalancingRules/ALL" in error["message"]
    await put(fabric, f"{LB}/inboundNatRules/N1", inbound_nat_rule(None, (FE,), 5000), status=201)


async def test_a_balancing_rule_at_its_uri_is_checked_against_its_siblings(
    fabric: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load-balancing rule written at its own URI is written alone too: its frontend, pool
    and probe are found in the database, its ports checked against the stored rules and NAT
    rules, a rule on every port against all of them."""
    whole_loads = watch_whole_loads(monkeypatch)
    await put(fabric, LB, _with(inboundNatRules=[inbound_nat_rule("N1", (FE,), 3389)]))
    whole_loads.clear()
    r2 = f"{LB}/loadBalancingRules/R2"
    await put(fabric, r2, lb_rule(None, (FE,), BE, frontend_port=443, probe_path=P1), status=201)
    assert whole_loads == []
    assert ids(props(await get(fabric, LB))["loadBalancingRules"]) == ["R1", "R2"]
    cases = [
        (lb_rule(None, (FE,), BE, frontend_port=3389), "frontendPort", "N1"),
        (lb_rule(None, (FE,), BE, frontend_port=443), "frontendPort", "R2"),
        (
            lb_rule(None, (FE,), BE, protocol="All", frontend_port=0, backend_port=0),
            "frontendPort",
            "R1",
        ),
        (lb_rule(None, (FE,), BE, probe_path=f"{LB}/probes/P9"), "probe", "does not exist"),
    ]
    for body, member, named in cases:
        error = await assert_put_rejected(
            fabric,
            f"{LB}/loadBalancingRules/R3",
            body,
            target=f"loadBalancingRules/R3/properties/{member}",
            code="InvalidReference" if member == "probe" else "InvalidInput",
        )
        assert named in error["message"], error
    # Its own port again, rewritten in place: no clash with itself.
    await put(fabric, r2, lb_rule(None, (FE,), BE, frontend_port=443))
    assert LB not in whole_loads


def nat_rules_of(resource: Json) -> list[str]:
    return ids(props(resource)["inboundNatRules"])


async def test_deleting_a_load_balancer_deletes_its_children(fabric: httpx.AsyncClient) -> None:
    await put(fabric, LB, full_lb())
    await delete(fabric, LB)
    for path in (LB, FE, BE, P1, R1):
        await assert_absent(fabric, path)
    await delete(fabric, LB, status=204)
