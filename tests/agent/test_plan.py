"""The host plan is a pure function of the objects: properties over generated hosts."""

from __future__ import annotations

import random
import uuid
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from controller.agent.linux import delta
from controller.agent.linux.changes import Changes
from controller.agent.linux.delta import entry_changes
from controller.agent.linux.plan import (
    HostPlan,
    format_mac,
    plan,
    replan,
    router_name,
    router_prefix,
    veth_name,
)
from controller.agent.linux.routes import APPLIANCE_BASE, TABLE_BASE, observed_routing

Body = dict[str, Any]
SERVER = "5e4e4e4e-0000-4000-8000-000000000001"
VNETS = ["0a0a0a0a-0000-4000-8000-00000000000a", "0b0b0b0b-0000-4000-8000-00000000000b"]


IPV6 = 4  # subnets numbered from here are IPv6 ones


def address(third: int, host: int) -> str:
    """Address ``host`` of subnet ``third``: 10.0.<third>.0/24, or 2001:db8:<third>::/64."""
    return f"2001:db8:{third}::{host:x}" if third >= IPV6 else f"10.0.{third}.{host}"


def readdressed(ip: str, host: int) -> str:
    return f"{ip.rsplit(':', 1)[0]}:{host:x}" if ":" in ip else f"{ip.rsplit('.', 1)[0]}.{host}"


def network(vsid: int, vnet: str, third: int) -> Body:
    length = 64 if third >= IPV6 else 24
    prefix, gateway = f"{address(third, 0)}/{length}", address(third, 1)
    return {"vsid": vsid, "virtualNetwork": vnet, "prefix": prefix, "gateway": gateway}


@st.composite
def hosts(draw: st.DrawFn) -> dict[str, Body]:
    """Objects of a host: IPv4 and IPv6 subnets of up to two virtual networks (the same
    prefixes in both), NICs with one or more ipConfigurations (dual-stack ones among them),
    mappings to other hosts, and a few broken ones."""
    objects: dict[str, Body] = {f"host/{SERVER}": {"providerAddress": "192.0.2.1"}}
    subnets = draw(st.lists(st.tuples(st.sampled_from(VNETS), st.integers(0, 5)), max_size=4))
    vsids = {}
    for number, (vnet, third) in enumerate(dict.fromkeys(subnets)):
        vsid = 6000 + number
        vsids[vsid] = (vnet, third)
        objects[f"network/n{vsid}"] = network(vsid, vnet, third)
    if not vsids:
        return objects
    nics = draw(st.integers(0, 6))
    host = 10
    for n in range(nics):
        nic = str(uuid.UUID(int=draw(st.integers(1, 2**63)) << 64 | n))
        vsid = draw(st.sampled_from(sorted(vsids)))
        vnet, third = vsids[vsid]
        mac = (
            draw(st.sampled_from([f"02AA0000{n:04X}", "not-a-mac"]))
            if n == 0
            else f"02AA0000{n:04X}"
        )
        for config in range(draw(st.integers(1, 3))):
            host += 1
            if config:  # another subnet of the same virtual network, perhaps
                same = [v for v, (net, _) in vsids.items() if net == vnet]
                vsid = draw(st.sampled_from(sorted(same)))
                third = vsids[vsid][1]
            objects[f"endpoint/e{n}-{config}"] = {
                "nic": nic, "mac": mac, "ip": address(third, host),
                "prefixLength": 64 if third >= IPV6 else 24, "gateway": address(third, 1),
                "vsid": vsid, "virtualNetwork": vnet, "acls": ["a1"],
                "qos": {"inboundMaximumMbps": draw(st.sampled_from([None, 0, 100])),
                        "outboundMaximumMbps": None},
            }  # fmt: skip
    for m in range(draw(st.integers(0, 4))):
        vsid = draw(st.sampled_from([*sorted(vsids), 9999]))  # 9999: no network object
        vnet, third = vsids.get(vsid, (VNETS[0], 0))
        ip, mac = address(third, 200 + m), f"02BB0000{m:04X}"
        objects[f"mapping/m{m}"] = {"vsid": vsid, "virtualNetwork": vnet, "ip": ip, "mac": mac,
                                    "providerAddress": "192.0.2.9"}  # fmt: skip
    if draw(st.booleans()):  # a route table on the first subnet, via an endpoint or not
        objects[f"network/n{min(vsids)}"]["routeTable"] = "rt1"
        addresses = sorted(str(b["ip"]) for k, b in objects.items() if "ip" in b)
        hop = draw(st.sampled_from([*addresses, "10.0.9.9"]))
        objects["routeTable/rt1"] = {"routes": [
            route("192.0.2.0/25", "VirtualAppliance", hop), route("198.51.100.0/24", "None"),
            route("10.0.0.0/16", "VnetLocal"), route("not-a-prefix", "None"),
        ]}  # fmt: skip
    return objects


