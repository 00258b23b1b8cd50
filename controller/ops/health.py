"""``GET /healthz`` (the process answers) and ``GET /readyz`` (this replica can serve: its
database answers, its schema is at the migration head this version knows, and its change
follower has compiled everything committed), for load balancers and orchestrators.

Readiness answers 200 or 503 with the result of each check, so an operator sees which one
failed; it never waits longer than ``READY_TIMEOUT`` in all, however slow the database.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.errors import ServiceUnavailable
from controller.southbound.runtime import Southbound
from controller.store import migrate
from controller.store.database import Database
from controller.store.operations import DatabaseFacts, database_facts

# Seconds a probe may take reading the database, and then waiting for the change follower to
# reach the revision just read (a write committed a moment ago is compiled within
# milliseconds; a follower still behind after this lags for real).
DATABASE_PROBE_TIMEOUT = 2.0
FOLLOWER_WAIT = 1.0
READY_TIMEOUT = DATABASE_PROBE_TIMEOUT + FOLLOWER_WAIT


@dataclass(frozen=True)
class Migrations:
    """The newest migration this version knows and all it knows."""

    head: str | None
    known: frozenset[str]


@functools.cache
def known_migrations() -> Migrations:
    """Read from the migration scripts once per process."""
    return Migrations(migrate.head_revision(), migrate.known_revisions())


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]]

    def document(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "notReady", "checks": self.checks}


class HealthProbe:
    def __init__(self, database: Database, southbound: Southbound, migrations: Migrations) -> None:
        self.database = database
        self.southbound = southbound
        self.migrations = migrations
        self.head = migrations.head
        # What the last probe found (the metrics show it without asking the database again).
        self.database_up = False

    async def facts(self) -> DatabaseFacts | None:
        """Schema revision and committed revision, or None when the database does not
        answer within the probe's time."""

        async def read(connection: AsyncConnection) -> DatabaseFacts:
            return await database_facts(connection, is_postgres=self.database.is_postgres)

        within = min(DATABASE_PROBE_TIMEOUT, self.database.timeouts.total)
        try:
            # In a transaction (reads otherwise run without one): the schema check runs in a
            # savepoint, so a missing table does not fail the rest.
            facts = await self.database.run(
                read, write=False, within=within, isolation="READ COMMITTED"
            )
        except ServiceUnavailable:
            facts = None
        self.database_up = facts is not None
        return facts

    async def readiness(self) -> Readiness:
        facts = await self.facts()
        if facts is None:
            unanswered: dict[str, dict[str, Any]] = {
                "database": {"ok": False, "message": "the database does not answer"},
                "migrations": {"ok": False, "head": self.head, "message": "not checked"},
                "changeFollower": {"ok": False, "message": "not checked"},
            }
            return Readiness(False, unanswered)
        migrations = self._migrations(facts.schema_revision)
        follower = self.southbound.follower
        caught_up = await follower.processed(facts.committed_revision, FOLLOWER_WAIT)
        compiled = self.southbound.compiler.revision
        change_follower: dict[str, Any] = {
            "ok": caught_up,
            "compiledRevision": compiled,
            "committedRevision": facts.committed_revision,
        }
        if not caught_up:
            change_follower["message"] = (
                f"{facts.committed_revision - compiled} committed changes not compiled yet"
            )
        checks: dict[str, dict[str, Any]] = {
            "database": {"ok": True},
            "migrations": migrations,
            "changeFollower": change_follower,
        }
        ready = all(check["ok"] for check in checks.values())
        return Readiness(ready, checks)

    def _migrations(self, current: str | None) -> dict[str, Any]:
        """Ready unless the schema is behind this version: at its head, or at a revision it
        does not know -- a newer version's, run by ``sdnc db upgrade`` before a rolling
        upgrade, which the replicas still running this version keep serving through."""
        check: dict[str, Any] = {"ok": True, "current": current, "head": self.head}
        if current == self.head:
            return check
        if current is None or current in self.migrations.known:
            check["ok"] = False
            check["message"] = "the schema is behind this version: run `sdnc db upgrade`"
        else:
            check["message"] = "the schema is newer than this version (an upgrade under way)"
        return check
