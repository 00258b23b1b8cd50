"""The endpoints' part of a router's ruleset (pure): each endpoint's verdict-map elements
and ACL-list chains, and their assembly for a router.

An endpoint's part is computed once (cached by the endpoint and the ACLs that exist). A
router's assembly is kept for its last few sets of endpoints: the next one, a few endpoints
added or removed, is derived from the nearest by adding and removing those endpoints' parts
(sorted inserts, counted sets) -- what a change costs is what it touches, not the thousand
endpoints of a dense host. What the derivation does not handle (an endpoint that is unusable,
names an unknown ACL, or shares a (veth, address) slot with another) is assembled whole, as
the first set is. Both give the same ``EndpointsPart``; a property test holds them equal.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.agent.linux.acls import Problem

_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_MAC = re.compile(r"[0-9a-f]{12}")
SUFFIX = {"inbound": "in", "outbound": "out"}
MAPS = tuple(f"{d}_v{v}" for d in ("outbound", "inbound") for v in (4, 6))
DERIVED_AT_MOST = 16  # endpoints added plus removed; beyond, assembling whole is as cheap
KEPT = 32  # assemblies kept, about one per router: every router is rendered on each change
Order = tuple[str, str, str]
Element = tuple[str, str]  # (map key, verdict)
Chain = tuple[str, tuple[str, ...]]


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


@functools.lru_cache(maxsize=1 << 16)
def filtered_endpoint(
    key: str, veth: str, address: str, mac: str, acl_ids: tuple[str, ...]
) -> FilteredEndpoint:
    """One instance per distinct endpoint: a plan made anew (a full reconcile) shares them with
    the last, so sets of a router's endpoints compare by identity, not field by field."""
    return FilteredEndpoint(key, veth, address, mac, acl_ids)


def ident(instance_id: str) -> str:
    """A chain-name fragment: a GUID's 32 hex digits, else a digest of the id (injective in
    practice: digests start with "h", which no hex digit is; names are case-sensitive)."""
    if _GUID.fullmatch(instance_id):
        return instance_id.replace("-", "")
    return "h" + hashlib.sha256(instance_id.encode()).hexdigest()[:24]


def acl_chain(acl_id: str, direction: str) -> str:
    return f"acl_{ident(acl_id)}_{SUFFIX[direction]}"


def list_chain(acl_ids: Sequence[str], direction: str) -> str:
    """The chain of an ACL list, shared by every endpoint with that list: a host of many
    endpoints behind the same ACLs has a few chains, not two per endpoint (nft reads every
    chain before each transaction, and the kernel checks the jumps of all at commit)."""
    digest = hashlib.sha256("\n".join(acl_ids).encode()).hexdigest()[:24]
    return f"acls_h{digest}_{SUFFIX[direction]}"


@dataclass(frozen=True)
class EndpointsPart:
    """What a router's endpoints put in its ruleset, given which ACLs exist."""

    problems: tuple[Problem, ...]  # of the endpoints themselves, in endpoint order
    missing: tuple[Problem, ...]  # endpoints naming ACLs that do not exist, idem
    used: tuple[str, ...]  # the ACLs the usable endpoints name, sorted
    macs: tuple[str, ...]  # sorted
    maps: tuple[tuple[str, tuple[Element, ...]], ...]  # elements in endpoint order
    veths: tuple[str, ...]  # '"veth"', sorted
    lists: tuple[Chain, ...]  # the ACL lists' chains, by name
    port_macs: frozenset[tuple[str, str]]  # (veth, MAC) of the usable ports that have one


