"""ACL objects as normalised policies (pure): what the ruleset renderer (``nft.py``) filters by.

``acls_from_objects(objects) -> dict[str, AclPolicy]``
    Reads the ``acl/<id>`` and ``aclRule/<id>`` objects of the host's desired state, keyed by
    ACL instanceId (the ids an endpoint's ``acls`` member lists). Rules whose ACL is absent are
    ignored. A rule whose values cannot be enforced is left out and recorded in the policy's
    ``problems``; an unknown default action is enforced as Deny (fail closed) and recorded.
``match_expressions(rule) -> list[str]``
    The rule's nft matches, per IP family it can match.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from controller import protocol

T = TypeVar("T")
PORT_MAX = 65535
EXPAND = 8  # at most this many nft rules for one ACL rule before lists become sets

Problem = tuple[str, str]
PortRanges = tuple[tuple[int, int], ...]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Protocol spellings (case-insensitive) -> canonical name; "all" matches every protocol.
PROTOCOLS = {
    "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "all": "all", "*": "all", "any": "all",
    "icmp": "icmp", "icmpv4": "icmp", "1": "icmp", "icmpv6": "icmpv6", "58": "icmpv6",
}  # fmt: skip
ACTIONS = {"allow": True, "permit": True, "deny": False}
DIRECTIONS = {"inbound": "inbound", "outbound": "outbound"}
L4PROTO = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "ipv6-icmp"}
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
    networks: list[Network] = []
    for part in parts:
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            message = f"address prefix {part!r} is not '*', Internet, a CIDR prefix or an address"
            raise Unenforceable(message) from None
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
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
    if not match_expressions(rule):
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


# ---------------------------------------------------------------- matching


def match_expressions(rule: Rule) -> list[str]:
    """The rule's nft matches (one after the other, same verdict), per IP family it can match;
    empty when it can match nothing."""
    families: list[int | None] = [None]
    if rule.sources or rule.destinations:
        families = [
            version
            for version in (4, 6)
            if all(
                not side or any(_version(p) == version for p in side)
                for side in (rule.sources, rule.destinations)
            )
        ]
    wanted = {"icmp": 4, "icmpv6": 6}.get(rule.protocol)
    families = [f for f in families if wanted is None or f in (None, wanted)]
    return [match for family in families for match in _match(rule, family)]


def _version(prefix: str) -> int:
    return 6 if ":" in prefix else 4


def _match(rule: Rule, family: int | None) -> list[str]:
    keyword = "ip6" if family == 6 else "ip"
    fields: list[tuple[str, list[str]]] = []
    for field, prefixes in (("saddr", rule.sources), ("daddr", rule.destinations)):
        chosen = [p for p in prefixes if _version(p) == family]
        fields += [(f"{keyword} {field}", chosen)] if chosen else []
    if rule.protocol in L4PROTO:
        fields.append(("meta l4proto", [L4PROTO[rule.protocol]]))
    elif rule.source_ports or rule.destination_ports:  # "All" with ports: those with ports
        fields.append(("meta l4proto", ["tcp", "udp"]))
    for field, ranges in (("sport", rule.source_ports), ("dport", rule.destination_ports)):
        values = [f"{low}-{high}" if high > low else str(low) for low, high in ranges]
        fields += [(f"th {field}", values)] if values else []
    # A few rules load much faster than an anonymous set each, so short lists become rules.
    matches = [""]
    for head, values in fields:
        if len(matches) * len(values) <= EXPAND:
            matches = [f"{match} {head} {value}" for match in matches for value in values]
        else:
            matches = [f"{match} {head} {{ {', '.join(values)} }}" for match in matches]
    return [match.strip() for match in matches]
