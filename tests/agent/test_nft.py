"""The nftables ACL renderer of the Linux agent.

* parsing and normalisation of what the NBI sends (case, ports, prefixes, priorities, defaults);
* the rendered structure: both tables replaced in one script, dispatch maps, ACL and endpoint
  chains, and problems reported per object instead of breaking the table;
* properties: rendering is deterministic, every rule is either rendered in priority order or
  reported, and nft accepts every rendered ruleset (checked in a throwaway namespace);
* real packets: a router namespace between two endpoint namespaces, loaded with the ruleset,
  lets exactly the allowed TCP connections and pings through, replies of allowed flows
  included, and a second ruleset replaces the first.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.agent.linux.acls import (
    PROTOCOLS,
    AclPolicy,
    Unenforceable,
    acls_from_objects,
    match_expressions,
    parse_ports,
    parse_prefixes,
    parse_rule,
    pick,
)
from controller.agent.linux.nft import Tables, render
from controller.agent.linux.nft_ports import FilteredEndpoint, list_chain
from controller.policy.acl_semantics import Packet, decide
from tests.support.nftables import rule_packets
from tests.support.traffic import reach, serving

ACL = "5f1c8b8e-0d6b-4a59-9d2f-6c2a3c2f9a01"
SECOND = "0b7d7e1a-3f0c-4a2b-8a55-3b8f1f0d9c02"
Body = dict[str, Any]


def rule(acl: str = ACL, **members: Any) -> Body:
    body: Body = {
        "acl": acl,
        "type": "Inbound",
        "priority": 100,
        "action": "Allow",
        "protocol": "TCP",
        "sourceAddressPrefix": "*",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": "*",
        "logging": "Enabled",
    }
    return body | members


def acl(inbound: str = "Deny", outbound: str = "Permit") -> Body:
    return {"inboundDefaultAction": inbound, "outboundDefaultAction": outbound}


def endpoint(n: int, acls: tuple[str, ...] = (ACL,), **fields: str) -> FilteredEndpoint:
    values = {"veth": f"s{n:012x}", "address": f"10.0.0.{n}", "mac": f"00155d0000{n:02x}"}
    values |= fields
    return FilteredEndpoint(
        f"endpoint/ep-{n}", values["veth"], values["address"], values["mac"], acls
    )


def chain(text: str, name: str) -> list[str]:
    """The statements of one chain of a rendered ruleset."""
    lines = text.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 1 : end]]


# ---------------------------------------------------------------- parsing and normalisation


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        (None, ()),
        ("*", ()),
        (" 80 ", ((80, 80),)),
        (443, ((443, 443),)),
        ("80 - 90", ((80, 90),)),
        ("80,443,8000-8080", ((80, 80), (443, 443), (8000, 8080))),
        ("8000-8080, 81, 80, 8050-9000", ((80, 81), (8000, 9000))),
        ("0-65535", ()),
        ("0-100,101-65535", ()),
    ],
)
def test_port_ranges_are_normalised(value: Any, ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_ports(value) == ranges


@pytest.mark.parametrize("value", ["http", "90-80", "70000", "80,", "-5", "1-2-3"])
def test_bad_port_ranges_are_unenforceable(value: str) -> None:
    with pytest.raises(Unenforceable, match="port range"):
        parse_ports(value)


@pytest.mark.parametrize(
    ("value", "prefixes"),
    [
        (None, ()),
        ("*", ()),
        ("Internet", ()),
        ("INTERNET", ()),
        ("10.0.0.0/8,*", ()),
        ("10.0.0.5", ("10.0.0.5/32",)),
        ("10.0.0.5/24", ("10.0.0.0/24",)),
        ("10.1.0.0/16, 10.0.0.0/8", ("10.0.0.0/8",)),
        ("fd00::1, 192.168.1.0/24", ("192.168.1.0/24", "fd00::1/128")),
    ],
)
def test_prefixes_are_normalised(value: Any, prefixes: tuple[str, ...]) -> None:
    assert parse_prefixes(value) == prefixes


@pytest.mark.parametrize("value", ["VirtualNetwork", "10.0.0.0/33", "10.0.0.300", "a,b"])
def test_unknown_prefixes_are_unenforceable(value: str) -> None:
    with pytest.raises(Unenforceable, match="address prefix"):
        parse_prefixes(value)


@pytest.mark.parametrize(
    ("spelling", "protocol"),
    [
        ("TCP", "tcp"),
        ("tcp", "tcp"),
        ("Udp", "udp"),
        ("All", "all"),
        ("*", "all"),
        ("ICMPv4", "icmp"),
        ("icmp", "icmp"),
        ("ICMPV6", "icmpv6"),
    ],
)
def test_protocols_are_case_insensitive(spelling: str, protocol: str) -> None:
    assert pick(spelling, PROTOCOLS, "a protocol") == protocol


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"protocol": "GRE"}, "protocol"),
        ({"protocol": None}, "protocol"),
        ({"action": "Maybe"}, "action"),
        ({"type": "Sideways"}, "type"),
        ({"priority": "high"}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": None}, "priority"),
        ({"protocol": "ICMPv4", "destinationPortRange": "80"}, "no ports"),
        ({"sourceAddressPrefix": "10.0.0.0/8", "destinationAddressPrefix": "fd00::/8"}, "no IP"),
        ({"protocol": "ICMPv4", "sourceAddressPrefix": "fd00::/8"}, "no IP"),
        ({"protocol": "ICMPv6", "destinationAddressPrefix": "10.0.0.1"}, "no IP"),
    ],
)
def test_unenforceable_rules(members: Body, message: str) -> None:
    with pytest.raises(Unenforceable, match=message):
        parse_rule("aclRule/r", rule(**members))


def test_rules_are_read_per_acl_and_direction_in_priority_order() -> None:
    objects = {
        f"acl/{ACL}": acl("deny", "PERMIT"),
        "aclRule/c": rule(priority=300),
        "aclRule/a": rule(priority="200", action="deny"),
        "aclRule/b": rule(priority=65000, type="outbound"),
        "aclRule/d": rule(priority=100, type="OUTBOUND", protocol="udp"),
        "aclRule/orphan": rule(acl="gone"),
        "aclRule/broken": rule(protocol="SCTP"),
    }
    policy = acls_from_objects(objects)[ACL]
    assert (policy.key, policy.inbound_permit, policy.outbound_permit) == (
        f"acl/{ACL}",
        False,
        True,
    )
    assert [(r.key, r.priority, r.allow) for r in policy.inbound] == [
        ("aclRule/a", 200, False),
        ("aclRule/c", 300, True),
    ]
    assert [r.key for r in policy.outbound] == ["aclRule/d", "aclRule/b"]
    assert policy.problems == (
        ("aclRule/broken", "'SCTP' is not a protocol (TCP, UDP, ICMPv4, ICMPv6, All)"),
    )
    assert set(acls_from_objects(objects)) == {ACL}


@pytest.mark.parametrize(
    ("body", "permits", "problem"),
    [
        ({}, (True, True), False),
        ({"inboundDefaultAction": "DENY", "outboundDefaultAction": "Allow"}, (False, True), False),
        ({"inboundDefaultAction": "Block"}, (False, True), True),
    ],
)
def test_default_actions(body: Body, permits: tuple[bool, bool], problem: bool) -> None:
    policy = acls_from_objects({f"acl/{ACL}": body})[ACL]
    assert (policy.inbound_permit, policy.outbound_permit) == permits
    assert bool(policy.problems) == problem
    assert all(key == f"acl/{ACL}" and "enforcing Deny" in m for key, m in policy.problems)


# ---------------------------------------------------------------- rendered structure

POLICY = acls_from_objects(
    {
        f"acl/{ACL}": acl(),
        f"acl/{SECOND}": acl("Permit", "Deny"),
        "aclRule/web": rule(priority=110, destinationPortRange="443"),
        "aclRule/http": rule(priority=100, action="Deny", destinationPortRange="80"),
        "aclRule/out": rule(
            SECOND,
            type="Outbound",
            protocol="All",
            destinationAddressPrefix="10.0.0.0/8, fd00::/8",
            destinationPortRange="53",
        ),
    }
)


def test_both_tables_are_replaced_in_one_script() -> None:
    text = render([endpoint(1)], POLICY).text
    headers = [line for line in text.splitlines() if line.startswith(("table", "delete"))]
    assert headers == [
        "table bridge sdnc {}",
        "delete table bridge sdnc",
        "table bridge sdnc {",
        "table inet sdnc {}",
        "delete table inet sdnc",
        "table inet sdnc {",
        "table ip sdnc_lb {}",
        "delete table ip sdnc_lb",
        "table ip sdnc_lb {",
    ]


def test_local_macs_are_marked_for_the_host_once_each() -> None:
    endpoints = [
        endpoint(1, mac="00-15-5D-00-00-01"),
        endpoint(2, mac="00155D000001"),
        endpoint(3, mac="00:15:5d:00:00:03"),
    ]
    text = render(endpoints, POLICY).text
    assert "elements = { 00:15:5d:00:00:01, 00:15:5d:00:00:03 }" in text
    assert chain(text, "prerouting")[1:] == [
        "ether daddr @endpoint_macs meta pkttype set host",
        "meta mark set ether daddr map @appliance_marks",  # none here: a lookup that fails
    ]


def test_dispatch_by_port_and_address() -> None:
    endpoints = [endpoint(1), endpoint(2, acls=()), endpoint(3, acls=(), address="fd00::3")]
    result = render(endpoints, POLICY)
    text = result.text
    assert result.problems == ()
    assert re.search(r'"s000000000001" \. 10\.0\.0\.1 : goto acls_h[0-9a-f]{24}_out', text)
    assert '"s000000000002" . 10.0.0.2 : return' in text
    assert '"s000000000003" . fd00::3 : return' in text
    assert 'elements = { "s000000000001", "s000000000002", "s000000000003" }' in text
    assert chain(text, "outbound") == [
        "iifname . ip saddr vmap @outbound_v4",
        "iifname . ip6 saddr vmap @outbound_v6",
        "iifname @forwarding_ports return",  # an appliance forwards what is not its own
        "drop",
    ]
    assert chain(text, "forward")[1:] == [
        "ct state established,related accept",
        # An appliance may see half a flow (replies routed around it): not "invalid" there.
        "iifname != @forwarding_ports oifname != @forwarding_ports ct state invalid drop",
        "iifname @endpoint_ports jump outbound",
        "oifname @endpoint_ports jump inbound",
    ]


def test_appliance_ports_forward_only_when_named_and_in_place() -> None:
    endpoints = [endpoint(1), endpoint(2)]
    plain = render(endpoints, POLICY)
    assert "set forwarding_ports {\n\t\ttype ifname\n\t}" in plain.text  # empty
    forwarding = render(endpoints, POLICY, {"s000000000002": 1 << 25, "s00000000ffff": 7})
    assert forwarding.tables.forwarding == ('"s000000000002"',)  # not a port of this router
    assert forwarding.tables.marks == (("00:15:5d:00:00:02", "0x02000000"),)
    assert 'elements = { "s000000000002" }' in forwarding.text
    assert "elements = { 00:15:5d:00:00:02 : 0x02000000 }" in forwarding.text
    assert forwarding.tables.changes_from(plain.tables) == (
        "add element bridge sdnc appliance_marks { 00:15:5d:00:00:02 : 0x02000000 }\n"
        'add element inet sdnc forwarding_ports { "s000000000002" }\n'
    )
    assert plain.tables.changes_from(forwarding.tables) == (
        "delete element bridge sdnc appliance_marks { 00:15:5d:00:00:02 }\n"
        'delete element inet sdnc forwarding_ports { "s000000000002" }\n'
    )


def test_acl_chains_hold_rules_in_priority_order_then_the_default() -> None:
    text = render([endpoint(1, acls=(ACL, SECOND))], POLICY).text
    first, second = ACL.replace("-", ""), SECOND.replace("-", "")
    # Every rule and default counts what it decides.
    assert chain(text, f"acl_{first}_in") == [
        "meta l4proto tcp th dport 80 counter drop",
        "meta l4proto tcp th dport 443 counter return",
        "counter drop",
    ]
    assert chain(text, f"acl_{first}_out") == ["counter return"]
    assert chain(text, f"acl_{second}_out") == [
        "ip daddr 10.0.0.0/8 meta l4proto tcp th dport 53 counter return",
        "ip daddr 10.0.0.0/8 meta l4proto udp th dport 53 counter return",
        "ip6 daddr fd00::/8 meta l4proto tcp th dport 53 counter return",
        "ip6 daddr fd00::/8 meta l4proto udp th dport 53 counter return",
        "counter drop",
    ]
    shared = list_chain((ACL, SECOND), "inbound")
    assert chain(text, shared) == [f"jump acl_{first}_in", f"jump acl_{second}_in"]


def test_short_lists_become_rules_and_long_ones_sets() -> None:
    _, few = parse_rule("aclRule/r", rule(protocol="All", destinationPortRange="80,443"))
    assert match_expressions(few) == [
        "meta l4proto tcp th dport 80",
        "meta l4proto tcp th dport 443",
        "meta l4proto udp th dport 80",
        "meta l4proto udp th dport 443",
    ]
    body = rule(sourceAddressPrefix="10.1.0.0/16,10.3.0.0/16", destinationPortRange="1,3,5,7,9")
    _, many = parse_rule("aclRule/r", body)
    assert match_expressions(many) == [
        "ip saddr 10.1.0.0/16 meta l4proto tcp th dport { 1, 3, 5, 7, 9 }",
        "ip saddr 10.3.0.0/16 meta l4proto tcp th dport { 1, 3, 5, 7, 9 }",
    ]


def test_unusable_endpoints_and_acls_are_reported_not_fatal() -> None:
    endpoints = [
        endpoint(1, acls=("missing-acl", ACL)),
        endpoint(2, address="not-an-address"),
        endpoint(3, veth="bad name"),
        endpoint(4, address="10.0.0.1", veth="s000000000001"),  # same port and address as 1
        endpoint(5, mac="zz"),
    ]
    result = render(endpoints, POLICY)
    assert [key for key, _ in result.problems] == [
        "endpoint/ep-2",
        "endpoint/ep-3",
        "endpoint/ep-4",
        "endpoint/ep-5",
        "endpoint/ep-1",
    ]
    ep1 = [line for line in result.text.splitlines() if '"s000000000001" . 10.0.0.1' in line]
    assert ep1, "the first endpoint on a port and address wins"
    assert chain(result.text, list_chain(("missing-acl", ACL), "inbound")) == [
        "drop",  # the unknown ACL fails closed
        f"jump acl_{ACL.replace('-', '')}_in",
    ]
    assert "10.0.0.5 : goto" in result.text  # a bad MAC still filters by address


def test_only_problems_of_acls_in_use_are_reported() -> None:
    objects = {f"acl/{ACL}": acl(), f"acl/{SECOND}": acl(), "aclRule/x": rule(SECOND, type="?")}
    acls = acls_from_objects(objects)
    assert render([endpoint(1)], acls).problems == ()
    assert render([endpoint(1, acls=(SECOND,))], acls).problems[0][0] == "aclRule/x"


def test_chain_names_are_identifiers_derived_from_ids() -> None:
    ids = [ACL, ACL.upper(), "Fabrikam_ACL", "fwd", "a b", "Fabrikam-ACL"]
    names = set()
    for ident in ids:
        text = render([endpoint(1, acls=(ident,))], {ident: AclPolicy(f"acl/{ident}")}).text
        found = {line.split()[1] for line in text.splitlines() if "chain acl_" in line}
        assert all(re.fullmatch(r"acl_[0-9a-zA-Z]{25,32}_(in|out)", name) for name in found)
        names.add(frozenset(found))
    assert len(names) == len(ids)


# ---------------------------------------------------------------- properties

PROTOCOL_SPELLINGS = ["TCP", "tcp", "UDP", "Udp", "All", "ALL", "*", "ICMPv4", "icmpv6"]
prefix = st.one_of(
    st.builds(
        lambda a, n: str(ipaddress.ip_network(f"{a}/{n}", strict=False)),
        st.ip_addresses(v=4),
        st.integers(0, 32),
    ),
    st.builds(
        lambda a, n: str(ipaddress.ip_network(f"{a}/{n}", strict=False)),
        st.ip_addresses(v=6),
        st.integers(0, 128),
    ),
    st.ip_addresses().map(str),
)
prefixes = st.one_of(
    st.sampled_from(["*", "Internet"]), st.lists(prefix, min_size=1, max_size=3).map(", ".join)
)
port_range = st.tuples(st.integers(0, 65535), st.integers(0, 2000)).map(
    lambda r: str(r[0]) if r[1] == 0 else f"{r[0]}-{min(65535, r[0] + r[1])}"
)
ports = st.one_of(st.just("*"), st.lists(port_range, min_size=1, max_size=3).map(",".join))
rule_bodies = st.fixed_dictionaries(
    {
        "acl": st.sampled_from([ACL, SECOND]),
        "type": st.sampled_from(["Inbound", "Outbound", "inbound"]),
        "priority": st.one_of(st.integers(1, 65535), st.integers(1, 65535).map(str)),
        "action": st.sampled_from(["Allow", "Deny", "deny"]),
        "protocol": st.sampled_from(PROTOCOL_SPELLINGS),
        "sourceAddressPrefix": prefixes,
        "sourcePortRange": ports,
        "destinationAddressPrefix": prefixes,
        "destinationPortRange": ports,
        "logging": st.sampled_from(["Enabled", "Disabled"]),
    }
)
defaults = st.sampled_from(["Permit", "Deny", "permit"])
objects_st = st.builds(
    lambda rules, a, b: (
        {f"aclRule/r{i}": body for i, body in enumerate(rules)}
        | {f"acl/{ACL}": acl(*a), f"acl/{SECOND}": acl(*b)}
    ),
    st.lists(rule_bodies, max_size=8),
    st.tuples(defaults, defaults),
    st.tuples(defaults, defaults),
)
endpoints_st = st.lists(
    st.builds(
        lambda n, acls, v6: endpoint(n, acls, address=f"fd00::{n}" if v6 else f"10.0.0.{n}"),
        st.integers(1, 200),
        st.sampled_from([(), (ACL,), (SECOND,), (ACL, SECOND)]),
        st.booleans(),
    ),
    max_size=5,
    unique_by=lambda e: e.key,
)
PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(objects_st, endpoints_st)
def test_rendering_is_deterministic(objects: dict[str, Body], endpoints: list[Any]) -> None:
    once = render(endpoints, acls_from_objects(objects))
    shuffled = dict(reversed(objects.items()))
    assert render(list(reversed(endpoints)), acls_from_objects(shuffled)) == once


@PROPERTY
@given(objects_st, endpoints_st)
def test_every_rule_is_rendered_in_order_or_reported(
    objects: dict[str, Body], endpoints: list[Any]
) -> None:
    acls = acls_from_objects(objects)
    endpoints = [*endpoints, endpoint(250, (ACL, SECOND))]
    result = render(endpoints, acls)
    reported = {key for key, _ in result.problems}
    for acl_id, policy in acls.items():
        rendered = {r.key for r in (*policy.inbound, *policy.outbound)}
        for key, body in objects.items():
            if key.startswith("aclRule/") and body["acl"] == acl_id:
                assert (key in rendered) != (key in reported), key
        for direction, rules in (("in", policy.inbound), ("out", policy.outbound)):
            verdicts = [
                f"{match} counter {'return' if r.allow else 'drop'}".strip()
                for r in rules
                for match in match_expressions(r)
            ]
            statements = chain(result.text, f"acl_{acl_id.replace('-', '')}_{direction}")
            assert statements[:-1] == verdicts
            assert [r.priority for r in rules] == sorted(r.priority for r in rules)


@pytest.fixture(scope="module")
def scratch_namespace() -> Iterator[str]:
    name = f"sdnc-test-nft-{uuid.uuid4().hex[:8]}"
    run("ip", "netns", "add", name)
    try:
        yield name
    finally:
        run("ip", "netns", "del", name)


@pytest.mark.dataplane("nft")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=objects_st, endpoints=endpoints_st)
def test_nft_accepts_every_rendered_ruleset(
    scratch_namespace: str, objects: dict[str, Body], endpoints: list[Any]
) -> None:
    text = render(endpoints, acls_from_objects(objects)).text
    nft(scratch_namespace, text, "-c")


# ---------------------------------------------------------------- real packets


def run(*command: str, stdin: str | None = None, check: bool = True) -> int:
    done = subprocess.run(
        command, input=stdin, text=True, capture_output=True, check=False, timeout=60
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.returncode


def nft(namespace: str, script: str, *options: str) -> None:
    run("ip", "netns", "exec", namespace, "nft", *options, "-f", "-", stdin=script)


@dataclass
class Lab:
    router: str
    a: str
    b: str
    tag: str

    def reach(self, client: str, address: str, port: int, *source: str) -> str:
        """What one TCP connection attempt met: connected, refused, dropped (no answer)."""
        return reach(client, address, port, *source)

    def connects(self, client: str, address: str, port: int, *source: str) -> bool:
        return self.reach(client, address, port, *source) == "connected"

    def dropped(self, client: str, address: str, port: int, *source: str) -> bool:
        """The SYN got no answer at all: dropped, not refused (every port here listens)."""
        return self.reach(client, address, port, *source) == "dropped"

    def pings(self, client: str, address: str) -> bool:
        command = ("ip", "netns", "exec", client, "ping", "-c1", "-W1", "-q", address)
        return run(*command, check=False) == 0


ADDRESS = {"a": "10.77.0.2", "b": "10.77.0.3"}
STRAY = "10.77.0.9"
MAC = {"a": "02:00:00:77:00:02", "b": "02:00:00:77:00:03"}


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A router namespace routing /32s to two endpoint namespaces over veths (proxy ARP), each
    endpoint running a TCP server on 80, 443 and 8080."""
    tag = uuid.uuid4().hex[:6]
    lab = Lab(f"sdnc-test-r-{tag}", f"sdnc-test-a-{tag}", f"sdnc-test-b-{tag}", tag)
    # Undone in reverse, every step even when another fails: servers, then namespaces.
    with contextlib.ExitStack() as cleanup:
        for name in (lab.router, lab.a, lab.b):
            cleanup.callback(run, "ip", "netns", "del", name, check=False)
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "netns", "exec", lab.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for side, namespace in (("a", lab.a), ("b", lab.b)):
            port = f"s{side}{tag}"
            run("ip", "-n", lab.router, "link", "add", port, "type", "veth", "peer", "name",
                "eth0", "netns", namespace)  # fmt: skip
            run("ip", "-n", namespace, "link", "set", "eth0", "address", MAC[side], "up")
            run("ip", "-n", namespace, "addr", "add", f"{ADDRESS[side]}/24", "dev", "eth0")
            run("ip", "-n", namespace, "route", "add", "default", "via", "10.77.0.1")
            run("ip", "-n", lab.router, "link", "set", port, "up")
            run("ip", "-n", lab.router, "addr", "add", "10.77.0.1/32", "dev", port)
            run("ip", "-n", lab.router, "route", "add", f"{ADDRESS[side]}/32", "dev", port)
            for setting in (f"conf.{port}.proxy_arp=1", f"neigh.{port}.proxy_delay=0"):
                run("ip", "netns", "exec", lab.router, "sysctl", "-qw", f"net.ipv4.{setting}")
            cleanup.enter_context(serving(namespace, 80, 443, 8080))
        yield lab


