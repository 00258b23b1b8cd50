"""Route tables in the router namespaces (pure): ``routeTable/`` objects -> policy routing.

A router namespace holds every subnet of its virtual network, so a subnet's route table
cannot be the namespace's main table. Each subnet with a route table gets a kernel routing
table of its own (number ``TABLE_BASE + VSID``, unique in the namespace), holding the route
table's routes, and one rule per address of a local endpoint in the subnet, ``from <ip> iif
<its veth> lookup <table>`` (priority ``RULE_PRIORITY``). The routes so apply to what that
subnet's endpoints send, as MS-NCNBI's route tables do -- not to what arrives over VXLAN (the
sending host has routed it) nor to what an appliance forwards (it arrives on the appliance's
veth). A lookup that finds nothing in the table goes on to the main table (the
virtual network's connected and per-endpoint routes).

Next hop types (MS-NCNBI 5.8): ``VirtualAppliance`` -> via ``nextHopIpAddress``, an endpoint
of the virtual network: onlink through its veth when it is local, through ``br<vsid>`` (its
permanent neighbour entry, VXLAN) when it is remote -- on the appliance's host, the bridge
table marks frames for the appliance's MAC and rule ``fwmark <mark>`` sends them on to it
(table ``APPLIANCE_BASE + n``, a default route via the appliance); ``None`` -> ``blackhole``;
``VnetLocal`` and ``Internet`` -> ``throw`` (on to the main table: the virtual network's own
routes; the router namespace has no path out of the virtual network, so Internet traffic
goes nowhere today). A route that cannot be planned (bad prefix, unknown appliance,
``VirtualNetworkGateway``) fails its route table and becomes a blackhole: traffic a tenant
sends to an appliance must not go around it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller import protocol
from controller.agent.linux.changes import FINISH, Changes

if TYPE_CHECKING:
    from controller.agent.linux.plan import HostPlan

TABLE_BASE = 1 << 24  # + VSID: clear of the reserved tables (0, 253-255) and of each other
APPLIANCE_BASE = 2 << 24  # + index: the mark and the table of a local appliance
RULE_PRIORITY = 1000  # before the main table's rule (32766); the agent owns this priority
APPLIANCE = "VirtualAppliance"
THROUGH = frozenset({"VnetLocal", "Internet"})


@dataclass(frozen=True)
class Rule:
    """``<match> lookup <table>``: ``from <ip> iif <veth>`` (an endpoint address uses its
    subnet's table) or ``fwmark <mark>`` (a frame for a local appliance's MAC goes to it)."""

    match: str
    table: int
    keys: tuple[str, ...] = field(default=(), compare=False)

    @property
    def spec(self) -> str:
        return f"{self.match} lookup {self.table} priority {RULE_PRIORITY}"


@dataclass(frozen=True)
class TableRoute:
    """A route of a subnet's table: ``via`` (gateway and device, onlink), ``blackhole`` or
    ``throw``."""

    table: int
    prefix: str
    kind: str
    gateway: str = ""
    dev: str = ""
    keys: tuple[str, ...] = field(default=(), compare=False)

    @property
    def spec(self) -> str:
        if self.kind == "via":
            where = f"{self.prefix} via {self.gateway} dev {self.dev} onlink"
        else:
            where = f"{self.kind} {self.prefix}"
        return f"{where} table {self.table}"


@dataclass(frozen=True)
class Routing:
    """What a router namespace holds for its subnets' route tables."""

    rules: frozenset[Rule] = frozenset()
    routes: frozenset[TableRoute] = frozenset()


def table_of(vsid: int) -> int:
    return TABLE_BASE + vsid


def plan_routing(result: HostPlan, objects: Mapping[str, Mapping[str, Any]]) -> None:
    """Fill ``result.routing`` and ``result.forwarding`` (the veths of local appliances,
    which forward traffic not their own, with their marks) from the network and route table
    objects."""
    tables: dict[str, list[tuple[int, str]]] = {}  # router -> (vsid, network key)
    used: dict[str, str] = {}  # network key -> route table key
    for key, body in objects.items():
        if protocol.kind_of(key) != protocol.NETWORK or not body.get("routeTable"):
            continue
        table_key = protocol.object_key(protocol.ROUTE_TABLE, str(body["routeTable"]))
        vsid = body.get("vsid")
        router = next((r for r, v in result.segments if v == vsid), None)
        if table_key in objects and router is not None and isinstance(vsid, int):
            tables.setdefault(router, []).append((vsid, key))
            used[key] = table_key
    result.routing, result.forwarding = {}, {}
    for router, subnets in sorted(tables.items()):
        hops = _hops(result, router)
        rules: set[Rule] = set()
        routes: set[TableRoute] = set()
        appliances: dict[str, str] = {}  # local appliance veth -> its address
        for vsid, network in sorted(subnets):
            table_key = used[network]
            keys = (network, table_key)
            wanted = _routes(result, objects[table_key], table_key, table_of(vsid), hops, keys)
            routes |= wanted
            nexthops = {r.gateway for r in wanted if r.kind == "via"}
            for ip in sorted(nexthops, reverse=True):
                if hops[ip][1]:
                    appliances[hops[ip][1]] = ip
            for port in (p for p in result.ports.values() if p.router == router):
                for ip, port_vsid in zip(port.ips, _vsids(port, objects), strict=True):
                    if port_vsid == vsid and ip not in nexthops:
                        match = f"from {ip} iif {port.veth}"
                        rules.add(Rule(match, table_of(vsid), port.keys + keys))
        marks: dict[str, int] = {}
        for index, veth in enumerate(sorted(appliances)):
            # Another host routed the packet to the appliance's MAC (over VXLAN); here the
            # bridge table marks the frame, and the mark's table sends it on to the appliance
            # whatever its destination (the main table would deliver it around the appliance).
            marks[veth] = mark = APPLIANCE_BASE + index
            rules.add(Rule(f"fwmark {mark:#x}", mark))
            routes.add(TableRoute(mark, "0.0.0.0/0", "via", appliances[veth], veth))
        result.routing[router] = Routing(frozenset(rules), frozenset(routes))
        if marks:
            result.forwarding[router] = marks


