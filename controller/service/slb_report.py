"""The software load balancer state, VIP by VIP, as ``diagnostics/slbStateResults`` shows it.

Built from stored rows (every load balancer aggregate, every public IP, the NIC
ipConfigurations bound to them) and the DIP health the hosts reported. For each VIP: its
frontend (or the NIC ipConfiguration a public IP is bound to), its load-balancing, inbound NAT
and outbound NAT rules, and its DIPs with their addresses, their hosts (the NIC's ``server``)
and their health. A DIP's ``health`` is what the data plane acts on:

``Up``         every probe of the VIP's rules covering it reports Up
``Down``       one of them reports Down (the DIP gets no new flows)
``Unknown``    no report yet for one of them (and none Down)
``NotProbed``  no rule of the VIP probes it (it is treated as healthy)
"""

from __future__ import annotations

import ipaddress
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.resources.load_balancers import (
    FRONTEND_IP_CONFIGURATIONS,
    INBOUND_NAT_RULES,
    LOAD_BALANCING_RULES,
    OUTBOUND_NAT_RULES,
)
from controller.resources.network_interfaces import IP_CONFIGURATIONS
from controller.resources.public_ip_addresses import PUBLIC_IP_ADDRESSES
from controller.store.repository import Referrer, StoredResource

Json = dict[str, Any]
# ipConfiguration instanceId -> probe instanceId -> "Up" | "Down", as the hosts reported it.
DipHealth = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class SlbRows:
    load_balancers: Sequence[StoredResource]  # every row of every load balancer aggregate
    public_ips: Sequence[StoredResource]
    bindings: Sequence[Referrer]  # who references a load balancer child or a public IP
    nics: Sequence[StoredResource]  # the NICs of those referrers, with their ipConfigurations


def _ref(ref: str) -> Json:
    return {"resourceRef": ref}


def _member_ref(row: StoredResource, member: str) -> str | None:
    value = row.properties.get(member)
    return str(value["resourceRef"]) if isinstance(value, dict) else None


def _member_refs(row: StoredResource, member: str) -> list[str]:
    return [str(item["resourceRef"]) for item in row.properties.get(member, [])]


class _Index:
    def __init__(self, rows: SlbRows, health: DipHealth) -> None:
        self.health = health
        everything = [*rows.load_balancers, *rows.public_ips, *rows.nics]
        self.by_id = {row.instance_id: row for row in everything}
        self.by_key = {row.path_key: row for row in everything}
        self.bound: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = defaultdict(list)
        for binding in rows.bindings:
            if binding.source_kind == IP_CONFIGURATIONS.key:
                self.bound[(binding.target_id, binding.member)].append(binding.source_id)
        self.of_kind: dict[str, list[StoredResource]] = defaultdict(list)
        for row in rows.load_balancers:
            self.of_kind[row.kind].append(row)

    def row(self, ref: str | None) -> StoredResource | None:
        return None if ref is None else self.by_key.get(ref.lower())

    def using(self, kind: str, member: str, ref: str) -> list[StoredResource]:
        """Rows of ``kind`` whose ``member`` (one reference or a list) names ``ref``."""
        key = ref.lower()
        return [
            row
            for row in self.of_kind[kind]
            if key in {r.lower() for r in _member_refs(row, member)}
            or (_member_ref(row, member) or "").lower() == key
        ]

    def members(self, pool_ref: str | None) -> list[uuid.UUID]:
        pool = self.row(pool_ref)
        if pool is None:
            return []
        return self.bound[(pool.instance_id, "loadBalancerBackendAddressPools")]

    def dip(self, config_id: uuid.UUID, probes: Iterable[StoredResource]) -> Json:
        config = self.by_id[config_id]
        nic = self.by_id.get(config.parent_id) if config.parent_id else None
        reported = self.health.get(str(config_id), {})
        ordered = sorted(probes, key=lambda p: p.path_key)
        found = [reported.get(str(p.instance_id), "Unknown") for p in ordered]
        states = [
            {"probe": _ref(p.resource_ref), "state": state}
            for p, state in zip(ordered, found, strict=True)
        ]
        dip: Json = {"ipConfiguration": _ref(config.resource_ref)}
        if config.properties.get("privateIPAddress"):
            dip["privateIPAddress"] = config.properties["privateIPAddress"]
        server = _member_ref(nic, "server") if nic is not None else None
        if server is not None:
            dip["server"] = _ref(server)
        dip["health"] = _overall(found)
        dip["probes"] = states
        return dip


def _overall(states: Sequence[str]) -> str:
    if not states:
        return "NotProbed"
    if "Down" in states:
        return "Down"
    return "Up" if all(s == "Up" for s in states) else "Unknown"


def build_slb_report(rows: SlbRows, health: DipHealth) -> list[Json]:
    """One entry per VIP, in address order."""
    index = _Index(rows, health)
    entries = [_frontend_entry(index, f) for f in index.of_kind[FRONTEND_IP_CONFIGURATIONS.key]]
    entries += [
        _public_ip_entry(index, row)
        for row in rows.public_ips
        if row.kind == PUBLIC_IP_ADDRESSES.key and not _bound_to_frontend(index, row)
    ]
    return sorted(entries, key=_vip_order)


