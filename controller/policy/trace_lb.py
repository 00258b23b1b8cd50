"""The connectivity check through a load balancer (pure): a packet from an endpoint to a VIP is
translated by the sender's own host (its router namespace holds the rule: ``lbRule`` and
``lbNat`` objects naming the sender's virtual network) before any ACL sees it, so the rest of
the path is the one to the DIP it is sent to.

Which DIP: a NAT rule's one; for a load-balancing rule, the DIP the host's flow hash picks
(``flow_hash.host_choice``) when the check says its source port, else every healthy DIP in
turn (the connection could go to any of them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from controller import protocol
from controller.policy.flow_hash import host_choice

if TYPE_CHECKING:
    from controller.policy.trace import Probe

Body = Mapping[str, Any]
Json = dict[str, Any]
_PROTOCOLS = {"tcp": ("tcp",), "udp": ("udp",), "all": ("tcp", "udp")}


@dataclass(frozen=True)
class Balanced:
    """What the sender's host does with a flow to a VIP: the hop, the flows it may become (to
    the DIPs: address and backend port), or why it goes nowhere."""

    hop: Json
    dips: list[tuple[str, int]]
    reason: str | None = None


def _frontend(body: Body, receiver: str, proto: str, port: int) -> bool:
    vips = {str(vip) for vip in body.get("vips") or ()}
    protocols = _PROTOCOLS.get(str(body.get("protocol", "")).lower(), ())
    return receiver in vips and proto in protocols and body.get("frontendPort") == port


def through_load_balancer(
    here: Mapping[str, Body], host: str, network: str, probe: Probe
) -> Balanced | None:
    """The rule of the sender's host (``here``) that ``probe`` (a ``trace.Probe``) meets, if
    any. ``network``: the sender's virtual network."""
    receiver = probe.receiver
    if receiver.version != 4 or probe.destination_port is None:
        return None  # only TCP and UDP to IPv4 VIPs are balanced
    for key in sorted(
        k for k in here if protocol.kind_of(k) in (protocol.LB_RULE, protocol.LB_NAT)
    ):
        body = here[key]
        if network not in (body.get("virtualNetworks") or ()):
            continue
        if not _frontend(body, str(receiver), probe.protocol, probe.destination_port):
            continue
        return _balanced(key, body, host, probe, probe.destination_port)
    return None


def _balanced(key: str, body: Body, host: str, probe: Probe, frontend: int) -> Balanced:
    kind, _, rule_id = key.partition("/")
    backend = int(body.get("backendPort") or frontend)
    hop: Json = {
        "type": "LoadBalancer",
        "host": host,
        "rule" if kind == protocol.LB_RULE else "inboundNatRule": rule_id,
        "vip": str(probe.receiver),
        "frontendPort": frontend,
        "backendPort": backend,
    }
    if body.get("floatingIp") is True:
        return Balanced(hop, [], "the rule asks for floatingIp, which the hosts do not balance")
    if kind == protocol.LB_NAT:
        hop["dip"] = body.get("dip")
        return Balanced(hop, [(str(body.get("dip")), backend)])
    dips = [str(dip) for dip in body.get("dips") or ()]
    hop["dips"] = dips
    if not dips:
        return Balanced(hop, [], f"no DIP of rule {rule_id} is healthy: the host drops the flow")
    if probe.source_port is None:
        hop["dip"] = None  # any of them: each is checked
        return Balanced(hop, [(dip, backend) for dip in dips])
    chosen = host_choice(
        dips,
        str(body.get("distribution") or "Default"),
        str(probe.sender),
        str(probe.receiver),
        probe.protocol,
        probe.source_port,
        frontend,
    )
    hop["dip"] = chosen
    return Balanced(hop, [(chosen, backend)])


def to_dip(probe: Probe, dip: str, port: int, network: str) -> Probe:
    """``probe`` as the host sends it on: to ``dip``:``port`` in the sender's network."""
    return replace(
        probe, receiver=ipaddress.ip_address(dip), destination_port=port, receiver_network=network
    )
