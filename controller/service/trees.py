"""Turning stored rows into node trees and back, and merging a written node into its aggregate.

Merge rules (what a PUT means):
* the written resource replaces the stored one, keeping its instanceId and resourceId casing;
* a child collection the body omits keeps the stored children; a collection it sends replaces
  the stored one (children matched by resourceId keep their instanceIds, the others are new or
  deleted);
* write-only secrets the body omits keep their stored value.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.core.kinds import Registry
from controller.core.tree import Node
from controller.service.validation import sibling_key_text
from controller.store.repository import StoredResource


def load_trees(registry: Registry, rows: Sequence[StoredResource]) -> list[Node]:
    """Node trees (with validated models) of the aggregates in ``rows``, roots in order."""
    nodes: dict[uuid.UUID, Node] = {}
    roots: list[Node] = []
    for row in rows:
        kind = registry.by_key[row.kind]
        nodes[row.instance_id] = Node(
            kind=kind,
            resource_id=row.resource_id,
            model=kind.properties.model_validate(row.properties),
            tags=row.tags,
            metadata=row.resource_metadata,
            children={child.name: [] for child in registry.children_of(kind)},
            instance_id=row.instance_id,
            secret=row.secret,
            ref=row.resource_ref,
        )
    for row in rows:
        node = nodes[row.instance_id]
        if row.parent_id is None:
            roots.append(node)
        else:
            nodes[row.parent_id].children[node.kind.name].append(node)
    return roots


def merge(registry: Registry, written: Node, stored: Node | None) -> Node:
    """Complete ``written`` from ``stored`` (see the module docstring); returns ``written``."""
    if stored is not None:
        written.instance_id = stored.instance_id
        written.resource_id = stored.resource_id
        written.secret = stored.secret
    for child_kind in registry.children_of(written.kind):
        stored_children = stored.kids(child_kind.name) if stored is not None else []
        if child_kind.name not in written.children:
            written.children[child_kind.name] = stored_children
            continue
        by_id = {child.resource_id.lower(): child for child in stored_children}
        for child in written.children[child_kind.name]:
            merge(registry, child, by_id.get(child.resource_id.lower()))
    if written.instance_id is None:
        written.instance_id = uuid.uuid4()
    return written


def replace_child(parent: Node, child: Node) -> None:
    """Put ``child`` into ``parent`` in place of its namesake, or append it."""
    siblings = parent.children.setdefault(child.kind.name, [])
    for index, sibling in enumerate(siblings):
        if sibling.resource_id.lower() == child.resource_id.lower():
            siblings[index] = child
            return
    siblings.append(child)


def assign_refs(node: Node, parent_ref: str = "") -> None:
    """Recompute every resourceRef from the (stored) ids down the tree."""
    node.ref = f"{parent_ref}/{node.kind.name}/{node.resource_id}"
    for children in node.children.values():
        for child in children:
            assign_refs(child, node.ref)


def document(node: Node) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The stored (public properties, secret members) of ``node``."""
    properties = node.model.dump()
    if node.kind.secret_members is None:
        return properties, None
    secret: dict[str, Any] = {}
    for member in sorted(node.kind.secret_members(node)):
        if member in properties:
            secret[member] = properties.pop(member)
        elif node.secret and member in node.secret:
            secret[member] = node.secret[member]
    return properties, secret or None


def row_values(
    node: Node,
    *,
    parent_id: uuid.UUID | None,
    root_id: uuid.UUID,
    position: int,
    now: datetime,
) -> dict[str, Any]:
    properties, secret = document(node)
    return {
        "instance_id": node.instance_id,
        "kind": node.kind.key,
        "path_key": node.key,
        "resource_ref": node.ref,
        "resource_id": node.resource_id,
        "parent_id": parent_id,
        "root_id": root_id,
        "position": position,
        "properties": properties,
        "sibling_key": sibling_key_text(node),
        "secret": secret,
        "tags": node.tags,
        "resource_metadata": node.metadata,
        "etag": None,
        "provisioning_state": "Succeeded",
        "revision": 0,
        "updated_at": now,
    }


Placed = list[tuple[Node, uuid.UUID | None, int]]


def placed(node: Node, stored: Mapping[uuid.UUID, int] | None = None) -> Placed:
    """Every node of the tree with its parent's instanceId and its position among siblings,
    parents before children. Positions only order siblings: a node keeps its ``stored``
    position while that still follows its previous sibling's, so deleting one rule of a
    10,000-rule ACL does not make the next write renumber (rewrite) the rules after it."""
    out: Placed = [(node, None, 0)]
    _place_children(node, stored or {}, out)
    return out


def _place_children(parent: Node, stored: Mapping[uuid.UUID, int], out: Placed) -> None:
    for children in parent.children.values():
        position = -1
        for child in children:
            kept = stored.get(child.instance_id) if child.instance_id is not None else None
            position = kept if kept is not None and kept > position else position + 1
            out.append((child, parent.instance_id, position))
            _place_children(child, stored, out)
