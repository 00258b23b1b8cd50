"""The mux role (pure): what a server named by a loadBalancerMux does with the objects it gets.

External routers send the traffic for VIPs and public IPs to a mux (a static route to the VIP
prefixes via the mux's provider address; BGP may advertise them later). The mux does not
translate: it picks the DIP of each flow and sends the packet, unchanged, to the host of that
DIP inside VXLAN (VNI = the VSID of the DIP's subnet) addressed to the DIP's MAC. The host's
router namespace then translates it to the DIP it was addressed to (``lb_tables``: the
``steer`` map) -- the mux's choice stands, so a mux and a host never disagree, not even while
their tables are being changed -- and the reply goes straight back to the client (direct server
return). Two muxes holding the same objects pick the same DIP for a flow: the controller's slot
table, hashed with the same fields and seed as everywhere.

``plan_mux(objects, marks) -> MuxPlan``:

* ``MuxTables`` (``table ip sdnc_mux``, the shape of ``lb_tables.LbTables``): per lbRule a chain
  that sets the packet's mark from the flow table (a flow keeps its DIP while it goes on; a
  TCP SYN starts a new one) or else ``jhash <flow> mod <slots> seed FLOW_HASH_SEED map
  @slots_<id>`` (slot -> the mark of the DIP's place), and remembers it; lbNat frontends,
  public IPs and the source-port blocks of outbound NAT (whose replies come back to the VIP)
  map straight to a mark. Traffic to these addresses is not tracked (the mux sees one
  direction only).
* ``targets``: per place a DIP lives (provider address, VSID, MAC) a number; its mark is
  ``MARK_BASE + number``. An ``ip rule`` sends a packet with that mark to a table of that
  number whose default route is ``via <next hop> dev sdncmux onlink encap ip id <VSID> dst
  <provider address>``, the next hop being an address of its own with a permanent neighbour
  entry giving the DIP's MAC. The numbers of places already known are kept (``marks``), so a
  new place changes no slot of another.

A DIP that no ``vipMap`` places is reported (the rule is left out). Only IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from controller import protocol
from controller.agent.linux.balancer import Balanced, balancing_from_objects
from controller.agent.linux.lb_tables import VIPS_MAP, LbTables, slots_map
from controller.agent.linux.plan import PlanError, format_mac
from controller.protocol import FLOW_HASH_SEED

MUX_TABLE = "sdnc_mux"
MUX_DEVICE = "sdncmux"
MARK_BASE = 0x53000000
MARK_MASK = 0xFFFF0000
MARKS = 1 << 15  # places a mux can send to: a next hop each in NEXT_HOPS
NEXT_HOPS = ipaddress.IPv4Network("169.254.128.0/17")
RULE_PRIORITY = 1000  # fwmark -> the place's table
# Before those: what the mux sends itself (the VXLAN packets, which keep the inner packet's
# mark) is routed by the main table.
LOCAL_PRIORITY = 999
FLOWS_MAP = "flows"
FLOWS = 1 << 18  # flows a mux remembers at once; beyond, new ones are hashed each packet
# A flow as the mux remembers it. Without the protocol: libnftables 1.0.6 aborts (an
# assertion, which would end the agent's process) rendering a five-field key in a map lookup
# or update; a TCP and a UDP flow of the same addresses and ports share a DIP.
FLOW = "ip saddr . ip daddr . th sport . th dport"
FLOW_TYPE = "ipv4_addr . ipv4_addr . inet_service . inet_service"
NEW_CONNECTION = "tcp flags & (syn | ack) == syn"

_HOOKS = f"""\
chain raw {{
type filter hook prerouting priority raw; policy accept;
ip daddr @destinations notrack
}}
chain prerouting {{
type filter hook prerouting priority mangle; policy accept;
ip daddr . meta l4proto . th dport vmap @{VIPS_MAP}
meta mark set ip daddr . meta l4proto . th dport map @natted accept
meta mark set ip daddr . meta l4proto . th dport map @replies accept
meta mark set ip daddr map @publics accept
}}"""


class MuxTables(LbTables):
    """``table ip sdnc_mux``: a mark for each flow to a VIP or public IP."""

    TABLE: ClassVar[str] = MUX_TABLE
    DECLARED: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("set", "destinations", "ipv4_addr"),
        ("map", "natted", "ipv4_addr . inet_proto . inet_service : mark"),
        ("map", "replies", "ipv4_addr . inet_proto . inet_service : mark\nflags interval"),
        ("map", "publics", "ipv4_addr : mark"),
        # The flows of the rules, with the mark they got: a flow keeps its DIP while it goes
        # on (the DIP leaving its pool or not), and is forgotten when idle.
        ("map", FLOWS_MAP, f"{FLOW_TYPE} : mark\nflags dynamic,timeout\nsize {FLOWS}"),
    )
    HOOKS: ClassVar[str] = _HOOKS
    SLOT_TYPE: ClassVar[str] = "typeof numgen inc mod 2 : meta mark"


@dataclass(frozen=True)
class Target:
    """Where a DIP lives: its host's provider address, the VSID of its subnet, its MAC."""

    provider: str
    vsid: int
    mac: str

    def next_hop(self, number: int) -> str:
        return str(NEXT_HOPS.network_address + number)


