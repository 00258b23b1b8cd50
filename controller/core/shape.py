"""Response shape: the members NC's own responses always carry, and what they say by default.

Real NC answers carry some members whether or not a client ever sent them (an empty
``loadBalancerInboundNatRules`` on every ipConfiguration, a NIC's ``portSettings`` with
Hyper-V's defaults, ``serviceInsertionElements: []``), and clients iterate them without
checking: a member we leave out crashes them. A kind's ``Shape`` lists those members of its
``properties``; a member's own shape fills an object member (or each object of an array member)
member by member, so the declaration reads as the table ``docs/nbi.md`` shows.

The shape is applied when a response is rendered, never to what is stored: a document written
before a default was declared reads back with it, what a client sent always wins, and the
southbound compiler sees exactly what clients wrote. ``read_only`` members are ones the model
does not have at all (features we do not implement, whose NC answer is always empty): they are
rendered with their value whatever a client sent, and ignored on input like every unknown
member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Json = Any


@dataclass(frozen=True)
class Member:
    """One member of a JSON object in responses.

    ``always``: rendered with ``value`` when the document has none (else only filled when
    present). ``shape``: the members of this object, or of each object of this array.
    ``read_only``: the type of a member the properties model lacks (for the OpenAPI
    document); it is always rendered as ``value``."""

    name: str
    value: Json = None
    always: bool = True
    shape: Shape | None = None
    read_only: Any = None

    def fill(self, document: dict[str, Json]) -> None:
        if self.read_only is not None:
            document[self.name] = _fresh(self.value)
            return
        value = document.get(self.name)
        if value is None:
            if not self.always:
                return
            value = _fresh(self.value)
        if self.shape is not None:
            if isinstance(value, dict):
                value = self.shape.render(value)
            elif isinstance(value, list):
                value = [self.shape.render(v) if isinstance(v, dict) else v for v in value]
        document[self.name] = value

    def rendered_default(self) -> Json:
        """What a document without this member renders for it (``None`` if nothing)."""
        if not self.always and self.read_only is None:
            return None
        holder: dict[str, Json] = {}
        self.fill(holder)
        return holder[self.name]


class Shape:
    """The always-rendered members of one JSON object (a kind's ``properties``, or an object
    nested in them)."""

    __slots__ = ("members",)

    def __init__(self, *members: Member) -> None:
        self.members: tuple[Member, ...] = members

    def render(self, document: Mapping[str, Json]) -> dict[str, Json]:
        """``document`` with every member of this shape filled in; ``document`` is not
        changed (it is what the store holds)."""
        rendered = dict(document)
        for member in self.members:
            member.fill(rendered)
        return rendered

    def flat(self, prefix: str = "") -> list[tuple[str, Member]]:
        """Every member, nested ones included, with its dotted path (``portSettings.vmqWeight``;
        ``[]`` marks the objects of an array)."""
        rows: list[tuple[str, Member]] = []
        for member in self.members:
            path = prefix + member.name
            rows.append((path, member))
            if member.shape is not None:
                inner = "[]." if isinstance(member.value, list) else "."
                rows.extend(member.shape.flat(path + inner))
        return rows


def default(name: str, value: Json, *members: Member) -> Member:
    """``name`` is always rendered: ``value`` when the document has none, then ``members``
    filled in (for an object) or in each of its objects (for an array)."""
    return Member(name, value, shape=Shape(*members) if members else None)


def nested(name: str, *members: Member, array: bool = False) -> Member:
    """``name`` is rendered only when the document has it; its ``members`` are filled in (in
    each of its objects when it is an ``array``)."""
    return Member(name, [] if array else None, always=False, shape=Shape(*members))


def read_only(name: str, value: Json, annotation: Any) -> Member:
    """A read-only member the model lacks, always rendered as ``value`` (of type
    ``annotation``)."""
    return Member(name, value, read_only=annotation)


def _fresh(value: Json) -> Json:
    """A copy of a declared value, so no response shares a list or object with another."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value
