"""virtualNetworks and their subnets ([MS-NCNBI] virtualNetworks; reference 5.9).

A virtual network is a tenant routing domain carried over an HNV provider logical network.
Its subnets lie inside its address space and do not overlap each other; different virtual
networks may reuse the same prefixes. Each subnet gets a VxLAN VNI (the VSID) from the
controller, shown read-only as ``properties.vsid`` (our extension).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field

from controller.core.ipam import subnet_host_range
from controller.core.kinds import BackRef, Facts, Kind
from controller.core.shape import Shape, default
from controller.core.tree import Node
from controller.core.values import AddressPrefix, IPAddress, IPNetwork, prefixes_overlap
from controller.core.wire import WireModel
from controller.errors import InvalidInput
from controller.resources.refs import AccessControlListRef, ProviderNetworkRef, RouteTableRef


class AddressSpace(WireModel):
    address_prefixes: list[AddressPrefix] = Field(alias="addressPrefixes", min_length=1)


class DhcpOptions(WireModel):
    dns_servers: list[IPAddress] = Field(default_factory=list, alias="dnsServers")


class VirtualNetworkProperties(WireModel):
    address_space: AddressSpace = Field(alias="addressSpace")
    logical_network: ProviderNetworkRef = Field(alias="logicalNetwork")
    dhcp_options: DhcpOptions | None = Field(default=None, alias="dhcpOptions")

    def networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(p) for p in self.address_space.address_prefixes]


class VirtualSubnetProperties(WireModel):
    address_prefix: AddressPrefix = Field(alias="addressPrefix")
    access_control_list: AccessControlListRef | None = Field(
        default=None, alias="accessControlList"
    )
    route_table: RouteTableRef | None = Field(default=None, alias="routeTable")

    def network(self) -> IPNetwork:
        return ipaddress.ip_network(self.address_prefix)


def validate_virtual_network(node: Node) -> None:
    """The address space does not overlap itself; every subnet lies inside it (so the space
    cannot shrink below a subnet in use) and subnets do not overlap each other."""
    spaces = node.props(VirtualNetworkProperties).networks()
    for index, space in enumerate(spaces):
        for earlier in spaces[:index]:
            if prefixes_overlap(space, earlier):
                raise InvalidInput(
                    f"virtualNetwork '{node.resource_id}': address prefixes {earlier} and "
                    f"{space} overlap",
                    target=node.target("addressSpace.addressPrefixes"),
                )
    subnets = node.kids("subnets")
    for index, subnet in enumerate(subnets):
        network = subnet.props(VirtualSubnetProperties).network()
        if not any(_within(network, space) for space in spaces):
            raise InvalidInput(
                f"subnet '{subnet.resource_id}' ({network}) is outside the address space of "
                f"virtualNetwork '{node.resource_id}' "
                f"({', '.join(str(s) for s in spaces)})",
                target=subnet.target("addressPrefix"),
            )
        for other in subnets[:index]:
            if prefixes_overlap(network, other.props(VirtualSubnetProperties).network()):
                raise InvalidInput(
                    f"subnet '{subnet.resource_id}' ({network}) overlaps subnet "
                    f"'{other.resource_id}' of the same virtual network",
                    target=subnet.target("addressPrefix"),
                )


def _within(network: IPNetwork, space: IPNetwork) -> bool:
    if isinstance(network, ipaddress.IPv4Network) and isinstance(space, ipaddress.IPv4Network):
        return network.subnet_of(space)
    if isinstance(network, ipaddress.IPv6Network) and isinstance(space, ipaddress.IPv6Network):
        return network.subnet_of(space)
    return False


def validate_virtual_subnet(node: Node) -> None:
    network = node.props(VirtualSubnetProperties).network()
    low, high = subnet_host_range(network)
    if low > high:
        broadcast = "a broadcast address, " if network.version == 4 else ""  # none in IPv6
        raise InvalidInput(
            f"subnet '{node.resource_id}' ({network}) is too small: it needs a network address, "
            f"a gateway address, {broadcast}and at least one address to hand out",
            target=node.target("addressPrefix"),
        )


def virtual_subnet_vsid(_: WireModel, facts: Facts) -> dict[str, Any]:
    return {} if facts.vsid is None else {"vsid": facts.vsid}


VIRTUAL_NETWORKS = Kind(
    name="virtualNetworks",
    title="VirtualNetwork",
    properties=VirtualNetworkProperties,
    shape=Shape(default("dhcpOptions", {}, default("dnsServers", []))),
    validate=validate_virtual_network,
    description="A tenant virtual network (routing domain) over an HNV provider network.",
)

VIRTUAL_SUBNETS = Kind(
    name="subnets",
    title="VirtualSubnet",
    properties=VirtualSubnetProperties,
    parent=VIRTUAL_NETWORKS,
    validate=validate_virtual_subnet,
    computed=virtual_subnet_vsid,
    computed_members=(("vsid", int),),
    backrefs=(
        BackRef("ipConfigurations", ("networkInterfaces/ipConfigurations",), via=("subnet",)),
    ),
    description="A subnet of a virtual network; the controller gives it a VxLAN VSID.",
)

KINDS = (VIRTUAL_NETWORKS, VIRTUAL_SUBNETS)