def route(prefix: str, kind: str, hop: str | None = None) -> Body:
    return {"addressPrefix": prefix, "nextHopType": kind, "nextHopIpAddress": hop}


@settings(max_examples=150, deadline=None)
@given(hosts(), st.randoms())
def test_every_object_is_planned_or_failed_and_order_does_not_matter(
    objects: dict[str, Body], shuffle: random.Random
) -> None:
    planned = plan(objects, SERVER)
    items = list(objects.items())
    shuffle.shuffle(items)
    assert plan(dict(items), SERVER) == planned
    failed = {f.key for f in planned.failures}
    placed = {k for port in planned.ports.values() for k in port.keys} | set(planned.remotes)
    for key in objects:
        if key.startswith(("endpoint/", "mapping/")):
            assert (key in failed) != (key in placed), key
    assert planned.provider_address == "192.0.2.1"


@settings(max_examples=150, deadline=None)
@given(hosts())
def test_names_are_valid_and_owned(objects: dict[str, Body]) -> None:
    planned = plan(objects, SERVER)
    for router in planned.routers:
        assert router.startswith(router_prefix(SERVER))
    for nic, port in planned.ports.items():
        assert port.netns == nic
        assert port.router in planned.routers
        assert len(port.veth) <= 15
        assert port.veth == veth_name(nic)
        for vsid in port.vsids:
            segment = planned.segments[(port.router, vsid)]
            assert len(segment.bridge) <= 15
            assert len(segment.vxlan) <= 15
        gateways = {s.gateway.split("/")[0] for s in planned.segments.values()}
        assert {port.gateway, port.gateway6} - {""} <= gateways
        assert port.gateway or port.gateway6
        assert ":" not in port.gateway
        assert ":" in port.gateway6 or not port.gateway6
        assert set(port.ips6) == {ip for ip in port.ips if ":" in ip}
        assert port.inbound_mbps in (None, 100)  # 0 means no cap
    veths = [p.veth for p in planned.ports.values()]
    assert len(veths) == len(set(veths))
    for remote in planned.remotes.values():
        assert (remote.router, remote.vsid) in planned.segments


@settings(max_examples=100, deadline=None)
@given(hosts())
def test_the_ruleset_inputs_are_one_per_planned_ipconfiguration(objects: dict[str, Body]) -> None:
    planned = plan(objects, SERVER)
    filtered = [f for group in planned.filtered.values() for f in group]
    assert sorted(f.key for f in filtered) == sorted(
        k for port in planned.ports.values() for k in port.keys
    )
    for router, group in planned.filtered.items():
        ports = {p.veth: p for p in planned.ports.values() if p.router == router}
        for entry in group:
            assert entry.mac == ports[entry.veth].mac
            assert entry.acl_ids == ("a1",)


def test_same_prefix_in_two_virtual_networks_gives_two_router_namespaces() -> None:
    objects = {
        f"network/{n}": network(vsid, vnet, 0)
        for n, vsid, vnet in (("a", 7001, VNETS[0]), ("b", 7002, VNETS[1]))
    }
    planned = plan(objects, SERVER)
    assert planned.routers == {router_name(SERVER, v) for v in VNETS}
    assert planned.failures == []


def test_a_vsid_in_two_virtual_networks_is_refused() -> None:
    objects = {
        f"network/{n}": network(7001, vnet, 0) for n, vnet in (("a", VNETS[0]), ("b", VNETS[1]))
    }
    assert [f.key for f in plan(objects, SERVER).failures] == ["network/b"]


def test_macs_and_names() -> None:
    assert format_mac("001DD8B71C00") == "00:1d:d8:b7:1c:00"
    assert format_mac("00-1D-D8-B7-1C-00") == "00:1d:d8:b7:1c:00"
    assert veth_name("0A1B2C3D-4E5F-6789-abcd-ef0123456789") == "s0a1b2c3d4e5f"


