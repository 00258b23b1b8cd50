"""Load balancing and NAT as an nftables table of a router namespace (pure).

``render(balancing, local, previous) -> LbTables``: ``LbTables.text`` defines ``table ip
sdnc_lb`` whole; ``LbTables.changes_from(old)`` is the one small transaction from the table
loaded before; ``previous`` (the last table and what it came from) is patched by the rules that
changed rather than rendered again.
The router's ruleset (``nft.Tables``) carries it next to the ACL tables, so it is loaded,
changed in place and checked with them; a DIP change touches nothing but its elements here.

What the table holds (``docs/agent.md``, "Load balancing"):

* ``map vips``: VIP . protocol . frontend port -> ``jump`` the chain of its lbRule or lbNat,
  in a NAT prerouting chain (``dstnat``): only a connection's first packet is translated,
  conntrack keeps the translation, so a DIP leaving never breaks connections already on it.
* per lbRule a map ``slots_<id>`` (the host's own table of the pool, slot -> DIP:
  ``policy/flow_hash.py``) and a chain ``lb_<id>``: a flow a mux brought in is addressed to the
  MAC of the DIP the mux chose, and goes to it (``dnat ip to ether daddr map @steer``); else
  ``dnat ip to jhash <flow> mod <slots> seed FLOW_HASH_SEED map @slots_<id> : <backend port>``.
  A rule with no healthy DIP drops.
* per lbNat a chain ``nat_<id>``: ``dnat`` to its one DIP.
* ``map public_in`` (public -> private, DNAT of new connections to a public IP) and
  ``map public_out`` (private -> public, SNAT of what the NIC sends out).
* chain ``outbound``: per DIP of an lbOutbound, SNAT to the VIP within its own block of source
  ports (conntrack finds the replies).
* ``map steer`` (MAC -> address of each local DIP) and ``set hairpin`` (DIP . DIP): a
  connection from a DIP to its own VIP that lands on itself is SNATed to the VIP (``ct
  original ip daddr``): a packet from the receiver's own address would be dropped.
* the egress guard: only what was translated leaves through the router's ``egress`` link (the
  replies of DNATed connections, sources with a public IP or an outbound rule), never a private
  address; nothing comes in through it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from controller.agent.linux.balancer import Balanced, Balancing, Forwarded
from controller.agent.linux.egress import EGRESS
from controller.agent.linux.nft_ports import ident
from controller.protocol import FLOW_HASH_SEED

LB_TABLE = "sdnc_lb"
VIPS_MAP = "vips"
# A slot map's key is a 32-bit integer as jhash's result is: "typeof numgen" says so ("type
# mark" is refused by the DNAT, and nft 1.0 crashes listing a "typeof jhash" map). Its data is
# the DIP alone, the backend port is in the rule: half the bytes to parse and hold.
_SLOT_TYPE = "typeof numgen inc mod 2 : ip daddr"
# Named element sets of the table: (kind, name, type); maps carry data.
STEER_MAP = "steer"
SETS = (
    ("map", STEER_MAP, "ether_addr : ipv4_addr"),
    ("map", "public_in", "ipv4_addr : ipv4_addr"),
    ("map", "public_out", "ipv4_addr : ipv4_addr"),
    ("set", "hairpin", "ipv4_addr . ipv4_addr"),
    ("set", "leaving", "ipv4_addr . inet_proto"),
    ("set", "public_sources", "ipv4_addr"),
)

_HOOKS = f"""\
chain prerouting {{
type nat hook prerouting priority dstnat; policy accept;
ip daddr . meta l4proto . th dport vmap @{VIPS_MAP}
dnat ip to ip daddr map @public_in
}}
chain postrouting {{
type nat hook postrouting priority srcnat; policy accept;
ct status dnat ip saddr . ip daddr @hairpin snat ip to ct original ip daddr
oifname "{EGRESS}" snat ip to ip saddr map @public_out
oifname "{EGRESS}" jump outbound
}}
chain forward {{
type filter hook forward priority filter; policy accept;
iifname "{EGRESS}" drop
oifname "{EGRESS}" ct status dnat accept
oifname "{EGRESS}" ip saddr @public_sources accept
oifname "{EGRESS}" ip saddr . meta l4proto @leaving accept
oifname "{EGRESS}" drop
}}"""

Elements = Mapping[str, str]  # key -> data ("" in a set)
Slots = tuple[tuple[int, str], ...]  # (slot, DIP)s


def _empty() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class LbTables:
    """The load-balancing table of one router namespace (its mappings are never changed
    once made: a new table is made by copying them). A mux's table (``mux.py``) is one of
    the same shape with other declarations."""

    TABLE: ClassVar[str] = LB_TABLE
    DECLARED: ClassVar[tuple[tuple[str, str, str], ...]] = SETS
    HOOKS: ClassVar[str] = _HOOKS
    SLOT_TYPE: ClassVar[str] = _SLOT_TYPE

    vips: Elements = field(default_factory=_empty)  # VIP . protocol . port -> verdict
    slots: Mapping[str, Slots] = field(default_factory=_empty)  # map -> its elements
    chains: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)  # rules' and NATs'
    outbound: tuple[str, ...] = ()  # the outbound chain's rules
    sets: Mapping[str, Elements] = field(default_factory=_empty)  # the SETS' elements

    @functools.cached_property
    def text(self) -> str:
        """The table whole, in one order whatever order it was made in (its digest says
        whether the kernel holds it)."""
        lines = [f"table ip {self.TABLE} {{}}", f"delete table ip {self.TABLE}"]
        lines.append(f"table ip {self.TABLE} {{")
        lines += [f"map {VIPS_MAP} {{", "type ipv4_addr . inet_proto . inet_service : verdict", "}"]
        for kind, name, type_ in self.DECLARED:
            lines += [f"{kind} {name} {{", f"type {type_}", "}"]
        for name, elements in sorted(self.slots.items()):
            lines += [f"map {name} {{", self.SLOT_TYPE]
            if elements:
                lines.append(f"elements = {{ {_listed(elements)} }}")
            lines.append("}")
        for name, rules in sorted(self.chains.items()):
            lines += [f"chain {name} {{", *rules, "}"]
        lines += ["chain outbound {", *self.outbound, "}"]  # postrouting jumps to it
        lines += [*self.HOOKS.splitlines(), "}"]
        # Elements naming chains (the verdicts) after the chains; the others with them.
        for name, members in self.sets.items():
            lines += _elements(self.TABLE, "add", name, [_pair(e) for e in sorted(members.items())])
        lines += _elements(
            self.TABLE, "add", VIPS_MAP, [_pair(e) for e in sorted(self.vips.items())]
        )
        return "".join(f"{line}\n" for line in lines)

    def changes_from(self, old: LbTables) -> str:
        """One ``nft -f`` transaction turning a kernel holding ``old`` into one holding this
        (empty when they are the same): only the elements and chains that differ. A slot
        that changes DIP is deleted and added again in it, atomically."""
        head: list[str] = []  # new maps and chains first: chains and elements refer to them
        fill: list[str] = []
        rules: list[str] = []
        tail: list[str] = []
        old_slots = old.slots
        for name, elements in self.slots.items():
            before = old_slots.get(name)
            if before is None:
                head.append(f"add map ip {self.TABLE} {name} {{ {self.SLOT_TYPE}; }}")
            elif before is elements or before == elements:
                continue
            fill += _differences(self.TABLE, name, dict(before or ()), dict(elements))
        old_chains, new_chains = old.chains, self.chains
        for name, wanted in [*self.chains.items(), ("outbound", self.outbound)]:
            had = old_chains.get(name, old.outbound if name == "outbound" else None)
            if had is None:
                head.append(f"add chain ip {self.TABLE} {name}")
            elif had is wanted or had == wanted:
                continue
            else:
                rules.append(f"flush chain ip {self.TABLE} {name}")
            rules += [f"add rule ip {self.TABLE} {name} {rule}" for rule in wanted]
        for name in sorted({*old.sets, *self.sets}):
            fill += _differences(self.TABLE, name, old.sets.get(name, {}), self.sets.get(name, {}))
        vips = _differences(
            self.TABLE, VIPS_MAP, old.vips, self.vips
        )  # after the chains they jump to
        for name in old_chains:
            if name not in new_chains:  # after the vips leading to it
                tail += [
                    f"flush chain ip {self.TABLE} {name}",
                    f"delete chain ip {self.TABLE} {name}",
                ]
        tail += [
            f"delete map ip {self.TABLE} {name}" for name in old_slots if name not in self.slots
        ]
        return "".join(f"{line}\n" for line in [*head, *fill, *rules, *vips, *tail])


def _pair(element: tuple[object, str]) -> str:
    key, data = element
    return f"{key} : {data}" if data else str(key)


def _listed(elements: Sequence[tuple[int, str]]) -> str:
    return ", ".join(f"{slot} : {data}" for slot, data in elements)


def _elements(table: str, verb: str, name: str, elements: Sequence[str]) -> list[str]:
    if not elements:
        return []
    return [f"{verb} element ip {table} {name} {{ {', '.join(elements)} }}"]


def _differences(
    table: str, name: str, old: Mapping[Any, str], new: Mapping[Any, str]
) -> list[str]:
    """Delete what went or changed data, add what came or changed data."""
    if old is new or old == new:
        return []
    gone = [str(k) for k, v in old.items() if k not in new or new[k] != v]
    came = [_pair((k, v)) for k, v in new.items() if k not in old or old[k] != v]
    return [*_elements(table, "delete", name, gone), *_elements(table, "add", name, came)]


# ---------------------------------------------------------------- rendering


def slots_map(key: str) -> str:
    """The slot map of the lbRule of object key ``key``."""
    return f"slots_{ident(key.partition('/')[2])}"


def rule_chain(rule: Balanced) -> str:
    return f"lb_{ident(rule.key.partition('/')[2])}"


def nat_chain(nat: Forwarded) -> str:
    return f"nat_{ident(nat.key.partition('/')[2])}"


def _rule_lines(rule: Balanced) -> tuple[str, ...]:
    if not rule.pool:
        return ("drop",)  # no healthy DIP
    flow = f"jhash {rule.fields} mod {len(rule.elements)} seed {FLOW_HASH_SEED:#x}"
    port = rule.backend_port
    # nft wants a transport match before a port in the NAT data; the vips map already chose it.
    # A mux sends each flow to the MAC of the DIP it chose: that choice stands (``steer``).
    return tuple(
        line
        for proto in rule.protocols
        for line in (
            f"meta l4proto {proto} dnat ip to ether daddr map @{STEER_MAP} : {port}",
            f"meta l4proto {proto} dnat ip to {flow} map @{slots_map(rule.key)} : {port}",
        )
    )


def _nat_lines(nat: Forwarded) -> tuple[str, ...]:
    return tuple(
        f"meta l4proto {proto} dnat ip to {nat.dip}:{nat.backend_port}" for proto in nat.protocols
    )


def _frontends(item: Balanced | Forwarded, chain: str) -> list[tuple[str, str]]:
    return [
        (f"{vip} . {proto} . {item.frontend_port}", f"jump {chain}")
        for vip in item.vips
        for proto in item.protocols
    ]


def _outbound(balancing: Balancing) -> tuple[list[str], set[str]]:
    """The outbound chain's rules (per DIP, its block) and the (DIP . protocol)s that leave."""
    lines: list[str] = []
    leaving: set[str] = set()
    for key in sorted(balancing.outbound):
        rule = balancing.outbound[key]
        protocols = rule.protocols or ("tcp", "udp")
        listed = protocols[0] if len(protocols) == 1 else "{ " + ", ".join(protocols) + " }"
        for block in rule.blocks:
            ports = f"{rule.vip}:{block.first}-{block.last}"
            lines.append(f"ip saddr {block.dip} meta l4proto {listed} snat ip to {ports}")
            leaving |= {f"{block.dip} . {proto}" for proto in protocols}
            if not rule.protocols:  # All: ICMP and the rest leave from the VIP, no port
                lines.append(f"ip saddr {block.dip} snat ip to {rule.vip}")
                leaving.add(f"{block.dip} . icmp")
    return lines, leaving


