"""Smoke tests of ``sdnc bench convergence``: each scenario runs end to end with small sizes and
reports every key, with every change acknowledged in time. The numbers are not checked (they
are measured, not asserted), only that each was measured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import create_database
from tests.support.bench import run_bench

LB_KEYS = (
    "dip_change_p50_ms",
    "dip_change_p99_ms",
    "probe_down_to_acked_p99_ms",
    "bytes_per_host_per_dip_change",
    "agents",
    "vips",
)


@pytest.mark.postgres_only
@pytest.mark.slow
def test_the_default_scenario_reports_latency_traffic_and_memory(postgres_server: str) -> None:
    with create_database(postgres_server) as url:
        report, _ = run_bench(
            "convergence", "--agents", "6", "--endpoints", "40", "--changes", "3", database_url=url
        )
    assert (report["agents"], report["endpoints"], report["changes"]) == (6, 40, 3)
    assert report["acl_change_timeouts"] == report["endpoint_add_timeouts"] == 0
    assert isinstance(report["acl_change_p99_ms"], float)
    assert isinstance(report["bytes_per_host_per_change"], float)
    assert report["bytes_per_host_per_change"] > 0
    peaks = report["controller_rss_peak_mib"]
    assert isinstance(peaks, dict)
    assert set(peaks) == {"setup", "cold_snapshot", "changes"}
    assert all(isinstance(mib, float) and mib > 10 for mib in peaks.values()), peaks
    assert isinstance(report["controller_rss_end_mib"], float)
    for kind in ("acl", "endpoint_add"):
        cpu = report[f"{kind}_controller_cpu_ms_per_change"]
        assert isinstance(cpu, float), cpu
        assert cpu > 0


@pytest.mark.postgres_only
@pytest.mark.slow
def test_the_lb_scenario_reports_its_keys(postgres_server: str) -> None:
    with create_database(postgres_server) as url:
        report, _ = run_bench(
            "convergence", "--scenario", "lb", "--agents", "12", "--vips", "3", "--changes", "4",
            database_url=url,
        )  # fmt: skip
    assert all(key in report for key in LB_KEYS), report
    assert (report["agents"], report["vips"]) == (12, 3)
    assert report["dip_change_timeouts"] == 0
    assert report["probe_down_to_acked_timeouts"] == 0
    assert isinstance(report["bytes_per_host_per_dip_change"], float)
    assert report["bytes_per_host_per_dip_change"] > 0


def test_an_unknown_scenario_is_refused() -> None:
    command = [sys.executable, "-m", "controller", "bench", "convergence", "--scenario", "x"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "no scenario 'x'" in result.stderr
