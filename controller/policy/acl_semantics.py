"""What an ACL means for a packet: one definition shared by the agent that enforces ACLs and
the controller that explains them (pure: no I/O).

``acls_from_objects(objects)`` reads the ``acl/<id>`` and ``aclRule/<id>`` objects a host
holds, keyed by ACL instanceId. A rule whose values cannot be enforced is left out and
recorded in its ACL's ``problems``; an unknown default action is enforced as Deny (fail
closed) and recorded. ``decide(acl_ids, policies, direction, packet)`` is the verdict those
ACLs give a packet: the ACLs in order (a subnet's before its ipConfiguration's), in each the
rules of that direction by priority, first match -- Allow goes on to the next ACL, Deny
drops -- then the ACL's default; an ACL the host lacks drops everything; no ACL allows.
The Linux agent renders exactly this into nftables (``controller.agent.linux.nft``), and the
connectivity check evaluates it (``controller.policy.trace``); a test holds the two equal
with real packets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from controller import protocol

T = TypeVar("T")
PORT_MAX = 65535

Problem = tuple[str, str]
PortRanges = tuple[tuple[int, int], ...]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Protocol spellings (case-insensitive) -> canonical name; "all" matches every protocol.
PROTOCOLS = {
    "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "all": "all", "*": "all", "any": "all",
    "icmp": "icmp", "icmpv4": "icmp", "1": "icmp", "icmpv6": "icmpv6", "58": "icmpv6",
}  # fmt: skip
ACTIONS = {"allow": True, "permit": True, "deny": False}
DIRECTIONS = {"inbound": "inbound", "outbound": "outbound"}
ANY_ADDRESS = {"*", "any", "internet"}
DEFAULTS = ("inboundDefaultAction", "outboundDefaultAction")


@dataclass(frozen=True)
class Rule:
    """A normalised rule; empty address or port tuples mean "any"."""

    key: str
    priority: int
    allow: bool
    protocol: str
    sources: tuple[str, ...] = ()
    source_ports: PortRanges = ()
    destinations: tuple[str, ...] = ()
    destination_ports: PortRanges = ()


@dataclass(frozen=True)
class AclPolicy:
    """An ACL's default actions and its rules per direction, in evaluation order."""

    key: str
    inbound_permit: bool = True
    outbound_permit: bool = True
    inbound: tuple[Rule, ...] = ()
    outbound: tuple[Rule, ...] = ()
    problems: tuple[Problem, ...] = ()


class Unenforceable(ValueError):
    """A value the agent cannot turn into a filter."""


# ---------------------------------------------------------------- parsing and normalisation


def pick(value: Any, choices: Mapping[str, T], expected: str) -> T:
    """``value`` looked up case-insensitively among ``choices``."""
    found = choices.get(str(value).strip().lower())
    if found is None:
        raise Unenforceable(f"{value!r} is not {expected}")
    return found


