"""Make the kernel match a ``HostPlan``: observe, compute the difference, apply only that.

What the agent owns and may delete: router namespaces named with its server id, NIC
namespaces it recorded creating, and inside its router namespaces the devices named by its
conventions (``br<vsid>``, ``vx<vsid>``, ``s<12 hex>``), their routes, permanent neighbours and
FDB entries. VXLAN devices are created in the host namespace (their UDP socket lives where
they are created, next to the provider address) and then moved into the router namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.agent.linux.changes import (
    CONFIGURE,
    DELETE,
    FINISH,
    HOST,
    Changes,
    Command,
    execute,
)
from controller.agent.linux.observe import LIST_RULESET, NamespaceView, Observed, observe
from controller.agent.linux.observe import port as observe_port
from controller.agent.linux.plan import HostPlan, Port, Segment, router_prefix
from controller.agent.linux.runner import GLOBAL, CommandError, Op, Runner
from controller.agent.session import Failure

VXLAN_PORT = 4789
ENDPOINT_DEV = "eth0"
OWN_VETH = re.compile(r"^s[0-9a-f]{12}$")
OWN_BRIDGE = re.compile(r"^br\d+$")
OWN_VXLAN = re.compile(r"^vx\d+$")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Result:
    changes: int
    described: list[str]
    failures: list[Failure]
    owned: set[str]  # NIC namespaces the agent owns after this reconcile


@dataclass
class Kernel:
    runner: Runner
    # Per router namespace: digest of the ruleset text loaded, digest of `nft -s list ruleset`
    # right after; both unchanged => the ruleset in the kernel is the one wanted.
    loaded: dict[str, tuple[str, str]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)  # changed in place, listing not recorded

    async def reconcile(
        self, plan: HostPlan, rulesets: Mapping[str, str], owned: set[str]
    ) -> Result:
        return await self.repair(plan, rulesets, owned, await self.observe(plan, owned))

    async def observe(self, plan: HostPlan, owned: set[str]) -> Observed:
        """Everything the plan or the agent's ownership may touch (the full scan)."""
        observed = await observe(self.runner, plan.routers, [*plan.ports, *owned])
        self.runner.keep_only(observed.namespaces | {self.runner.host_netns or ""})
        return observed

    async def repair(
        self, plan: HostPlan, rulesets: Mapping[str, str], owned: set[str], observed: Observed
    ) -> Result:
        """Change what ``observed`` shows differs from the plan."""
        changes = diff(plan, observed, owned, rulesets, self.loaded)
        outcome = await execute(self.runner, changes)
        for command in outcome.succeeded:
            if command.stdin is not None and command.netns is not None:
                await self._remember(command.netns, command.stdin)
        for router in list(self.loaded):
            if router not in plan.routers:
                del self.loaded[router]
        kept = {
            n for n in owned if n not in plan.ports and f"netns del {n}" in outcome.failed_lines
        }
        return Result(outcome.changes, changes.describe(), outcome.failures, kept | set(plan.ports))

    async def delta(
        self,
        old: HostPlan,
        new: HostPlan,
        scripts: Mapping[str, str],
        owned: set[str],
    ) -> Result | None:
        """Apply the difference between the plan the kernel holds (``old``, the model) and
        ``new`` without reading the whole host: new NICs are built from nothing, changed ones
        are observed alone, removed ones deleted, neighbour/FDB entries changed by difference
        and ``scripts`` (per router, one nft transaction of the elements and chains that
        changed) loaded. None: a structural change, for a full reconcile to apply."""
        if structural(old, new) or any(
            (p.router, p.veth) != (new.ports[n].router, new.ports[n].veth)
            for n, p in old.ports.items()
            if n in new.ports
        ):
            return None
        changes = Changes()
        for name in sorted(old.ports.keys() - new.ports.keys()):
            # The veth pair first: the kernel dismantles a deleted namespace in the
            # background, and its veth (with the /32 routes) must be gone when this returns.
            gone = old.ports[name]
            op = Op("del", gone.veth)
            changes.add(DELETE, "ip", gone.router, f"link del {gone.veth}", (), op)
            if name in owned:
                changes.add(HOST, "ip", GLOBAL, f"netns del {name}")
        changed = [p for n, p in sorted(new.ports.items()) if old.ports.get(n) != p]
        seen = await asyncio.gather(
            *(
                observe_port(self.runner, p.router, p.veth, p.netns)
                for p in changed
                if p.netns in old.ports
            )
        )
        views = iter(seen)
        for port in changed:
            before = old.ports.get(port.netns)
            port_changes(changes, before, port, next(views) if before is not None else None)
        entry_changes(changes, old, new)
        for router, script in sorted(scripts.items()):
            if script:
                argv = ["ip", "netns", "exec", router, "nft", "-f", "-"]
                summary = f"nft -f - ({script.count(chr(10))} changes to inet/bridge sdnc)"
                keys = tuple(sorted(new.keys_of_router.get(router, ())))
                changes.command(FINISH, Command(router, argv, keys, script, summary))
        outcome = await execute(self.runner, changes)
        for command in outcome.succeeded:
            if command.stdin is not None and command.netns is not None:
                # Changed in place: until ``record`` lists it, a full reconcile would
                # reload it (which resets the counters), having nothing to compare with.
                self.loaded[command.netns] = ("", "")
                self.pending.add(command.netns)
        removed = old.ports.keys() - new.ports.keys()
        kept = {n for n in owned if n not in new.ports and n not in removed}
        kept |= {n for n in removed & owned if f"netns del {n}" in outcome.failed_lines}
        return Result(outcome.changes, changes.describe(), outcome.failures, kept | set(new.ports))

    async def record(self, texts: Mapping[str, str]) -> None:
        """List the rulesets changed in place, as after loading them whole: a later full
        reconcile compares the kernel's listing with that one (``texts``: each router's
        whole ruleset, as ``render`` makes it)."""
        for router in sorted(self.pending):
            if router in texts:
                await self._remember(router, texts[router])
        self.pending.clear()

    async def _remember(self, router: str, text: str) -> None:
        try:
            _, listed, _ = await self.runner.run(self.runner.inside(router, LIST_RULESET))
        except CommandError:
            return
        self.loaded[router] = (digest(text), digest(listed))


