"""ACLs as one nftables script per router namespace (pure: objects in, ruleset text out).

API (the dataplane calls these; nothing here does I/O; the ACL policies come from
``acls.acls_from_objects``):

``render(endpoints, acls) -> Ruleset``
    ``Ruleset.text`` is one script for ``nft -f`` that replaces ``table bridge sdnc`` and
    ``table inet sdnc`` in one transaction (each is created empty, deleted, then defined).
    ``Ruleset.problems`` lists ``(object key, message)`` for what could not be enforced as
    sent: rules and ACLs (of the ACLs these endpoints use) and endpoints -- report them as
    per-object failures.

The bridge table marks frames for local endpoint MACs as addressed to the host (arriving over
VXLAN they are PACKET_OTHERHOST, which IP drops), and sets the mark of frames for a local
appliance's MAC (policy routing sends those to the appliance: see routes.py). The inet forward
hook filters the routed traffic of local endpoints with conntrack (replies of accepted flows
pass): a packet from an endpoint port meets its sender's outbound ACLs, then one to an endpoint
port its receiver's inbound ACLs, each found by one verdict-map lookup on (port, address); an
address that is no endpoint's on that port is dropped (no spoofing past an ACL). An ACL is a
chain per direction, rules by priority, first match: Allow returns to the next ACL, Deny drops,
then the default; an endpoint's ACLs, in order, are a chain per direction shared by every
endpoint with the same list (the verdict map goes to it). Endpoints without ACLs pass.
``logging`` is not enforced; established flows survive a change.
Every ACL rule and default counts the packets it decides (``counter``); a ruleset is compared
with the kernel's listed without those counts (``nft -s``), which traffic changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.agent.linux.acls import AclPolicy, Problem, match_expressions
from controller.agent.linux.lb_tables import LbTables
from controller.agent.linux.nft_ports import SUFFIX, FilteredEndpoint, acl_chain, endpoints_part

TABLE = "sdnc"
NO_BALANCING = LbTables()


def _acl_chain(acl_id: str, policy: AclPolicy, direction: str) -> tuple[str, tuple[str, ...]]:
    rules, permit = (
        (policy.inbound, policy.inbound_permit)
        if direction == "inbound"
        else (policy.outbound, policy.outbound_permit)
    )
    lines: list[str] = []
    for rule in rules:
        verdict = verdict_of(rule.allow)
        lines += [f"{match} {verdict}".strip() for match in match_expressions(rule)]
    return acl_chain(acl_id, direction), (*lines, verdict_of(permit))


def verdict_of(allow: bool) -> str:
    """An ACL rule's (or default's) statement: it counts what it decides, so which rule let a
    packet through or dropped it can be read from the kernel (``nft list chain``)."""
    return "counter return" if allow else "counter drop"


# An ACL chain's last rule, its default: it decides every packet that reaches it, so rules
# inserted ahead of a chain's rules, ending with one, leave the old ones unreachable.
FINAL_VERDICTS = frozenset({verdict_of(True), verdict_of(False)})


@dataclass(frozen=True)
class Tables:
    """What a ruleset holds that changes with the objects: the set and map elements and the
    ACL and ACL-list chains (the declarations and the fixed chains never change). ``text``
    renders it whole; ``changes_from`` says how to get to it from another one in place."""

    macs: tuple[str, ...] = ()  # bridge set endpoint_macs
    maps: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # map -> (key, verdict)s
    ports: tuple[str, ...] = ()  # inet set endpoint_ports ('"veth"')
    forwarding: tuple[str, ...] = ()  # inet set forwarding_ports: appliances' veths
    marks: tuple[tuple[str, str], ...] = ()  # bridge map appliance_marks: (MAC, mark)
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ACL and ACL-list chains, in order
    lb: LbTables = NO_BALANCING  # table ip sdnc_lb: load balancing and NAT (lb_tables.py)

    @property
    def text(self) -> str:
        macs = _named("set endpoint_macs", "ether_addr", list(self.macs))
        listed = [f"{mac} : {mark}" for mac, mark in self.marks]
        marks = _named("map appliance_marks", "ether_addr : mark", listed)
        bridge = _table("bridge", [*macs, *marks, *_PREROUTING])
        lines: list[str] = []
        for name, elements in self.maps:
            version = name[-1]
            listed = [f"{key} : {verdict}" for key, verdict in elements]
            lines += _named(f"map {name}", f"ifname . ipv{version}_addr : verdict", listed)
        lines += _named("set endpoint_ports", "ifname", list(self.ports))
        lines += _named("set forwarding_ports", "ifname", list(self.forwarding))
        for name, rules in self.chains:
            lines += [f"chain {name} {{", *rules, "}"]
        return bridge + _table("inet", [*lines, *_TAIL.splitlines()]) + self.lb.text

    def changes_from(self, old: Tables) -> str:
        """One ``nft -f`` transaction turning a kernel holding ``old`` into one holding this
        (empty when they are the same): only the elements and chains that differ."""
        return self._changes(old, shadow=False).now

    def transition_from(self, old: Tables) -> Transition:
        """As ``changes_from``, but a changed chain that ends with a verdict every packet
        meets (an ACL's default) gets its new rules inserted ahead of the old ones, which
        they shadow, instead of being flushed: a transaction that deletes rules or elements
        was measured waiting in the kernel's commit (6-20 ms, at 10 endpoints as at 1,000;
        one that only adds, 0.5 ms), so an ACL change is enforced at once and ``tidy``
        removes the shadowed rules afterwards."""
        return self._changes(old, shadow=True)

    def tidy(self, chains: Iterable[str]) -> str:
        """The transaction that leaves ``chains`` holding exactly their rules (dropping
        those a transition left shadowed); chains no longer here are skipped."""
        wanted = dict(self.chains)
        lines: list[str] = []
        for name in sorted(set(chains) & wanted.keys()):
            lines.append(f"flush chain inet {TABLE} {name}")
            lines += [f"add rule inet {TABLE} {name} {rule}" for rule in wanted[name]]
        return "".join(f"{line}\n" for line in lines)

    def _changes(self, old: Tables, *, shadow: bool) -> Transition:
        head: list[str] = []  # new chains first: elements and rules may jump to them
        removals: list[str] = []
        rules: list[str] = []
        additions: list[str] = []
        tail: list[str] = []
        shadowed: set[str] = set()
        old_chains, new_chains = dict(old.chains), dict(self.chains)
        for name, wanted in self.chains:
            if name not in old_chains:
                head.append(f"add chain inet {TABLE} {name}")
            elif old_chains[name] == wanted:
                continue
            elif shadow and wanted and wanted[-1] in FINAL_VERDICTS:
                rules += [f"insert rule inet {TABLE} {name} {rule}" for rule in reversed(wanted)]
                shadowed.add(name)
                continue
            else:
                rules.append(f"flush chain inet {TABLE} {name}")
            rules += [f"add rule inet {TABLE} {name} {rule}" for rule in wanted]
        for name in old_chains:
            if name not in new_chains:  # emptied first: a chain with rules cannot be deleted
                rules.append(f"flush chain inet {TABLE} {name}")
                tail.append(f"delete chain inet {TABLE} {name}")
        old_maps, new_maps = dict(old.maps), dict(self.maps)
        for name in sorted({*old_maps, *new_maps}):
            if old_maps.get(name) == new_maps.get(name):
                continue  # most changes leave most maps as they were (1,000 elements each)
            before, after = dict(old_maps.get(name, ())), dict(new_maps.get(name, ()))
            gone = [k for k, v in before.items() if after.get(k) != v]
            came = [f"{k} : {v}" for k, v in after.items() if before.get(k) != v]
            removals += _elements("delete", "inet", name, gone)
            additions += _elements("add", "inet", name, came)
        before_marks, after_marks = dict(old.marks), dict(self.marks)
        gone = sorted(k for k, v in before_marks.items() if after_marks.get(k) != v)
        came = sorted(f"{k} : {v}" for k, v in after_marks.items() if before_marks.get(k) != v)
        removals += _elements("delete", "bridge", "appliance_marks", gone)
        additions += _elements("add", "bridge", "appliance_marks", came)
        for family, name, before_set, after_set in (
            ("bridge", "endpoint_macs", old.macs, self.macs),
            ("inet", "endpoint_ports", old.ports, self.ports),
            ("inet", "forwarding_ports", old.forwarding, self.forwarding),
        ):
            if before_set == after_set:
                continue
            removals += _elements("delete", family, name, sorted(set(before_set) - set(after_set)))
            additions += _elements("add", family, name, sorted(set(after_set) - set(before_set)))
        script = [*head, *removals, *rules, *additions, *tail]
        balancing = self.lb.changes_from(old.lb)  # its own table: nothing above refers to it
        now = "".join(f"{line}\n" for line in script) + balancing
        return Transition(now, frozenset(shadowed))


@dataclass(frozen=True)
class Transition:
    """``now``: one transaction that makes the kernel enforce the new tables; ``shadowed``:
    the chains whose old rules it left behind its new ones (``Tables.tidy`` removes them)."""

    now: str
    shadowed: frozenset[str] = frozenset()


def _elements(verb: str, family: str, name: str, elements: list[str]) -> list[str]:
    if not elements:
        return []
    return [f"{verb} element {family} {TABLE} {name} {{ {', '.join(elements)} }}"]


@dataclass(frozen=True)
class Ruleset:
    tables: Tables
    problems: tuple[Problem, ...]

    @property
    def text(self) -> str:
        return self.tables.text


def render(
    endpoints: Sequence[FilteredEndpoint],
    acls: Mapping[str, AclPolicy],
    forwarding: Mapping[str, int] | None = None,
    lb: LbTables | None = None,
) -> Ruleset:
    """The script replacing both tables, and what could not be enforced (see the module);
    ``forwarding``: the veths of appliances (which forward traffic not their own) and the
    marks of the frames for their MACs (routing sends those on to them)."""
    forwarding = forwarding or {}
    # Every ACL the host has: an endpoint's part only asks about its own ACLs, and a key
    # that does not change with the endpoints keeps their parts cached.
    ports = endpoints_part(endpoints, frozenset(acls))
    problems = list(ports.problems)
    chains: dict[str, tuple[str, ...]] = {}
    for acl_id in ports.used:
        if acl_id in acls:
            problems.extend(acls[acl_id].problems)
            for direction in SUFFIX:
                name, rules = _acl_chain(acl_id, acls[acl_id], direction)
                chains[name] = rules
    problems += ports.missing
    chains.update(ports.lists)
    forwarders = tuple(f'"{veth}"' for veth in sorted(forwarding) if f'"{veth}"' in ports.veths)
    marks = (
        {mac: f"{forwarding[veth]:#010x}" for veth, mac in ports.port_macs if veth in forwarding}
        if forwarding
        else {}
    )
    tables = Tables(
        macs=ports.macs,
        maps=ports.maps,
        ports=ports.veths,
        forwarding=forwarders,
        marks=tuple(sorted(marks.items())),
        chains=tuple(chains.items()),
        lb=lb or NO_BALANCING,
    )
    return Ruleset(tables, tuple(dict.fromkeys(problems)))


_PREROUTING = [
    "chain prerouting {",
    "type filter hook prerouting priority 0; policy accept;",
    "ether daddr @endpoint_macs meta pkttype set host",
    "meta mark set ether daddr map @appliance_marks",
    "}",
]


_TAIL = """\
chain outbound {
iifname . ip saddr vmap @outbound_v4
iifname . ip6 saddr vmap @outbound_v6
iifname @forwarding_ports return
drop
}
chain inbound {
oifname . ip daddr vmap @inbound_v4
oifname . ip6 daddr vmap @inbound_v6
oifname @forwarding_ports return
drop
}
chain forward {
type filter hook forward priority filter; policy accept;
ct state established,related accept
iifname != @forwarding_ports oifname != @forwarding_ports ct state invalid drop
iifname @endpoint_ports jump outbound
oifname @endpoint_ports jump inbound
}"""  # outbound/inbound drop what is not an endpoint's address on that port (spoofed, stale),
# but an appliance's port passes what it forwards: the sender's outbound and the receiver's
# inbound ACLs judge it, not the appliance's own. What an appliance forwards may be half a
# flow (a route table on the way out, none back: the replies bypass it): conntrack here
# never saw the other half and calls it invalid, so that check skips the appliance's port.


def _named(declaration: str, type_: str, elements: list[str]) -> list[str]:
    listed = [f"elements = {{ {', '.join(elements)} }}"] if elements else []
    return [f"{declaration} {{", f"type {type_}", *listed, "}"]


def _table(family: str, body: list[str]) -> str:
    lines = [f"table {family} {TABLE} {{}}", f"delete table {family} {TABLE}"]
    lines.append(f"table {family} {TABLE} {{")
    depth = 1
    for line in body:
        depth -= line == "}"
        lines.append("\t" * depth + line)
        depth += line.endswith("{")
    lines.append("}")
    return "\n".join(lines) + "\n"