@dataclass
class MuxPlan:
    tables: MuxTables
    targets: dict[Target, int]  # the places in use, by number
    problems: list[tuple[str, str]] = field(default_factory=list)


class _Unplaced(ValueError):
    pass


def _target(entry: Mapping[str, Any]) -> Target:
    try:
        provider = ipaddress.IPv4Address(str(entry.get("providerAddress")))
        vsid = entry.get("vsid")
        if isinstance(vsid, bool) or not isinstance(vsid, int) or not 0 < vsid < 1 << 24:
            raise _Unplaced(f"VSID {vsid!r} is not a VXLAN network identifier")
        return Target(str(provider), vsid, format_mac(entry.get("mac")))
    except (ValueError, PlanError) as exc:
        raise _Unplaced(str(exc)) from exc


def _places(objects: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Target]]:
    """VIP -> DIP address -> where that DIP lives, from the ``vipMap`` objects."""
    places: dict[str, dict[str, Target]] = {}
    prefix = f"{protocol.VIP_MAP}/"
    for key in sorted(k for k in objects if k.startswith(prefix)):
        body = objects[key]
        found = places.setdefault(str(body.get("vip")), {})
        for entry in body.get("dips") or ():
            try:
                found[str(entry.get("ip"))] = _target(entry)
            except _Unplaced:
                continue  # a DIP not placed yet: its rules say so
    return places


class _Marks:
    """Numbers for places: kept for places already known, the lowest free one for a new."""

    def __init__(self, known: Mapping[Target, int]) -> None:
        self.known = dict(known)
        self.used: dict[Target, int] = {}

    def mark(self, target: Target) -> str:
        number = self.known.get(target)
        if number is None:
            taken = set(self.known.values())
            number = next(n for n in range(MARKS) if n not in taken)
            self.known[target] = number
        self.used[target] = number
        return f"{MARK_BASE + number:#x}"


def _rule_parts(
    rule: Balanced, places: dict[str, dict[str, Target]], marks: _Marks
) -> tuple[tuple[tuple[int, str], ...], tuple[str, ...]]:
    """The slot map's elements (slot -> mark) and the chain's rules."""
    placed: dict[str, Target] = {}
    for vip in rule.vips:
        placed = places.get(vip, {}) | placed
    missing = sorted(dip for dip in rule.dips if dip not in placed)
    if missing:
        raise _Unplaced(f"no vipMap places DIP {missing[0]}")
    by_dip = {dip: marks.mark(placed[dip]) for dip in sorted(rule.dips)}
    elements = tuple((slot, by_dip[dip]) for slot, dip in enumerate(rule.slots))
    return elements, _rule_lines(rule)


def _rule_lines(rule: Balanced) -> tuple[str, ...]:
    """A flow the mux remembers keeps its mark (and its idle time starts again); a new one is
    hashed into the slot table and remembered. A TCP connection's first packet (SYN without
    ACK) is always a new flow: a client's ephemeral ports come round again within minutes
    (Linux steps them by about nine per connection to one destination, so a busy client
    reuses a port after some 3,000 connections), and a remembered flow would send the new
    connection to the DIP of an old one, even one that has since left the pool."""
    remember = f"update @{FLOWS_MAP} {{ {FLOW} timeout {rule.idle_minutes}m : meta mark }}"
    hashed = f"meta mark set jhash {rule.fields} mod {len(rule.slots)} seed {FLOW_HASH_SEED:#x}"
    from_slots = f"{hashed} map @{slots_map(rule.key)} {remember} accept"
    return (
        f"{NEW_CONNECTION} {from_slots}",
        f"meta mark set {FLOW} map @{FLOWS_MAP} {remember} accept",
        from_slots,
    )


