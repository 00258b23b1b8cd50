"""The database goes away under a real controller (a subprocess on a PostgreSQL cluster of the
test's own) while clients keep sending requests: stopped (fast shutdown, or the postmaster
killed) and started again, or frozen (every process of the cluster stopped with SIGSTOP: it
accepts connections and never answers) and thawed.

Meanwhile every request gets 503 ``ServiceUnavailable`` in the NC envelope with a
``Retry-After`` header within the controller's database bound, discovery keeps answering at
once, and nothing but 2xx and 503 is ever answered. When the database is back, requests
succeed again without restarting the controller. While frozen, a connected agent keeps its
WebSocket and gets the next change after the thaw, a new agent is refused with 503, a
``?wait=applied`` PUT answers within its own timeout, and what the status board learns (an
agent leaving) reaches the database after the thaw. Latencies and recovery times are
recorded as figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from controller.store.database import Database
from tests.support.bodies import acl, acl_rule, ip_configuration, nic, ref
from tests.support.faults import ControllablePostgres
from tests.support.figures import Figures
from tests.support.nbi import assert_configuration_state, get
from tests.support.server import ControllerServer
from tests.support.southbound import (
    BLUE_WEB,
    FAST_ENV,
    WEB_ACL,
    Agents,
    RecordingDataplane,
    applied,
    build_fabric,
    channel_url,
    eventually,
    put_waiting,
    revision_of,
    tokens,
)

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

BOUND = 2.0  # the controller's database bound (SDNC_DATABASE_TIMEOUT)
ENV = {"SDNC_DATABASE_TIMEOUT": "2", "SDNC_DATABASE_CONNECT_TIMEOUT": "1", **FAST_ENV}
# What a loaded 2-core machine may add to a bound before the test calls it a hang.
SLACK = 3.0
OUTAGE = 3.0  # how long the database stays stopped (seconds)
FREEZE = 6.5  # how long it stays frozen: longer than a wait=applied PUT's timeout + BOUND
WAIT_TIMEOUT = 3.0
RECOVERY_BOUND = 10.0
CLIENTS = 4
POOL_SIZE = 20  # the controller's SDNC_DATABASE_POOL_SIZE (its default)


# -- a cluster and a controller per test ---------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[ControllablePostgres]:
    postgres = ControllablePostgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.stop()


@pytest.fixture
def cluster_url(cluster: ControllablePostgres) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/postgres"


@pytest.fixture
def controller(cluster_url: str) -> Iterator[ControllerServer]:
    server = ControllerServer(cluster_url, extra_env=ENV)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        print(f"--- controller log ---\n{server.log()}")
        server.remove_log()


@pytest.fixture
async def http(controller: ControllerServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=controller.base_url, limits=limits, timeout=60) as c:
        yield c


# -- traffic while the database comes and goes ------------------------------------------------


@dataclass(frozen=True)
class Sample:
    what: str  # "read", "write" or "discovery"
    started: float
    finished: float
    status: int | None
    retry_after: str | None = None
    code: str | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    def describe(self) -> str:
        return (
            f"{self.what} [{self.started:.2f}+{self.seconds:.2f}s] -> "
            f"{self.status or self.error} {self.code or ''} Retry-After={self.retry_after}"
        )


@dataclass
class Traffic:
    """Clients reading and writing one ACL, and one asking for discovery, each in a loop
    until stopped; every answer is a ``Sample`` (times from ``time.monotonic``)."""

    http: httpx.AsyncClient
    samples: list[Sample] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _send(self, what: str, request: httpx.Request) -> Sample:
        started = time.monotonic()
        try:
            response = await self.http.send(request)
        except httpx.TransportError as exc:
            sample = Sample(what, started, time.monotonic(), None, error=type(exc).__name__)
        else:
            code = None
            if response.status_code >= 400:
                code = response.json().get("error", {}).get("code")
            status, retry_after = response.status_code, response.headers.get("retry-after")
            sample = Sample(what, started, time.monotonic(), status, retry_after, code)
        self.samples.append(sample)
        return sample

    async def _client(self, index: int) -> None:
        path = "/networking/v1/accessControlLists/outage"
        serial = 0
        while not self._stop.is_set():
            serial += 1
            if serial % 2:
                request = self.http.build_request("GET", path)
                await self._send("read", request)
            else:
                body = acl(acl_rule("r1", 100, description=f"client {index} write {serial}"))
                await self._send("write", self.http.build_request("PUT", path, json=body))
            await asyncio.sleep(0.05)

    async def _discovery(self) -> None:
        while not self._stop.is_set():
            await self._send("discovery", self.http.build_request("GET", "/networking/discovery"))
            await asyncio.sleep(0.1)

    async def __aenter__(self) -> Traffic:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(CLIENTS)]
        self._tasks.append(asyncio.create_task(self._discovery()))
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        async with asyncio.timeout(BOUND + SLACK + 30):
            await asyncio.gather(*self._tasks)

    def api(self) -> list[Sample]:
        return [s for s in self.samples if s.what != "discovery"]

    def within(self, start: float, end: float) -> list[Sample]:
        """API requests sent after ``start`` and answered before ``end``."""
        return [s for s in self.api() if s.started >= start and s.finished <= end]

    def recovered_at(self, since: float) -> Sample:
        """The first API request sent after ``since`` that succeeded."""
        succeeded = [s for s in self.api() if s.started >= since and s.status in (200, 201)]
        assert succeeded, "no request succeeded after the database came back"
        return min(succeeded, key=lambda s: s.finished)


def describe(samples: list[Sample]) -> str:
    return "\n".join(s.describe() for s in samples)


def assert_unavailable_in_time(samples: list[Sample]) -> None:
    """Every one of ``samples`` is a 503 ServiceUnavailable with Retry-After in time."""
    assert samples, "no request was answered while the database was away"
    wrong = [
        s
        for s in samples
        if s.status != 503
        or s.code != "ServiceUnavailable"
        or not (s.retry_after or "").isdigit()
        or int(s.retry_after or 0) < 1
        or s.seconds > BOUND + SLACK
    ]
    assert not wrong, describe(wrong)


def assert_only_2xx_and_503(traffic: Traffic) -> None:
    wrong = [s for s in traffic.api() if s.status not in (200, 201, 503)]
    assert not wrong, describe(wrong)
    discovery = [s for s in traffic.samples if s.what == "discovery"]
    slow_or_failed = [s for s in discovery if s.status != 200 or s.seconds > 2.0]
    assert not slow_or_failed, describe(slow_or_failed)


def record(figures: Figures, traffic: Traffic, refused: list[Sample], since: float) -> None:
    seconds = [s.seconds for s in refused]
    figures.record("503s while the database was away", len(refused))
    figures.record("503 latency p50", statistics.median(seconds), "s")
    figures.record("503 latency max", max(seconds), "s")
    discovery = [s.seconds for s in traffic.samples if s.what == "discovery"]
    figures.record("discovery latency max", max(discovery), "s")
    recovered = traffic.recovered_at(since)
    figures.record("recovery (database back -> first 2xx)", recovered.finished - since, "s")


def assert_steady_after(traffic: Traffic, since: float) -> None:
    """Requests sent after the first success after ``since`` all succeed."""
    recovered = traffic.recovered_at(since)
    assert recovered.finished - since < RECOVERY_BOUND, recovered.describe()
    later = [s for s in traffic.api() if s.started > recovered.finished]
    assert later, "no request was sent after the recovery"
    failed = [s for s in later if s.status not in (200, 201)]
    assert not failed, describe(failed)


# -- stopped and started again -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["fast shutdown", "postmaster killed"])
async def test_database_stopped_then_started_again(
    how: str,
    cluster: ControllablePostgres,
    http: httpx.AsyncClient,
    figures: Figures,
) -> None:
    assert (await http.put("/networking/v1/accessControlLists/outage", json=acl())).is_success
    async with Traffic(http) as traffic:
        await asyncio.sleep(0.5)
        if how == "fast shutdown":
            cluster.shut_down()
        else:
            cluster.kill()
        down = time.monotonic()
        await asyncio.sleep(OUTAGE)
        starting = time.monotonic()
        await asyncio.to_thread(cluster.start_again)
        up = time.monotonic()
        await eventually(lambda: any(s.started >= up and s.status == 200 for s in traffic.api()))
        await asyncio.sleep(1.0)
    refused = traffic.within(down, starting)
    assert_unavailable_in_time(refused)
    assert_only_2xx_and_503(traffic)
    assert_steady_after(traffic, up)
    record(figures, traffic, refused, up)


# -- frozen and thawed ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def cluster_database(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()


async def new_agent_refused(base_url: str, token: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            channel_url(base_url, "hostC"),
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=BOUND + SLACK,
        ):
            pass
    return refused.value


def client_backends(url: str) -> int:
    """Connections to the cluster other than this query's own."""
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def qos_nic(mbps: int) -> dict[str, object]:
    """NIC b1 on hostB (as the fabric has it) with an outbound cap of ``mbps``."""
    return nic(
        ip_configuration("ip", BLUE_WEB, "24.30.1.20"),
        privateMacAddress="00155D000B01",
        server=ref("/servers/hostB"),
        portSettings={"qosSettings": {"outboundMaximumMbps": mbps}},
    )


