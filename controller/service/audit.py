"""The audit log as the API and the credential commands use it.

What is recorded (``controller/store/audit.py`` keeps it): every NBI write, every request
refused by authentication or authorization (and every refused CORS preflight), every change of
a credential; each with the time, the principal and how it authenticated, the client address,
method, path, status, the aggregate's etag before and after, and the request id. Never a
body, a header or a credential value. Events older than the retention are pruned by every
replica in the background (deleting what another already deleted is harmless).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import ControllerError
from controller.store import audit
from controller.store.audit import AuditQuery, AuditRow
from controller.store.compiled import Bound
from controller.store.database import Database

log = logging.getLogger(__name__)
__all__ = ["AUDITED_WRITE", "AuditLog", "AuditQuery", "AuditRow", "AuditedWrite", "top_level_ref"]


@dataclass
class AuditedWrite:
    """The audit event of the NBI write being served. The resource engine appends it inside
    the write's own transaction, where it knows the aggregate's etag before and after (no
    transaction of its own, no separate read of the etag before); the API's audit middleware
    records it itself when the engine did not (a write refused before it reached the engine,
    or whose transaction failed: nothing changed, so the etag read then is the one before)."""

    row: AuditRow
    recorded: bool = False

    def completed(self, status: int, etag_before: str | None, etag_after: str | None) -> AuditRow:
        return replace(self.row, status=status, etag_before=etag_before, etag_after=etag_after)


# Set by the audit middleware around an audited write; None elsewhere (no audit configured).
AUDITED_WRITE: ContextVar[AuditedWrite | None] = ContextVar("audited_write", default=None)


def put_status(created: bool) -> int:
    """What the NBI answers a PUT (and the audit records)."""
    return 201 if created else 200


def delete_status(deleted: bool) -> int:
    """What the NBI answers a DELETE (and the audit records)."""
    return 200 if deleted else 204


def audited_write_event(
    *, status: int, etag_before: str | None, etag_after: str | None
) -> tuple[Bound, ...]:
    """The statement appending the event of the write being served, if one is audited (none
    otherwise), to run in that write's transaction; the caller marks it ``recorded`` once
    that transaction has committed."""
    audited = AUDITED_WRITE.get()
    if audited is None:
        return ()
    return (audit.appended(audited.completed(status, etag_before, etag_after)),)


def top_level_ref(nbi_path: str) -> str | None:
    """``/accessControlLists/web`` of ``/networking/v1/accessControlLists/web/aclRules/r``:
    the top-level resource whose etag a write under the path changes."""
    parts = nbi_path.split("/")
    if len(parts) < 5 or parts[1].lower() != "networking" or not parts[4]:
        return None
    return f"/{parts[3]}/{parts[4]}"


class AuditLog:
    def __init__(
        self,
        database: Database,
        *,
        retention: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.retention = retention
        self.clock = clock

    def now(self) -> datetime:
        return self.clock()

    async def record(self, row: AuditRow) -> None:
        """Append ``row``; an audit that cannot be written is logged, not raised: the request
        it describes has been answered already."""

        async def work(connection: AsyncConnection) -> None:
            await audit.append(connection, row, is_postgres=self.database.is_postgres)

        try:
            await self.database.run(work, one_statement=True)
        except (ControllerError, SQLAlchemyError) as exc:
            log.error("could not write the audit event %s %s %d: %s", *_what(row), exc)

    async def etag_before(self, nbi_path: str) -> str | None:
        ref = top_level_ref(nbi_path)
        if ref is None:
            return None

        async def work(connection: AsyncConnection) -> str | None:
            is_postgres = self.database.is_postgres
            return await audit.top_level_etag(connection, ref, is_postgres=is_postgres)

        return await self.database.run(work, write=False)

    async def events(self, query: AuditQuery) -> list[tuple[int, AuditRow]]:
        async def work(connection: AsyncConnection) -> list[tuple[int, AuditRow]]:
            return await audit.events(connection, query)

        return await self.database.run(work, write=False)

    async def prune(self) -> int:
        """Delete the events older than the retention; how many went."""
        horizon = self.clock() - self.retention

        async def work(connection: AsyncConnection) -> int:
            return await audit.prune(connection, horizon)

        return await self.database.run(work)

    async def prune_every(self, interval: float) -> None:
        """Prune now and every ``interval`` seconds, until cancelled."""
        while True:
            try:
                pruned = await self.prune()
            except (ControllerError, SQLAlchemyError) as exc:
                log.warning("could not prune the audit log: %s", exc)
            else:
                if pruned:
                    log.info("pruned %d audit events older than %s", pruned, self.retention)
            await asyncio.sleep(interval)


def _what(row: AuditRow) -> tuple[str, str, int]:
    return row.method, row.path, row.status
