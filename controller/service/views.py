"""Read models: what the API renders. Built straight from stored rows, without re-validating
documents, so listing many resources stays cheap."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.core.kinds import Facts, Kind, Registry
from controller.store.repository import Referrer, StoredResource


@dataclass
class ResourceView:
    kind: Kind
    resource_id: str
    resource_ref: str
    instance_id: uuid.UUID
    etag: str
    provisioning_state: str
    properties: dict[str, Any]
    tags: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    computed: dict[str, Any] = field(default_factory=dict)
    configuration_state: dict[str, Any] | None = None
    backrefs: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[ResourceView]] = field(default_factory=dict)


def build_views(
    registry: Registry,
    rows: Sequence[StoredResource],
    referrers: Iterable[Referrer],
    facts: Mapping[uuid.UUID, Facts],
    states: Mapping[uuid.UUID, dict[str, Any]] | None = None,
) -> dict[uuid.UUID, ResourceView]:
    """Views of ``rows`` (one or more whole aggregates), children attached to parents in
    stored order, reverse references, computed properties and configuration states filled
    in."""
    etags = {row.instance_id: row.etag or "" for row in rows if row.parent_id is None}
    views = {row.instance_id: _view(registry, row, etags, facts) for row in rows}
    for instance_id, state in (states or {}).items():
        if instance_id in views:
            views[instance_id].configuration_state = state
    for row in rows:
        if row.parent_id is not None and row.parent_id in views:
            views[row.parent_id].children[views[row.instance_id].kind.name].append(
                views[row.instance_id]
            )
    by_target: dict[uuid.UUID, list[Referrer]] = defaultdict(list)
    for referrer in referrers:
        by_target[referrer.target_id].append(referrer)
    for instance_id, view in views.items():
        for backref in view.kind.backrefs:
            view.backrefs[backref.member] = [
                r.source_ref
                for r in by_target.get(instance_id, ())
                if backref.matches(r.source_kind, r.member)
            ]
    return views


def _view(
    registry: Registry,
    row: StoredResource,
    etags: Mapping[uuid.UUID, str],
    facts: Mapping[uuid.UUID, Facts],
) -> ResourceView:
    kind = registry.by_key[row.kind]
    computed: dict[str, Any] = {}
    if kind.computed is not None:
        model = kind.properties.model_validate(row.properties)
        computed = kind.computed(model, facts.get(row.instance_id, Facts()))
    return ResourceView(
        kind=kind,
        resource_id=row.resource_id,
        resource_ref=row.resource_ref,
        instance_id=row.instance_id,
        etag=etags.get(row.root_id, ""),
        provisioning_state=row.provisioning_state,
        properties=row.properties,
        tags=row.tags,
        metadata=row.resource_metadata,
        computed=computed,
        children={child.name: [] for child in registry.children_of(kind)},
    )
