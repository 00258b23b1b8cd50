"""``sdnc bench big``: big collections and big aggregates, and what serving them does to the
requests of everyone else.

Set up first (untimed): ``nics`` networkInterfaces (a Static MAC and one Static ipConfiguration
each, all in one virtual subnet), one container-host NIC with ``configs`` ipConfigurations, one
accessControlList with ``rules`` aclRules, one internal loadBalancer with ``nat_rules``
inboundNatRules. They carry fixed names (``bench-big-...``), so with ``keep`` the next run
finds them and skips the set-up (it checks the last NIC, the host NIC, the ACL and the load
balancer). Then, timed:

* ``collection``: one GET of the networkInterfaces collection, alone: seconds to the first byte
  and to the last, the answer's size, and the controller's resident memory before, at its peak
  and after;
* ``big-nic``: GETs of the container-host NIC, one after the other;
* ``concurrent``: ``concurrency`` GETs of the collection at once;
* ``acl-child-add``: aclRules added one at a time at their own URI to the big ACL, each
  deleted after it;
* ``nic-child-add``: the same with ipConfigurations (Dynamic addresses) of the host NIC;
* ``lb-child-add``: the same with inboundNatRules of a load balancer of ``nat_rules``;
* ``lb-frontend-add``: the same with frontendIPConfigurations (a Dynamic VIP of the virtual
  subnet each) of that load balancer.

During the last six a prober sends a discovery GET every 20 ms on a connection of its own:
its latency is what any small request suffers meanwhile. Memory is sampled from
``/proc/<pid>/status`` every 5 ms, so it is known for a controller the benchmark starts or whose
pid it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from controller.bench.api import API, run_phase
from controller.bench.big_bodies import (
    ACL_URL,
    ADDED_NAT_PORTS,
    HOST_URL,
    LB_URL,
    MAX_NAT_RULES,
    MAX_NICS,
    NETWORK_URL,
    PROVIDER_BODY,
    PROVIDER_URL,
    SUBNET_REF,
    acl_body,
    host_body,
    lb_body,
    nat_rule,
    network_body,
    nic_body,
    nic_url,
    rule,
)
from controller.bench.common import (
    BenchError,
    Call,
    controller_process,
    process_cpu_seconds,
    tidy_database,
)
from controller.bench.lean_http import Answer, LeanConnection
from controller.bench.watch import MemorySampler, Prober, latency_summary, mib, rss_bytes

SET_UP_ATTEMPTS = 5


@dataclass(frozen=True)
class Options:
    nics: int = 20_000
    configs: int = 1_000
    rules: int = 10_000
    nat_rules: int = 1_000
    concurrency: int = 16
    big_nic_gets: int = 50
    rule_adds: int = 20
    clients: int = 32
    keep: bool = False
    controller_pid: int | None = None
    database_url: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.nics <= MAX_NICS:
            raise BenchError(f"nics must be between 1 and {MAX_NICS}")
        if not 1 <= self.configs <= 60_000 or not 2 <= self.rules <= 60_000:
            raise BenchError("configs must be 1-60000 and rules 2-60000")
        if not 1 <= self.nat_rules <= MAX_NAT_RULES:
            raise BenchError(f"nat-rules must be between 1 and {MAX_NAT_RULES}")


# -- set-up --------------------------------------------------------------------------------


async def _status(base_url: str, url: str) -> int:
    connection = LeanConnection(base_url, timeout=600.0)
    try:
        return await connection.request("GET", url)
    finally:
        await connection.close()


async def _statuses(base_url: str, calls: Sequence[Call], workers: int) -> list[int]:
    """The status of each of ``calls`` (0: no answer), sent by ``workers`` connections."""
    statuses = [0] * len(calls)
    queue = iter(range(len(calls)))

    async def worker() -> None:
        connection = LeanConnection(base_url, timeout=600.0)
        try:
            for index in queue:
                call = calls[index]
                with contextlib.suppress(OSError, TimeoutError):
                    statuses[index] = await connection.request(call.method, call.url, call.body)
        finally:
            await connection.close()

    await asyncio.gather(*(worker() for _ in range(min(workers, len(calls)))))
    return statuses


async def _put_all(base_url: str, what: str, calls: Sequence[Call], workers: int) -> None:
    """Send ``calls`` (idempotent PUTs); those answered 503 (the database was busier than its
    bound) or not at all are sent again, up to ``SET_UP_ATTEMPTS`` times in all."""
    pending = list(calls)
    for _ in range(SET_UP_ATTEMPTS):
        statuses = await _statuses(base_url, pending, workers)
        refused = {status for status in statuses if status >= 300 and status != 503}
        if refused:
            raise BenchError(f"setting up {what} failed: answered {sorted(refused)}")
        pending = [
            c for c, status in zip(pending, statuses, strict=True) if not 200 <= status < 300
        ]
        if not pending:
            return
    raise BenchError(f"setting up {what} failed: {len(pending)} PUTs unanswered or answered 503")


async def set_up(base_url: str, options: Options, log: Callable[[str], None]) -> None:
    if await _status(base_url, NETWORK_URL) != 200:
        await _put_all(
            base_url, "the provider network", [Call("PUT", PROVIDER_URL, PROVIDER_BODY)], 1
        )
        await _put_all(
            base_url, "the virtual network", [Call("PUT", NETWORK_URL, network_body())], 1
        )
    if await _status(base_url, nic_url(options.nics - 1)) != 200:
        log(f"creating {options.nics} networkInterfaces (untimed)")
        calls = [Call("PUT", nic_url(i), nic_body(i)) for i in range(options.nics)]
        await _put_all(base_url, "the networkInterfaces", calls, options.clients)
    if await _status(base_url, HOST_URL) != 200:
        log(f"creating a NIC with {options.configs} ipConfigurations (untimed)")
        await _put_all(
            base_url, "the host NIC", [Call("PUT", HOST_URL, host_body(options.configs))], 1
        )
    if await _status(base_url, ACL_URL) != 200:
        log(f"creating an accessControlList of {options.rules} rules (untimed)")
        await _put_all(base_url, "the big ACL", [Call("PUT", ACL_URL, acl_body(options.rules))], 1)
    if await _status(base_url, LB_URL) != 200:
        log(f"creating a loadBalancer of {options.nat_rules} inboundNatRules (untimed)")
        body = lb_body(options.nat_rules)
        await _put_all(base_url, "the big load balancer", [Call("PUT", LB_URL, body)], 1)


async def clean_up(base_url: str, options: Options) -> None:
    nics = [Call("DELETE", nic_url(i)) for i in range(options.nics)]
    await run_phase(
        base_url,
        "cleanup",
        [*nics, Call("DELETE", HOST_URL), Call("DELETE", ACL_URL), Call("DELETE", LB_URL)],
        options.clients,
    )
    await run_phase(base_url, "cleanup", [Call("DELETE", NETWORK_URL)], 1)
    await run_phase(base_url, "cleanup", [Call("DELETE", PROVIDER_URL)], 1)


# -- timed parts -------------------------------------------------------------------------------


async def _get(base_url: str, url: str, *, failing: bool = False) -> tuple[Answer, float, float]:
    """(answer, seconds to its first byte, seconds to its last) of one GET; unless
    ``failing`` is allowed, an answer other than 200 is an error."""
    connection = LeanConnection(base_url, timeout=600.0)
    try:
        started = time.perf_counter()
        answer = await connection.exchange("GET", url)
        finished = time.perf_counter()
    finally:
        await connection.close()
    if answer.status != 200 and not failing:
        raise BenchError(f"GET {url} answered {answer.status}")
    return answer, answer.headers_at - started, finished - started


async def collection(base_url: str, options: Options) -> dict[str, Any]:
    pid = options.controller_pid
    before = rss_bytes(pid)
    cpu = process_cpu_seconds(pid) if pid else None
    async with MemorySampler(pid).sampling() as memory:
        answer, first, last = await _get(base_url, f"{API}/networkInterfaces")
    spent = process_cpu_seconds(pid) if pid else None
    return {
        "seconds_to_first_byte": round(first, 3),
        "seconds": round(last, 3),
        "response_mib": mib(answer.body_bytes),
        "controller_cpu_seconds": _difference(cpu, spent),
        "rss_before_mib": mib(before),
        "rss_peak_mib": mib(memory.peak),
        "rss_growth_mib": None
        if before is None or memory.peak is None
        else mib(memory.peak - before),
        "rss_after_mib": mib(rss_bytes(pid)),
    }


def _difference(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 3)


async def big_nic(base_url: str, options: Options) -> dict[str, Any]:
    latencies = []
    size = 0
    for _ in range(options.big_nic_gets):
        answer, _first, last = await _get(base_url, HOST_URL)
        latencies.append(last * 1000.0)
        size = answer.body_bytes
    return latency_summary(latencies) | {"response_kib": round(size / 1024, 1)}


async def concurrent(base_url: str, options: Options) -> dict[str, Any]:
    pid = options.controller_pid
    before = rss_bytes(pid)
    cpu = process_cpu_seconds(pid) if pid else None
    async with MemorySampler(pid).sampling() as memory, Prober(base_url).probing() as prober:
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                _get(base_url, f"{API}/networkInterfaces", failing=True)
                for _ in range(options.concurrency)
            )
        )
        seconds = time.perf_counter() - started
    spent = process_cpu_seconds(pid) if pid else None
    await asyncio.sleep(1.0)
    return {
        "controller_cpu_seconds": _difference(cpu, spent),
        "gets": options.concurrency,
        "seconds": round(seconds, 3),
        "slowest_get_seconds": round(max(last for _a, _f, last in answers), 3),
        "statuses": dict(Counter(answer.status for answer, _f, _l in answers)),
        "rss_before_mib": mib(before),
        "rss_peak_mib": mib(memory.peak),
        "rss_after_mib": mib(rss_bytes(pid)),
        "discovery": prober.summary(),
    }


async def _child_adds(
    base_url: str, adds: int, child: Callable[[int, int], tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """``adds`` children PUT one at a time at their own URI (``child(run, i)``: the URI and
    the properties), each DELETEd after it: the PUTs' latency, the DELETEs', and a discovery
    GET's meanwhile."""
    puts, deletes = [], []
    statuses: Counter[int] = Counter()
    connection = LeanConnection(base_url, timeout=600.0)
    run = time.time_ns() % 1_000_000
    async with Prober(base_url).probing() as prober:
        try:
            for i in range(adds):
                url, properties = child(run, i)
                body = orjson.dumps({"properties": properties})
                started = time.perf_counter()
                statuses[await connection.request("PUT", url, body)] += 1
                puts.append((time.perf_counter() - started) * 1000.0)
                started = time.perf_counter()
                await connection.request("DELETE", url)
                deletes.append((time.perf_counter() - started) * 1000.0)
        finally:
            await connection.close()
    summary = latency_summary(puts) | {"statuses": dict(statuses)}
    return summary | {"delete": latency_summary(deletes), "discovery": prober.summary()}