@dataclass(frozen=True)
class _Parts:
    """What one rule or NAT rule puts in the table."""

    chain: tuple[str, tuple[str, ...]]
    frontends: tuple[tuple[str, str], ...]
    slots: tuple[str, tuple[tuple[int, str], ...]] | None


# Per rule object (by identity), its parts: the reader keeps a rule's object until it changes,
# so a change renders one rule, not the thousand a host may hold.
_PARTS: dict[int, tuple[Balanced | Forwarded, _Parts]] = {}
PARTS_KEPT = 1 << 16


def _parts(item: Balanced | Forwarded) -> _Parts:
    known = _PARTS.get(id(item))
    if known is not None and known[0] is item:
        return known[1]
    if isinstance(item, Balanced):
        name = rule_chain(item)
        lines = _rule_lines(item)
        slots = (slots_map(item.key), item.elements) if item.pool else None
    else:
        name, lines, slots = nat_chain(item), _nat_lines(item), None
    parts = _Parts((name, lines), tuple(_frontends(item, name)), slots)
    if len(_PARTS) >= PARTS_KEPT:
        _PARTS.clear()
    _PARTS[id(item)] = (item, parts)
    return parts


def render(
    balancing: Balancing,
    local: Mapping[str, str] | None = None,
    previous: tuple[Balancing, Mapping[str, str], LbTables] | None = None,
) -> LbTables:
    """The table enforcing ``balancing`` (one router's share of ``balancing_from_objects``);
    ``local``: the address -> MAC of the router's own endpoints (the DIPs among them may be
    chosen by a mux, which sends the flow to the DIP's MAC, and may reach their own VIP and
    land on themselves: hairpin). ``previous``: the last table and what it was rendered from;
    when only a few rules changed since, it is patched (a host may hold a thousand rules)."""
    local = local or {}
    if previous is not None:
        patched = _patched(balancing, local, *previous)
        if patched is not None:
            return patched
    vips: dict[str, str] = {}
    maps: dict[str, Slots] = {}
    chains: dict[str, tuple[str, ...]] = {}
    for item in _items(balancing):
        _add(_parts(item), vips, maps, chains)
    outbound, leaving = _outbound(balancing)
    publics = balancing.publics.values()
    sets: dict[str, dict[str, str]] = {
        "public_in": {p.public: p.private for p in publics},
        "public_out": {p.private: p.public for p in publics},
        "leaving": dict.fromkeys(sorted(leaving), ""),
        "public_sources": {p.private: "" for p in publics},
        **_local_sets(_items(balancing), local),
    }
    return LbTables(vips, maps, chains, tuple(outbound), {k: v for k, v in sets.items() if v})


