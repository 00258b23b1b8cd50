"""The topology held by the compiler: entities by key, and the indexes that answer "who uses
what" in time proportional to the answer.

``Model.replace(root, entities)`` swaps the entities an aggregate contributes (a write of that
aggregate) and keeps every index in step; the compiler reads the model, it never scans it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.policy.balancing import Balancing
from controller.policy.topology import (
    LB_ENTITIES,
    Acl,
    AclRule,
    DipHealth,
    Entity,
    Fabric,
    IpConfig,
    Nic,
    Probe,
    ProviderAddress,
    RouteTable,
    Server,
    Subnet,
    VirtualNetwork,
)

# The groups of hosts the model counts (a group is named "<group>:<key>"): the hosts of a
# virtual network, of an ACL -- those with a placed endpoint in it.
VNET = "vnet"
ACL = "acl"


def group_name(group: str, key: str) -> str:
    return f"{group}:{key}"


def _index() -> defaultdict[str, set[str]]:
    return defaultdict(set)


def _counts() -> defaultdict[str, Counter[str]]:
    return defaultdict(Counter)


@dataclass(frozen=True)
class Placement:
    """Where a placed endpoint sits and which groups it makes its host part of."""

    host: str
    vnet: str
    acls: tuple[str, ...]


@dataclass
class Model:
    servers: dict[str, Server] = field(default_factory=dict)
    vnets: dict[str, VirtualNetwork] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    nics: dict[str, Nic] = field(default_factory=dict)
    configs: dict[str, IpConfig] = field(default_factory=dict)
    acls: dict[str, Acl] = field(default_factory=dict)
    acl_rules: dict[str, AclRule] = field(default_factory=dict)
    route_tables: dict[str, RouteTable] = field(default_factory=dict)
    provider: dict[str, str] = field(default_factory=dict)  # server key -> address
    fabric: Fabric | None = None
    server_keys: dict[str, str] = field(default_factory=dict)  # server instanceId -> key
    # Which entities each aggregate (by root instanceId) contributed.
    contributed: dict[str, list[Entity]] = field(default_factory=dict)
    # The aggregate (an agent's report) that gave each server's provider address, by key.
    provider_roots: dict[str, str] = field(default_factory=dict)
    # Reverse indexes, by key.
    configs_of_nic: defaultdict[str, set[str]] = field(default_factory=_index)
    configs_of_subnet: defaultdict[str, set[str]] = field(default_factory=_index)
    subnets_of_vnet: defaultdict[str, set[str]] = field(default_factory=_index)
    nics_of_server: defaultdict[str, set[str]] = field(default_factory=_index)
    configs_of_acl: defaultdict[str, set[str]] = field(default_factory=_index)
    rules_of_acl: defaultdict[str, set[str]] = field(default_factory=_index)
    subnets_of_acl: defaultdict[str, set[str]] = field(default_factory=_index)
    subnets_of_route_table: defaultdict[str, set[str]] = field(default_factory=_index)
    # Placed endpoints, and per group how many of them each host has: the hosts of a virtual
    # network or an ACL are read from these counts, not recomputed by scanning.
    placements: dict[str, Placement] = field(default_factory=dict)
    vnet_hosts_count: defaultdict[str, Counter[str]] = field(default_factory=_counts)
    acl_hosts_count: defaultdict[str, Counter[str]] = field(default_factory=_counts)
    # A memo of the host sets read from those counts, by group name, dropped when they
    # change (which groups it holds depends on what was asked, not only on the model).
    hosts_of_group: dict[str, frozenset[str]] = field(default_factory=dict, compare=False)
    # The same sets less one host, by group and host (a network's mappings go to its hosts
    # but their own): shared as the group's set is, dropped with it. At 100,000 endpoints a
    # set per mapping was 70 MiB.
    others_of_group: dict[str, dict[str, frozenset[str]]] = field(
        default_factory=dict, compare=False
    )
    # Load balancing: its entities and indexes.
    lb: Balancing = field(default_factory=Balancing)
    # The aggregate (an agent's report) of each DIP health, by its key, and the health keys
    # by what they go with: the DIP (ipConfiguration id), the probe (id), the reporting server
    # (key). A report goes when any of them does, as the store's ON DELETE CASCADE takes it.
    health_roots: dict[str, str] = field(default_factory=dict)
    health_of: defaultdict[str, set[str]] = field(default_factory=_index)
    # Entities a ``replace`` dropped with what it removed (reports of a server, a DIP or a
    # probe that is gone): the compiler takes them to mark what they shaped dirty.
    dropped: list[Entity] = field(default_factory=list, compare=False)

    def replace(
        self,
        root: str,
        entities: Iterable[Entity],
        difference: tuple[list[Entity], list[Entity]] | None = None,
    ) -> list[Entity]:
        """Make ``entities`` what aggregate ``root`` contributes; returns what it did before.
        ``difference``: the entities that went and came (the compiler's ``prepare``), when
        known; only those are unlinked and linked, so one rule changed in a 10,000-rule ACL
        touches the indexes twice, not 20,000 times (25 ms on the event loop).

        A server that is gone takes the provider address its agent reported with it: the
        store deletes the agent's row with the server (no change is logged for that), so a
        replica loading afterwards has no address for it, nor for a server created again
        under the same resourceRef."""
        old = self.contributed.pop(root, [])
        new = list(entities)
        gone, came = difference if difference is not None else (old, new)
        for entity in gone:
            self._unlink(entity)
            if isinstance(entity, ProviderAddress) and self.provider_roots.get(entity.key) == root:
                del self.provider_roots[entity.key]
            if isinstance(entity, DipHealth):
                self._forget_health(entity, root)
        for entity in came:
            self._link(entity)
            if isinstance(entity, ProviderAddress):
                self.provider_roots[entity.key] = root
            if isinstance(entity, DipHealth):
                self.health_roots[entity.key] = root
                for owner in (entity.dip, entity.probe, entity.server):
                    self.health_of[owner].add(entity.key)
        if new:
            self.contributed[root] = new
        # What is in both ``old`` and ``new`` unchanged is in neither ``gone`` nor ``came``:
        # a server or owner that went is one of ``gone`` not back in ``came``.
        kept = {entity.key for entity in came if isinstance(entity, Server)}
        for entity in gone:
            if isinstance(entity, Server) and entity.key not in kept:
                reporter = self.provider_roots.get(entity.key)
                if reporter is not None:
                    self.dropped += self.replace(reporter, [])
        self._drop_health_of(_owners(gone) - _owners(came))
        return old

    def _forget_health(self, entity: DipHealth, root: str) -> None:
        if self.health_roots.get(entity.key) == root:
            del self.health_roots[entity.key]
        for owner in (entity.dip, entity.probe, entity.server):
            _discard(self.health_of, owner, entity.key)

    def _drop_health_of(self, owners: set[str]) -> None:
        """Drop the health reports of DIPs, probes and servers that are gone."""
        for owner in owners:
            for key in list(self.health_of.get(owner, ())):
                reporter = self.health_roots.get(key)
                if reporter is not None:
                    self.dropped += self.replace(reporter, [])

    def take_dropped(self) -> list[Entity]:
        dropped, self.dropped = self.dropped, []
        return dropped

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
                self.lb.link_config(entity)
            case Acl():
                self.acls[entity.key] = entity
            case AclRule():
                self.acl_rules[entity.key] = entity
                self.rules_of_acl[entity.acl].add(entity.key)
            case RouteTable():
                self.route_tables[entity.key] = entity
            case ProviderAddress():
                self.provider[entity.key] = entity.address
            case Fabric():
                self.fabric = entity
            case _ if isinstance(entity, LB_ENTITIES):
                self.lb.link(entity)

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
                self.lb.unlink_config(entity)
            case Acl():
                self.acls.pop(entity.key, None)
            case AclRule():
                self.acl_rules.pop(entity.key, None)
                _discard(self.rules_of_acl, entity.acl, entity.key)
            case RouteTable():
                self.route_tables.pop(entity.key, None)
            case ProviderAddress():
                self.provider.pop(entity.key, None)
            case Fabric():
                self.fabric = None
            case _ if isinstance(entity, LB_ENTITIES):
                self.lb.unlink(entity)

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

    def vnet_hosts(self, vnet_key: str) -> frozenset[str]:
        return self._hosts(group_name(VNET, vnet_key), self.vnet_hosts_count, vnet_key)

    def vnet_hosts_besides(self, vnet_key: str, host: str) -> frozenset[str]:
        """The hosts of virtual network ``vnet_key`` other than ``host``."""
        hosts = self.vnet_hosts(vnet_key)
        group = group_name(VNET, vnet_key)
        if group not in self.hosts_of_group:  # remembered only as long as the group's set is
            return hosts - {host}
        others = self.others_of_group.setdefault(group, {})
        found = others.get(host)
        if found is None:
            found = others[host] = hosts - {host}
        return found

    def acl_hosts(self, acl_key: str) -> frozenset[str]:
        return self._hosts(group_name(ACL, acl_key), self.acl_hosts_count, acl_key)

    def route_table_hosts(self, table_key: str) -> frozenset[str]:
        """Every host of the virtual networks of the subnets using the table: those with an
        endpoint of such a subnet route by it, and those with an appliance it names forward
        (an appliance is an endpoint of the virtual network, in any of its subnets)."""
        vnets = {
            self.subnets[s].vnet
            for s in self.subnets_of_route_table.get(table_key, ())
            if s in self.subnets
        }
        return frozenset().union(*(self.vnet_hosts(vnet) for vnet in vnets))

    def route_tables_of_vnet(self, vnet_key: str) -> set[str]:
        """The route tables the subnets of a virtual network use."""
        subnets = (self.subnets.get(s) for s in self.subnets_of_vnet.get(vnet_key, ()))
        return {s.route_table for s in subnets if s is not None and s.route_table is not None}

    def _hosts(
        self, group: str, counts: defaultdict[str, Counter[str]], key: str
    ) -> frozenset[str]:
        """The hosts of ``group``, one frozenset shared by every object that follows the
        group (an ACL's rules, a network's mappings) until ``place`` changes it."""
        hosts = self.hosts_of_group.get(group)
        if hosts is None:
            hosts = frozenset(counts.get(key, ()))
            if hosts:  # a group with no hosts (one that is gone, say) is not remembered
                self.hosts_of_group[group] = hosts
        return hosts

    def place(self, config_key: str) -> set[str]:
        """Bring the placement of one endpoint up to date; returns the groups whose set of
        hosts changed, by ``group_name``."""
        before = self.placements.pop(config_key, None)
        after = self._placement(config_key)
        if after is not None:
            self.placements[config_key] = after
        if before == after:
            return set()
        changed = self._recount(before, after)
        for group in changed:
            self.hosts_of_group.pop(group, None)
            self.others_of_group.pop(group, None)
        return changed

    def _recount(self, before: Placement | None, after: Placement | None) -> set[str]:
        changed: set[str] = set()
        if before is not None:
            for name, counts, key in self._groups(before):
                group = counts[key]
                group[before.host] -= 1
                if group[before.host] == 0:
                    del group[before.host]
                    changed.add(name)
                    if not group:  # keep no empty counts: the model stays what a load builds
                        del counts[key]
        if after is not None:
            for name, counts, key in self._groups(after):
                group = counts[key]
                group[after.host] += 1
                if group[after.host] == 1:
                    changed.add(name)
        return changed

    def _groups(
        self, placement: Placement
    ) -> list[tuple[str, defaultdict[str, Counter[str]], str]]:
        """Each group ``placement`` counts in: its name, its counts and its key there."""
        groups = [(group_name(VNET, placement.vnet), self.vnet_hosts_count, placement.vnet)]
        groups += [(group_name(ACL, acl), self.acl_hosts_count, acl) for acl in placement.acls]
        return groups

    def configs_affected_by(self, entity: Entity) -> set[str]:
        """The endpoints whose placement (or whose host's facts) a change of ``entity`` may
        change -- read from the model as it is when called."""
        match entity:
            case IpConfig():
                return {entity.key}
            case Nic():
                return set(self.configs_of_nic.get(entity.key, ()))
            case Subnet():
                return set(self.configs_of_subnet.get(entity.key, ()))
            case Server() | ProviderAddress():
                return {
                    config
                    for nic in self.nics_of_server.get(entity.key, ())
                    for config in self.configs_of_nic.get(nic, ())
                }
        return set()

    def _placement(self, config_key: str) -> Placement | None:
        host = self.host_of(config_key)
        if host is None:
            return None
        config = self.configs[config_key]
        subnet = self.subnets[config.subnet or ""]
        acls = tuple(dict.fromkeys(a for a in (subnet.acl, config.acl) if a is not None))
        return Placement(host, subnet.vnet, acls)


def _owners(entities: Iterable[Entity]) -> set[str]:
    """What health reports go with: ipConfiguration and probe instanceIds, server keys."""
    owners: set[str] = set()
    for entity in entities:
        if isinstance(entity, IpConfig | Probe):
            owners.add(entity.id)
        elif isinstance(entity, Server):
            owners.add(entity.key)
    return owners


def _add(index: defaultdict[str, set[str]], key: str | None, value: str) -> None:
    if key is not None:
        index[key].add(value)


def _discard(index: defaultdict[str, set[str]], key: str | None, value: str) -> None:
    if key is not None and key in index:
        index[key].discard(value)
        if not index[key]:
            del index[key]
