"""``sdnc bench convergence``: how fast a northbound change reaches every host it affects.

Setup (not timed): ``agents`` servers, one ACL with ten rules, one virtual network per thousand
endpoints (a /16 subnet using the ACL), and ``endpoints`` endpoints: each server gets one
container-host NIC whose ipConfigurations (dynamic addresses, dynamic MAC) are the server's
share of the endpoints, in the virtual network ``server % networks`` -- so a virtual network
spans ``agents / networks`` hosts. Then ``agents`` simulated agents (real protocol sessions,
in-memory dataplane, in this process) connect once so their provider addresses are known.

Measured:

* ``cold_snapshot_s``: fresh agents (applied revision 0) for every server, from the first
  connection attempt until all of them hold the current revision;
* ACL change: PUT of one rule of the shared ACL (every host is affected) with
  ``?wait=applied``: the PUT answers when every affected agent has acknowledged;
* endpoint add: PUT of one more ipConfiguration on a NIC with ``?wait=applied`` (its host gets
  an endpoint, the other hosts of the virtual network a mapping);
* ``bytes_per_host_per_change``: bytes the agents received during the ACL changes, per change
  and per affected host; ``compile_ms_per_change`` from the replica's own counters;
* ``controller_rss_peak_mib``: the controller's highest resident memory (sampled every 5 ms)
  in each phase -- setup, cold snapshot, changes -- and at the end (a controller the
  benchmark starts, or ``--controller-pid``), and its CPU milliseconds per change of each kind.

The simulated agents share the machine with the controller; ``bench_process_cpu_s`` is what
they (and the benchmark's client) used.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from controller.agent.simulator import AgentSpec, Fleet
from controller.bench.calls import (
    agent_tokens,
    put,
    put_all,
    southbound_status,
    summary,
    timed_puts,
)
from controller.bench.common import BenchError, controller_process, process_cpu_seconds
from controller.bench.watch import MemorySampler, mib, rss_bytes

ENDPOINTS_PER_NETWORK = 1000
PREFIX = "bench"


@dataclass(frozen=True)
class Options:
    agents: int = 100
    endpoints: int = 10_000
    changes: int = 50
    concurrency: int = 8
    timeout: float = 30.0
    controller_pid: int | None = None  # of a running controller, to sample its memory


def _rule(port: int) -> dict[str, Any]:
    return {
        "properties": {
            "protocol": "TCP",
            "sourcePortRange": "*",
            "destinationPortRange": str(port),
            "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "*",
            "action": "Allow",
            "type": "Inbound",
            "priority": 100,
        }
    }


def _acl() -> dict[str, Any]:
    rules = [{"resourceId": f"r{i}", **_rule(8000 + i)} for i in range(10)]
    for index, rule in enumerate(rules):
        rule["properties"]["priority"] = 100 + index
    return {"properties": {"aclRules": rules}}


def _network(index: int) -> dict[str, Any]:
    return {
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "logicalNetwork": {"resourceRef": f"/logicalNetworks/{PREFIX}-pa"},
            "subnets": [
                {
                    "resourceId": "s",
                    "properties": {
                        "addressPrefix": "10.0.0.0/16",
                        "accessControlList": {"resourceRef": f"/accessControlLists/{PREFIX}"},
                    },
                }
            ],
        }
    }


def _nic(server: int, network: int, count: int) -> dict[str, Any]:
    subnet = {"resourceRef": f"/virtualNetworks/{PREFIX}-{network}/subnets/s"}
    return {
        "properties": {
            "server": {"resourceRef": f"/servers/{PREFIX}-{server}"},
            "ipConfigurations": [
                {"resourceId": f"c{i}", "properties": {"subnet": subnet}} for i in range(count)
            ],
        }
    }


async def _provision(
    client: httpx.AsyncClient, options: Options, log: Callable[[str], None]
) -> int:
    """Create the topology; returns the number of virtual networks."""
    networks = max(1, math.ceil(options.endpoints / ENDPOINTS_PER_NETWORK))
    await put(
        client, f"/credentials/{PREFIX}", {"properties": {"type": "X509Certificate", "value": "00"}}
    )
    await put(
        client,
        f"/logicalNetworks/{PREFIX}-pa",
        {"properties": {"networkVirtualizationEnabled": True}},
    )
    mac_pool = {
        "properties": {"startMacAddress": "02-00-00-00-00-00", "endMacAddress": "02-00-00-FF-FF-FF"}
    }
    await put(client, f"/macPools/{PREFIX}", mac_pool)
    await put(client, f"/accessControlLists/{PREFIX}", _acl())
    connection = {
        "managementAddresses": ["host.example"],
        "credential": {"resourceRef": f"/credentials/{PREFIX}"},
    }
    started = time.perf_counter()
    server = {"properties": {"connections": [connection]}}
    await put_all(
        client,
        options.concurrency,
        [(f"/servers/{PREFIX}-{i}", server) for i in range(options.agents)],
    )
    await put_all(
        client,
        options.concurrency,
        [(f"/virtualNetworks/{PREFIX}-{v}", _network(v)) for v in range(networks)],
    )
    share, extra = divmod(options.endpoints, options.agents)
    await put_all(
        client,
        options.concurrency,
        [
            (f"/networkInterfaces/{PREFIX}-{i}", _nic(i, i % networks, share + (i < extra)))
            for i in range(options.agents)
        ],
    )
    log(
        f"provisioned {options.agents} servers, {networks} virtual networks and "
        f"{options.endpoints} endpoints in {time.perf_counter() - started:.1f} s"
    )
    return networks


def _fleet(base_url: str, tokens: dict[str, str], options: Options) -> Fleet:
    addresses = ipaddress.ip_network("10.250.0.0/16").hosts()
    specs = [
        AgentSpec(f"{PREFIX}-{i}", tokens[f"{PREFIX}-{i}"], str(next(addresses)))
        for i in range(options.agents)
    ]
    return Fleet([base_url], specs)


async def _measure(
    base_url: str,
    database_url: str,
    options: Options,
    memory: MemorySampler,
    log: Callable[[str], None],
) -> dict[str, Any]:
    async with memory.sampling():
        report, peaks = await _phases(base_url, database_url, options, memory, log)
    report["controller_rss_peak_mib"] = {
        "setup": mib(peaks[0]),
        "cold_snapshot": mib(peaks[1]),
        "changes": mib(memory.peak),
    }
    report["controller_rss_end_mib"] = mib(rss_bytes(memory.pid))
    return report


async def _phases(
    base_url: str,
    database_url: str,
    options: Options,
    memory: MemorySampler,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], list[int | None]]:
    """The report, and the controller's peak memory during the setup and the cold snapshot."""
    async with httpx.AsyncClient(base_url=base_url, timeout=options.timeout + 30) as client:
        networks = await _provision(client, options, log)
        tokens = await agent_tokens(database_url, options.agents)
        warm = _fleet(base_url, tokens, options)
        warm.start()
        if not await warm.connected(120):
            raise BenchError("the simulated agents did not all connect")
        revision = (await southbound_status(client))["revision"]
        await warm.applied(revision, 120)
        await warm.stop()

        peaks = [memory.restart()]
        revision = (await southbound_status(client))["revision"]
        cold = _fleet(base_url, tokens, options)
        started = time.perf_counter()
        cold.start()
        if not await cold.applied(revision, 300):
            raise BenchError("the fresh agents did not all reach the current revision")
        cold_snapshot = time.perf_counter() - started
        # A thousand agents' states are long-lived: keep the collector from walking them in
        # the middle of a timed change (the controller does the same with its model).
        gc.collect()
        gc.freeze()
        log(f"cold snapshot of {options.agents} agents: {cold_snapshot:.2f} s")
        peaks.append(memory.restart())
        try:
            report = await _changes(client, cold, options, networks, memory.pid)
            return report | {"cold_snapshot_s": round(cold_snapshot, 3)}, peaks
        finally:
            await cold.stop()


