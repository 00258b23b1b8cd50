"""What the change follower reads: a write of this replica wakes it twice, by its commit and
by its notification (PostgreSQL), and the second wake-up finds the revision compiled and reads
nothing. Every read of the change log is a unit of work (a pool checkout and a statement) that
each write would otherwise pay for twice."""

from __future__ import annotations

import contextlib
import time

import pytest

from controller.settings import Settings
from controller.store.changes import ChangeLog
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule
from tests.support.nbi import put
from tests.support.southbound import (
    FAST,
    InProcessController,
    eventually,
    in_process_controller,
    revision_of,
)

WRITES = 30
# Far above what a stop takes (milliseconds), below the grace a loop that does not end is
# given before it is cancelled (the database's timeout and a second) and the poll interval.
STOP_BOUND = 3.0


async def test_a_write_of_this_replica_is_read_from_the_change_log_once(
    controller: InProcessController, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    since = ChangeLog.since

    async def counted(log: ChangeLog, revision: int, *, limit: int) -> object:
        reads.append(revision)
        return await since(log, revision, limit=limit)

    monkeypatch.setattr(ChangeLog, "since", counted)
    started = time.monotonic()
    for i in range(WRITES):
        await put(controller.http, f"/accessControlLists/reads{i}", acl(acl_rule("r1", 100)))
    last = await revision_of(database)
    compiler = controller.southbound.compiler
    await eventually(lambda: compiler.revision >= last)
    # Besides one read per write, the follower polls on its own (notifications are not
    # durable): at most one read per poll interval.
    polls = (time.monotonic() - started) / FAST["change_poll_interval"] + 1
    assert len(reads) <= WRITES + polls, (len(reads), polls)


async def test_the_follower_stops_at_once_whatever_its_poll_interval(database_url: str) -> None:
    """Stopping wakes the follow loop, which ends: a wake-up it skips (for a revision compiled
    already) must not leave it waiting out a poll interval."""
    settings = Settings(
        database_url=database_url, change_poll_interval=60.0, database_timeout=STOP_BOUND * 2
    )
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(in_process_controller(settings))
        await put(running.http, "/accessControlLists/stops", acl(acl_rule("r1", 100)))
        await eventually(lambda: running.southbound.compiler.revision > 0)
        started = time.monotonic()
    assert time.monotonic() - started < STOP_BOUND
