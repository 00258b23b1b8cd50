"""A delta apply's changes (pure): the difference between the plan the kernel holds (the
agent's model) and the new one, without reading the host -- NICs built from nothing or from
what was read of them alone, neighbour and FDB entries changed by difference."""

from __future__ import annotations

from dataclasses import dataclass

from controller.agent.linux.changes import CONFIGURE, DELETE, FINISH, Changes
from controller.agent.linux.observe import NamespaceView, Observed
from controller.agent.linux.plan import HostPlan, Port, Remote
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
        _add_port(found, port)
    for remote in sorted(plan.remotes.values(), key=lambda r: r.key):
        _add_remote(found, remote)
    _remember(plan, found)
    return found


def _remember(plan: HostPlan, found: _Entries) -> None:
    _recent[:] = [*_recent[-1:], (plan, found)]


def _add_port(found: _Entries, port: Port) -> None:
    for vsid in port.vsids:
        found.local[(port.router, f"br{vsid}", port.mac)] = port.keys


def _add_remote(found: _Entries, remote: Remote) -> None:
    bridge, vxlan = f"br{remote.vsid}", f"vx{remote.vsid}"
    found.neighbours[(remote.router, bridge, remote.ip)] = (remote.mac, remote.key)
    found.static[(remote.router, vxlan, remote.mac)] = (bridge, remote.key)
    found.tunnels.setdefault((remote.router, vxlan, remote.mac), (remote.underlay, remote.key))


def _port_entries(port: Port) -> list[Entry]:
    return [(port.router, f"br{vsid}", port.mac) for vsid in port.vsids]


def _remote_entries(remote: Remote) -> tuple[Entry, Entry]:
    """Its neighbour entry, and its static and tunnel FDB entry (one key for both)."""
    return (
        (remote.router, f"br{remote.vsid}", remote.ip),
        (remote.router, f"vx{remote.vsid}", remote.mac),
    )


def _derived(old: HostPlan, new: HostPlan) -> tuple[_Entries, _Entries] | None:
    """``new``'s entries from ``old``'s when ``new`` was re-planned from it (the NICs and
    mappings not re-planned are the same objects), and only the entries that may differ;
    None when two objects share an entry (the full computation orders those)."""
    before = _entries(old)
    if old.ports == new.ports and old.remotes == new.remotes:  # an ACL change, say
        _remember(new, before)  # never changed in place: what changes is a copy (below)
        return before, _Entries({}, {}, {}, {})
    after = _Entries(dict(before.local), dict(before.neighbours), dict(before.static),
                     dict(before.tunnels))  # fmt: skip
    touched = _Entries({}, {}, {}, {})
    for name in old.ports.keys() | new.ports.keys():
        was, now = old.ports.get(name), new.ports.get(name)
        if was is now:
            continue
        for entry in _port_entries(was) if was is not None else ():
            if was is None or after.local.pop(entry, None) != was.keys:
                return None
            touched.local[entry] = ()
        for entry in _port_entries(now) if now is not None else ():
            if now is None or entry in after.local:
                return None
            after.local[entry] = touched.local[entry] = now.keys
    for key in sorted(old.remotes.keys() | new.remotes.keys()):
        gone, came = old.remotes.get(key), new.remotes.get(key)
        if gone is came:
            continue
        if gone is not None:
            neighbour, fdb = _remote_entries(gone)
            held = (after.neighbours.pop(neighbour, ("", "")), after.static.pop(fdb, ("", "")),
                    after.tunnels.pop(fdb, ("", "")))  # fmt: skip
            if any(holder != gone.key for _, holder in held):
                return None
            touched.neighbours[neighbour] = touched.static[fdb] = ("", "")
        if came is not None:
            neighbour, fdb = _remote_entries(came)
            if neighbour in after.neighbours or fdb in after.static:
                return None
            _add_remote(after, came)
            touched.neighbours[neighbour] = touched.static[fdb] = ("", "")
    touched.tunnels.update(touched.static)
    _remember(new, after)
    return after, touched


