"""What a write inserts and rewrites: the rows of its new tree against the stored ones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.core.tree import Node
from controller.service import trees
from controller.store.repository import StoredResource


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


_COMPARED = (
    "resource_ref",
    "parent_id",
    "position",
    "properties",
    "secret",
    "tags",
    "resource_metadata",
)


def _changed(old: StoredResource, values: dict[str, object]) -> bool:
    return any(getattr(old, name) != values[name] for name in _COMPARED)


@dataclass(frozen=True)
class Planned:
    inserts: list[dict[str, Any]]
    updates: list[dict[str, Any]]
    # Every row of the aggregate as it will be stored.
    rows: list[StoredResource]


def planned_rows(
    stored_rows: Sequence[StoredResource],
    tree: Node,
    root_id: uuid.UUID,
    now: datetime,
    placed: Mapping[uuid.UUID, int],
) -> Planned:
    """The rows ``tree`` inserts and rewrites over ``stored_rows`` (unchanged rows are kept;
    the top-level row always gets a new etag); ``placed``: positions of new nodes, where the
    siblings they go after were not loaded."""
    stored_by_id = {row.instance_id: row for row in stored_rows}
    positions = {row.instance_id: row.position for row in stored_rows} | dict(placed)
    planned = Planned([], [], [])
    for node, parent_id, position in trees.placed(tree, positions):
        assert node.instance_id is not None
        values = trees.row_values(
            node, parent_id=parent_id, root_id=root_id, position=position, now=now
        )
        if parent_id is None:
            values["etag"] = new_etag()
        old = stored_by_id.get(node.instance_id)
        if old is None:
            planned.inserts.append({**values, "created_at": now})
            planned.rows.append(StoredResource(**planned.inserts[-1]))
        elif parent_id is None or _changed(old, values):
            planned.updates.append(values)
            planned.rows.append(StoredResource(**values, created_at=old.created_at))
        else:
            planned.rows.append(old)
    return planned
