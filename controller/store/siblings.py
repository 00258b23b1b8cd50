"""What a child written alone (``controller.service.alone``) asks of its siblings instead of
loading them: where the last one stands, whether one holds its sibling key, what they hold in
a reference member. Each is one statement; the first two are one index entry each."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.tables import Resource

RESOURCES = cast(Table, Resource.__table__)


class SiblingQueries:
    """Part of ``ResourceRepository``: the queries about one parent's children."""

    connection: AsyncConnection

    async def last_position(self, parent_id: uuid.UUID, kind: str) -> int:
        """The position of the last child ``kind`` of ``parent_id`` (-1 for none)."""
        query = (
            select(RESOURCES.c.position)
            .where(RESOURCES.c.parent_id == parent_id, RESOURCES.c.kind == kind)
            .order_by(RESOURCES.c.position.desc())
            .limit(1)
        )
        last = (await self.connection.execute(query)).scalar()
        return -1 if last is None else int(last)

    async def sibling_holding(
        self, parent_id: uuid.UUID, kind: str, sibling_key: str, *, besides: uuid.UUID
    ) -> str | None:
        """The resourceId of a child ``kind`` of ``parent_id``, other than ``besides``, whose
        sibling key is ``sibling_key``, if there is one."""
        query = (
            select(RESOURCES.c.resource_id)
            .where(
                RESOURCES.c.parent_id == parent_id,
                RESOURCES.c.sibling_key == sibling_key,
                RESOURCES.c.kind == kind,
                RESOURCES.c.instance_id != besides,
            )
            .limit(1)
        )
        found = (await self.connection.execute(query)).scalar()
        return None if found is None else str(found)

    async def sibling_refs(
        self, parent_id: uuid.UUID, kind: str, member: str, *, besides: uuid.UUID
    ) -> set[str]:
        """The resourceRefs, lower-cased, that the children ``kind`` of ``parent_id`` other than
        ``besides`` hold in their reference ``member`` (one pass over their documents in the
        database: 1,000 sibling rows are not sent here)."""
        held = func.lower(RESOURCES.c.properties[member]["resourceRef"].as_string())
        query = (
            select(held)
            .distinct()
            .where(
                RESOURCES.c.parent_id == parent_id,
                RESOURCES.c.kind == kind,
                RESOURCES.c.instance_id != besides,
            )
        )
        return {str(ref) for ref in (await self.connection.execute(query)).scalars() if ref}

    async def sibling_documents(
        self,
        parent_id: uuid.UUID,
        kinds: Sequence[str],
        members: Sequence[str],
        *,
        besides: uuid.UUID,
        among: tuple[str, tuple[int | str, ...]] | None = None,
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """The children of ``kinds`` of ``parent_id`` other than ``besides``, kind by kind in
        order: each one's kind, resourceRef and the ``members`` of its properties (read out of
        its document in the database; the rest of it is not sent here). ``among``: only those
        whose member (first) holds one of the values (second)."""
        found: list[tuple[str, str, dict[str, Any]]] = []
        values = [RESOURCES.c.properties[member] for member in members]
        for kind in kinds:
            query = (
                select(RESOURCES.c.resource_ref, *values)
                .where(
                    RESOURCES.c.parent_id == parent_id,
                    RESOURCES.c.kind == kind,
                    RESOURCES.c.instance_id != besides,
                )
                .order_by(RESOURCES.c.position)
            )
            if among is not None:
                member, wanted = among
                text = RESOURCES.c.properties[member].as_string()
                query = query.where(text.in_([str(value) for value in wanted]))
            for ref, *held in await self.connection.execute(query):
                found.append((kind, ref, dict(zip(members, held, strict=True))))
        return found
