"""The software load balancer manager: ``loadBalancerManager/config`` ([MS-NCNBI]
loadBalancerManager; reference 5.12).

A singleton that exists from the first start. ``vipIpPools`` names the ipPools of logical
subnets that VIPs come from: frontends of load balancers on such a subnet take their address
from its VIP pools, Dynamic public IPs from the VIP pools of subnets marked ``isPublic``.
Outbound NAT leaves the prefixes of ``outboundNatIPExemptions`` untranslated. ``vipPoolsInUse``
(read-only) lists the VIP pools that hold at least one VIP.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from controller.core.kinds import Facts, Kind
from controller.core.shape import Shape, default
from controller.core.tree import Node
from controller.core.values import AddressPrefix, OptionalIPAddress
from controller.core.wire import WireModel
from controller.errors import InvalidInput
from controller.resources.refs import IpPoolRef
from controller.resources.slb_values import Flag

# Where the singleton lives; the allocators read its VIP pools.
CONFIG_PATH = "/loadBalancerManager/config"


class LoadBalancerManagerProperties(WireModel):
    # Required by NC for a working SLB; optional here so the singleton exists from the start.
    load_balancer_manager_ip_address: OptionalIPAddress = Field(
        default=None, alias="loadBalancerManagerIPAddress"
    )
    vip_ip_pools: list[IpPoolRef] = Field(default_factory=list, alias="vipIpPools")
    outbound_nat_ip_exemptions: list[AddressPrefix] = Field(
        default_factory=list, alias="outboundNatIPExemptions"
    )
    is_outbound_nat_enabled: Flag = Field(default=True, alias="isOutboundNatEnabled")


def validate_load_balancer_manager(node: Node) -> None:
    props = node.props(LoadBalancerManagerProperties)
    seen: set[str] = set()
    for pool in props.vip_ip_pools:
        key = pool.resource_ref.lower()
        if key in seen:
            raise InvalidInput(
                f"vipIpPools names {pool.resource_ref} twice", target=node.target("vipIpPools")
            )
        seen.add(key)
    if len(set(props.outbound_nat_ip_exemptions)) != len(props.outbound_nat_ip_exemptions):
        raise InvalidInput(
            "outboundNatIPExemptions lists a prefix twice",
            target=node.target("outboundNatIPExemptions"),
        )


def vip_pools_in_use(_: WireModel, facts: Facts) -> dict[str, Any]:
    return {"vipPoolsInUse": [{"resourceRef": ref} for ref in facts.vip_pools_in_use]}


LOAD_BALANCER_MANAGER = Kind(
    name="loadBalancerManager",
    title="LoadBalancerManager",
    properties=LoadBalancerManagerProperties,
    shape=Shape(
        default("vipIpPools", []),
        default("outboundNatIPExemptions", []),
        default("isOutboundNatEnabled", True),
    ),
    singleton_id="config",
    validate=validate_load_balancer_manager,
    computed=vip_pools_in_use,
    computed_members=(("vipPoolsInUse", list[dict[str, str]]),),
    description="The software load balancer manager: the VIP pools and outbound NAT settings.",
)

KINDS = (LOAD_BALANCER_MANAGER,)
