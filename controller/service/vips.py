"""VIPs: the addresses of load balancer frontends and public IPs.

A VIP is an address of a subnet, held in the same ``ip_allocations`` numbering (and under the
same per-subnet lock) as the addresses of NIC ipConfigurations, so no address is ever held
twice, whoever holds it. Where VIPs come from:

* a frontend on a logical subnet: the subnet's ipPools that ``loadBalancerManager/config``
  names in ``vipIpPools`` (a Static address outside them is a 400);
* a frontend on a virtual subnet (an internal load balancer): the subnet's host addresses;
* a public IP: the VIP pools of logical subnets marked ``isPublic``, in the manager's order.

Allocators hold the shared ``vip-config`` lock for their transaction; a write of the manager
takes it exclusively, so it sees every VIP committed and none is allocated from a pool while
that pool is being removed. Removing a pool that holds VIPs is refused (409).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.core import ipam
from controller.core.tree import Node
from controller.core.values import parse_address
from controller.errors import InvalidInput, IpAddressExhausted, IpAddressInUse, ResourceInUse
from controller.resources.load_balancer_manager import LOAD_BALANCER_MANAGER
from controller.resources.load_balancer_manager import (
    LoadBalancerManagerProperties as _Manager,
)
from controller.resources.load_balancer_models import FrontendIPConfigurationProperties
from controller.resources.load_balancers import FRONTEND_IP_CONFIGURATIONS
from controller.resources.logical_networks import LogicalSubnetProperties
from controller.resources.network_interfaces import AllocationMethod
from controller.resources.public_ip_addresses import (
    PUBLIC_IP_ADDRESSES,
    PublicIPAddressProperties,
)
from controller.service.numbering import Plan, free_value, held_elsewhere
from controller.service.pools import VIP_HOLDERS, SubnetSpace, VipPool, subnet_spaces, vip_pools
from controller.store.allocations import ADDRESSES, AllocationRepository, Held
from controller.store.repository import Reference, ResourceRepository

VIP_CONFIG_LOCK = "vip-config"


@dataclass(frozen=True)
class _Source:
    """Where one holder's VIP comes from: ``ranges`` of the subnets in ``spaces``."""

    pools: Sequence[tuple[SubnetSpace, list[ipam.Range]]]
    member: str  # the member naming the address
    exhausted_member: str  # the member a 409 IpAddressExhausted names


async def check_vip_pool_changes(
    allocations: AllocationRepository,
    resources: ResourceRepository,
    tree: Node,
    stored: Mapping[uuid.UUID, Node],
) -> None:
    """A write of the manager may not drop a VIP pool that still holds VIPs (409)."""
    if tree.kind is not LOAD_BALANCER_MANAGER:
        return
    await allocations.lock(VIP_CONFIG_LOCK)
    before = stored.get(tree.instance_id) if tree.instance_id else None
    if before is None:
        return
    kept = {ref.resource_ref.lower() for ref in tree.props(_Manager).vip_ip_pools}
    dropped = [
        ref.resource_ref
        for ref in before.props(_Manager).vip_ip_pools
        if ref.resource_ref.lower() not in kept
    ]
    for pool in await vip_pools(resources, dropped):
        low, high = pool.bounds
        held = await allocations.held_in(
            ADDRESSES, low, high, pool.subnet_id, owner_kinds=VIP_HOLDERS, limit=1
        )
        if held:
            raise ResourceInUse(
                f"{pool.ref} holds the VIP of {held[0][2]}; it stays a VIP pool until no "
                "frontend or public IP holds an address of it",
                target=tree.target("vipIpPools"),
            )


