"""Where allocated values come from and how much of it is used: the MAC ranges of macPools,
the address space of a subnet (a virtual subnet's hosts, a logical subnet's ipPools), and the
usage and VSID facts shown on read."""

from __future__ import annotations

import ipaddress
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from controller.core import ipam
from controller.core.kinds import Facts
from controller.core.values import parse_address
from controller.resources.logical_networks import (
    IP_POOLS,
    IpPoolProperties,
    LogicalSubnetProperties,
)
from controller.resources.mac_pools import MAC_POOLS, MacPoolProperties
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
    allocations: AllocationRepository, rows: Sequence[StoredResource]
) -> dict[uuid.UUID, Facts]:
    """Usage counts of macPools and ipPools and VSIDs of virtual subnets among ``rows``."""
    facts: dict[uuid.UUID, Facts] = {}
    pools = [row.instance_id for row in rows if row.kind == MAC_POOLS.key]
    if pools:
        counts = await allocations.mac_counts(pools)
        facts.update({pool: Facts(allocated=counts.get(pool, 0)) for pool in pools})
    subnets = [row.instance_id for row in rows if row.kind == VIRTUAL_SUBNETS.key]
    if subnets:
        held = await allocations.held_by(VSIDS, subnets)
        facts.update({s: Facts(vsid=held[s].value) for s in subnets if s in held})
    for row in rows:
        if row.kind == IP_POOLS.key and row.parent_id is not None:
            low, high = IpPoolProperties.model_validate(row.properties).bounds()
            used = await allocations.count(ADDRESSES, low, high, row.parent_id)
            facts[row.instance_id] = Facts(allocated=used)
    return facts