def diff(
    plan: HostPlan,
    observed: Observed,
    owned: set[str],
    rulesets: Mapping[str, str],
    loaded: Mapping[str, tuple[str, str]],
) -> Changes:
    changes = Changes()
    _namespaces(changes, plan, observed, owned)
    for router in sorted(plan.routers):
        view = observed.views.get(router, NamespaceView())
        keys = tuple(sorted(plan.keys_of_router.get(router, ())))
        segments = [s for s in plan.segments.values() if s.router == router]
        ports = [p for p in plan.ports.values() if p.router == router]
        _sysctls(changes, view, router, keys, ports)
        for segment in segments:
            _segment(changes, plan, observed, view, segment, keys)
        _stale_links(changes, view, router, segments, ports)
        _remotes(changes, plan, view, router, segments, ports)
        text = rulesets.get(router)
        if text is not None:
            listed = digest(view.ruleset) if view.ruleset is not None else ""
            if loaded.get(router) != (digest(text), listed):
                argv = ["ip", "netns", "exec", router, "nft", "-f", "-"]
                summary = "nft -f - (ruleset inet/bridge sdnc)"
                changes.command(FINISH, Command(router, argv, keys, text, summary))
        for port in ports:
            _router_port(changes, view, port, _wired(observed, port))
    for port in plan.ports.values():
        wired = _wired(observed, port)
        _port(changes, observed.views.get(port.netns, NamespaceView()), port, wired)
    return changes