def parse_ports(value: Any) -> PortRanges:
    """``*``/absent -> () (any); ``80``, ``80-90`` or a comma list -> merged inclusive ranges."""
    if value is None:
        return ()
    text = str(value).strip().lower()
    if text in ("", "*", "any"):
        return ()
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        found = re.fullmatch(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?", part)
        if found is None:
            raise Unenforceable(f"port range {value!r} is not '*', '80', '80-90' or a list")
        low = int(found.group(1))
        high = int(found.group(2) or low)
        if not low <= high <= PORT_MAX:
            raise Unenforceable(f"port range {part.strip()!r} is not 0 <= low <= high <= 65535")
        ranges.append((low, high))
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return () if merged == [(0, PORT_MAX)] else tuple(merged)


def parse_prefixes(value: Any) -> tuple[str, ...]:
    """``*``/``Internet``/absent -> () (any); CIDRs and addresses, comma separated -> the
    collapsed prefixes (IPv4 first)."""
    if value is None:
        return ()
    parts = [part.strip() for part in str(value).split(",")]
    if any(part.lower() in ANY_ADDRESS for part in parts) or parts == [""]:
        return ()
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for part in parts:
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError:
            message = f"address prefix {part!r} is not '*', Internet, a CIDR prefix or an address"
            raise Unenforceable(message) from None
        if isinstance(network, ipaddress.IPv4Network):
            v4.append(network)
        else:
            v6.append(network)
    collapsed = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    return tuple(str(n) for n in collapsed)


def parse_priority(value: Any) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise Unenforceable(f"priority {value!r} is not an integer")
    return int(str(value).strip())


def parse_rule(key: str, body: Mapping[str, Any]) -> tuple[str, Rule]:
    """The rule's direction ("inbound"/"outbound") and the rule; Unenforceable if it is not."""
    rule = Rule(
        key=key,
        priority=parse_priority(body.get("priority")),
        allow=pick(body.get("action"), ACTIONS, "an action (Allow or Deny)"),
        protocol=pick(
            body.get("protocol"), PROTOCOLS, "a protocol (TCP, UDP, ICMPv4, ICMPv6, All)"
        ),
        sources=parse_prefixes(body.get("sourceAddressPrefix")),
        source_ports=parse_ports(body.get("sourcePortRange")),
        destinations=parse_prefixes(body.get("destinationAddressPrefix")),
        destination_ports=parse_ports(body.get("destinationPortRange")),
    )
    direction = pick(body.get("type"), DIRECTIONS, "a type (Inbound or Outbound)")
    if rule.protocol.startswith("icmp") and (rule.source_ports or rule.destination_ports):
        raise Unenforceable(f"protocol {body.get('protocol')!r} has no ports to match")
    if not families(rule):
        raise Unenforceable("matches no packet: its prefixes and protocol share no IP family")
    return direction, rule


def acls_from_objects(objects: Mapping[str, Mapping[str, Any]]) -> dict[str, AclPolicy]:
    """The ACLs among the host's objects, keyed by ACL instanceId."""
    parsed: dict[str, list[tuple[str, Rule]]] = {}
    problems: dict[str, list[Problem]] = {}
    for key in sorted(k for k in objects if protocol.kind_of(k) == protocol.ACL_RULE):
        acl_id = str(objects[key].get("acl"))
        try:
            parsed.setdefault(acl_id, []).append(parse_rule(key, objects[key]))
        except Unenforceable as exc:
            problems.setdefault(acl_id, []).append((key, str(exc)))
    policies: dict[str, AclPolicy] = {}
    for key in sorted(k for k in objects if protocol.kind_of(k) == protocol.ACL):
        acl_id = key.partition("/")[2]
        found = problems.setdefault(acl_id, [])
        inbound, outbound = (_default(key, objects[key].get(m), found) for m in DEFAULTS)
        # Lower priority first; the key only breaks ties the NBI should have refused.
        rules = sorted(parsed.get(acl_id, []), key=lambda pair: (pair[1].priority, pair[1].key))
        policies[acl_id] = AclPolicy(
            key,
            inbound,
            outbound,
            tuple(rule for side, rule in rules if side == "inbound"),
            tuple(rule for side, rule in rules if side == "outbound"),
            tuple(found),
        )
    return policies


def _default(key: str, value: Any, problems: list[Problem]) -> bool:
    try:  # absent means Permit, the NBI default
        return pick(value or "Permit", ACTIONS, "a default action (Permit or Deny)")
    except Unenforceable as exc:
        problems.append((key, f"{exc}; enforcing Deny"))
        return False


def version_of(prefix: str) -> int:
    return 6 if ":" in prefix else 4


def families(rule: Rule) -> list[int | None]:
    """The IP families (4, 6; None: either) a rule can match; empty when it matches nothing
    (an IPv4 source with an IPv6 destination, ICMPv4 toward IPv6 prefixes)."""
    found: list[int | None] = [None]
    if rule.sources or rule.destinations:
        found = [
            version
            for version in (4, 6)
            if all(
                not side or any(version_of(p) == version for p in side)
                for side in (rule.sources, rule.destinations)
            )
        ]
    wanted = {"icmp": 4, "icmpv6": 6}.get(rule.protocol)
    return [f for f in found if wanted is None or f in (None, wanted)]


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Packet:
    """The first packet of a flow: ``protocol`` is tcp, udp, icmp or icmpv6 (ports only for
    tcp and udp)."""

    source: Address
    destination: Address
    protocol: str
    source_port: int | None = None
    destination_port: int | None = None


@dataclass(frozen=True)
class Verdict:
    """What ACLs decided: ``allowed``, and which ACL and rule decided it (``rule`` None: the
    ACL's default; ``acl`` None: no ACL applies); ``missing`` names an ACL the host lacks."""

    allowed: bool
    acl: str | None = None
    rule: str | None = None
    missing: str | None = None


def matches(rule: Rule, packet: Packet) -> bool:
    if rule.protocol != "all" and rule.protocol != packet.protocol:
        return False
    # "All" with ports matches only the protocols that have ports.
    if (rule.source_ports or rule.destination_ports) and packet.protocol not in ("tcp", "udp"):
        return False
    if packet.source.version not in [f or packet.source.version for f in families(rule)]:
        return False
    return (
        _in_prefixes(packet.source, rule.sources)
        and _in_prefixes(packet.destination, rule.destinations)
        and _in_ranges(packet.source_port, rule.source_ports)
        and _in_ranges(packet.destination_port, rule.destination_ports)
    )


def _in_prefixes(address: Address, prefixes: tuple[str, ...]) -> bool:
    return not prefixes or any(address in ipaddress.ip_network(p) for p in prefixes)


def _in_ranges(port: int | None, ranges: PortRanges) -> bool:
    if not ranges:
        return True
    return port is not None and any(low <= port <= high for low, high in ranges)


def decide(
    acl_ids: Sequence[str],
    policies: Mapping[str, AclPolicy],
    direction: str,
    packet: Packet,
) -> Verdict:
    """The verdict of an endpoint's ACLs on ``packet`` in ``direction`` (see the module)."""
    last = Verdict(True)
    for acl_id in acl_ids:
        policy = policies.get(acl_id)
        if policy is None:
            return Verdict(False, acl_id, missing=acl_id)
        inbound = direction == "inbound"
        rules = policy.inbound if inbound else policy.outbound
        hit = next((rule for rule in rules if matches(rule, packet)), None)
        if hit is not None:
            last = Verdict(hit.allow, acl_id, hit.key)
        else:
            last = Verdict(policy.inbound_permit if inbound else policy.outbound_permit, acl_id)
        if not last.allowed:
            return last
    return last
