"""networkInterfaces and their ipConfigurations ([MS-NCNBI] networkInterfaces; reference 5.10
and 6).

A NIC is a VM NIC or a container host's NIC; each ipConfiguration is one IP endpoint (a
container host has one per container). The controller allocates what the client leaves
``Dynamic``: the MAC from a macPool, the address from the subnet (virtual subnets hand out
everything but the network, gateway and broadcast addresses; logical subnets their ipPools).
``server`` places the NIC on a host: read-only in the spec, accepted on PUT as our extension.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from controller.core.kinds import Kind, SiblingAccord, SiblingKey
from controller.core.refs import ResourceRef
from controller.core.scalars import IntRange, WireBool
from controller.core.shape import Shape, default, read_only
from controller.core.tree import Node
from controller.core.values import (
    Bandwidth,
    BareMac,
    IPAddress,
    OptionalIPAddress,
    Percent,
    UInt32,
    parse_address,
    parse_mac,
)
from controller.core.wire import WireEnum, WireModel
from controller.errors import InvalidInput
from controller.resources.refs import (
    AccessControlListRef,
    BackendPoolRef,
    InboundNatRuleRef,
    PublicIPAddressRef,
    ServerRef,
    SubnetRef,
)

# The I/G bit of the first octet: set for multicast and broadcast MACs.
_GROUP_BIT = 1 << 40


class AllocationMethod(WireEnum):
    STATIC = "Static"
    DYNAMIC = "Dynamic"


class Switch(WireEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"

    @classmethod
    def _missing_(cls, value: object) -> Switch | None:
        # PowerShell scripts send booleans for these: "true", "True", true.
        if isinstance(value, bool):
            return cls.ENABLED if value else cls.DISABLED
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return cls.ENABLED if value.strip().lower() == "true" else cls.DISABLED
        found = super()._missing_(value)
        return found if isinstance(found, Switch) else None


class InterruptModeration(WireEnum):
    DEFAULT = "Default"
    ADAPTIVE = "Adaptive"
    OFF = "Off"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


class IPVersion(WireEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"


class QosSettings(WireModel):
    outbound_reserved_value: Bandwidth | None = Field(default=None, alias="outboundReservedValue")
    outbound_maximum_mbps: Bandwidth | None = Field(default=None, alias="outboundMaximumMbps")
    inbound_maximum_mbps: Bandwidth | None = Field(default=None, alias="inboundMaximumMbps")
    enable_hardware_limits: WireBool | None = Field(default=None, alias="enableHardwareLimits")


class PortSettings(WireModel):
    mac_spoofing_enabled: Switch | None = Field(default=None, alias="macSpoofingEnabled")
    arp_guard_enabled: Switch | None = Field(default=None, alias="arpGuardEnabled")
    dhcp_guard_enabled: Switch | None = Field(default=None, alias="dhcpGuardEnabled")
    storm_limit: UInt32 | None = Field(default=None, alias="stormLimit")
    port_flow_limit: UInt32 | None = Field(default=None, alias="portFlowLimit")
    vmq_weight: Percent | None = Field(default=None, alias="vmqWeight")
    iov_weight: Percent | None = Field(default=None, alias="iovWeight")
    iov_interrupt_moderation: InterruptModeration | None = Field(
        default=None, alias="iovInterruptModeration"
    )
    # NC answers 0 for a NIC that never asked for queue pairs; a client puts that back.
    iov_queue_pairs_requested: Annotated[int, IntRange(0, 4096)] | None = Field(
        default=None, alias="iovQueuePairsRequested"
    )
    qos_settings: QosSettings | None = Field(default=None, alias="qosSettings")


class DnsSettings(WireModel):
    dns_servers: list[IPAddress] = Field(default_factory=list, alias="dnsServers")


class NetworkInterfaceProperties(WireModel):
    private_mac_address: BareMac | None = Field(default=None, alias="privateMacAddress")
    private_mac_allocation_method: AllocationMethod | None = Field(
        default=None, alias="privateMacAllocationMethod"
    )
    dns_settings: DnsSettings | None = Field(default=None, alias="dnsSettings")
    port_settings: PortSettings | None = Field(default=None, alias="portSettings")
    is_host_virtual_network_interface: WireBool = Field(
        default=False, alias="isHostVirtualNetworkInterface"
    )
    is_primary: WireBool = Field(default=True, alias="isPrimary")
    is_multitenant_stack: WireBool = Field(default=False, alias="isMultitenantStack")
    internal_dns_name_label: str | None = Field(
        default=None, max_length=63, alias="internalDnsNameLabel"
    )
    server: ServerRef | None = None

    @model_validator(mode="after")
    def _default_mac_method(self) -> Self:
        if self.private_mac_allocation_method is None:
            static = self.private_mac_address is not None
            self.private_mac_allocation_method = (
                AllocationMethod.STATIC if static else AllocationMethod.DYNAMIC
            )
        return self


class IpConfigurationProperties(WireModel):
    private_ip_address: OptionalIPAddress = Field(default=None, alias="privateIPAddress")
    private_ip_allocation_method: AllocationMethod | None = Field(
        default=None, alias="privateIPAllocationMethod"
    )
    private_ip_address_version: IPVersion | None = Field(
        default=None, alias="privateIPAddressVersion"
    )
    subnet: SubnetRef
    access_control_list: AccessControlListRef | None = Field(
        default=None, alias="accessControlList"
    )
    # Load balancing: the backend pools this endpoint is a DIP of, the inbound NAT rules that
    # forward to it (each rule to one endpoint at most), its 1:1 public IP.
    load_balancer_backend_address_pools: list[BackendPoolRef] = Field(
        default_factory=list, alias="loadBalancerBackendAddressPools"
    )
    load_balancer_inbound_nat_rules: list[InboundNatRuleRef] = Field(
        default_factory=list, alias="loadBalancerInboundNatRules"
    )
    public_ip_address: PublicIPAddressRef | None = Field(default=None, alias="publicIPAddress")

    @model_validator(mode="after")
    def _default_ip_method(self) -> Self:
        if self.private_ip_allocation_method is None:
            static = self.private_ip_address is not None
            self.private_ip_allocation_method = (
                AllocationMethod.STATIC if static else AllocationMethod.DYNAMIC
            )
        return self


def validate_network_interface(node: Node) -> None:
    props = node.props(NetworkInterfaceProperties)
    if props.private_mac_allocation_method is AllocationMethod.STATIC and (
        props.private_mac_address is None
    ):
        raise InvalidInput(
            f"networkInterface '{node.resource_id}': a Static MAC needs privateMacAddress",
            target=node.target("privateMacAddress"),
        )
    if props.private_mac_address is not None:
        mac = parse_mac(props.private_mac_address)
        if mac == 0 or mac & _GROUP_BIT:
            raise InvalidInput(
                f"networkInterface '{node.resource_id}': {props.private_mac_address} is not a "
                "unicast MAC address",
                target=node.target("privateMacAddress"),
            )
    _check_qos(node, props)


def _check_qos(node: Node, props: NetworkInterfaceProperties) -> None:
    qos = props.port_settings.qos_settings if props.port_settings else None
    if qos is None or qos.outbound_reserved_value is None:
        return
    # A maximum of 0 means "no limit", as on Hyper-V.
    maximum = qos.outbound_maximum_mbps
    if maximum and qos.outbound_reserved_value > maximum:
        raise InvalidInput(
            f"networkInterface '{node.resource_id}': outboundReservedValue "
            f"{qos.outbound_reserved_value} is above outboundMaximumMbps {maximum}",
            target=node.target("portSettings.qosSettings.outboundReservedValue"),
        )


def _static_address(config: Node) -> tuple[str, ...] | None:
    """The (subnet, address) a Static ipConfiguration asks for: no two of one NIC may ask for
    one (a Dynamic one holds whatever it was given, which the allocator keeps apart)."""
    ip = config.props(IpConfigurationProperties)
    if ip.private_ip_allocation_method is not AllocationMethod.STATIC:
        return None
    assert ip.private_ip_address is not None  # validate_ip_configuration saw to it
    return (ip.subnet.resource_ref.lower(), str(parse_address(ip.private_ip_address)))


def _address_clash(config: Node, other: str) -> InvalidInput:
    address = config.props(IpConfigurationProperties).private_ip_address
    return InvalidInput(
        f"ipConfigurations '{config.resource_id}' and '{other}' both ask for {address}",
        target=config.target("privateIPAddress"),
    )


def _virtual_network(subnet_key: str) -> str | None:
    """The virtual network of a subnet's lower-cased resourceRef (None for a logical one)."""
    if subnet_key.startswith("/virtualnetworks/"):
        return subnet_key.split("/")[2]
    return None