def _namespaces(changes: Changes, plan: HostPlan, observed: Observed, owned: set[str]) -> None:
    prefix = router_prefix(plan.server)
    for name in sorted(observed.namespaces):
        stale_nic = name in owned and name not in plan.ports
        stale_router = name.startswith(prefix) and name not in plan.routers
        if stale_nic or stale_router:
            # After DELETE: the router-side veth goes first, not behind the namespace's back.
            changes.add(HOST, "ip", GLOBAL, f"netns del {name}")
    for name in sorted({*plan.routers, *plan.ports} - observed.namespaces):
        keys = plan.ports[name].keys if name in plan.ports else ()
        changes.add(DELETE, "ip", GLOBAL, f"netns add {name}", keys)


def _sysctls(
    changes: Changes, view: NamespaceView, router: str, keys: tuple[str, ...], ports: list[Port]
) -> None:
    settings = [] if view.forwarding() else ["net.ipv4.ip_forward=1"]
    for port in ports:
        if not view.proxy_arp(port.veth):
            # Proxy ARP answers the endpoint for its gateway and its subnet; answer at once
            # (the default waits up to 0.8 s at random).
            settings += [
                f"net.ipv4.conf.{port.veth}.proxy_arp=1",
                f"net.ipv4.neigh.{port.veth}.proxy_delay=0",
            ]
    if settings:
        argv = ["ip", "netns", "exec", router, "sysctl", "-q", "-w", *settings]
        summary = "sysctl -w " + " ".join(settings)
        pairs = tuple((name, value) for name, _, value in (s.partition("=") for s in settings))
        changes.command(CONFIGURE, Command(router, argv, keys, None, summary, pairs))


def _segment(
    changes: Changes,
    plan: HostPlan,
    observed: Observed,
    view: NamespaceView,
    segment: Segment,
    keys: tuple[str, ...],
) -> None:
    router, bridge, vxlan = segment.router, segment.bridge, segment.vxlan
    if view.kind(bridge) not in (None, "bridge"):
        changes.add(DELETE, "ip", router, f"link del {bridge}")
    if view.kind(bridge) != "bridge":
        changes.add(CONFIGURE, "ip", router, f"link add {bridge} type bridge", keys)
        view = NamespaceView()  # everything about it is new
    for address in sorted(view.ipv4(bridge) - {segment.gateway}):
        changes.add(CONFIGURE, "ip", router, f"addr del {address} dev {bridge}")
    if segment.gateway not in view.ipv4(bridge):
        changes.add(CONFIGURE, "ip", router, f"addr add {segment.gateway} dev {bridge}", keys)
    if not view.up(bridge):
        changes.add(CONFIGURE, "ip", router, f"link set {bridge} up", keys)
    wanted: dict[str, object] = {"id": segment.vsid, "port": VXLAN_PORT, "learning": False}
    if plan.provider_address:
        wanted["local"] = plan.provider_address

    def matches(info: Mapping[str, object]) -> bool:
        return all(info.get(k) == v for k, v in wanted.items()) and (
            "local" in wanted or "local" not in info
        )

    fresh = view.kind(vxlan) != "vxlan" or not matches(view.info(vxlan))
    if fresh:
        if view.kind(vxlan) is not None:
            changes.add(DELETE, "ip", router, f"link del {vxlan}")
        stray = observed.host_links.get(vxlan)
        if stray is not None and not matches(stray.get("linkinfo", {}).get("info_data", {})):
            changes.add(HOST, "ip", None, f"link del {vxlan}")
        if stray is None or not matches(stray.get("linkinfo", {}).get("info_data", {})):
            local = f" local {plan.provider_address}" if plan.provider_address else ""
            create = f"link add {vxlan} type vxlan id {segment.vsid}{local} dstport {VXLAN_PORT}"
            changes.add(HOST, "ip", None, f"{create} nolearning", keys)
        changes.add(HOST, "ip", None, f"link set {vxlan} netns {router}", keys)
    link = {} if fresh else view.links.get(vxlan, {})
    if link.get("master") != bridge:
        changes.add(CONFIGURE, "ip", router, f"link set {vxlan} master {bridge}", keys)
    if "UP" not in link.get("flags", ()):
        changes.add(CONFIGURE, "ip", router, f"link set {vxlan} up", keys)


