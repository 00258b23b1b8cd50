"""A delta apply's changes (pure): the difference between the plan the kernel holds (the
agent's model) and the new one, without reading the host -- NICs built from nothing or from
what was read of them alone, neighbour and FDB entries changed by difference."""

from __future__ import annotations

from dataclasses import dataclass

from controller.agent.linux.changes import CONFIGURE, DELETE, FINISH, Changes
from controller.agent.linux.observe import NamespaceView, Observed
from controller.agent.linux.plan import HostPlan, Port
from controller.agent.linux.repair import (
    ENDPOINT_DEV,
    port_lines,
    router_port_lines,
    sysctl_lines,
)
from controller.agent.linux.runner import GLOBAL, Op


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
    if old is not None and old.ips6:  # and forwards IPv6 since that NIC had an IPv6 address
        router.netconf6 = {"all": {"forwarding": 1}}
    nic = NamespaceView()
    wired = False
    if observed is None:
        op = Op("netns-add", new.netns)
        changes.add(DELETE, "ip", GLOBAL, f"netns add {new.netns}", new.keys, op)
    else:
        router.links = observed.views[new.router].links
        router.routes = observed.views[new.router].routes
        router.netconf.update(observed.views[new.router].netconf)
        router.netconf6.update(observed.views[new.router].netconf6)
        router.routes6 = observed.views[new.router].routes6
        router.neighbours = observed.views[new.router].neighbours
        router.qdiscs = observed.views[new.router].qdiscs
        nic = observed.views.get(new.netns, NamespaceView())
        wired = router.kind(new.veth) == "veth" and nic.kind(ENDPOINT_DEV) == "veth"
        if new.netns not in observed.namespaces:
            op = Op("netns-add", new.netns)
            changes.add(DELETE, "ip", GLOBAL, f"netns add {new.netns}", new.keys, op)
    sysctl_lines(changes, router, new.router, new.keys, [new])
    router_port_lines(changes, router, new, wired)
    port_lines(changes, nic, new, wired)
    if old is not None and wired:
        for ip in sorted(set(old.ips) - set(new.ips)):
            host = f"{ip}/{128 if ':' in ip else 32}"
            op = Op("route-del", new.veth, (host, ""))
            changes.add(DELETE, "ip", new.router, f"route del {host} dev {new.veth}", (), op)
            if ":" in ip:
                op = Op("neigh-del", new.veth, (ip,))
                changes.add(DELETE, "ip", new.router, f"neigh del {ip} dev {new.veth}", (), op)
