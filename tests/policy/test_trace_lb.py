"""The connectivity check's evaluator through a load balancer (``policy/trace_lb.py``): the
sender's host translates a flow to a VIP before its ACLs see it; the path goes on to the DIP its
flow hash picks (given a source port), or to each DIP (the first that fails says why)."""

from __future__ import annotations

import ipaddress
from typing import Any

from controller.policy.flow_hash import host_choice
from controller.policy.trace import CompiledPolicy, Placed, Probe, trace

V = "vnet-1"
CLIENT, D1, D2, VIP = "10.0.0.10", "10.0.0.11", "10.0.0.12", "203.0.113.10"
HOSTS = {"A": "198.18.0.1", "B": "198.18.0.2"}


def endpoint(ip: str, acls: list[str] = []) -> dict[str, Any]:  # noqa: B006
    return {"nic": f"nic-{ip}", "mac": "02:00:00:00:00:01", "ip": ip, "prefixLength": 24,
            "vsid": 5001, "subnet": "s", "virtualNetwork": V, "acls": acls}  # fmt: skip


def mapping(ip: str) -> dict[str, Any]:
    return {"vsid": 5001, "virtualNetwork": V, "ip": ip, "mac": "02:00:00:00:00:02",
            "providerAddress": HOSTS["B"], "host": "B"}  # fmt: skip


def policy(d2_acls: list[str] = []) -> CompiledPolicy:  # noqa: B006
    rule = {"vips": [VIP], "protocol": "Tcp", "frontendPort": 80, "backendPort": 8080,
            "distribution": "Default", "dips": [D1, D2], "virtualNetworks": [V]}  # fmt: skip
    nat = {"vips": [VIP], "protocol": "Tcp", "frontendPort": 2222, "backendPort": 22,
           "dip": D2, "virtualNetworks": [V]}  # fmt: skip
    hosts: dict[str, dict[str, Any]] = {
        "A": {"host/A": {"providerAddress": HOSTS["A"]}, "endpoint/c": endpoint(CLIENT),
              "mapping/d1": mapping(D1), "mapping/d2": mapping(D2), "lbRule/r": rule,
              "lbNat/n": nat},
        "B": {"host/B": {"providerAddress": HOSTS["B"]}, "endpoint/d1": endpoint(D1),
              "endpoint/d2": endpoint(D2, d2_acls), "acl/shut": {"inboundDefaultAction": "Deny"}},
    }  # fmt: skip

    def endpoints() -> list[Placed]:
        return [Placed(h, k, b) for h, objects in hosts.items() for k, b in objects.items()
                if k.startswith("endpoint/")]  # fmt: skip

    return CompiledPolicy(endpoints, lambda host: hosts[host])


def probe(port: int = 80, source_port: int | None = None) -> Probe:
    address = ipaddress.ip_address
    return Probe(address(CLIENT), V, address(VIP), V, "tcp", source_port, port)


def types(hops: list[dict[str, Any]]) -> list[str]:
    return [hop["type"] for hop in hops]


def test_with_a_source_port_the_path_goes_to_the_dip_the_host_picks() -> None:
    for source_port in (40000, 40001, 40002, 40003):
        found = trace(policy(), probe(80, source_port))
        chosen = host_choice([D1, D2], "Default", CLIENT, VIP, "tcp", source_port, 80)
        assert found.status == "Success"
        assert types(found.hops) == [
            "SenderEndpoint", "LoadBalancer", "SenderAcls",
            "Encapsulation", "ReceiverAcls", "ReceiverEndpoint",
        ]  # fmt: skip
        balancer = found.hops[1]
        assert (balancer["rule"], balancer["dip"], balancer["backendPort"]) == ("r", chosen, 8080)
        assert found.hops[-1]["ipAddress"] == chosen


def test_without_one_every_dip_is_checked_and_the_first_that_fails_says_why() -> None:
    assert trace(policy(), probe()).status == "Success"
    found = trace(policy(d2_acls=["shut"]), probe())
    assert found.status == "Failure"
    assert found.hops[1]["dip"] is None
    assert found.hops[1]["dips"] == [D1, D2]
    assert found.hops[-1]["type"] == "ReceiverAcls"
    assert "shut" in (found.reason or "")  # D2's ACL: the failing path is D2's


def test_an_inbound_nat_rule_goes_to_its_one_dip() -> None:
    found = trace(policy(), probe(2222, 40000))
    assert found.hops[1]["inboundNatRule"] == "n"
    assert found.hops[1]["dip"] == D2
    assert found.hops[-1]["ipAddress"] == D2


def test_a_port_no_rule_balances_is_not_translated() -> None:
    found = trace(policy(), probe(443, 40000))
    assert found.status == "Failure"
    assert "LoadBalancer" not in types(found.hops)