def _stale_links(
    changes: Changes,
    view: NamespaceView,
    router: str,
    segments: list[Segment],
    ports: list[Port],
) -> None:
    wanted = {s.bridge for s in segments} | {s.vxlan for s in segments} | {p.veth for p in ports}
    for name in sorted(view.links):
        kind = view.kind(name)
        ours = (
            (kind == "veth" and OWN_VETH.match(name))
            or (kind == "bridge" and OWN_BRIDGE.match(name))
            or (kind == "vxlan" and OWN_VXLAN.match(name))
        )
        if ours and name not in wanted:
            changes.add(DELETE, "ip", router, f"link del {name}")
    ips = {(p.veth, ip) for p in ports for ip in p.ips}
    for route in view.routes:
        dev, dst = str(route.get("dev", "")), str(route.get("dst", ""))
        if dev in wanted and OWN_VETH.match(dev) and (dev, dst.removesuffix("/32")) not in ips:
            changes.add(DELETE, "ip", router, f"route del {dst} dev {dev}")


def _remotes(
    changes: Changes,
    plan: HostPlan,
    view: NamespaceView,
    router: str,
    segments: list[Segment],
    ports: list[Port],
) -> None:
    bridges = {s.bridge: s for s in segments}
    neighbours: dict[tuple[str, str], tuple[str, str]] = {}
    static: dict[tuple[str, str], str] = {}  # (vxlan, mac) -> bridge
    tunnels: dict[tuple[str, str], tuple[str, str]] = {}  # (vxlan, mac) -> (underlay, key)
    local = {(f"br{v}", p.mac): p.keys for p in ports for v in p.vsids}
    for remote in plan.remotes.values():
        if remote.router != router:
            continue
        bridge, vxlan = f"br{remote.vsid}", f"vx{remote.vsid}"
        neighbours[(bridge, remote.ip)] = (remote.mac, remote.key)
        static[(vxlan, remote.mac)] = bridge
        tunnels.setdefault((vxlan, remote.mac), (remote.underlay, remote.key))
    seen: set[tuple[str, ...]] = set()
    for entry in view.neighbours:
        dev, ip, mac = str(entry.get("dev")), str(entry.get("dst")), entry.get("lladdr")
        if dev not in bridges or "PERMANENT" not in entry.get("state", ()):
            continue
        if neighbours.get((dev, ip), ("",))[0] == mac:
            seen.add(("neigh", dev, ip))
        elif (dev, ip) not in neighbours:
            changes.add(DELETE, "ip", router, f"neigh del {ip} dev {dev}")
    for (dev, ip), (mac, key) in sorted(neighbours.items()):
        if ("neigh", dev, ip) not in seen:
            line = f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent"
            changes.add(CONFIGURE, "ip", router, line, (key,))
    own_macs = {str(view.links.get(b, {}).get("address")) for b in bridges}
    for entry in view.fdb:
        dev, mac, master = str(entry.get("ifname")), str(entry.get("mac")), entry.get("master")
        flags, state, dst = entry.get("flags", ()), entry.get("state"), entry.get("dst")
        if dev in bridges and master == dev and state == "permanent" and mac not in own_macs:
            if (dev, mac) in local:
                seen.add(("local", dev, mac))
            else:
                changes.add(FINISH, "bridge", router, f"fdb del {mac} dev {dev} self local")
        elif dev.startswith("vx") and f"br{dev[2:]}" in bridges:
            if master and state == "static":
                if static.get((dev, mac)) == master:
                    seen.add(("static", dev, mac))
                else:
                    changes.add(FINISH, "bridge", router, f"fdb del {mac} dev {dev} master")
            elif "self" in flags and dst is not None:
                if tunnels.get((dev, mac), ("",))[0] == dst:
                    seen.add(("tunnel", dev, mac))
                else:
                    changes.add(FINISH, "bridge", router, f"fdb del {mac} dev {dev} self dst {dst}")
    for (dev, mac), keys in sorted(local.items()):
        if ("local", dev, mac) not in seen:
            changes.add(FINISH, "bridge", router, f"fdb replace {mac} dev {dev} self local", keys)
    for dev, mac in sorted(static):
        if ("static", dev, mac) not in seen:
            key = tunnels[(dev, mac)][1]
            line = f"fdb replace {mac} dev {dev} master static"
            changes.add(FINISH, "bridge", router, line, (key,))
    for (dev, mac), (underlay, key) in sorted(tunnels.items()):
        if ("tunnel", dev, mac) not in seen:
            line = f"fdb append {mac} dev {dev} self dst {underlay} permanent"
            changes.add(FINISH, "bridge", router, line, (key,))


