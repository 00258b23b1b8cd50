"""A load balancer's frontend ports, claimed once per frontend and protocol across its rules
and NAT rules: the linear check answers as comparing every claim with every earlier one
would, naming the same two rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.envelope import parse_resource
from controller.core.paths import parse_ref
from controller.errors import InvalidInput
from controller.resources import REGISTRY
from controller.resources.load_balancer_checks import _check_frontend_ports, _claims
from controller.service.trees import assign_refs

LB = "/loadBalancers/lb"
FRONTENDS = [f"{LB}/frontendIPConfigurations/fe{i}" for i in range(2)]


def reference(node: Any) -> tuple[str, str] | None:
    """The two rules the first clash names, comparing each claim with every earlier one."""
    taken: dict[str, list[Any]] = {}
    for frontend, claim in _claims(node):
        for other in taken.get(frontend, []):
            overlap = claim.low <= other.high and other.low <= claim.high
            if other.node is not claim.node and overlap and claim.protocols & other.protocols:
                return claim.node.ref, other.node.ref
        taken.setdefault(frontend, []).append(claim)
    return None


rule = st.fixed_dictionaries(
    {
        "nat": st.booleans(),
        "protocol": st.sampled_from(["Tcp", "Udp", "All"]),
        "port": st.sampled_from([0, 80, 81, 443]),
        "frontends": st.lists(st.sampled_from(FRONTENDS), min_size=1, max_size=2, unique=True),
    }
)


def body(rules: list[dict[str, Any]]) -> dict[str, Any]:
    pool = f"{LB}/backendAddressPools/be"
    balancing, nat = [], []
    for index, r in enumerate(rules):
        frontends = [{"resourceRef": f} for f in r["frontends"]]
        if r["nat"]:
            members = {"protocol": r["protocol"], "frontendPort": r["port"] or 1}
            nat.append(
                {
                    "resourceId": f"n{index}",
                    "properties": members | {"frontendIPConfigurations": frontends},
                }
            )
        else:
            members = {
                "protocol": r["protocol"],
                "frontendPort": r["port"],
                "backendPort": r["port"],
                "backendAddressPool": {"resourceRef": pool},
            }
            balancing.append(
                {
                    "resourceId": f"r{index}",
                    "properties": members | {"frontendIPConfigurations": frontends},
                }
            )
    return {"properties": {"loadBalancingRules": balancing, "inboundNatRules": nat}}


@settings(max_examples=300, deadline=None)
@given(st.lists(rule, max_size=8))
def test_the_first_clash_is_the_one_a_pairwise_comparison_finds(
    rules: list[dict[str, Any]],
) -> None:
    path = parse_ref(REGISTRY, LB)
    assert path is not None
    node = parse_resource(REGISTRY, path, body(rules))
    assign_refs(node)
    expected = reference(node)
    if expected is None:
        _check_frontend_ports(node)
        return
    named = re.escape(f"{expected[0]} and {expected[1]} both claim frontend port")
    with pytest.raises(InvalidInput, match=f"^{named}"):
        _check_frontend_ports(node)
