"""The objects that describe one endpoint (an ipConfiguration placed on a host):

``endpoint/<ipConfiguration instanceId>``  to the endpoint's own host: NIC, MAC, IP/prefix,
                                           gateway, VSID, virtual network, ACLs (by id), QoS
``mapping/<ipConfiguration instanceId>``   to the other hosts of its virtual network: the
                                           CA->PA mapping (VSID, IP, MAC, provider address)
"""

from __future__ import annotations

import functools

from controller import protocol
from controller.policy.model import VNET, Model
from controller.policy.objects.base import Body, Computed, Keys, ObjectKind
from controller.policy.topology import Acl, VirtualNetwork


@functools.lru_cache(maxsize=65536)
def only(host: str) -> frozenset[str]:
    """``{host}``, one set per host for all its endpoints (a set per endpoint was 21 MiB at
    100,000 endpoints)."""
    return frozenset({host})


def _endpoint(model: Model, config_key: str) -> Computed | None:
    host = model.host_of(config_key)
    if host is None:
        return None
    config = model.configs[config_key]
    subnet = model.subnets[config.subnet or ""]
    nic = model.nics[config.nic]
    acls = [
        model.acls[key].id
        for key in (subnet.acl, config.acl)
        if key is not None and key in model.acls
    ]
    body: Body = {
        "nic": nic.id,
        "mac": nic.mac,
        "ip": config.ip,
        "prefixLength": subnet.prefix_length,
        "gateway": subnet.gateway,
        "vsid": subnet.vsid,
        "subnet": subnet.id,
        "virtualNetwork": model.vnets[subnet.vnet].id if subnet.vnet in model.vnets else None,
        "acls": list(dict.fromkeys(acls)),
        "qos": {"inboundMaximumMbps": nic.inbound_mbps, "outboundMaximumMbps": nic.outbound_mbps},
    }
    wire = protocol.object_key(protocol.ENDPOINT, config.id)
    return Computed(wire, body, only(host))


def _mapping(model: Model, config_key: str) -> Computed | None:
    own = model.host_of(config_key)
    if own is None:
        return None
    config = model.configs[config_key]
    subnet = model.subnets[config.subnet or ""]
    nic = model.nics[config.nic]
    address = model.provider.get(nic.server or "")
    if address is None or subnet.vsid is None:
        return None
    hosts = model.vnet_hosts_besides(subnet.vnet, own)
    if not hosts:
        return None
    body: Body = {
        "vsid": subnet.vsid,
        "virtualNetwork": model.vnets[subnet.vnet].id if subnet.vnet in model.vnets else None,
        "ip": config.ip,
        "mac": nic.mac,
        "providerAddress": address,
        "host": own,
    }
    return Computed(protocol.object_key(protocol.MAPPING, config.id), body, frozenset(hosts))


def _configs_of_acl(model: Model, acl_key: str) -> Keys:
    """The endpoints that name ACL ``acl_key``, directly or through their subnet."""
    configs = set(model.configs_of_acl.get(acl_key, ()))
    for subnet in model.subnets_of_acl.get(acl_key, ()):
        configs |= model.configs_of_subnet.get(subnet, set())
    return configs


def _configs_of_vnet(model: Model, vnet_key: str) -> Keys:
    return model.vnet_configs(vnet_key)


ENDPOINT = ObjectKind(
    protocol.ENDPOINT,
    _endpoint,
    keys=lambda model: model.configs,
    names={VirtualNetwork: _configs_of_vnet, Acl: _configs_of_acl},
    per_endpoint=True,
)
MAPPING = ObjectKind(
    protocol.MAPPING,
    _mapping,
    keys=lambda model: model.configs,
    shaped_by={VirtualNetwork: lambda model, vnet: model.vnet_configs(vnet.key)},
    follows={VNET: _configs_of_vnet},
    per_endpoint=True,
)
