"""ACLs as one nftables script per router namespace (pure: objects in, ruleset text out).

API (the dataplane calls these; nothing here does I/O; the ACL policies come from
``acls.acls_from_objects``):

``render(endpoints, acls) -> Ruleset``
    ``Ruleset.text`` is one script for ``nft -f`` that replaces ``table bridge sdnc`` and
    ``table inet sdnc`` in one transaction (each is created empty, deleted, then defined).
    ``Ruleset.problems`` lists ``(object key, message)`` for what could not be enforced as
    sent: rules and ACLs (of the ACLs these endpoints use) and endpoints -- report them as
    per-object failures.

The bridge table marks frames for local endpoint MACs as addressed to the host (arriving over
VXLAN they are PACKET_OTHERHOST, which IP drops), and sets the mark of frames for a local
appliance's MAC (policy routing sends those to the appliance: see routes.py). The inet forward
hook filters the routed traffic of local endpoints with conntrack (replies of accepted flows
pass): a packet from an endpoint port meets its sender's outbound ACLs, then one to an endpoint
port its receiver's inbound ACLs, each found by one verdict-map lookup on (port, address); an
address that is no endpoint's on that port is dropped (no spoofing past an ACL). An ACL is a
chain per direction, rules by priority, first match: Allow returns to the next ACL, Deny drops,
then the default; an endpoint's ACLs, in order, are a chain per direction shared by every
endpoint with the same list (the verdict map goes to it). Endpoints without ACLs pass.
``logging`` is not enforced; established flows survive a change.
Every ACL rule and default counts the packets it decides (``counter``); a ruleset is compared
with the kernel's listed without those counts (``nft -s``), which traffic changes.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.agent.linux.acls import AclPolicy, Problem, match_expressions

TABLE = "sdnc"
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

    def __hash__(self) -> int:
        # Computed once: a render hashes each of a router's endpoints a few times (a set,
        # two caches), a thousand of them per change on a dense host.
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.key, self.veth, self.address, self.mac, self.acl_ids))

    @functools.cached_property
    def order(self) -> tuple[str, str, str]:
        """How a router's endpoints are ordered (which of two on one slot wins)."""
        return (self.key, self.veth, self.address)


# ---------------------------------------------------------------- rendering


def ident(instance_id: str) -> str:
    """A chain-name fragment: a GUID's 32 hex digits, else a digest of the id (injective in
    practice: digests start with "h", which no hex digit is; names are case-sensitive)."""
    if _GUID.fullmatch(instance_id):
        return instance_id.replace("-", "")
    return "h" + hashlib.sha256(instance_id.encode()).hexdigest()[:24]


def acl_chain(acl_id: str, direction: str) -> str:
    return f"acl_{ident(acl_id)}_{_SUFFIX[direction]}"


def list_chain(acl_ids: Sequence[str], direction: str) -> str:
    """The chain of an ACL list, shared by every endpoint with that list: a host of many
    endpoints behind the same ACLs has a few chains, not two per endpoint (nft reads every
    chain before each transaction, and the kernel checks the jumps of all at commit)."""
    digest = hashlib.sha256("\n".join(acl_ids).encode()).hexdigest()[:24]
    return f"acls_h{digest}_{_SUFFIX[direction]}"


def _acl_chain(acl_id: str, policy: AclPolicy, direction: str) -> tuple[str, tuple[str, ...]]:
    rules, permit = (
        (policy.inbound, policy.inbound_permit)
        if direction == "inbound"
        else (policy.outbound, policy.outbound_permit)
    )
    lines: list[str] = []
    for rule in rules:
        verdict = verdict_of(rule.allow)
        lines += [f"{match} {verdict}".strip() for match in match_expressions(rule)]
    return acl_chain(acl_id, direction), (*lines, verdict_of(permit))


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


