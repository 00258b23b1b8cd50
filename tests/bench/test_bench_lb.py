"""Smoke test of ``sdnc bench convergence --scenario lb``: it runs end to end and reports every
key, with every change and every failed probe acknowledged in time. The numbers are not
checked (they are measured, not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import create_database

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

KEYS = (
    "dip_change_p50_ms",
    "dip_change_p99_ms",
    "probe_down_to_acked_p99_ms",
    "bytes_per_host_per_dip_change",
    "agents",
    "vips",
)


def test_the_lb_scenario_reports_its_keys(postgres_server: str) -> None:
    command = [sys.executable, "-m", "controller", "bench", "convergence", "--scenario", "lb"]
    command += ["--agents", "12", "--vips", "3", "--changes", "4", "--json"]
    with create_database(postgres_server) as url:
        env = {**os.environ, "SDNC_DATABASE_URL": url, "SDNC_LOG_LEVEL": "warning"}
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert all(key in report for key in KEYS), report
    assert (report["agents"], report["vips"]) == (12, 3)
    assert report["dip_change_timeouts"] == 0
    assert report["probe_down_to_acked_timeouts"] == 0
    assert report["bytes_per_host_per_dip_change"] > 0


def test_an_unknown_scenario_is_refused() -> None:
    command = [sys.executable, "-m", "controller", "bench", "convergence", "--scenario", "x"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "no scenario 'x'" in result.stderr
