"""Shared fixtures: a real database built by the migrations, the app, an HTTP client.

``SDNC_TEST_BACKEND`` picks the store: ``postgres`` (default) or ``sqlite``. PostgreSQL comes
from ``SDNC_TEST_DATABASE_URL`` (a server URL; a fresh database is created on it) or from a
throwaway cluster the session starts. Each test starts from an empty, migrated database.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from controller.app import create_app
from controller.settings import Settings
from controller.store import migrate
from controller.store.database import Database
from tests.support.figures import RECORDED, Figures, summary_lines
from tests.support.nbi import serve
from tests.support.postgres import ThrowawayPostgres

# pytester runs pytest inside a test (the data-plane plugin's own tests); the data-plane plugin
# marks kernel tests and fails their skips in runs that require them.
pytest_plugins = ["pytester", "tests.support.dataplane"]

BACKEND = os.environ.get("SDNC_TEST_BACKEND", "postgres").lower()
TABLES = (
    "resource_references",
    "mac_allocations",
    "allocation_reservations",
    "resources",
    "change_log",
    "controller_secrets",
    "diagnostic_results",
    "api_tokens",
    "client_certificates",
    "audit_events",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if BACKEND == "sqlite":
        skip = pytest.mark.skip(reason="PostgreSQL-only test; the suite runs on SQLite")
        for item in items:
            if "postgres_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record what this test measured; printed in the run's summary (see tests.support.figures)."""
    return Figures(request.node.nodeid, RECORDED)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RECORDED:
        terminalreporter.section("measured figures")
        for line in summary_lines():
            terminalreporter.write_line(line)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create databases on."""
    configured = os.environ.get("SDNC_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    server = ThrowawayPostgres()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database (PostgreSQL) or a migrated template file (SQLite)."""
    if BACKEND == "sqlite":
        template = tmp_path_factory.mktemp("sqlite") / "template.db"
        url = f"sqlite:///{template}"
        migrate.upgrade(url)
        yield url
        return
    server: str = request.getfixturevalue("postgres_server")
    with create_database(server) as url:
        migrate.upgrade(url)
        yield url


@contextmanager
def create_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server``, dropped afterwards."""
    name = f"sdnc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(migrated_url: str, tmp_path: Path) -> str:
    """An empty migrated database for one test."""
    if BACKEND == "sqlite":
        path = tmp_path / "controller.db"
        shutil.copyfile(make_url(migrated_url).database or "", path)
        return f"sqlite:///{path}"
    with psycopg.connect(_libpq(migrated_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        conn.execute("UPDATE revision_counter SET revision = 0, patches = TRUE")
    return migrated_url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, over its ASGI interface."""
    async with serve(create_app(settings, database=database)) as http:
        yield http
