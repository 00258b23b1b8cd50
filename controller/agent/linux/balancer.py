"""The load-balancing objects of a host, read for one virtual network (pure).

``balancing_from_objects(objects) -> tuple[Balancing, list[Problem]]``
    Reads the ``lbRule``, ``lbNat``, ``lbOutbound`` and ``publicIp`` objects
    (``docs/southbound.md``, "Load balancing"): what can be enforced, by kind, and a problem
    for each object that cannot (left out, reported as a failure of that object).
``Balancing.of_network(vnet) -> Balancing``
    What the router namespace of one virtual network holds: the objects naming it.
``Reader``
    The same, kept by key: ``update(objects, keys)`` reads again only the objects a change
    names, ``balancing()`` and ``of_network(vnet)`` answer the same objects until something
    they hold changes (the dataplane's incremental path; ``balancing_from_objects`` is one
    ``Reader`` reading everything).

``lb_tables.render`` turns a ``Balancing`` into the router's ``table ip sdnc_lb``.

A frontend (VIP, protocol, port) belongs to one rule or NAT rule: two claiming one, the first
by key keeps it. Only IPv4 is balanced; IPv6 VIPs, DIPs and public IPs are reported.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import protocol
from controller.policy import slots as slot_tables
from controller.policy.flow_hash import host_table

Problem = tuple[str, str]
Body = Mapping[str, Any]

# distribution (case-insensitive) -> the fields hashed; the transport ports are read raw
# (``th``), so a UDP and a TCP flow hash alike.
FLOW_FIELDS = {
    "default": "ip saddr . ip daddr . meta l4proto . th sport . th dport",
    "sourceip": "ip saddr",
    "sourceipprotocol": "ip saddr . meta l4proto",
}
PROTOCOLS = {"tcp": ("tcp",), "udp": ("udp",), "all": ("tcp", "udp")}
DEFAULT_IDLE_MINUTES = 4  # NC's default idleTimeoutInMinutes


@dataclass(frozen=True)
class Balanced:
    """An enforceable lbRule: where its flows come in and the DIP of each slot."""

    key: str
    vips: tuple[str, ...]
    protocols: tuple[str, ...]
    frontend_port: int
    backend_port: int
    fields: str
    pool: tuple[str, ...]  # the healthy DIPs, in address order; empty: none (drop)
    networks: tuple[str, ...] = ()
    table: bytes = b""  # the controller's slot table, as sent (``controller.policy.slots``)
    idle_minutes: int = DEFAULT_IDLE_MINUTES  # a mux forgets a flow idle this long

    @functools.cached_property
    def slots(self) -> tuple[str, ...]:
        """Per slot of the controller's table, its DIP (what a mux hashes a flow into)."""
        width = 1 if len(self.pool) <= 256 else 2
        indexes = (int.from_bytes(self.table[i : i + width], "big")
                   for i in range(0, len(self.table), width))  # fmt: skip
        return tuple(self.pool[index] for index in indexes)

    @functools.cached_property
    def dips(self) -> frozenset[str]:
        return frozenset(self.pool)

    @functools.cached_property
    def elements(self) -> tuple[tuple[int, str], ...]:
        """A host's own table of the pool (``policy.flow_hash.host_table``), made once per
        rule as read."""
        return tuple(enumerate(host_table(self.pool)))


@dataclass(frozen=True)
class Forwarded:
    """An enforceable lbNat (inbound NAT rule): VIP:frontend port to one DIP:backend port."""

    key: str
    vips: tuple[str, ...]
    protocols: tuple[str, ...]
    frontend_port: int
    backend_port: int
    dip: str
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    """A DIP's share of an outbound NAT rule: its connections leave from ``vip`` with a
    source port in ``first``-``last``."""

    dip: str
    first: int
    last: int


@dataclass(frozen=True)
class Outbound:
    """An enforceable lbOutbound: the pool's DIPs leave through ``vip``."""

    key: str
    vip: str
    protocols: tuple[str, ...]  # empty: every protocol (All)
    blocks: tuple[Block, ...]
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Public:
    """An enforceable publicIp: ``public`` is ``private`` in both directions."""

    key: str
    public: str
    private: str
    network: str


@dataclass(frozen=True)
class Balancing:
    rules: Mapping[str, Balanced] = field(default_factory=dict)
    nats: Mapping[str, Forwarded] = field(default_factory=dict)
    outbound: Mapping[str, Outbound] = field(default_factory=dict)
    publics: Mapping[str, Public] = field(default_factory=dict)

    def of_network(self, vnet: str) -> Balancing:
        return Balancing(
            {k: r for k, r in self.rules.items() if vnet in r.networks},
            {k: n for k, n in self.nats.items() if vnet in n.networks},
            {k: o for k, o in self.outbound.items() if vnet in o.networks},
            {k: p for k, p in self.publics.items() if p.network == vnet},
        )

    @property
    def empty(self) -> bool:
        return not (self.rules or self.nats or self.outbound or self.publics)


