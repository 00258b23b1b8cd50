"""What a benchmark watches while it runs: the controller's resident memory (sampled from
/proc) and the latency of a small request sent now and then (a discovery GET)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.bench.common import percentile
from controller.bench.lean_http import LeanConnection

PROBE_INTERVAL = 0.02
SAMPLE_INTERVAL = 0.005
MIB = 1024 * 1024


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of ``pid`` (None where /proc cannot tell)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class MemorySampler:
    """The highest resident memory of a process while it runs (sampled every 5 ms)."""

    pid: int | None
    peak: int | None = None

    @contextlib.asynccontextmanager
    async def sampling(self) -> AsyncIterator[MemorySampler]:
        self.peak = rss_bytes(self.pid)
        async with _in_background(self._sample()):
            yield self
        self._take()

    async def _sample(self) -> None:
        while True:
            self._take()
            await asyncio.sleep(SAMPLE_INTERVAL)

    def restart(self) -> int | None:
        """The peak so far; from now on the peak of what follows."""
        self._take()
        peak, self.peak = self.peak, rss_bytes(self.pid)
        return peak

    def _take(self) -> None:
        now = rss_bytes(self.pid)
        if now is not None and (self.peak is None or now > self.peak):
            self.peak = now


@dataclass
class Prober:
    """A discovery GET every 20 ms on a connection of its own, while it runs."""

    base_url: str
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0

    @contextlib.asynccontextmanager
    async def probing(self) -> AsyncIterator[Prober]:
        async with _in_background(self._probe()):
            yield self

    async def _probe(self) -> None:
        connection = LeanConnection(self.base_url)
        try:
            while True:
                started = time.perf_counter()
                try:
                    status = await connection.request("GET", "/networking/discovery")
                except (OSError, TimeoutError):
                    status = 0
                    await connection.close()
                if status != 200:
                    self.failures += 1
                self.latencies_ms.append((time.perf_counter() - started) * 1000.0)
                await asyncio.sleep(PROBE_INTERVAL)
        finally:
            await connection.close()

    def summary(self) -> dict[str, Any]:
        return latency_summary(self.latencies_ms) | {"failures": self.failures}


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(latencies_ms)
    return {
        "count": len(ordered),
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "max_ms": round(ordered[-1], 2) if ordered else 0.0,
    }


def mib(value: int | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


@contextlib.asynccontextmanager
async def _in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """``work`` runs while the block does, and is cancelled when it ends."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
