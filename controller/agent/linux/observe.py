"""What the kernel holds now: a NIC namespace read over netlink (``Runner.dump``, no process),
a router namespace with the tools' JSON output (a few processes), both in the shape ``ip -j``
gives, which the repair reads."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.agent.linux.namespaces import NETNS_DIR
from controller.agent.linux.runner import CommandError, Dump, Runner

Json = dict[str, Any]
# What ``list_ruleset`` lists of a router namespace, one command each, stateless (``nft
# -s``): without the counters' values, which traffic changes.
LISTED = ("list table bridge sdnc", "list table inet sdnc", "list map ip sdnc_lb vips")
# The host-side end of a router's egress pair (``egress.py``) starts with this.
EGRESS_PREFIX = "sdo"
NIC_READERS = 4  # NIC namespaces read at once by a full scan
ROUTER_COMMANDS = ["addr show", "route show", "netconf show", "neigh show nud permanent"]


@dataclass
class NamespaceView:
    """One namespace's links (with addresses), routes, neighbours, FDB, qdiscs, sysctls."""

    links: dict[str, Json] = field(default_factory=dict)
    routes: list[Json] = field(default_factory=list)
    routes6: list[Json] = field(default_factory=list)  # read where IPv6 is planned only
    neighbours: list[Json] = field(default_factory=list)
    netconf: dict[str, Json] = field(default_factory=dict)  # IPv4 netconf by interface
    netconf6: dict[str, Json] = field(default_factory=dict)  # IPv6 netconf by interface
    fdb: list[Json] = field(default_factory=list)
    qdiscs: dict[str, Json] = field(default_factory=dict)  # root qdisc by device
    ruleset: str | None = None  # nft -s list ruleset (router namespaces)
    rules: list[Json] = field(default_factory=list)  # ip rule show (router namespaces)
    table_routes: list[Json] = field(default_factory=list)  # ip route show table all (idem)

    # What ``routed``/``neighboured`` look up, made once per reading of the lists: a router
    # namespace holds a route per endpoint, and each of its thousand ports asks.
    _indexes: dict[str, tuple[tuple[int, ...], set[tuple[Any, ...]]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def routed(self, destination: str, dev: str) -> bool:
        """Whether a main-table route (IPv4 or IPv6) goes to ``destination`` through ``dev``."""
        lists = (self.routes, self.routes6)
        return (destination, dev) in self._index("routes", lists, ("dst", "dev"))

    def neighboured(self, address: str, dev: str, mac: str) -> bool:
        """Whether a permanent neighbour entry gives ``address`` on ``dev`` the MAC ``mac``."""
        index = self._index("neighbours", (self.neighbours,), ("dst", "dev", "lladdr"))
        return (address, dev, mac) in index

    def _index(
        self, name: str, lists: tuple[list[Json], ...], fields: tuple[str, ...]
    ) -> set[tuple[Any, ...]]:
        stamp = tuple(x for found in lists for x in (id(found), len(found)))
        known = self._indexes.get(name)
        if known is None or known[0] != stamp:
            entries = {(str(e.get(fields[0])), *(e.get(f) for f in fields[1:]))
                       for found in lists for e in found}  # fmt: skip
            known = self._indexes[name] = (stamp, entries)
        return known[1]

    def up(self, name: str) -> bool:
        return "UP" in self.links.get(name, {}).get("flags", ())

    def kind(self, name: str) -> str | None:
        link = self.links.get(name)
        if link is None:
            return None
        return str(link.get("linkinfo", {}).get("info_kind", "")) or "device"

    def info(self, name: str) -> Json:
        data: Json = self.links.get(name, {}).get("linkinfo", {}).get("info_data", {})
        return data

    def ipv4(self, name: str) -> set[str]:
        return {
            f"{a['local']}/{a['prefixlen']}"
            for a in self.links.get(name, {}).get("addr_info", ())
            if a.get("family") == "inet"
        }

    def addresses(self, name: str) -> set[str]:
        """The device's IPv4 and global IPv6 addresses (not the kernel's link-local ones)."""
        return {
            f"{a['local']}/{a['prefixlen']}"
            for a in self.links.get(name, {}).get("addr_info", ())
            if a.get("family") == "inet"
            or (a.get("family") == "inet6" and a.get("scope") == "global")
        }

    def forwarding(self) -> bool:
        return bool(self.netconf.get("all", {}).get("forwarding"))

    def forwarding6(self) -> bool:
        return bool(self.netconf6.get("all", {}).get("forwarding"))

    def proxy_arp(self, name: str) -> bool:
        return bool(self.netconf.get(name, {}).get("proxy_neigh"))


@dataclass
class Observed:
    namespaces: set[str]
    # The host namespace's VXLAN links (not moved yet) and the host side of routers' egress.
    host_links: dict[str, Json]
    views: dict[str, NamespaceView]


async def observe(
    runner: Runner, routers: Iterable[str], nics: Iterable[str], ipv6: Collection[str] = ()
) -> Observed:
    """Read the host namespace and every listed namespace that exists; the IPv6 routes of
    those in ``ipv6`` (those the plan gives IPv6 addresses: ``ip`` lists one family's routes
    per process, and most hosts need no second one)."""
    names = {str(n["name"]) for n in await runner.json("ip", None, "netns", "list")}
    host = await runner.json("ip", None, "-d", "link", "show", "type", "vxlan")
    veths = await runner.json("ip", None, "-d", "addr", "show", "type", "veth")
    host += [link for link in veths if str(link.get("ifname", "")).startswith(EGRESS_PREFIX)]
    wanted_routers = [r for r in dict.fromkeys(routers) if r in names]
    wanted_nics = [n for n in dict.fromkeys(nics) if n in names]
    # A few NIC namespaces at a time: decoding their netlink answers is the agent's own CPU,
    # and an apply meanwhile (which reads its NIC alone, not through this) must not wait
    # behind the answers of hundreds of them.
    reading = asyncio.Semaphore(NIC_READERS)

    async def nic(name: str) -> NamespaceView | None:
        async with reading:
            try:
                return await _nic(runner, name, name in ipv6)
            except CommandError:
                if (NETNS_DIR / name).exists():
                    raise  # a read that failed (a timeout), not a namespace that went
                return None

    routers_seen = await asyncio.gather(*(_router(runner, r, r in ipv6) for r in wanted_routers))
    nics_seen = await asyncio.gather(*(nic(n) for n in wanted_nics))
    # A NIC namespace deleted after it was listed (an apply meanwhile removed its NIC) is
    # not there: it stopped the agent when this raised (a full resync racing a delete).
    gone = {name for name, view in zip(wanted_nics, nics_seen, strict=True) if view is None}
    views = dict(zip(wanted_routers, routers_seen, strict=True))
    views |= {n: v for n, v in zip(wanted_nics, nics_seen, strict=True) if v is not None}
    return Observed(
        namespaces=names - gone,
        host_links={str(link["ifname"]): link for link in host},
        views=views,
    )


async def _ip(runner: Runner, netns: str, commands: list[str]) -> list[Any]:
    return await runner.json_batch("ip", netns, commands, details=True)


def _fill(view: NamespaceView, documents: list[Any], qdiscs: list[Json]) -> None:
    addresses, routes, netconf, *rest = documents
    view.links = {str(link["ifname"]): link for link in addresses}
    view.routes = list(routes)
    for family, found in (("inet", view.netconf), ("inet6", view.netconf6)):
        found.update({str(e["interface"]): e for e in netconf if e.get("family") == family})
    view.neighbours = list(rest[0]) if rest else []
    view.qdiscs = {str(q["dev"]): q for q in qdiscs if q.get("root") and "dev" in q}


async def _router(runner: Runner, netns: str, ipv6: bool) -> NamespaceView:
    view = NamespaceView()
    documents, fdb, qdiscs, ruleset, routes6 = await asyncio.gather(
        _ip(runner, netns, [*ROUTER_COMMANDS, "rule show", "route show table all"]),
        runner.json("bridge", netns, "fdb", "show"),
        runner.json("tc", netns, "qdisc", "show"),
        list_ruleset(runner, netns),
        _routes6(runner, netns, ipv6),
    )
    _fill(view, documents[: len(ROUTER_COMMANDS)], qdiscs)
    view.rules, view.table_routes = documents[len(ROUTER_COMMANDS) :]
    view.fdb = list(fdb)
    view.ruleset = ruleset
    view.routes6 = routes6
    return view


async def _nic(runner: Runner, netns: str, ipv6: bool) -> NamespaceView:
    if runner.use_netlink:  # no process: a NIC namespace is most of what a host holds
        try:
            return nic_view(await runner.dump(netns, ipv6), ipv6)
        except OSError as exc:
            raise CommandError(["netlink", "dump", netns], 1, str(exc)) from exc
    view = NamespaceView()
    documents, qdiscs, routes6 = await asyncio.gather(
        _ip(runner, netns, ["addr show", "route show", "netconf show"]),
        runner.json("tc", netns, "qdisc", "show"),
        _routes6(runner, netns, ipv6),
    )
    _fill(view, documents, qdiscs)
    view.routes6 = routes6
    return view


_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host"}
_FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
IFF_UP = 1
TC_H_ROOT = 0xFFFFFFFF


def nic_view(dump: Dump, ipv6: bool) -> NamespaceView:
    """A NIC namespace's view from its netlink listing, in the shape ``ip -j``/``tc -j``
    give (the fields the repair reads: links' kind, flags, MAC and addresses; the main
    table's routes; root qdiscs and a token bucket's rate)."""
    names = {int(link["index"]): str(link.get("ifname")) for link in dump.links}
    view = NamespaceView()
    for link in dump.links:
        entry: Json = {"ifname": names[int(link["index"])], "addr_info": []}
        entry["flags"] = ["UP"] if int(link["flags"]) & IFF_UP else []
        if link.get("address"):
            entry["address"] = str(link.get("address"))
        kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        if kind:
            entry["linkinfo"] = {"info_kind": str(kind)}
        view.links[entry["ifname"]] = entry
    for address in dump.addresses:
        owner = view.links.get(names.get(int(address["index"]), ""))
        if owner is not None and address["family"] in _FAMILIES:
            owner["addr_info"].append({
                "family": _FAMILIES[address["family"]],
                "local": str(address.get("IFA_LOCAL") or address.get("IFA_ADDRESS")),
                "prefixlen": int(address["prefixlen"]),
                "scope": _SCOPES.get(int(address["scope"]), str(address["scope"])),
            })  # fmt: skip
    for route in dump.routes:
        destination = route.get("RTA_DST")
        found: Json = {"dst": f"{destination}/{route['dst_len']}" if destination else "default"}
        if route.get("RTA_GATEWAY"):
            found["gateway"] = str(route.get("RTA_GATEWAY"))
        if route.get("RTA_OIF") in names:
            found["dev"] = names[int(route.get("RTA_OIF"))]
        (view.routes6 if route["family"] == socket.AF_INET6 else view.routes).append(found)
    view.routes6 = view.routes6 if ipv6 else []
    for qdisc in dump.qdiscs:
        if int(qdisc["parent"]) == TC_H_ROOT and int(qdisc["index"]) in names:
            options: Json = {}
            if qdisc.get("TCA_KIND") == "tbf":
                rate64 = qdisc.get_nested("TCA_OPTIONS", "TCA_TBF_RATE64")
                parameters = qdisc.get_nested("TCA_OPTIONS", "TCA_TBF_PARMS") or {}
                options["rate"] = int(rate64 or parameters.get("rate", 0))
            dev = names[int(qdisc["index"])]
            view.qdiscs[dev] = {"kind": str(qdisc.get("TCA_KIND")), "dev": dev, "options": options}
    return view


async def _routes6(runner: Runner, netns: str, wanted: bool, *args: str) -> list[Json]:
    if not wanted:
        return []
    found: list[Json] = await runner.json("ip", netns, "-6", "route", "show", *args)
    return found


async def list_ruleset(runner: Runner, netns: str) -> str | None:
    """A router's ruleset as the agent compares it (None: a table is missing or it could not
    be listed): the ACL tables whole, and of the load-balancing table its ``vips`` map only.
    Listing the slot maps of a thousand rules (a million elements) takes about 7 s, and it is
    taken after every in-place change; so their elements are not read back (only the agent
    changes them, in transactions that apply whole or not at all)."""
    try:
        parts = [await runner.nft(netns, command, stateless=True) for command in LISTED]
    except CommandError:
        return None
    return "".join(parts)


async def port(runner: Runner, router: str, veth: str, netns: str, ipv6: bool = False) -> Observed:
    """Only what one NIC touches: its namespace, and its veth in the router namespace (the
    link, its routes, its netconf, its permanent neighbours, its root qdisc) -- a few
    processes, whatever the host holds. ``ipv6``: read the IPv6 routes too."""
    commands = [
        f"addr show dev {veth}",
        f"route show dev {veth}",
        f"netconf show dev {veth}",
        f"neigh show dev {veth} nud permanent",
    ]
    router_side, qdiscs, routes6, nic = await asyncio.gather(
        _ip_quiet(runner, router, commands),
        _json_quiet(runner, "tc", router, "qdisc", "show", "dev", veth),
        _routes6_quiet(runner, router, ipv6, "dev", veth),
        _nic_quiet(runner, netns, ipv6),
    )
    view = NamespaceView()
    if router_side:
        # Listed by device, the qdiscs, routes and neighbours do not name it.
        _fill(view, router_side, [q | {"dev": veth} for q in qdiscs])
        view.routes6 = routes6 if ipv6 else []
        for entry in [*view.routes, *view.routes6, *view.neighbours]:
            entry.setdefault("dev", veth)
    names = {router} if nic is None else {router, netns}
    return Observed(names, {}, {router: view, netns: nic or NamespaceView()})


async def _nic_quiet(runner: Runner, netns: str, ipv6: bool) -> NamespaceView | None:
    try:
        return await _nic(runner, netns, ipv6)
    except CommandError:  # no such namespace (deleted behind the agent's back)
        return None


async def _ip_quiet(runner: Runner, netns: str, commands: list[str]) -> list[Any]:
    try:  # a device that is not there is an empty view, not an error
        return await runner.json_batch("ip", netns, commands, details=True)
    except CommandError:
        return []


async def _routes6_quiet(runner: Runner, netns: str, wanted: bool, *args: str) -> list[Json]:
    try:
        return await _routes6(runner, netns, wanted, *args)
    except CommandError:
        return []


async def _json_quiet(runner: Runner, tool: str, netns: str, *args: str) -> list[Json]:
    try:
        found: list[Json] = await runner.json(tool, netns, *args)
    except CommandError:
        return []
    return found