class _Refused(ValueError):
    """A value the agent cannot balance by."""


def _port(body: Body, member: str) -> int:
    value = body.get(member)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Refused(f"{member} {value!r} is not a port (1-65535)")
    return value


def _ipv4(value: Any, member: str) -> str:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise _Refused(f"{member} {value!r} is not an IP address") from exc
    if address.version != 4:
        raise _Refused(f"{member} {value} is IPv6; this agent balances IPv4 only")
    return str(address)


def _protocols(body: Body) -> tuple[str, ...]:
    found = PROTOCOLS.get(str(body.get("protocol", "")).lower())
    if found is None:
        raise _Refused(f"protocol {body.get('protocol')!r} is not Tcp, Udp or All")
    return found


def _idle(body: Body) -> int:
    value = body.get("idleTimeoutMinutes")
    if value is None:
        return DEFAULT_IDLE_MINUTES
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 120:
        raise _Refused(f"idleTimeoutMinutes {value!r} is not a number of minutes (1-120)")
    return value


def _vips(body: Body) -> tuple[str, ...]:
    return tuple(_ipv4(vip, "vips") for vip in body.get("vips") or ())


def _networks(body: Body) -> tuple[str, ...]:
    return tuple(str(vnet) for vnet in body.get("virtualNetworks") or ())


def _not_floating(body: Body) -> None:
    if body.get("floatingIp") is True:
        # The DIP would have to receive the flow addressed to the VIP (configured on the
        # VM): routing by flow, not a translation. Not built: said, not half-done.
        raise _Refused("floatingIp (the DIP receiving the VIP as destination) is not supported")


def _rule(key: str, body: Body) -> Balanced:
    _not_floating(body)
    protocols = _protocols(body)
    fields = FLOW_FIELDS.get(str(body.get("distribution") or "Default").lower())
    if fields is None:
        raise _Refused(f"distribution {body.get('distribution')!r} is not known")
    dips = [_ipv4(dip, "dips") for dip in body.get("dips") or ()]
    try:
        table = base64.b64decode(str(body.get("slots") or ""), validate=True)
    except ValueError as exc:
        raise _Refused("slots is not base64") from exc
    if dips and not table:
        raise _Refused("slots is empty while dips is not")
    if len(dips) <= 256:
        beyond = max(table, default=0) >= len(dips) if dips else False
    else:
        beyond = any(
            index >= len(dips) for index in slot_tables.decode(str(body["slots"]), len(dips))
        )
    if beyond:
        raise _Refused("slots names a DIP beyond dips")
    return Balanced(
        key=key,
        vips=_vips(body),
        protocols=protocols,
        frontend_port=_port(body, "frontendPort"),
        backend_port=_port(body, "backendPort"),
        fields=fields,
        pool=tuple(dict.fromkeys(dips)),
        networks=_networks(body),
        table=table if dips else b"",
        idle_minutes=_idle(body),
    )


def _nat(key: str, body: Body) -> Forwarded:
    _not_floating(body)
    return Forwarded(
        key=key,
        vips=_vips(body),
        protocols=_protocols(body),
        frontend_port=_port(body, "frontendPort"),
        backend_port=_port(body, "backendPort"),
        dip=_ipv4(body.get("dip"), "dip"),
        networks=_networks(body),
    )


def _block(entry: Any) -> Block:
    if not isinstance(entry, Mapping):
        raise _Refused("portBlocks holds something that is not an object")
    first, last = _port(entry, "firstPort"), _port(entry, "lastPort")
    if first > last:
        raise _Refused(f"portBlocks: firstPort {first} is above lastPort {last}")
    return Block(_ipv4(entry.get("dip"), "portBlocks dip"), first, last)


def _outbound(key: str, body: Body) -> Outbound:
    vips = _vips(body)
    if not vips:
        raise _Refused("vips is empty")
    protocol_name = str(body.get("protocol", "")).lower()
    protocols = () if protocol_name == "all" else _protocols(body)
    blocks = tuple(_block(entry) for entry in body.get("portBlocks") or ())
    return Outbound(key, vips[0], protocols, blocks, _networks(body))


def _public(key: str, body: Body) -> Public:
    network = body.get("virtualNetwork")
    if not network:
        raise _Refused("its ipConfiguration is in no virtual network")
    return Public(
        key,
        _ipv4(body.get("publicIPAddress"), "publicIPAddress"),
        _ipv4(body.get("privateIPAddress"), "privateIPAddress"),
        str(network),
    )


Frontend = tuple[str, str, int]  # VIP, protocol, port
Item = Balanced | Forwarded | Outbound | Public


def _frontends(item: Item) -> list[Frontend]:
    if not isinstance(item, Balanced | Forwarded):
        return []
    return [(vip, proto, item.frontend_port) for vip in item.vips for proto in item.protocols]