def plan_mux(objects: Mapping[str, Mapping[str, Any]], known: Mapping[Target, int]) -> MuxPlan:
    balancing, problems = balancing_from_objects(objects)
    places = _places(objects)
    marks = _Marks(known)
    vips: dict[str, str] = {}
    maps: dict[str, tuple[tuple[int, str], ...]] = {}
    chains: dict[str, tuple[str, ...]] = {}
    natted: dict[str, str] = {}
    destinations: set[str] = set()
    for key, rule in sorted(balancing.rules.items()):
        chain = f"mux_{slots_map(key).removeprefix('slots_')}"
        try:
            if rule.pool:
                maps[slots_map(key)], lines = _rule_parts(rule, places, marks)
            else:
                lines = ("drop",)  # no healthy DIP
        except _Unplaced as exc:
            problems.append((key, str(exc)))
            continue
        chains[chain] = lines
        for vip in rule.vips:
            destinations.add(vip)
            vips |= {f"{vip} . {proto} . {rule.frontend_port}": f"jump {chain}"
                     for proto in rule.protocols}  # fmt: skip
    for key, nat in sorted(balancing.nats.items()):
        for vip in nat.vips:
            target = places.get(vip, {}).get(nat.dip)
            if target is None:
                problems.append((key, f"no vipMap places DIP {nat.dip}"))
                continue
            destinations.add(vip)
            for proto in nat.protocols:
                natted[f"{vip} . {proto} . {nat.frontend_port}"] = marks.mark(target)
    replies, publics = _replies(objects, marks, problems), {}
    destinations |= {key.split(" . ")[0] for key in replies}
    for key, body in sorted(_of_kind(objects, protocol.PUBLIC_IP).items()):
        try:
            target = _target(body)
            public = str(ipaddress.IPv4Address(str(body.get("publicIPAddress"))))
        except (_Unplaced, ValueError) as exc:
            problems.append((key, f"cannot be reached through the mux: {exc}"))
            continue
        publics[public] = marks.mark(target)
        destinations.add(public)
    sets = {
        "destinations": dict.fromkeys(sorted(destinations), ""),
        "natted": natted,
        "replies": replies,
        "publics": publics,
    }
    tables = MuxTables(vips, maps, chains, (), {k: v for k, v in sets.items() if v})
    return MuxPlan(tables, marks.used, problems)


def _of_kind(objects: Mapping[str, Mapping[str, Any]], kind: str) -> dict[str, Any]:
    return {k: v for k, v in objects.items() if protocol.kind_of(k) == kind}


def _replies(
    objects: Mapping[str, Mapping[str, Any]], marks: _Marks, problems: list[tuple[str, str]]
) -> dict[str, str]:
    """VIP . protocol . a DIP's block of source ports -> the mark of that DIP's place: the
    replies to what outbound NAT sent out from the VIP."""
    replies: dict[str, str] = {}
    for key, body in sorted(_of_kind(objects, protocol.LB_OUTBOUND).items()):
        vips = body.get("vips") or ()
        name = str(body.get("protocol", "")).lower()
        protocols = ("tcp", "udp") if name == "all" else (name,)
        if not vips or any(p not in ("tcp", "udp") for p in protocols):
            continue  # the host reports it
        for block in body.get("portBlocks") or ():
            try:
                mark = marks.mark(_target(block))
            except _Unplaced as exc:
                problems.append((key, f"the block of {block.get('dip')}: {exc}"))
                continue
            for proto in protocols:
                ports = f"{block.get('firstPort')}-{block.get('lastPort')}"
                replies[f"{vips[0]} . {proto} . {ports}"] = mark
    return replies


def is_mux(objects: Mapping[str, Any]) -> bool:
    """Whether the host has the mux role: it is sent where DIPs live."""
    return any(protocol.kind_of(key) == protocol.VIP_MAP for key in objects)


# What the mux's plan reads: a change of another kind leaves it as it is.
MUX_KINDS = frozenset(
    {
        protocol.LB_RULE,
        protocol.LB_NAT,
        protocol.LB_OUTBOUND,
        protocol.PUBLIC_IP,
        protocol.VIP_MAP,
    }
)
