"""Resource kinds: the declarative description the generic NBI engine works from.

A ``Kind`` says where a resource lives in the URI tree (``name`` and ``parent``), what its
``properties`` look like (a ``WireModel``), which semantic checks it needs, which read-only
reverse references the server computes for it, and which members its responses always carry
(its ``Shape``). The ``Registry`` indexes all kinds for routing
and reference resolution. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.core.shape import Shape
from controller.core.wire import WireModel
from controller.errors import ControllerError

if TYPE_CHECKING:
    from controller.core.tree import Node

# Checks one node together with its (already merged) children; raises InvalidInput.
Validator = Callable[["Node"], None]
# Checks a root node against every other root of its kind (e.g. overlapping MAC pools).
PeerCheck = Callable[["Node", Sequence["Node"]], None]
# Members of a node's properties that are write-only secrets (stored apart, never returned).
SecretPolicy = Callable[["Node"], frozenset[str]]
# Read-only properties derived from a stored document and facts the service looked up (usage).
Computed = Callable[[WireModel, "Facts"], dict[str, Any]]


@dataclass(frozen=True)
class Facts:
    """What the store knows about a node beyond its own document: how many values of a pool
    are allocated, the VSID of a virtual subnet, which VIP pools hold VIPs."""

    allocated: int = 0
    vsid: int | None = None
    vip_pools_in_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsedBy:
    """A resource (of kind ``kind``) that references a node through its member ``member``."""

    kind: str
    member: str
    ref: str


# Checks a rewritten node against the resources that reference it; raises ResourceInUse.
ReferrerCheck = Callable[["Node", Sequence[UsedBy]], None]


@dataclass(frozen=True)
class SiblingKey:
    """Members of a child kind's properties whose values, together, no two children of one
    parent may share (an ACL's rules: direction and priority). ``clash(node, other)`` is the
    error for ``node`` sharing them with the sibling whose resourceId is ``other``."""

    members: tuple[str, ...]
    clash: Callable[[Node, str], ControllerError]
    # The key a child holds, when it is not simply its members' values (None: it holds none,
    # as a Dynamic ipConfiguration holds no address of its own choosing).
    values: Callable[[Node], tuple[str | int, ...] | None] | None = None


@dataclass(frozen=True)
class SiblingAccord:
    """What the children of one parent must agree on, read from the lower-cased resourceRef of
    their reference ``member``: ``value`` of it (None: the child does not count), the same for
    every child unless ``waived(parent)`` (a NIC's ipConfigurations: one virtual network,
    unless the NIC is a multitenant stack). ``clash(parent)`` is the error when they differ."""

    member: str
    value: Callable[[str], str | None]
    waived: Callable[[Node], bool]
    clash: Callable[[Node], ControllerError]


@dataclass(frozen=True)
class SiblingDocument:
    """What a check of a child written alone is told of one sibling it did not load: its
    kind's name, its resourceRef and the members of its stored properties it asked for."""

    kind: str
    ref: str
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class SiblingClaims:
    """What the children of ``kinds`` (names of child kinds of one parent) claim, no two of
    them the same: a load balancer's rules and NAT rules claim frontend ports, port ranges and
    protocols that overlap, which no key can say. ``check(children)`` raises for the first
    clash among a parent's children of those kinds (in ``kinds`` order); ``check_one(child,
    siblings)`` for one written alone, against the ``members`` of its siblings' documents;
    ``candidates(child)``, when it gives one, names the values of a member (integers or
    strings) outside which no sibling can clash with the child, so the database sends only
    those (a NAT rule's port, or 0 for every port), not every sibling."""

    kinds: tuple[str, ...]
    members: tuple[str, ...]
    check: Callable[[Sequence[Node]], None]
    check_one: Callable[[Node, Sequence[SiblingDocument]], None]
    candidates: Callable[[Node], tuple[str, tuple[int | str, ...]] | None] = lambda child: None


@dataclass(frozen=True)
class BackRef:
    """A read-only reverse reference: ``member`` lists every resource of one of ``sources``
    (kind keys) that references this one through a member named in ``via`` (any if empty).
    A ``single`` one is one reference (absent when there is none): the referencing member is
    exclusive, so at most one resource can hold it (a public IP's ``ipConfiguration``)."""

    member: str
    sources: tuple[str, ...]
    via: tuple[str, ...] = ()
    single: bool = False

    def matches(self, source_kind: str, source_member: str) -> bool:
        return source_kind in self.sources and (not self.via or source_member in self.via)


@dataclass(frozen=True, eq=False)
class Kind:
    name: str
    title: str
    properties: type[WireModel]
    parent: Kind | None = None
    singleton_id: str | None = None
    # Other URI segments clients use for this kind (``logicalSubnets`` for ``subnets``).
    uri_aliases: tuple[str, ...] = ()
    backrefs: tuple[BackRef, ...] = ()
    validate: Validator | None = None
    check_peers: PeerCheck | None = None
    check_referrers: ReferrerCheck | None = None
    # Members whose values are unique among the siblings of such a child (checked by the
    # engine, for a whole write and for a child written alone).
    sibling_key: SiblingKey | None = None
    # What the children of one parent must agree on (checked as the sibling key is).
    sibling_accord: SiblingAccord | None = None
    # What children of this and other kinds of one parent claim, no two alike.
    sibling_claims: SiblingClaims | None = None
    # A PUT or DELETE of one such child at its own URI is done without loading its aggregate
    # (service/alone.py): nothing decides whether it is valid but the child itself and its
    # siblings' ``sibling_key`` and ``sibling_accord``, so one rule of a 10,000-rule ACL costs
    # one rule. Such a kind has no children, secrets or peer and referrer checks, references
    # only into other aggregates, and no check of its parent reads its children (tests/core
    # checks what it can).
    written_alone: bool = False
    computed: Computed | None = None
    # Names and types of the members ``computed`` adds, for the OpenAPI description.
    computed_members: tuple[tuple[str, Any], ...] = ()
    secret_members: SecretPolicy | None = None
    # The members NC's responses always carry and their defaults, filled in on every rendering
    # (controller/core/shape.py).
    shape: Shape = field(default_factory=Shape)
    description: str = ""
    key: str = field(init=False)

    def __post_init__(self) -> None:
        key = self.name if self.parent is None else f"{self.parent.key}/{self.name}"
        object.__setattr__(self, "key", key)

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def root(self) -> Kind:
        return self if self.parent is None else self.parent.root

    @property
    def deletable(self) -> bool:
        return self.singleton_id is None

    def __repr__(self) -> str:
        return f"Kind({self.key})"


class Registry:
    """All kinds, indexed by key and by case-insensitive URI segment."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds: tuple[Kind, ...] = tuple(kinds)
        self.by_key: dict[str, Kind] = {k.key: k for k in self.kinds}
        if len(self.by_key) != len(self.kinds):
            raise ValueError("duplicate kind keys")
        self._top: dict[str, Kind] = {}
        self._children: dict[str, dict[str, Kind]] = {k.key: {} for k in self.kinds}
        self._child_kinds: dict[str, tuple[Kind, ...]] = {
            k.key: tuple(c for c in self.kinds if c.parent is k) for k in self.kinds
        }
        for kind in self.kinds:
            index = self._top if kind.parent is None else self._children[kind.parent.key]
            for segment in (kind.name, *kind.uri_aliases):
                index[segment.lower()] = kind

    @property
    def top_level(self) -> tuple[Kind, ...]:
        return tuple(k for k in self.kinds if k.parent is None)

    def top(self, segment: str) -> Kind | None:
        return self._top.get(segment.lower())

    def child(self, parent: Kind, segment: str) -> Kind | None:
        return self._children[parent.key].get(segment.lower())

    def children_of(self, kind: Kind) -> tuple[Kind, ...]:
        return self._child_kinds[kind.key]
