"""A resource with its embedded children, as parsed from a body or loaded from the store.

One top-level resource and all its descendants form an *aggregate*: it is written, validated and
versioned (one etag) as a unit, which is how NC behaves (children carry their parent's etag).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from controller.core.kinds import Kind
from controller.core.wire import WireModel

ModelT = TypeVar("ModelT", bound=WireModel)


@dataclass
class Node:
    kind: Kind
    resource_id: str
    model: WireModel
    tags: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    # Child lists by child kind name. A node parsed from a request body only has the lists the
    # client sent; after merging with the stored aggregate every child kind is present.
    children: dict[str, list[Node]] = field(default_factory=dict)
    instance_id: UUID | None = None
    secret: dict[str, Any] | None = None
    ref: str = ""

    @property
    def key(self) -> str:
        return self.ref.lower()

    def props(self, model_type: type[ModelT]) -> ModelT:
        """The properties model, typed for the caller that knows the kind."""
        if not isinstance(self.model, model_type):
            raise TypeError(f"{self.ref} has {type(self.model).__name__}, not {model_type}")
        return self.model

    def target(self, member: str) -> str:
        """Where an error about one of this node's properties points: the node's resourceRef
        followed by the member's path in its envelope
        (``/accessControlLists/a/aclRules/r1/properties/priority``), the one format of every
        error's ``target`` (the request parser writes the same)."""
        return f"{self.ref}/properties/{member.replace('.', '/')}"

    def kids(self, name: str) -> list[Node]:
        return self.children.get(name, [])

    def walk(self) -> Iterator[Node]:
        """This node and all descendants, parents before children."""
        yield self
        for nodes in self.children.values():
            for child in nodes:
                yield from child.walk()

    def find(self, key: str) -> Node | None:
        for node in self.walk():
            if node.key == key:
                return node
        return None