def _wired(observed: Observed, port: Port) -> bool:
    router = observed.views.get(port.router, NamespaceView())
    nic = observed.views.get(port.netns, NamespaceView())
    return router.kind(port.veth) == "veth" and nic.kind(ENDPOINT_DEV) == "veth"


def _router_port(changes: Changes, view: NamespaceView, port: Port, wired: bool) -> None:
    """The router side of a NIC: a routed port (proxy ARP, a /32 per address), inbound cap."""
    router, veth, keys = port.router, port.veth, port.keys
    if not wired:
        if view.kind(veth) is not None:  # a half left over
            changes.add(DELETE, "ip", router, f"link del {veth}")
        view = NamespaceView()
    if not view.up(veth):
        changes.add(CONFIGURE, "ip", router, f"link set {veth} up", keys, Op("up", veth))
    routes = {(str(r.get("dst")), r.get("dev")) for r in view.routes}
    for ip in port.ips:
        if (ip, veth) not in routes:
            op = Op("route-replace", veth, (f"{ip}/32", ""))
            changes.add(CONFIGURE, "ip", router, f"route replace {ip}/32 dev {veth}", keys, op)
    _qdisc(changes, view, router, veth, port.inbound_mbps, keys)


def _port(changes: Changes, nic: NamespaceView, port: Port, wired: bool) -> None:
    """The NIC's namespace: eth0 with the NIC's MAC and addresses, default route, outbound cap."""
    router, netns, veth, keys = port.router, port.netns, port.veth, port.keys
    if not wired:
        if nic.kind(ENDPOINT_DEV) is not None:
            changes.add(DELETE, "ip", netns, f"link del {ENDPOINT_DEV}")
        line = f"link add {veth} netns {router} type veth peer name {ENDPOINT_DEV} netns {netns}"
        changes.add(HOST, "ip", None, line, keys, Op("veth", veth, (router, ENDPOINT_DEV, netns)))
        nic = NamespaceView()
    if not nic.up("lo"):
        changes.add(CONFIGURE, "ip", netns, "link set lo up", keys, Op("up", "lo"))
    if nic.links.get(ENDPOINT_DEV, {}).get("address") != port.mac:
        line = f"link set {ENDPOINT_DEV} address {port.mac}"
        changes.add(CONFIGURE, "ip", netns, line, keys, Op("mac", ENDPOINT_DEV, (port.mac,)))
    present = nic.ipv4(ENDPOINT_DEV)
    for address in sorted(present - set(port.addresses)):
        line, op = (
            f"addr del {address} dev {ENDPOINT_DEV}",
            Op("addr-del", ENDPOINT_DEV, (address,)),
        )
        changes.add(CONFIGURE, "ip", netns, line, (), op)
    for address in port.addresses:
        if address not in present:
            line = f"addr add {address} dev {ENDPOINT_DEV}"
            changes.add(
                CONFIGURE, "ip", netns, line, keys, Op("addr-add", ENDPOINT_DEV, (address,))
            )
    if not nic.up(ENDPOINT_DEV):
        changes.add(
            CONFIGURE, "ip", netns, f"link set {ENDPOINT_DEV} up", keys, Op("up", ENDPOINT_DEV)
        )
    default = [r for r in nic.routes if r.get("dst") == "default"]
    # Deleting an address takes the routes through its subnet along, the default among them.
    readdressed = bool(present - set(port.addresses))
    if readdressed or [(r.get("gateway"), r.get("dev")) for r in default] != [
        (port.gateway, ENDPOINT_DEV)
    ]:
        line = f"route replace default via {port.gateway} dev {ENDPOINT_DEV} onlink"
        op = Op("route-replace", ENDPOINT_DEV, ("0.0.0.0/0", port.gateway))
        changes.add(CONFIGURE, "ip", netns, line, keys, op)
    _qdisc(changes, nic, netns, ENDPOINT_DEV, port.outbound_mbps, keys)