@dataclass(frozen=True)
class Tables:
    """What a ruleset holds that changes with the objects: the set and map elements and the
    ACL and ACL-list chains (the declarations and the fixed chains never change). ``text``
    renders it whole; ``changes_from`` says how to get to it from another one in place."""

    macs: tuple[str, ...] = ()  # bridge set endpoint_macs
    maps: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # map -> (key, verdict)s
    ports: tuple[str, ...] = ()  # inet set endpoint_ports ('"veth"')
    forwarding: tuple[str, ...] = ()  # inet set forwarding_ports: appliances' veths
    marks: tuple[tuple[str, str], ...] = ()  # bridge map appliance_marks: (MAC, mark)
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ACL and ACL-list chains, in order

    @property
    def text(self) -> str:
        macs = _named("set endpoint_macs", "ether_addr", list(self.macs))
        listed = [f"{mac} : {mark}" for mac, mark in self.marks]
        marks = _named("map appliance_marks", "ether_addr : mark", listed)
        bridge = _table("bridge", [*macs, *marks, *_PREROUTING])
        lines: list[str] = []
        for name, elements in self.maps:
            version = name[-1]
            listed = [f"{key} : {verdict}" for key, verdict in elements]
            lines += _named(f"map {name}", f"ifname . ipv{version}_addr : verdict", listed)
        lines += _named("set endpoint_ports", "ifname", list(self.ports))
        lines += _named("set forwarding_ports", "ifname", list(self.forwarding))
        for name, rules in self.chains:
            lines += [f"chain {name} {{", *rules, "}"]
        return bridge + _table("inet", [*lines, *_TAIL.splitlines()])

    def changes_from(self, old: Tables) -> str:
        """One ``nft -f`` transaction turning a kernel holding ``old`` into one holding this
        (empty when they are the same): only the elements and chains that differ."""
        head: list[str] = []  # new chains first: elements and rules may jump to them
        removals: list[str] = []
        rules: list[str] = []
        additions: list[str] = []
        tail: list[str] = []
        old_chains, new_chains = dict(old.chains), dict(self.chains)
        for name, wanted in self.chains:
            if name not in old_chains:
                head.append(f"add chain inet {TABLE} {name}")
            elif old_chains[name] == wanted:
                continue
            else:
                rules.append(f"flush chain inet {TABLE} {name}")
            rules += [f"add rule inet {TABLE} {name} {rule}" for rule in wanted]
        for name in old_chains:
            if name not in new_chains:  # emptied first: a chain with rules cannot be deleted
                rules.append(f"flush chain inet {TABLE} {name}")
                tail.append(f"delete chain inet {TABLE} {name}")
        old_maps, new_maps = dict(old.maps), dict(self.maps)
        for name in sorted({*old_maps, *new_maps}):
            before, after = dict(old_maps.get(name, ())), dict(new_maps.get(name, ()))
            gone = [k for k, v in before.items() if after.get(k) != v]
            came = [f"{k} : {v}" for k, v in after.items() if before.get(k) != v]
            removals += _elements("delete", "inet", name, gone)
            additions += _elements("add", "inet", name, came)
        before_marks, after_marks = dict(old.marks), dict(self.marks)
        gone = sorted(k for k, v in before_marks.items() if after_marks.get(k) != v)
        came = sorted(f"{k} : {v}" for k, v in after_marks.items() if before_marks.get(k) != v)
        removals += _elements("delete", "bridge", "appliance_marks", gone)
        additions += _elements("add", "bridge", "appliance_marks", came)
        for family, name, before_set, after_set in (
            ("bridge", "endpoint_macs", old.macs, self.macs),
            ("inet", "endpoint_ports", old.ports, self.ports),
            ("inet", "forwarding_ports", old.forwarding, self.forwarding),
        ):
            removals += _elements("delete", family, name, sorted(set(before_set) - set(after_set)))
            additions += _elements("add", family, name, sorted(set(after_set) - set(before_set)))
        script = [*head, *removals, *rules, *additions, *tail]
        return "".join(f"{line}\n" for line in script)


def _elements(verb: str, family: str, name: str, elements: list[str]) -> list[str]:
    if not elements:
        return []
    return [f"{verb} element {family} {TABLE} {name} {{ {', '.join(elements)} }}"]


@dataclass(frozen=True)
class Ruleset:
    tables: Tables
    problems: tuple[Problem, ...]

    @property
    def text(self) -> str:
        return self.tables.text


@functools.lru_cache(maxsize=1 << 16)
def _checked(endpoint: FilteredEndpoint) -> tuple[_Port | None, tuple[Problem, ...]]:
    # Cached: every change re-renders a router's endpoints, which are mostly the same ones.
    problems: list[Problem] = []
    port = _check_endpoint(endpoint, problems)
    return port, tuple(problems)


