"""No lost update: sixteen clients read, modify and write one ACL with ``If-Match``, and some
send an etag they know is stale, against a real controller on a PostgreSQL cluster of the
test's own. The recorded history (``tests.support.history``) must chain: every acknowledged
conditional write names the etag of the acknowledged write just before it, no two share a
precondition, the order agrees with real time, every read shows a version that was current
while it ran, the final state is the last acknowledged write, and a stale etag gets 412 in
the NC envelope.

``tests/concurrency/test_races.py`` checks the end state of such loops; this checks the
whole history.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.bodies import acl_rule
from tests.support.faults import ControllablePostgres
from tests.support.figures import Figures
from tests.support.history import History, Json, Op, etag_chain, marker_of
from tests.support.nbi import url
from tests.support.server import ControllerServer

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

CLIENTS = 16
ROUNDS = 12  # read-modify-write attempts per client
STALE = 0.15  # the share of writes sent with an etag known to be superseded
ACL = "/accessControlLists/contended"


@pytest.fixture
def controller() -> Iterator[ControllerServer]:
    cluster = ControllablePostgres()
    server = ControllerServer(f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/postgres")
    try:
        cluster.start()
        server.start()
        yield server
    finally:
        server.stop()
        print(f"--- controller log ---\n{server.log()}")
        server.remove_log()
        cluster.stop()


@pytest.fixture
async def http(controller: ControllerServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=2 * CLIENTS, max_keepalive_connections=2 * CLIENTS)
    async with httpx.AsyncClient(base_url=controller.base_url, limits=limits, timeout=60) as c:
        yield c


def modified(current: Json, marker: str) -> Json:
    """What GET showed (read-only members and all), with the rule and tag of this write."""
    body = dict(current)
    body["tags"] = {"write": marker}
    body["properties"] = {
        **current["properties"],
        "aclRules": [acl_rule("counter", 100, description=marker)],
    }
    return body


async def client(index: int, http: httpx.AsyncClient, history: History) -> None:
    rng = random.Random(index)
    for _ in range(ROUNDS):
        read = Op(index, "GET", ACL)
        await history.call(read, lambda: http.get(url(ACL)))
        assert read.status == 200
        assert read.response is not None
        read.etag = read.response["etag"]
        superseded = [op.if_match for op in history.ops if op.outcome == "ok" and op.if_match]
        stale = bool(superseded) and rng.random() < STALE
        condition = rng.choice(superseded) if stale else read.etag
        marker = history.marker(index)
        body = modified(read.response, marker)
        write = Op(index, "PUT", ACL, marker=marker, body=body, if_match=condition, stale=stale)
        send = functools.partial(http.put, url(ACL), json=body, headers={"If-Match": condition})
        await history.call(write, send)
        await asyncio.sleep(rng.uniform(0, 0.03))


def check_reads(history: History, chain: list[Op], initial: Op) -> None:
    """Every read shows a version that existed when it finished and was not yet replaced
    when it started."""
    versions = [initial, *chain]
    index = {op.etag: i for i, op in enumerate(versions)}
    for read in (op for op in history.ops if op.method == "GET"):
        assert read.etag in index, f"a read shows a version nobody wrote: {read.describe()}"
        i = index[read.etag]
        assert versions[i].invoked < read.completed, read.describe()
        if i + 1 < len(versions):
            assert versions[i + 1].completed > read.invoked, (
                f"a read shows a version replaced before it started: {read.describe()}"
            )


async def test_read_modify_write_with_if_match_loses_no_update(
    http: httpx.AsyncClient, figures: Figures
) -> None:
    history = History()
    created = Op(-1, "PUT", ACL, marker="initial")
    body = {"tags": {"write": "initial"}, "properties": {"aclRules": []}}
    await history.call(
        created, lambda: http.put(url(ACL), json=body, headers={"If-None-Match": "*"})
    )
    assert created.status == 201
    assert created.etag is not None
    history.ops.remove(created)

    await asyncio.gather(*(client(i, http, history) for i in range(CLIENTS)))

    writes = [op for op in history.ops if op.method == "PUT"]
    assert not [op for op in history.ops if op.outcome != "ok" and op.status != 412], "\n".join(
        op.describe() for op in history.ops if op.outcome != "ok" and op.status != 412
    )
    stale = [op for op in writes if op.stale]
    assert stale, "no stale write was sent"
    for op in stale:
        assert op.status == 412, op.describe()
        assert op.response is not None
        assert op.response["error"]["code"] == "PreconditionFailed"

    chain = etag_chain(history.ops, created.etag)
    check_reads(history, chain, created)
    final = (await http.get(url(ACL))).json()
    assert final["etag"] == chain[-1].etag
    assert marker_of(final) == chain[-1].marker
    assert final["properties"]["aclRules"][0]["properties"]["description"] == chain[-1].marker

    figures.record("conditional writes", len(writes))
    figures.record("acknowledged (the chain)", len(chain))
    figures.record("412 on a raced etag", sum(op.status == 412 for op in writes) - len(stale))
    figures.record("412 on a stale etag", len(stale))
    figures.record("5xx", sum(op.outcome == "info" for op in history.ops))