def _multitenant(nic: Node) -> bool:
    return nic.props(NetworkInterfaceProperties).is_multitenant_stack


def _networks_clash(nic: Node) -> InvalidInput:
    return InvalidInput(
        f"networkInterface '{nic.resource_id}' has ipConfigurations in several virtual "
        "networks; only a NIC with isMultitenantStack may",
        target=nic.target("isMultitenantStack"),
    )


def validate_ip_configuration(config: Node) -> None:
    ip = config.props(IpConfigurationProperties)
    if ip.private_ip_allocation_method is AllocationMethod.STATIC and ip.private_ip_address is None:
        raise InvalidInput(
            f"ipConfiguration '{config.resource_id}': a Static address needs privateIPAddress",
            target=config.target("privateIPAddress"),
        )
    if ip.private_ip_address is not None and ip.private_ip_address_version is not None:
        version = parse_address(ip.private_ip_address).version
        if ip.private_ip_address_version.value != f"IPv{version}":
            raise InvalidInput(
                f"ipConfiguration '{config.resource_id}': {ip.private_ip_address} is not "
                f"{ip.private_ip_address_version.value}",
                target=config.target("privateIPAddressVersion"),
            )
    for member, refs in (
        ("loadBalancerBackendAddressPools", ip.load_balancer_backend_address_pools),
        ("loadBalancerInboundNatRules", ip.load_balancer_inbound_nat_rules),
    ):
        keys = [ref.resource_ref.lower() for ref in refs]
        if len(set(keys)) != len(keys):
            raise InvalidInput(
                f"ipConfiguration '{config.resource_id}': {member} names a resource twice",
                target=config.target(member),
            )


