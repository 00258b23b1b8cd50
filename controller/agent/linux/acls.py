"""ACL objects as the agent filters by them (pure): the policies, and each rule's nft matches.

``acls_from_objects(objects) -> dict[str, AclPolicy]``
    Reads the ``acl/<id>`` and ``aclRule/<id>`` objects of the host's desired state, keyed by
    ACL instanceId (the ids an endpoint's ``acls`` member lists). Defined, with what an ACL
    decides for a packet, in ``controller.policy.acl_semantics``, which the controller's
    connectivity check shares: what ``nft.py`` renders is what that module evaluates.
``match_expressions(rule) -> list[str]``
    The rule's nft matches, per IP family it can match.
"""

from __future__ import annotations

from controller.policy.acl_semantics import (
    PROTOCOLS,
    AclPolicy,
    Problem,
    Rule,
    Unenforceable,
    acls_from_objects,
    families,
    parse_ports,
    parse_prefixes,
    parse_rule,
    pick,
    version_of,
)

# What an ACL means is shared with the controller's connectivity check; re-exported here for
# the renderer and the tests that read the agent's view of it.
__all__ = [
    "PROTOCOLS", "AclPolicy", "Problem", "Rule", "Unenforceable", "acls_from_objects",
    "match_expressions", "parse_ports", "parse_prefixes", "parse_rule", "pick",
]  # fmt: skip

EXPAND = 8  # at most this many nft rules for one ACL rule before lists become sets
L4PROTO = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "ipv6-icmp"}


# ---------------------------------------------------------------- matching


def match_expressions(rule: Rule) -> list[str]:
    """The rule's nft matches (one after the other, same verdict), per IP family it can match;
    empty when it can match nothing."""
    return [match for family in families(rule) for match in _match(rule, family)]


def _match(rule: Rule, family: int | None) -> list[str]:
    keyword = "ip6" if family == 6 else "ip"
    fields: list[tuple[str, list[str]]] = []
    for field, prefixes in (("saddr", rule.sources), ("daddr", rule.destinations)):
        chosen = [p for p in prefixes if version_of(p) == family]
        fields += [(f"{keyword} {field}", chosen)] if chosen else []
    if rule.protocol in L4PROTO:
        fields.append(("meta l4proto", [L4PROTO[rule.protocol]]))
    elif rule.source_ports or rule.destination_ports:  # "All" with ports: those with ports
        fields.append(("meta l4proto", ["tcp", "udp"]))
    for field, ranges in (("sport", rule.source_ports), ("dport", rule.destination_ports)):
        values = [f"{low}-{high}" if high > low else str(low) for low, high in ranges]
        fields += [(f"th {field}", values)] if values else []
    # A few rules load much faster than an anonymous set each, so short lists become rules.
    matches = [""]
    for head, values in fields:
        if len(matches) * len(values) <= EXPAND:
            matches = [f"{match} {head} {value}" for match in matches for value in values]
        else:
            matches = [f"{match} {head} {{ {', '.join(values)} }}" for match in matches]
    return [match.strip() for match in matches]
