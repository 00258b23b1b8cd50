"""Every resource kind of the northbound API, one module per resource family.

Each module declares its ``Kind`` objects (URI placement, properties model, semantic checks,
reverse references) and exports them as ``KINDS``; ``REGISTRY`` indexes them all.
"""

from __future__ import annotations

from controller.core.kinds import Registry
from controller.resources import (
    access_control_lists,
    credentials,
    load_balancer_manager,
    load_balancer_muxes,
    load_balancers,
    logical_networks,
    mac_pools,
    network_interfaces,
    network_managers,
    public_ip_addresses,
    route_tables,
    servers,
    virtual_networks,
)

REGISTRY = Registry(
    (
        *credentials.KINDS,
        *mac_pools.KINDS,
        *logical_networks.KINDS,
        *network_managers.KINDS,
        *access_control_lists.KINDS,
        *route_tables.KINDS,
        *servers.KINDS,
        *virtual_networks.KINDS,
        *network_interfaces.KINDS,
        *load_balancer_manager.KINDS,
        *public_ip_addresses.KINDS,
        *load_balancers.KINDS,
        *load_balancer_muxes.KINDS,
    )
)