async def plan_vips(
    allocations: AllocationRepository,
    resources: ResourceRepository,
    plan: Plan,
    nodes: Sequence[Node],
    removed: set[uuid.UUID],
    references: set[Reference],
) -> None:
    """Keep, take or release the VIP of every frontend and public IP among ``nodes``, and
    write it into their documents."""
    holders = [n for n in nodes if n.kind in (FRONTEND_IP_CONFIGURATIONS, PUBLIC_IP_ADDRESSES)]
    if not holders:
        return
    await allocations.lock(VIP_CONFIG_LOCK, shared=True)
    pools = await vip_pools(resources)
    ids = {_id(n) for n in holders}
    subnet_of = {r.source_id: r.target_id for r in references if r.member == "subnet"}
    subnet_of = {source: target for source, target in subnet_of.items() if source in ids}
    subnets = set(subnet_of.values())
    if any(n.kind is PUBLIC_IP_ADDRESSES for n in holders):
        subnets |= {pool.subnet_id for pool in pools}
    # Lock in a fixed order, then read: a concurrent rewrite of a subnet holds its lock.
    for subnet_id in sorted(subnets, key=str):
        await allocations.lock(f"subnet:{subnet_id}")
    spaces = await subnet_spaces(resources, subnets)
    public = await _public_subnets(resources, spaces)
    held = await allocations.held_by(ADDRESSES, sorted(ids, key=str))
    changing: list[tuple[Node, _Source, bool]] = []
    for node in holders:
        source = _source(node, spaces, subnet_of, pools, public)
        current = held.get(_id(node))
        if source is None:
            if current is not None:
                plan.release[ADDRESSES].add(_id(node))
        elif current is not None and _keeps(node, source, current):
            _write(node, source, current.value, current.scope_id)
        else:
            changing.append((node, source, current is not None))
    # Holders that give up their VIP in this very write (a swap) are no obstacle.
    releasing = removed | {_id(node) for node, _, had in changing if had}
    for node, source, had in changing:
        value, scope = await _take(allocations, plan, node, source, releasing)
        if had:
            plan.release[ADDRESSES].add(_id(node))
        row = {"subnet_id": scope, "address": ADDRESSES.encode(value), "owner_id": _id(node)}
        plan.take(ADDRESSES, scope, value, row)
        _write(node, source, value, scope)


async def _public_subnets(
    resources: ResourceRepository, spaces: Mapping[uuid.UUID, SubnetSpace]
) -> set[uuid.UUID]:
    logical = [s for s, space in spaces.items() if not _is_virtual(space)]
    properties = await resources.properties_of(sorted(logical, key=str))
    return {
        subnet
        for subnet, props in properties.items()
        if LogicalSubnetProperties.model_validate(props).is_public
    }


def _is_virtual(space: SubnetSpace) -> bool:
    return space.ref.lower().startswith("/virtualnetworks/")


def _pool_ranges(pool: VipPool, space: SubnetSpace) -> list[ipam.Range]:
    return ipam.without(ipam.normalise([pool.bounds]), space.reserved)


def _source(
    node: Node,
    spaces: Mapping[uuid.UUID, SubnetSpace],
    subnet_of: Mapping[uuid.UUID, uuid.UUID],
    pools: Sequence[VipPool],
    public: set[uuid.UUID],
) -> _Source | None:
    """Where ``node``'s VIP comes from; None for a frontend that takes a public IP's."""
    if node.kind is PUBLIC_IP_ADDRESSES:
        found = [
            (spaces[p.subnet_id], _pool_ranges(p, spaces[p.subnet_id]))
            for p in pools
            if p.subnet_id in public and spaces[p.subnet_id].network.version == 4
        ]
        return _Source(found, "ipAddress", "ipAddress")
    subnet_id = subnet_of.get(_id(node))
    if subnet_id is None:
        return None
    space = spaces[subnet_id]
    if _is_virtual(space):
        return _Source([(space, space.dynamic)], "privateIPAddress", "subnet")
    ranges = [r for p in pools if p.subnet_id == subnet_id for r in _pool_ranges(p, space)]
    if not ranges:
        raise InvalidInput(
            f"{node.ref}: {space.ref} holds no VIP pool; name one of its ipPools in "
            "loadBalancerManager/config vipIpPools, or use another subnet",
            target=node.target("subnet"),
        )
    return _Source([(space, ipam.normalise(ranges))], "privateIPAddress", "subnet")


