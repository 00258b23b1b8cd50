"""``sdnc bench api``: throughput and latency of the northbound API under concurrent clients.

Phases, each of ``requests`` requests spread over ``clients`` concurrent workers on one asyncio
event loop (one keep-alive connection per worker, through the lean client of ``lean_http``, so
the client's own CPU does not set the measured throughput); before each, on PostgreSQL, the
database is vacuumed and analyzed, as autovacuum would have done between them:

* ``create``: PUT of distinct accessControlLists, each with 3 embedded aclRules;
* ``get``: GET of one accessControlList, picked at random among those created;
* ``list``: GET of the logicalNetworks collection, after ``list_size`` logical networks (each with
  a subnet and an ipPool) were put in place (not timed);
* ``update``: PUT replacing existing accessControlLists (new rules);
* ``nic-create``: PUT of distinct networkInterfaces, each with a Dynamic MAC and one Dynamic
  ipConfiguration, all in one large virtual subnet (a /16 unless more addresses are needed) and
  one large macPool, both put in place first (not timed);
* ``nic-child-add``: PUT of ipConfigurations (Dynamic, same subnet) one by one at the child URI
  of container-host NICs (created first, not timed), ``configs_per_nic`` per NIC: the n-th add
  to a NIC rewrites a NIC that already has n-1. The adds go round-robin over the NICs.

``phases`` picks which phases run (in the order above); a phase that needs resources of an
unselected one (``get`` and ``update`` need the accessControlLists of ``create``) gets them
created first, untimed.

Latency is measured per request with ``time.perf_counter`` around the whole HTTP exchange. When
the benchmark can see the controller's process (it started it, or was given its pid), each phase
also reports the controller's CPU seconds (user + system, all threads) per 1,000 requests, read
from /proc before and after the phase: what a request costs the controller, independent of the
share of the cores the client and the database took. The
resources carry a per-run prefix and are deleted afterwards unless ``keep`` is set. Without a
controller URL the benchmark starts ``python -m controller serve`` on a free port with the
current environment (so on the configured database, migrations included) and stops it at the end;
with ``replicas`` it starts that many on the one database, sends the timed phases' workers to
them in turn and adds up their CPU time (what several replicas of one deployment reach together).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import httptools
import httpx

from controller.bench import bodies
from controller.bench.common import (
    BenchError,
    Call,
    Phase,
    controller_process,
    database_server_pid,
    process_cpu_seconds,
    process_tree_cpu_seconds,
    tidy_database,
)
from controller.bench.lean_http import LeanConnection

API = "/networking/v1"
START_TIMEOUT = 60.0
PHASES = ("create", "get", "list", "update", "nic-create", "nic-child-add")
ACL_PHASES = frozenset({"create", "get", "update"})
NIC_PHASES = frozenset({"nic-create", "nic-child-add"})


# -- running phases --------------------------------------------------------------------------


async def run_phase(
    base_url: str | Sequence[str],
    name: str,
    calls: Sequence[Call],
    workers: int,
    *,
    controller_pid: int | Sequence[int] | None = None,
    database_pid: int | None = None,
) -> Phase:
    """Send ``calls`` through ``workers`` concurrent workers, each with its own keep-alive
    connection; each worker takes the next call when its previous one has been answered.
    Several base URLs (replicas) get the workers in turn. With ``controller_pid`` (several:
    the replicas'), the phase also records the CPU time those processes spent meanwhile, with
    ``database_pid`` that of the database server's processes, and always this one's own."""
    phase = Phase(name, latencies_ms=[0.0] * len(calls))
    position = 0
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    pids = [controller_pid] if isinstance(controller_pid, int) else list(controller_pid or ())

    async def worker(number: int) -> None:
        nonlocal position
        connection = LeanConnection(urls[number % len(urls)])
        try:
            while position < len(calls):
                index = position
                position += 1
                call = calls[index]
                started = time.perf_counter()
                try:
                    status = await connection.request(call.method, call.url, call.body)
                except (OSError, TimeoutError, httptools.HttpParserError):
                    status = 0
                    await connection.close()
                phase.latencies_ms[index] = (time.perf_counter() - started) * 1000.0
                phase.statuses[status] += 1
        finally:
            await connection.close()

    cpu_before = _cpu_seconds(pids)
    database_before = None if database_pid is None else process_tree_cpu_seconds(database_pid)
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(max(1, min(workers, len(calls))))))
    phase.seconds = time.perf_counter() - started
    phase.client_cpu_seconds = time.process_time() - client_before
    if cpu_before is not None:
        cpu_after = _cpu_seconds(pids)
        if cpu_after is not None:
            phase.controller_cpu_seconds = cpu_after - cpu_before
    if database_pid is not None and database_before is not None:
        database_after = process_tree_cpu_seconds(database_pid)
        if database_after is not None:
            phase.database_cpu_seconds = database_after - database_before
    return phase


def _cpu_seconds(pids: Sequence[int]) -> float | None:
    """The CPU time of the processes ``pids`` together (None: none given, or one is gone)."""
    spent = [process_cpu_seconds(pid) for pid in pids]
    if not spent or any(seconds is None for seconds in spent):
        return None
    return sum(seconds for seconds in spent if seconds is not None)


@dataclass(frozen=True)
class Options:
    clients: int = 32
    requests: int = 5000
    list_size: int = 50
    keep: bool = False
    seed: int = 1
    phases: tuple[str, ...] = PHASES
    configs_per_nic: int = 64
    # The controller's process id, to report its CPU time per phase (set for one started by
    # the benchmark; for a controller elsewhere, only when it runs on this machine).
    controller_pid: int | None = None
    # The controller's database: on PostgreSQL, vacuumed and analyzed before each timed phase.
    database_url: str | None = None
    # Its server's process id, to report its CPU time per phase (when it runs on this machine).
    database_pid: int | None = None
    # Controllers the benchmark starts on the database: the timed phases' clients go to them
    # in turn, and their CPU time is added up.
    replicas: int = 1
    # Set for a run: the replicas' base URLs and process ids.
    replica_urls: tuple[str, ...] = ()
    replica_pids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.phases) - set(PHASES))
        if unknown:
            raise BenchError(f"unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}")
        if self.configs_per_nic < 1:
            raise BenchError("configs_per_nic must be at least 1")
        if self.replicas < 1:
            raise BenchError("replicas must be at least 1")

    @property
    def nic_hosts(self) -> int:
        """How many container-host NICs ``nic-child-add`` spreads its requests over."""
        return -(-self.requests // self.configs_per_nic)


@dataclass
class _Resources:
    """What one run creates, by URL, in the order it can be deleted."""

    run: str
    acls: list[str]
    networks: list[str]
    nics: list[str]
    hosts: list[str]
    virtual_network: str
    provider: str
    mac_pool: str

    @classmethod
    def named(cls, options: Options) -> _Resources:
        run = uuid.uuid4().hex[:8]
        base = f"bench-{run}"
        return cls(
            run=run,
            acls=[f"{API}/accessControlLists/{base}-acl-{i}" for i in range(options.requests)],
            networks=[f"{API}/logicalNetworks/{base}-ln-{i}" for i in range(options.list_size)],
            nics=[f"{API}/networkInterfaces/{base}-nic-{i}" for i in range(options.requests)],
            hosts=[f"{API}/networkInterfaces/{base}-host-{i}" for i in range(options.nic_hosts)],
            virtual_network=f"{API}/virtualNetworks/{base}-vn",
            provider=f"{API}/logicalNetworks/{base}-pa",
            mac_pool=f"{API}/macPools/{base}-macs",
        )

    @property
    def subnet(self) -> str:
        """The virtual subnet's resourceRef."""
        return f"{self.virtual_network.removeprefix(API)}/subnets/subnet-1"

    def removal_waves(self, phases: Collection[str]) -> list[list[str]]:
        """Deletes of what ``phases`` create, in waves: NICs before the subnet and macPool
        they use, the virtual network before the logical network it runs over."""
        first: list[str] = []
        if ACL_PHASES.intersection(phases):
            first += self.acls
        if "list" in phases:
            first += self.networks
        if "nic-create" in phases:
            first += self.nics
        if "nic-child-add" in phases:
            first += self.hosts
        if not NIC_PHASES.intersection(phases):
            return [first]
        return [first, [self.virtual_network], [self.provider, self.mac_pool]]


async def _timed(base_url: str, name: str, calls: Sequence[Call], options: Options) -> Phase:
    """A timed phase, on a database in the state autovacuum keeps it in."""
    await tidy_database(options.database_url)
    return await run_phase(
        options.replica_urls or base_url,
        name,
        calls,
        options.clients,
        controller_pid=options.replica_pids or options.controller_pid,
        database_pid=options.database_pid,
    )


async def _benchmark(base_url: str, options: Options) -> dict[str, Phase]:
    names = _Resources.named(options)
    wanted = set(options.phases)
    limits = httpx.Limits(
        max_connections=options.clients, max_keepalive_connections=options.clients
    )
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120.0) as client:
        await _check_reachable(client)
        phases: dict[str, Phase] = {}
        try:
            if wanted & ACL_PHASES:
                await _acl_phases(client, options, names, phases)
            if "list" in wanted:
                await _list_phase(client, options, names, phases)
            if wanted & NIC_PHASES:
                await _nic_phases(client, options, names, phases)
        finally:
            if not options.keep:
                for wave in names.removal_waves(wanted):
                    removals = [Call("DELETE", url) for url in wave]
                    await run_phase(base_url, "cleanup", removals, options.clients)
    return {name: phases[name] for name in PHASES if name in phases}


