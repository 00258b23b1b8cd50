"""A router namespace's way out of its virtual network (pure: what is wanted and the repair
lines that get there).

**Egress.** Load-balanced traffic leaves the router straight for the client (direct server
return: the replies of a connection a mux brought in, and what outbound NAT and public IPs
translate). Each router namespace has a veth pair to the host namespace: ``egress`` inside,
``EGRESS_ROUTER_ADDRESS``/32 and a default route via ``EGRESS_HOST_ADDRESS`` (``onlink``);
outside ``sdo<12 hex digits of the router's name>`` holding ``EGRESS_HOST_ADDRESS``/32 (the
same on every such link: each is a separate point-to-point hop), with forwarding on that link
only (the kernel forwards what arrives on a link whose ``forwarding`` is on, so the host's
other links stay as they were) and loose reverse-path filtering (the sources are VIPs and
public IPs, which the host routes elsewhere). The host namespace then routes the packets
as its own. ``lb_tables`` lets through it only what was translated.

In the router namespace reverse-path filtering is off (``repair.sysctl_lines``): what a mux
brings in arrives over VXLAN from clients the router reaches through ``egress``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from controller.agent.linux.changes import CONFIGURE, HOST, Changes, Command
from controller.agent.linux.observe import EGRESS_PREFIX, NamespaceView

EGRESS = "egress"
EGRESS_HOST_ADDRESS = "169.254.83.1"
EGRESS_ROUTER_ADDRESS = "169.254.83.2"


def host_side(router: str) -> str:
    """The host-side end of a router's egress pair (<= 15 characters)."""
    return EGRESS_PREFIX + hashlib.sha256(router.encode()).hexdigest()[:12]


def _default_route(view: NamespaceView) -> bool:
    return any(
        route.get("dst") == "default"
        and route.get("dev") == EGRESS
        and route.get("gateway") == EGRESS_HOST_ADDRESS
        for route in view.routes
    )


def egress_lines(
    changes: Changes,
    view: NamespaceView,
    host_links: Mapping[str, Mapping[str, Any]],
    router: str,
    keys: tuple[str, ...],
) -> None:
    """Build or repair the router's egress pair and its addresses, route and sysctls."""
    outside = host_side(router)
    fresh = view.kind(EGRESS) != "veth" or outside not in host_links
    if fresh:
        if view.kind(EGRESS) is not None:
            changes.add(HOST, "ip", router, f"link del {EGRESS}")
        if outside in host_links:
            changes.add(HOST, "ip", None, f"link del {outside}")
        create = f"link add {outside} type veth peer name {EGRESS} netns {router}"
        changes.add(HOST, "ip", None, create, keys)
        view = NamespaceView()
    link = {} if fresh else host_links[outside]
    host_address = f"{EGRESS_HOST_ADDRESS}/32"
    addresses = {f"{a.get('local')}/{a.get('prefixlen')}" for a in link.get("addr_info", ())}
    if host_address not in addresses:
        changes.add(HOST, "ip", None, f"addr add {host_address} dev {outside}", keys)
        pairs = ((f"net.ipv4.conf.{outside}.forwarding", "1"),
                 (f"net.ipv4.conf.{outside}.rp_filter", "2"))  # fmt: skip
        settings = [f"{name}={value}" for name, value in pairs]
        argv = ["sysctl", "-q", "-w", *settings]
        summary = "sysctl -w " + " ".join(settings)
        changes.command(CONFIGURE, Command(None, argv, keys, None, summary, pairs))
    if "UP" not in link.get("flags", ()):
        changes.add(HOST, "ip", None, f"link set {outside} up", keys)
    router_address = f"{EGRESS_ROUTER_ADDRESS}/32"
    if router_address not in view.addresses(EGRESS):
        changes.add(CONFIGURE, "ip", router, f"addr add {router_address} dev {EGRESS}", keys)
    if not view.up(EGRESS):
        changes.add(CONFIGURE, "ip", router, f"link set {EGRESS} up", keys)
    if not _default_route(view):
        route = f"route replace default via {EGRESS_HOST_ADDRESS} dev {EGRESS} onlink"
        changes.add(CONFIGURE, "ip", router, route, keys)


def unfiltered_settings(view: NamespaceView, devices: Sequence[str]) -> list[str]:
    """The settings turning reverse-path filtering off on those of ``devices`` (or ``all``,
    ``default``) where it is not off."""
    return [
        f"net.ipv4.conf.{device}.rp_filter=0"
        for device in devices
        if view.netconf.get(device, {}).get("rp_filter") != "off"
    ]