async def acl_child_add(base_url: str, options: Options) -> dict[str, Any]:
    def child(run: int, i: int) -> tuple[str, dict[str, Any]]:
        added = rule(options.rules + i)
        # Priorities above the set-up's, distinct per run, so each add is a new rule.
        added["properties"]["priority"] = 40_000 + (run + i) % 25_000
        return f"{ACL_URL}/aclRules/add-{run}-{i}", added["properties"]

    return await _child_adds(base_url, options.rule_adds, child)


async def nic_child_add(base_url: str, options: Options) -> dict[str, Any]:
    """One more container endpoint on the host NIC: a Dynamic address from the subnet."""

    def child(run: int, i: int) -> tuple[str, dict[str, Any]]:
        properties = {"privateIPAllocationMethod": "Dynamic", "subnet": {"resourceRef": SUBNET_REF}}
        return f"{HOST_URL}/ipConfigurations/add-{run}-{i}", properties

    return await _child_adds(base_url, options.rule_adds, child)


async def lb_child_add(base_url: str, options: Options) -> dict[str, Any]:
    """One more inbound NAT rule on the big load balancer."""

    def child(run: int, i: int) -> tuple[str, dict[str, Any]]:
        port = ADDED_NAT_PORTS + (run + i) % (65_535 - ADDED_NAT_PORTS)
        return f"{LB_URL}/inboundNatRules/add-{run}-{i}", nat_rule(port)

    return await _child_adds(base_url, options.rule_adds, child)


