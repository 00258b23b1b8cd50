"""``sdnc bench agent``: the reference Linux agent at container density, against the real kernel.

One host is built in a network namespace of its own (a provider address on a veth device, in a
reserved range); the agent's real data-plane code (``LinuxDataplane``) programs it. A
simulated controller feed hands the agent what its session would: a snapshot of one virtual
network with ``endpoints`` local endpoints behind one ACL and a few remote endpoints, then
deltas. Timed, as the session sees them (object received -> ``apply`` returned, the kernel
holding it):

* ``cold_build_s``: the snapshot on an empty host;
* ``endpoint_add_*``: a delta upserting one new endpoint (NIC, namespace, ACL'd);
* ``acl_change_*``: a delta changing one rule of the ACL every endpoint uses;
* ``endpoint_add_during_resync_max_ms``: the slowest of a few endpoint adds, each made while
  a full observe-and-repair was reading the host (it must not wait for the whole read);
* ``noop_resync_ms``: the periodic full observe-and-repair on a host that is right;
  ``resync_hold_ms``: the longest it held up applies (reading the host and computing what
  differs do not; only making the changes does);
* ``listing_after_change_p50_ms``: the ruleset listing the agent takes after an in-place
  change, once the apply has returned (the changes are fed one at a time, each after the
  previous one's listing: a change arriving during it waits for it);
* ``rss_mb``: the process's resident memory at the end;
* ``commands``, ``netlink_requests``, ``nft_transactions``: the work of the whole run --
  processes started, netlink requests made, nftables scripts run in-process.

After the timings the kernel is checked (every added endpoint's namespace holds its address,
the ACL's chain holds the last rule); the report says whether it did. Everything the bench
created -- the host namespace, the router and NIC namespaces -- is deleted at the end, also when
it fails or is interrupted. Root only.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import os
import resource
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.agent.linux.dataplane import LinuxDataplane, collect_fully_between_resyncs
from controller.agent.linux.plan import router_name
from controller.agent.linux.runner import Runner
from controller.agent.linux.state import StateDir
from controller.bench.common import BenchError, percentile

Body = dict[str, Any]
# Reserved for benchmarking (RFC 2544): the provider address, and the overlay prefix.
UNDERLAY = ipaddress.IPv4Interface("198.18.0.1/24")
OVERLAY = ipaddress.IPv4Network("198.19.0.0/16")
REMOTE_UNDERLAY = "198.18.0.2"
VSID = 5001
REMOTES = 10
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Options:
    endpoints: int = 250
    samples: int = 20  # timed changes of each kind
    resyncs: int = 3


RESYNC_UNDER_WAY_S = 0.02


class Feed:
    """What the agent's session would hand the dataplane: the desired objects after each
    change, and the change itself."""

    def __init__(self, dataplane: LinuxDataplane) -> None:
        self.dataplane = dataplane
        self.objects: dict[str, Body] = {}
        self.listings: list[float] = []  # ms: ruleset listings after in-place changes

    async def snapshot(self, objects: dict[str, Body]) -> float:
        deletes = [key for key in self.objects if key not in objects]
        self.objects = dict(objects)
        return await self._timed(dict(objects), deletes)

    async def delta(self, upserts: dict[str, Body], deletes: list[str] | None = None) -> float:
        # Changes one at a time, as users make them: the previous change's ruleset listing
        # (taken after its apply returned) is done, and timed on its own.
        listed = await self.dataplane.settle()
        if listed:
            self.listings.append(listed * 1000)
        for key in deletes or ():
            self.objects.pop(key, None)
        self.objects.update(upserts)
        return await self._timed(upserts, list(deletes or ()))

    async def _timed(self, upserts: dict[str, Body], deletes: list[str]) -> float:
        started = time.perf_counter()
        failures = await self.dataplane.apply(self.objects, upserts, deletes)
        seconds = time.perf_counter() - started
        if failures:
            raise BenchError(f"the agent could not apply: {failures[:3]}")
        return seconds


class Fabric:
    """The simulated controller's objects for one host with one virtual network."""

    def __init__(self) -> None:
        self.server = str(uuid.uuid4())
        self.vnet = str(uuid.uuid4())
        self.acl = str(uuid.uuid4())
        self.nics: list[str] = []
        self.addresses = OVERLAY.hosts()
        self.gateway = str(next(self.addresses))
        self.count = 0

    def base(self, endpoints: int) -> dict[str, Body]:
        objects: dict[str, Body] = {
            f"host/{self.server}": {"providerAddress": str(UNDERLAY.ip)},
            "network/bench-subnet": {
                "vsid": VSID,
                "virtualNetwork": self.vnet,
                "prefix": str(OVERLAY),
                "gateway": self.gateway,
            },
            f"acl/{self.acl}": {
                "inboundDefaultAction": "Deny",
                "outboundDefaultAction": "Permit",
            },
            **self.rules(0),
        }
        for _ in range(endpoints):
            objects.update(self.endpoint())
        for index in range(REMOTES):
            address = str(next(self.addresses))
            objects[f"mapping/bench-remote-{index}"] = {
                "vsid": VSID,
                "virtualNetwork": self.vnet,
                "ip": address,
                "mac": f"06:00:00:00:{index >> 8:02x}:{index & 255:02x}",
                "providerAddress": REMOTE_UNDERLAY,
            }
        return objects

    def rules(self, generation: int) -> dict[str, Body]:
        """The ACL's rules; ``generation`` moves one rule's port (the timed ACL change)."""
        common = {"acl": self.acl, "sourcePortRange": "*", "sourceAddressPrefix": "*"}
        return {
            "aclRule/bench-web": {
                **common,
                "type": "Inbound",
                "action": "Allow",
                "priority": 100,
                "protocol": "TCP",
                "destinationAddressPrefix": "*",
                "destinationPortRange": str(8000 + generation),
            },
            "aclRule/bench-ping": {
                **common,
                "type": "Inbound",
                "action": "Allow",
                "priority": 110,
                "protocol": "ICMPv4",
                "destinationAddressPrefix": str(OVERLAY),
                "destinationPortRange": "*",
            },
            "aclRule/bench-block": {
                **common,
                "type": "Outbound",
                "action": "Deny",
                "priority": 100,
                "protocol": "UDP",
                "destinationAddressPrefix": "192.0.2.0/24",
                "destinationPortRange": "53",
            },
        }

    def endpoint(self) -> dict[str, Body]:
        nic = str(uuid.uuid4())
        self.nics.append(nic)
        self.count += 1
        mac = f"02:00:00:{self.count >> 16 & 255:02x}:{self.count >> 8 & 255:02x}:" + (
            f"{self.count & 255:02x}"
        )
        body = {
            "nic": nic,
            "mac": mac,
            "ip": str(next(self.addresses)),
            "prefixLength": OVERLAY.prefixlen,
            "gateway": self.gateway,
            "vsid": VSID,
            "subnet": "bench-subnet",
            "virtualNetwork": self.vnet,
            "acls": [self.acl],
            "qos": {"inboundMaximumMbps": None, "outboundMaximumMbps": None},
        }
        return {f"endpoint/{nic}": body}