async def _acl_phases(
    client: httpx.AsyncClient, options: Options, names: _Resources, phases: dict[str, Phase]
) -> None:
    base_url = _base(client)
    rng = random.Random(options.seed)
    acls = names.acls
    create = [Call("PUT", url, bodies.acl_body(i)) for i, url in enumerate(acls)]
    created_phase = await _timed(base_url, "create", create, options)
    if "create" in options.phases:
        phases["create"] = created_phase
    created = acls if created_phase.errors == 0 else await _existing(client, acls)
    if not created:
        raise BenchError("no accessControlList could be created; see phase 'create'")

    if "get" in options.phases:
        reads = [Call("GET", rng.choice(created)) for _ in range(options.requests)]
        phases["get"] = await _timed(base_url, "get", reads, options)

    if "update" in options.phases:
        updates = [
            Call("PUT", created[i % len(created)], bodies.acl_body(options.requests + i))
            for i in range(options.requests)
        ]
        phases["update"] = await _timed(base_url, "update", updates, options)


async def _list_phase(
    client: httpx.AsyncClient, options: Options, names: _Resources, phases: dict[str, Phase]
) -> None:
    base_url = _base(client)
    setup = [
        Call("PUT", url, bodies.logical_network_body(i)) for i, url in enumerate(names.networks)
    ]
    await _set_up(client, "logicalNetworks", setup, options.clients)
    lists = [Call("GET", f"{API}/logicalNetworks")] * options.requests
    phases["list"] = await _timed(base_url, "list", lists, options)


