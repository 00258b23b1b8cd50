"""What a kind written alone (``Kind.written_alone``, service/alone.py) must be, as far as a
machine can tell: a write of one such child loads nothing of its aggregate but the rows from
the top down to it, so nothing else of the aggregate may decide whether it is valid, and the
change log must be able to record it as a patch."""

from __future__ import annotations

import pytest

from controller.core.kinds import Kind
from controller.core.paths import ResourcePath
from controller.core.refs import may_hold_refs
from controller.policy.documents import patchable
from controller.resources import REGISTRY
from controller.service.alone import applies

ALONE = [kind for kind in REGISTRY.kinds if kind.written_alone]


def ancestors(kind: Kind) -> list[Kind]:
    found = []
    while kind.parent is not None:
        kind = kind.parent
        found.append(kind)
    return found


def test_acl_rules_are_written_alone() -> None:
    assert [kind.key for kind in ALONE] == ["accessControlLists/aclRules"]


@pytest.mark.parametrize("kind", ALONE, ids=lambda kind: kind.key)
def test_a_kind_written_alone_needs_nothing_of_its_aggregate(kind: Kind) -> None:
    assert kind.parent is not None, "a top-level resource is its whole aggregate"
    assert REGISTRY.children_of(kind) == (), "its children would not be loaded"
    assert not may_hold_refs(kind.properties), "its references would not be resolved"
    assert kind.secret_members is None
    assert kind.check_referrers is None
    assert kind.check_peers is None
    for ancestor in ancestors(kind):
        # An ancestor's checks would see it without its other children.
        assert ancestor.validate is None, ancestor.key
        assert ancestor.check_peers is None, ancestor.key
    assert patchable(kind.root.key), "the change log could not record it as a patch"
    if kind.sibling_key is not None:
        fields = {f.alias or n for n, f in kind.properties.model_fields.items()}
        assert set(kind.sibling_key.members) <= fields


def test_only_kinds_written_alone_are_written_alone() -> None:
    for kind in REGISTRY.kinds:
        chain = [*reversed(ancestors(kind)), kind]
        path = ResourcePath(tuple((k, "x") for k in chain))
        assert applies(path) == kind.written_alone
