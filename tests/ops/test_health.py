"""``/healthz`` and ``/readyz`` of a controller running as ``sdnc serve`` runs it: a real
process, a real socket, each failure of readiness provoked for real."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, pool, text

from controller.store.database import sync_url
from controller.store.migrate import head_revision
from tests.support.bodies import acl
from tests.support.faults import ControllablePostgres
from tests.support.figures import Figures
from tests.support.server import ControllerServer, running_controller

pytestmark = pytest.mark.slow


@pytest.fixture
def controller(database_url: str) -> Iterator[ControllerServer]:
    with running_controller(database_url) as server:
        yield server


def _ready(base_url: str) -> httpx.Response:
    return httpx.get(f"{base_url}/readyz", timeout=30)


def test_live_and_ready_once_started(controller: ControllerServer) -> None:
    base = controller.base_url
    live = httpx.get(f"{base}/healthz")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    put = httpx.put(f"{base}/networking/v1/accessControlLists/web", json=acl())
    assert put.status_code == 201

    ready = _ready(base)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["migrations"]["current"] == head_revision()
    follower = body["checks"]["changeFollower"]
    assert follower["ok"]
    # The PUT committed a revision: readiness waited for the follower to compile it.
    assert follower["compiledRevision"] >= follower["committedRevision"] >= 1


@contextlib.contextmanager
def _schema_at(database_url: str, revision: str) -> Iterator[None]:
    """The schema's recorded migration revision set to ``revision``, as after a rollback of
    the database or a replica newer than its schema; put back afterwards."""
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            before = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
        try:
            yield
        finally:
            with engine.begin() as connection:
                connection.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": before}
                )
    finally:
        engine.dispose()


def test_not_ready_while_the_schema_is_behind(
    controller: ControllerServer, database_url: str
) -> None:
    with _schema_at(database_url, "0001"):
        ready = _ready(controller.base_url)
        assert ready.status_code == 503
        migrations = ready.json()["checks"]["migrations"]
        assert migrations["ok"] is False
        assert migrations["current"] == "0001"
        assert migrations["head"] == head_revision()
        assert "sdnc db upgrade" in migrations["message"]
        # Alive all the same: an orchestrator must not restart it for this.
        assert httpx.get(f"{controller.base_url}/healthz").status_code == 200
    assert _ready(controller.base_url).status_code == 200


def test_ready_while_a_newer_version_upgraded_the_schema(
    controller: ControllerServer, database_url: str
) -> None:
    """A rolling upgrade runs `sdnc db upgrade` of the new version first: the replicas still
    running this one must stay in the load balancer meanwhile."""
    with _schema_at(database_url, "9999_a_later_version"):
        ready = _ready(controller.base_url)
        assert ready.status_code == 200, ready.text
        migrations = ready.json()["checks"]["migrations"]
        assert migrations["current"] == "9999_a_later_version"
        assert "newer than this version" in migrations["message"]


@pytest.mark.postgres_only
def test_not_ready_while_the_database_is_frozen_and_ready_again_after(figures: Figures) -> None:
    cluster = ControllablePostgres()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(cluster.stop)
        cluster.start()
        url = f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/postgres"
        server = cleanup.enter_context(running_controller(url))
        assert _ready(server.base_url).status_code == 200
        with cluster.frozen():
            started = time.monotonic()
            ready = _ready(server.base_url)
            took = time.monotonic() - started
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"]["ok"] is False
            # Bounded however long the database stays frozen: the probe's own time (3 s),
            # asserted with a loaded machine's slack and recorded as measured.
            figures.record("readyz answer while the database is frozen", took, "s")
            assert took < 10, took
            assert httpx.get(f"{server.base_url}/healthz").status_code == 200
        thawed = time.monotonic()
        while _ready(server.base_url).status_code != 200:
            assert time.monotonic() < thawed + 30, "not ready again after the database thawed"
            time.sleep(0.2)
        figures.record("ready again after the thaw", time.monotonic() - thawed, "s")
