"""Where allocated values come from and how much of it is used: the MAC ranges of macPools,
the address space of a subnet (a virtual subnet's hosts, a logical subnet's ipPools), and the
usage and VSID facts shown on read."""

from __future__ import annotations

import ipaddress
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller.core import ipam
from controller.core.kinds import Facts
from controller.core.values import parse_address
from controller.resources.load_balancer_manager import (
    CONFIG_PATH,
    LOAD_BALANCER_MANAGER,
    LoadBalancerManagerProperties,
)
from controller.resources.load_balancers import FRONTEND_IP_CONFIGURATIONS
from controller.resources.logical_networks import (
    IP_POOLS,
    IpPoolProperties,
    LogicalSubnetProperties,
)
from controller.resources.mac_pools import MAC_POOLS, MacPoolProperties
from controller.resources.public_ip_addresses import PUBLIC_IP_ADDRESSES
from controller.resources.virtual_networks import VIRTUAL_SUBNETS, VirtualSubnetProperties
from controller.store.allocations import ADDRESSES, VSIDS, AllocationRepository
from controller.store.repository import ResourceRepository, StoredResource

MacPool = tuple[uuid.UUID, str, ipam.Range]


@dataclass(frozen=True)
class SubnetSpace:
    """Where addresses of one subnet come from."""

    subnet_id: uuid.UUID
    ref: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    dynamic: list[ipam.Range]  # values handed out by Dynamic allocation
    reserved: set[int]  # values no one may hold


# The resources that hold VIPs.
VIP_HOLDERS = (FRONTEND_IP_CONFIGURATIONS.key, PUBLIC_IP_ADDRESSES.key)


@dataclass(frozen=True)
class VipPool:
    """An ipPool named in ``loadBalancerManager/config`` ``vipIpPools``."""

    pool_id: uuid.UUID
    ref: str
    subnet_id: uuid.UUID
    bounds: ipam.Range


async def vip_pools(
    resources: ResourceRepository, refs: Sequence[str] | None = None
) -> list[VipPool]:
    """The VIP pools ``refs`` (by default every pool the manager names), in that order."""
    if refs is None:
        found = await resources.find([CONFIG_PATH.lower()])
        if not found:
            return []
        manager_id = found[CONFIG_PATH.lower()][0]
        properties = (await resources.properties_of([manager_id])).get(manager_id, {})
        manager = LoadBalancerManagerProperties.model_validate(properties)
        refs = [ref.resource_ref for ref in manager.vip_ip_pools]
    ids = await resources.find([ref.lower() for ref in refs])
    rows = {
        row.instance_id: row
        for row in await resources.with_children(
            [ids[ref.lower()][0] for ref in refs if ref.lower() in ids]
        )
    }
    pools = []
    for ref in refs:
        row = rows.get(ids[ref.lower()][0]) if ref.lower() in ids else None
        if row is not None and row.kind == IP_POOLS.key and row.parent_id is not None:
            bounds = IpPoolProperties.model_validate(row.properties).bounds()
            pools.append(VipPool(row.instance_id, row.resource_ref, row.parent_id, bounds))
    return pools


async def mac_pools(resources: ResourceRepository) -> list[MacPool]:
    pools = []
    for row in await resources.aggregates_of_kind(MAC_POOLS.key):
        bounds = MacPoolProperties.model_validate(row.properties).bounds()
        pools.append((row.instance_id, row.resource_ref, bounds))
    return pools


async def subnet_spaces(
    resources: ResourceRepository, subnet_ids: set[uuid.UUID]
) -> dict[uuid.UUID, SubnetSpace]:
    rows = await resources.with_children(sorted(subnet_ids, key=str))
    children: dict[uuid.UUID, list[StoredResource]] = defaultdict(list)
    for row in rows:
        if row.parent_id is not None:
            children[row.parent_id].append(row)
    return {
        row.instance_id: _space(row, children[row.instance_id])
        for row in rows
        if row.instance_id in subnet_ids
    }


def _space(row: StoredResource, children: Sequence[StoredResource]) -> SubnetSpace:
    if row.kind == VIRTUAL_SUBNETS.key:
        network = VirtualSubnetProperties.model_validate(row.properties).network()
        return SubnetSpace(
            row.instance_id,
            row.resource_ref,
            network,
            [ipam.subnet_host_range(network)],
            ipam.reserved_of_subnet(network),
        )
    props = LogicalSubnetProperties.model_validate(row.properties)
    network = props.network()
    gateways = {int(parse_address(g)) for g in props.default_gateways}
    reserved = {int(network.network_address), int(network.broadcast_address)} | gateways
    if network.num_addresses <= 2:
        reserved = gateways
    pools = [
        IpPoolProperties.model_validate(child.properties).bounds()
        for child in children
        if child.kind.endswith("/ipPools")
    ]
    return SubnetSpace(
        row.instance_id,
        row.resource_ref,
        network,
        ipam.without(ipam.normalise(pools), reserved),
        reserved,
    )


async def allocation_facts(
    allocations: AllocationRepository,
    resources: ResourceRepository,
    rows: Sequence[StoredResource],
) -> dict[uuid.UUID, Facts]:
    """Usage counts of macPools and ipPools, VSIDs of virtual subnets and the VIP pools in use
    of the load balancer manager among ``rows``."""
    facts: dict[uuid.UUID, Facts] = {}
    for row in rows:
        if row.kind == LOAD_BALANCER_MANAGER.key:
            in_use = await _vip_pools_in_use(allocations, resources, row.properties)
            facts[row.instance_id] = Facts(vip_pools_in_use=in_use)
    pools = [row.instance_id for row in rows if row.kind == MAC_POOLS.key]
    if pools:
        counts = await allocations.mac_counts(pools)
        facts.update({pool: Facts(allocated=counts.get(pool, 0)) for pool in pools})
    subnets = [row.instance_id for row in rows if row.kind == VIRTUAL_SUBNETS.key]
    if subnets:
        held = await allocations.held_by(VSIDS, subnets)
        facts.update({s: Facts(vsid=held[s].value) for s in subnets if s in held})
    ip_pools = [row for row in rows if row.kind == IP_POOLS.key and row.parent_id is not None]
    ranges = [
        (*IpPoolProperties.model_validate(row.properties).bounds(), row.parent_id)
        for row in ip_pools
    ]
    used = await allocations.counts(ADDRESSES, ranges) if ranges else []
    facts.update(
        {row.instance_id: Facts(allocated=n) for row, n in zip(ip_pools, used, strict=True)}
    )
    return facts


async def _vip_pools_in_use(
    allocations: AllocationRepository, resources: ResourceRepository, properties: dict[str, Any]
) -> tuple[str, ...]:
    manager = LoadBalancerManagerProperties.model_validate(properties)
    pools = await vip_pools(resources, [ref.resource_ref for ref in manager.vip_ip_pools])
    in_use = []
    for pool in pools:
        low, high = pool.bounds
        held = await allocations.held_in(
            ADDRESSES, low, high, pool.subnet_id, owner_kinds=VIP_HOLDERS, limit=1
        )
        if held:
            in_use.append(pool.ref)
    return tuple(in_use)
