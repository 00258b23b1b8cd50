"""``routeTable/<routeTable instanceId>``: the routes of a route table, sent to the hosts of
the endpoints in subnets that use it."""

from __future__ import annotations

from controller import protocol
from controller.policy.model import ROUTE_TABLE as ROUTE_TABLE_GROUP
from controller.policy.model import Model
from controller.policy.objects.base import Body, Computed, ObjectKind
from controller.policy.topology import RouteTable


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
    shaped_by={RouteTable: lambda _, table: (table.key,)},
    follows={ROUTE_TABLE_GROUP: lambda _, table_key: (table_key,)},
)
