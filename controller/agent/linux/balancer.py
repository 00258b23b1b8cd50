"""Load-balancing rules as an nftables table of a router namespace (pure: objects in, text out).

``balancing_from_objects(objects) -> tuple[dict[str, Balanced], list[Problem]]``
    Reads the ``lbRule/<id>`` objects of the host's desired state: VIPs, protocol, ports,
    ``distribution`` and the controller's slot table of healthy DIPs
    (``controller.policy.slots``). What cannot be enforced is left out and reported.
``render(rules) -> LbTables``
    ``LbTables.text`` is one ``nft -f`` script defining ``table ip sdnc_lb``;
    ``LbTables.changes_from(old)`` the one small transaction from the tables loaded before.

The table: a verdict map ``vips`` (VIP . protocol . frontend port -> ``jump`` the rule's
chain), a map per rule ``slots_<id>`` (slot -> DIP . backend port) and a chain per rule that
DNATs a new flow to ``jhash <flow> mod <slots> seed FLOW_HASH_SEED map @slots_<id>``. The
flow is the 5-tuple (``Default``), the source address (``SourceIP``), or the source address
and protocol (``SourceIPProtocol``). Every host and mux renders the same expression with the
same seed and the controller's table, so they send one flow to one DIP.

A DIP change changes about 1/N of a rule's slots: it is that many element changes of its slot
map in one transaction. The NAT chain only sees a connection's first packet (conntrack
remembers the translation), so connections already on a DIP that leaves keep it until they
close; nothing flushes conntrack.

Only IPv4 is balanced; IPv6 VIPs and DIPs are reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import protocol
from controller.agent.linux.nft_ports import ident
from controller.policy import slots as slot_tables

LB_TABLE = "sdnc_lb"
# The seed of the flow hash: the same on every host and mux, so that one flow hashes to one
# slot everywhere (nft's jhash takes a random seed when none is given).
FLOW_HASH_SEED = 0x53444E43
VIPS_MAP = "vips"
# A slot map's key is a 32-bit integer as jhash's result is: "typeof numgen" says so ("type
# mark" is refused by the DNAT, and nft 1.0 crashes listing a "typeof jhash" map). The data
# is the DIP and its backend port (the "tcp dport" names the type, for UDP rules too).
_SLOT_TYPE = "typeof numgen inc mod 2 : ip daddr . tcp dport"

Problem = tuple[str, str]

# distribution (case-insensitive) -> the fields hashed; the transport ports are read raw
# (``th``), so a UDP and a TCP flow hash alike.
FLOW_FIELDS = {
    "default": "ip saddr . ip daddr . meta l4proto . th sport . th dport",
    "sourceip": "ip saddr",
    "sourceipprotocol": "ip saddr . meta l4proto",
}
PROTOCOLS = {"tcp": ("tcp",), "udp": ("udp",), "all": ("tcp", "udp")}

_DECLARATIONS = [
    f"map {VIPS_MAP} {{",
    "type ipv4_addr . inet_proto . inet_service : verdict",
    "}",
    "chain prerouting {",
    "type nat hook prerouting priority dstnat; policy accept;",
    f"ip daddr . meta l4proto . th dport vmap @{VIPS_MAP}",
    "}",
]


@dataclass(frozen=True)
class Balanced:
    """An enforceable lbRule: where its flows come in and the DIP of each slot."""

    key: str
    vips: tuple[str, ...]
    protocols: tuple[str, ...]
    frontend_port: int
    backend_port: int
    fields: str
    slots: tuple[str, ...]  # per slot, the DIP's address; empty: no healthy DIP (drop)

    @property
    def name(self) -> str:
        return ident(self.key.partition("/")[2])


class _Refused(ValueError):
    """A value the agent cannot balance by."""


def _port(body: Mapping[str, Any], member: str) -> int:
    value = body.get(member)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Refused(f"{member} {value!r} is not a port (1-65535)")
    return value


def _ipv4(value: Any, member: str) -> str:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise _Refused(f"{member} {value!r} is not an IP address") from exc
    if address.version != 4:
        raise _Refused(f"{member} {value} is IPv6; this agent balances IPv4 only")
    return str(address)


def _balanced(key: str, body: Mapping[str, Any]) -> Balanced:
    protocols = PROTOCOLS.get(str(body.get("protocol", "")).lower())
    if protocols is None:
        raise _Refused(f"protocol {body.get('protocol')!r} is not Tcp, Udp or All")
    fields = FLOW_FIELDS.get(str(body.get("distribution") or "Default").lower())
    if fields is None:
        raise _Refused(f"distribution {body.get('distribution')!r} is not known")
    vips = tuple(_ipv4(vip, "vips") for vip in body.get("vips") or ())
    dips = [_ipv4(dip, "dips") for dip in body.get("dips") or ()]
    try:
        indexes = slot_tables.decode(str(body.get("slots") or ""), len(dips))
    except ValueError as exc:
        raise _Refused("slots is not base64") from exc
    if dips and not indexes:
        raise _Refused("slots is empty while dips is not")
    if any(index >= len(dips) for index in indexes):
        raise _Refused("slots names a DIP beyond dips")
    return Balanced(
        key=key,
        vips=vips,
        protocols=protocols,
        frontend_port=_port(body, "frontendPort"),
        backend_port=_port(body, "backendPort"),
        fields=fields,
        slots=tuple(dips[index] for index in indexes) if dips else (),
    )


def balancing_from_objects(
    objects: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Balanced], list[Problem]]:
    """The enforceable ``lbRule`` objects by key, and a problem for each one that is not.
    Two rules claiming one VIP, protocol and port: the first by key keeps it."""
    rules: dict[str, Balanced] = {}
    problems: list[Problem] = []
    claimed: dict[tuple[str, str, int], str] = {}
    prefix = f"{protocol.LB_RULE}/"
    for key in sorted(k for k in objects if k.startswith(prefix)):
        try:
            rule = _balanced(key, objects[key])
        except _Refused as exc:
            problems.append((key, str(exc)))
            continue
        taken = [claimed[entry] for entry in _entries(rule) if claimed.get(entry, key) != key]
        if taken:
            problems.append((key, f"its frontend is already balanced by {taken[0]}"))
            continue
        claimed.update(dict.fromkeys(_entries(rule), key))
        rules[key] = rule
    return rules, problems


def _entries(rule: Balanced) -> list[tuple[str, str, int]]:
    return [(vip, proto, rule.frontend_port) for vip in rule.vips for proto in rule.protocols]


# ---------------------------------------------------------------- rendering


def slots_map(rule: Balanced) -> str:
    return f"slots_{rule.name}"


def rule_chain(rule: Balanced) -> str:
    return f"lb_{rule.name}"


def _chain_rules(rule: Balanced) -> tuple[str, ...]:
    if not rule.slots:
        return ("drop",)  # no healthy DIP
    flow = f"jhash {rule.fields} mod {len(rule.slots)} seed {FLOW_HASH_SEED:#x}"
    # nft wants a transport match before a port in the NAT data; the vips map already chose it.
    return tuple(
        f"meta l4proto {proto} dnat ip to {flow} map @{slots_map(rule)}" for proto in rule.protocols
    )


@dataclass(frozen=True)
class LbTables:
    """The load-balancing table of one router namespace. ``text`` defines it whole;
    ``changes_from`` says how to get to it from another one in place."""

    vips: tuple[tuple[str, str], ...] = ()  # element key -> verdict
    slots: tuple[tuple[str, tuple[tuple[int, str], ...]], ...] = ()  # map -> (slot, data)s
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def text(self) -> str:
        lines = [f"table ip {LB_TABLE} {{", *_DECLARATIONS]
        for name, elements in self.slots:
            lines += [f"map {name} {{", _SLOT_TYPE]
            if elements:
                lines.append(f"elements = {{ {_listed(elements)} }}")
            lines.append("}")
        for name, rules in self.chains:
            lines += [f"chain {name} {{", *rules, "}"]
        lines.append("}")
        script = [f"table ip {LB_TABLE}", f"delete table ip {LB_TABLE}", *lines]
        script += _elements("add", VIPS_MAP, [f"{k} : {v}" for k, v in self.vips])
        return "".join(f"{line}\n" for line in script)

    def changes_from(self, old: LbTables) -> str:
        """One ``nft -f`` transaction turning a kernel holding ``old`` into one holding this
        (empty when they are the same): only the elements and chains that differ. A slot
        that changes DIP is deleted and added again in it, atomically."""
        head: list[str] = []  # new maps and chains first: chains and elements refer to them
        fill: list[str] = []
        rules: list[str] = []
        vips: list[str] = []
        tail: list[str] = []
        old_slots, new_slots = dict(old.slots), dict(self.slots)
        for name, elements in self.slots:
            before = dict(old_slots.get(name, ()))
            if name not in old_slots:
                head.append(f"add map ip {LB_TABLE} {name} {{ {_SLOT_TYPE}; }}")
            after = dict(elements)
            gone = [str(k) for k, v in before.items() if after.get(k) != v]
            came = [(k, v) for k, v in after.items() if before.get(k) != v]
            fill += _elements("delete", name, gone)
            fill += _elements("add", name, [_listed(came)] if came else [])
        old_chains, new_chains = dict(old.chains), dict(self.chains)
        for name, wanted in self.chains:
            if name not in old_chains:
                head.append(f"add chain ip {LB_TABLE} {name}")
            elif old_chains[name] == wanted:
                continue
            else:
                rules.append(f"flush chain ip {LB_TABLE} {name}")
            rules += [f"add rule ip {LB_TABLE} {name} {rule}" for rule in wanted]
        before_vips, after_vips = dict(old.vips), dict(self.vips)
        vips += _elements("delete", VIPS_MAP, [k for k in before_vips if k not in after_vips])
        changed = [k for k, v in after_vips.items() if k in before_vips and before_vips[k] != v]
        vips += _elements("delete", VIPS_MAP, changed)
        came_vips = [f"{k} : {v}" for k, v in after_vips.items() if before_vips.get(k) != v]
        vips += _elements("add", VIPS_MAP, came_vips)
        for name in old_chains:
            if name not in new_chains:  # after the vips leading to it, emptied first
                tail += [f"flush chain ip {LB_TABLE} {name}", f"delete chain ip {LB_TABLE} {name}"]
        tail += [f"delete map ip {LB_TABLE} {name}" for name in old_slots if name not in new_slots]
        script = [*head, *fill, *rules, *vips, *tail]
        return "".join(f"{line}\n" for line in script)


def _listed(elements: Sequence[tuple[int, str]]) -> str:
    return ", ".join(f"{slot} : {data}" for slot, data in elements)


def _elements(verb: str, name: str, elements: Sequence[str]) -> list[str]:
    if not elements:
        return []
    return [f"{verb} element ip {LB_TABLE} {name} {{ {', '.join(elements)} }}"]


def render(rules: Mapping[str, Balanced]) -> LbTables:
    """The table balancing ``rules`` (as ``balancing_from_objects`` returns them)."""
    vips: list[tuple[str, str]] = []
    maps: list[tuple[str, tuple[tuple[int, str], ...]]] = []
    chains: list[tuple[str, tuple[str, ...]]] = []
    for key in sorted(rules):
        rule = rules[key]
        if rule.slots:
            data = tuple(
                (slot, f"{dip} . {rule.backend_port}") for slot, dip in enumerate(rule.slots)
            )
            maps.append((slots_map(rule), data))
        chains.append((rule_chain(rule), _chain_rules(rule)))
        verdict = f"jump {rule_chain(rule)}"
        vips += [(f"{vip} . {proto} . {port}", verdict) for vip, proto, port in _entries(rule)]
    return LbTables(vips=tuple(sorted(vips)), slots=tuple(maps), chains=tuple(chains))
