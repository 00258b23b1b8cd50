"""Smoke tests of ``sdnc bench agent`` and ``sdnc bench agent-lb``: each builds a small host,
reports every figure, checks the kernel, and leaves no namespace behind. The numbers themselves
are not checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.dataplane("nft")

FIGURES = (
    "endpoint_add_p50_ms", "endpoint_add_p99_ms", "acl_change_p50_ms", "acl_change_p99_ms",
    "noop_resync_ms", "cold_build_s", "rss_mb",
)  # fmt: skip


def namespaces() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def test_bench_agent_reports_every_figure_and_cleans_up() -> None:
    command = [sys.executable, "-m", "controller", "bench", "agent", "--endpoints", "3"]
    done = subprocess.run(
        [*command, "--samples", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["endpoints"] == 3
    assert report["kernel_checked"] is True
    for figure in FIGURES:
        assert isinstance(report[figure], float | int), figure
        assert report[figure] > 0, figure
    # Namespaces of other runs may come and go meanwhile: look for this run's only.
    server = str(report["server"])
    assert [n for n in namespaces() if server[:8] in n or server in n] == []


LB_FIGURES = (
    "full_build_s", "dip_change_apply_p50_ms", "dip_change_apply_p99_ms",
    "dip_back_apply_p50_ms", "noop_resync_ms", "rss_mb",
)  # fmt: skip


def test_bench_agent_lb_reports_every_figure_and_cleans_up() -> None:
    command = [sys.executable, "-m", "controller", "bench", "agent-lb", "--vips", "20"]
    done = subprocess.run(
        [*command, "--dips", "3", "--samples", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["vips"], report["dips"]) == (20, 3)
    assert report["full_build_elements"] == 20 * 64
    assert report["kernel_checked"] is True
    for figure in LB_FIGURES:
        assert isinstance(report[figure], float | int), figure
        assert report[figure] > 0, figure
    server = str(report["server"])
    assert [n for n in namespaces() if server[:8] in n or server in n] == []
