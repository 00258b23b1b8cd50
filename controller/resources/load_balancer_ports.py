"""Frontend ports, claimed once per frontend and protocol across a load balancer's
load-balancing rules and inbound NAT rules (``All`` claims TCP and UDP; port 0 of a rule, with
``All``, claims every port). Ranges and protocol sets overlap in ways no sibling key can say,
so the two kinds declare ``FRONTEND_PORTS`` (``SiblingClaims``): the engine checks it over a
whole load balancer, and for an inbound NAT rule written alone against its siblings' stored
documents."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from controller.core.kinds import SiblingClaims, SiblingDocument
from controller.core.tree import Node
from controller.core.values import PORT_MAX
from controller.errors import InvalidInput
from controller.resources.load_balancer_checks import FRONTENDS, NAT_RULES, RULES
from controller.resources.load_balancer_models import (
    InboundNatRuleProperties,
    LoadBalancingRuleProperties,
)
from controller.resources.slb_values import LbProtocol


@dataclass(frozen=True)
class _Claim:
    """Frontend ports the rule at ``ref`` claims: ``protocols`` on ports ``low``..``high``."""

    ref: str
    protocols: frozenset[str]
    low: int
    high: int


def _claims_of(
    kind: str, ref: str, frontends: Iterable[str], port: int, protocol: LbProtocol
) -> Iterator[tuple[str, _Claim]]:
    """What a rule (``kind`` RULES) or NAT rule claims on each of its frontends (lower-cased
    resourceRefs): port 0 of a rule is every port."""
    every = kind == RULES and port == 0
    low, high = (0, PORT_MAX) if every else (port, port)
    for frontend in frontends:
        yield frontend, _Claim(ref, protocol.covers(), low, high)


def _node_claims(child: Node) -> Iterator[tuple[str, _Claim]]:
    props: LoadBalancingRuleProperties | InboundNatRuleProperties
    if child.kind.name == RULES:
        props = child.props(LoadBalancingRuleProperties)
    else:
        props = child.props(InboundNatRuleProperties)
    frontends = [f.resource_ref.lower() for f in props.frontend_ip_configurations]
    return _claims_of(child.kind.name, child.ref, frontends, props.frontend_port, props.protocol)


def _document_claims(sibling: SiblingDocument) -> Iterator[tuple[str, _Claim]]:
    document = sibling.properties
    frontends = [str(f["resourceRef"]).lower() for f in document.get(FRONTENDS) or []]
    port, protocol = int(document["frontendPort"]), LbProtocol(document["protocol"])
    return _claims_of(sibling.kind, sibling.ref, frontends, port, protocol)


def check_frontend_ports(children: Sequence[Node]) -> None:
    """The rules and NAT rules of one load balancer, rules first: each claim against the
    earlier ones of its frontend and protocols, found by port; the first earlier claim it
    overlaps is named. Linear in the claims (comparing each with every earlier one took 10 %
    of a NAT rule's write on a load balancer of 1,000)."""
    taken: dict[tuple[str, str], _Taken] = {}
    for frontend, claim in (item for child in children for item in _node_claims(child)):
        _check_claim(taken, frontend, claim)
        _take(taken, frontend, claim)


def check_frontend_ports_of(child: Node, siblings: Sequence[SiblingDocument]) -> None:
    """One rule or NAT rule written alone, against its siblings' stored claims."""
    taken: dict[tuple[str, str], _Taken] = {}
    for sibling in siblings:
        for frontend, claim in _document_claims(sibling):
            _take(taken, frontend, claim)
    for frontend, claim in _node_claims(child):
        _check_claim(taken, frontend, claim)


def _check_claim(taken: dict[tuple[str, str], _Taken], frontend: str, claim: _Claim) -> None:
    clashes = [
        found
        for protocol in claim.protocols
        if (ports := taken.get((frontend, protocol))) is not None
        and (found := ports.clash(claim)) is not None
    ]
    if clashes:
        other = min(clashes, key=lambda earlier: earlier[0])[1]
        raise InvalidInput(
            f"{claim.ref} and {other.ref} both claim frontend port "
            f"{_ports(claim)} of {frontend} for {'/'.join(sorted(claim.protocols))}",
            target=f"{claim.ref}/properties/frontendPort",
        )


def _take(taken: dict[tuple[str, str], _Taken], frontend: str, claim: _Claim) -> None:
    for protocol in claim.protocols:
        taken.setdefault((frontend, protocol), _Taken()).add(claim)


@dataclass
class _Taken:
    """The claims on one frontend and protocol so far, in the order they came: those of one
    port by port, those of every port apart (a claim of every port meets all of them)."""

    by_port: dict[int, list[tuple[int, _Claim]]] = field(default_factory=dict)
    every_port: list[tuple[int, _Claim]] = field(default_factory=list)
    all_claims: list[tuple[int, _Claim]] = field(default_factory=list)

    def clash(self, claim: _Claim) -> tuple[int, _Claim] | None:
        """The first earlier claim of another rule that ``claim`` overlaps."""
        if claim.low != claim.high:
            candidates = self.all_claims
        else:
            candidates = [*self.by_port.get(claim.low, []), *self.every_port]
        found = [(order, other) for order, other in candidates if other.ref != claim.ref]
        return min(found, key=lambda item: item[0]) if found else None

    def add(self, claim: _Claim) -> None:
        # The order of claims across frontends and protocols: one counter for all of them.
        order = next(_ORDER)
        self.all_claims.append((order, claim))
        if claim.low != claim.high:
            self.every_port.append((order, claim))
        else:
            self.by_port.setdefault(claim.low, []).append((order, claim))


_ORDER = itertools.count()


def _port_candidates(child: Node) -> tuple[str, tuple[int | str, ...]] | None:
    """Only a rule or NAT rule on the same port, or a rule on every port (0), can clash with
    one on a single port; one on every port can clash with any."""
    port = child.model.dump()["frontendPort"]
    return None if port == 0 else ("frontendPort", (port, 0))


FRONTEND_PORTS = SiblingClaims(
    (RULES, NAT_RULES),
    (FRONTENDS, "frontendPort", "protocol"),
    check_frontend_ports,
    check_frontend_ports_of,
    _port_candidates,
)


def _ports(claim: _Claim) -> str:
    return "every port" if claim.low != claim.high else str(claim.low)
