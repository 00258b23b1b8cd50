"""What the benchmarks share: latency statistics, and a controller process of their own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from controller.settings import Settings

START_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS: int = Settings.model_fields["http_max_connections"].default


async def tidy_database(database_url: str | None) -> bool:
    """``VACUUM (ANALYZE)`` a PostgreSQL database, as autovacuum would keep it: where autovacuum
    is off (test machines often turn it off), a table that phases before filled and emptied
    keeps its dead rows and the planner's idea of an empty table, and a millisecond query
    becomes a sequential scan of tens of milliseconds. Whether it ran (not on SQLite)."""
    if database_url is None:
        return False
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return False
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(libpq, autocommit=True) as connection:
        await connection.execute("VACUUM (ANALYZE)")
    return True


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
    # CPU time (user + system) the controller process spent during the phase; None when the
    # benchmark cannot see the process (a controller elsewhere, or no /proc).
    controller_cpu_seconds: float | None = None
    # The same of the PostgreSQL server (all its processes), when it runs on this machine.
    database_cpu_seconds: float | None = None
    # The same of the benchmark's own process (the client).
    client_cpu_seconds: float | None = None

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
            "p50_ms": percentile(ordered, 50),
            "p90_ms": percentile(ordered, 90),
            "p99_ms": percentile(ordered, 99),
            "max_ms": round(ordered[-1], 2) if ordered else 0.0,
            "errors": self.errors,
            "controller_cpu_seconds_per_1000": self.cpu_per_thousand(count),
            "database_cpu_seconds_per_1000": _per_thousand(self.database_cpu_seconds, count),
            "client_cpu_seconds_per_1000": _per_thousand(self.client_cpu_seconds, count),
            "cpu_bound_requests_per_second": self.cpu_bound(count),
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
        }

    def cpu_per_thousand(self, count: int) -> float | None:
        """The controller's CPU seconds per 1,000 requests: what a request costs the
        controller, whatever share of the cores the client and the database took."""
        return _per_thousand(self.controller_cpu_seconds, count)

    def cpu_bound(self, count: int) -> float | None:
        """The requests/s this machine's cores could serve at most, were they busy with
        nothing but the controller, the database and the client, each costing per request
        what it did in this phase: the ceiling the CPU sets, whatever the code's waits."""
        spent = (self.controller_cpu_seconds, self.database_cpu_seconds, self.client_cpu_seconds)
        cores = os.cpu_count()
        if count == 0 or cores is None or any(s is None for s in spent):
            return None
        total = sum(s for s in spent if s is not None)
        return round(cores * count / total, 1) if total > 0 else None


def _per_thousand(seconds: float | None, count: int) -> float | None:
    if seconds is None or count == 0:
        return None
    return round(seconds * 1000.0 / count, 3)


def percentile(ordered: Sequence[float], percent: int) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return 0.0
    rank = max(1, -(-percent * len(ordered) // 100))
    return round(ordered[rank - 1], 2)


# -- the controller's CPU time --------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (all its threads, so the
    thread pool's work counts too); None where /proc cannot tell."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # utime and stime are fields 14 and 15 of stat(5), so 11 and 12 after the name and state.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _stat_fields(pid: str | int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (stat(5) field 3 on): the name
    may hold spaces, the fields after it are plain numbers."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def database_server_pid(database_url: str | None) -> int | None:
    """The process id of the PostgreSQL server (the postmaster) behind ``database_url``, if it
    runs on this machine: the parent of the backend serving a connection of ours, when that
    backend is a local ``postgres`` process. None on SQLite, for a server elsewhere, or when
    /proc cannot tell."""
    if database_url is None:
        return None
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    host = url.host or url.query.get("host") or ""
    if isinstance(host, tuple):
        host = host[0]
    if host and not host.startswith("/") and host not in {"localhost", "127.0.0.1", "::1"}:
        return None
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(libpq, connect_timeout=5) as connection:
            row = connection.execute("SELECT pg_backend_pid()").fetchone()
            # Looked at while the connection is open: its backend exits with it.
            return None if row is None else _parent_if_postgres(int(row[0]))
    except psycopg.Error:
        return None


def _parent_if_postgres(backend: int) -> int | None:
    try:
        if Path(f"/proc/{backend}/comm").read_text().strip() != "postgres":
            return None
    except OSError:
        return None
    fields = _stat_fields(backend)
    return None if fields is None else int(fields[1])


def process_tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, of its children now alive, and of those
    it has reaped: the whole of a server that runs a process per connection (PostgreSQL),
    counting connections that came and went."""
    own = _stat_fields(pid)
    if own is None:
        return None
    # utime, stime, cutime, cstime: fields 14-17 of stat(5).
    total = sum(int(f) for f in own[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and fields[1] == str(pid):
                total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


# -- a controller of its own -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Connections the benchmark may open beyond what it says it holds at once (setup, agents
# reconnecting while the controller has not yet seen their old connection close).
CONNECTION_HEADROOM = 256


@dataclass(frozen=True)
class StartedController:
    base_url: str
    pid: int


@contextmanager
def started_controller(log: Callable[[str], None], *, connections: int) -> Iterator[str]:
    """:func:`controller_process`, for benchmarks that need only its base URL."""
    with controller_process(log, connections=connections) as started:
        yield started.base_url


@contextmanager
def controller_process(
    log: Callable[[str], None], *, connections: int
) -> Iterator[StartedController]:
    """``python -m controller serve`` on a free local port, with this process's environment;
    yields its base URL and process id and stops it afterwards. The benchmark holds up to
    ``connections`` connections at once, all from this one address: the controller's
    connection caps are raised to fit, unless the environment sets them."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "controller", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    env = dict(os.environ)
    needed = connections + CONNECTION_HEADROOM
    env.setdefault("SDNC_HTTP_MAX_CONNECTIONS_PER_ADDRESS", str(needed))
    env.setdefault("SDNC_HTTP_MAX_CONNECTIONS", str(max(needed, DEFAULT_MAX_CONNECTIONS)))
    with tempfile.TemporaryDirectory(prefix="sdnc-bench-") as folder:
        log_path = Path(folder) / "controller.log"
        with log_path.open("wb") as output:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            log(f"started a controller at {base_url} (pid {process.pid})")
            _wait_until_up(process, base_url, log_path)
            yield StartedController(base_url, process.pid)
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
