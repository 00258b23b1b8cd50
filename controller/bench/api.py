"""``sdnc bench api``: throughput and latency of the northbound API under concurrent clients.

Phases, each of ``requests`` requests spread over ``clients`` concurrent workers on one asyncio
event loop (one httpx connection per worker):

* ``create``: PUT of distinct accessControlLists, each with 3 embedded aclRules;
* ``get``: GET of one accessControlList, picked at random among those created;
* ``list``: GET of the logicalNetworks collection, after ``list_size`` logical networks (each with
  a subnet and an ipPool) were put in place (not timed);
* ``update``: PUT replacing existing accessControlLists (new rules).

Latency is measured per request with ``time.perf_counter`` around the whole HTTP exchange. The
resources carry a per-run prefix and are deleted afterwards unless ``keep`` is set. Without a
controller URL the benchmark starts ``python -m controller serve`` on a free port with the
current environment (so on the configured database, migrations included) and stops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

API = "/networking/v1"
START_TIMEOUT = 60.0
RULES_PER_ACL = 3
JSON_HEADERS = {"Content-Type": "application/json"}


class BenchError(RuntimeError):
    """The benchmark could not run (controller unreachable, setup refused)."""


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    body: bytes | None = None


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        """Responses that were not 2xx; transport failures count as status 0."""
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        count = len(ordered)
        return {
            "requests": count,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(count / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": _percentile(ordered, 50),
            "p90_ms": _percentile(ordered, 90),
            "p99_ms": _percentile(ordered, 99),
            "max_ms": round(ordered[-1], 2) if ordered else 0.0,
            "errors": self.errors,
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
        }


def _percentile(ordered: Sequence[float], percent: int) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return 0.0
    rank = max(1, -(-percent * len(ordered) // 100))
    return round(ordered[rank - 1], 2)


# -- request bodies --------------------------------------------------------------------------


def _acl_body(serial: int) -> bytes:
    rules = [
        {
            "resourceId": f"rule-{j}",
            "properties": {
                "protocol": "TCP",
                "sourcePortRange": "*",
                "destinationPortRange": str(1000 + (serial + j) % 60000),
                "sourceAddressPrefix": "*",
                "destinationAddressPrefix": f"10.{serial % 256}.{j}.0/24",
                "action": "Allow" if j % 2 == 0 else "Deny",
                "priority": 100 + j * 10 + serial % 10,
                "type": "Inbound" if j < 2 else "Outbound",
                "description": f"bench rule {j} of {serial}",
            },
        }
        for j in range(RULES_PER_ACL)
    ]
    return orjson.dumps({"properties": {"inboundDefaultAction": "Deny", "aclRules": rules}})


def _logical_network_body(index: int) -> bytes:
    third, second = index % 256, index // 256 % 256
    prefix = f"10.{second}.{third}"
    subnet = {
        "resourceId": "subnet-1",
        "properties": {
            "addressPrefix": f"{prefix}.0/24",
            "vlanID": index % 4000 + 1,
            "defaultGateways": [f"{prefix}.1"],
            "ipPools": [
                {
                    "resourceId": "pool-1",
                    "properties": {
                        "startIpAddress": f"{prefix}.10",
                        "endIpAddress": f"{prefix}.200",
                    },
                }
            ],
        },
    }
    return orjson.dumps({"properties": {"subnets": [subnet]}})


# -- running phases --------------------------------------------------------------------------


async def run_phase(
    client: httpx.AsyncClient, name: str, calls: Sequence[Call], workers: int
) -> Phase:
    """Send ``calls`` through ``workers`` concurrent workers; each worker takes the next call
    when its previous one has been answered."""
    phase = Phase(name, latencies_ms=[0.0] * len(calls))
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(calls):
            index = position
            position += 1
            call = calls[index]
            headers = JSON_HEADERS if call.body is not None else None
            started = time.perf_counter()
            try:
                response = await client.request(
                    call.method, call.url, content=call.body, headers=headers
                )
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            phase.latencies_ms[index] = (time.perf_counter() - started) * 1000.0
            phase.statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(workers, len(calls))))))
    phase.seconds = time.perf_counter() - started
    return phase


@dataclass(frozen=True)
class Options:
    clients: int = 32
    requests: int = 5000
    list_size: int = 50
    keep: bool = False
    seed: int = 1


async def _benchmark(base_url: str, options: Options) -> dict[str, Phase]:
    run = uuid.uuid4().hex[:8]
    rng = random.Random(options.seed)
    acls = [f"{API}/accessControlLists/bench-{run}-acl-{i}" for i in range(options.requests)]
    networks = [f"{API}/logicalNetworks/bench-{run}-ln-{i}" for i in range(options.list_size)]
    limits = httpx.Limits(
        max_connections=options.clients, max_keepalive_connections=options.clients
    )
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120.0) as client:
        await _check_reachable(client)
        phases: dict[str, Phase] = {}
        try:
            create = [Call("PUT", url, _acl_body(i)) for i, url in enumerate(acls)]
            phases["create"] = await run_phase(client, "create", create, options.clients)
            created = acls if phases["create"].errors == 0 else await _existing(client, acls)
            if not created:
                raise BenchError("no accessControlList could be created; see phase 'create'")

            reads = [Call("GET", rng.choice(created)) for _ in range(options.requests)]
            phases["get"] = await run_phase(client, "get", reads, options.clients)

            setup = [Call("PUT", url, _logical_network_body(i)) for i, url in enumerate(networks)]
            prepared = await run_phase(client, "setup", setup, options.clients)
            if prepared.errors:
                raise BenchError(f"setting up logicalNetworks failed: {dict(prepared.statuses)}")
            lists = [Call("GET", f"{API}/logicalNetworks")] * options.requests
            phases["list"] = await run_phase(client, "list", lists, options.clients)

            updates = [
                Call("PUT", created[i % len(created)], _acl_body(options.requests + i))
                for i in range(options.requests)
            ]
            phases["update"] = await run_phase(client, "update", updates, options.clients)
        finally:
            if not options.keep:
                removals = [Call("DELETE", url) for url in [*acls, *networks]]
                await run_phase(client, "cleanup", removals, options.clients)
    return phases


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


# -- a controller of its own -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started_controller(log: Callable[[str], None]) -> Iterator[str]:
    """``python -m controller serve`` on a free local port, with this process's environment;
    yields its base URL and stops it afterwards."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "controller", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    with tempfile.TemporaryDirectory(prefix="sdnc-bench-") as folder:
        log_path = Path(folder) / "controller.log"
        with log_path.open("wb") as output:
            process = subprocess.Popen(
                command,
                env=dict(os.environ),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            log(f"started a controller at {base_url} (pid {process.pid})")
            _wait_until_up(process, base_url, log_path)
            yield base_url
        finally:
            _stop(process)


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise BenchError(f"the controller exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base_url}/networking/discovery", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-4000:]
    raise BenchError(f"the controller did not answer within {START_TIMEOUT:.0f}s:\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- entry point and output ------------------------------------------------------------------


def run(controller: str | None, options: Options, *, log: Callable[[str], None]) -> dict[str, Any]:
    """Run every phase against ``controller`` (or a controller started for the run); returns
    the report that ``--json`` prints."""
    if controller is None:
        with started_controller(log) as base_url:
            phases = asyncio.run(_benchmark(base_url, options))
        url, started = base_url, True
    else:
        url, started = controller.rstrip("/"), False
        phases = asyncio.run(_benchmark(url, options))
    return {
        "controller": url,
        "started_controller": started,
        "clients": options.clients,
        "requests": options.requests,
        "list_size": options.list_size,
        "phases": {name: phase.summary() for name, phase in phases.items()},
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"controller {report['controller']}"
        + (" (started for this run)" if report["started_controller"] else "")
        + f"; {report['clients']} clients, {report['requests']} requests per phase, "
        + f"{report['list_size']} logicalNetworks added for the list phase",
        f"{'phase':<8} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'non-2xx':>8}",
    ]
    for name, phase in report["phases"].items():
        lines.append(
            f"{name:<8} {phase['requests']:>8} {phase['requests_per_second']:>9.1f} "
            f"{phase['p50_ms']:>8.1f} {phase['p90_ms']:>8.1f} {phase['p99_ms']:>8.1f} "
            f"{phase['max_ms']:>8.1f} {phase['errors']:>8}"
        )
    return "\n".join(lines)