def entry_changes(changes: Changes, old: HostPlan, new: HostPlan) -> None:
    """The neighbour and FDB lines turning ``old``'s entries into ``new``'s (pure): only
    those of the NICs and mappings that changed, when ``new`` was re-planned from ``old``."""
    derived = _derived(old, new)
    before = _entries(old)
    if derived is None:
        after = _entries(new)
        everything = (before.local | after.local, before.neighbours | after.neighbours,
                      before.static | after.static, before.tunnels | after.tunnels)  # fmt: skip
    else:
        after, touched = derived
        everything = (touched.local, touched.neighbours, touched.static, touched.tunnels)
    local, neighbours, static, tunnels = (sorted(keys) for keys in everything)
    for router, dev, mac in local:
        if (router, dev, mac) in after.local and (router, dev, mac) not in before.local:
            line, op = f"fdb replace {mac} dev {dev} self local", Op("fdb-local", dev, (mac,))
            changes.add(FINISH, "bridge", router, line, after.local[(router, dev, mac)], op)
    for router, dev, mac in local:
        if (router, dev, mac) in before.local and (router, dev, mac) not in after.local:
            line, op = f"fdb del {mac} dev {dev} self local", Op("fdb-local-del", dev, (mac,))
            changes.add(FINISH, "bridge", router, line, (), op)
    for router, dev, ip in neighbours:
        if (router, dev, ip) not in after.neighbours:
            continue
        mac, key = after.neighbours[(router, dev, ip)]
        if before.neighbours.get((router, dev, ip), ("",))[0] != mac:
            line = f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent"
            op = Op("neigh-replace", dev, (ip, mac))
            changes.add(CONFIGURE, "ip", router, line, (key,), op)
    for router, dev, ip in neighbours:
        if (router, dev, ip) in before.neighbours and (router, dev, ip) not in after.neighbours:
            op = Op("neigh-del", dev, (ip,))
            changes.add(DELETE, "ip", router, f"neigh del {ip} dev {dev}", (), op)
    for router, dev, mac in static:
        if (router, dev, mac) not in after.static:
            continue
        bridge, key = after.static[(router, dev, mac)]
        if before.static.get((router, dev, mac), ("",))[0] != bridge:
            line = f"fdb replace {mac} dev {dev} master static"
            changes.add(FINISH, "bridge", router, line, (key,))
    for router, dev, mac in static:
        if (router, dev, mac) in before.static and (router, dev, mac) not in after.static:
            changes.add(FINISH, "bridge", router, f"fdb del {mac} dev {dev} master")
    for router, dev, mac in tunnels:
        if (router, dev, mac) not in before.tunnels:
            continue
        underlay = before.tunnels[(router, dev, mac)][0]
        if after.tunnels.get((router, dev, mac), ("",))[0] != underlay:
            line = f"fdb del {mac} dev {dev} self dst {underlay}"
            changes.add(DELETE, "bridge", router, line)
    for router, dev, mac in tunnels:
        if (router, dev, mac) not in after.tunnels:
            continue
        underlay, key = after.tunnels[(router, dev, mac)]
        if before.tunnels.get((router, dev, mac), ("",))[0] != underlay:
            line = f"fdb append {mac} dev {dev} self dst {underlay} permanent"
            changes.add(FINISH, "bridge", router, line, (key,))


def port_changes(changes: Changes, old: Port | None, new: Port, observed: Observed | None) -> None:
    """The lines making one NIC right: from nothing when it is new (``observed`` None: the
    model says nothing of it is in the kernel), else from what was observed of it."""
    # The router is already up: forwarding, reverse-path filtering off.
    up = {"forwarding": 1, "rp_filter": "off"}
    router = NamespaceView(netconf={"all": up, "default": up})
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