def _items(balancing: Balancing) -> list[Balanced | Forwarded]:
    items: list[Balanced | Forwarded] = [balancing.rules[k] for k in sorted(balancing.rules)]
    return items + [balancing.nats[k] for k in sorted(balancing.nats)]


def _add(
    parts: _Parts, vips: dict[str, str], maps: dict[str, Slots], chains: dict[str, tuple[str, ...]]
) -> None:
    if parts.slots is not None:
        maps[parts.slots[0]] = parts.slots[1]
    chains[parts.chain[0]] = parts.chain[1]
    vips.update(parts.frontends)


def _local_dips(item: Balanced | Forwarded, local: Mapping[str, str]) -> set[str]:
    return {
        dip for dip in (item.dips if isinstance(item, Balanced) else (item.dip,)) if dip in local
    }


def _local_sets(
    items: list[Balanced | Forwarded], local: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """The hairpin set and the steer map: the local DIPs of ``items``."""
    dips: set[str] = set()
    for item in items:
        dips |= _local_dips(item, local)
    return {
        "hairpin": {f"{dip} . {dip}": "" for dip in sorted(dips)},
        STEER_MAP: {local[dip]: dip for dip in sorted(dips)},
    }


PATCHED_AT_MOST = 16  # rules changed since the previous table; beyond, render whole


def _patched(
    balancing: Balancing,
    local: Mapping[str, str],
    before: Balancing,
    had_local: Mapping[str, str],
    tables: LbTables,
) -> LbTables | None:
    """``tables`` (rendered from ``before``) patched for the rules that changed since, or
    None when more than rules changed (NAT, outbound, public IPs, local endpoints)."""
    if (before.nats, before.outbound, before.publics, had_local) != (
        balancing.nats, balancing.outbound, balancing.publics, local
    ):  # fmt: skip
        return None
    old, new = before.rules, balancing.rules
    changed = [k for k in new if old.get(k) is not new[k]]
    changed += [k for k in old if k not in new]
    if len(changed) > PATCHED_AT_MOST:
        return None
    vips, maps, chains = dict(tables.vips), dict(tables.slots), dict(tables.chains)
    moved_local = False
    for key in changed:
        gone, came = old.get(key), new.get(key)
        if gone is not None:
            parts = _parts(gone)
            for frontend, _ in parts.frontends:
                del vips[frontend]
            maps.pop(slots_map(key), None)
            del chains[parts.chain[0]]
            moved_local |= bool(_local_dips(gone, local))
        if came is not None:
            _add(_parts(came), vips, maps, chains)
            moved_local |= bool(_local_dips(came, local))
    sets = dict(tables.sets)
    if moved_local:
        sets.update(_local_sets(_items(balancing), local))
        sets = {k: v for k, v in sets.items() if v}
    return LbTables(vips, maps, chains, tables.outbound, sets)