async def _changes(
    client: httpx.AsyncClient, fleet: Fleet, options: Options, networks: int, pid: int | None
) -> dict[str, Any]:
    before = await southbound_status(client)
    cpu = [_cpu_seconds(pid)]
    received = sum(s.stats.bytes_received for s in fleet.sessions)
    acl_changes = [
        (f"/accessControlLists/{PREFIX}/aclRules/r0", {**_rule(9000 + n)})
        for n in range(options.changes)
    ]
    for _, body in acl_changes:
        body["properties"]["priority"] = 100
    acl_latencies, acl_timeouts = await timed_puts(client, acl_changes, options.timeout)
    acl_bytes = sum(s.stats.bytes_received for s in fleet.sessions) - received
    cpu.append(_cpu_seconds(pid))
    middle = await southbound_status(client)
    adds = [_endpoint_add(n, options.agents, networks) for n in range(options.changes)]
    add_latencies, add_timeouts = await timed_puts(client, adds, options.timeout)
    cpu.append(_cpu_seconds(pid))
    after = await southbound_status(client)
    acl_compile = (middle["compileSecondsTotal"] - before["compileSecondsTotal"]) * 1000
    add_compile = (after["compileSecondsTotal"] - middle["compileSecondsTotal"]) * 1000
    return {
        "agents": options.agents,
        "endpoints": options.endpoints,
        "virtual_networks": networks,
        "changes": options.changes,
        **summary("acl_change", acl_latencies, acl_timeouts),
        **summary("endpoint_add", add_latencies, add_timeouts),
        "bytes_per_host_per_change": round(acl_bytes / (options.changes * options.agents), 1),
        "acl_compile_ms_per_change": round(acl_compile / max(1, options.changes), 3),
        "endpoint_add_compile_ms_per_change": round(add_compile / max(1, options.changes), 3),
        "acl_controller_cpu_ms_per_change": _per_change(cpu[0], cpu[1], options.changes),
        "endpoint_add_controller_cpu_ms_per_change": _per_change(cpu[1], cpu[2], options.changes),
        "objects": after["objects"],
    }


