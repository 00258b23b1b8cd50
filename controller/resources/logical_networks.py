"""logicalNetworks, their subnets and ipPools ([MS-NCNBI] logicalNetworks; reference 5.3).

A logical network is a slice of the physical network (management, the HNV provider network,
VIP networks); each logical subnet is a prefix/VLAN pair and hands out addresses from its
ipPools. Subnets of one logical network do not overlap; pools lie inside their subnet, hold no
network, broadcast or gateway address, and do not overlap each other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from controller.core.kinds import BackRef, Facts, Kind, UsedBy
from controller.core.refs import ResourceRef
from controller.core.scalars import IntRange, WireBool
from controller.core.shape import Shape, default, read_only
from controller.core.tree import Node
from controller.core.values import (
    AddressPrefix,
    IPAddress,
    IPNetwork,
    OptionalIPAddress,
    parse_address,
    prefixes_overlap,
)
from controller.core.wire import WireModel
from controller.errors import InvalidInput, ResourceInUse
from controller.resources.refs import AccessControlListRef


class LogicalNetworkProperties(WireModel):
    network_virtualization_enabled: WireBool = Field(
        default=False, alias="networkVirtualizationEnabled"
    )


class SubnetRoute(WireModel):
    destination_prefix: AddressPrefix = Field(alias="destinationPrefix")
    next_hop: OptionalIPAddress = Field(default=None, alias="nextHop")
    metric: Annotated[int, IntRange(0, 65535)] | None = None


class LogicalSubnetProperties(WireModel):
    address_prefix: AddressPrefix = Field(alias="addressPrefix")
    vlan_id: Annotated[int, IntRange(0, 4094)] = Field(default=0, alias="vlanID")
    default_gateways: list[IPAddress] = Field(default_factory=list, alias="defaultGateways")
    dns_servers: list[IPAddress] = Field(default_factory=list, alias="dnsServers")
    is_public: WireBool = Field(default=False, alias="isPublic")
    routes: list[SubnetRoute] = Field(default_factory=list)
    access_control_list: AccessControlListRef | None = Field(
        default=None, alias="accessControlList"
    )

    def network(self) -> IPNetwork:
        return ipaddress.ip_network(self.address_prefix)


class IpPoolProperties(WireModel):
    start_ip_address: IPAddress = Field(alias="startIpAddress")
    end_ip_address: IPAddress = Field(alias="endIpAddress")

    def bounds(self) -> tuple[int, int]:
        return int(parse_address(self.start_ip_address)), int(parse_address(self.end_ip_address))


def validate_logical_network(node: Node) -> None:
    subnets = node.kids("subnets")
    for index, subnet in enumerate(subnets):
        network = subnet.props(LogicalSubnetProperties).network()
        for other in subnets[:index]:
            if prefixes_overlap(network, other.props(LogicalSubnetProperties).network()):
                raise InvalidInput(
                    f"logical subnet '{subnet.resource_id}' ({network}) overlaps subnet "
                    f"'{other.resource_id}' of the same logical network",
                    target=subnet.target("addressPrefix"),
                )


def check_still_a_provider_network(node: Node, users: Sequence[UsedBy]) -> None:
    """A logical network carrying virtual networks stays an HNV provider network."""
    carried = [u.ref for u in users if u.kind == "virtualNetworks"]
    if carried and not node.props(LogicalNetworkProperties).network_virtualization_enabled:
        raise ResourceInUse(
            f"logicalNetwork '{node.resource_id}' carries {', '.join(carried)}; "
            "networkVirtualizationEnabled cannot be turned off",
            target=node.target("networkVirtualizationEnabled"),
        )


def validate_logical_subnet(node: Node) -> None:
    props = node.props(LogicalSubnetProperties)
    network = props.network()
    for gateway in props.default_gateways:
        if parse_address(gateway) not in network:
            raise InvalidInput(
                f"logical subnet '{node.resource_id}': default gateway {gateway} is outside "
                f"{network}",
                target=node.target("defaultGateways"),
            )
    for route in props.routes:
        if route.next_hop is not None and parse_address(route.next_hop) not in network:
            raise InvalidInput(
                f"logical subnet '{node.resource_id}': route next hop {route.next_hop} is "
                f"outside {network}",
                target=node.target("routes"),
            )
    _validate_pools(node, network, {int(parse_address(g)) for g in props.default_gateways})


def _validate_pools(subnet: Node, network: IPNetwork, gateways: set[int]) -> None:
    reserved = _reserved_addresses(network) | gateways
    taken: list[tuple[int, int, str]] = []
    for pool in subnet.kids("ipPools"):
        props = pool.props(IpPoolProperties)
        start, end = props.bounds()
        where = f"ipPool '{pool.resource_id}' of logical subnet '{subnet.resource_id}'"
        bounds = (
            ("startIpAddress", props.start_ip_address),
            ("endIpAddress", props.end_ip_address),
        )
        for member, address in bounds:
            if parse_address(address) not in network:
                raise InvalidInput(
                    f"{where}: {member} {address} is outside the subnet {network}",
                    target=pool.target(member),
                )
        if start > end:
            raise InvalidInput(
                f"{where}: startIpAddress is above endIpAddress",
                target=pool.target("startIpAddress"),
            )
        clash = next((a for a in sorted(reserved) if start <= a <= end), None)
        if clash is not None:
            raise InvalidInput(
                f"{where} contains {ipaddress.ip_address(clash)}, the subnet's network, "
                "broadcast or gateway address",
                target=pool.target("startIpAddress"),
            )
        for other_start, other_end, other_id in taken:
            if start <= other_end and other_start <= end:
                raise InvalidInput(
                    f"{where} overlaps ipPool '{other_id}'", target=pool.target("startIpAddress")
                )
        taken.append((start, end, pool.resource_id))


def _reserved_addresses(network: IPNetwork) -> set[int]:
    """Network and broadcast addresses, which are never handed out (none on /31, /32, /127)."""
    if network.num_addresses <= 2:
        return set()
    first = int(network.network_address)
    if network.version == 6:
        return {first}
    return {first, int(network.broadcast_address)}


def ip_pool_usage(props: WireModel, facts: Facts) -> dict[str, Any]:
    assert isinstance(props, IpPoolProperties)
    start, end = props.bounds()
    return {
        "usage": {
            "numberOfIPAddresses": end - start + 1,
            "numberofIPAddressesAllocated": facts.allocated,
            "numberOfIPAddressesInTransition": 0,
        }
    }


LOGICAL_NETWORKS = Kind(
    name="logicalNetworks",
    title="LogicalNetwork",
    properties=LogicalNetworkProperties,
    shape=Shape(default("networkVirtualizationEnabled", False)),
    validate=validate_logical_network,
    check_referrers=check_still_a_provider_network,
    backrefs=(BackRef("virtualNetworks", ("virtualNetworks",), via=("logicalNetwork",)),),
    description="A partition of the physical network (management, HNV provider, VIP networks).",
)

LOGICAL_SUBNETS = Kind(
    name="subnets",
    title="LogicalSubnet",
    properties=LogicalSubnetProperties,
    shape=Shape(
        default("vlanID", 0),
        default("defaultGateways", []),
        default("dnsServers", []),
        default("isPublic", False),
        default("routes", []),
        read_only("gatewayPools", [], list[ResourceRef]),
    ),
    parent=LOGICAL_NETWORKS,
    uri_aliases=("logicalSubnets",),
    validate=validate_logical_subnet,
    backrefs=(
        BackRef("ipConfigurations", ("networkInterfaces/ipConfigurations",), via=("subnet",)),
        BackRef("networkInterfaces", ("servers/networkInterfaces",), via=("logicalSubnets",)),
    ),
    description="A prefix/VLAN pair of a logical network.",
)

IP_POOLS = Kind(
    name="ipPools",
    title="IpPool",
    properties=IpPoolProperties,
    parent=LOGICAL_SUBNETS,
    computed=ip_pool_usage,
    computed_members=(("usage", dict[str, int]),),
    description="A range of addresses of a logical subnet that the controller allocates from.",
)

KINDS = (LOGICAL_NETWORKS, LOGICAL_SUBNETS, IP_POOLS)
