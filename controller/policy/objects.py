"""The southbound objects of host policy, as pure functions of the model.

A host receives keyed objects rather than per-endpoint expansions (an ACL is sent once per host
that needs it, not copied into every endpoint):

``endpoint/<ipConfiguration instanceId>``  a local endpoint: NIC, MAC, IP/prefix, gateway,
                                           VSID, virtual network, ACLs (by id), QoS caps
``network/<subnet instanceId>``            a subnet of a virtual network the host takes part
                                           in: VSID, prefix, gateway, route table
``mapping/<ipConfiguration instanceId>``   a CA->PA mapping for an endpoint on another host of
                                           one of those virtual networks
``acl/<accessControlList instanceId>``     default actions per direction
``aclRule/<aclRule instanceId>``           one rule of an ACL: its ACL, direction, priority,
                                           action, protocol, prefixes, port ranges (a rule
                                           change sends that rule, not the whole list)
``routeTable/<routeTable instanceId>``     routes of a local subnet
``host/<server instanceId>``               the host's own provider address and encapsulation

Inside the compiler an object is named ``<kind>:<entity key>`` (the model is keyed by
resourceRef); on the wire it is ``<kind>/<instanceId>``. ``compute(model, name)`` gives an
object's wire key, body and the hosts that need it, or None when the object does not exist;
the full and the incremental compiler both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.policy.model import Model

SCHEMA_VERSION = 1
Body = dict[str, Any]


@dataclass(frozen=True)
class Computed:
    wire: str
    body: Body
    hosts: frozenset[str]


def compute(model: Model, name: str) -> Computed | None:
    kind, _, key = name.partition(":")
    builder = _BUILDERS.get(kind)
    return builder(model, key) if builder is not None else None


def endpoint(model: Model, config_key: str) -> Computed | None:
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
    return Computed(f"endpoint/{config.id}", body, frozenset({host}))


def network(model: Model, subnet_key: str) -> Computed | None:
    subnet = model.subnets.get(subnet_key)
    if subnet is None or subnet.vsid is None or subnet.vnet not in model.vnets:
        return None
    hosts = model.vnet_hosts(subnet.vnet)
    if not hosts:
        return None
    table = model.route_tables.get(subnet.route_table or "")
    body: Body = {
        "vsid": subnet.vsid,
        "virtualNetwork": model.vnets[subnet.vnet].id,
        "prefix": subnet.prefix,
        "gateway": subnet.gateway,
        "routeTable": table.id if table is not None else None,
    }
    return Computed(f"network/{subnet.id}", body, frozenset(hosts))


def mapping(model: Model, config_key: str) -> Computed | None:
    own = model.host_of(config_key)
    if own is None:
        return None
    config = model.configs[config_key]
    subnet = model.subnets[config.subnet or ""]
    nic = model.nics[config.nic]
    address = model.provider.get(nic.server or "")
    if address is None or subnet.vsid is None:
        return None
    hosts = model.vnet_hosts(subnet.vnet) - {own}
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
    return Computed(f"mapping/{config.id}", body, frozenset(hosts))


def acl(model: Model, acl_key: str) -> Computed | None:
    found = model.acls.get(acl_key)
    if found is None:
        return None
    hosts = model.acl_hosts(acl_key)
    if not hosts:
        return None
    body: Body = {
        "inboundDefaultAction": found.inbound_default,
        "outboundDefaultAction": found.outbound_default,
    }
    return Computed(f"acl/{found.id}", body, frozenset(hosts))


# The members of an aclRule's properties that shape what a host enforces.
RULE_MEMBERS = (
    "type",
    "priority",
    "action",
    "protocol",
    "sourceAddressPrefix",
    "sourcePortRange",
    "destinationAddressPrefix",
    "destinationPortRange",
    "logging",
)


def acl_rule_name(acl_key: str, rule_id: str) -> str:
    return f"aclRule:{acl_key}#{rule_id}"


def acl_rule(model: Model, key: str) -> Computed | None:
    acl_key, _, rule_id = key.rpartition("#")
    found = model.acls.get(acl_key)
    rule = next((r for r in found.rules if r["id"] == rule_id), None) if found else None
    if found is None or rule is None:
        return None
    hosts = model.acl_hosts(acl_key)
    if not hosts:
        return None
    body: Body = {"acl": found.id} | {m: rule.get(m) for m in RULE_MEMBERS}
    return Computed(f"aclRule/{rule_id}", body, frozenset(hosts))


def route_table(model: Model, table_key: str) -> Computed | None:
    table = model.route_tables.get(table_key)
    if table is None:
        return None
    hosts = model.route_table_hosts(table_key)
    if not hosts:
        return None
    body: Body = {"routes": [dict(route) for route in table.routes]}
    return Computed(f"routeTable/{table.id}", body, frozenset(hosts))


def host(model: Model, server_key: str) -> Computed | None:
    server = model.servers.get(server_key)
    if server is None:
        return None
    body: Body = {
        "providerAddress": model.provider.get(server_key),
        "encapsulation": model.fabric.encapsulation if model.fabric else "Vxlan",
        "schemaVersion": SCHEMA_VERSION,
    }
    return Computed(f"host/{server.id}", body, frozenset({server.id}))


_BUILDERS = {
    "endpoint": endpoint,
    "network": network,
    "mapping": mapping,
    "acl": acl,
    "aclRule": acl_rule,
    "routeTable": route_table,
    "host": host,
}