@dataclass
class _Assembly:
    """A router's assembly, kept to derive the next one from."""

    known: frozenset[str]
    members: frozenset[FilteredEndpoint]
    clashed: bool  # two endpoints on one slot: derive nothing from it
    taken: dict[tuple[str, str], str]  # (veth, address) -> the endpoint holding it
    maps: dict[str, tuple[list[Order], list[Element]]]
    used: Counter[str]
    macs: Counter[str]
    veths: Counter[str]
    chains: Counter[str]
    rules: dict[str, tuple[str, ...]]
    port_macs: Counter[tuple[str, str]]
    part: EndpointsPart | None = None

    def copy(self, members: frozenset[FilteredEndpoint]) -> _Assembly:
        return _Assembly(
            self.known, members, self.clashed, dict(self.taken),
            {name: (list(o), list(e)) for name, (o, e) in self.maps.items()},
            Counter(self.used), Counter(self.macs), Counter(self.veths), Counter(self.chains),
            dict(self.rules), Counter(self.port_macs),
        )  # fmt: skip

    def finish(self, problems: tuple[Problem, ...], missing: tuple[Problem, ...]) -> EndpointsPart:
        self.part = EndpointsPart(
            problems=problems,
            missing=missing,
            used=tuple(sorted(self.used)),
            macs=tuple(sorted(self.macs)),
            maps=tuple((name, tuple(self.maps[name][1])) for name in MAPS),
            veths=tuple(f'"{veth}"' for veth in sorted(self.veths)),
            lists=tuple(sorted((n, self.rules[n]) for n in self.chains)),
            port_macs=frozenset(self.port_macs),
        )
        return self.part


_kept: list[_Assembly] = []


def endpoints_part(endpoints: Iterable[FilteredEndpoint], known: frozenset[str]) -> EndpointsPart:
    """The endpoints' part of their router's ruleset, ``known``: the ACLs that exist."""
    members = frozenset(endpoints)
    best: tuple[int, _Assembly] | None = None
    for kept in _kept:
        if kept.known != known or kept.clashed or kept.part is None:
            continue
        if abs(len(kept.members) - len(members)) > DERIVED_AT_MOST:
            continue  # another router's, most likely
        if kept.members is members or kept.members == members:
            _kept.remove(kept)  # the most recently used last: the first to go is the oldest
            _kept.append(kept)
            return kept.part
        distance = len(members ^ kept.members)
        if distance <= DERIVED_AT_MOST and (best is None or distance < best[0]):
            best = (distance, kept)
    assembly = _derive(best[1], members) if best is not None else None
    if assembly is not None and best is not None:
        _kept.remove(best[1])  # a router's endpoints before a change are not rendered again
    else:
        assembly = _assemble(members, known)
    _kept.append(assembly)
    del _kept[:-KEPT]
    assert assembly.part is not None
    return assembly.part


def _derive(base: _Assembly, members: frozenset[FilteredEndpoint]) -> _Assembly | None:
    gone, came = base.members - members, members - base.members
    parts = {e: _part(e, base.known) for e in (*gone, *came)}
    if any(p.slot is None or p.problems or p.missing for p in parts.values()):
        return None
    assembly = base.copy(members)
    for endpoint in gone:
        part = parts[endpoint]
        assert part.slot is not None
        del assembly.taken[part.slot]
        _count(assembly, endpoint, part, -1)
    for endpoint in came:
        part = parts[endpoint]
        assert part.slot is not None
        if part.slot in assembly.taken:
            return None
        assembly.taken[part.slot] = endpoint.key
        _count(assembly, endpoint, part, 1)
    assert base.part is not None
    assembly.finish(base.part.problems, base.part.missing)
    return assembly


def _count(assembly: _Assembly, endpoint: FilteredEndpoint, part: _Part, sign: int) -> None:
    """Add (``sign`` 1) or remove (-1) a usable endpoint's part, in endpoint order."""
    for name, element in part.elements:
        orders, elements = assembly.maps[name]
        if sign > 0:
            at = bisect.bisect(orders, endpoint.order)
            orders.insert(at, endpoint.order)
            elements.insert(at, element)
        else:
            at = bisect.bisect_left(orders, endpoint.order)
            del orders[at], elements[at]
    _adjust(assembly.veths, endpoint.veth, sign)
    _sets(assembly, endpoint, part, sign)


