"""The topology held by the compiler: entities by key, and the indexes that answer "who uses
what" in time proportional to the answer.

``Model.replace(root, entities)`` swaps the entities an aggregate contributes (a write of that
aggregate) and keeps every index in step; the compiler reads the model, it never scans it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.policy.topology import (
    Acl,
    Entity,
    Fabric,
    IpConfig,
    Nic,
    ProviderAddress,
    RouteTable,
    Server,
    Subnet,
    VirtualNetwork,
)


def _index() -> defaultdict[str, set[str]]:
    return defaultdict(set)


@dataclass
class Model:
    servers: dict[str, Server] = field(default_factory=dict)
    vnets: dict[str, VirtualNetwork] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    nics: dict[str, Nic] = field(default_factory=dict)
    configs: dict[str, IpConfig] = field(default_factory=dict)
    acls: dict[str, Acl] = field(default_factory=dict)
    route_tables: dict[str, RouteTable] = field(default_factory=dict)
    provider: dict[str, str] = field(default_factory=dict)  # server key -> address
    fabric: Fabric | None = None
    server_keys: dict[str, str] = field(default_factory=dict)  # server instanceId -> key
    # Which entities each aggregate (by root instanceId) contributed.
    contributed: dict[str, list[Entity]] = field(default_factory=dict)
    # Reverse indexes, by key.
    configs_of_nic: defaultdict[str, set[str]] = field(default_factory=_index)
    configs_of_subnet: defaultdict[str, set[str]] = field(default_factory=_index)
    subnets_of_vnet: defaultdict[str, set[str]] = field(default_factory=_index)
    nics_of_server: defaultdict[str, set[str]] = field(default_factory=_index)
    configs_of_acl: defaultdict[str, set[str]] = field(default_factory=_index)
    subnets_of_acl: defaultdict[str, set[str]] = field(default_factory=_index)
    subnets_of_route_table: defaultdict[str, set[str]] = field(default_factory=_index)

    def replace(self, root: str, entities: Iterable[Entity]) -> list[Entity]:
        """Make ``entities`` what aggregate ``root`` contributes; returns what it did before."""
        old = self.contributed.pop(root, [])
        for entity in old:
            self._unlink(entity)
        new = list(entities)
        for entity in new:
            self._link(entity)
        if new:
            self.contributed[root] = new
        return old

    def _link(self, entity: Entity) -> None:
        match entity:
            case Server():
                self.servers[entity.key] = entity
                self.server_keys[entity.id] = entity.key
            case VirtualNetwork():
                self.vnets[entity.key] = entity
            case Subnet():
                self.subnets[entity.key] = entity
                self.subnets_of_vnet[entity.vnet].add(entity.key)
                _add(self.subnets_of_acl, entity.acl, entity.key)
                _add(self.subnets_of_route_table, entity.route_table, entity.key)
            case Nic():
                self.nics[entity.key] = entity
                _add(self.nics_of_server, entity.server, entity.key)
            case IpConfig():
                self.configs[entity.key] = entity
                self.configs_of_nic[entity.nic].add(entity.key)
                _add(self.configs_of_subnet, entity.subnet, entity.key)
                _add(self.configs_of_acl, entity.acl, entity.key)
            case Acl():
                self.acls[entity.key] = entity
            case RouteTable():
                self.route_tables[entity.key] = entity
            case ProviderAddress():
                self.provider[entity.key] = entity.address
            case Fabric():
                self.fabric = entity

    def _unlink(self, entity: Entity) -> None:
        match entity:
            case Server():
                self.servers.pop(entity.key, None)
                self.server_keys.pop(entity.id, None)
            case VirtualNetwork():
                self.vnets.pop(entity.key, None)
            case Subnet():
                self.subnets.pop(entity.key, None)
                _discard(self.subnets_of_vnet, entity.vnet, entity.key)
                _discard(self.subnets_of_acl, entity.acl, entity.key)
                _discard(self.subnets_of_route_table, entity.route_table, entity.key)
            case Nic():
                self.nics.pop(entity.key, None)
                _discard(self.nics_of_server, entity.server, entity.key)
            case IpConfig():
                self.configs.pop(entity.key, None)
                _discard(self.configs_of_nic, entity.nic, entity.key)
                _discard(self.configs_of_subnet, entity.subnet, entity.key)
                _discard(self.configs_of_acl, entity.acl, entity.key)
            case Acl():
                self.acls.pop(entity.key, None)
            case RouteTable():
                self.route_tables.pop(entity.key, None)
            case ProviderAddress():
                self.provider.pop(entity.key, None)
            case Fabric():
                self.fabric = None

    # -- placement ------------------------------------------------------------------------

    def host_of(self, config_key: str) -> str | None:
        """The server (instanceId) an ipConfiguration's endpoint lives on, if it is placed:
        in a virtual subnet, with an address, on a NIC bound to a known server."""
        config = self.configs.get(config_key)
        if config is None or config.ip is None or config.subnet not in self.subnets:
            return None
        nic = self.nics.get(config.nic)
        if nic is None or nic.server is None or nic.mac is None:
            return None
        server = self.servers.get(nic.server)
        return server.id if server is not None else None

    def vnet_configs(self, vnet_key: str) -> set[str]:
        return {
            config
            for subnet in self.subnets_of_vnet.get(vnet_key, ())
            for config in self.configs_of_subnet.get(subnet, ())
        }

    def vnet_hosts(self, vnet_key: str) -> set[str]:
        return {h for c in self.vnet_configs(vnet_key) if (h := self.host_of(c)) is not None}

    def acl_configs(self, acl_key: str) -> set[str]:
        direct = self.configs_of_acl.get(acl_key, set())
        via_subnet = {
            config
            for subnet in self.subnets_of_acl.get(acl_key, ())
            for config in self.configs_of_subnet.get(subnet, ())
        }
        return direct | via_subnet

    def route_table_configs(self, table_key: str) -> set[str]:
        return {
            config
            for subnet in self.subnets_of_route_table.get(table_key, ())
            for config in self.configs_of_subnet.get(subnet, ())
        }


def _add(index: defaultdict[str, set[str]], key: str | None, value: str) -> None:
    if key is not None:
        index[key].add(value)


def _discard(index: defaultdict[str, set[str]], key: str | None, value: str) -> None:
    if key is not None and key in index:
        index[key].discard(value)
        if not index[key]:
            del index[key]
