"""The reference types resources use to point at each other, with the kinds each may target."""

from __future__ import annotations

from typing import Any, ClassVar

from controller.core.refs import ResourceRef

LOGICAL_SUBNET = "logicalNetworks/subnets"
VIRTUAL_SUBNET = "virtualNetworks/subnets"


class AccessControlListRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = ("accessControlLists",)


class RouteTableRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = ("routeTables",)


class CredentialRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = ("credentials",)


class LogicalSubnetRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = (LOGICAL_SUBNET,)


class SubnetRef(ResourceRef):
    """The subnet of an ipConfiguration: a virtual subnet, or a logical (VLAN) subnet."""

    targets: ClassVar[tuple[str, ...]] = (VIRTUAL_SUBNET, LOGICAL_SUBNET)


class ServerRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = ("servers",)


class ProviderNetworkRef(ResourceRef):
    """The logical network a virtual network runs over: it must carry virtual networks."""

    targets: ClassVar[tuple[str, ...]] = ("logicalNetworks",)
    checks_target: ClassVar[bool] = True

    @classmethod
    def target_problem(cls, properties: dict[str, Any]) -> str | None:
        if properties.get("networkVirtualizationEnabled") is True:
            return None
        return "its networkVirtualizationEnabled is not true (it is not an HNV provider network)"


# -- software load balancing ------------------------------------------------------------------

LOAD_BALANCERS = "loadBalancers"
FRONTENDS = "loadBalancers/frontendIPConfigurations"
BACKEND_POOLS = "loadBalancers/backendAddressPools"
PROBES = "loadBalancers/probes"
INBOUND_NAT_RULES = "loadBalancers/inboundNatRules"
PUBLIC_IPS = "publicIPAddresses"
IP_POOLS = "logicalNetworks/subnets/ipPools"


class IpPoolRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = (IP_POOLS,)


class FrontendRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = (FRONTENDS,)


class BackendPoolRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = (BACKEND_POOLS,)


class ProbeRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = (PROBES,)


class InboundNatRuleRef(ResourceRef):
    """An inbound NAT rule forwards to one backend: one ipConfiguration may reference it."""

    targets: ClassVar[tuple[str, ...]] = (INBOUND_NAT_RULES,)
    exclusive: ClassVar[bool] = True


class PublicIPAddressRef(ResourceRef):
    """A public IP is bound to one NIC ipConfiguration or one load balancer frontend."""

    targets: ClassVar[tuple[str, ...]] = (PUBLIC_IPS,)
    exclusive: ClassVar[bool] = True