def _method(node: Node) -> AllocationMethod | None:
    if node.kind is PUBLIC_IP_ADDRESSES:
        return node.props(PublicIPAddressProperties).public_ip_allocation_method
    return node.props(FrontendIPConfigurationProperties).private_ip_allocation_method


def _address(node: Node) -> str | None:
    if node.kind is PUBLIC_IP_ADDRESSES:
        return node.props(PublicIPAddressProperties).ip_address
    return node.props(FrontendIPConfigurationProperties).private_ip_address


def _keeps(node: Node, source: _Source, current: Held) -> bool:
    """Whether ``node`` keeps the VIP it holds: still in the same subnet, and Dynamic or the
    very address it asks for."""
    space = next((s for s, _ in source.pools if s.subnet_id == current.scope_id), None)
    if space is None:
        return False
    if _method(node) is AllocationMethod.DYNAMIC:
        return True
    return _address(node) == ipam.address_text(current.value, space.network.version)


def _write(node: Node, source: _Source, value: int, scope: uuid.UUID | None) -> None:
    version = next(s.network.version for s, _ in source.pools if s.subnet_id == scope)
    text = ipam.address_text(value, version)
    if node.kind is PUBLIC_IP_ADDRESSES:
        node.props(PublicIPAddressProperties).ip_address = text
    else:
        node.props(FrontendIPConfigurationProperties).private_ip_address = text


async def _take(
    allocations: AllocationRepository,
    plan: Plan,
    node: Node,
    source: _Source,
    releasing: set[uuid.UUID],
) -> tuple[int, uuid.UUID]:
    if _method(node) is AllocationMethod.DYNAMIC:
        for space, ranges in source.pools:
            value = await free_value(allocations, plan, ADDRESSES, ranges, space.subnet_id)
            if value is not None:
                return value, space.subnet_id
        raise IpAddressExhausted(
            _exhausted(node, source), target=node.target(source.exhausted_member)
        )
    text = _address(node)
    assert text is not None
    value = int(parse_address(text))
    space = _static_space(node, source, text)
    who = await held_elsewhere(
        allocations, plan, ADDRESSES, value, space.subnet_id, node.instance_id, releasing
    )
    if who is not None:
        raise IpAddressInUse(
            f"{node.ref}: {text} is already used by {who}", target=node.target(source.member)
        )
    return value, space.subnet_id


def _static_space(node: Node, source: _Source, text: str) -> SubnetSpace:
    """The subnet whose VIP ranges hold the Static address ``text`` (400 when none does)."""
    address = parse_address(text)
    for space, ranges in source.pools:
        if ipam.contains(ranges, int(address)) and address in space.network:
            return space
    if node.kind is PUBLIC_IP_ADDRESSES:
        where = "any public VIP pool (an ipPool in vipIpPools of a logical subnet with isPublic)"
    elif _is_virtual(source.pools[0][0]):
        space = source.pools[0][0]
        where = (
            f"the addresses {space.ref} ({space.network}) hands out (not its network, "
            "gateway or broadcast address)"
        )
    else:
        where = f"the VIP pools of {source.pools[0][0].ref}"
    raise InvalidInput(f"{node.ref}: {text} is outside {where}", target=node.target(source.member))


def _exhausted(node: Node, source: _Source) -> str:
    if not source.pools:
        return (
            f"{node.ref}: there is no public VIP pool to take an address from; name an ipPool "
            "of a logical subnet with isPublic in loadBalancerManager/config vipIpPools"
        )
    names = ", ".join(space.ref for space, _ in source.pools)
    return f"{node.ref}: no free VIP left in {names}"


def _id(node: Node) -> uuid.UUID:
    assert node.instance_id is not None
    return node.instance_id
