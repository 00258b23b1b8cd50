"""Resolving the references a written aggregate makes, and refusing to remove what others use."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.core.kinds import Registry
from controller.core.paths import ResourcePath, parse_ref
from controller.core.refs import FoundRef, iter_refs
from controller.core.tree import Node
from controller.errors import ErrorDetail, InvalidInput, InvalidReference, ResourceInUse
from controller.store.repository import Reference, Referrer, ResourceRepository, StoredResource


@dataclass(frozen=True)
class _Pending:
    node: Node
    found: FoundRef
    path: ResourcePath


async def resolve_references(
    registry: Registry, repo: ResourceRepository, tree: Node, *, partial: bool = False
) -> set[Reference]:
    """Check every reference in ``tree`` (400 when malformed, of the wrong kind or dangling),
    rewrite it to the target's canonical resourceRef, and return the reference rows.
    ``partial``: ``tree`` is part of its aggregate (a child written alone, service/alone.py),
    whose other nodes keep their references."""
    pending = [
        _Pending(node, found, _parse(registry, node, found))
        for node in tree.walk()
        for found in iter_refs(node.model)
    ]
    # Written alone, a child's references into its own aggregate name siblings that were not
    # loaded: they are looked up as references elsewhere are.
    external_keys = {
        p.path.key
        for p in pending
        if p.path.root.key != tree.key or (partial and tree.find(p.path.key) is None)
    }
    external = await repo.find(external_keys) if external_keys else {}
    references: set[Reference] = set()
    conditional: list[tuple[_Pending, uuid.UUID]] = []
    exclusive: list[tuple[_Pending, uuid.UUID]] = []
    for item in pending:
        target_id, canonical_ref = _target(tree, external, item)
        item.found.ref.resource_ref = canonical_ref
        assert item.node.instance_id is not None
        references.add(Reference(item.node.instance_id, item.found.member, target_id))
        if type(item.found.ref).checks_target:
            conditional.append((item, target_id))
        if type(item.found.ref).exclusive:
            exclusive.append((item, target_id))
    await _check_targets(repo, tree, conditional)
    await _check_exclusive(repo, tree, exclusive, partial=partial)
    return references


async def _check_targets(
    repo: ResourceRepository, tree: Node, items: Sequence[tuple[_Pending, uuid.UUID]]
) -> None:
    """Apply the conditions some reference types put on their targets' properties."""
    if not items:
        return
    local = {node.instance_id: node.model.dump() for node in tree.walk()}
    stored = await repo.properties_of([t for _, t in items if t not in local])
    for item, target_id in items:
        properties = local.get(target_id) or stored.get(target_id) or {}
        problem = type(item.found.ref).target_problem(properties)
        if problem is not None:
            raise InvalidReference(
                f"{item.node.ref}: {item.found.member} cannot reference "
                f"{item.found.ref.resource_ref}: {problem}",
                target=item.node.target(item.found.member),
            )


async def _check_exclusive(
    repo: ResourceRepository,
    tree: Node,
    items: Sequence[tuple[_Pending, uuid.UUID]],
    *,
    partial: bool,
) -> None:
    """A target of an exclusive reference has one referrer at most: a second one in the
    written aggregate is a 400, one elsewhere a 409. Writers binding one target take turns
    (a lock per target), so two binding it at once cannot both see it free. The stored
    referrers in the written aggregate are rewritten by the write, unless it is ``partial``:
    then those it did not load keep theirs."""
    bound: dict[uuid.UUID, _Pending] = {}
    for item, target_id in items:
        first = bound.setdefault(target_id, item)
        # The same node naming it twice is the node's own validator's to report.
        if first.node is not item.node:
            raise _bound_twice(item, first.node.ref)
    for target_id in sorted(bound, key=str):
        await repo.lock_target(target_id)
    written = {node.instance_id for node in tree.walk()} if partial else set()
    holders = [
        user
        for user in await repo.referrers(sorted(bound, key=str))
        if user.source_root_id != tree.instance_id or (partial and user.source_id not in written)
    ]
    if holders:
        holder = holders[0]
        item = bound[holder.target_id]
        if holder.source_root_id == tree.instance_id:
            raise _bound_twice(item, holder.source_ref)
        raise ResourceInUse(
            f"{item.node.ref}: {item.found.ref.resource_ref} is already bound to "
            f"{holder.source_ref} ({holder.member}); unbind it there first",
            target=item.node.target(item.found.member),
            details=(
                ErrorDetail(
                    "ResourceInUse",
                    f"{item.found.ref.resource_ref} is referenced by {holder.source_ref} "
                    f"({holder.member})",
                    holder.source_ref,
                ),
            ),
        )


