"""``sdnc serve`` as a user runs it: a real process on a real socket."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from controller.store import migrate
from tests.conftest import create_database
from tests.support.bodies import acl
from tests.support.server import ControllerServer

pytestmark = pytest.mark.slow


def _round_trip(base_url: str) -> None:
    discovery = httpx.get(f"{base_url}/networking/discovery")
    assert discovery.status_code == 200
    assert discovery.json()["properties"]["currentRestVersion"] == "v5"
    url = f"{base_url}/networking/v1/accessControlLists/web"
    assert httpx.put(url, json=acl()).status_code in (200, 201)
    assert httpx.get(url).json()["resourceRef"] == "/accessControlLists/web"


def test_serves_on_the_embedded_default_store_and_keeps_data(tmp_path: Path) -> None:
    with contextlib.ExitStack() as cleanup:  # each log removed even when a stop fails
        first = ControllerServer(None, cwd=tmp_path)
        cleanup.callback(first.remove_log)
        with contextlib.ExitStack() as running:
            running.callback(first.stop)
            _round_trip(first.start())
        assert (tmp_path / ".sdnc" / "controller.db").is_file()

        second = ControllerServer(None, cwd=tmp_path)
        cleanup.callback(second.remove_log)
        cleanup.callback(second.stop)
        base_url = second.start()
        kept = httpx.get(f"{base_url}/networking/v1/accessControlLists/web")
        assert kept.status_code == 200


@pytest.mark.postgres_only
def test_serves_on_postgresql(postgres_server: str) -> None:
    with create_database(postgres_server) as url, contextlib.ExitStack() as cleanup:
        server = ControllerServer(url)
        cleanup.callback(server.remove_log)
        cleanup.callback(server.stop)
        _round_trip(server.start())


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    def sdnc(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "controller", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", "SDNC_DATA_DIR": str(tmp_path / "data")},
        )
        return result.stdout

    assert "database at revision" in sdnc("db", "upgrade")
    head = migrate.head_revision()
    assert f"current: {head}; head: {head}" in sdnc("db", "current")
