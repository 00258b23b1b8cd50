"""Reading the model for the load-balancing objects (``lb.py``): where the DIPs are (their
hosts, virtual networks, VSIDs and provider addresses), the muxes' hosts, the VIPs of a rule,
the virtual networks that hold a rule and their hosts."""

from __future__ import annotations

from collections.abc import Iterable

from controller.policy import slots
from controller.policy.balancing import NAT, RULE
from controller.policy.model import Model
from controller.policy.topology import Frontend, IpConfig, LbRule, Subnet


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


def dip_subnet(model: Model, config: IpConfig) -> Subnet | None:
    """The virtual subnet of a DIP (None for a logical one)."""
    return model.subnets.get(config.subnet or "")


def vsid_of(model: Model, config: IpConfig) -> int | None:
    subnet = dip_subnet(model, config)
    return subnet.vsid if subnet is not None else None


def vnet_of(model: Model, config: IpConfig) -> str | None:
    """The instanceId of a DIP's virtual network (None outside a virtual subnet)."""
    subnet = dip_subnet(model, config)
    vnet = model.vnets.get(subnet.vnet) if subnet is not None else None
    return vnet.id if vnet is not None else None


def provider_of(model: Model, config: IpConfig) -> str | None:
    """The provider address of a placed DIP's host, once its agent reported one."""
    return model.provider.get(model.nics[config.nic].server or "")


def place_of(model: Model, config: IpConfig) -> dict[str, object]:
    """Where a DIP lives, for a mux to send it a flow: VXLAN (VNI = ``vsid``) to
    ``providerAddress``, addressed to ``mac`` (the NIC's)."""
    return {
        "providerAddress": provider_of(model, config),
        "vsid": vsid_of(model, config),
        "mac": model.nics[config.nic].mac,
    }


def rule_vnets(
    model: Model, rule: LbRule, dips: list[tuple[IpConfig, str]], *, internal: bool = True
) -> dict[str, str]:
    """The virtual networks (key -> instanceId) whose router namespaces hold the rule: the
    DIPs' (where flows to them are translated, and whose endpoints balance the VIP at their
    own host) and, ``internal``, the internal VIPs' (whose endpoints reach those VIPs without
    a mux)."""
    subnets = [model.subnets.get(config.subnet or "") for config, _ in dips]
    if internal:
        frontends = (model.lb.frontends.get(key) for key in rule.frontends)
        subnets += [model.subnets.get(f.subnet or "") for f in frontends if f is not None]
    vnets = (s.vnet for s in subnets if s is not None)
    return {key: model.vnets[key].id for key in vnets if key in model.vnets}


def virtual_networks(vnets: dict[str, str]) -> list[str]:
    """The instanceIds of ``rule_vnets``, as a body lists them."""
    return sorted(vnets.values())


def vnets_hosts(model: Model, vnets: Iterable[str]) -> frozenset[str]:
    """Every host with an endpoint in one of the virtual networks (keys) ``vnets``."""
    return frozenset().union(*(model.vnet_hosts(key) for key in vnets))


def vnet_rules(model: Model, vnet_key: str, kind: str) -> list[str]:
    """The rules of ``kind`` (``RULE``, ``NAT``) with a VIP or a DIP (a member of a rule's
    pool, a NAT rule's ipConfiguration) in a virtual network: their hosts follow its hosts."""
    lb = model.lb
    found: set[str] = set()
    for subnet in model.subnets_of_vnet.get(vnet_key, ()):
        for frontend in lb.frontends_of_subnet.get(subnet, ()):
            found |= lb.rules_of_frontend.get(frontend, set())
        for config in map(model.configs.__getitem__, model.configs_of_subnet.get(subnet, ())):
            if kind == NAT:
                found.update(config.nat_rules)
            for pool in config.pools if kind == RULE else ():
                found |= lb.rules_of_pool.get(pool, set())
    return [key for key in found if key in lb.rules and lb.rules[key].kind == kind]