def _bound_twice(item: _Pending, other_ref: str) -> InvalidInput:
    return InvalidInput(
        f"{item.node.ref} and {other_ref} both reference {item.found.ref.resource_ref}, which "
        "can be bound to one of them only",
        target=item.node.target(item.found.member),
    )


def _parse(registry: Registry, node: Node, found: FoundRef) -> ResourcePath:
    text = found.ref.resource_ref
    path = parse_ref(registry, text)
    if path is None:
        raise InvalidReference(
            f"{node.ref}: '{text}' in {found.member} is not a resource reference",
            target=node.target(found.member),
        )
    allowed = type(found.ref).targets
    if allowed and path.kind.key not in allowed:
        names = " or ".join(registry.by_key[key].title for key in allowed)
        raise InvalidReference(
            f"{node.ref}: {found.member} must reference a {names}, not '{text}'",
            target=node.target(found.member),
        )
    return path


def _target(
    tree: Node, external: dict[str, tuple[uuid.UUID, str]], item: _Pending
) -> tuple[uuid.UUID, str]:
    # References into the aggregate being written resolve against what is being written
    # (and, for a part of it, against the rest of it as stored).
    if item.path.root.key == tree.key:
        local = tree.find(item.path.key)
        if local is not None and local.instance_id is not None:
            return local.instance_id, local.ref
    if item.path.key in external:
        return external[item.path.key]
    raise InvalidReference(
        f"{item.node.ref}: {item.found.member} references '{item.found.ref.resource_ref}', "
        "which does not exist",
        target=item.node.target(item.found.member),
    )


def referrers_within(
    rows: Sequence[StoredResource], references: Iterable[Reference]
) -> list[Referrer]:
    """Who references the ``rows`` of an aggregate a write has just created, as
    ``ResourceRepository.referrers`` would answer: only the aggregate itself, through its
    ``references``, since no other transaction can reference rows it cannot see yet."""
    by_id = {row.instance_id: row for row in rows}
    found: list[tuple[str, Referrer]] = []
    for ref in references:
        source = by_id.get(ref.source_id)
        if source is None or ref.target_id not in by_id:
            continue
        kind, source_ref, root = source.kind, source.resource_ref, source.root_id
        referrer = Referrer(ref.target_id, ref.source_id, kind, source_ref, root, ref.member)
        found.append((source.path_key, referrer))
    found.sort(key=lambda pair: (pair[0], pair[1].member))
    return [referrer for _, referrer in found]


async def refuse_if_referenced(
    repo: ResourceRepository, removed: Sequence[Node], *, rewritten_root: uuid.UUID | None = None
) -> None:
    """409 ResourceInUse when something still references one of the ``removed`` nodes (every
    node going away, descendants included). References made by removed nodes do not count, nor
    do those of the aggregate ``rewritten_root`` whose references are being replaced."""
    removed_ids = {n.instance_id for n in removed if n.instance_id is not None}
    if not removed_ids:
        return
    users = [
        r
        for r in await repo.referrers(sorted(removed_ids))
        if r.source_id not in removed_ids and r.source_root_id != rewritten_root
    ]
    if users:
        raise _in_use(removed, users)


def _in_use(removed: Sequence[Node], users: Sequence[Referrer]) -> ResourceInUse:
    names = {n.instance_id: n.ref for n in removed}
    first = users[0]
    more = f" and {len(users) - 1} more" if len(users) > 1 else ""
    return ResourceInUse(
        f"{names[first.target_id]} is in use by {first.source_ref} ({first.member}){more}",
        target=names[first.target_id],
        details=tuple(
            ErrorDetail(
                "ResourceInUse",
                f"{names[u.target_id]} is referenced by {u.source_ref} ({u.member})",
                u.source_ref,
            )
            for u in users
        ),
    )
