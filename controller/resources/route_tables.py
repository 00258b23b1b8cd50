"""routeTables and their routes ([MS-NCNBI] routeTables; reference 5.8).

A route table is attached to virtual subnets (``subnet.properties.routeTable``); each route
sends a destination prefix to a next hop. Destination prefixes are unique within a table.
"""

from __future__ import annotations

from pydantic import Field

from controller.core.kinds import BackRef, Kind
from controller.core.tree import Node
from controller.core.values import (
    AddressPrefix,
    OptionalIPAddress,
    parse_address,
    parse_prefix,
)
from controller.core.wire import WireEnum, WireModel
from controller.errors import InvalidInput


class NextHopType(WireEnum):
    VIRTUAL_APPLIANCE = "VirtualAppliance"
    VNET_LOCAL = "VnetLocal"
    VIRTUAL_NETWORK_GATEWAY = "VirtualNetworkGateway"
    INTERNET = "Internet"
    NONE = "None"


class RouteProperties(WireModel):
    address_prefix: AddressPrefix = Field(alias="addressPrefix")
    next_hop_type: NextHopType = Field(alias="nextHopType")
    next_hop_ip_address: OptionalIPAddress = Field(default=None, alias="nextHopIpAddress")


class RouteTableProperties(WireModel):
    pass


def validate_route_table(node: Node) -> None:
    seen: dict[str, str] = {}
    for route in node.kids("routes"):
        props = route.props(RouteProperties)
        _validate_next_hop(route, props)
        if props.address_prefix in seen:
            raise InvalidInput(
                f"routes '{route.resource_id}' and '{seen[props.address_prefix]}' both route "
                f"{props.address_prefix}",
                target=route.target("addressPrefix"),
            )
        seen[props.address_prefix] = route.resource_id


def _validate_next_hop(route: Node, props: RouteProperties) -> None:
    if props.next_hop_type is NextHopType.VIRTUAL_APPLIANCE:
        if props.next_hop_ip_address is None:
            raise InvalidInput(
                f"route '{route.resource_id}': nextHopType VirtualAppliance needs nextHopIpAddress",
                target=route.target("nextHopIpAddress"),
            )
        hop = parse_address(props.next_hop_ip_address)
        if hop.version != parse_prefix(props.address_prefix).version:
            raise InvalidInput(
                f"route '{route.resource_id}': next hop {hop} is not of the address family "
                f"of {props.address_prefix}",
                target=route.target("nextHopIpAddress"),
            )


ROUTE_TABLES = Kind(
    name="routeTables",
    title="RouteTable",
    properties=RouteTableProperties,
    validate=validate_route_table,
    backrefs=(BackRef("subnets", ("virtualNetworks/subnets",), via=("routeTable",)),),
    description="User-defined routes applied to virtual subnets.",
)

ROUTES = Kind(
    name="routes",
    title="Route",
    properties=RouteProperties,
    parent=ROUTE_TABLES,
    description="One route of a route table.",
)

KINDS = (ROUTE_TABLES, ROUTES)
