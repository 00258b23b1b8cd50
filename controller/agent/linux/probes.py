"""Health probes of the host's own DIPs: what to probe, how, and the states to report.

``targets_from_objects(objects, server) -> tuple[list[Target], list[Problem]]``
    The (probe, DIP) pairs this host runs: the DIPs of ``probe/`` objects whose ``host`` is
    ``server``. A probe that cannot be run is reported.
``Tracker``
    The state of each pair from its outcomes: a DIP is ``Down`` until its first successful
    probe (a new DIP takes no connections before it answers), ``Up`` after a success, and
    ``Down`` again after ``numberOfProbes`` failures in a row. ``states()`` is what the
    session's prober returns; the session reports only changes.
``probe(target, connect, within) -> bool``
    One probe: a TCP connect, or an HTTP GET of ``requestPath`` that must answer 200.
    ``connect`` opens the TCP connection, so the caller decides the namespace it leaves from
    (the DIP's router namespace: its source is the subnet's gateway address, the first
    address of the subnet, as the probes of Microsoft's SLB host agent).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller import protocol

Problem = tuple[str, str]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connect = Callable[[str, int], Awaitable[Streams]]

MIN_INTERVAL = 1  # seconds; shorter intervals are raised to it
KINDS = {"tcp": "tcp", "http": "http"}


@dataclass(frozen=True)
class Target:
    """One DIP under one probe, as this host runs it."""

    probe: str  # the probe's instanceId
    dip: str  # the DIP's ipConfiguration instanceId
    address: str
    kind: str  # "tcp" | "http"
    port: int
    path: str
    interval: float
    threshold: int  # failures in a row that make the DIP Down

    @property
    def key(self) -> tuple[str, str]:
        return (self.probe, self.dip)


class _Refused(ValueError):
    pass


def _target(probe: str, body: Mapping[str, Any], dip: Mapping[str, Any]) -> Target:
    kind = KINDS.get(str(body.get("protocol", "")).lower())
    if kind is None:
        raise _Refused(f"protocol {body.get('protocol')!r} is not Tcp or Http")
    port = body.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _Refused(f"port {port!r} is not a port (1-65535)")
    path = str(body.get("requestPath") or "/")
    if kind == "http" and (not path.startswith("/") or any(c in path for c in " \r\n")):
        raise _Refused(f"requestPath {path!r} is not an absolute path")
    try:
        address = str(ipaddress.ip_address(str(dip.get("ip"))))
    except ValueError as exc:
        raise _Refused(f"DIP address {dip.get('ip')!r} is not an IP address") from exc
    interval, count = body.get("intervalInSeconds"), body.get("numberOfProbes")
    return Target(
        probe=probe,
        dip=str(dip.get("ipConfiguration")),
        address=address,
        kind=kind,
        port=port,
        path=path,
        interval=max(MIN_INTERVAL, interval if isinstance(interval, int) else 5),
        threshold=max(1, count if isinstance(count, int) else 2),
    )


def targets_from_objects(
    objects: Mapping[str, Mapping[str, Any]], server: str
) -> tuple[list[Target], list[Problem]]:
    targets: list[Target] = []
    problems: list[Problem] = []
    for key in sorted(k for k in objects if protocol.kind_of(k) == protocol.PROBE):
        body = objects[key]
        probe = key.partition("/")[2]
        for dip in body.get("dips") or ():
            if not isinstance(dip, Mapping) or dip.get("host") != server:
                continue
            try:
                targets.append(_target(probe, body, dip))
            except _Refused as exc:
                problems.append((key, str(exc)))
                break  # the probe's own values are wrong (or this DIP's): said once
    return targets, problems


@dataclass
class Tracker:
    """Probe outcomes -> DIP states (pure)."""

    _up: dict[tuple[str, str], bool] = field(default_factory=dict)
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def keep(self, targets: Sequence[Target]) -> None:
        """Forget the pairs no longer probed; new ones start Down."""
        wanted = {target.key: target for target in targets}
        for key in [k for k in self._up if k not in wanted]:
            del self._up[key]
            self._failures.pop(key, None)
        for key in wanted:
            self._up.setdefault(key, False)

    def record(self, target: Target, succeeded: bool) -> bool:
        """Count one outcome; True when the DIP's state changed."""
        key = target.key
        was = self._up.setdefault(key, False)
        if succeeded:
            self._failures[key] = 0
            self._up[key] = True
        else:
            self._failures[key] = self._failures.get(key, 0) + 1
            if self._failures[key] >= target.threshold:
                self._up[key] = False
        return self._up[key] != was

    def states(self) -> dict[tuple[str, str], str]:
        return {key: protocol.UP if up else protocol.DOWN for key, up in self._up.items()}