async def lb_frontend_add(base_url: str, options: Options) -> dict[str, Any]:
    """One more VIP on the big load balancer: a Dynamic address of the virtual subnet."""

    def child(run: int, i: int) -> tuple[str, dict[str, Any]]:
        properties = {"subnet": {"resourceRef": SUBNET_REF}}
        return f"{LB_URL}/frontendIPConfigurations/add-{run}-{i}", properties

    return await _child_adds(base_url, options.rule_adds, child)


async def _benchmark(base_url: str, options: Options, log: Callable[[str], None]) -> dict[str, Any]:
    await set_up(base_url, options, log)
    report: dict[str, Any] = {}
    try:
        for name, part in (
            ("collection", collection),
            ("big_nic", big_nic),
            ("concurrent", concurrent),
            ("acl_child_add", acl_child_add),
            ("nic_child_add", nic_child_add),
            ("lb_child_add", lb_child_add),
            ("lb_frontend_add", lb_frontend_add),
        ):
            await tidy_database(options.database_url)
            log(f"timing {name}")
            report[name] = await part(base_url, options)
    finally:
        if not options.keep:
            await clean_up(base_url, options)
    return report


def run(controller: str | None, options: Options, *, log: Callable[[str], None]) -> dict[str, Any]:
    if controller is None:
        with controller_process(log, connections=options.clients + options.concurrency) as process:
            own = dataclasses.replace(options, controller_pid=process.pid)
            parts = asyncio.run(_benchmark(process.base_url, own, log))
        url = process.base_url
    else:
        url = controller.rstrip("/")
        parts = asyncio.run(_benchmark(url, options, log))
    return {
        "controller": url,
        "nics": options.nics,
        "configs": options.configs,
        "rules": options.rules,
        "nat_rules": options.nat_rules,
        **parts,
    }


