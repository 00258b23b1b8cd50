"""The objects of software load balancing, each sent only to the hosts that need it:

``lbRule/<loadBalancingRule>``       VIPs, protocol, ports, distribution, and the slot table of
                                     the healthy DIPs (``controller.policy.slots``); to the
                                     hosts of the pool's DIPs, the muxes, and every host of the
                                     virtual networks it names (the DIPs', an internal VIP's)
``lbNat/<inboundNatRule>``           VIPs:frontend port to one DIP:backend port; to the DIP's
                                     host, the muxes and the hosts of the networks it names
``lbOutbound/<outboundNatRule>``     the VIPs the pool's DIPs leave through, with a block of
                                     source ports per DIP (and where the DIP lives: provider
                                     address, VSID); to the DIPs' hosts and the muxes
``publicIp/<publicIPAddress>``       a public IP bound 1:1 to an ipConfiguration (with its
                                     virtual network and VSID); to its host and the muxes
``probe/<probe>``                    a probe and the DIPs it covers (with their hosts); to the
                                     hosts of those DIPs, which run it
``vipMap/<frontendIPConfiguration>`` where each DIP behind a VIP lives (provider address,
                                     VSID); to the muxes

A DIP is an ipConfiguration with an address whose NIC is on a known server; "the muxes" are
the servers of the loadBalancerMuxes. What makes which object dirty is computed by
``_Touched`` from the model's load-balancing indexes (``controller.policy.balancing``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from controller import protocol
from controller.policy import slots
from controller.policy.balancing import DOWN, NAT, OUTBOUND, RULE
from controller.policy.model import VNET, Model
from controller.policy.objects.base import Body, Computed, Keys, ObjectKind
from controller.policy.objects.lb_placement import (
    mux_hosts,
    place_of,
    placed_dips,
    provider_of,
    rule_vnets,
    vip_of,
    vips_of,
    virtual_networks,
    vnet_of,
    vnet_rules,
    vnets_hosts,
    vsid_of,
)
from controller.policy.topology import (
    DipHealth,
    Frontend,
    IpConfig,
    LbRule,
    Mux,
    Nic,
    Probe,
    ProviderAddress,
    PublicIp,
    Server,
    Subnet,
    VirtualNetwork,
)

# The source ports outbound NAT shares out among the DIPs of a pool.
FIRST_NAT_PORT = 1024
NAT_PORTS = 65536 - FIRST_NAT_PORT


def _common(rule: LbRule, vips: list[str]) -> Body:
    return {
        "vips": vips,
        "protocol": rule.protocol,
        "frontendPort": rule.frontend_port,
        "backendPort": rule.backend_port,
        "floatingIp": rule.floating_ip,
        "idleTimeoutMinutes": rule.idle_timeout,
    }


# -- building ---------------------------------------------------------------------------------


def _rule(model: Model, key: str) -> Computed | None:
    rule = model.lb.rules.get(key)
    if rule is None or rule.kind != RULE:
        return None
    vips = vips_of(model, rule)
    if not vips:
        return None
    dips = placed_dips(model, model.lb.configs_of_pool.get(rule.pool or "", ()))
    probe = model.lb.probes.get(rule.probe or "")
    healthy = [
        config.ip
        for config, _ in dips
        if probe is None or model.lb.state(probe.id, config.id) != DOWN
    ]
    vnets = rule_vnets(model, rule, dips)
    hosts = frozenset(host for _, host in dips) | mux_hosts(model) | vnets_hosts(model, vnets)
    if not hosts:
        return None
    addresses = slots.ordered(ip for ip in healthy if ip is not None)
    body = _common(rule, vips) | {
        "distribution": rule.distribution or "Default",
        "dips": addresses,
        "slots": slots.encoded(addresses),
        "virtualNetworks": virtual_networks(vnets),
    }
    return Computed(protocol.object_key(protocol.LB_RULE, rule.id), body, hosts)


def _nat(model: Model, key: str) -> Computed | None:
    rule = model.lb.rules.get(key)
    if rule is None or rule.kind != NAT:
        return None
    vips = vips_of(model, rule)
    dips = placed_dips(model, model.lb.configs_of_nat.get(key, ()))
    if not vips or not dips:
        return None
    config, host = dips[0]  # the NBI binds a NAT rule to one ipConfiguration at most
    vnets = rule_vnets(model, rule, dips[:1])
    hosts = frozenset({host}) | mux_hosts(model) | vnets_hosts(model, vnets)
    body = _common(rule, vips) | {
        "dip": config.ip,
        "ipConfiguration": config.id,
        "virtualNetworks": virtual_networks(vnets),
    }
    return Computed(protocol.object_key(protocol.LB_NAT, rule.id), body, hosts)


def port_blocks(located: dict[str, Body]) -> list[Body]:
    """An equal block of source ports per DIP address, in address order, each with what
    ``located`` says of that address (where the DIP lives)."""
    addresses = slots.ordered(located)
    if not addresses:
        return []
    size = NAT_PORTS // len(addresses)
    return [
        {
            "dip": ip,
            "firstPort": FIRST_NAT_PORT + index * size,
            "lastPort": FIRST_NAT_PORT + (index + 1) * size - 1,
        }
        | located[ip]
        for index, ip in enumerate(addresses)
    ]


def _outbound(model: Model, key: str) -> Computed | None:
    rule = model.lb.rules.get(key)
    if rule is None or rule.kind != OUTBOUND:
        return None
    vips = vips_of(model, rule)
    dips = placed_dips(model, model.lb.configs_of_pool.get(rule.pool or "", ()))
    if not vips or not dips:
        return None
    hosts = frozenset(host for _, host in dips) | mux_hosts(model)
    # Where each DIP lives, for a mux to tunnel a reply to it (VXLAN, VNI = VSID); of two
    # DIPs with one address, the last in key order (as a VIP map has it).
    located: dict[str, Body] = {
        config.ip: place_of(model, config) for config, _ in dips if config.ip is not None
    }
    body: Body = {
        "vips": vips,
        "protocol": rule.protocol,
        "portBlocks": port_blocks(located),
        "virtualNetworks": virtual_networks(rule_vnets(model, rule, dips, internal=False)),
    }
    return Computed(protocol.object_key(protocol.LB_OUTBOUND, rule.id), body, hosts)


def _public_ip(model: Model, key: str) -> Computed | None:
    public = model.lb.public_ips.get(key)
    dips = placed_dips(model, model.lb.configs_of_public_ip.get(key, ()))
    if public is None or public.ip is None or not dips:
        return None
    config, host = dips[0]  # a public IP is bound to one ipConfiguration at most
    body: Body = {
        "publicIPAddress": public.ip,
        "privateIPAddress": config.ip,
        "ipConfiguration": config.id,
        "providerAddress": provider_of(model, config),
        "virtualNetwork": vnet_of(model, config),  # whose router namespace holds it
        "vsid": vsid_of(model, config),
        "mac": model.nics[config.nic].mac,
        "idleTimeoutMinutes": public.idle_timeout,
    }
    hosts = frozenset({host}) | mux_hosts(model)
    return Computed(protocol.object_key(protocol.PUBLIC_IP, public.id), body, hosts)


def _probed(model: Model, probe_key: str) -> list[tuple[IpConfig, str]]:
    """The DIPs a probe covers: those of the pools of the rules that use it."""
    configs: set[str] = set()
    for rule_key in model.lb.rules_of_probe.get(probe_key, ()):
        rule = model.lb.rules[rule_key]
        configs |= model.lb.configs_of_pool.get(rule.pool or "", set())
    return placed_dips(model, configs)


def probe_dips(model: Model, probe_id: str) -> dict[str, str]:
    """The DIPs (ipConfiguration id -> host) the probe of instanceId ``probe_id`` covers."""
    key = model.lb.probe_keys.get(probe_id)
    return {config.id: host for config, host in _probed(model, key)} if key else {}


def _probe(model: Model, key: str) -> Computed | None:
    probe = model.lb.probes.get(key)
    dips = _probed(model, key)
    if probe is None or not dips:
        return None
    body: Body = {
        "protocol": probe.protocol,
        "port": probe.port,
        "requestPath": probe.request_path,
        "intervalInSeconds": probe.interval,
        "numberOfProbes": probe.count,
        "dips": [{"ipConfiguration": c.id, "ip": c.ip, "host": host} for c, host in dips],
    }
    hosts = frozenset(host for _, host in dips)
    return Computed(protocol.object_key(protocol.PROBE, probe.id), body, hosts)


def _vip_map(model: Model, key: str) -> Computed | None:
    frontend = model.lb.frontends.get(key)
    vip = vip_of(model, frontend) if frontend is not None else None
    muxes = mux_hosts(model)
    if frontend is None or vip is None or not muxes:
        return None
    configs: set[str] = set()
    for rule_key in model.lb.rules_of_frontend.get(key, ()):
        rule = model.lb.rules[rule_key]
        members = model.lb.configs_of_nat if rule.kind == NAT else model.lb.configs_of_pool
        configs |= members.get(rule_key if rule.kind == NAT else rule.pool or "", set())
    located: dict[str, Body] = {}
    for config, _ in placed_dips(model, configs):
        address = provider_of(model, config)
        if address is not None and config.ip is not None:
            located[config.ip] = place_of(model, config)
    dips = [{"ip": ip} | located[ip] for ip in slots.ordered(located)]
    body: Body = {"vip": vip, "dips": dips}
    return Computed(protocol.object_key(protocol.VIP_MAP, frontend.id), body, muxes)


# -- what makes them dirty --------------------------------------------------------------------


@dataclass
class _Touched:
    """Object keys, by kind, that a change of some entity may shape."""

    model: Model
    keys: dict[str, set[str]] = field(default_factory=dict)

    def add(self, wire: str, keys: Iterable[str]) -> None:
        self.keys.setdefault(wire, set()).update(keys)

    def rule(self, rule: LbRule) -> None:
        wire = {RULE: protocol.LB_RULE, NAT: protocol.LB_NAT, OUTBOUND: protocol.LB_OUTBOUND}
        self.add(wire[rule.kind], (rule.key,))
        self.add(protocol.VIP_MAP, rule.frontends)
        if rule.probe is not None:
            self.add(protocol.PROBE, (rule.probe,))

    def rules(self, keys: Iterable[str]) -> None:
        for key in keys:
            found = self.model.lb.rules.get(key)
            if found is not None:
                self.rule(found)

    def frontends(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(protocol.VIP_MAP, (key,))
            self.rules(self.model.lb.rules_of_frontend.get(key, ()))

    def config(self, config: IpConfig) -> None:
        lb = self.model.lb
        for pool in config.pools:
            self.rules(lb.rules_of_pool.get(pool, ()))
        self.rules(config.nat_rules)
        if config.public_ip is not None:
            self.add(protocol.PUBLIC_IP, (config.public_ip,))

    def located(self, config: IpConfig) -> None:
        """The objects that say where ``config`` lives: the maps of the VIPs it is behind,
        the port blocks of the outbound rules of its pools, and its public IP."""
        lb = self.model.lb
        for pool in config.pools:
            for key in lb.rules_of_pool.get(pool, ()):
                rule = lb.rules[key]
                self.add(protocol.VIP_MAP, rule.frontends)
                if rule.kind == OUTBOUND:
                    self.add(protocol.LB_OUTBOUND, (key,))
        for nat in config.nat_rules:
            found = lb.rules.get(nat)
            if found is not None:
                self.add(protocol.VIP_MAP, found.frontends)
        if config.public_ip is not None:
            self.add(protocol.PUBLIC_IP, (config.public_ip,))

    def configs(self, keys: Iterable[str]) -> None:
        for key in keys:
            found = self.model.configs.get(key)
            if found is not None:
                self.config(found)

    def subnets(self, keys: Iterable[str]) -> None:
        """What a subnet shapes: its internal VIPs' objects, and those of its DIPs, which
        name its virtual network, its VSID, or hold a rule in that network's routers."""
        lb = self.model.lb
        for key in keys:
            self.frontends(lb.frontends_of_subnet.get(key, ()))
            self.configs(self.model.configs_of_subnet.get(key, ()))

    def server(self, server_key: str) -> None:
        for nic in self.model.nics_of_server.get(server_key, ()):
            self.configs(self.model.configs_of_nic.get(nic, ()))

    def everything(self) -> None:
        for kind in LB_KINDS:
            self.add(kind.wire, kind.keys(self.model))