async def probe(target: Target, connect: Connect, within: float) -> bool:
    """Whether ``target`` answers within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            reader, writer = await connect(target.address, target.port)
            try:
                if target.kind == "tcp":
                    return True
                host = f"[{target.address}]" if ":" in target.address else target.address
                request = f"GET {target.path} HTTP/1.0\r\nHost: {host}\r\n\r\n"
                writer.write(request.encode("ascii"))
                await writer.drain()
                status = (await reader.readline()).split()
                return len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1] == b"200"
            finally:
                writer.close()
    except (OSError, TimeoutError, UnicodeError, asyncio.IncompleteReadError):
        return False


PROBE_TIMEOUT = 2.0  # seconds a probe may take at most (less when its interval is shorter)
# Opens a TCP connection to (address, port) from a network namespace ("": the agent's own).
ConnectIn = Callable[[str, str, int], Awaitable[Streams]]


class ProbeRunner:
    """Runs the host's probes, each target on its interval. ``prober`` is the session's prober
    (the targets follow the desired state; it returns the states now); ``run`` probes and calls
    ``changed`` after a round that changed a state, so the session reports it at once."""

    def __init__(
        self, server: str, connect: ConnectIn, namespace_of: Callable[[str], str | None]
    ) -> None:
        self.server = server
        self.connect = connect
        self.namespace_of = namespace_of  # DIP address -> the namespace probing it
        self.tracker = Tracker()
        self.targets: list[Target] = []
        self.problems: list[Problem] = []
        self._due: dict[tuple[str, str], float] = {}
        self._wake = asyncio.Event()

    def prober(self, objects: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], str]:
        # The probes name their hosts by instanceId, which the host/ object carries.
        hosts = [key.partition("/")[2] for key in objects if protocol.kind_of(key) == protocol.HOST]
        server = hosts[0] if hosts else self.server
        self.targets, self.problems = targets_from_objects(objects, server)
        self.tracker.keep(self.targets)
        self._wake.set()  # new targets are probed now, not at the end of a sleep
        return self.tracker.states()

    async def _once(self, target: Target) -> bool:
        namespace = self.namespace_of(target.address)
        if namespace is None:  # the DIP is not (yet) in the kernel: it cannot answer
            return False

        def connect(address: str, port: int) -> Awaitable[Streams]:
            return self.connect(namespace, address, port)

        return await probe(target, connect, min(target.interval, PROBE_TIMEOUT))

    async def round(self, now: float) -> bool:
        """Probe the targets due at ``now``; whether a state changed."""
        due = [t for t in self.targets if self._due.get(t.key, 0.0) <= now]
        outcomes = await asyncio.gather(*(self._once(t) for t in due))
        for target in due:
            self._due[target.key] = now + target.interval
        wanted = {t.key for t in self.targets}
        for key in [k for k in self._due if k not in wanted]:
            del self._due[key]
        changes = [self.tracker.record(t, ok) for t, ok in zip(due, outcomes, strict=True)]
        return any(changes)

    async def run(self, changed: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if await self.round(loop.time()):
                await changed()
            pending = [self._due[t.key] for t in self.targets if t.key in self._due]
            pause = max(0.0, min(pending) - loop.time()) if pending else 3600.0
            try:
                async with asyncio.timeout(pause):
                    await self._wake.wait()
            except TimeoutError:
                pass