async def test_database_frozen_then_thawed(
    cluster: ControllablePostgres,
    cluster_url: str,
    controller: ControllerServer,
    http: httpx.AsyncClient,
    figures: Figures,
) -> None:
    nc = httpx.AsyncClient(base_url=controller.base_url, timeout=60)
    agents = Agents([controller.base_url])
    try:
        await build_fabric(nc)
        async with cluster_database(cluster_url) as database:
            keys = await tokens(database)
            revision = await revision_of(database)
        await nc.put("/networking/v1/accessControlLists/outage", json=acl())
        # hostA: pings every half second, each must be answered through the freeze.
        agent_a = agents.start("hostA", keys["hostA"], ping_interval=0.5)
        stuck = RecordingDataplane()
        agent_b = agents.start("hostB", keys["hostB"], dataplane=stuck)
        await applied(agent_a, revision)
        await applied(agent_b, revision)

        # A wait for hosts that outlives the database: hostB's dataplane holds the change.
        stuck.gate.clear()
        seen = len(agent_b.messages)
        wait_started = time.monotonic()
        waiting = asyncio.create_task(
            put_waiting(nc, "/networkInterfaces/b1", qos_nic(100), within=WAIT_TIMEOUT)
        )
        await eventually(lambda: any(m["type"] == "delta" for m in agent_b.messages[seen:]))
        change = max(m["revision"] for m in agent_b.messages[seen:] if m["type"] == "delta")

        async with Traffic(http) as traffic:
            await asyncio.sleep(0.3)
            with cluster.frozen():
                frozen = time.monotonic()
                refusal = await new_agent_refused(controller.base_url, keys["hostC"])
                answered = await waiting
                wait_seconds = time.monotonic() - wait_started
                # hostB applies and acknowledges the change, then leaves: both reach only
                # the status board while the database is frozen.
                stuck.gate.set()
                await applied(agent_b, change)
                await agents.stop(agent_b)
                await asyncio.sleep(max(0.0, frozen + FREEZE - time.monotonic()))
                thawing = time.monotonic()
            thawed = time.monotonic()
            await eventually(
                lambda: any(s.started >= thawed and s.status == 200 for s in traffic.api())
            )
            await asyncio.sleep(1.0)

        assert answered.status_code == 200, answered.text
        assert answered.headers["x-sdnc-applied"] == "false"
        assert wait_seconds < WAIT_TIMEOUT + SLACK, wait_seconds
        assert refusal.response.status_code == 503
        assert int(refusal.response.headers["retry-after"]) >= 1
        refused = traffic.within(frozen, thawing)
        assert_unavailable_in_time(refused)
        assert_only_2xx_and_503(traffic)
        assert_steady_after(traffic, thawed)
        record(figures, traffic, refused, thawed)
        figures.record("wait=applied PUT answered after", wait_seconds, "s")

        # hostA kept its one connection, and gets the next change.
        assert agent_a.connected.is_set()
        assert agent_a.stats.connects == 1
        response = await put_waiting(nc, WEB_ACL, acl(acl_rule("r1", 100), acl_rule("r2", 200)))
        assert response.status_code == 200, response.text
        assert response.headers["x-sdnc-applied"] == "true"
        rules = [b for k, b in agent_a.state.objects.items() if k.startswith("aclRule/")]
        assert sorted(rule["priority"] for rule in rules) == [100, 200]

        # What the status board learned while frozen was written after the thaw.
        async def host_b_gone() -> bool:
            server = await get(nc, "/servers/hostB")
            state = server["properties"]["configurationState"]
            return bool(state["status"] == "Failure")

        await eventually(host_b_gone, within=RECOVERY_BOUND, what="hostB shown as gone")
        # No connection piled up: the controller holds its pool and its LISTEN connection at
        # most, the ones the deadline abandoned are gone.
        await eventually(
            lambda: client_backends(cluster_url) <= POOL_SIZE + 1,
            within=RECOVERY_BOUND,
            what="the abandoned connections closing",
        )
        assert_configuration_state(
            await get(nc, "/servers/hostB"), "Failure", "HostNotConnectedToController"
        )
        assert_configuration_state(await get(nc, "/servers/hostA"), "Success")
    finally:
        await agents.close()
        await nc.aclose()