def render(
    endpoints: Sequence[FilteredEndpoint],
    acls: Mapping[str, AclPolicy],
    forwarding: Mapping[str, int] | None = None,
) -> Ruleset:
    """The script replacing both tables, and what could not be enforced (see the module);
    ``forwarding``: the veths of appliances (which forward traffic not their own) and the
    marks of the frames for their MACs (routing sends those on to them)."""
    forwarding = forwarding or {}
    ordered = tuple(sorted(set(endpoints), key=_order))
    known = frozenset(a for a in {a for e in ordered for a in e.acl_ids} if a in acls)
    ports = _endpoints(ordered, known)
    problems = list(ports.problems)
    chains: dict[str, tuple[str, ...]] = {}
    for acl_id in ports.used:
        if acl_id in acls:
            problems.extend(acls[acl_id].problems)
            for direction in _SUFFIX:
                name, rules = _acl_chain(acl_id, acls[acl_id], direction)
                chains[name] = rules
    problems += ports.missing
    chains.update(ports.lists)
    forwarders = tuple(f'"{veth}"' for veth in sorted(forwarding) if f'"{veth}"' in ports.veths)
    marks = {
        mac: f"{forwarding[veth]:#010x}" for veth, mac in ports.port_macs if veth in forwarding
    }
    tables = Tables(
        macs=ports.macs,
        maps=ports.maps,
        ports=ports.veths,
        forwarding=forwarders,
        marks=tuple(sorted(marks.items())),
        chains=tuple(chains.items()),
    )
    return Ruleset(tables, tuple(dict.fromkeys(problems)))


def _order(endpoint: FilteredEndpoint) -> tuple[str, str, str]:
    return endpoint.order


@dataclass(frozen=True)
class _Endpoints:
    """What a router's endpoints put in its ruleset, given which of their ACLs exist."""

    problems: tuple[Problem, ...]  # of the endpoints themselves
    missing: tuple[Problem, ...]  # endpoints naming ACLs that do not exist
    used: tuple[str, ...]  # the ACLs the usable endpoints name, sorted
    macs: tuple[str, ...]
    maps: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    veths: tuple[str, ...]
    lists: tuple[tuple[str, tuple[str, ...]], ...]  # the ACL lists' chains
    port_macs: tuple[tuple[str, str], ...]  # (veth, MAC) of the usable ports that have one


@functools.lru_cache(maxsize=4)
def _endpoints(ordered: tuple[FilteredEndpoint, ...], known: frozenset[str]) -> _Endpoints:
    # Cached: an ACL change re-renders a router whose endpoints are all the same; only its
    # ACL chains are made again. Each endpoint's part is cached too, so what is left per
    # endpoint on a dense host is assembling (a thousand per change).
    problems: list[Problem] = []
    missing: list[Problem] = []
    taken: dict[tuple[str, str], str] = {}  # (veth, address) -> the endpoint holding it
    maps: dict[str, list[tuple[str, str]]] = {
        f"{direction}_v{version}": [] for direction in ("outbound", "inbound") for version in (4, 6)
    }
    lists: dict[str, tuple[str, ...]] = {}
    used: set[str] = set()
    port_macs: list[tuple[str, str]] = []
    for endpoint in ordered:
        part = _part(endpoint, known)
        problems += part.problems
        if part.slot is None:
            continue
        if part.slot in taken:
            veth, address = part.slot
            message = f"{address} on {veth} is also {taken[part.slot]}; its ACLs are not enforced"
            problems.append((endpoint.key, message))
            continue
        taken[part.slot] = endpoint.key
        missing += part.missing
        for name, element in part.elements:
            maps[name].append(element)
        lists.update(part.chains)
        used.update(endpoint.acl_ids)
        if part.mac is not None:
            port_macs.append((endpoint.veth, part.mac))
    # A port whose endpoint is unusable still drops what no endpoint of it may send or get.
    veths = {e.veth for e in ordered if _valid_name(e.veth)}
    return _Endpoints(
        problems=tuple(problems),
        missing=tuple(missing),
        used=tuple(sorted(used)),
        macs=tuple(sorted({mac for _, mac in port_macs})),
        maps=tuple((name, tuple(elements)) for name, elements in maps.items()),
        veths=tuple(f'"{veth}"' for veth in sorted(veths)),
        lists=tuple(lists.items()),
        port_macs=tuple(port_macs),
    )