def _touched(model: Model, entity: object) -> dict[str, set[str]]:
    touched = _Touched(model)
    lb = model.lb
    match entity:
        case IpConfig():
            touched.config(entity)
        case Nic():
            touched.configs(model.configs_of_nic.get(entity.key, ()))
            for config_key in model.configs_of_nic.get(entity.key, ()):  # its MAC
                if (config := model.configs.get(config_key)) is not None:
                    touched.located(config)
        case Server():
            touched.server(entity.key)
            if entity.key in lb.muxes_of_server:
                touched.everything()  # every object goes to the muxes' hosts
        case ProviderAddress():
            # Only where DIPs live names provider addresses: the muxes' maps, port blocks,
            # public IPs.
            for nic in model.nics_of_server.get(entity.key, ()):
                for config_key in model.configs_of_nic.get(nic, ()):
                    config = model.configs.get(config_key)
                    if config is not None:
                        touched.located(config)
        case Subnet():
            touched.subnets((entity.key,))
        case VirtualNetwork():  # its instanceId, named by the objects of its subnets
            touched.subnets(model.subnets_of_vnet.get(entity.key, ()))
        case Frontend():
            touched.frontends((entity.key,))
        case LbRule():
            touched.rule(entity)
        case Probe():
            touched.add(protocol.PROBE, (entity.key,))
            touched.rules(lb.rules_of_probe.get(entity.key, ()))
        case PublicIp():
            touched.add(protocol.PUBLIC_IP, (entity.key,))
            touched.frontends(lb.frontends_of_public_ip.get(entity.key, ()))
        case Mux():
            touched.everything()
        case DipHealth():
            # Exactly the rules that use this probe over a pool this DIP is in.
            config = model.configs.get(lb.config_keys.get(entity.dip, ""))
            probe = lb.probe_keys.get(entity.probe)
            if config is not None and probe is not None:
                pools = set(config.pools)
                touched.add(
                    protocol.LB_RULE,
                    (k for k in lb.rules_of_probe.get(probe, ()) if lb.rules[k].pool in pools),
                )
    return touched.keys


