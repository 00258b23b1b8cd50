"""``sdnc bench convergence --scenario lb``: how fast a load balancer's DIP change and a failed
probe reach every host that balances to it.

Setup (not timed): ``agents`` servers in groups of ten; ``vips`` load balancers, each one
public VIP (allocated from a VIP pool in 198.19.0.0/16), one backend pool of ten DIPs, one TCP
probe and one rule probing it; the ten DIPs of a VIP are ipConfigurations on the ten hosts of
one group (VIP ``v`` to group ``v % groups``), in that group's virtual network (so a host
holds the mappings of its group only); one mux on the first server. Then ``agents`` simulated
agents (real protocol sessions, in-memory dataplane, in this process) connect and take their
snapshots.

Measured:

* ``dip_change``: PUT of one DIP's ipConfiguration without the pool, ``?wait=applied``: it
  answers when every affected host (the pool's DIP hosts and the mux) has acknowledged the
  new slot table; the DIP is put back (untimed) before the next change;
* ``probe_down_to_acked``: a simulated agent's probe of one of its DIPs starts failing; from
  its report until every host holding the rule has applied the slot table without that DIP
  and acknowledged it; the probe then answers again (untimed);
* ``bytes_per_host_per_dip_change``: bytes the affected hosts received during the DIP
  changes, per change and per affected host.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from controller import protocol
from controller.agent.session import AgentSession, Body
from controller.agent.simulator import AgentSpec, Fleet, MemoryDataplane
from controller.bench.calls import (
    agent_tokens,
    put,
    put_all,
    southbound_status,
    summary,
    timed_puts,
)
from controller.bench.common import BenchError, percentile, started_controller

PREFIX = "lb"
GROUP = 10  # hosts per group, and DIPs per VIP
VIP_NETWORK = "198.19.0.0/16"


@dataclass(frozen=True)
class Options:
    agents: int = 100
    vips: int = 100
    changes: int = 50
    concurrency: int = 8
    timeout: float = 30.0


@dataclass(frozen=True)
class Dip:
    vip: int
    host: int  # server index
    config: str  # ipConfiguration instanceId
    ip: str
    rule: str  # the lbRule object key


def _groups(options: Options) -> int:
    return max(1, options.agents // GROUP)


def _host_of(options: Options, vip: int, index: int) -> int:
    return (GROUP * (vip % _groups(options)) + index) % options.agents


def _lb(vip: int) -> dict[str, Any]:
    path = f"/loadBalancers/{PREFIX}-{vip}"
    vip_subnet = f"/logicalNetworks/{PREFIX}-vip/subnets/vip"
    return {
        "properties": {
            "frontendIPConfigurations": [
                {"resourceId": "fe", "properties": {"subnet": {"resourceRef": vip_subnet}}}
            ],
            "backendAddressPools": [{"resourceId": "be", "properties": {}}],
            "probes": [
                {
                    "resourceId": "p",
                    "properties": {"protocol": "Tcp", "port": 8080, "intervalInSeconds": 5},
                }
            ],
            "loadBalancingRules": [
                {
                    "resourceId": "r",
                    "properties": {
                        "protocol": "Tcp",
                        "frontendPort": 80,
                        "backendPort": 8080,
                        "frontendIPConfigurations": [
                            {"resourceRef": f"{path}/frontendIPConfigurations/fe"}
                        ],
                        "backendAddressPool": {"resourceRef": f"{path}/backendAddressPools/be"},
                        "probe": {"resourceRef": f"{path}/probes/p"},
                    },
                }
            ],
        }
    }


def _config(vip: int, options: Options, *, pooled: bool = True) -> dict[str, Any]:
    subnet = f"/virtualNetworks/{PREFIX}-{vip % _groups(options)}/subnets/s"
    pool = f"/loadBalancers/{PREFIX}-{vip}/backendAddressPools/be"
    return {
        "properties": {
            "subnet": {"resourceRef": subnet},
            "loadBalancerBackendAddressPools": [{"resourceRef": pool}] if pooled else [],
        }
    }


def _nic(host: int, options: Options) -> dict[str, Any]:
    vips = [
        v for v in range(options.vips) if any(_host_of(options, v, i) == host for i in range(GROUP))
    ]
    configs = [{"resourceId": f"v{v}", **_config(v, options)} for v in vips]
    return {
        "properties": {
            "server": {"resourceRef": f"/servers/{PREFIX}-{host}"},
            "ipConfigurations": configs,
        }
    }


async def _provision(
    client: httpx.AsyncClient, options: Options, log: Callable[[str], None]
) -> None:
    started = time.perf_counter()
    await put(
        client, f"/credentials/{PREFIX}", {"properties": {"type": "X509Certificate", "value": "00"}}
    )
    await put(
        client,
        f"/logicalNetworks/{PREFIX}-pa",
        {"properties": {"networkVirtualizationEnabled": True}},
    )
    mac_pool = {
        "properties": {"startMacAddress": "02-10-00-00-00-00", "endMacAddress": "02-10-00-FF-FF-FF"}
    }
    await put(client, f"/macPools/{PREFIX}", mac_pool)
    network = ipaddress.ip_network(VIP_NETWORK)
    vip_subnet = {
        "resourceId": "vip",
        "properties": {
            "addressPrefix": str(network),
            "isPublic": True,
            "ipPools": [
                {
                    "resourceId": "pool",
                    "properties": {
                        "startIpAddress": str(network.network_address + 10),
                        "endIpAddress": str(network.broadcast_address - 10),
                    },
                }
            ],
        },
    }
    await put(client, f"/logicalNetworks/{PREFIX}-vip", {"properties": {"subnets": [vip_subnet]}})
    pool = f"/logicalNetworks/{PREFIX}-vip/subnets/vip/ipPools/pool"
    await put(
        client,
        "/loadBalancerManager/config",
        {
            "properties": {
                "loadBalancerManagerIPAddress": "198.18.0.1",
                "vipIpPools": [{"resourceRef": pool}],
            }
        },
    )
    connection = {
        "managementAddresses": ["host.example"],
        "credential": {"resourceRef": f"/credentials/{PREFIX}"},
    }
    server = {"properties": {"connections": [connection]}}
    await put_all(
        client,
        options.concurrency,
        [(f"/servers/{PREFIX}-{i}", server) for i in range(options.agents)],
    )
    await put(
        client,
        f"/loadBalancerMuxes/{PREFIX}-mux",
        {"properties": {"server": {"resourceRef": f"/servers/{PREFIX}-0"}}},
    )
    networks = [
        (
            f"/virtualNetworks/{PREFIX}-{g}",
            {
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "logicalNetwork": {"resourceRef": f"/logicalNetworks/{PREFIX}-pa"},
                    "subnets": [
                        {"resourceId": "s", "properties": {"addressPrefix": "10.0.0.0/16"}}
                    ],
                }
            },
        )
        for g in range(_groups(options))
    ]
    await put_all(client, options.concurrency, networks)
    await put_all(
        client,
        options.concurrency,
        [(f"/loadBalancers/{PREFIX}-{v}", _lb(v)) for v in range(options.vips)],
    )
    await put_all(
        client,
        options.concurrency,
        [(f"/networkInterfaces/{PREFIX}-{h}", _nic(h, options)) for h in range(options.agents)],
    )
    log(
        f"provisioned {options.agents} servers and {options.vips} VIPs of {GROUP} DIPs "
        f"in {time.perf_counter() - started:.1f} s"
    )


async def _dips(client: httpx.AsyncClient, options: Options) -> list[Dip]:
    """The DIPs the timed changes use: one per change, of VIPs spread over the deployment."""
    chosen: list[Dip] = []
    for n in range(options.changes):
        vip = (n * 7919) % options.vips
        index = n % GROUP
        host = _host_of(options, vip, index)
        lb = (await client.get(f"/networking/v1/loadBalancers/{PREFIX}-{vip}")).json()
        rule = lb["properties"]["loadBalancingRules"][0]["instanceId"]
        path = f"/networking/v1/networkInterfaces/{PREFIX}-{host}/ipConfigurations/v{vip}"
        config = (await client.get(path)).json()
        chosen.append(
            Dip(
                vip,
                host,
                config["instanceId"],
                config["properties"]["privateIPAddress"],
                protocol.object_key(protocol.LB_RULE, rule),
            )
        )
    return chosen


def _fleet(base_url: str, tokens: dict[str, str], options: Options) -> Fleet:
    addresses = ipaddress.ip_network("198.18.0.0/16").hosts()
    next(addresses)  # the first is the load balancer manager's
    specs = [
        AgentSpec(f"{PREFIX}-{i}", tokens[f"{PREFIX}-{i}"], str(next(addresses)))
        for i in range(options.agents)
    ]
    return Fleet([base_url], specs)


def _holding(fleet: Fleet, key: str) -> list[AgentSession]:
    return [s for s in fleet.sessions if key in s.state.objects]


async def _dip_changes(
    client: httpx.AsyncClient, fleet: Fleet, dips: Sequence[Dip], options: Options
) -> tuple[list[float], int, float]:
    """Take each DIP out of its pool (timed), then put it back; latencies, timeouts, and
    bytes per affected host per change."""
    latencies: list[float] = []
    timeouts = 0
    sent = hosts = 0
    for dip in dips:
        path = f"/networkInterfaces/{PREFIX}-{dip.host}/ipConfigurations/v{dip.vip}"
        affected = _holding(fleet, dip.rule)
        before = [s.stats.bytes_received for s in affected]
        timed, missed = await timed_puts(
            client, [(path, _config(dip.vip, options, pooled=False))], options.timeout
        )
        latencies += timed
        timeouts += missed
        sent += sum(s.stats.bytes_received for s in affected) - sum(before)
        hosts += len(affected)
        await timed_puts(client, [(path, _config(dip.vip, options))], options.timeout)
    return latencies, timeouts, sent / max(1, hosts)


async def _until_applied(
    fleet: Fleet,
    dip: Dip,
    wanted: Callable[[Body], bool],
    act: Callable[[], Awaitable[None]],
    within: float,
) -> float | None:
    """Do ``act``, then wait until every host holding the DIP's rule has applied (and, in
    the same step, acknowledged) a body ``wanted`` accepts; the time from the start of
    ``act`` (None: not within ``within``)."""
    pending = {s.server for s in _holding(fleet, dip.rule)}
    done = asyncio.Event()

    def watcher(server: str) -> Callable[[dict[str, Body], Sequence[str]], None]:
        def seen(upserts: dict[str, Body], _deletes: Sequence[str]) -> None:
            body = upserts.get(dip.rule)
            if body is not None and wanted(body):
                pending.discard(server)
                if not pending:
                    done.set()

        return seen

    watched = [s for s in fleet.sessions if s.server in pending]
    for session in watched:
        _dataplane(session).on_apply = watcher(session.server)
    started = time.perf_counter()
    try:
        await act()
        async with asyncio.timeout(within):
            await done.wait()
        return (time.perf_counter() - started) * 1000
    except TimeoutError:
        return None
    finally:
        for session in watched:
            _dataplane(session).on_apply = None


def _dataplane(session: AgentSession) -> MemoryDataplane:
    dataplane = session.dataplane
    assert isinstance(dataplane, MemoryDataplane)
    return dataplane


def _without(ip: str) -> Callable[[Body], bool]:
    return lambda body: ip not in body["dips"]


def _with(ip: str) -> Callable[[Body], bool]:
    return lambda body: ip in body["dips"]


async def _probe_failures(
    fleet: Fleet, dips: Sequence[Dip], options: Options
) -> tuple[list[float], int]:
    """Fail the probe of each DIP on its host (timed until every host holding the rule has
    the table without it), then let it answer again."""
    latencies: list[float] = []
    timeouts = 0
    for dip in dips:
        server = f"{PREFIX}-{dip.host}"

        async def down(server: str = server, dip: Dip = dip) -> None:
            await fleet.fail_probe(server, dip.config)

        async def up(server: str = server, dip: Dip = dip) -> None:
            await fleet.fail_probe(server, dip.config, failing=False)

        elapsed = await _until_applied(fleet, dip, _without(dip.ip), down, options.timeout)
        if elapsed is None:
            timeouts += 1
        else:
            latencies.append(elapsed)
        await _until_applied(fleet, dip, _with(dip.ip), up, options.timeout)
    return latencies, timeouts


async def _measure(
    base_url: str, database_url: str, options: Options, log: Callable[[str], None]
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=options.timeout + 30) as client:
        await _provision(client, options, log)
        dips = await _dips(client, options)
        tokens = await agent_tokens(database_url, options.agents)
        fleet = _fleet(base_url, tokens, options)
        started = time.perf_counter()
        fleet.start()
        revision = (await southbound_status(client))["revision"]
        if not await fleet.applied(revision, 300):
            raise BenchError("the simulated agents did not all reach the current revision")
        took = time.perf_counter() - started
        log(f"{options.agents} agents hold their snapshots after {took:.1f} s")
        # Every agent reports its DIPs once it connects; let those settle.
        await asyncio.sleep(2)
        gc.collect()
        gc.freeze()
        try:
            before = await southbound_status(client)
            change_latencies, change_timeouts, per_host = await _dip_changes(
                client, fleet, dips, options
            )
            probe_latencies, probe_timeouts = await _probe_failures(fleet, dips, options)
            after = await southbound_status(client)
        finally:
            await fleet.stop()
    compile_ms = (after["compileSecondsTotal"] - before["compileSecondsTotal"]) * 1000
    changes = after["changesCompiled"] - before["changesCompiled"]
    probes = sorted(probe_latencies)
    return {
        "agents": options.agents,
        "vips": options.vips,
        "dips_per_vip": GROUP,
        "changes": options.changes,
        **summary("dip_change", change_latencies, change_timeouts),
        "probe_down_to_acked_p50_ms": percentile(probes, 50),
        "probe_down_to_acked_p99_ms": percentile(probes, 99),
        "probe_down_to_acked_max_ms": round(probes[-1], 2) if probes else 0.0,
        "probe_down_to_acked_timeouts": probe_timeouts,
        "bytes_per_host_per_dip_change": round(per_host, 1),
        "compile_ms_per_change": round(compile_ms / max(1, changes), 3),
        "objects": after["objects"],
    }


def run(
    controller: str | None, database_url: str, options: Options, *, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the scenario against ``controller`` (or one started on ``database_url``)."""
    if controller is None:
        with started_controller(log, connections=options.agents + 100) as base_url:
            return asyncio.run(_measure(base_url, database_url, options, log))
    return asyncio.run(_measure(controller.rstrip("/"), database_url, options, log))
