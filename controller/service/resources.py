"""The generic resource engine behind every NBI resource: GET, GET all, PUT and DELETE.

Each write runs in one transaction that first locks the top-level row of the aggregate it
touches, so concurrent writers of one aggregate are serialised and ``If-Match`` is checked
against the state the write will replace. Creation races end in a unique-key violation that
``Database.run`` retries as an update; a reference racing a delete ends in a foreign-key
violation that is retried into a clean 400 or 409.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core.envelope import parse_resource
from controller.core.kinds import Registry, UsedBy
from controller.core.paths import CollectionPath, ResourcePath
from controller.core.tree import Node
from controller.errors import MethodNotAllowed, PreconditionFailed
from controller.service import alone, trees
from controller.service.allocation import AllocationSettings, Allocator
from controller.service.audit import (
    AUDITED_WRITE,
    audited_write_event,
    delete_status,
    put_status,
)
from controller.service.changes import Changed, Patches, record_deletion, record_write
from controller.service.heavy import HEAVY_ROWS, off_loop
from controller.service.preconditions import (
    NO_PRECONDITIONS,
    Preconditions,
    check_preconditions,
)
from controller.service.reading import Page, Reader
from controller.service.references import (
    referrers_within,
    refuse_if_referenced,
    resolve_references,
)
from controller.service.reservations import Reservations
from controller.service.rows import Planned, new_etag, planned_rows
from controller.service.validation import validate_nodes
from controller.service.views import ResourceView
from controller.store.database import Database
from controller.store.repository import (
    Reference,
    ResourceRepository,
    StoredResource,
)


@dataclass(frozen=True)
class PutResult:
    view: ResourceView
    created: bool
    revision: int


@dataclass(frozen=True)
class DeleteResult:
    deleted: bool
    revision: int | None = None


# A revision above any an agent can have applied: what was just written is pending.
PENDING = 2**62


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ResourceService:
    def __init__(
        self,
        database: Database,
        registry: Registry,
        *,
        allocator: Allocator | None = None,
        clock: Callable[[], datetime] = _utcnow,
        on_commit: Callable[[int], None] = lambda revision: None,
    ) -> None:
        self.database = database
        self.registry = registry
        self.reader = Reader(database, registry)
        self.allocator = allocator or Allocator(AllocationSettings())
        self.clock = clock
        self.patches = Patches()
        # Told each committed revision, after the commit (wakes this replica's southbound).
        self.on_commit = on_commit

    def _repo(self, connection: AsyncConnection) -> ResourceRepository:
        return self.reader.repo(connection)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, path: ResourcePath, *, within: float | None = None) -> ResourceView:
        """The resource at ``path``; ``within`` seconds shorten the database's bound."""
        return await self.reader.get(path, within=within)

    def pages(self, collection: CollectionPath) -> AsyncGenerator[Page, None]:
        """The members of ``collection``, a page at a time (service/reading.py)."""
        return self.reader.pages(collection)

    # -- writes --------------------------------------------------------------------------

    async def put(
        self, path: ResourcePath, body: object, preconditions: Preconditions = NO_PRECONDITIONS
    ) -> PutResult:
        # Parse before touching the database, so bad input never opens a transaction.
        first = parse_resource(self.registry, path, body)
        attempts = 0
        reservations = Reservations(self.database, self.clock)

        async def work(connection: AsyncConnection) -> PutResult:
            nonlocal attempts
            attempts += 1
            # A retried transaction starts from a fresh parse: the failed attempt assigned
            # instanceIds and rewrote references in the nodes it used.
            written = first if attempts == 1 else parse_resource(self.registry, path, body)
            repo = self._repo(connection)
            patches = await self.patches.allowed(connection, is_postgres=repo.is_postgres)
            done = await self._write(
                repo, path, written, preconditions, reservations, patches=patches
            )
            created, etag_before, changed = done.created, done.etag_before, done.changed
            # The hosts cannot have applied a revision that is not even committed yet.
            rows = [replace(r, revision=PENDING) if r.parent_id is None else r for r in done.rows]
            # A new aggregate is referenced by nothing but itself: no query for that.
            referrers = referrers_within(rows, done.references) if changed is None else None
            view = await self.reader.view(repo, rows, path, referrers)
            assert view is not None
            event = audited_write_event(
                status=put_status(created), etag_before=etag_before, etag_after=view.etag
            )
            # Last: the change log's revision counter stays locked until the commit. The
            # audit event goes with it, in the same round trip.
            revision = await record_write(
                repo,
                rows,
                now=self.clock(),
                is_postgres=self.database.is_postgres,
                changed=changed if patches else None,
                first=event,
            )
            return PutResult(view, created, revision)

        try:
            result = await self.database.run(work)
        except BaseException:
            await reservations.release()
            raise
        _committed()
        self.on_commit(result.revision)
        return result

    async def _write(
        self,
        repo: ResourceRepository,
        path: ResourcePath,
        written: Node,
        preconditions: Preconditions,
        reservations: Reservations,
        *,
        patches: bool,
    ) -> _Written:
        """Write ``written`` at ``path``. ``patches``: whether it may be recorded as a patch
        (and so written alone)."""
        root_row = await repo.lock_root(path.root.key)
        partial = root_row is not None and patches and alone.applies(path)
        stored_rows = await self._stored(repo, root_row, path, partial=partial)
        stored_tree = await self._loaded(stored_rows)
        stored_nodes = list(stored_tree.walk()) if stored_tree else []
        stored = stored_tree.find(path.key) if stored_tree else None
        parent = None
        if path.parent is not None:
            parent = stored_tree.find(path.parent.key) if stored_tree else None
            if parent is None:
                raise PreconditionFailed(
                    f"the parent {path.parent.ref} does not exist", target=path.parent.ref
                )
        check_preconditions(
            preconditions, stored is not None, root_row.etag if root_row else None, path
        )

        merged = trees.merge(self.registry, written, stored)
        if parent is None:
            new_tree = merged
        else:
            assert stored_tree is not None
            new_tree = stored_tree
            trees.replace_child(parent, merged)
        trees.assign_refs(new_tree)
        # References first: validators then see canonical resourceRefs.
        references = await resolve_references(self.registry, repo, new_tree, partial=partial)
        await self._validate(repo, new_tree)
        if partial:
            assert parent is not None
            await alone.check_siblings(repo, merged, parent)
        await self._check_referrers(repo, new_tree, stored_nodes)
        rows, changed = await self._save(
            repo, stored_rows, stored_nodes, new_tree, references, reservations, partial=partial
        )
        etag_before = root_row.etag if root_row else None
        return _Written(stored is None, rows, etag_before, changed, references)

    async def _stored(
        self,
        repo: ResourceRepository,
        root_row: StoredResource | None,
        path: ResourcePath,
        *,
        partial: bool,
    ) -> list[StoredResource]:
        """What a write at ``path`` loads of its aggregate: all of it, or (``partial``) only
        the rows down to the child it writes alone (service/alone.py)."""
        if root_row is None:
            return []
        if partial:
            return await alone.rows_of(repo, root_row, path)
        return await repo.aggregate(root_row.instance_id)

    async def _loaded(self, rows: Sequence[StoredResource]) -> Node | None:
        """The node tree of one aggregate's ``rows`` (None for none); a big one is built off
        the event loop (service/heavy.py)."""
        if not rows:
            return None
        if len(rows) < HEAVY_ROWS:
            return trees.load_trees(self.registry, rows)[0]
        return (await off_loop(trees.load_trees, self.registry, rows))[0]

    async def _validate(self, repo: ResourceRepository, tree: Node) -> None:
        nodes = list(tree.walk())
        if len(nodes) < HEAVY_ROWS:
            validate_nodes(nodes)
        else:
            await off_loop(validate_nodes, nodes)
        if tree.kind.check_peers is not None:
            await repo.lock_kind(tree.kind.key)
            rows = await repo.aggregates_of_kind(tree.kind.key)
            peers = [p for p in trees.load_trees(self.registry, rows) if p.key != tree.key]
            tree.kind.check_peers(tree, peers)

    async def _check_referrers(
        self, repo: ResourceRepository, tree: Node, stored: Sequence[Node]
    ) -> None:
        """Let kinds refuse a change that resources referencing them cannot live with."""
        existing = {node.instance_id for node in stored}
        checked = [
            n
            for n in tree.walk()
            if n.kind.check_referrers is not None and n.instance_id in existing
        ]
        if not checked:
            return
        users = await repo.referrers([n.instance_id for n in checked if n.instance_id])
        for node in checked:
            assert node.kind.check_referrers is not None
            node.kind.check_referrers(
                node,
                [
                    UsedBy(u.source_kind, u.member, u.source_ref)
                    for u in users
                    if u.target_id == node.instance_id and u.source_root_id != tree.instance_id
                ],
            )

    async def _save(
        self,
        repo: ResourceRepository,
        stored_rows: Sequence[StoredResource],
        stored: Sequence[Node],
        tree: Node,
        references: set[Reference],
        reservations: Reservations,
        *,
        partial: bool = False,
    ) -> tuple[list[StoredResource], Changed | None]:
        """Write ``tree`` over the stored state of its aggregate (``stored_rows`` and the nodes
        loaded from them before the write changed anything); returns the rows now stored and
        what changed of them (None when there were none)."""
        assert tree.instance_id is not None
        kept = {node.instance_id for node in tree.walk()}
        removed = [node for node in stored if node.instance_id not in kept]
        # The references of the aggregate are all rewritten, unless only part of it was loaded.
        rewritten = None if partial else tree.instance_id
        await refuse_if_referenced(repo, removed, rewritten_root=rewritten)
        allocations = self.reader.allocations(repo)
        removed_ids = {node.instance_id for node in removed if node.instance_id is not None}
        plan = await self.allocator.plan(
            allocations,
            repo,
            tree,
            stored={node.instance_id: node for node in stored if node.instance_id is not None},
            removed=removed_ids,
            references=references,
            reservations=reservations,
        )

        old_references: set[Reference] = set()
        positions: dict[uuid.UUID, int] = {}
        if partial:  # only the rows loaded: what they reference, where new ones go
            old_references = await repo.references_from([row.instance_id for row in stored_rows])
            positions = await alone.positions(repo, tree, stored_rows)
        elif stored_rows:
            old_references = await repo.references_within(stored_rows[0].root_id)
        await repo.remove_references(old_references - references)
        # Deleting the top-most removed rows cascades to their descendants.
        await repo.delete(
            [
                row.instance_id
                for row in stored_rows
                if row.instance_id in removed_ids and row.parent_id not in removed_ids
            ]
        )
        planned = await self._upsert(repo, stored_rows, tree, tree.instance_id, positions)
        await self.allocator.apply(allocations, plan, reservations)
        await repo.add_references(references - old_references)
        if not stored_rows:
            return planned.rows, None
        written = {values["instance_id"] for values in (*planned.inserts, *planned.updates)}
        gone = tuple(row.path_key for row in stored_rows if row.instance_id in removed_ids)
        return planned.rows, Changed(frozenset(written), gone)

    async def _upsert(
        self,
        repo: ResourceRepository,
        stored_rows: Sequence[StoredResource],
        tree: Node,
        root_id: uuid.UUID,
        positions: Mapping[uuid.UUID, int],
    ) -> Planned:
        now = self.clock()
        if len(stored_rows) < HEAVY_ROWS:
            planned = planned_rows(stored_rows, tree, root_id, now, positions)
        else:
            planned = await off_loop(planned_rows, stored_rows, tree, root_id, now, positions)
        await repo.update_many(planned.updates)
        await repo.insert(planned.inserts)
        return planned

    async def delete(
        self, path: ResourcePath, preconditions: Preconditions = NO_PRECONDITIONS
    ) -> DeleteResult:
        """Delete ``path`` and its children (``deleted`` is False when there was nothing)."""
        if not path.kind.deletable:
            raise MethodNotAllowed(f"{path.ref} cannot be deleted", target=path.ref)

        async def work(connection: AsyncConnection) -> DeleteResult:
            repo = self._repo(connection)
            root_row = await repo.lock_root(path.root.key, deleting=path.is_root)
            patches = await self.patches.allowed(connection, is_postgres=repo.is_postgres)
            partial = patches and alone.applies(path)
            rows = await self._stored(repo, root_row, path, partial=partial)
            tree = await self._loaded(rows)
            node = tree.find(path.key) if tree else None
            etag_before = root_row.etag if root_row else None
            check_preconditions(preconditions, node is not None, etag_before, path)
            event = audited_write_event(
                status=delete_status(node is not None), etag_before=etag_before, etag_after=None
            )
            if node is None or root_row is None:
                for bound in event:
                    await bound.run(connection, is_postgres=repo.is_postgres)
                return DeleteResult(False)
            await refuse_if_referenced(repo, list(node.walk()))
            assert node.instance_id is not None
            await repo.remove_references_from([n.instance_id for n in node.walk() if n.instance_id])
            await repo.delete([node.instance_id])
            now, postgres = self.clock(), self.database.is_postgres
            if path.is_root:
                revision = await record_deletion(
                    repo, root_row, now=now, is_postgres=postgres, first=event
                )
            else:
                await repo.update(root_row.instance_id, {"etag": new_etag(), "updated_at": now})
                # What is left is what was loaded less the subtree deleted (the cascade takes
                # exactly its descendants): no second read of the aggregate (10,001 rows for
                # a rule of a big ACL).
                gone = {n.instance_id for n in node.walk()}
                remaining = [row for row in rows if row.instance_id not in gone]
                changed = Changed(
                    frozenset({root_row.instance_id}),
                    tuple(row.path_key for row in rows if row.instance_id in gone),
                )
                revision = await record_write(
                    repo,
                    remaining,
                    now=now,
                    is_postgres=postgres,
                    changed=changed if patches else None,
                    first=event,
                )
            return DeleteResult(True, revision)

        result = await self.database.run(work)
        _committed()
        if result.revision is not None:
            self.on_commit(result.revision)
        return result

    async def ensure_singletons(self) -> None:
        """Create every singleton (``.../configuration``) that does not exist yet, with its
        defaults, so GET answers from the first start as it does on NC."""
        for kind in self.registry.top_level:
            if kind.singleton_id is not None:
                path = ResourcePath(((kind, kind.singleton_id),))
                with contextlib.suppress(PreconditionFailed):
                    await self.put(path, {}, Preconditions(if_none_match="*"))


@dataclass(frozen=True)
class _Written:
    """What a write did: whether it created the resource, the aggregate's rows now, its etag
    before, what the write changed of it (None: the aggregate is new), the references its
    nodes make."""

    created: bool
    rows: list[StoredResource]
    etag_before: str | None
    changed: Changed | None
    references: set[Reference]


def _committed() -> None:
    """The write's transaction, and the audit event in it, committed."""
    audited = AUDITED_WRITE.get()
    if audited is not None:
        audited.recorded = True