def _shaped(wire: str) -> dict[type, Callable[[Model, object], Keys]]:
    def keys(model: Model, entity: object) -> Keys:
        return _touched(model, entity).get(wire, ())

    types: tuple[type, ...] = (IpConfig, Nic, Server, ProviderAddress, Subnet, VirtualNetwork)
    types += (Frontend, LbRule, Probe, PublicIp, Mux)
    shaped: dict[type, Callable[[Model, object], Keys]] = dict.fromkeys(types, keys)
    if wire == protocol.LB_RULE:
        shaped[DipHealth] = keys
    return shaped


def _rules_of_kind(kind: str) -> Callable[[Model], Keys]:
    return lambda model: [key for key, rule in model.lb.rules.items() if rule.kind == kind]


LB_RULE = ObjectKind(
    protocol.LB_RULE,
    _rule,
    keys=_rules_of_kind(RULE),
    shaped_by=_shaped(protocol.LB_RULE),
    follows={VNET: lambda model, vnet: vnet_rules(model, vnet, RULE)},
)
LB_NAT = ObjectKind(
    protocol.LB_NAT,
    _nat,
    keys=_rules_of_kind(NAT),
    shaped_by=_shaped(protocol.LB_NAT),
    follows={VNET: lambda model, vnet: vnet_rules(model, vnet, NAT)},
)
LB_OUTBOUND = ObjectKind(
    protocol.LB_OUTBOUND,
    _outbound,
    keys=_rules_of_kind(OUTBOUND),
    shaped_by=_shaped(protocol.LB_OUTBOUND),
)
PUBLIC_IP = ObjectKind(
    protocol.PUBLIC_IP,
    _public_ip,
    keys=lambda model: model.lb.public_ips,
    shaped_by=_shaped(protocol.PUBLIC_IP),
)
PROBE = ObjectKind(
    protocol.PROBE, _probe, keys=lambda model: model.lb.probes, shaped_by=_shaped(protocol.PROBE)
)
VIP_MAP = ObjectKind(
    protocol.VIP_MAP,
    _vip_map,
    keys=lambda model: model.lb.frontends,
    shaped_by=_shaped(protocol.VIP_MAP),
)
LB_KINDS = (LB_RULE, LB_NAT, LB_OUTBOUND, PUBLIC_IP, PROBE, VIP_MAP)