def _cpu_seconds(pid: int | None) -> float | None:
    return None if pid is None else process_cpu_seconds(pid)


def _per_change(before: float | None, after: float | None, changes: int) -> float | None:
    """The controller's CPU milliseconds per change (its whole process: the writes, the
    compiler, the frames to every agent)."""
    if before is None or after is None:
        return None
    return round((after - before) * 1000.0 / max(1, changes), 2)


def _endpoint_add(n: int, agents: int, networks: int) -> tuple[str, dict[str, Any]]:
    server = n % agents
    subnet = f"/virtualNetworks/{PREFIX}-{server % networks}/subnets/s"
    path = f"/networkInterfaces/{PREFIX}-{server}/ipConfigurations/add{n}"
    return path, {"properties": {"subnet": {"resourceRef": subnet}}}


def run(
    controller: str | None, database_url: str, options: Options, *, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the benchmark against ``controller`` (or one started on ``database_url``)."""
    started_cpu = resource.getrusage(resource.RUSAGE_SELF)
    if controller is None:
        # The agents' channels, and the HTTP client's pool (httpx's default of 100).
        with controller_process(log, connections=options.agents + 100) as started:
            sampler = MemorySampler(started.pid)
            report = asyncio.run(_measure(started.base_url, database_url, options, sampler, log))
    else:
        sampler = MemorySampler(options.controller_pid)
        report = asyncio.run(_measure(controller.rstrip("/"), database_url, options, sampler, log))
    used = resource.getrusage(resource.RUSAGE_SELF)
    report["bench_process_cpu_s"] = round(
        used.ru_utime + used.ru_stime - started_cpu.ru_utime - started_cpu.ru_stime, 1
    )
    return report