def _ip(*argv: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise BenchError(f"ip {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def host_namespace(fabric: Fabric) -> Iterator[str]:
    """The host, and afterwards the removal of every namespace the bench or its agent made."""
    if os.geteuid() != 0:
        raise BenchError("the agent benchmark builds network namespaces: run it as root")
    name = f"sdncb-h-{fabric.server[:8]}"
    try:
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        # A veth pair stands for the host's uplink (not every kernel has dummy devices).
        _ip("-n", name, "link", "add", "pa0", "type", "veth", "peer", "name", "pa0peer")
        _ip("-n", name, "link", "set", "pa0peer", "up")
        _ip("-n", name, "addr", "add", str(UNDERLAY), "dev", "pa0")
        _ip("-n", name, "link", "set", "pa0", "up")
        yield name
    finally:
        present = set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()
        router = router_name(fabric.server, "")
        doomed = [n for n in present if n == name or n.startswith(router) or n in fabric.nics]
        for namespace in doomed:
            _ip("netns", "del", namespace, check=False)


def _holds_endpoint(nic: str, address: str) -> bool:
    try:
        listed = json.loads(_ip("-n", nic, "-j", "addr", "show", "dev", "eth0"))
    except BenchError:
        return False
    return any(a.get("local") == address for link in listed for a in link.get("addr_info", ()))


def _acl_holds(router: str, port: int) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", router, "nft", "list", "table", "inet", "sdnc"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"dport {port} " in done.stdout


def _exit(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@asynccontextmanager
async def measured_dataplane(
    fabric: Fabric, host: str, *, flushing: bool = True
) -> AsyncIterator[LinuxDataplane]:
    """The agent's data plane of ``host`` as the daemon runs it: a state directory recording
    what it applied (written twice a second in the background, when ``flushing``), Python's
    full collections left to the resyncs; closed afterwards."""
    with tempfile.TemporaryDirectory(prefix="sdnc-bench-agent-") as state:
        dataplane = LinuxDataplane(
            fabric.server, runner=Runner(host_netns=host), state_dir=StateDir(Path(state))
        )
        flush = asyncio.create_task(_flush(dataplane)) if flushing else None
        thresholds = gc.get_threshold()
        collect_fully_between_resyncs()  # as the daemon does
        try:
            yield dataplane
        finally:
            gc.set_threshold(*thresholds)
            if flush is not None:
                flush.cancel()
            await dataplane.close()


async def _measure(options: Options, fabric: Fabric, host: str, log: Callable[[str], None]) -> Body:
    async with measured_dataplane(fabric, host) as dataplane:
        return await _timings(options, fabric, dataplane, log)


async def _flush(dataplane: LinuxDataplane) -> None:
    """What the daemon does in the background: write the applied objects twice a second."""
    while True:
        await asyncio.sleep(0.5)
        await dataplane.flush()


async def _timings(
    options: Options, fabric: Fabric, dataplane: LinuxDataplane, log: Callable[[str], None]
) -> Body:
    feed = Feed(dataplane)
    log(f"cold build of {options.endpoints} endpoints")
    cold = await feed.snapshot(fabric.base(options.endpoints))
    resyncs: list[float] = []
    held = 0.0
    for _ in range(options.resyncs):
        started = time.perf_counter()
        # A task of its own, as the daemon's resync is: what the read leaves (a task per
        # namespace and its view) is freed when that task's last step ends, not in the step
        # that goes on to the next change (15 ms at 1,000 endpoints, charged to it otherwise).
        report = await asyncio.create_task(dataplane.reconcile("resync"))
        resyncs.append((time.perf_counter() - started) * 1000)
        held = max(held, dataplane.held * 1000)
        gc.collect()  # what the daemon's resync does after each reconcile
        if report.changes:
            raise BenchError(f"a resync of a host that is right made {report.changes} changes")
    log(f"{options.samples} endpoint adds")
    adds: list[float] = []
    added: list[tuple[str, str]] = []
    for _ in range(options.samples):
        upsert = fabric.endpoint()
        adds.append(await feed.delta(upsert) * 1000)
        body = next(iter(upsert.values()))
        added.append((str(body["nic"]), str(body["ip"])))
    log(f"{options.resyncs} endpoint adds during a resync")
    during: list[float] = []
    for _ in range(options.resyncs):
        resync = asyncio.create_task(dataplane.reconcile("resync"))
        await asyncio.sleep(RESYNC_UNDER_WAY_S)  # reading the host by now
        upsert = fabric.endpoint()
        during.append(await feed.delta(upsert) * 1000)
        body = next(iter(upsert.values()))
        added.append((str(body["nic"]), str(body["ip"])))
        await resync
        gc.collect()
    log(f"{options.samples} ACL changes")
    changes = [
        await feed.delta({"aclRule/bench-web": fabric.rules(generation)["aclRule/bench-web"]})
        * 1000
        for generation in range(1, options.samples + 1)
    ]
    router = router_name(fabric.server, fabric.vnet)
    correct = all(_holds_endpoint(nic, ip) for nic, ip in added) and _acl_holds(
        router, 8000 + options.samples
    )
    adds.sort()
    changes.sort()
    resyncs.sort()
    return {
        "server": fabric.server,
        "endpoints": options.endpoints,
        "samples": options.samples,
        "endpoint_add_p50_ms": percentile(adds, 50),
        "endpoint_add_p99_ms": percentile(adds, 99),
        "acl_change_p50_ms": percentile(changes, 50),
        "acl_change_p99_ms": percentile(changes, 99),
        "endpoint_add_during_resync_max_ms": round(max(during), 2),
        "noop_resync_ms": percentile(resyncs, 50),
        "resync_hold_ms": round(held, 2),
        "listing_after_change_p50_ms": percentile(sorted(feed.listings), 50),
        "cold_build_s": round(cold, 2),
        "rss_mb": rss_mb(),
        "commands": dataplane.runner.commands,
        "netlink_requests": dataplane.runner.requests,
        "nft_transactions": dataplane.runner.transactions,
        "kernel_checked": correct,
    }


def on_a_host(measure: Callable[[Fabric, str], Coroutine[Any, Any, Body]]) -> Body:
    """``measure(fabric, host namespace)`` on a host built for it, deleted afterwards (also
    when stopped: SIGTERM unwinds through the cleanup); a report whose ``kernel_checked`` is
    false is an error."""
    fabric = Fabric()
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        with host_namespace(fabric) as host:
            report = asyncio.run(measure(fabric, host))
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not report["kernel_checked"]:
        raise BenchError(f"the kernel does not hold what the agent acknowledged: {report}")
    return report


def run(options: Options, log: Callable[[str], None] = lambda _: None) -> Body:
    return on_a_host(lambda fabric, host: _measure(options, fabric, host, log))
