"""ACLs as one nftables script per router namespace (pure: objects in, ruleset text out).

API (the dataplane calls these; nothing here does I/O):

``acls_from_objects(objects) -> dict[str, AclPolicy]``
    Reads the ``acl/<id>`` and ``aclRule/<id>`` objects of the host's desired state, keyed by
    ACL instanceId (the ids an endpoint's ``acls`` member lists). Defined, with what an ACL
    decides for a packet, in ``controller.policy.acl_semantics``, which the controller's
    connectivity check shares: what this module renders is what that module evaluates.
``render(endpoints, acls) -> Ruleset``
    ``Ruleset.text`` is one script for ``nft -f`` that replaces ``table bridge sdnc`` and
    ``table inet sdnc`` in one transaction (each is created empty, deleted, then defined).
    ``Ruleset.problems`` lists ``(object key, message)`` for what could not be enforced as
    sent: rules and ACLs (of the ACLs these endpoints use) and endpoints -- report them as
    per-object failures.

The bridge table marks frames for local endpoint MACs as addressed to the host (arriving over
VXLAN they are PACKET_OTHERHOST, which IP drops). The inet forward hook filters the routed
traffic of local endpoints with conntrack (replies of accepted flows pass): a packet from an
endpoint port meets its sender's outbound ACLs, then one to an endpoint port its receiver's
inbound ACLs, each found by one verdict-map lookup on (port, address); an address that is no
endpoint's on that port is dropped (no spoofing past an ACL). An ACL is a chain per direction,
rules by priority, first match: Allow returns to the next ACL, Deny drops, then the default.
Endpoints without ACLs pass. ``logging`` is not enforced; established flows survive a change.
Every ACL rule and default counts the packets it decides (``counter``); a ruleset is compared
with the kernel's listed without those counts (``nft -s``), which traffic changes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.policy.acl_semantics import (
    PROTOCOLS,
    AclPolicy,
    Problem,
    Rule,
    Unenforceable,
    acls_from_objects,
    families,
    parse_ports,
    parse_prefixes,
    parse_rule,
    pick,
    version_of,
)

# What an ACL means is shared with the controller's connectivity check; re-exported here for
# the dataplane and the tests that read the agent's view of it.
__all__ = [
    "PROTOCOLS", "AclPolicy", "FilteredEndpoint", "Problem", "Rule", "Ruleset", "Unenforceable",
    "acl_chain", "acls_from_objects", "endpoint_chain", "ident", "match_expressions",
    "parse_ports", "parse_prefixes", "parse_rule", "pick", "render", "verdict_of",
]  # fmt: skip

TABLE = "sdnc"
EXPAND = 8  # at most this many nft rules for one ACL rule before lists become sets

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

L4PROTO = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "ipv6-icmp"}
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_MAC = re.compile(r"[0-9a-f]{12}")
_SUFFIX = {"inbound": "in", "outbound": "out"}


@dataclass(frozen=True)
class FilteredEndpoint:
    """One local ipConfiguration: key ``endpoint/<id>``, its router-side veth, its address,
    its MAC (aa:bb:cc:dd:ee:ff) and its ACL instanceIds in order (subnet's first)."""

    key: str
    veth: str
    address: str
    mac: str
    acl_ids: tuple[str, ...]


@dataclass(frozen=True)
class Ruleset:
    text: str
    problems: tuple[Problem, ...]


# ---------------------------------------------------------------- rendering


def match_expressions(rule: Rule) -> list[str]:
    """The rule's nft matches (one after the other, same verdict), per IP family it can match;
    empty when it can match nothing."""
    return [match for family in families(rule) for match in _match(rule, family)]


def _match(rule: Rule, family: int | None) -> list[str]:
    keyword = "ip6" if family == 6 else "ip"
    fields: list[tuple[str, list[str]]] = []
    for field, prefixes in (("saddr", rule.sources), ("daddr", rule.destinations)):
        chosen = [p for p in prefixes if version_of(p) == family]
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


def ident(instance_id: str) -> str:
    """A chain-name fragment: a GUID's 32 hex digits, else a digest of the id (injective in
    practice: digests start with "h", which no hex digit is; names are case-sensitive)."""
    if _GUID.fullmatch(instance_id):
        return instance_id.replace("-", "")
    return "h" + hashlib.sha256(instance_id.encode()).hexdigest()[:24]


def acl_chain(acl_id: str, direction: str) -> str:
    return f"acl_{ident(acl_id)}_{_SUFFIX[direction]}"


def endpoint_chain(key: str, direction: str) -> str:
    return f"ep_{ident(key.partition('/')[2])}_{_SUFFIX[direction]}"


def _acl_lines(acl_id: str, policy: AclPolicy, direction: str) -> list[str]:
    rules, permit = (
        (policy.inbound, policy.inbound_permit)
        if direction == "inbound"
        else (policy.outbound, policy.outbound_permit)
    )
    lines = [f"chain {acl_chain(acl_id, direction)} {{"]
    for rule in rules:
        verdict = verdict_of(rule.allow)
        lines += [f"{match} {verdict}".strip() for match in match_expressions(rule)]
    lines += [verdict_of(permit), "}"]
    return lines


def verdict_of(allow: bool) -> str:
    """An ACL rule's (or default's) statement: it counts what it decides, so which rule let a
    packet through or dropped it can be read from the kernel (``nft list chain``)."""
    return "counter return" if allow else "counter drop"


@dataclass(frozen=True)
class _Port:  # an endpoint whose port and address are usable
    endpoint: FilteredEndpoint
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    mac: str | None


def _check_endpoint(endpoint: FilteredEndpoint, problems: list[Problem]) -> _Port | None:
    if not _IFNAME.fullmatch(endpoint.veth):
        problems.append((endpoint.key, f"interface name {endpoint.veth!r} is not valid"))
        return None
    try:
        address = ipaddress.ip_interface(endpoint.address.strip()).ip
    except ValueError:
        problems.append((endpoint.key, f"address {endpoint.address!r} is not an IP address"))
        return None
    bare = re.sub(r"[:.-]", "", endpoint.mac.strip().lower())
    mac = ":".join(bare[i : i + 2] for i in range(0, 12, 2)) if _MAC.fullmatch(bare) else None
    if mac is None:
        problems.append((endpoint.key, f"MAC {endpoint.mac!r} is not a MAC address"))
    return _Port(endpoint, address, mac)


def render(endpoints: Sequence[FilteredEndpoint], acls: Mapping[str, AclPolicy]) -> Ruleset:
    """The script replacing both tables, and what could not be enforced (see the module)."""
    problems: list[Problem] = []
    ports: dict[tuple[str, str], _Port] = {}
    for endpoint in sorted(set(endpoints), key=lambda e: (e.key, e.veth, e.address)):
        port = _check_endpoint(endpoint, problems)
        if port is None:
            continue
        slot = (endpoint.veth, str(port.address))
        if slot in ports:
            other = ports[slot].endpoint.key
            message = f"{slot[1]} on {slot[0]} is also {other}; its ACLs are not enforced"
            problems.append((endpoint.key, message))
            continue
        ports[slot] = port
    used = sorted({acl for port in ports.values() for acl in port.endpoint.acl_ids})
    for acl_id in used:
        if acl_id in acls:
            problems.extend(acls[acl_id].problems)
    for port in ports.values():
        missing = [acl for acl in port.endpoint.acl_ids if acl not in acls]
        if missing:
            message = f"ACL {', '.join(missing)} is unknown; dropping the endpoint's traffic"
            problems.append((port.endpoint.key, message))
    # A port whose endpoint is unusable still drops what no endpoint of it may send or get.
    veths = {e.veth for e in endpoints if _IFNAME.fullmatch(e.veth)}
    text = _bridge_table(ports.values()) + _inet_table(list(ports.values()), veths, acls, used)
    return Ruleset(text, tuple(dict.fromkeys(problems)))


def _bridge_table(ports: Iterable[_Port]) -> str:
    macs = sorted({port.mac for port in ports if port.mac is not None})
    prerouting = [
        "chain prerouting {",
        "type filter hook prerouting priority 0; policy accept;",
        "ether daddr @endpoint_macs meta pkttype set host",
        "}",
    ]
    return _table("bridge", [*_named("set endpoint_macs", "ether_addr", macs), *prerouting])


_TAIL = """\
chain outbound {
iifname . ip saddr vmap @outbound_v4
iifname . ip6 saddr vmap @outbound_v6
drop
}
chain inbound {
oifname . ip daddr vmap @inbound_v4
oifname . ip6 daddr vmap @inbound_v6
drop
}
chain forward {
type filter hook forward priority filter; policy accept;
ct state established,related accept
ct state invalid drop
iifname @endpoint_ports jump outbound
oifname @endpoint_ports jump inbound
}"""  # outbound/inbound drop what is not an endpoint's address on that port (spoofed, stale)


def _inet_table(
    ports: list[_Port], veths: set[str], acls: Mapping[str, AclPolicy], used: list[str]
) -> str:
    lines: list[str] = []
    for direction, version in ((d, v) for d in ("outbound", "inbound") for v in (4, 6)):
        elements = [f'"{p.endpoint.veth}" . {p.address} : {_dispatch(p, direction)}'
                    for p in ports if p.address.version == version]  # fmt: skip
        verdicts = f"ifname . ipv{version}_addr : verdict"
        lines += _named(f"map {direction}_v{version}", verdicts, elements)
    lines += _named("set endpoint_ports", "ifname", [f'"{veth}"' for veth in sorted(veths)])
    for acl_id, direction in ((a, d) for a in used if a in acls for d in _SUFFIX):
        lines += _acl_lines(acl_id, acls[acl_id], direction)
    for port, direction in ((p, d) for p in ports if p.endpoint.acl_ids for d in _SUFFIX):
        jumps = [f"jump {acl_chain(a, direction)}" if a in acls else "drop"
                 for a in port.endpoint.acl_ids]  # fmt: skip
        lines += [f"chain {endpoint_chain(port.endpoint.key, direction)} {{", *jumps, "}"]
    return _table("inet", [*lines, *_TAIL.splitlines()])


def _dispatch(port: _Port, direction: str) -> str:
    # goto: the end of the endpoint's chain returns to forward, which goes on to inbound.
    if port.endpoint.acl_ids:
        return f"goto {endpoint_chain(port.endpoint.key, direction)}"
    return "return"


def _named(declaration: str, type_: str, elements: list[str]) -> list[str]:
    listed = [f"elements = {{ {', '.join(elements)} }}"] if elements else []
    return [f"{declaration} {{", f"type {type_}", *listed, "}"]


def _table(family: str, body: list[str]) -> str:
    lines = [f"table {family} {TABLE} {{}}", f"delete table {family} {TABLE}"]
    lines.append(f"table {family} {TABLE} {{")
    depth = 1
    for line in body:
        depth -= line == "}"
        lines.append("\t" * depth + line)
        depth += line.endswith("{")
    lines.append("}")
    return "\n".join(lines) + "\n"
