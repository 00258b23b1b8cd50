"""``sdnc bench agent-lb``: the Linux agent's load balancing at scale, against the real kernel.

The host of ``sdnc bench agent`` (a network namespace with a provider address; a virtual network
with a few local endpoints) is given ``vips`` load-balancing rules of ``dips`` DIPs each -- an
internal VIP per rule, its DIPs spread over the virtual network, the controller's slot table of
1,021 slots -- as one delta, then DIP changes one at a time, as the session hands them to the
agent's data plane (``LinuxDataplane``). Timed (object received -> ``apply`` returned, the
kernel holding it):

* ``full_build_s``: the delta bringing every rule, from none (``full_build_elements``: the slot
  map elements that makes);
* ``dip_change_apply_*``: a DIP leaving one rule's pool (``samples`` rules in turn), which is
  about a tenth of that rule's slots changing DIP, and nothing else;
* ``dip_back_apply_*``: the same DIP coming back;
* ``listing_after_change_p50_ms``: the listing of the router's ruleset the agent takes after
  an in-place change, once the apply has returned;
* ``noop_resync_ms``: a full observe-and-repair of the host holding all of it;
* ``rss_mb``: the process's resident memory at the end.

After the timings the kernel is checked: the last rule changed no longer sends a slot to the
DIP that left (its slot map listed from the kernel), and the VIP map holds every VIP. Everything
the bench created is deleted at the end, also when it fails or is interrupted. Root only.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.agent.linux.dataplane import LinuxDataplane
from controller.agent.linux.lb_tables import LB_TABLE, VIPS_MAP, slots_map
from controller.agent.linux.plan import router_name
from controller.bench.agent import Fabric, Feed, measured_dataplane, on_a_host, rss_mb
from controller.bench.common import BenchError, percentile
from controller.policy import slots
from controller.policy.flow_hash import host_slots

Body = dict[str, Any]
# Reserved for documentation (RFC 5737): the VIPs; the DIPs are in the fabric's overlay.
VIPS = ipaddress.IPv4Network("203.0.113.0/24")
DIPS = ipaddress.IPv4Network("198.19.128.0/17")
LOCAL_ENDPOINTS = 10


@dataclass(frozen=True)
class Options:
    vips: int = 1000
    dips: int = 10
    samples: int = 20


def _vip(index: int) -> str:
    # Past the 256 addresses of VIPS, ports tell the VIPs apart: (address, port) is the frontend.
    return str(VIPS.network_address + index % 256)


def _rule(vnet: str, index: int, dips: list[str]) -> Body:
    ordered = slots.ordered(dips)
    return {
        "vips": [_vip(index)],
        "protocol": "Tcp",
        "frontendPort": 1000 + index // 256,
        "backendPort": 8080,
        "distribution": "Default",
        "dips": ordered,
        "slots": slots.encoded(ordered),
        "virtualNetworks": [vnet],
    }


def _pools(options: Options) -> list[list[str]]:
    addresses = DIPS.hosts()
    return [[str(next(addresses)) for _ in range(options.dips)] for _ in range(options.vips)]


def _nft_list(router: str, *what: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", router, "nft", "list", *what],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


async def _timings(
    options: Options, fabric: Fabric, dataplane: LinuxDataplane, log: Callable[[str], None]
) -> Body:
    feed = Feed(dataplane)
    await feed.snapshot(fabric.base(LOCAL_ENDPOINTS))
    pools = _pools(options)
    rules = {f"lbRule/bench-{i}": _rule(fabric.vnet, i, pool) for i, pool in enumerate(pools)}
    log(f"full build of {options.vips} VIPs x {options.dips} DIPs")
    built = await feed.delta(rules)
    elements = sum(host_slots(len(pool)) for pool in pools)
    leaving: list[float] = []
    back: list[float] = []
    changed = ("", "")
    step = max(1, options.vips // options.samples)
    log(f"{options.samples} DIP changes, each out and back")
    for sample in range(options.samples):
        index = sample * step % options.vips
        key, pool = f"lbRule/bench-{index}", pools[index]
        gone = pool[sample % len(pool)]
        rest = [dip for dip in pool if dip != gone]
        leaving.append(await feed.delta({key: _rule(fabric.vnet, index, rest)}) * 1000)
        if sample == options.samples - 1:
            changed = (key, gone)  # checked in the kernel below: left out
            break
        back.append(await feed.delta({key: _rule(fabric.vnet, index, pool)}) * 1000)
    await dataplane.settle()
    started = time.perf_counter()
    report = await asyncio.create_task(dataplane.reconcile("resync"))
    resync = (time.perf_counter() - started) * 1000
    gc.collect()
    if report.changes:
        raise BenchError(f"a resync of a host that is right made {report.changes} changes")
    router = router_name(fabric.server, fabric.vnet)
    listed = _nft_list(router, "map", "ip", LB_TABLE, slots_map(changed[0]))
    vips = _nft_list(router, "map", "ip", LB_TABLE, VIPS_MAP)
    held = re.findall(r"\b\d+ : (\d+\.\d+\.\d+\.\d+)", listed)
    correct = (
        len(held) == host_slots(options.dips)
        and changed[1] not in held
        and vips.count("jump lb_") == options.vips
    )
    leaving.sort()
    back.sort()
    return {
        "server": fabric.server,
        "vips": options.vips,
        "dips": options.dips,
        "samples": options.samples,
        "full_build_s": round(built, 2),
        "full_build_elements": elements,
        "dip_change_apply_p50_ms": percentile(leaving, 50),
        "dip_change_apply_p99_ms": percentile(leaving, 99),
        "dip_back_apply_p50_ms": percentile(back, 50),
        "dip_back_apply_p99_ms": percentile(back, 99),
        "listing_after_change_p50_ms": percentile(sorted(feed.listings), 50),
        "noop_resync_ms": round(resync, 1),
        "rss_mb": rss_mb(),
        "nft_transactions": dataplane.runner.transactions,
        "kernel_checked": correct,
    }


async def _measure(options: Options, fabric: Fabric, host: str, log: Callable[[str], None]) -> Body:
    async with measured_dataplane(fabric, host, flushing=False) as dataplane:
        return await _timings(options, fabric, dataplane, log)


def run(options: Options, log: Callable[[str], None] = lambda _: None) -> Body:
    return on_a_host(lambda fabric, host: _measure(options, fabric, host, log))
