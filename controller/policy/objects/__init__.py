"""The southbound objects of host policy, as pure functions of the model.

A host receives keyed objects rather than per-endpoint expansions (an ACL is sent once per host
that needs it, not copied into every endpoint). Each kind of object has one home, a module of
this package that declares its ``ObjectKind`` (``base``): how it is built, which objects may
exist, what makes one dirty. ``KINDS`` lists them; the compiler knows nothing else of them.
docs/southbound.md lists the kinds and their bodies.
"""

from __future__ import annotations

from controller.policy.model import Model
from controller.policy.objects.acls import ACL, ACL_RULE
from controller.policy.objects.base import Body, Computed, ObjectKind
from controller.policy.objects.endpoints import ENDPOINT, MAPPING
from controller.policy.objects.hosts import HOST, SCHEMA_VERSION
from controller.policy.objects.lb import LB_KINDS
from controller.policy.objects.networks import NETWORK
from controller.policy.objects.route_tables import ROUTE_TABLE

__all__ = ["KINDS", "SCHEMA_VERSION", "Body", "Computed", "ObjectKind", "compute", "kind_named"]

KINDS: tuple[ObjectKind, ...] = (
    HOST,
    ENDPOINT,
    NETWORK,
    MAPPING,
    ACL,
    ACL_RULE,
    ROUTE_TABLE,
    *LB_KINDS,
)
_BY_WIRE = {kind.wire: kind for kind in KINDS}
if len(_BY_WIRE) != len(KINDS):  # pragma: no cover - a programming error caught at import
    raise RuntimeError("two object kinds share a wire name")


def kind_named(name: str) -> ObjectKind:
    """The kind of the object named ``<kind>:<key>``."""
    return _BY_WIRE[name.partition(":")[0]]


def compute(model: Model, name: str) -> Computed | None:
    """The object named ``name``: wire key, body and hosts; None when it does not exist."""
    kind, _, key = name.partition(":")
    found = _BY_WIRE.get(kind)
    return found.build(model, key) if found is not None else None
