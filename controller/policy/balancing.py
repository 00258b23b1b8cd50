"""The load-balancing part of the compiler's model: frontends (VIPs), rules, probes, public IPs,
muxes, the DIP health hosts reported, and the reverse indexes that answer "which rules does
this DIP, probe, frontend or public IP shape" in time proportional to the answer.

``Model`` owns one ``Balancing`` and links and unlinks entities through it; like the rest of
the model it keeps no empty index entry, so an incrementally maintained one equals a fresh
load.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from controller.policy.topology import DipHealth, Frontend, IpConfig, LbRule, Mux, Probe, PublicIp

# ``LbRule.kind`` of each kind of rule.
RULE = "rule"
NAT = "nat"
OUTBOUND = "outbound"
# Health states an agent reports; a DIP with no report counts as Up until one says Down.
UP = "Up"
DOWN = "Down"


def _index() -> defaultdict[str, set[str]]:
    return defaultdict(set)


@dataclass
class Balancing:
    frontends: dict[str, Frontend] = field(default_factory=dict)
    rules: dict[str, LbRule] = field(default_factory=dict)  # every kind of rule, by key
    probes: dict[str, Probe] = field(default_factory=dict)
    public_ips: dict[str, PublicIp] = field(default_factory=dict)
    muxes: dict[str, Mux] = field(default_factory=dict)
    # (probe instanceId, ipConfiguration instanceId) -> the latest report.
    health: dict[tuple[str, str], DipHealth] = field(default_factory=dict)
    probe_keys: dict[str, str] = field(default_factory=dict)  # probe instanceId -> key
    config_keys: dict[str, str] = field(default_factory=dict)  # ipConfiguration id -> key
    # Reverse indexes, by key.
    configs_of_pool: defaultdict[str, set[str]] = field(default_factory=_index)
    configs_of_nat: defaultdict[str, set[str]] = field(default_factory=_index)
    configs_of_public_ip: defaultdict[str, set[str]] = field(default_factory=_index)
    rules_of_pool: defaultdict[str, set[str]] = field(default_factory=_index)
    rules_of_probe: defaultdict[str, set[str]] = field(default_factory=_index)
    rules_of_frontend: defaultdict[str, set[str]] = field(default_factory=_index)
    frontends_of_public_ip: defaultdict[str, set[str]] = field(default_factory=_index)
    frontends_of_subnet: defaultdict[str, set[str]] = field(default_factory=_index)
    muxes_of_server: defaultdict[str, set[str]] = field(default_factory=_index)

    def link(self, entity: Frontend | LbRule | Probe | PublicIp | Mux | DipHealth) -> None:
        match entity:
            case Frontend():
                self.frontends[entity.key] = entity
                _add(self.frontends_of_public_ip, entity.public_ip, entity.key)
                _add(self.frontends_of_subnet, entity.subnet, entity.key)
            case LbRule():
                self.rules[entity.key] = entity
                _add(self.rules_of_pool, entity.pool, entity.key)
                _add(self.rules_of_probe, entity.probe, entity.key)
                for frontend in entity.frontends:
                    _add(self.rules_of_frontend, frontend, entity.key)
            case Probe():
                self.probes[entity.key] = entity
                self.probe_keys[entity.id] = entity.key
            case PublicIp():
                self.public_ips[entity.key] = entity
            case Mux():
                self.muxes[entity.key] = entity
                _add(self.muxes_of_server, entity.server, entity.key)
            case DipHealth():
                self.health[(entity.probe, entity.dip)] = entity

    def unlink(self, entity: Frontend | LbRule | Probe | PublicIp | Mux | DipHealth) -> None:
        match entity:
            case Frontend():
                self.frontends.pop(entity.key, None)
                _discard(self.frontends_of_public_ip, entity.public_ip, entity.key)
                _discard(self.frontends_of_subnet, entity.subnet, entity.key)
            case LbRule():
                self.rules.pop(entity.key, None)
                _discard(self.rules_of_pool, entity.pool, entity.key)
                _discard(self.rules_of_probe, entity.probe, entity.key)
                for frontend in entity.frontends:
                    _discard(self.rules_of_frontend, frontend, entity.key)
            case Probe():
                self.probes.pop(entity.key, None)
                self.probe_keys.pop(entity.id, None)
            case PublicIp():
                self.public_ips.pop(entity.key, None)
            case Mux():
                self.muxes.pop(entity.key, None)
                _discard(self.muxes_of_server, entity.server, entity.key)
            case DipHealth():
                if self.health.get((entity.probe, entity.dip)) == entity:
                    del self.health[(entity.probe, entity.dip)]

    def link_config(self, config: IpConfig) -> None:
        self.config_keys[config.id] = config.key
        for pool in config.pools:
            _add(self.configs_of_pool, pool, config.key)
        for nat in config.nat_rules:
            _add(self.configs_of_nat, nat, config.key)
        _add(self.configs_of_public_ip, config.public_ip, config.key)

    def unlink_config(self, config: IpConfig) -> None:
        self.config_keys.pop(config.id, None)
        for pool in config.pools:
            _discard(self.configs_of_pool, pool, config.key)
        for nat in config.nat_rules:
            _discard(self.configs_of_nat, nat, config.key)
        _discard(self.configs_of_public_ip, config.public_ip, config.key)

    def state(self, probe_id: str, dip_id: str) -> str | None:
        """The health last reported for a DIP under a probe (None: never reported)."""
        found = self.health.get((probe_id, dip_id))
        return found.state if found is not None else None


def _add(index: defaultdict[str, set[str]], key: str | None, value: str) -> None:
    if key is not None:
        index[key].add(value)


def _discard(index: defaultdict[str, set[str]], key: str | None, value: str) -> None:
    if key is not None and key in index:
        index[key].discard(value)
        if not index[key]:
            del index[key]