@dataclass(frozen=True)
class _Part:
    """What one endpoint puts in its router's tables, given which ACLs exist."""

    problems: tuple[Problem, ...]  # of the endpoint itself
    slot: tuple[str, str] | None  # (veth, address) when the port and address are usable
    mac: str | None
    missing: tuple[Problem, ...]  # its ACLs that do not exist
    elements: tuple[tuple[str, tuple[str, str]], ...]
    chains: tuple[tuple[str, tuple[str, ...]], ...]


@functools.lru_cache(maxsize=1 << 16)
def _part(endpoint: FilteredEndpoint, known: frozenset[str]) -> _Part:
    port, problems = _checked(endpoint)
    if port is None:
        return _Part(problems, None, None, (), (), ())
    absent = [acl for acl in endpoint.acl_ids if acl not in known]
    missing: tuple[Problem, ...] = ()
    if absent:
        message = f"ACL {', '.join(absent)} is unknown; dropping the endpoint's traffic"
        missing = ((endpoint.key, message),)
    elements, chains = _port_pieces(port, known & frozenset(endpoint.acl_ids))
    slot = (endpoint.veth, str(port.address))
    return _Part(problems, slot, port.mac, missing, elements, chains)


@functools.lru_cache(maxsize=1 << 16)
def _valid_name(name: str) -> bool:
    return _IFNAME.fullmatch(name) is not None


_PREROUTING = [
    "chain prerouting {",
    "type filter hook prerouting priority 0; policy accept;",
    "ether daddr @endpoint_macs meta pkttype set host",
    "meta mark set ether daddr map @appliance_marks",
    "}",
]


_TAIL = """\
chain outbound {
iifname . ip saddr vmap @outbound_v4
iifname . ip6 saddr vmap @outbound_v6
iifname @forwarding_ports return
drop
}
chain inbound {
oifname . ip daddr vmap @inbound_v4
oifname . ip6 daddr vmap @inbound_v6
oifname @forwarding_ports return
drop
}
chain forward {
type filter hook forward priority filter; policy accept;
ct state established,related accept
iifname != @forwarding_ports oifname != @forwarding_ports ct state invalid drop
iifname @endpoint_ports jump outbound
oifname @endpoint_ports jump inbound
}"""  # outbound/inbound drop what is not an endpoint's address on that port (spoofed, stale),
# but an appliance's port passes what it forwards: the sender's outbound and the receiver's
# inbound ACLs judge it, not the appliance's own. What an appliance forwards may be half a
# flow (a route table on the way out, none back: the replies bypass it): conntrack here
# never saw the other half and calls it invalid, so that check skips the appliance's port.


@functools.lru_cache(maxsize=1 << 16)
def _port_pieces(
    port: _Port, known: frozenset[str]
) -> tuple[tuple[tuple[str, tuple[str, str]], ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    """A port's map elements (map, (key, verdict)) and its ACL list's chains, given which of
    its ACLs exist. Cached: a change re-renders every port of the router, mostly unchanged."""
    key = f'"{port.endpoint.veth}" . {port.address}'
    elements = tuple(
        (f"{direction}_v{port.address.version}", (key, _dispatch(port, direction)))
        for direction in _SUFFIX
    )
    chains: list[tuple[str, tuple[str, ...]]] = []
    for direction in _SUFFIX if port.endpoint.acl_ids else ():
        jumps = tuple(f"jump {acl_chain(a, direction)}" if a in known else "drop"
                      for a in port.endpoint.acl_ids)  # fmt: skip
        chains.append((list_chain(port.endpoint.acl_ids, direction), jumps))
    return elements, tuple(chains)


def _dispatch(port: _Port, direction: str) -> str:
    # goto: the end of the list's chain returns to forward, which goes on to inbound.
    if port.endpoint.acl_ids:
        return f"goto {list_chain(port.endpoint.acl_ids, direction)}"
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
