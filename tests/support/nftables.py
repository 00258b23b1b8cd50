"""Reading the agent's nftables rules back from the kernel: how many packets a rule of an ACL
chain decided (every ACL rule counts what it decides, see controller.agent.linux.nft)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from controller.agent.linux.nft import TABLE
from controller.agent.linux.nft_ports import acl_chain


def _rules(namespace: str, chain: str) -> list[list[dict[str, Any]]]:
    """The expressions of each rule of ``inet sdnc`` ``chain`` in ``namespace``."""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "-j", "list", "chain", "inet", TABLE, chain],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, f"nft list chain {chain} in {namespace}: {done.stderr}"
    listed = json.loads(done.stdout)["nftables"]
    return [item["rule"]["expr"] for item in listed if "rule" in item]


def _matches_port(expressions: list[dict[str, Any]], port: int) -> bool:
    for expression in expressions:
        match = expression.get("match", {})
        left = match.get("left", {})
        if left.get("payload", {}).get("field") == "dport" and match.get("right") == port:
            return True
    return False


def rule_packets(namespace: str, acl_id: str, direction: str, *, port: int, verdict: str) -> int:
    """Packets counted so far by the rules of ACL ``acl_id`` (``inbound``/``outbound``) that
    match destination port ``port`` and end in ``verdict`` (``drop`` or ``return``); fails
    when there is no such rule."""
    found = [
        expressions
        for expressions in _rules(namespace, acl_chain(acl_id, direction))
        if _matches_port(expressions, port) and any(verdict in e for e in expressions)
    ]
    assert found, f"no {verdict} rule for port {port} in ACL {acl_id} ({direction})"
    counters = [e["counter"] for expressions in found for e in expressions if "counter" in e]
    assert len(counters) == len(found), f"a {verdict} rule for port {port} counts nothing"
    return sum(int(counter["packets"]) for counter in counters)
