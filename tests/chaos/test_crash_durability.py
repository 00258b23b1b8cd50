"""kill -9 of the controller while clients write, on PostgreSQL and on the embedded SQLite store.

Sixteen clients create, update and delete ACLs with rules and NICs whose MACs and addresses
the controller allocates, while the controller is SIGKILLed and started again a few times.
Every request is recorded (``tests.support.history``): 2xx acknowledged, a lost connection or
a 5xx indeterminate. Afterwards:

* no acknowledged write is lost: each key shows the state of a write that may be the last one
  (an acknowledged PUT's own etag, or an indeterminate PUT's content), and no acknowledged
  write was sent after that one had finished;
* indeterminate writes are all-or-nothing: an aggregate's children are exactly those of the
  write it shows, each marked by that write, and each child read at its own URI is the one
  embedded in its parent;
* allocations match what exists: every allocation row belongs to a live NIC or
  ipConfiguration, each holds what the API shows, no MAC or address is held twice, and the
  subnet lists exactly the live ipConfigurations.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import BACKEND
from tests.support.bodies import (
    acl_rule,
    ip_configuration,
    mac_pool,
    provider_network,
    virtual_network,
    virtual_subnet,
)
from tests.support.figures import Figures
from tests.support.history import Final, History, Json, Op, lost_writes, marker_of, producer
from tests.support.nbi import url, without_read_times
from tests.support.postgres import ThrowawayPostgres
from tests.support.server import START_TIMEOUT, ControllerServer

pytestmark = [pytest.mark.slow]

CLIENTS = 16
KILLS = 3
ACLS = [f"/accessControlLists/acl-{i}" for i in range(6)]
NICS = [f"/networkInterfaces/nic-{i}" for i in range(6)]
SUBNET = "/virtualNetworks/vnet/subnets/web"
PREFIX = ipaddress.ip_network("10.20.0.0/24")
RULE_IDS = [f"r{i}" for i in range(6)]
CONFIG_IDS = [f"ip{i}" for i in range(4)]
RUN_BEFORE_KILL = (1.0, 2.0)  # seconds of writes before each kill, drawn in this range


# -- the store under test -----------------------------------------------------------------------


@dataclass
class Store:
    """The controller's database as the test reads it directly afterwards."""

    url: str | None  # PostgreSQL URL, or None: the embedded store under ``directory``
    directory: Path

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        if self.url is None:
            with closing(sqlite3.connect(self.directory / ".sdnc" / "controller.db")) as db:
                return db.execute(query).fetchall()
        libpq = self.url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(libpq) as db:
            return db.execute(query).fetchall()


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store(None, tmp_path)
        return
    if BACKEND == "sqlite":
        pytest.skip("PostgreSQL-only test; the suite runs on SQLite")
    cluster = ThrowawayPostgres()
    try:
        yield Store(cluster.start(), tmp_path)
    finally:
        cluster.stop()