def balancing_from_objects(objects: Mapping[str, Body]) -> tuple[Balancing, list[Problem]]:
    """What the host's load-balancing objects ask for, and a problem for each one that
    cannot be enforced."""
    reader = Reader()
    reader.update(objects, objects)
    return reader.balancing()


_READERS: dict[str, Callable[[str, Body], Item]] = {
    protocol.LB_RULE: _rule,
    protocol.LB_NAT: _nat,
    protocol.LB_OUTBOUND: _outbound,
    protocol.PUBLIC_IP: _public,
}


class Reader:
    """The host's load-balancing objects as read, by key: a change reads again only the
    objects it names, and settles only the frontends they name (a host may hold a thousand
    rules of 1,021 slots each, and each change is one of them).

    A frontend (VIP, protocol, port) belongs to the first rule or NAT rule by key naming it; a
    rule one of whose frontends belongs to another is refused."""

    def __init__(self) -> None:
        self._refused: dict[str, str] = {}  # key -> why it cannot be enforced
        self._items: dict[str, Item] = {}  # what was read, enforceable or not
        self._claims: dict[Frontend, set[str]] = {}  # frontend -> the keys naming it
        self._found: dict[str, dict[str, Any]] = {kind: {} for kind in _READERS}
        self._assembled: tuple[Balancing, list[Problem]] | None = None
        # Per virtual network, by kind, what is enforceable there; and its Balancing, made
        # when asked for and kept until something of that network changes.
        self._by_network: dict[str, dict[str, dict[str, Any]]] = {}
        self._networks: dict[str, Balancing] = {}

    def update(self, objects: Mapping[str, Body], keys: Iterable[str]) -> None:
        """Read ``keys`` (those of other kinds are skipped) again from ``objects``."""
        settle: set[str] = set()
        for key in keys:
            kind = protocol.kind_of(key)
            read = _READERS.get(kind)
            if read is None:
                continue
            self._assembled = None
            settle |= self._forget(key) | {key}
            body = objects.get(key)
            if body is None:
                continue
            try:
                item = read(key, body)
            except _Refused as exc:
                self._refused[key] = str(exc)
                continue
            self._items[key] = item
            for frontend in _frontends(item):
                claimants = self._claims.setdefault(frontend, set())
                settle |= claimants
                claimants.add(key)
        for key in settle:
            self._settle(key)

    def _forget(self, key: str) -> set[str]:
        """Drop what was read of ``key``; the keys that shared a frontend with it."""
        self._refused.pop(key, None)
        self._drop(key)
        item = self._items.pop(key, None)
        others: set[str] = set()
        for frontend in _frontends(item) if item is not None else ():
            claimants = self._claims[frontend]
            claimants.discard(key)
            others |= claimants
            if not claimants:
                del self._claims[frontend]
        return others

    def _settle(self, key: str) -> None:
        item = self._items.get(key)
        if item is None:
            return
        found = self._found[protocol.kind_of(key)]
        owners = [min(self._claims[frontend]) for frontend in _frontends(item)]
        taken = [owner for owner in owners if owner != key]
        if taken:
            self._drop(key)
            self._refused[key] = f"its frontend is already balanced by {taken[0]}"
        else:
            self._refused.pop(key, None)
            found[key] = item
            for vnet in _networks_of(item):
                kinds = self._by_network.setdefault(vnet, {kind: {} for kind in _READERS})
                kinds[protocol.kind_of(key)][key] = item
                self._networks.pop(vnet, None)

    def _drop(self, key: str) -> None:
        """No longer enforce ``key`` (in its virtual networks too)."""
        item = self._found[protocol.kind_of(key)].pop(key, None)
        for vnet in _networks_of(item) if item is not None else ():
            self._by_network[vnet][protocol.kind_of(key)].pop(key, None)
            self._networks.pop(vnet, None)

    def of_network(self, vnet: str) -> Balancing:
        """What the router namespace of ``vnet`` enforces (the same object until something
        of it changes)."""
        found = self._networks.get(vnet)
        if found is None:
            kinds = self._by_network.get(vnet, {})
            found = Balancing(*(dict(kinds.get(kind, {})) for kind in BALANCING_ORDER))
            self._networks[vnet] = found
        return found

    def balancing(self) -> tuple[Balancing, list[Problem]]:
        """What is enforceable, and a problem per object that is not (the same objects
        until the next ``update`` that changes something)."""
        if self._assembled is None:
            found = self._found
            balancing = Balancing(
                dict(found[protocol.LB_RULE]),
                dict(found[protocol.LB_NAT]),
                dict(found[protocol.LB_OUTBOUND]),
                dict(found[protocol.PUBLIC_IP]),
            )
            self._assembled = (balancing, sorted(self._refused.items()))
        return self._assembled


def _networks_of(item: Item) -> tuple[str, ...]:
    return (item.network,) if isinstance(item, Public) else item.networks


# The kinds in the order of Balancing's members.
BALANCING_ORDER = (protocol.LB_RULE, protocol.LB_NAT, protocol.LB_OUTBOUND, protocol.PUBLIC_IP)
