"""Resource paths: ``/logicalNetworks/HNVPA/subnets/PA1`` as a typed value.

Type segments are matched case-insensitively and rendered in canonical casing; resource ids keep
the casing they were written with but compare case-insensitively (``key``), as NC clients mix
``/logicalnetworks/hnvpa`` and ``/logicalNetworks/HNVPA`` for the same resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller.core.kinds import Kind, Registry

_VERSION_PREFIX = re.compile(r"^/?networking/v\d+(?=/)", re.IGNORECASE)


@dataclass(frozen=True)
class ResourcePath:
    steps: tuple[tuple[Kind, str], ...]

    @property
    def kind(self) -> Kind:
        return self.steps[-1][0]

    @property
    def resource_id(self) -> str:
        return self.steps[-1][1]

    @property
    def ref(self) -> str:
        return "".join(f"/{kind.name}/{rid}" for kind, rid in self.steps)

    @property
    def key(self) -> str:
        return self.ref.lower()

    @property
    def parent(self) -> ResourcePath | None:
        return ResourcePath(self.steps[:-1]) if len(self.steps) > 1 else None

    @property
    def root(self) -> ResourcePath:
        return ResourcePath(self.steps[:1])

    @property
    def is_root(self) -> bool:
        return len(self.steps) == 1

    def child(self, kind: Kind, resource_id: str) -> ResourcePath:
        return ResourcePath((*self.steps, (kind, resource_id)))


@dataclass(frozen=True)
class CollectionPath:
    """``/accessControlLists`` or ``/accessControlLists/A/aclRules``."""

    kind: Kind
    parent: ResourcePath | None = None


def parse_ref(registry: Registry, text: str) -> ResourcePath | None:
    """Parse a ``resourceRef`` (optionally with a ``/networking/vN`` prefix); None if it does
    not name a resource of a known kind."""
    stripped = _VERSION_PREFIX.sub("", text.strip()).strip("/")
    if not stripped:
        return None
    parsed = parse_segments(registry, stripped.split("/"))
    return parsed if isinstance(parsed, ResourcePath) else None


def parse_segments(registry: Registry, segments: list[str]) -> ResourcePath | CollectionPath | None:
    """Alternating type and id segments; an odd count names a collection."""
    if not segments or any(not s for s in segments):
        return None
    steps: list[tuple[Kind, str]] = []
    parent_kind: Kind | None = None
    for index in range(0, len(segments), 2):
        type_segment = segments[index]
        kind = (
            registry.top(type_segment)
            if parent_kind is None
            else registry.child(parent_kind, type_segment)
        )
        if kind is None:
            return None
        if index + 1 == len(segments):
            parent = ResourcePath(tuple(steps)) if steps else None
            return CollectionPath(kind, parent)
        resource_id = segments[index + 1]
        if kind.singleton_id is not None:
            if resource_id.lower() != kind.singleton_id.lower():
                return None
            resource_id = kind.singleton_id
        steps.append((kind, resource_id))
        parent_kind = kind
    return ResourcePath(tuple(steps))