def _vip_order(entry: Json) -> tuple[int, str]:
    named = entry.get("frontendIPConfiguration", entry.get("publicIPAddress"))
    return _address_key(entry.get("vip")), str(named)


def _bound_to_frontend(index: _Index, public_ip: StoredResource) -> bool:
    key = public_ip.path_key
    return any(
        (_member_ref(f, "publicIPAddress") or "").lower() == key
        for f in index.of_kind[FRONTEND_IP_CONFIGURATIONS.key]
    )


def _frontend_entry(index: _Index, frontend: StoredResource) -> Json:
    ref = frontend.resource_ref
    public_ref = _member_ref(frontend, "publicIPAddress")
    public_ip = index.row(public_ref)
    vip = frontend.properties.get("privateIPAddress")
    if public_ip is not None:
        vip = public_ip.properties.get("ipAddress")
    rules = index.using(LOAD_BALANCING_RULES.key, "frontendIPConfigurations", ref)
    nats = index.using(INBOUND_NAT_RULES.key, "frontendIPConfigurations", ref)
    outbound = index.using(OUTBOUND_NAT_RULES.key, "frontendIPConfigurations", ref)
    probes_of: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for rule in rules:
        probe = index.row(_member_ref(rule, "probe"))
        for member in index.members(_member_ref(rule, "backendAddressPool")):
            probes_of[member] |= {probe.instance_id} if probe is not None else set()
    for nat in nats:
        for member in index.bound[(nat.instance_id, "loadBalancerInboundNatRules")]:
            probes_of.setdefault(member, set())
    for rule in outbound:
        for member in index.members(_member_ref(rule, "backendAddressPool")):
            probes_of.setdefault(member, set())
    entry: Json = {"vip": vip}
    if public_ref is not None:
        entry["publicIPAddress"] = _ref(public_ref)
    root = index.by_id[frontend.root_id]
    entry["loadBalancer"] = _ref(root.resource_ref)
    entry["frontendIPConfiguration"] = _ref(ref)
    entry["loadBalancingRules"] = [_rule(rule) for rule in rules]
    entry["inboundNatRules"] = [_nat(index, nat) for nat in nats]
    entry["outboundNatRules"] = [_outbound(rule) for rule in outbound]
    entry["dips"] = _dips(index, probes_of)
    return entry


def _public_ip_entry(index: _Index, public_ip: StoredResource) -> Json:
    configs = index.bound[(public_ip.instance_id, "publicIPAddress")]
    return {
        "vip": public_ip.properties.get("ipAddress"),
        "publicIPAddress": _ref(public_ip.resource_ref),
        "loadBalancingRules": [],
        "inboundNatRules": [],
        "outboundNatRules": [],
        "dips": _dips(index, {config: set() for config in configs}),
    }


def _dips(index: _Index, probes_of: Mapping[uuid.UUID, set[uuid.UUID]]) -> list[Json]:
    dips = [
        index.dip(config, [index.by_id[p] for p in probes])
        for config, probes in probes_of.items()
        if config in index.by_id
    ]
    return sorted(dips, key=_dip_order)


def _dip_order(dip: Json) -> tuple[int, str]:
    return _address_key(dip.get("privateIPAddress")), str(dip["ipConfiguration"]["resourceRef"])


def _address_key(address: str | None) -> int:
    if address is None:
        return 2**130
    parsed = ipaddress.ip_address(address)
    return parsed.version * 2**128 + int(parsed)


def _rule(rule: StoredResource) -> Json:
    props = rule.properties
    summary: Json = {
        "resourceRef": rule.resource_ref,
        "protocol": props.get("protocol"),
        "frontendPort": props.get("frontendPort"),
        "backendPort": props.get("backendPort"),
        "backendAddressPool": _ref(str(_member_ref(rule, "backendAddressPool"))),
    }
    probe = _member_ref(rule, "probe")
    if probe is not None:
        summary["probe"] = _ref(probe)
    return summary


def _nat(index: _Index, nat: StoredResource) -> Json:
    props = nat.properties
    summary: Json = {
        "resourceRef": nat.resource_ref,
        "protocol": props.get("protocol"),
        "frontendPort": props.get("frontendPort"),
        "backendPort": props.get("backendPort"),
    }
    backend = index.bound[(nat.instance_id, "loadBalancerInboundNatRules")]
    if backend and backend[0] in index.by_id:
        summary["backendIPConfiguration"] = _ref(index.by_id[backend[0]].resource_ref)
    return summary


def _outbound(rule: StoredResource) -> Json:
    return {
        "resourceRef": rule.resource_ref,
        "protocol": rule.properties.get("protocol"),
        "backendAddressPool": _ref(str(_member_ref(rule, "backendAddressPool"))),
    }
