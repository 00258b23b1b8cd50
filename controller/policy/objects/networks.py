"""``network/<subnet instanceId>``: a subnet of a virtual network the host takes part in (VSID,
prefix, gateway, route table), sent to every host with an endpoint in that virtual network."""

from __future__ import annotations

from controller import protocol
from controller.policy.model import VNET, Model
from controller.policy.objects.base import Body, Computed, Keys, ObjectKind
from controller.policy.topology import RouteTable, Subnet, VirtualNetwork


def _build(model: Model, subnet_key: str) -> Computed | None:
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
    return Computed(protocol.object_key(protocol.NETWORK, subnet.id), body, frozenset(hosts))


def _subnets_of_vnet(model: Model, vnet_key: str) -> Keys:
    return model.subnets_of_vnet.get(vnet_key, ())


NETWORK = ObjectKind(
    protocol.NETWORK,
    _build,
    keys=lambda model: model.subnets,
    shaped_by={
        Subnet: lambda _, subnet: (subnet.key,),
        VirtualNetwork: lambda model, vnet: _subnets_of_vnet(model, vnet.key),
        # A network names its route table by instanceId.
        RouteTable: lambda model, table: model.subnets_of_route_table.get(table.key, ()),
    },
    follows={VNET: _subnets_of_vnet},
)