def normalised(planned: HostPlan) -> tuple[object, ...]:
    """A plan with its lists in one order (a re-plan appends what a full plan sorts)."""
    return (
        planned.server, planned.provider_address, planned.routers, planned.segments,
        planned.ports, planned.remotes,
        {router: sorted(found, key=repr) for router, found in planned.filtered.items() if found},
        sorted(planned.failures, key=repr),
        {router: keys for router, keys in planned.keys_of_router.items() if keys},
        planned.veths, planned.routing, planned.forwarding,
    )  # fmt: skip


@st.composite
def changes(draw: st.DrawFn, objects: dict[str, Body]) -> tuple[dict[str, Body], list[str]]:
    """Upserts and deletes of endpoints and mappings: removed, readdressed, re-capped,
    moved to another NIC, broken, or new (on a NIC of its own or an existing one)."""
    keys = sorted(k for k in objects if k.startswith(("endpoint/", "mapping/")))
    upserts: dict[str, Body] = {}
    deletes: list[str] = []
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)) if keys else []:
        body = dict(objects[key])
        action = draw(st.sampled_from(["delete", "ip", "qos", "nic", "mac", "break"]))
        if action == "delete":
            deletes.append(key)
            continue
        if action == "ip":
            body["ip"] = readdressed(body["ip"], draw(st.integers(100, 150)))
        elif action == "qos" and "qos" in body:
            body["qos"] = {"inboundMaximumMbps": 25, "outboundMaximumMbps": 10}
        elif action == "nic" and "nic" in body:
            body["nic"] = draw(
                st.sampled_from(sorted({str(b.get("nic")) for b in objects.values()}))
            )
        elif action == "mac":
            body["mac"] = draw(st.sampled_from(["02AA00000001", "02BB00000000", "02CC00000001"]))
        else:
            body["vsid"] = 0
        upserts[key] = body
    endpoints = [b for k, b in objects.items() if k.startswith("endpoint/")]
    if endpoints and draw(st.booleans()):
        body = dict(draw(st.sampled_from(endpoints)))
        if draw(st.booleans()):
            body["nic"] = str(uuid.uuid4())
            body["mac"] = "02DD00000001"
        body["ip"] = readdressed(body["ip"], 160)
        upserts["endpoint/new"] = body
    if "routeTable/rt1" in objects and draw(st.booleans()):
        if draw(st.booleans()):
            deletes.append("routeTable/rt1")
        else:
            upserts["routeTable/rt1"] = {"routes": objects["routeTable/rt1"]["routes"][1:]}
    return upserts, deletes


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_replan_equals_the_full_plan_or_declines(data: st.DataObject) -> None:
    objects = data.draw(hosts())
    upserts, deletes = data.draw(changes(objects))
    before = plan(objects, SERVER)
    after = {k: v for k, v in objects.items() if k not in deletes} | upserts
    nics = {k: objects.get(k, {}).get("nic") for k in [*upserts, *deletes]}
    replanned = replan(before, after, nics)
    event("declined" if replanned is None else "re-planned")
    if replanned is not None:
        assert normalised(replanned) == normalised(plan(after, SERVER))
        # The neighbour and FDB lines found from the changed NICs and mappings alone are
        # those of the whole plans compared.
        lines = _entry_lines(before, replanned)
        derived = delta._entries(replanned)  # kept for the next change
        whole = plan(after, SERVER)
        assert lines == _entry_lines(before, whole)
        delta._recent.clear()  # the whole plan's entries, computed from nothing
        assert derived == delta._entries(whole)


def _entry_lines(old: HostPlan, new: HostPlan) -> list[str]:
    changes = Changes()
    entry_changes(changes, old, new)
    return changes.describe()


