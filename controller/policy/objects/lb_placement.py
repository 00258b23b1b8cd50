"""Reading the model for the load-balancing objects (``lb.py``): where the DIPs are (their
hosts and virtual networks), the muxes' hosts, the VIPs of a rule, the hosts that reach an
internal VIP without a mux."""

from __future__ import annotations

from collections.abc import Iterable

from controller.policy import slots
from controller.policy.model import Model
from controller.policy.topology import Frontend, IpConfig, LbRule


def dip_host(model: Model, config_key: str) -> str | None:
    """The server (instanceId) of a DIP: an ipConfiguration with an address on a NIC bound to
    a known server."""
    config = model.configs.get(config_key)
    if config is None or config.ip is None:
        return None
    nic = model.nics.get(config.nic)
    server = model.servers.get(nic.server or "") if nic is not None else None
    return server.id if server is not None else None


def placed_dips(model: Model, configs: Iterable[str]) -> list[tuple[IpConfig, str]]:
    """The placed DIPs among ``configs``, with their hosts, in key order."""
    placed = []
    for key in sorted(configs):
        host = dip_host(model, key)
        if host is not None:
            placed.append((model.configs[key], host))
    return placed


def mux_hosts(model: Model) -> frozenset[str]:
    servers = (model.servers.get(mux.server or "") for mux in model.lb.muxes.values())
    return frozenset(server.id for server in servers if server is not None)


def vip_of(model: Model, frontend: Frontend) -> str | None:
    if frontend.public_ip is not None:
        public = model.lb.public_ips.get(frontend.public_ip)
        return public.ip if public is not None else None
    return frontend.ip


def vips_of(model: Model, rule: LbRule) -> list[str]:
    found = (model.lb.frontends.get(key) for key in rule.frontends)
    return slots.ordered(v for f in found if f is not None and (v := vip_of(model, f)) is not None)


def internal_hosts(model: Model, rule: LbRule) -> frozenset[str]:
    """The hosts of the virtual networks of the rule's internal VIPs (frontends in a virtual
    subnet), which reach those VIPs without a mux."""
    hosts: frozenset[str] = frozenset()
    for key in rule.frontends:
        frontend = model.lb.frontends.get(key)
        subnet = model.subnets.get(frontend.subnet or "") if frontend is not None else None
        if subnet is not None:
            hosts |= model.vnet_hosts(subnet.vnet)
    return hosts


def virtual_networks(
    model: Model, rule: LbRule, dips: list[tuple[IpConfig, str]], *, internal: bool = True
) -> list[str]:
    """The virtual networks (instanceIds) whose router namespaces hold the rule: the DIPs'
    (where flows to them are translated) and, ``internal``, the internal VIPs' (whose
    endpoints reach those VIPs without a mux)."""
    subnets = [model.subnets.get(config.subnet or "") for config, _ in dips]
    if internal:
        frontends = (model.lb.frontends.get(key) for key in rule.frontends)
        subnets += [model.subnets.get(f.subnet or "") for f in frontends if f is not None]
    vnets = {model.vnets[s.vnet].id for s in subnets if s is not None and s.vnet in model.vnets}
    return sorted(vnets)
