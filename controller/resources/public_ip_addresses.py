"""publicIPAddresses ([MS-NCNBI] publicIPAddresses; reference 5.11).

A public IP is a VIP of a public VIP pool (an ipPool named in ``loadBalancerManager/config``
``vipIpPools`` whose logical subnet has ``isPublic``), bound to one NIC ipConfiguration (1:1
NAT) or one load balancer frontend, shown read-only as ``ipConfiguration``. ``Static`` takes the
``ipAddress`` the client gives (it must lie in a public VIP pool and be held by no one);
``Dynamic`` (the default when no address is sent) lets the controller pick one. A public IP in
use cannot be deleted (409 naming its user).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from controller.core.kinds import BackRef, Kind
from controller.core.shape import Shape, default, read_only
from controller.core.tree import Node
from controller.core.values import OptionalIPAddress, parse_address
from controller.core.wire import WireEnum, WireModel
from controller.errors import InvalidInput
from controller.resources.network_interfaces import AllocationMethod
from controller.resources.refs import FRONTENDS
from controller.resources.slb_values import IdleTimeout


class PublicIPVersion(WireEnum):
    IPV4 = "IPv4"


class PublicIpDnsSettings(WireModel):
    domain_name_label: str | None = Field(default=None, max_length=63, alias="domainNameLabel")
    fqdn: str | None = Field(default=None, max_length=255)


class PublicIPAddressProperties(WireModel):
    ip_address: OptionalIPAddress = Field(default=None, alias="ipAddress")
    public_ip_allocation_method: AllocationMethod | None = Field(
        default=None, alias="publicIPAllocationMethod"
    )
    idle_timeout_in_minutes: IdleTimeout = Field(default=4, alias="idleTimeoutInMinutes")
    public_ip_address_version: PublicIPVersion = Field(
        default=PublicIPVersion.IPV4, alias="publicIPAddressVersion"
    )
    dns_settings: PublicIpDnsSettings | None = Field(default=None, alias="dnsSettings")

    @model_validator(mode="after")
    def _default_method(self) -> Self:
        if self.public_ip_allocation_method is None:
            static = self.ip_address is not None
            self.public_ip_allocation_method = (
                AllocationMethod.STATIC if static else AllocationMethod.DYNAMIC
            )
        return self


def validate_public_ip_address(node: Node) -> None:
    props = node.props(PublicIPAddressProperties)
    if props.public_ip_allocation_method is AllocationMethod.STATIC and props.ip_address is None:
        raise InvalidInput(
            f"publicIPAddress '{node.resource_id}': a Static public IP needs ipAddress",
            target=node.target("ipAddress"),
        )
    if props.ip_address is not None and parse_address(props.ip_address).version != 4:
        raise InvalidInput(
            f"publicIPAddress '{node.resource_id}': {props.ip_address} is not an IPv4 address",
            target=node.target("ipAddress"),
        )


PUBLIC_IP_ADDRESSES = Kind(
    name="publicIPAddresses",
    title="PublicIPAddress",
    properties=PublicIPAddressProperties,
    shape=Shape(
        default("idleTimeoutInMinutes", 4),
        default("publicIPAddressVersion", "IPv4"),
        # NC's traffic counters; the controller keeps none.
        read_only("counters", [], list[dict[str, Any]]),
    ),
    validate=validate_public_ip_address,
    backrefs=(
        BackRef(
            "ipConfiguration",
            ("networkInterfaces/ipConfigurations", FRONTENDS),
            via=("publicIPAddress",),
            single=True,
        ),
    ),
    description="A public VIP bound 1:1 to a NIC ipConfiguration or to a load balancer frontend.",
)

KINDS = (PUBLIC_IP_ADDRESSES,)