def test_a_dual_stack_nic_gets_both_families_and_a_gateway_for_each() -> None:
    objects = {
        "network/v4": network(7001, VNETS[0], 0),
        "network/v6": network(7002, VNETS[0], IPV6),
    }
    nic = "0c0c0c0c-0000-4000-8000-00000000000c"
    for key, third, vsid in (("e4", 0, 7001), ("e6", IPV6, 7002)):
        objects[f"endpoint/{key}"] = {
            "nic": nic, "mac": "02AA00000001", "ip": address(third, 9),
            "prefixLength": 64 if third else 24, "gateway": address(third, 1), "vsid": vsid,
            "virtualNetwork": VNETS[0], "acls": [],
        }  # fmt: skip
    objects["mapping/far6"] = {"vsid": 7002, "virtualNetwork": VNETS[0], "ip": "2001:DB8:4::99",
                               "mac": "02BB00000001", "providerAddress": "192.0.2.9"}  # fmt: skip
    planned = plan(objects, SERVER)
    assert planned.failures == []
    port = planned.ports[nic]
    assert port.addresses == ("10.0.0.9/24", "2001:db8:4::9/64")
    assert (port.gateway, port.gateway6, port.ips6) == (
        "10.0.0.1",
        "2001:db8:4::1",
        ("2001:db8:4::9",),
    )
    router = router_name(SERVER, VNETS[0])
    assert planned.segments[(router, 7002)].gateway == "2001:db8:4::1/64"
    assert planned.remotes["mapping/far6"].ip == "2001:db8:4::99"  # canonical


def test_an_address_of_the_other_family_than_its_gateway_or_subnet_is_refused() -> None:
    v6 = network(7002, VNETS[0], IPV6)
    objects = {
        "network/v6": v6,
        "network/bad": network(7003, VNETS[0], 1) | {"gateway": "2001:db8::1"},
    }
    nic = "0c0c0c0c-0000-4000-8000-00000000000c"
    endpoint = {"nic": nic, "mac": "02AA00000001", "ip": "2001:db8:4::9", "prefixLength": 64,
                "gateway": "2001:db8:4::1", "vsid": 7002, "virtualNetwork": VNETS[0]}  # fmt: skip
    objects["endpoint/mixed"] = endpoint | {"gateway": "10.0.0.1"}
    objects["endpoint/long"] = endpoint | {"prefixLength": 129, "nic": nic[:-1] + "d"}
    messages = {f.key: f.message for f in plan(objects, SERVER).failures}
    assert "is not an IPv4 address" in messages["network/bad"]
    assert "is not an IPv6 address" in messages["endpoint/mixed"]
    assert "bad prefixLength 129" in messages["endpoint/long"]


def two_subnets_and_an_appliance() -> dict[str, Body]:
    """Subnet A (10.0.1.0/24, route table rt) with two local endpoints, subnet C
    (10.0.3.0/24) with a local appliance and a remote endpoint, in one virtual network."""
    vnet = VNETS[0]
    objects: dict[str, Body] = {
        "network/a": network(6001, vnet, 1) | {"routeTable": "rt"},
        "network/c": network(6003, vnet, 3),
        "routeTable/rt": {"routes": [
            route("10.0.3.128/25", "VirtualAppliance", "10.0.3.10"),
            route("10.0.4.0/24", "VirtualAppliance", "10.0.3.200"),
            route("10.0.5.0/24", "None"), route("10.0.3.192/26", "VnetLocal"),
            route("0.0.0.0/0", "Internet"), route("10.0.6.0/24", "VirtualNetworkGateway"),
        ]},
        "mapping/far": {"vsid": 6003, "virtualNetwork": vnet, "ip": "10.0.3.200",
                        "mac": "02BB00000001", "providerAddress": "192.0.2.9"},
    }  # fmt: skip
    for n, (third, last) in enumerate([(1, 10), (1, 11), (3, 10)]):
        objects[f"endpoint/e{n}"] = {
            "nic": f"0000000{n}-0000-4000-8000-00000000000{n}", "mac": f"02AA0000000{n}",
            "ip": f"10.0.{third}.{last}", "prefixLength": 24, "gateway": f"10.0.{third}.1",
            "vsid": 6000 + third, "virtualNetwork": vnet, "acls": [],
        }  # fmt: skip
    return objects