@pytest.fixture
def controller(store: Store) -> Iterator[ControllerServer]:
    server = ControllerServer(store.url, cwd=store.directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        print(f"--- controller log ---\n{server.log()}")
        server.remove_log()


@pytest.fixture
async def http(controller: ControllerServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=2 * CLIENTS, max_keepalive_connections=2 * CLIENTS)
    async with httpx.AsyncClient(base_url=controller.base_url, limits=limits, timeout=60) as c:
        yield c


# -- the workload -------------------------------------------------------------------------------


def tagged(body: Json, marker: str) -> Json:
    return {**body, "tags": {"write": marker}}


def acl_body(marker: str, rng: random.Random) -> Json:
    rules = sorted(rng.sample(RULE_IDS, rng.randint(1, 4)))
    return tagged(
        {
            "properties": {
                "aclRules": [
                    tagged(acl_rule(r, 100 + RULE_IDS.index(r), description=marker), marker)
                    for r in rules
                ]
            }
        },
        marker,
    )


def nic_body(marker: str, rng: random.Random) -> Json:
    configs = sorted(rng.sample(CONFIG_IDS, rng.randint(1, 3)))
    return tagged(
        {
            "properties": {
                "ipConfigurations": [tagged(ip_configuration(c, SUBNET), marker) for c in configs]
            }
        },
        marker,
    )


async def set_up(http: httpx.AsyncClient) -> None:
    for path, body in (
        ("/logicalNetworks/HNVPA", provider_network()),
        ("/macPools/pool", mac_pool("00-1D-D8-B7-00-00", "00-1D-D8-B7-00-FF")),
        (
            "/virtualNetworks/vnet",
            virtual_network(virtual_subnet("web", str(PREFIX)), prefixes=("10.20.0.0/16",)),
        ),
    ):
        response = await http.put(url(path), json=body)
        assert response.status_code == 201, response.text


async def client(
    index: int, http: httpx.AsyncClient, history: History, stop: asyncio.Event, up: asyncio.Event
) -> None:
    rng = random.Random(index)
    while not stop.is_set():
        key = rng.choice(ACLS + NICS)
        if rng.random() < 0.25:
            op = Op(index, "DELETE", key)
            await history.call(op, functools.partial(http.delete, url(key)))
        else:
            marker = history.marker(index)
            build = acl_body if key in ACLS else nic_body
            body = build(marker, rng)
            op = Op(index, "PUT", key, marker=marker, body=body)
            await history.call(op, functools.partial(http.put, url(key), json=body))
        if not op.sent:
            async with asyncio.timeout(START_TIMEOUT):
                await up.wait()  # the controller is starting again


async def run_with_kills(
    http: httpx.AsyncClient, controller: ControllerServer, history: History
) -> list[float]:
    """The clients write while the controller is killed ``KILLS`` times; the restart times."""
    stop, up = asyncio.Event(), asyncio.Event()
    up.set()
    clients = [asyncio.create_task(client(i, http, history, stop, up)) for i in range(CLIENTS)]
    restarts = []
    rng = random.Random(0)
    try:
        for kill in range(1, KILLS + 1):
            await asyncio.sleep(rng.uniform(*RUN_BEFORE_KILL))
            if kill == KILLS:
                # The writes this kill cuts off are each client's last: what they leave is
                # what the checks see, indeterminate writes included.
                stop.set()
            up.clear()
            controller.kill()
            started = time.monotonic()
            await asyncio.to_thread(controller.start)
            restarts.append(time.monotonic() - started)
            up.set()
    finally:
        stop.set()
        up.set()
        async with asyncio.timeout(START_TIMEOUT):
            await asyncio.gather(*clients)
    return restarts


# -- the checks ---------------------------------------------------------------------------------


async def final_states(http: httpx.AsyncClient) -> dict[str, Json | None]:
    states: dict[str, Json | None] = {}
    for key in ACLS + NICS:
        response = await http.get(url(key))
        assert response.status_code in (200, 404), response.text
        states[key] = response.json() if response.status_code == 200 else None
    return states


def assert_whole(
    key: str, shown: Json, write: Op, collection: str, children: dict[str, Json]
) -> None:
    """``shown`` is all of ``write`` (its children, each marked by it) and each child read
    on its own is the one embedded."""
    marker = marker_of(shown)
    embedded = {c["resourceId"]: c for c in shown["properties"][collection]}
    assert write.body is not None
    sent = {c["resourceId"] for c in write.body["properties"][collection]}
    assert set(embedded) == sent, f"{key}: children {sorted(embedded)} of a write of {sorted(sent)}"
    for child_id, child in embedded.items():
        assert marker_of(child) == marker, f"{key}/{collection}/{child_id} is of another write"
        alone = children[child_id]
        assert alone["etag"] == shown["etag"]
        assert without_read_times(alone) == without_read_times(child), f"{key}/{child_id}"


async def check_aggregates(
    http: httpx.AsyncClient, history: History, states: dict[str, Json | None]
) -> list[Json]:
    """All-or-nothing per aggregate; the live ipConfigurations."""
    configs = []
    for key, shown in states.items():
        if shown is None:
            continue
        candidates = producer(history.of(key), Final(shown["etag"], marker_of(shown)))
        assert not isinstance(candidates, str), candidates
        (write,) = candidates
        collection = "aclRules" if key in ACLS else "ipConfigurations"
        children = {}
        for child in shown["properties"][collection]:
            response = await http.get(url(f"{key}/{collection}/{child['resourceId']}"))
            assert response.status_code == 200, response.text
            children[child["resourceId"]] = response.json()
        assert_whole(key, shown, write, collection, children)
        if key in NICS:
            configs.extend(shown["properties"]["ipConfigurations"])
    return configs


def check_allocations(store: Store, states: dict[str, Json | None], configs: list[Json]) -> None:
    nics = [shown for key, shown in states.items() if key in NICS and shown is not None]
    shown_macs = {uuid.UUID(n["instanceId"]): n["properties"]["privateMacAddress"] for n in nics}
    shown_ips = {uuid.UUID(c["instanceId"]): c["properties"]["privateIPAddress"] for c in configs}
    assert len(set(shown_macs.values())) == len(shown_macs), shown_macs
    assert len(set(shown_ips.values())) == len(shown_ips), shown_ips
    assert all(ipaddress.ip_address(ip) in PREFIX for ip in shown_ips.values())

    def owners(rows: list[tuple[Any, ...]], value: Callable[[Any], str]) -> dict[uuid.UUID, str]:
        held = {uuid.UUID(str(owner)): value(stored) for stored, owner in rows}
        assert len(held) == len(rows), "one owner holds two values"
        return held

    macs = owners(store.rows("SELECT mac, owner_id FROM mac_allocations"), lambda v: f"{v:012X}")
    ips = owners(
        store.rows("SELECT address, owner_id FROM ip_allocations"),
        lambda v: str(ipaddress.ip_address(int(v, 16))),
    )
    # Every row belongs to a live resource and holds what the API shows it holding.
    assert macs == shown_macs
    assert ips == shown_ips


async def check_subnet(http: httpx.AsyncClient, configs: list[Json]) -> None:
    subnet = (await http.get(url(SUBNET))).json()
    listed = {item["resourceRef"] for item in subnet["properties"].get("ipConfigurations", [])}
    assert listed == {c["resourceRef"] for c in configs}


async def test_kill_9_during_concurrent_writes_loses_no_acknowledged_write(
    store: Store,
    controller: ControllerServer,
    http: httpx.AsyncClient,
    figures: Figures,
) -> None:
    await set_up(http)
    history = History()
    restarts = await run_with_kills(http, controller, history)
    states = await final_states(http)

    finals = {
        key: Final() if shown is None else Final(shown["etag"], marker_of(shown))
        for key, shown in states.items()
    }
    lost = [line for key, final in finals.items() for line in lost_writes(history.of(key), final)]
    counts = history.counts()
    backend = "sqlite" if store.url is None else "postgres"
    print(f"{backend}: lost acknowledged writes: {len(lost)}; {counts}")
    for name, value in counts.items():
        figures.record(name, value)
    figures.record("lost acknowledged writes", len(lost))
    figures.record("restart after kill -9 (max)", max(restarts), "s")
    assert not lost, "\n".join(lost)
    assert counts["acknowledged"] > 0
    assert not [op for op in history.ops if op.status == 500], "a 500 is a bug"

    configs = await check_aggregates(http, history, states)
    visible = {op.marker for op in history.ops if op.outcome == "info"} & {
        marker_of(shown) for shown in states.values() if shown is not None
    }
    figures.record("keys showing an indeterminate write", len(visible))
    check_allocations(store, states, configs)
    await check_subnet(http, configs)
