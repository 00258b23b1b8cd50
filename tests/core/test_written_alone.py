"""What a kind written alone (``Kind.written_alone``, service/alone.py) must be, as far as a
machine can tell: a write of one such child loads nothing of its aggregate but the rows from
the top down to it, so nothing else of the aggregate may decide whether it is valid, and the
change log must be able to record it as a patch."""

from __future__ import annotations

from typing import NoReturn, get_args, get_origin

import pytest
from pydantic import BaseModel

from controller.core.kinds import Kind
from controller.core.paths import ResourcePath
from controller.core.refs import ResourceRef
from controller.core.tree import Node
from controller.policy.documents import patchable
from controller.resources import REGISTRY
from controller.service.alone import applies

ALONE = [kind for kind in REGISTRY.kinds if kind.written_alone]
LOAD_BALANCER_CHILDREN = (
    "frontendIPConfigurations",
    "backendAddressPools",
    "loadBalancingRules",
    "probes",
    "inboundNatRules",
    "outboundNatRules",
)


def ref_types(annotation: object) -> set[type[ResourceRef]]:
    """The reference types a member of this type can hold, anywhere within it."""
    if isinstance(annotation, type) and issubclass(annotation, ResourceRef):
        return {annotation}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return set().union(*(ref_types(f.annotation) for f in annotation.model_fields.values()))
    if get_origin(annotation) is not None:
        return set().union(*(ref_types(arg) for arg in get_args(annotation)))
    return set()


class Unreadable(dict[str, list[Node]]):
    """Children that a check must not read."""

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a check of the parent read its children")

    get = __getitem__ = __iter__ = __contains__ = __len__ = _refuse
    values = items = keys = _refuse


def ancestors(kind: Kind) -> list[Kind]:
    found = []
    while kind.parent is not None:
        kind = kind.parent
        found.append(kind)
    return found


def test_acl_rules_ip_configurations_and_load_balancer_children_are_written_alone() -> None:
    assert {kind.key for kind in ALONE} == {
        "networkInterfaces/ipConfigurations",
        "accessControlLists/aclRules",
        *(f"loadBalancers/{name}" for name in LOAD_BALANCER_CHILDREN),
    }


@pytest.mark.parametrize("kind", ALONE, ids=lambda kind: kind.key)
def test_a_kind_written_alone_needs_nothing_of_its_aggregate(kind: Kind) -> None:
    assert kind.parent is not None, "a top-level resource is its whole aggregate"
    assert REGISTRY.children_of(kind) == (), "its children would not be loaded"
    for ref in ref_types(kind.properties):
        # Resolved in the database, a sibling's kind among them (a NAT rule's frontend).
        assert ref.targets, ref
    assert kind.secret_members is None
    assert kind.check_referrers is None
    assert kind.check_peers is None
    for ancestor in ancestors(kind):
        assert ancestor.check_peers is None, ancestor.key
        if ancestor.validate is not None:
            # It would see the child without its siblings: it may not look at children.
            model = ancestor.properties.model_validate({})
            ancestor.validate(Node(ancestor, "x", model, children=Unreadable(), ref="/x"))
    assert patchable(kind.root.key), "the change log could not record it as a patch"
    fields = {f.alias or n for n, f in kind.properties.model_fields.items()}
    if kind.sibling_key is not None:
        assert set(kind.sibling_key.members) <= fields
    if kind.sibling_accord is not None:
        member = kind.sibling_accord.member
        field = kind.properties.model_fields[_field_name(kind, member)]
        assert ref_types(field.annotation), f"{member} is not a reference"


def _field_name(kind: Kind, member: str) -> str:
    fields = kind.properties.model_fields
    return next(n for n, f in fields.items() if (f.alias or n) == member)


def test_only_kinds_written_alone_are_written_alone() -> None:
    for kind in REGISTRY.kinds:
        chain = [*reversed(ancestors(kind)), kind]
        path = ResourcePath(tuple((k, "x") for k in chain))
        assert applies(path) == kind.written_alone


@pytest.mark.parametrize(
    "kind", [k for k in REGISTRY.kinds if k.sibling_claims], ids=lambda kind: kind.key
)
def test_kinds_that_claim_together_declare_one_claim(kind: Kind) -> None:
    """A whole write checks the claims once over the children of all the kinds they name;
    each of those kinds must name the same claims, and a kind claiming is among them."""
    claims = kind.sibling_claims
    assert claims is not None
    assert kind.name in claims.kinds
    assert kind.parent is not None
    siblings = {k.name: k for k in REGISTRY.children_of(kind.parent)}
    for name in claims.kinds:
        assert siblings[name].sibling_claims is claims, name
        fields = {f.alias or n for n, f in siblings[name].properties.model_fields.items()}
        assert set(claims.members) <= fields, name
