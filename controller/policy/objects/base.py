"""What every kind of southbound object declares, so the compiler needs no list of its own.

An ``ObjectKind`` is the one home of a kind of object: how its bodies are built, which objects
of it may exist, and what makes one of them dirty. The compiler asks the kinds; adding a kind
is writing one module and naming it in ``controller.policy.objects.KINDS``.

Inside the compiler an object is named ``<kind>:<key>`` where the key is the model's (a
lower-cased resourceRef); on the wire it is ``<kind>/<instanceId>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.policy.model import Model

Body = dict[str, Any]
# The keys of one kind's objects that something may have changed.
Keys = Iterable[str]


@dataclass(frozen=True)
class Computed:
    wire: str
    body: Body
    hosts: frozenset[str]


@dataclass(frozen=True)
class ObjectKind:
    # The object kind on the wire (a constant of controller.protocol), also the prefix of
    # its names inside the compiler.
    wire: str
    # The object of one key: wire key, body and the hosts that need it; None when the object
    # does not exist (the model lacks what it needs, or no host needs it).
    build: Callable[[Model, str], Computed | None]
    # Every key an object of this kind may have (what a full compile tries).
    keys: Callable[[Model], Keys]
    # By entity type: the keys whose body or hosts a change of such an entity may shape
    # (called with the entity as it was and as it is, on the model of that moment).
    shaped_by: Mapping[type, Callable[[Model, Any], Keys]] = field(default_factory=dict)
    # By group (``controller.policy.model``'s VNET, ACL): the keys whose hosts
    # follow the hosts of that group, recomputed when they change.
    follows: Mapping[str, Callable[[Model, str], Keys]] = field(default_factory=dict)
    # By entity type: the keys whose bodies name such an entity by instanceId, recomputed
    # only when one appears, vanishes or is created again (a cheaper rule than ``shaped_by``
    # for entities whose other changes do not concern these objects).
    names: Mapping[type, Callable[[Model, str], Keys]] = field(default_factory=dict)
    # Keyed by ipConfiguration: describes one endpoint, recomputed whenever that endpoint's
    # placement may have changed.
    per_endpoint: bool = False

    def name(self, key: str) -> str:
        return f"{self.wire}:{key}"

    def names_of(self, keys: Keys) -> set[str]:
        return {f"{self.wire}:{key}" for key in keys}