async def _nic_phases(
    client: httpx.AsyncClient, options: Options, names: _Resources, phases: dict[str, Phase]
) -> None:
    base_url = _base(client)
    subnet = names.subnet
    prefix = bodies.subnet_prefix(2 * options.requests)
    await _set_up(
        client,
        "the provider network",
        [Call("PUT", names.provider, bodies.provider_network_body())],
        1,
    )
    network = Call(
        "PUT",
        names.virtual_network,
        bodies.virtual_network_body(names.provider.removeprefix(API), prefix),
    )
    pool = Call("PUT", names.mac_pool, bodies.mac_pool_body(names.run))
    await _set_up(client, "the virtual network and macPool", [network, pool], 2)

    if "nic-create" in options.phases:
        creates = [Call("PUT", url, bodies.nic_body(subnet)) for url in names.nics]
        phases["nic-create"] = await _timed(base_url, "nic-create", creates, options)

    if "nic-child-add" in options.phases:
        hosts = [Call("PUT", url, bodies.nic_body(None)) for url in names.hosts]
        await _set_up(client, "container-host NICs", hosts, options.clients)
        body = bodies.child_body(subnet)
        adds = [
            Call("PUT", f"{host}/ipConfigurations/container-{j}", body)
            for j in range(options.configs_per_nic)
            for host in names.hosts
        ][: options.requests]
        phases["nic-child-add"] = await _timed(base_url, "nic-child-add", adds, options)


