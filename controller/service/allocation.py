"""What the controller hands out: VSIDs of virtual subnets, MACs of network interfaces and
IP addresses of ipConfigurations.

``Allocator.plan`` runs inside the write transaction of an aggregate, after its references are
resolved and before its rows are written: it keeps what a resource already holds, takes new
values where needed (writing them into the documents, e.g. a Dynamic ``privateIPAddress``),
and refuses with a 400 (address outside its subnet), a 409 (address or MAC held by someone
else) or a 409 ``...Exhausted``. ``Allocator.apply`` writes the allocation rows once the
resource rows exist.

Allocators of VSIDs take a transaction-scoped advisory lock on PostgreSQL, so they never pick
the same value. Dynamic MACs and addresses are reserved instead, without waiting for other
writers to commit (service/reservations.py); their locks are taken shared, and exclusively only
by what must see no allocation in flight (a subnet or macPool narrowed, VIPs). The primary keys
of the allocation tables are the backstop (a violation is retried by ``Database.run``). SQLite
serialises writers anyway. Values are taken after the highest one in use, and only when that
end of the pool is exhausted are gaps searched, so sequential allocation stays cheap.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.core import ipam
from controller.core.tree import Node
from controller.core.values import format_mac_bare, parse_address, parse_mac
from controller.errors import (
    InvalidInput,
    IpAddressExhausted,
    IpAddressInUse,
    MacAddressExhausted,
    MacAddressInUse,
    VsidExhausted,
)
from controller.resources.network_interfaces import (
    IP_CONFIGURATIONS,
    NETWORK_INTERFACES,
    AllocationMethod,
    IpConfigurationProperties,
    NetworkInterfaceProperties,
)
from controller.resources.virtual_networks import VIRTUAL_SUBNETS
from controller.service.holdings import check_holdings
from controller.service.numbering import Plan, free_value, held_elsewhere
from controller.service.pools import MacPool, SubnetSpace, mac_pools, subnet_spaces
from controller.service.reservations import Reservations
from controller.service.vips import check_vip_pool_changes, plan_vips
from controller.store.allocations import (
    ADDRESSES,
    MACS,
    VSIDS,
    AllocationRepository,
    Numbering,
)
from controller.store.repository import Reference, ResourceRepository


@dataclass(frozen=True)
class AllocationSettings:
    vsid_min: int = 4096
    vsid_max: int = 16_777_214


class Allocator:
    def __init__(self, settings: AllocationSettings) -> None:
        self.settings = settings

    async def plan(
        self,
        allocations: AllocationRepository,
        resources: ResourceRepository,
        tree: Node,
        *,
        stored: Mapping[uuid.UUID, Node],
        removed: set[uuid.UUID],
        references: set[Reference],
        reservations: Reservations,
    ) -> Plan:
        """Decide the allocations of ``tree`` (``stored``: its nodes before this write);
        Dynamic MACs and addresses are reserved through ``reservations``."""
        await check_holdings(allocations, tree, stored)
        await check_vip_pool_changes(allocations, resources, tree, stored)
        plan = Plan()
        nodes = list(tree.walk())
        subnets = [n for n in nodes if n.kind is VIRTUAL_SUBNETS]
        await self._plan_vsids(allocations, plan, subnets, stored)
        # Addresses before MACs: subnet locks before the MAC lock is the order check_holdings
        # takes them in (writers of NICs take both shared; it takes them exclusively).
        configs = [n for n in nodes if n.kind is IP_CONFIGURATIONS]
        await self._plan_addresses(
            allocations, resources, plan, configs, stored, removed, references, reservations
        )
        nics = [n for n in nodes if n.kind is NETWORK_INTERFACES]
        await self._plan_macs(
            allocations, resources, plan, nics, stored, removed, references, reservations
        )
        await plan_vips(allocations, resources, plan, nodes, removed, references)
        return plan

    async def apply(
        self, allocations: AllocationRepository, plan: Plan, reservations: Reservations
    ) -> None:
        for numbering, owners in plan.release.items():
            await allocations.release(numbering, owners)
        for numbering, rows in plan.add.items():
            await allocations.add(numbering, rows)
        await reservations.claim(allocations.connection)

    # -- VSIDs ----------------------------------------------------------------------------

    async def _plan_vsids(
        self,
        allocations: AllocationRepository,
        plan: Plan,
        subnets: Sequence[Node],
        stored: Mapping[uuid.UUID, Node],
    ) -> None:
        held = await allocations.held_by(VSIDS, _stored_ids(subnets, stored))
        new = [n for n in subnets if _id(n) not in held]
        if not new:
            return
        await allocations.lock("vsid")
        pool = [(self.settings.vsid_min, self.settings.vsid_max)]
        for subnet in new:
            vsid = await free_value(allocations, plan, VSIDS, pool, None)
            if vsid is None:
                raise VsidExhausted(
                    f"no free VSID left in {pool[0][0]}-{pool[0][1]} for {subnet.ref}",
                    target=subnet.ref,
                )
            plan.take(VSIDS, None, vsid, {"vsid": vsid, "subnet_id": _id(subnet)})

    # -- MACs -----------------------------------------------------------------------------

    async def _plan_macs(
        self,
        allocations: AllocationRepository,
        resources: ResourceRepository,
        plan: Plan,
        nics: Sequence[Node],
        stored: Mapping[uuid.UUID, Node],
        removed: set[uuid.UUID],
        references: set[Reference],
        reservations: Reservations,
    ) -> None:
        if not nics:
            return
        held = await allocations.held_by(MACS, _stored_ids(nics, stored))
        pools: list[MacPool] | None = None
        for nic in nics:
            props = nic.props(NetworkInterfaceProperties)
            current = held.get(_id(nic))
            wanted = (
                None if props.private_mac_address is None else parse_mac(props.private_mac_address)
            )
            static = props.private_mac_allocation_method is AllocationMethod.STATIC
            if current is not None and (not static or wanted == current.value):
                mac, pool_id = current.value, current.pool_id
            else:
                await allocations.lock("mac", shared=True)
                if pools is None:
                    pools = await mac_pools(resources)
                if static:
                    assert wanted is not None
                    await _refuse_if_held(allocations, plan, MACS, wanted, None, nic, removed)
                    mac, pool_id = wanted, _pool_holding(pools, wanted)
                else:
                    mac, pool_id = await _draw_mac(allocations, plan, nic, pools, reservations)
                if current is not None:
                    plan.release[MACS].add(_id(nic))
                plan.take(MACS, None, mac, {"mac": mac, "pool_id": pool_id, "owner_id": _id(nic)})
            props.private_mac_address = format_mac_bare(mac)
            if pool_id is not None:
                # A NIC holding a pool's MAC uses the pool: the pool cannot be deleted under it.
                references.add(Reference(_id(nic), "privateMacAddress", pool_id))

    # -- IP addresses ---------------------------------------------------------------------

    async def _plan_addresses(
        self,
        allocations: AllocationRepository,
        resources: ResourceRepository,
        plan: Plan,
        configs: Sequence[Node],
        stored: Mapping[uuid.UUID, Node],
        removed: set[uuid.UUID],
        references: set[Reference],
        reservations: Reservations,
    ) -> None:
        if not configs:
            return
        subnet_of = {r.source_id: r.target_id for r in references if r.member == "subnet"}
        # Lock the subnets first, in a fixed order (no cycles between writers), and only then
        # read them: a concurrent rewrite of a subnet holds its lock until it commits. Shared:
        # writers of addresses reserve them (service/reservations.py).
        for subnet_id in sorted(set(subnet_of.values()), key=str):
            await allocations.lock(f"subnet:{subnet_id}", shared=True)
        spaces = await subnet_spaces(resources, set(subnet_of.values()))
        held = await allocations.held_by(ADDRESSES, _stored_ids(configs, stored))
        changing = []
        for config in configs:
            space = spaces[subnet_of[_id(config)]]
            props = config.props(IpConfigurationProperties)
            _check_version(config, props, space)
            current = held.get(_id(config))
            if (
                current is not None
                and current.scope_id == space.subnet_id
                and (
                    props.private_ip_allocation_method is AllocationMethod.DYNAMIC
                    or props.private_ip_address
                    == ipam.address_text(current.value, space.network.version)
                )
            ):
                props.private_ip_address = ipam.address_text(current.value, space.network.version)
            else:
                changing.append((config, space, current is not None))
        # Holders that give up their address in this very write (a swap) are no obstacle.
        releasing = removed | {_id(config) for config, _, had in changing if had}
        for config, space, had in changing:
            value = await _address_for(allocations, plan, config, space, releasing, reservations)
            if had:
                plan.release[ADDRESSES].add(_id(config))
            row = {
                "subnet_id": space.subnet_id,
                "address": ADDRESSES.encode(value),
                "owner_id": _id(config),
            }
            plan.take(ADDRESSES, space.subnet_id, value, row)
            props = config.props(IpConfigurationProperties)
            props.private_ip_address = ipam.address_text(value, space.network.version)


async def _draw_mac(
    allocations: AllocationRepository,
    plan: Plan,
    nic: Node,
    pools: list[MacPool],
    reservations: Reservations,
) -> tuple[int, uuid.UUID | None]:
    for pool_id, _, bounds in pools:
        mac = await reservations.draw(allocations, plan, MACS, [bounds], None)
        if mac is not None:
            return mac, pool_id
    raise MacAddressExhausted(
        f"{nic.ref}: no free MAC address in any macPool"
        if pools
        else f"{nic.ref}: a Dynamic MAC needs a macPool, and there is none",
        target=nic.target("privateMacAddress"),
    )


async def _address_for(
    allocations: AllocationRepository,
    plan: Plan,
    config: Node,
    space: SubnetSpace,
    removed: set[uuid.UUID],
    reservations: Reservations,
) -> int:
    props = config.props(IpConfigurationProperties)
    if props.private_ip_allocation_method is AllocationMethod.DYNAMIC:
        subnet = space.subnet_id
        value = await reservations.draw(allocations, plan, ADDRESSES, space.dynamic, subnet)
        if value is None:
            raise IpAddressExhausted(
                f"{config.ref}: no free address left in {space.ref} ({space.network})",
                target=config.target("subnet"),
            )
        return value
    assert props.private_ip_address is not None
    address = parse_address(props.private_ip_address)
    value = int(address)
    if address not in space.network:
        raise InvalidInput(
            f"{config.ref}: {address} is outside {space.ref} ({space.network})",
            target=config.target("privateIPAddress"),
        )
    if value in space.reserved:
        raise InvalidInput(
            f"{config.ref}: {address} is the network, gateway or broadcast address of {space.ref}",
            target=config.target("privateIPAddress"),
        )
    await _refuse_if_held(allocations, plan, ADDRESSES, value, space.subnet_id, config, removed)
    return value


def _check_version(config: Node, props: IpConfigurationProperties, space: SubnetSpace) -> None:
    version = props.private_ip_address_version
    if version is not None and version.value != f"IPv{space.network.version}":
        raise InvalidInput(
            f"{config.ref}: {space.ref} ({space.network}) has no {version.value} addresses",
            target=config.target("privateIPAddressVersion"),
        )


async def _refuse_if_held(
    allocations: AllocationRepository,
    plan: Plan,
    numbering: Numbering,
    value: int,
    scope: uuid.UUID | None,
    owner: Node,
    removed: set[uuid.UUID],
) -> None:
    """409 when someone other than ``owner`` (and not being removed) holds ``value``."""
    who = await held_elsewhere(
        allocations, plan, numbering, value, scope, owner.instance_id, removed
    )
    if who is None:
        return
    if numbering is MACS:
        raise MacAddressInUse(
            f"{owner.ref}: MAC {format_mac_bare(value)} is already used by {who}",
            target=owner.target("privateMacAddress"),
        )
    address = owner.props(IpConfigurationProperties).private_ip_address
    raise IpAddressInUse(
        f"{owner.ref}: {address} is already used by {who}",
        target=owner.target("privateIPAddress"),
    )


def _pool_holding(pools: list[MacPool], mac: int) -> uuid.UUID | None:
    return next((pool_id for pool_id, _, (low, high) in pools if low <= mac <= high), None)


def _stored_ids(nodes: Sequence[Node], stored: Mapping[uuid.UUID, Node]) -> list[uuid.UUID]:
    """The instanceIds of ``nodes`` that were stored before this write: a node this write
    creates got a fresh instanceId, which holds nothing (asking would cost a statement)."""
    return [_id(n) for n in nodes if _id(n) in stored]


def _id(node: Node) -> uuid.UUID:
    assert node.instance_id is not None
    return node.instance_id
