"""The host's desired data plane as a pure function of the agent's objects.

``plan(objects, server, provider_address)`` turns the southbound objects into what the kernel
must hold (see docs/agent.md): a router namespace per virtual network, a bridge + VXLAN device
per VSID in it, a namespace + veth pair per local NIC, a neighbour/FDB entry set per remote
endpoint, QoS caps, and the inputs of the nftables ruleset of each router namespace. Objects
that cannot be planned become ``Failure``s; the rest of the host is planned regardless.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import protocol
from controller.agent.linux.nft_ports import FilteredEndpoint as Filtered  # the renderer's input
from controller.agent.linux.nft_ports import filtered_endpoint
from controller.agent.linux.routes import Routing, plan_routing
from controller.agent.session import Failure

ROUTER_PREFIX = "sdnc-rd-"
INVALID = "PolicyConfigurationFailure"
MAX_VSID = 2**24 - 1
CLASH = "share the interface name"
Body = Mapping[str, Any]


class PlanError(ValueError):
    pass


def router_name(server: str, vnet: str) -> str:
    return f"{ROUTER_PREFIX}{server}-{vnet}"


def router_prefix(server: str) -> str:
    """Every router namespace of this agent starts with this (the agent owns them)."""
    return f"{ROUTER_PREFIX}{server}-"


def veth_name(nic: str) -> str:
    """Router-side veth of a NIC: ``s`` + 12 hex digits of its instanceId (<= 15 chars)."""
    digits = "".join(c for c in nic.lower() if c in "0123456789abcdef")[:12]
    if len(digits) < 12:
        raise PlanError(f"NIC id {nic!r} has fewer than 12 hex digits")
    return f"s{digits}"


def bridge_name(vsid: int) -> str:
    return f"br{vsid}"


def vxlan_name(vsid: int) -> str:
    return f"vx{vsid}"


def format_mac(raw: object) -> str:
    """``001DD8B71C00`` (or any separators) -> ``00:1d:d8:b7:1c:00``."""
    digits = "".join(c for c in str(raw).lower() if c not in ":-.")
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise PlanError(f"bad MAC address {raw!r}")
    if int(digits[:2], 16) & 1:
        raise PlanError(f"MAC address {raw!r} is a multicast address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class Segment:
    """A VSID in a router namespace: bridge with the gateway address, VXLAN port."""

    router: str
    vsid: int
    gateway: str  # address/prefixLength on the bridge

    @property
    def bridge(self) -> str:
        return bridge_name(self.vsid)

    @property
    def vxlan(self) -> str:
        return vxlan_name(self.vsid)


@dataclass(frozen=True)
class Port:
    """A local NIC: its namespace, veth pair, addresses and caps."""

    nic: str
    netns: str
    router: str
    veth: str
    mac: str
    addresses: tuple[str, ...]  # address/prefixLength on eth0, IPv4 and IPv6
    gateway: str  # the IPv4 default route's next hop ("": no IPv4 address)
    vsids: tuple[int, ...]  # the bridges that deliver this MAC locally
    inbound_mbps: int | None
    outbound_mbps: int | None
    keys: tuple[str, ...]
    gateway6: str = ""  # the IPv6 default route's next hop ("": no IPv6 address)

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(a.split("/")[0] for a in self.addresses)

    @property
    def ips6(self) -> tuple[str, ...]:
        return tuple(ip for ip in self.ips if ":" in ip)


@dataclass(frozen=True)
class Remote:
    """An endpoint on another host, reached over VXLAN at its provider address."""

    key: str
    router: str
    vsid: int
    ip: str
    mac: str
    underlay: str


@dataclass
class HostPlan:
    server: str
    provider_address: str | None
    routers: set[str] = field(default_factory=set)
    segments: dict[tuple[str, int], Segment] = field(default_factory=dict)
    ports: dict[str, Port] = field(default_factory=dict)  # by NIC namespace
    remotes: dict[str, Remote] = field(default_factory=dict)  # by wire key
    filtered: dict[str, list[Filtered]] = field(default_factory=dict)  # by router
    failures: list[Failure] = field(default_factory=list)
    keys_of_router: dict[str, set[str]] = field(default_factory=dict)
    veths: dict[str, str] = field(default_factory=dict)  # router-side veth -> NIC
    routing: dict[str, Routing] = field(default_factory=dict)  # by router (routes.py)
    forwarding: dict[str, dict[str, int]] = field(default_factory=dict)  # appliance veth: mark

    def fail(self, key: str, message: str) -> None:
        self.failures.append(Failure(key, INVALID, message))

    def claim(self, router: str, key: str) -> None:
        self.routers.add(router)
        self.keys_of_router.setdefault(router, set()).add(key)


def plan(objects: Mapping[str, Body], server: str, provider_address: str | None = None) -> HostPlan:
    host = next(
        (b for k, b in sorted(objects.items()) if protocol.kind_of(k) == protocol.HOST), None
    )
    underlay = provider_address or (host or {}).get("providerAddress") or None
    result = HostPlan(server, str(underlay) if underlay else None)
    vsid_owner: dict[int, str] = {}
    for key, body in sorted(objects.items()):
        if protocol.kind_of(key) == protocol.NETWORK:
            _plan_network(result, vsid_owner, key, body)
    endpoints: dict[str, list[tuple[str, Body]]] = {}
    for key, body in sorted(objects.items()):
        if protocol.kind_of(key) == protocol.ENDPOINT:
            endpoints.setdefault(str(body.get("nic")), []).append((key, body))
    for nic, members in sorted(endpoints.items()):
        _plan_port(result, vsid_owner, nic, members)
    local_macs = {p.mac for p in result.ports.values()}
    for key, body in sorted(objects.items()):
        if protocol.kind_of(key) == protocol.MAPPING:
            _plan_remote(result, key, body, local_macs)
    plan_routing(result, objects)
    return result


def _vsid(body: Body) -> int:
    vsid = body.get("vsid")
    if not isinstance(vsid, int) or isinstance(vsid, bool) or not 0 < vsid <= MAX_VSID:
        raise PlanError(f"bad VSID {vsid!r}")
    return vsid


def _text(body: Body, member: str) -> str:
    value = body.get(member)
    if not isinstance(value, str) or not value:
        raise PlanError(f"missing {member}")
    return value


def _ipv4(value: object, member: str) -> str:
    canonical = _canonical_ip(str(value))
    if canonical is None or ":" in canonical:
        raise PlanError(f"{member} {value!r} is not an IPv4 address")
    return canonical


def _ip(value: object, member: str, version: int | None = None) -> str:
    """An endpoint address or gateway: IPv4 or IPv6 (``version``: that one only)."""
    canonical = _canonical_ip(str(value))
    if canonical is None:
        raise PlanError(f"{member} {value!r} is not an IP address")
    if version is not None and (6 if ":" in canonical else 4) != version:
        raise PlanError(f"{member} {value!r} is not an IPv{version} address")
    return canonical


@functools.lru_cache(maxsize=1 << 16)
def _canonical_ip(text: str) -> str | None:
    # Cached: a host plans the same few thousand addresses over and over.
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _plan_network(result: HostPlan, owner: dict[int, str], key: str, body: Body) -> None:
    try:
        vsid = _vsid(body)
        router = router_name(result.server, _text(body, "virtualNetwork"))
        prefix = ipaddress.ip_network(_text(body, "prefix"), strict=False)
        gateway = _ip(body.get("gateway"), "gateway", prefix.version)
    except ValueError as exc:
        result.fail(key, str(exc))
        return
    if owner.setdefault(vsid, router) != router:
        result.fail(key, f"VSID {vsid} is used by another virtual network")
        return
    result.claim(router, key)
    result.segments[(router, vsid)] = Segment(router, vsid, f"{gateway}/{prefix.prefixlen}")


def _plan_port(
    result: HostPlan, owner: dict[int, str], nic: str, members: list[tuple[str, Body]]
) -> None:
    _, first = members[0]
    try:
        router = router_name(result.server, _text(first, "virtualNetwork"))
        veth = veth_name(_text(first, "nic"))
        mac = format_mac(first.get("mac"))
        clash = result.veths.get(veth)
        if clash is not None and clash != nic:
            raise PlanError(f"NIC {nic} and NIC {clash} {CLASH} {veth}")
    except ValueError as exc:
        for key, _ in members:
            result.fail(key, str(exc))
        return
    addresses: list[str] = []
    vsids: list[int] = []
    keys: list[str] = []
    gateways = {4: "", 6: ""}  # the first ipConfiguration's of each family
    for key, body in members:
        try:
            vsid = _vsid(body)
            ip = _ip(body.get("ip"), "ip")
            version = 6 if ":" in ip else 4
            length = body.get("prefixLength")
            if not isinstance(length, int) or not 0 < length <= (128 if version == 6 else 32):
                raise PlanError(f"bad prefixLength {length!r}")
            hop = _ip(body.get("gateway"), "gateway", version)
            if router_name(result.server, _text(body, "virtualNetwork")) != router:
                raise PlanError("the NIC's ipConfigurations are in different virtual networks")
            if owner.setdefault(vsid, router) != router:
                raise PlanError(f"VSID {vsid} is used by another virtual network")
        except ValueError as exc:
            result.fail(key, str(exc))
            continue
        result.segments.setdefault((router, vsid), Segment(router, vsid, f"{hop}/{length}"))
        gateways[version] = gateways[version] or hop
        addresses.append(f"{ip}/{length}")
        vsids.append(vsid)
        keys.append(key)
        result.claim(router, key)
        acls = tuple(str(a) for a in body.get("acls") or ())
        result.filtered.setdefault(router, []).append(filtered_endpoint(key, veth, ip, mac, acls))
    if not keys:
        return
    result.veths[veth] = nic
    qos = first.get("qos") or {}
    result.ports[nic] = Port(
        nic=nic,
        netns=nic,
        router=router,
        veth=veth,
        mac=mac,
        addresses=tuple(addresses),
        gateway=gateways[4],
        gateway6=gateways[6],
        vsids=tuple(dict.fromkeys(vsids)),
        inbound_mbps=_cap(qos.get("inboundMaximumMbps")),
        outbound_mbps=_cap(qos.get("outboundMaximumMbps")),
        keys=tuple(keys),
    )


def _cap(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _plan_remote(result: HostPlan, key: str, body: Body, local_macs: set[str]) -> None:
    try:
        vsid = _vsid(body)
        router = router_name(result.server, _text(body, "virtualNetwork"))
        ip = _ip(body.get("ip"), "ip")
        mac = format_mac(body.get("mac"))
        underlay = _ipv4(body.get("providerAddress"), "providerAddress")
    except ValueError as exc:
        result.fail(key, str(exc))
        return
    if (router, vsid) not in result.segments:
        result.fail(key, f"no network object for VSID {vsid} of its virtual network")
        return
    if mac in local_macs:
        result.fail(key, f"MAC {mac} belongs to a local endpoint")
        return
    result.claim(router, key)
    result.remotes[key] = Remote(key, router, vsid, ip, mac, underlay)


# Kinds whose change re-plans the host whole: they shape the routers and segments.
STRUCTURAL = frozenset({protocol.HOST, protocol.NETWORK})


def replan(
    previous: HostPlan,
    objects: Mapping[str, Body],
    changed: Mapping[str, str | None],
) -> HostPlan | None:
    """``plan(objects, ...)`` computed from ``previous`` by re-planning only what ``changed``
    touches: the NICs of the endpoints named (``changed`` maps each changed key to the NIC it
    had before, None if none) and the mappings named. None when it is not such a change (a
    host or network changed, a router or VSID appears or goes, an interface name or a MAC
    conflict is involved): then plan the host whole, which also orders conflicts the same way
    every time."""
    if any(protocol.kind_of(key) in STRUCTURAL for key in changed):
        return None
    endpoints = [k for k in changed if protocol.kind_of(k) == protocol.ENDPOINT]
    mappings = [k for k in changed if protocol.kind_of(k) == protocol.MAPPING]
    tables = [k for k in changed if protocol.kind_of(k) == protocol.ROUTE_TABLE]
    if not endpoints and not mappings and not tables:
        return previous
    if endpoints and any(
        protocol.kind_of(f.key) == protocol.MAPPING or CLASH in f.message for f in previous.failures
    ):
        # A mapping refused for a local MAC, or a NIC for another's interface name, may
        # become right when an endpoint changes, or the reverse.
        return None
    result = HostPlan(
        previous.server,
        previous.provider_address,
        set(previous.routers),
        dict(previous.segments),
        dict(previous.ports),
        dict(previous.remotes),
        {router: list(found) for router, found in previous.filtered.items()},
        [],
        {router: set(keys) for router, keys in previous.keys_of_router.items()},
        dict(previous.veths),
    )
    routed = [f for f in previous.failures if protocol.kind_of(f.key) == protocol.ROUTE_TABLE]
    nics = {str(objects[k].get("nic")) for k in endpoints if k in objects}
    nics |= {nic for k in endpoints if (nic := changed[k]) is not None}
    remote_macs = {r.mac for r in previous.remotes.values()}
    for nic in nics:
        port = result.ports.pop(nic, None)
        if port is None:
            continue
        if port.mac in remote_macs:
            return None
        del result.veths[port.veth]
        result.keys_of_router[port.router] -= set(port.keys)
        gone = set(port.keys)
        result.filtered[port.router] = [
            f for f in result.filtered[port.router] if f.key not in gone
        ]
    members: dict[str, list[tuple[str, Body]]] = {nic: [] for nic in nics}
    for key, body in objects.items():  # only a lookup per object: which NIC it belongs to
        if protocol.kind_of(key) == protocol.ENDPOINT and body.get("nic") in members:
            members[str(body.get("nic"))].append((key, body))
    owner = {vsid: router for router, vsid in previous.segments}
    touched = {key for found in members.values() for key, _ in found} | set(changed)
    for nic in sorted(members):
        if members[nic]:
            _plan_port(result, owner, nic, sorted(members[nic]))
    local_macs = {p.mac for p in result.ports.values()}
    for key in mappings:
        remote = result.remotes.pop(key, None)
        if remote is not None:
            result.keys_of_router[remote.router].discard(key)
        if key in objects:
            _plan_remote(result, key, objects[key], local_macs)
    if (
        result.segments.keys() != previous.segments.keys()
        or any(not result.keys_of_router.get(r) for r in result.routers)
        or any(p.mac in remote_macs for n, p in result.ports.items() if n in nics)
        or any(CLASH in f.message for f in result.failures)
    ):
        return None
    kept = [f for f in previous.failures if f.key not in touched and f not in routed]
    result.failures = kept + result.failures
    plan_routing(result, objects)  # cheap: the network and route table objects, the ports
    return result