def _sets(assembly: _Assembly, endpoint: FilteredEndpoint, part: _Part, sign: int) -> None:
    for acl in endpoint.acl_ids:
        _adjust(assembly.used, acl, sign)
    if part.mac is not None:
        _adjust(assembly.macs, part.mac, sign)
        _adjust(assembly.port_macs, (endpoint.veth, part.mac), sign)
    for name, rules in part.chains:
        _adjust(assembly.chains, name, sign)
        assembly.rules[name] = rules  # a list's chain is the same for every endpoint
    for name in [n for n, _ in part.chains if n not in assembly.chains]:
        del assembly.rules[name]


def _adjust(counter: Counter[Any], key: Any, sign: int) -> None:
    counter[key] += sign
    if counter[key] <= 0:
        del counter[key]


def _assemble(members: frozenset[FilteredEndpoint], known: frozenset[str]) -> _Assembly:
    """The whole assembly: endpoints in order, the first on a slot holding it."""
    assembly = _Assembly(known, members, False, {}, {name: ([], []) for name in MAPS},
                         Counter(), Counter(), Counter(), Counter(), {}, Counter())  # fmt: skip
    problems: list[Problem] = []
    missing: list[Problem] = []
    for endpoint in sorted(members, key=_order):
        part = _part(endpoint, known)
        problems += part.problems
        if _valid_name(endpoint.veth):
            # A port whose endpoint is unusable still drops what no endpoint of it may send
            # or get.
            assembly.veths[endpoint.veth] += 1
        if part.slot is None:
            continue
        if part.slot in assembly.taken:
            (veth, address), holder = part.slot, assembly.taken[part.slot]
            message = f"{address} on {veth} is also {holder}; its ACLs are not enforced"
            problems.append((endpoint.key, message))
            assembly.clashed = True
            continue
        assembly.taken[part.slot] = endpoint.key
        missing += part.missing
        for name, element in part.elements:
            orders, elements = assembly.maps[name]
            orders.append(endpoint.order)
            elements.append(element)
        _sets(assembly, endpoint, part, 1)
    assembly.finish(tuple(problems), tuple(missing))
    return assembly


def _order(endpoint: FilteredEndpoint) -> Order:
    return endpoint.order


@dataclass(frozen=True)
class _Part:
    """What one endpoint puts in its router's tables, given which ACLs exist."""

    problems: tuple[Problem, ...]  # of the endpoint itself
    slot: tuple[str, str] | None  # (veth, address) when the port and address are usable
    mac: str | None
    missing: tuple[Problem, ...]  # its ACLs that do not exist
    elements: tuple[tuple[str, Element], ...]  # (map, element)
    chains: tuple[Chain, ...]


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


@functools.lru_cache(maxsize=1 << 16)
def _checked(endpoint: FilteredEndpoint) -> tuple[_Port | None, tuple[Problem, ...]]:
    # Cached: every change re-renders a router's endpoints, which are mostly the same ones.
    problems: list[Problem] = []
    port = _check_endpoint(endpoint, problems)
    return port, tuple(problems)


@functools.lru_cache(maxsize=1 << 16)
def _port_pieces(
    port: _Port, known: frozenset[str]
) -> tuple[tuple[tuple[str, tuple[str, str]], ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    """A port's map elements (map, (key, verdict)) and its ACL list's chains, given which of
    its ACLs exist. Cached: a change re-renders every port of the router, mostly unchanged."""
    key = f'"{port.endpoint.veth}" . {port.address}'
    elements = tuple(
        (f"{direction}_v{port.address.version}", (key, _dispatch(port, direction)))
        for direction in SUFFIX
    )
    chains: list[tuple[str, tuple[str, ...]]] = []
    for direction in SUFFIX if port.endpoint.acl_ids else ():
        jumps = tuple(f"jump {acl_chain(a, direction)}" if a in known else "drop"
                      for a in port.endpoint.acl_ids)  # fmt: skip
        chains.append((list_chain(port.endpoint.acl_ids, direction), jumps))
    return elements, tuple(chains)


def _dispatch(port: _Port, direction: str) -> str:
    # goto: the end of the list's chain returns to forward, which goes on to inbound.
    if port.endpoint.acl_ids:
        return f"goto {list_chain(port.endpoint.acl_ids, direction)}"
    return "return"