NETWORK_INTERFACES = Kind(
    name="networkInterfaces",
    title="NetworkInterface",
    properties=NetworkInterfaceProperties,
    shape=Shape(
        default("dnsSettings", {}, default("dnsServers", [])),
        # Hyper-V's port defaults, as NC renders them for a NIC that never set them.
        default(
            "portSettings",
            {},
            default("macSpoofingEnabled", "Disabled"),
            default("arpGuardEnabled", "Disabled"),
            default("dhcpGuardEnabled", "Disabled"),
            default("stormLimit", 0),
            default("portFlowLimit", 0),
            default("vmqWeight", 100),
            default("iovWeight", 0),
        ),
        default("isHostVirtualNetworkInterface", False),
        default("isPrimary", True),
        default("isMultitenantStack", False),
        # Service insertion is not implemented: no NIC has elements.
        read_only("serviceInsertionElements", [], list[ResourceRef]),
    ),
    validate=validate_network_interface,
    description="A VM NIC or container host NIC: a MAC and one ipConfiguration per endpoint.",
)

IP_CONFIGURATIONS = Kind(
    name="ipConfigurations",
    title="IpConfiguration",
    properties=IpConfigurationProperties,
    shape=Shape(
        default("loadBalancerBackendAddressPools", []),
        default("loadBalancerInboundNatRules", []),
    ),
    parent=NETWORK_INTERFACES,
    validate=validate_ip_configuration,
    sibling_key=SiblingKey(("subnet", "privateIPAddress"), _address_clash, _static_address),
    sibling_accord=SiblingAccord("subnet", _virtual_network, _multitenant, _networks_clash),
    # One more endpoint of a container host's NIC of 1,000 costs one endpoint.
    written_alone=True,
    description="One IP endpoint of a NIC: its subnet, address and ACL.",
)

KINDS = (NETWORK_INTERFACES, IP_CONFIGURATIONS)
