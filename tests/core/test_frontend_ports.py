"""A load balancer's frontend ports, claimed once per frontend and protocol across its rules
and NAT rules: the linear checks answer as comparing every claim with every other would,
naming the same two rules, over a whole load balancer and for one NAT rule written alone
against its siblings' stored documents."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.envelope import parse_resource
from controller.core.kinds import SiblingDocument
from controller.core.paths import parse_ref
from controller.core.tree import Node
from controller.errors import InvalidInput
from controller.resources import REGISTRY
from controller.resources.load_balancer_checks import NAT_RULES, RULES
from controller.resources.load_balancer_ports import check_frontend_ports, check_frontend_ports_of
from controller.service.trees import assign_refs

LB = "/loadBalancers/lb"
FRONTENDS = [f"{LB}/frontendIPConfigurations/fe{i}" for i in range(2)]
Claim = tuple[str, frozenset[str], int, int]  # frontend, protocols, low, high


def claims(child: Node) -> list[Claim]:
    """What a rule or NAT rule claims, worked out from its document."""
    document = child.model.dump()
    protocol = document["protocol"]
    protocols = frozenset({"Tcp", "Udp"} if protocol == "All" else {protocol})
    port = document["frontendPort"]
    low, high = (0, 65535) if child.kind.name == RULES and port == 0 else (port, port)
    frontends = [f["resourceRef"].lower() for f in document["frontendIPConfigurations"]]
    return [(frontend, protocols, low, high) for frontend in frontends]


def overlap(one: Claim, other: Claim) -> bool:
    same = one[0] == other[0] and bool(one[1] & other[1])
    return same and one[2] <= other[3] and other[2] <= one[3]


def pairwise(children: list[Node]) -> tuple[str, str] | None:
    """The two rules the first clash names: each claim against every earlier one."""
    earlier: list[tuple[Node, Claim]] = []
    for child in children:
        for claim in claims(child):
            for other, made in earlier:
                if other is not child and overlap(claim, made):
                    return child.ref, other.ref
        earlier.extend((child, claim) for claim in claims(child))
    return None


rule = st.fixed_dictionaries(
    {
        "nat": st.booleans(),
        "protocol": st.sampled_from(["Tcp", "Udp", "All"]),
        "port": st.sampled_from([0, 80, 81, 443]),
        "frontends": st.lists(st.sampled_from(FRONTENDS), min_size=1, max_size=2, unique=True),
    }
)


def load_balancer(rules: list[dict[str, Any]]) -> Node:
    pool = {"resourceRef": f"{LB}/backendAddressPools/be"}
    balancing, nat = [], []
    for index, r in enumerate(rules):
        members = {
            "protocol": r["protocol"],
            "frontendIPConfigurations": [{"resourceRef": f} for f in r["frontends"]],
        }
        if r["nat"]:
            members["frontendPort"] = r["port"] or 1
            nat.append({"resourceId": f"n{index}", "properties": members})
        else:
            members |= {"frontendPort": r["port"], "backendPort": r["port"]}
            balancing.append(
                {"resourceId": f"r{index}", "properties": members | {"backendAddressPool": pool}}
            )
    body = {"properties": {RULES: balancing, NAT_RULES: nat}}
    path = parse_ref(REGISTRY, LB)
    assert path is not None
    node = parse_resource(REGISTRY, path, body)
    assign_refs(node)
    return node


def raises_naming(expected: tuple[str, str]) -> Any:
    named = re.escape(f"{expected[0]} and {expected[1]} both claim frontend port")
    return pytest.raises(InvalidInput, match=f"^{named}")


@settings(max_examples=300, deadline=None)
@given(st.lists(rule, max_size=8))
def test_a_whole_load_balancer_names_the_first_clash(rules: list[dict[str, Any]]) -> None:
    node = load_balancer(rules)
    children = [*node.kids(RULES), *node.kids(NAT_RULES)]
    expected = pairwise(children)
    if expected is None:
        check_frontend_ports(children)
        return
    with raises_naming(expected):
        check_frontend_ports(children)


@settings(max_examples=300, deadline=None)
@given(st.lists(rule, min_size=1, max_size=8))
def test_one_rule_alone_is_checked_against_its_siblings_documents(
    rules: list[dict[str, Any]],
) -> None:
    node = load_balancer(rules)
    children = [*node.kids(RULES), *node.kids(NAT_RULES)]
    written, others = children[-1], children[:-1]
    siblings = [SiblingDocument(o.kind.name, o.ref, o.model.dump()) for o in others]
    expected = next(
        (
            (written.ref, other.ref)
            for claim in claims(written)
            for other in others
            if any(overlap(claim, made) for made in claims(other))
        ),
        None,
    )
    if expected is None:
        check_frontend_ports_of(written, siblings)
        return
    with raises_naming(expected):
        check_frontend_ports_of(written, siblings)
