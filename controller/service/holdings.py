"""Rewrites that would invalidate what resources hold are refused (409 ResourceInUse).

A virtual or logical subnet may not move its prefix away from addresses ipConfigurations hold,
nor make a held address its gateway (or network/broadcast address); a macPool may not shrink
below the MACs network interfaces hold from it. Only subnets and pools whose document changed
are checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from controller.core import ipam
from controller.core.tree import Node
from controller.core.values import format_mac_bare, parse_address
from controller.errors import ResourceInUse
from controller.resources.logical_networks import LOGICAL_SUBNETS, LogicalSubnetProperties
from controller.resources.mac_pools import MAC_POOLS, MacPoolProperties
from controller.resources.virtual_networks import VIRTUAL_SUBNETS, VirtualSubnetProperties
from controller.store.allocations import ADDRESSES, AllocationRepository

_TOP_ADDRESS = 2**128 - 1
_HANDING_OUT = frozenset({VIRTUAL_SUBNETS, LOGICAL_SUBNETS, MAC_POOLS})


async def check_holdings(
    allocations: AllocationRepository, tree: Node, stored: Mapping[uuid.UUID, Node]
) -> None:
    """Each check first takes the lock the allocators of that subnet or of the MACs take, so
    no allocation can slip in between the check and the commit."""
    # Only the kinds that hand out values are compared (comparing every rule of a 10,000-rule
    # ACL with its stored self took ~10 ms of the event loop for nothing).
    changed = [n for n in tree.walk() if n.kind in _HANDING_OUT and _changed(n, stored)]
    subnets = [n for n in changed if n.kind is VIRTUAL_SUBNETS or n.kind is LOGICAL_SUBNETS]
    for subnet in sorted(subnets, key=lambda n: str(n.instance_id)):
        await allocations.lock(f"subnet:{subnet.instance_id}")
    for subnet in subnets:
        await _check_subnet(allocations, subnet)
    pools = [n for n in changed if n.kind is MAC_POOLS]
    if pools:
        await allocations.lock("mac")
    for pool in pools:
        await _check_mac_pool(allocations, pool)


def _changed(node: Node, stored: Mapping[uuid.UUID, Node]) -> bool:
    """Whether a stored node's document, or its children's (a logical subnet's ipPools),
    differ from what is being written."""
    before = stored.get(node.instance_id) if node.instance_id else None
    if before is None:
        return False
    if before.model != node.model:
        return True
    return {
        name: [child.model for child in children] for name, children in before.children.items()
    } != {name: [child.model for child in children] for name, children in node.children.items()}


async def _check_subnet(allocations: AllocationRepository, subnet: Node) -> None:
    if subnet.kind is VIRTUAL_SUBNETS:
        network = subnet.props(VirtualSubnetProperties).network()
        reserved = ipam.reserved_of_subnet(network)
        member = "addressPrefix"
    else:
        props = subnet.props(LogicalSubnetProperties)
        network = props.network()
        reserved = {int(network.network_address), int(network.broadcast_address)}
        reserved |= {int(parse_address(g)) for g in props.default_gateways}
        member = "defaultGateways" if props.default_gateways else "addressPrefix"
    assert subnet.instance_id is not None
    first, last = int(network.network_address), int(network.broadcast_address)
    outside: list[int] = []
    if first > 0:
        outside += await allocations.used_from(ADDRESSES, 0, first - 1, subnet.instance_id, limit=1)
    outside += await allocations.used_from(
        ADDRESSES, last + 1, _TOP_ADDRESS, subnet.instance_id, limit=1
    )
    version = network.version
    if outside:
        why = f"outside {network}"
        await _refuse(allocations, subnet, outside[0], version, "addressPrefix", why)
    for value in sorted(reserved):
        if await allocations.holder(ADDRESSES, value, subnet.instance_id) is not None:
            why = "a network, gateway or broadcast address"
            await _refuse(allocations, subnet, value, version, member, why)


async def _refuse(
    allocations: AllocationRepository,
    subnet: Node,
    value: int,
    version: int,
    member: str,
    why: str,
) -> None:
    holder = await allocations.holder(ADDRESSES, value, subnet.instance_id)
    who = holder[1] if holder else "an ipConfiguration"
    raise ResourceInUse(
        f"{subnet.ref}: {who} holds {ipam.address_text(value, version)}, which the new "
        f"settings would make {why}",
        target=subnet.target(member),
    )


async def _check_mac_pool(allocations: AllocationRepository, pool: Node) -> None:
    assert pool.instance_id is not None
    low, high = pool.props(MacPoolProperties).bounds()
    held: Sequence[tuple[int, str]] = await allocations.pool_macs_outside(
        pool.instance_id, low, high, limit=1
    )
    if held:
        mac, owner = held[0]
        raise ResourceInUse(
            f"{pool.ref}: {owner} holds MAC {format_mac_bare(mac)} from this pool, outside the "
            "new range",
            target=pool.target("startMacAddress"),
        )
