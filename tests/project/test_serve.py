"""``sdnc serve`` as a user runs it: a real process on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from controller.server import connection_cap
from controller.store import migrate
from tests.conftest import create_database
from tests.support.bodies import acl
from tests.support.raw_http import HOSTILE, assert_envelope, exchange
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
    assert "upgrade finished: 0 sibling keys filled in" in sdnc("db", "finish-upgrade")


def test_serve_raises_its_open_files_limit_and_guards_http(tmp_path: Path) -> None:
    """Started with the usual soft limit of 1,024 open files, ``sdnc serve`` raises it to the
    hard limit; it answers a hostile request with the NC envelope, not uvicorn's text page."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = ControllerServer(None, cwd=tmp_path)
    with contextlib.ExitStack() as cleanup:  # the log is removed even when the stop fails
        cleanup.callback(server.remove_log)
        cleanup.callback(server.stop)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        try:
            server.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        limits = Path(f"/proc/{server.pid}/limits").read_text().splitlines()
        open_files = next(line for line in limits if line.startswith("Max open files"))
        assert open_files.split()[3:5] == [str(hard), str(hard)], open_files
        _, raw, status, code = HOSTILE[0]
        outcome = asyncio.run(exchange("127.0.0.1", server.port, raw))
        assert_envelope(outcome.response, status, code)


def test_the_connection_cap_stays_below_the_open_files_limit() -> None:
    assert connection_cap(10_000, open_files=1_048_576) == 10_000
    assert connection_cap(10_000, open_files=4096) == 4096 - 1024
    assert connection_cap(10_000, open_files=1024) == 512
