"""A child written alone: a PUT or DELETE at the URI of a child whose kind is
``written_alone`` (an aclRule, a NIC's ipConfiguration, any child of a load balancer)
loads, checks and rewrites the rows from the top-level one down to that child, not the whole
aggregate. What the rest of its aggregate would have decided is asked of the database
instead (store/siblings.py): whether a sibling holds the child's ``sibling_key`` values (the
``sibling_key`` column, one index lookup), what the siblings hold of their
``sibling_accord`` and ``sibling_claims`` (one pass over their documents in the database),
and where the last sibling stands (one index lookup). Its references are resolved and its
allocations made for it alone; an exclusive reference also finds a sibling holding the
target, and a reference into the aggregate finds the sibling it names in the database
(service/references.py). So a rule added to a 10,000-rule ACL reads a few rows, not 10,001,
and the change log records it as a patch of those rows.

The write still takes the top-level row's lock first, as every write of the aggregate does,
so the answers it gets hold until its commit. It is done so only while the change log takes
patches (``service.changes.Patches``): a write alone cannot record its whole aggregate.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from controller.core.kinds import SiblingAccord, SiblingDocument
from controller.core.paths import ResourcePath
from controller.core.tree import Node
from controller.policy.documents import patchable
from controller.service.validation import accord_values, check_accord, sibling_key_text
from controller.store.repository import ResourceRepository, StoredResource


def applies(path: ResourcePath) -> bool:
    """Whether a write at ``path`` is done alone (when patches are allowed)."""
    return path.kind.written_alone and path.parent is not None and patchable(path.root.kind.key)


async def rows_of(
    repo: ResourceRepository, root_row: StoredResource, path: ResourcePath
) -> list[StoredResource]:
    """What a write alone loads of its aggregate: the top-level row (locked already), the rows
    between it and ``path``, and the one at ``path`` if it exists (it has no children)."""
    keys: list[str] = []
    below: ResourcePath | None = path
    while below is not None and not below.is_root:
        keys.append(below.key)
        below = below.parent
    return [root_row, *await repo.at_keys(root_row.instance_id, keys)]


async def check_siblings(repo: ResourceRepository, node: Node, parent: Node) -> None:
    """``node``'s sibling key, accord and claims against the siblings it was not loaded
    with."""
    assert node.instance_id is not None
    assert parent.instance_id is not None
    key, accord = node.kind.sibling_key, node.kind.sibling_accord
    text = sibling_key_text(node)
    if key is not None and text is not None:
        other = await repo.sibling_holding(
            parent.instance_id, node.kind.key, text, besides=node.instance_id
        )
        if other is not None:
            raise key.clash(node, other)
    if accord is not None and not accord.waived(parent):
        held = await repo.sibling_refs(
            parent.instance_id, node.kind.key, accord.member, besides=node.instance_id
        )
        check_accord(parent, accord, accord_values([node], accord) | _values(accord, held))
    claims = node.kind.sibling_claims
    if claims is not None:
        kinds = [f"{parent.kind.key}/{name}" for name in claims.kinds]
        found = await repo.sibling_documents(
            parent.instance_id,
            kinds,
            claims.members,
            besides=node.instance_id,
            among=claims.candidates(node),
        )
        siblings = [SiblingDocument(kind.rsplit("/", 1)[1], ref, doc) for kind, ref, doc in found]
        claims.check_one(node, siblings)


def _values(accord: SiblingAccord, refs: set[str]) -> set[str]:
    return {value for ref in refs if (value := accord.value(ref)) is not None}


async def positions(
    repo: ResourceRepository, tree: Node, stored: Sequence[StoredResource]
) -> dict[uuid.UUID, int]:
    """Where the nodes of ``tree`` that are not ``stored`` go: after the last of their
    siblings, which were not loaded."""
    known = {row.instance_id for row in stored}
    placed: dict[uuid.UUID, int] = {}
    for parent in tree.walk():
        for children in parent.children.values():
            new = [c for c in children if c.instance_id is not None and c.instance_id not in known]
            if new:
                assert parent.instance_id is not None
                last = await repo.last_position(parent.instance_id, new[0].kind.key)
                for position, child in enumerate(new, last + 1):
                    assert child.instance_id is not None
                    placed[child.instance_id] = position
    return placed