def test_a_route_table_becomes_a_table_of_its_subnet_and_a_rule_per_endpoint() -> None:
    planned = plan(two_subnets_and_an_appliance(), SERVER)
    router = router_name(SERVER, VNETS[0])
    table = TABLE_BASE + 6001
    routing = planned.routing[router]
    assert {r.spec for r in routing.routes} == {
        f"0.0.0.0/0 via 10.0.3.10 dev s000000020000 onlink table {APPLIANCE_BASE}",
        f"10.0.3.128/25 via 10.0.3.10 dev s000000020000 onlink table {table}",  # local
        f"10.0.4.0/24 via 10.0.3.200 dev br6003 onlink table {table}",  # remote: VXLAN
        f"blackhole 10.0.5.0/24 table {table}",
        f"throw 10.0.3.192/26 table {table}",  # on to the virtual network's own routes
        f"throw 0.0.0.0/0 table {table}",  # no path out of the virtual network today
        f"blackhole 10.0.6.0/24 table {table}",  # not supported: fails closed
    }
    # Only what subnet A's endpoints send; the appliance (subnet C) is not looped back.
    assert {r.spec for r in routing.rules} == {
        f"from 10.0.1.10 iif s000000000000 lookup {table} priority 1000",
        f"from 10.0.1.11 iif s000000010000 lookup {table} priority 1000",
        # Frames other hosts send to the appliance's MAC go on to it (the bridge marks them).
        f"fwmark 0x2000000 lookup {APPLIANCE_BASE} priority 1000",
    }
    assert planned.forwarding == {router: {"s000000020000": APPLIANCE_BASE}}
    assert [(f.key, f.message) for f in planned.failures] == [
        ("routeTable/rt", "next hop type 'VirtualNetworkGateway' of 10.0.6.0/24 is not supported")
    ]


def test_route_table_mistakes_fail_it_and_fail_closed() -> None:
    objects = two_subnets_and_an_appliance()
    objects["routeTable/rt"] = {"routes": [
        route("10.0.4.0/24", "VirtualAppliance", "10.0.9.9"), route("2001:db8::/32", "None"),
        route("10.0.4.0/24", "VnetLocal"), route("10.0.7.0/24", "VirtualAppliance", "10.0.1.11"),
    ]}  # fmt: skip
    planned = plan(objects, SERVER)
    routing = planned.routing[router_name(SERVER, VNETS[0])]
    table = TABLE_BASE + 6001
    assert {r.spec for r in routing.routes} == {
        f"0.0.0.0/0 via 10.0.1.11 dev s000000010000 onlink table {APPLIANCE_BASE}",
        f"blackhole 10.0.4.0/24 table {table}",  # the unknown appliance: not around it
        f"10.0.7.0/24 via 10.0.1.11 dev s000000010000 onlink table {table}",
    }
    # An appliance in the subnet itself does not get the subnet's table (it would loop).
    assert {r.match for r in routing.rules} == {
        "from 10.0.1.10 iif s000000000000",
        "fwmark 0x2000000",
    }
    assert {f.message for f in planned.failures} == {
        "next hop '10.0.9.9' of 10.0.4.0/24 is no endpoint here",
        "route prefix '2001:db8::/32' is not IPv4",
        "two routes for 10.0.4.0/24; the first is used",
    }
    del objects["routeTable/rt"]  # not received (yet): no table, no rule, no forwarding
    assert plan(objects, SERVER).routing == {}
    assert plan(objects, SERVER).forwarding == {}


def test_observed_routing_reads_back_what_the_agent_makes() -> None:
    table = str(TABLE_BASE + 6001)
    rules = [{"priority": 0, "src": "all", "table": "local"},
             {"priority": 1000, "src": "10.0.1.10", "iif": "s000000000000", "table": table},
             {"priority": 1000, "src": "all", "fwmark": "0x2000001", "table": "33554433"},
             {"priority": 32766, "src": "all", "table": "main"}]  # fmt: skip
    routes = [
        {"dst": "10.0.4.0/24", "gateway": "10.0.3.200", "dev": "br6003", "table": table,
         "flags": ["onlink"]},
        {"type": "blackhole", "dst": "10.0.5.7", "table": table, "flags": []},
        {"type": "throw", "dst": "default", "table": table, "flags": []},
        {"dst": "10.0.1.10", "dev": "s000000000000", "flags": []},  # main: not a route table's
    ]  # fmt: skip
    found = observed_routing(rules, routes)
    assert {r.spec for r in found.rules} == {
        f"from 10.0.1.10 iif s000000000000 lookup {table} priority 1000",
        "fwmark 0x2000001 lookup 33554433 priority 1000",
    }
    assert {r.spec for r in found.routes} == {
        f"10.0.4.0/24 via 10.0.3.200 dev br6003 onlink table {table}",
        f"blackhole 10.0.5.7/32 table {table}",
        f"throw 0.0.0.0/0 table {table}",
    }