def _vsids(port: Any, objects: Mapping[str, Mapping[str, Any]]) -> list[int]:
    """The VSID of each of the port's addresses (its endpoints', in the same order)."""
    return [int(objects[key]["vsid"]) for key in port.keys]


def _hops(result: HostPlan, router: str) -> dict[str, tuple[str, str]]:
    """Endpoint address -> (device reaching it, the local veth if it is local) in a router."""
    hops = {r.ip: (f"br{r.vsid}", "") for r in result.remotes.values() if r.router == router}
    for port in result.ports.values():
        if port.router == router:
            hops.update(dict.fromkeys(port.ips, (port.veth, port.veth)))
    return hops


def _routes(
    result: HostPlan,
    body: Mapping[str, Any],
    table_key: str,
    table: int,
    hops: Mapping[str, tuple[str, str]],
    keys: tuple[str, ...],
) -> set[TableRoute]:
    routes: dict[str, TableRoute] = {}
    for route in body.get("routes") or ():
        try:
            prefix = str(ipaddress.IPv4Network(str(route.get("addressPrefix")), strict=False))
        except ValueError:
            result.fail(table_key, f"route prefix {route.get('addressPrefix')!r} is not IPv4")
            continue
        kind, hop = str(route.get("nextHopType")), str(route.get("nextHopIpAddress") or "")
        if kind == APPLIANCE and hop in hops:
            planned = TableRoute(table, prefix, "via", hop, hops[hop][0], keys)
        elif kind in THROUGH:
            planned = TableRoute(table, prefix, "throw", keys=keys)
        else:
            if kind == APPLIANCE:
                result.fail(table_key, f"next hop {hop!r} of {prefix} is no endpoint here")
            elif kind != "None":
                result.fail(table_key, f"next hop type {kind!r} of {prefix} is not supported")
            planned = TableRoute(table, prefix, "blackhole", keys=keys)
        if prefix in routes and routes[prefix] != planned:
            result.fail(table_key, f"two routes for {prefix}; the first is used")
            continue
        routes.setdefault(prefix, planned)
    return set(routes.values())


def observed_routing(
    rules: Iterable[Mapping[str, Any]], routes: Iterable[Mapping[str, Any]]
) -> Routing:
    """The agent's rules and table routes among ``ip -j rule show`` / ``route show table all``."""
    found_rules = {
        Rule(_match(r), int(r["table"]))
        for r in rules
        if r.get("priority") == RULE_PRIORITY and _ours(r.get("table"))
    }
    found_routes: set[TableRoute] = set()
    for route in routes:
        if not _ours(route.get("table")):
            continue
        dst = str(route.get("dst"))
        prefix = "0.0.0.0/0" if dst == "default" else dst if "/" in dst else f"{dst}/32"
        kind = str(route.get("type", "unicast"))
        table = int(route["table"])
        if kind == "unicast" and "onlink" in route.get("flags", ()):
            gateway, dev = str(route.get("gateway")), str(route.get("dev"))
            found_routes.add(TableRoute(table, prefix, "via", gateway, dev))
        else:  # another type, or a route not as the agent makes them: replaced or removed
            found_routes.add(TableRoute(table, prefix, kind))
    return Routing(frozenset(found_rules), frozenset(found_routes))


def _match(rule: Mapping[str, Any]) -> str:
    if "fwmark" in rule:
        return f"fwmark {int(str(rule['fwmark']), 0):#x}"
    return f"from {rule.get('src')} iif {rule.get('iif')}"


def _ours(table: object) -> bool:
    return str(table).isdigit() and int(str(table)) > TABLE_BASE


def routing_lines(
    changes: Changes, router: str, have: Routing, want: Routing, gone: Collection[str] = ()
) -> None:
    """The ``ip`` lines turning ``have`` into ``want`` (after the devices are up: FINISH);
    ``gone``: devices deleted before, whose routes the kernel removed with them."""
    wanted = {(r.table, r.prefix): r for r in want.routes}
    for route in sorted(have.routes - want.routes, key=lambda r: (r.table, r.prefix)):
        if (route.table, route.prefix) not in wanted and route.dev not in gone:
            changes.add(FINISH, "ip", router, f"route del {route.prefix} table {route.table}")
    for rule in sorted(have.rules - want.rules, key=lambda r: r.spec):
        changes.add(FINISH, "ip", router, f"rule del {rule.spec}")
    for route in sorted(want.routes - have.routes, key=lambda r: (r.table, r.prefix)):
        changes.add(FINISH, "ip", router, f"route replace {route.spec}", route.keys)
    for rule in sorted(want.rules - have.rules, key=lambda r: r.spec):
        changes.add(FINISH, "ip", router, f"rule add {rule.spec}", rule.keys)