def _qdisc(
    changes: Changes,
    view: NamespaceView,
    netns: str,
    dev: str,
    mbps: int | None,
    keys: tuple[str, ...],
) -> None:
    """A token bucket as the device's root qdisc when capped; the default qdisc otherwise."""
    current = view.qdiscs.get(dev, {})
    capped = current.get("kind") == "tbf"
    if mbps is None:
        if capped:
            changes.add(FINISH, "tc", netns, f"qdisc del dev {dev} root")
        return
    rate = mbps * 125_000  # bytes per second, as tc reports it
    if capped and current.get("options", {}).get("rate") == rate:
        return
    burst = max(32 * 1024, rate // 50)  # 20 ms at full rate
    line = f"qdisc replace dev {dev} root tbf rate {mbps}mbit burst {burst} latency 50ms"
    changes.add(FINISH, "tc", netns, line, keys)


# ---------------------------------------------------------------- delta applies


def structural(old: HostPlan, new: HostPlan) -> bool:
    """A change of the host's skeleton (server, provider address, virtual networks, VSIDs):
    rare, and applied by a full reconcile rather than in place."""
    return (
        old.server != new.server
        or old.provider_address != new.provider_address
        or old.routers != new.routers
        or old.segments != new.segments
    )


Entry = tuple[str, str, str]  # (router, device, address or MAC)


@dataclass(frozen=True)
class _Entries:
    """The neighbour and FDB entries a plan puts in its router namespaces, and their objects."""

    local: dict[Entry, tuple[str, ...]]  # (router, br<vsid>, mac): bridge fdb self local
    neighbours: dict[Entry, tuple[str, str]]  # (router, br<vsid>, ip) -> (mac, key)
    static: dict[Entry, tuple[str, str]]  # (router, vx<vsid>, mac) -> (bridge, key)
    tunnels: dict[Entry, tuple[str, str]]  # (router, vx<vsid>, mac) -> (underlay, key)


_recent: list[tuple[HostPlan, _Entries]] = []  # the model's entries are the last apply's


def _entries(plan: HostPlan) -> _Entries:
    for known, entries in _recent:
        if known is plan:  # the same plan, not an equal one: plans are not changed in place
            return entries
    found = _Entries({}, {}, {}, {})
    for port in plan.ports.values():
        for vsid in port.vsids:
            found.local[(port.router, f"br{vsid}", port.mac)] = port.keys
    for remote in sorted(plan.remotes.values(), key=lambda r: r.key):
        bridge, vxlan = f"br{remote.vsid}", f"vx{remote.vsid}"
        found.neighbours[(remote.router, bridge, remote.ip)] = (remote.mac, remote.key)
        found.static[(remote.router, vxlan, remote.mac)] = (bridge, remote.key)
        found.tunnels.setdefault((remote.router, vxlan, remote.mac), (remote.underlay, remote.key))
    _recent[:] = [*_recent[-1:], (plan, found)]
    return found


def entry_changes(changes: Changes, old: HostPlan, new: HostPlan) -> None:
    """The neighbour and FDB lines turning ``old``'s entries into ``new``'s (pure)."""
    before, after = _entries(old), _entries(new)
    for (router, dev, mac), keys in sorted(after.local.items()):
        if (router, dev, mac) not in before.local:
            line, op = f"fdb replace {mac} dev {dev} self local", Op("fdb-local", dev, (mac,))
            changes.add(FINISH, "bridge", router, line, keys, op)
    for router, dev, mac in sorted(before.local.keys() - after.local.keys()):
        line, op = f"fdb del {mac} dev {dev} self local", Op("fdb-local-del", dev, (mac,))
        changes.add(FINISH, "bridge", router, line, (), op)
    for (router, dev, ip), (mac, key) in sorted(after.neighbours.items()):
        if before.neighbours.get((router, dev, ip), ("",))[0] != mac:
            line = f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent"
            op = Op("neigh-replace", dev, (ip, mac))
            changes.add(CONFIGURE, "ip", router, line, (key,), op)
    for router, dev, ip in sorted(before.neighbours.keys() - after.neighbours.keys()):
        op = Op("neigh-del", dev, (ip,))
        changes.add(DELETE, "ip", router, f"neigh del {ip} dev {dev}", (), op)
    for (router, dev, mac), (bridge, key) in sorted(after.static.items()):
        if before.static.get((router, dev, mac), ("",))[0] != bridge:
            line = f"fdb replace {mac} dev {dev} master static"
            changes.add(FINISH, "bridge", router, line, (key,))
    for router, dev, mac in sorted(before.static.keys() - after.static.keys()):
        changes.add(FINISH, "bridge", router, f"fdb del {mac} dev {dev} master")
    for (router, dev, mac), (underlay, _) in sorted(before.tunnels.items()):
        if after.tunnels.get((router, dev, mac), ("",))[0] != underlay:
            line = f"fdb del {mac} dev {dev} self dst {underlay}"
            changes.add(DELETE, "bridge", router, line)
    for (router, dev, mac), (underlay, key) in sorted(after.tunnels.items()):
        if before.tunnels.get((router, dev, mac), ("",))[0] != underlay:
            line = f"fdb append {mac} dev {dev} self dst {underlay} permanent"
            changes.add(FINISH, "bridge", router, line, (key,))


def port_changes(changes: Changes, old: Port | None, new: Port, observed: Observed | None) -> None:
    """The lines making one NIC right: from nothing when it is new (``observed`` None: the
    model says nothing of it is in the kernel), else from what was observed of it."""
    router = NamespaceView(netconf={"all": {"forwarding": 1}})  # the router is already up
    nic = NamespaceView()
    wired = False
    if observed is None:
        op = Op("netns-add", new.netns)
        changes.add(DELETE, "ip", GLOBAL, f"netns add {new.netns}", new.keys, op)
    else:
        router.links = observed.views[new.router].links
        router.routes = observed.views[new.router].routes
        router.netconf.update(observed.views[new.router].netconf)
        router.qdiscs = observed.views[new.router].qdiscs
        nic = observed.views.get(new.netns, NamespaceView())
        wired = router.kind(new.veth) == "veth" and nic.kind(ENDPOINT_DEV) == "veth"
        if new.netns not in observed.namespaces:
            op = Op("netns-add", new.netns)
            changes.add(DELETE, "ip", GLOBAL, f"netns add {new.netns}", new.keys, op)
    _sysctls(changes, router, new.router, new.keys, [new])
    _router_port(changes, router, new, wired)
    _port(changes, nic, new, wired)
    if old is not None and wired:
        for ip in sorted(set(old.ips) - set(new.ips)):
            op = Op("route-del", new.veth, (f"{ip}/32", ""))
            changes.add(DELETE, "ip", new.router, f"route del {ip}/32 dev {new.veth}", (), op)
