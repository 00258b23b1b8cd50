"""Smoke test of ``sdnc bench api``: it runs end to end and reports every phase, error-free.

Only the shape of the report and the absence of errors are checked; the numbers are not.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from controller.bench.api import run_phase
from controller.bench.common import Call, database_server_pid, process_tree_cpu_seconds
from tests.conftest import create_database
from tests.support.bench import run_bench
from tests.support.metrics import scrape
from tests.support.server import running_controller

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

PHASES = ("create", "get", "list", "update", "nic-create", "nic-child-add")
METRICS = (
    "requests_per_second",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "errors",
    "controller_cpu_seconds_per_1000",
    "database_cpu_seconds_per_1000",
    "client_cpu_seconds_per_1000",
    "cpu_bound_requests_per_second",
)


# Enough requests a phase for each process's CPU to show in /proc's 10 ms ticks: 50 GETs once
# cost the database server none.
REQUESTS = 200


def bench(*args: str, database_url: str) -> dict[str, object]:
    report, _ = run_bench(
        "api", "--requests", str(REQUESTS), "--clients", "4", *args, database_url=database_url
    )
    return report


def on_this_machine(database_url: str) -> bool:
    """Whether the database server behind ``database_url`` runs here (a loopback address or a
    Unix socket): then the benchmark can measure its CPU."""
    url = make_url(database_url)
    host = url.host or url.query.get("host") or ""
    return not host or str(host).startswith("/") or host in {"localhost", "127.0.0.1", "::1"}


def check(
    report: dict[str, object],
    expected: tuple[str, ...] = PHASES,
    *,
    cpu_measured: bool = False,
    database_measured: bool = True,
) -> None:
    assert report["clients"] == 4
    assert report["requests"] == REQUESTS
    phases = report["phases"]
    assert isinstance(phases, dict)
    assert list(phases) == list(expected)
    for name in expected:
        phase = phases[name]
        assert phase["requests"] == REQUESTS, name
        assert phase["errors"] == 0, (name, phase)
        assert all(metric in phase for metric in METRICS), (name, phase)
        assert phase["p50_ms"] <= phase["p90_ms"] <= phase["p99_ms"] <= phase["max_ms"]
        cpu = phase["controller_cpu_seconds_per_1000"]
        if cpu_measured:
            # The requests cost the controller some CPU time, and less than the whole phase's
            # wall time on every core of any machine this runs on.
            assert isinstance(cpu, float), (name, phase)
            assert cpu > 0, (name, phase)
            assert cpu * phase["requests"] / 1000 <= phase["seconds"] * (os.cpu_count() or 1)
        else:
            assert cpu is None, (name, phase)
        # The client's CPU time is measured, and that of a database server on this machine;
        # with the controller's they bound the requests/s.
        spenders = ("database", "client") if database_measured else ("client",)
        for spender in spenders:
            spent = phase[f"{spender}_cpu_seconds_per_1000"]
            assert isinstance(spent, float), (name, spender, phase)
            assert 0 < spent * phase["requests"] / 1000 <= phase["seconds"] * (os.cpu_count() or 1)
        if not database_measured:
            assert phase["database_cpu_seconds_per_1000"] is None, (name, phase)
        bound = phase["cpu_bound_requests_per_second"]
        assert (bound is not None) == (cpu_measured and database_measured), (name, phase)
        if bound is not None:
            costs = sum(
                phase[f"{s}_cpu_seconds_per_1000"] for s in ("controller", "database", "client")
            )
            assert bound == pytest.approx((os.cpu_count() or 1) * 1000 / costs, rel=0.01)


def test_bench_starts_its_own_controller(postgres_server: str) -> None:
    with create_database(postgres_server) as url:
        report = bench(database_url=url)
    assert report["started_controller"] is True
    check(report, cpu_measured=True, database_measured=on_this_machine(url))


def test_bench_against_a_running_controller(postgres_server: str) -> None:
    with create_database(postgres_server) as url, running_controller(url) as server:
        report = bench("--controller", server.base_url, database_url=url)
    assert report["started_controller"] is False
    assert report["controller"] == server.base_url
    # Not given the running controller's pid: no CPU figure rather than a wrong one.
    check(report, database_measured=on_this_machine(url))


def test_bench_measures_a_running_controller_given_its_pid(postgres_server: str) -> None:
    with create_database(postgres_server) as url, running_controller(url) as server:
        given = ("--controller", server.base_url, "--controller-pid", str(server.pid))
        report = bench(*given, "--phase", "get", database_url=url)
    check(report, ("get",), cpu_measured=True, database_measured=on_this_machine(url))


def test_bench_starts_the_replicas_asked_for(postgres_server: str) -> None:
    with create_database(postgres_server) as url:
        report = bench("--replicas", "2", "--phase", "nic-create", database_url=url)
    assert report["started_controller"] is True
    controllers = report["controllers"]
    assert isinstance(controllers, list)
    assert len(set(controllers)) == 2
    assert report["controller"] == controllers[0]
    check(report, ("nic-create",), cpu_measured=True, database_measured=on_this_machine(url))


def test_bench_refuses_replicas_of_a_controller_it_did_not_start() -> None:
    command = ["bench", "api", "--replicas", "2", "--controller", "http://127.0.0.1:9"]
    run = subprocess.run(
        [sys.executable, "-m", "controller", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "--replicas starts the controllers itself" in run.stderr


def test_a_phase_sends_its_workers_to_the_replicas_in_turn(postgres_server: str) -> None:
    """400 GETs by 4 workers over two replicas: each replica answers its workers' calls, and
    the phase's controller CPU is both replicas' together (enough GETs for it to show in
    /proc's ticks of 10 ms: 40 of them once added up to none)."""
    with (
        create_database(postgres_server) as url,
        running_controller(url) as one,
        running_controller(url) as two,
    ):
        before = [_discovery_gets(server.base_url) for server in (one, two)]
        calls = [Call("GET", "/networking/discovery")] * 400
        phase = asyncio.run(
            run_phase(
                [one.base_url, two.base_url], "get", calls, 4, controller_pid=[one.pid, two.pid]
            )
        )
        after = [_discovery_gets(server.base_url) for server in (one, two)]
    assert dict(phase.statuses) == {200: 400}
    answered = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(answered) == 400
    # Each of the 4 workers sends at least its first call; two of them go to each replica.
    assert all(count >= 2 for count in answered), answered
    assert phase.controller_cpu_seconds is not None
    assert phase.controller_cpu_seconds > 0


def _discovery_gets(base_url: str) -> float:
    series = scrape(base_url).series("sdnc_http_requests_total")
    return sum(
        value
        for labels, value in series.items()
        if ("method", "GET") in labels and ("kind", "metrics") not in labels
    )


def test_bench_runs_the_chosen_phases(postgres_server: str) -> None:
    """The NIC phases alone: 200 NICs with a Dynamic MAC and address, then 200 ipConfigurations
    added at the child URIs of container-host NICs, 20 per NIC (so 10 NICs)."""
    with create_database(postgres_server) as url, running_controller(url) as server:
        chosen = ("--phase", "nic-create", "--phase", "nic-child-add", "--configs-per-nic", "20")
        report = bench("--controller", server.base_url, *chosen, database_url=url)
        # Everything the run made is gone again.
        for collection in ("networkInterfaces", "virtualNetworks", "logicalNetworks", "macPools"):
            listed = httpx.get(f"{server.base_url}/networking/v1/{collection}").json()["value"]
            assert listed == [], collection
    check(report, ("nic-create", "nic-child-add"), database_measured=on_this_machine(url))
    assert report["configs_per_nic"] == 20
    assert report["nic_hosts"] == REQUESTS // 20


def test_the_database_server_is_found_only_on_this_machine(postgres_server: str) -> None:
    assert database_server_pid("sqlite+aiosqlite:///somewhere.db") is None
    # Another machine's server is not looked for (no connection is even tried).
    assert database_server_pid("postgresql://postgres@198.51.100.7:5432/test") is None
    found = database_server_pid(postgres_server)
    if not on_this_machine(postgres_server):
        assert found is None
        return
    # The postmaster: a postgres process whose children serve the connections.
    assert found is not None
    assert Path(f"/proc/{found}/comm").read_text().strip() == "postgres"
    children = [
        entry
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent_of(entry) == found
    ]
    assert children
    spent = process_tree_cpu_seconds(found)
    assert spent is not None
    assert spent > 0


def _parent_of(entry: Path) -> int | None:
    try:
        text = (entry / "stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[1])


def test_bench_refuses_an_unknown_phase() -> None:
    command = [sys.executable, "-m", "controller", "bench", "api", "--phase", "nope"]
    env = {**os.environ, "SDNC_LOG_LEVEL": "warning"}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert "unknown phase(s) nope" in result.stderr
