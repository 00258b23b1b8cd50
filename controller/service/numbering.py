"""What every allocator shares: the plan of allocation rows a write will add and release, and
the search for a free value of a numbering (VSIDs, MACs, the addresses of one subnet).

Values are taken after the highest one in use, and only when that end of the ranges is
exhausted are gaps searched, so sequential allocation stays cheap.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.core import ipam
from controller.store.allocations import SCAN_BATCH, AllocationRepository, Numbering


class InUse(Protocol):
    """Where :func:`free_value` learns which values are taken: the allocation tables in the
    write's transaction (``AllocationRepository``), or those and the live reservations
    (service/reservations.py)."""

    async def highest(
        self, numbering: Numbering, low: int, high: int, scope_id: uuid.UUID | None = None
    ) -> int | None: ...

    async def used_from(
        self,
        numbering: Numbering,
        start: int,
        high: int,
        scope_id: uuid.UUID | None = None,
        *,
        limit: int = SCAN_BATCH,
    ) -> list[int]: ...


@dataclass
class Plan:
    """Allocation rows to delete (by owner) and to insert, per numbering."""

    release: dict[Numbering, set[uuid.UUID]] = field(default_factory=lambda: defaultdict(set))
    add: dict[Numbering, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    taken: dict[tuple[Numbering, uuid.UUID | None], set[int]] = field(
        default_factory=lambda: defaultdict(set)
    )
    # The highest value held when this plan first looked (one query for many allocations).
    tops: dict[tuple[Numbering, uuid.UUID | None, int, int], int | None] = field(
        default_factory=dict
    )

    def take(
        self, numbering: Numbering, scope: uuid.UUID | None, value: int, row: dict[str, Any]
    ) -> None:
        self.taken[(numbering, scope)].add(value)
        self.add[numbering].append(row)

    def forget_highest(
        self, numbering: Numbering, scope: uuid.UUID | None, ranges: Sequence[ipam.Range]
    ) -> None:
        """Read the highest value in use again next time (others took values meanwhile)."""
        if ranges:
            self.tops.pop(_span(numbering, scope, ranges), None)


def _span(
    numbering: Numbering, scope: uuid.UUID | None, ranges: Sequence[ipam.Range]
) -> tuple[Numbering, uuid.UUID | None, int, int]:
    return (numbering, scope, ranges[0][0], ranges[-1][1])


async def free_value(
    allocations: InUse,
    plan: Plan,
    numbering: Numbering,
    ranges: Sequence[ipam.Range],
    scope: uuid.UUID | None,
) -> int | None:
    """A value of ``ranges`` that nobody holds and this plan has not taken."""
    if not ranges:
        return None
    taken = plan.taken[(numbering, scope)]
    span = _span(numbering, scope, ranges)
    if span not in plan.tops:
        plan.tops[span] = await allocations.highest(numbering, span[2], span[3], scope)
    top = plan.tops[span]
    candidate = ipam.next_after(
        ranges, max([v for v in (top, *taken) if v is not None], default=None)
    )
    if candidate is not None:
        return candidate
    for low, high in ranges:
        start = low
        while start <= high:
            batch = await allocations.used_from(numbering, start, high, scope, limit=SCAN_BATCH)
            end = batch[-1] if len(batch) == SCAN_BATCH else high
            used = sorted({*batch, *(t for t in taken if start <= t <= end)})
            free = ipam.first_free([(start, end)], used)
            if free is not None:
                return free
            start = end + 1
    return None


async def held_elsewhere(
    allocations: AllocationRepository,
    plan: Plan,
    numbering: Numbering,
    value: int,
    scope: uuid.UUID | None,
    owner: uuid.UUID | None,
    removed: set[uuid.UUID],
) -> str | None:
    """Who, other than ``owner`` and the holders being removed, holds ``value``: its
    resourceRef, "another resource of this request", or None when it is free."""
    if value in plan.taken[(numbering, scope)]:
        return "another resource of this request"
    holder = await allocations.holder(numbering, value, scope)
    if holder is not None and holder[0] not in removed and holder[0] != owner:
        return holder[1]
    return None