def lab_endpoints(lab: Lab, acls_a: tuple[str, ...]) -> list[FilteredEndpoint]:
    return [
        FilteredEndpoint("endpoint/a", f"sa{lab.tag}", ADDRESS["a"], MAC["a"], acls_a),
        FilteredEndpoint("endpoint/b", f"sb{lab.tag}", ADDRESS["b"], MAC["b"], ()),
    ]


@pytest.mark.dataplane("nft", "ping")
def test_real_packets_follow_the_acls(lab: Lab) -> None:
    a, b = ADDRESS["a"], ADDRESS["b"]
    assert lab.connects(lab.b, a, 8080), "the lab routes without rules"
    assert lab.pings(lab.a, b), "the lab routes without rules"
    # A second address in A's namespace that the router routes to A but no endpoint has.
    run("ip", "-n", lab.a, "addr", "add", f"{STRAY}/32", "dev", "eth0")
    run("ip", "-n", lab.router, "route", "add", f"{STRAY}/32", "dev", f"sa{lab.tag}")
    assert lab.connects(lab.a, b, 8080, STRAY), "the stray address routes without rules"

    first = acls_from_objects(
        {
            f"acl/{ACL}": acl("Deny", "Permit"),
            "aclRule/https": rule(priority=100, destinationPortRange="443"),
            "aclRule/http": rule(priority=110, action="Deny", destinationPortRange="80"),
            "aclRule/http-too-late": rule(priority=120, destinationPortRange="80"),
        }
    )
    ruleset = render(lab_endpoints(lab, (ACL,)), first)
    assert ruleset.problems == ()
    nft(lab.router, ruleset.text)
    nft(lab.router, ruleset.text)  # applying again replaces, never duplicates
    tables = subprocess.run(
        ["ip", "netns", "exec", lab.router, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert tables.split("\n", 2)[:2] == ["table bridge sdnc", "table inet sdnc"]
    assert lab.connects(lab.b, a, 443), "inbound TCP 443 is allowed"
    assert lab.dropped(lab.b, a, 80), "inbound TCP 80 is denied (first match wins)"
    # It was the deny rule that dropped it; the later allow of port 80 saw nothing.
    assert rule_packets(lab.router, ACL, "inbound", port=80, verdict="drop") >= 1
    assert rule_packets(lab.router, ACL, "inbound", port=80, verdict="return") == 0
    assert lab.dropped(lab.b, a, 8080), "the inbound default is Deny"
    assert not lab.pings(lab.b, a), "the inbound default is Deny for ICMP too"
    assert lab.connects(lab.a, b, 8080), "outbound is permitted and its replies come back"
    assert lab.pings(lab.a, b), "ping replies of an outbound ping come back"
    assert lab.dropped(lab.a, b, 8080, STRAY), "a port's other addresses are dropped"

    # The endpoint now has two ACLs: a packet must be allowed by both.
    second = acls_from_objects(
        {
            f"acl/{ACL}": acl("Permit", "Permit"),
            "aclRule/no-https": rule(priority=100, action="Deny", destinationPortRange="443"),
            f"acl/{SECOND}": acl("Deny", "Deny"),
            "aclRule/web": rule(SECOND, priority=100, destinationPortRange="80,443"),
        }
    )
    nft(lab.router, render(lab_endpoints(lab, (ACL, SECOND)), second).text)
    assert lab.dropped(lab.b, a, 443), "denied by the first ACL, allowed by the second"
    assert rule_packets(lab.router, ACL, "inbound", port=443, verdict="drop") >= 1
    assert lab.connects(lab.b, a, 80), "permitted by the first's default, allowed by the second"
    assert lab.dropped(lab.b, a, 8080), "the second ACL's inbound default is Deny"
    assert lab.dropped(lab.a, b, 8080), "the second ACL's outbound default is Deny"

    nft(lab.router, render(lab_endpoints(lab, ()), {}).text)
    assert lab.connects(lab.b, a, 8080), "no ACL: everything passes"
    assert lab.connects(lab.a, b, 443), "no ACL: everything passes"


# ---------------------------------------------------------------- changes in place


def test_an_unchanged_ruleset_needs_no_transaction() -> None:
    tables = render([endpoint(1), endpoint(2)], POLICY).tables
    assert tables.changes_from(tables) == ""


def test_a_new_endpoint_adds_its_elements_and_chains_only() -> None:
    old = render([endpoint(1)], POLICY).tables
    new = render([endpoint(1), endpoint(2)], POLICY).tables
    script = new.changes_from(old).splitlines()
    assert all(line.startswith(("add chain", "add rule", "add element")) for line in script)
    assert 'add element inet sdnc endpoint_ports { "s000000000002" }' in script
    assert "add element bridge sdnc endpoint_macs { 00:15:5d:00:00:02 }" in script
    assert not any("s000000000001" in line for line in script)
    first = ACL.replace("-", "")
    assert not any(f"acl_{first}" in line.split(" jump ")[0] for line in script)


def test_a_changed_rule_rewrites_its_acl_chain_alone() -> None:
    changed = acls_from_objects(
        {f"acl/{ACL}": acl(), "aclRule/web": rule(priority=110, destinationPortRange="8443")}
    )
    endpoints = [endpoint(1), endpoint(2)]
    old, new = render(endpoints, POLICY).tables, render(endpoints, changed).tables
    script = new.changes_from(old).splitlines()
    first = ACL.replace("-", "")
    assert script[0] == f"flush chain inet sdnc acl_{first}_in"
    assert all(f"acl_{first}_in" in line for line in script)
    assert "add element" not in "".join(script)


def test_a_changed_rule_is_enforced_by_inserts_and_tidied_after() -> None:
    """The transition inserts the chain's new rules ahead of the old ones (a transaction that
    deletes waits in the kernel); tidying later leaves the chain as a flush would have."""
    changed = acls_from_objects(
        {f"acl/{ACL}": acl(), "aclRule/web": rule(priority=110, destinationPortRange="8443")}
    )
    endpoints = [endpoint(1), endpoint(2)]
    old, new = render(endpoints, POLICY).tables, render(endpoints, changed).tables
    transition = new.transition_from(old)
    chain = f"acl_{ACL.replace('-', '')}_in"
    assert transition.shadowed == {chain}
    inserted = [line.split(f" {chain} ", 1)[1] for line in transition.now.splitlines()]
    assert all(
        line.startswith(f"insert rule inet sdnc {chain} ") for line in transition.now.splitlines()
    )
    assert inserted[::-1] == list(dict(new.chains)[chain]), "each goes to the head: reversed"
    assert new.tidy(transition.shadowed) == new.changes_from(old)
    assert new.tidy({"acl_gone_in"}) == "", "a chain deleted since needs no tidying"


def test_a_chain_without_a_final_verdict_is_rewritten_in_place() -> None:
    old = Tables(chains=(("acls_x_in", ("jump acl_a_in",)),))
    new = Tables(chains=(("acls_x_in", ("drop",)),))
    transition = new.transition_from(old)
    assert transition.shadowed == frozenset()
    assert transition.now == new.changes_from(old)
    assert transition.now.startswith("flush chain inet sdnc acls_x_in\n")


def test_endpoints_with_the_same_acls_share_their_chains() -> None:
    text = render([endpoint(n) for n in range(1, 40)], POLICY).text
    assert len([line for line in text.splitlines() if "chain acls_" in line]) == 2
    assert text.count(f"goto {list_chain((ACL,), 'inbound')}") == 39


def test_the_last_endpoint_of_an_acl_list_takes_its_chain_along() -> None:
    old = render([endpoint(1), endpoint(2, acls=(SECOND,))], POLICY).tables
    new = render([endpoint(1)], POLICY).tables
    script = new.changes_from(old).splitlines()
    gone = list_chain((SECOND,), "inbound")
    assert script.index(f"flush chain inet sdnc {gone}") < script.index(
        f"delete chain inet sdnc {gone}"
    )
    assert any(line.startswith("delete element inet sdnc inbound_v4") for line in script)


# ---------------------------------------------------------------- the shared semantics, checked

# Tries several TCP connections at once from fixed source ports; prints one outcome per port
# (connected, refused, dropped), so a drop costs one short wait for all of them.
PROBES = """
import json, socket, sys, threading
address, timeout, pairs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
outcomes = {}
def attempt(source, port):
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.settimeout(timeout)
        sock.bind(("0.0.0.0", int(source)))
        sock.connect((address, int(port)))
        outcomes[port] = "connected" if sock.recv(2) == b"ok" else "failed"
    except ConnectionRefusedError:
        outcomes[port] = "refused"
    except TimeoutError:
        outcomes[port] = "dropped"
    except OSError as exc:
        outcomes[port] = f"failed: {exc}"
    finally:
        sock.close()
threads = [threading.Thread(target=attempt, args=pair.split(":")) for pair in pairs]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(json.dumps(outcomes))
"""
LAB_PORTS = (80, 443, 8080)
lab_prefixes = st.sampled_from(
    ["*", "Internet", "10.77.0.2", "10.77.0.3", "10.77.0.0/24", "10.77.0.0/31", "192.0.2.0/24",
     "10.77.0.2, 10.77.0.3"]
)  # fmt: skip
lab_ports = st.sampled_from(["*", "80", "443", "80,443", "8000-8090", "1-1023"])
lab_source_ports = st.sampled_from(["*", "20000-29999", "30000-65535", "1-1023"])
lab_rules = st.fixed_dictionaries(
    {
        "acl": st.sampled_from([ACL, SECOND]),
        "type": st.sampled_from(["Inbound", "Outbound"]),
        "priority": st.integers(100, 110),
        "action": st.sampled_from(["Allow", "Deny"]),
        "protocol": st.sampled_from(["TCP", "All", "ICMPv4", "UDP"]),
        "sourceAddressPrefix": lab_prefixes,
        "sourcePortRange": lab_source_ports,
        "destinationAddressPrefix": lab_prefixes,
        "destinationPortRange": lab_ports,
    }
)
lab_objects = st.builds(
    lambda rules, a, b: (
        {f"aclRule/r{i}": body for i, body in enumerate(rules)}
        | {f"acl/{ACL}": acl(*a), f"acl/{SECOND}": acl(*b)}
    ),
    st.lists(lab_rules, max_size=6),
    st.tuples(defaults, defaults),
    st.tuples(defaults, defaults),
)
lab_acls = st.sampled_from([(), (ACL,), (SECOND,), (ACL, SECOND)])


class SourcePorts:
    """Each TCP attempt its own source port, so no connection of an earlier example (in
    TIME_WAIT, or tracked by conntrack) can stand for a new one."""

    def __init__(self) -> None:
        self.next = 20000

    def take(self) -> int:
        self.next = 20000 + (self.next - 20000 + 1) % 40000
        return self.next


@pytest.mark.dataplane("nft", "ping")
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(objects=lab_objects, acls_a=lab_acls, acls_b=lab_acls)
def test_what_the_connectivity_check_decides_is_what_packets_do(
    lab: Lab,
    objects: dict[str, Body],
    acls_a: tuple[str, ...],
    acls_b: tuple[str, ...],
) -> None:
    """The evaluator (``acl_semantics.decide``: the sender's ACLs outbound, then the
    receiver's inbound) predicts every TCP connection and ping between two endpoints under
    random ACLs, as the rendered nftables ruleset really treats them."""
    ports = SOURCE_PORTS.setdefault(lab.tag, SourcePorts())
    policies = acls_from_objects(objects)
    endpoints = [
        FilteredEndpoint("endpoint/a", f"sa{lab.tag}", ADDRESS["a"], MAC["a"], acls_a),
        FilteredEndpoint("endpoint/b", f"sb{lab.tag}", ADDRESS["b"], MAC["b"], acls_b),
    ]
    nft(lab.router, render(endpoints, policies).text)
    acls_of = {"a": acls_a, "b": acls_b}
    namespace = {"a": lab.a, "b": lab.b}
    for sender, receiver in (("a", "b"), ("b", "a")):
        attempts = {port: ports.take() for port in LAB_PORTS}
        pairs = [f"{source}:{port}" for port, source in attempts.items()]
        command = ("ip", "netns", "exec", namespace[sender], sys.executable, "-c", PROBES,
                   ADDRESS[receiver], "0.5", *pairs)  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
        outcomes = json.loads(done.stdout)
        for port, source in attempts.items():
            packet = Packet(
                ipaddress.ip_address(ADDRESS[sender]),
                ipaddress.ip_address(ADDRESS[receiver]),
                "tcp",
                source,
                port,
            )
            predicted = predicted_outcome(policies, acls_of[sender], acls_of[receiver], packet)
            assert outcomes[str(port)] == predicted, (sender, receiver, port, source, objects)
        ping = Packet(
            ipaddress.ip_address(ADDRESS[sender]), ipaddress.ip_address(ADDRESS[receiver]), "icmp"
        )
        predicted = predicted_outcome(policies, acls_of[sender], acls_of[receiver], ping)
        command = ("ip", "netns", "exec", namespace[sender], "ping", "-c1", "-W0.5", "-q",
                   ADDRESS[receiver])  # fmt: skip
        pinged = run(*command, check=False) == 0
        assert pinged == (predicted == "connected"), (sender, receiver, "ping", objects)


SOURCE_PORTS: dict[str, SourcePorts] = {}


def predicted_outcome(
    policies: dict[str, AclPolicy],
    sender_acls: tuple[str, ...],
    receiver_acls: tuple[str, ...],
    packet: Packet,
) -> str:
    out = decide(sender_acls, policies, "outbound", packet)
    arrived = out.allowed and decide(receiver_acls, policies, "inbound", packet).allowed
    return "connected" if arrived else "dropped"
