"""``routeTable/<routeTable instanceId>``: the routes of a route table, sent to every host of
the virtual networks whose subnets use it (the hosts of those subnets' endpoints route by it;
the host of an appliance it names, in whatever subnet, must know to forward for it)."""

from __future__ import annotations

from controller import protocol
from controller.policy.model import VNET, Model
from controller.policy.objects.base import Body, Computed, ObjectKind
from controller.policy.topology import RouteTable, Subnet


def _build(model: Model, table_key: str) -> Computed | None:
    table = model.route_tables.get(table_key)
    if table is None:
        return None
    hosts = model.route_table_hosts(table_key)
    if not hosts:
        return None
    body: Body = {"routes": [dict(route) for route in table.routes]}
    wire = protocol.object_key(protocol.ROUTE_TABLE, table.id)
    return Computed(wire, body, frozenset(hosts))


ROUTE_TABLE = ObjectKind(
    protocol.ROUTE_TABLE,
    _build,
    keys=lambda model: model.route_tables,
    shaped_by={
        RouteTable: lambda _, table: (table.key,),
        # Attached, detached or moved: the table's hosts change (called as it was and is).
        Subnet: lambda _, subnet: (subnet.route_table,) if subnet.route_table else (),
    },
    follows={VNET: lambda model, vnet_key: model.route_tables_of_vnet(vnet_key)},
)
