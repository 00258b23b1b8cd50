"""The difference between a ``HostPlan`` and what was observed of the kernel (pure): the
changes of the full observe-and-repair, and the pieces a delta apply reuses for one NIC.

What the agent owns and may delete: router namespaces named with its server id, NIC
namespaces it recorded creating, and inside its router namespaces the devices named by its
conventions (``br<vsid>``, ``vx<vsid>``, ``s<12 hex>``), their routes, permanent neighbours and
FDB entries. VXLAN devices are created in the host namespace (their UDP socket lives where
they are created, next to the provider address) and then moved into the router namespace.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence

from controller.agent.linux.changes import CONFIGURE, DELETE, FINISH, HOST, Changes, Command
from controller.agent.linux.egress import (
    egress_lines,
    unfiltered_settings,
)
from controller.agent.linux.observe import NamespaceView, Observed
from controller.agent.linux.plan import HostPlan, Port, Segment, router_prefix
from controller.agent.linux.routes import Routing, observed_routing, routing_lines
from controller.agent.linux.runner import GLOBAL, Op

VXLAN_PORT = 4789
ENDPOINT_DEV = "eth0"
OWN_VETH = re.compile(r"^s[0-9a-f]{12}$")
OWN_BRIDGE = re.compile(r"^br\d+$")
OWN_VXLAN = re.compile(r"^vx\d+$")
PORTS_PER_STEP = 64  # NICs compared between two pauses of a full scan's difference (~2 ms)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def diff(
    plan: HostPlan,
    observed: Observed,
    owned: set[str],
    rulesets: Mapping[str, str],
    loaded: Mapping[str, tuple[str, str]],
) -> Changes:
    changes = Changes()
    for _ in diff_steps(changes, plan, observed, owned, rulesets, loaded):
        pass
    return changes


def diff_steps(
    changes: Changes,
    plan: HostPlan,
    observed: Observed,
    owned: set[str],
    rulesets: Mapping[str, str],
    loaded: Mapping[str, tuple[str, str]],
) -> Iterator[None]:
    """``diff`` into ``changes``, pausing (a ``None``) after each router namespace and every
    ``PORTS_PER_STEP`` NICs: a caller on an event loop lets applies run at each pause."""
    _namespaces(changes, plan, observed, owned)
    for router in sorted(plan.routers):
        view = observed.views.get(router, NamespaceView())
        keys = tuple(sorted(plan.keys_of_router.get(router, ())))
        segments = [s for s in plan.segments.values() if s.router == router]
        ports = [p for p in plan.ports.values() if p.router == router]
        sysctl_lines(changes, view, router, keys, ports, [s.bridge for s in segments])
        for segment in segments:
            _segment(changes, plan, observed, view, segment, keys)
        egress_lines(changes, view, observed.host_links, router, keys)
        _stale_links(changes, view, router, segments, ports)
        _remotes(changes, plan, view, router, segments, ports)
        have = observed_routing(view.rules, view.table_routes)
        routing_lines(changes, router, have, plan.routing.get(router, Routing()))
        text = rulesets.get(router)
        if text is not None:
            listed = digest(view.ruleset) if view.ruleset is not None else ""
            if loaded.get(router) != (digest(text), listed):
                argv = ["ip", "netns", "exec", router, "nft", "-f", "-"]
                summary = "nft -f - (ruleset inet/bridge sdnc)"
                changes.command(FINISH, Command(router, argv, keys, text, summary, nft=True))
        for number, port in enumerate(ports, start=1):
            router_port_lines(changes, view, port, _wired(observed, port))
            if number % PORTS_PER_STEP == 0:
                yield
        yield
    for number, port in enumerate(plan.ports.values(), start=1):
        wired = _wired(observed, port)
        port_lines(changes, observed.views.get(port.netns, NamespaceView()), port, wired)
        if number % PORTS_PER_STEP == 0:
            yield


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


def sysctl_lines(
    changes: Changes,
    view: NamespaceView,
    router: str,
    keys: tuple[str, ...],
    ports: list[Port],
    bridges: Sequence[str] = (),
) -> None:
    settings = [] if view.forwarding() else ["net.ipv4.ip_forward=1"]
    # Reverse-path filtering off (the ACL table drops what a port sends from an address not
    # its own): an appliance's port forwards for others, and has no address (filtering
    # would drop all of it, loose or strict); what a mux brings in over VXLAN comes from
    # clients reached through ``egress``. All and default first (devices made later copy
    # the default), the existing devices after.
    unfiltered = unfiltered_settings(view, ["all", "default"])
    if unfiltered:
        changes.command(HOST, _sysctl(router, unfiltered, keys))
    present = [bridge for bridge in bridges if bridge in view.netconf]
    settings += unfiltered_settings(view, [*present, *(port.veth for port in ports)])
    if any(port.ips6 for port in ports) and not view.forwarding6():
        settings.append("net.ipv6.conf.all.forwarding=1")
    for port in ports:
        if not view.proxy_arp(port.veth):
            # Proxy ARP answers the endpoint for its gateway and its subnet; answer at once
            # (the default waits up to 0.8 s at random).
            settings += [
                f"net.ipv4.conf.{port.veth}.proxy_arp=1",
                f"net.ipv4.neigh.{port.veth}.proxy_delay=0",
            ]
    if settings:
        changes.command(CONFIGURE, _sysctl(router, settings, keys))


def _sysctl(router: str, settings: list[str], keys: tuple[str, ...]) -> Command:
    argv = ["ip", "netns", "exec", router, "sysctl", "-q", "-w", *settings]
    pairs = tuple((name, value) for name, _, value in (s.partition("=") for s in settings))
    return Command(router, argv, keys, None, "sysctl -w " + " ".join(settings), pairs)


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
    for address in sorted(view.addresses(bridge) - {segment.gateway}):
        changes.add(CONFIGURE, "ip", router, f"addr del {address} dev {bridge}")
    if segment.gateway not in view.addresses(bridge):
        line = f"addr add {segment.gateway} dev {bridge}{_nodad(segment.gateway)}"
        changes.add(CONFIGURE, "ip", router, line, keys)
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
    for route in view.routes6:  # host routes only: the kernel's fe80::/64 stays
        dev, dst = str(route.get("dev", "")), str(route.get("dst", ""))
        host = dst.removesuffix("/128")
        if dev in wanted and OWN_VETH.match(dev) and "/" not in host and (dev, host) not in ips:
            changes.add(DELETE, "ip", router, f"route del {host}/128 dev {dev}")
    neighbours = {(p.veth, ip, p.mac) for p in ports for ip in p.ips6}
    for entry in view.neighbours:
        dev, ip, mac = str(entry.get("dev", "")), str(entry.get("dst", "")), entry.get("lladdr")
        if dev in wanted and OWN_VETH.match(dev) and (dev, ip, mac) not in neighbours:
            changes.add(DELETE, "ip", router, f"neigh del {ip} dev {dev}")


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


def router_port_lines(changes: Changes, view: NamespaceView, port: Port, wired: bool) -> None:
    """The router side of a NIC: a routed port (proxy ARP, a /32 per IPv4 address; the IPv6
    gateway's address, a /128 and a permanent neighbour per IPv6 address), inbound cap."""
    router, veth, keys = port.router, port.veth, port.keys
    if not wired:
        if view.kind(veth) is not None:  # a half left over
            changes.add(DELETE, "ip", router, f"link del {veth}")
        view = NamespaceView()
    if not view.up(veth):
        changes.add(CONFIGURE, "ip", router, f"link set {veth} up", keys, Op("up", veth))
    for ip in port.ips:
        if not view.routed(ip, veth):
            host = f"{ip}/{128 if ':' in ip else 32}"
            op = Op("route-replace", veth, (host, ""))
            changes.add(CONFIGURE, "ip", router, f"route replace {host} dev {veth}", keys, op)
    _gateway6(changes, view, port)
    for ip in port.ips6:
        # The router never asks the endpoint (NDP would need a link-local address on the
        # veth, usable only once its duplicate address detection is over).
        if not view.neighboured(ip, veth, port.mac):
            line = f"neigh replace {ip} lladdr {port.mac} dev {veth} nud permanent"
            op = Op("neigh-replace", veth, (ip, port.mac))
            changes.add(CONFIGURE, "ip", router, line, keys, op)
    _qdisc(changes, view, router, veth, port.inbound_mbps, keys)


# IPv6 addresses the agent adds need no duplicate address detection (the controller hands
# each out once), which would leave them unusable for a second or more: ``nodad``. An
# endpoint's or the veth's IPv6 address also makes no route to its subnet through the device
# (``noprefixroute``), so every packet goes to the gateway (the router namespace), as proxy
# ARP makes IPv4 go.
ROUTED = ("nodad", "noprefixroute")


def _nodad(address: str) -> str:
    return " nodad" if ":" in address else ""


def _gateway6(changes: Changes, view: NamespaceView, port: Port) -> None:
    """The gateway's IPv6 address on the veth answers the endpoint's neighbour solicitations
    for it (what proxy ARP does for IPv4; proxy NDP would need an entry per address)."""
    address = f"{port.gateway6}/128" if port.gateway6 else ""
    for stale in sorted(view.addresses(port.veth) - {address}):
        line = f"addr del {stale} dev {port.veth}"
        op = Op("addr-del", port.veth, (stale,))
        changes.add(CONFIGURE, "ip", port.router, line, (), op)
    if address and address not in view.addresses(port.veth):
        line = f"addr add {address} dev {port.veth} {' '.join(ROUTED)}"
        op = Op("addr-add", port.veth, (address, *ROUTED))
        changes.add(CONFIGURE, "ip", port.router, line, port.keys, op)


def port_lines(changes: Changes, nic: NamespaceView, port: Port, wired: bool) -> None:
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
    present = nic.addresses(ENDPOINT_DEV)
    for address in sorted(present - set(port.addresses)):
        line, op = (
            f"addr del {address} dev {ENDPOINT_DEV}",
            Op("addr-del", ENDPOINT_DEV, (address,)),
        )
        changes.add(CONFIGURE, "ip", netns, line, (), op)
    for address in port.addresses:
        if address not in present:
            flags = ROUTED if ":" in address else ()
            line = " ".join([f"addr add {address} dev {ENDPOINT_DEV}", *flags])
            op = Op("addr-add", ENDPOINT_DEV, (address, *flags))
            changes.add(CONFIGURE, "ip", netns, line, keys, op)
    if not nic.up(ENDPOINT_DEV):
        changes.add(
            CONFIGURE, "ip", netns, f"link set {ENDPOINT_DEV} up", keys, Op("up", ENDPOINT_DEV)
        )
    # Deleting an address takes the routes through its subnet along, the default among them.
    readdressed = bool(present - set(port.addresses))
    for gateway, routes, everything in (
        (port.gateway, nic.routes, "0.0.0.0/0"),
        (port.gateway6, nic.routes6, "::/0"),
    ):
        default = [(r.get("gateway"), r.get("dev")) for r in routes if r.get("dst") == "default"]
        if gateway and (readdressed or default != [(gateway, ENDPOINT_DEV)]):
            line = f"route replace default via {gateway} dev {ENDPOINT_DEV} onlink"
            op = Op("route-replace", ENDPOINT_DEV, (everything, gateway))
            changes.add(CONFIGURE, "ip", netns, line, keys, op)
    # No IPv6 address any more: its default route (which outlives the address) goes too.
    dropped6 = any(":" in a for a in present - set(port.addresses))
    if not port.gateway6 and (dropped6 or any(r.get("dst") == "default" for r in nic.routes6)):
        op = Op("route-del", ENDPOINT_DEV, ("::/0", ""))
        changes.add(CONFIGURE, "ip", netns, f"route del ::/0 dev {ENDPOINT_DEV}", (), op)
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