async def _set_up(
    client: httpx.AsyncClient, what: str, calls: Sequence[Call], workers: int
) -> None:
    """Untimed preparation; every request must succeed."""
    base_url = _base(client)
    prepared = await run_phase(base_url, "setup", calls, workers)
    if prepared.errors:
        raise BenchError(f"setting up {what} failed: {dict(prepared.statuses)}")


def _base(client: httpx.AsyncClient) -> str:
    return str(client.base_url).rstrip("/")


async def _check_reachable(client: httpx.AsyncClient) -> None:
    try:
        response = await client.get("/networking/discovery")
    except httpx.HTTPError as exc:
        raise BenchError(f"the controller at {client.base_url} is not reachable: {exc}") from exc
    if response.status_code != 200:
        raise BenchError(
            f"GET /networking/discovery answered {response.status_code}: {response.text[:200]}"
        )


async def _existing(client: httpx.AsyncClient, urls: Sequence[str]) -> list[str]:
    return [url for url in urls if (await client.get(url)).status_code == 200]


# -- entry point and output ------------------------------------------------------------------


def run(controller: str | None, options: Options, *, log: Callable[[str], None]) -> dict[str, Any]:
    """Run every phase against ``controller`` (or a controller started for the run); returns
    the report that ``--json`` prints."""
    options = dataclasses.replace(options, database_pid=database_server_pid(options.database_url))
    if controller is None:
        with contextlib.ExitStack() as stack:
            started_ones = [
                stack.enter_context(controller_process(log, connections=options.clients))
                for _ in range(options.replicas)
            ]
            urls = tuple(process.base_url for process in started_ones)
            pids = tuple(process.pid for process in started_ones)
            own = dataclasses.replace(options, replica_urls=urls, replica_pids=pids)
            phases = asyncio.run(_benchmark(urls[0], own))
        started = True
    else:
        if options.replicas > 1:
            raise BenchError("--replicas starts the controllers itself: give no --controller")
        urls, started = (controller.rstrip("/"),), False
        phases = asyncio.run(_benchmark(urls[0], options))
    return {
        "controller": urls[0],
        "controllers": list(urls),
        "started_controller": started,
        "clients": options.clients,
        "requests": options.requests,
        "list_size": options.list_size,
        "configs_per_nic": options.configs_per_nic,
        "nic_hosts": options.nic_hosts,
        "phases": {name: phase.summary() for name, phase in phases.items()},
    }


def format_report(report: dict[str, Any]) -> str:
    controllers = report["controllers"]
    lines = [
        ("controller " if len(controllers) == 1 else "controllers ")
        + ", ".join(controllers)
        + (" (started for this run)" if report["started_controller"] else "")
        + f"; {report['clients']} clients, {report['requests']} requests per phase, "
        + f"{report['list_size']} logicalNetworks added for the list phase",
        f"{'phase':<13} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'non-2xx':>8} {'cpu s/1k':>9} {'db s/1k':>8} "
        f"{'client s/1k':>11} {'cpu-bound/s':>11}",
    ]
    if "nic-child-add" in report["phases"]:
        lines[0] += (
            f"; nic-child-add: up to {report['configs_per_nic']} ipConfigurations on each of "
            f"{report['nic_hosts']} NICs"
        )
    for name, phase in report["phases"].items():
        lines.append(
            f"{name:<13} {phase['requests']:>8} {phase['requests_per_second']:>9.1f} "
            f"{phase['p50_ms']:>8.1f} {phase['p90_ms']:>8.1f} {phase['p99_ms']:>8.1f} "
            f"{phase['max_ms']:>8.1f} {phase['errors']:>8} "
            f"{_figure(phase['controller_cpu_seconds_per_1000'], 2):>9} "
            f"{_figure(phase['database_cpu_seconds_per_1000'], 2):>8} "
            f"{_figure(phase['client_cpu_seconds_per_1000'], 2):>11} "
            f"{_figure(phase['cpu_bound_requests_per_second'], 1):>11}"
        )
    lines.append(
        "cpu s/1k, db s/1k, client s/1k: CPU seconds per 1,000 requests of the controller, the "
        "database server (when on this machine) and this client; cpu-bound/s: the requests/s "
        "this machine's cores allow at those costs"
    )
    return "\n".join(lines)


def _figure(value: float | None, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"
