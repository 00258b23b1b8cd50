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