def format_report(report: dict[str, Any]) -> str:
    c, b, m = (report[k] for k in ("collection", "big_nic", "concurrent"))
    return "\n".join(
        [
            f"controller {report['controller']}: {report['nics']} NICs, a NIC of "
            f"{report['configs']} ipConfigurations, an ACL of {report['rules']} rules, a "
            f"loadBalancer of {report['nat_rules']} inboundNatRules",
            f"collection      one GET: first byte {c['seconds_to_first_byte']} s, last "
            f"{c['seconds']} s, {c['response_mib']} MiB, controller CPU "
            f"{c['controller_cpu_seconds']} s; RSS {c['rss_before_mib']} -> peak "
            f"{c['rss_peak_mib']} (+{c['rss_growth_mib']}) -> {c['rss_after_mib']} MiB",
            f"big-nic         GET of {b['response_kib']} KiB: p50 {b['p50_ms']} ms, "
            f"p99 {b['p99_ms']} ms, max {b['max_ms']} ms ({b['count']} GETs)",
            f"concurrent      {m['gets']} GETs at once (statuses {m['statuses']}): all in "
            f"{m['seconds']} s, controller CPU {m['controller_cpu_seconds']} s; RSS "
            f"{m['rss_before_mib']} -> peak {m['rss_peak_mib']} -> {m['rss_after_mib']} MiB; "
            + _discovery_text(m["discovery"]),
            _child_text("acl-child-add  ", report["acl_child_add"]),
            _child_text("nic-child-add  ", report["nic_child_add"]),
            _child_text("lb-child-add   ", report["lb_child_add"]),
            _child_text("lb-frontend-add", report["lb_frontend_add"]),
        ]
    )


def _child_text(name: str, adds: dict[str, Any]) -> str:
    removed = adds["delete"]
    return (
        f"{name} PUT p50 {adds['p50_ms']} ms, max {adds['max_ms']} ms ({adds['count']} adds, "
        f"statuses {adds['statuses']}); DELETE p50 {removed['p50_ms']} ms, max "
        f"{removed['max_ms']} ms; " + _discovery_text(adds["discovery"])
    )


def _discovery_text(probe: dict[str, Any]) -> str:
    return (
        f"discovery p50 {probe['p50_ms']} ms, p99 {probe['p99_ms']} ms, max {probe['max_ms']} ms"
        f" ({probe['count']} probes, {probe['failures']} failed)"
    )
