"""Simulated host agents: many real protocol sessions in one process, each applying to memory.

Used by ``sdnc simulate-agents``, the convergence benchmark and the tests. A simulated agent
speaks exactly the protocol the Linux agent speaks; only its dataplane is a dictionary.
``fail_keys`` makes it report failures for chosen objects, to exercise configurationState.
It runs the probes of its host's DIPs (those of the ``probe/`` objects whose ``host`` is its
own server) in its mind: every DIP answers, except those it is told to fail
(``Fleet.fail_probe``), and it reports the changes in its acks as an agent does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller import protocol
from controller.agent.session import AgentSession, Body, Failure, HealthStates


@dataclass
class MemoryDataplane:
    fail_keys: Callable[[str], bool] = lambda key: False
    reports_all_failures: bool = False
    applies: int = 0
    last_apply: float = 0.0
    # ipConfiguration instanceIds whose probes fail on this host.
    failing_dips: set[str] = field(default_factory=set)
    # Told of every apply (upserts, deletes): what a benchmark watches.
    on_apply: Callable[[dict[str, Body], Sequence[str]], None] | None = None

    async def apply(
        self, desired: dict[str, Body], upserts: dict[str, Body], deletes: Sequence[str]
    ) -> list[Failure]:
        self.applies += 1
        self.last_apply = time.monotonic()
        if self.on_apply is not None:
            self.on_apply(upserts, deletes)
        return [
            Failure(key, "PolicyConfigurationFailure", "simulated failure")
            for key in upserts
            if self.fail_keys(key)
        ]

    def probe(self, desired: dict[str, Body]) -> HealthStates:
        """The states of this host's DIPs under every probe it holds."""
        host = next(
            (key.partition("/")[2] for key in desired if protocol.kind_of(key) == protocol.HOST),
            None,
        )
        states: HealthStates = {}
        for key, body in desired.items():
            if protocol.kind_of(key) != protocol.PROBE:
                continue
            probe = key.partition("/")[2]
            for dip in body.get("dips", ()):
                if dip.get("host") == host:
                    failing = dip["ipConfiguration"] in self.failing_dips
                    states[(probe, dip["ipConfiguration"])] = (
                        protocol.DOWN if failing else protocol.UP
                    )
        return states


@dataclass(frozen=True)
class AgentSpec:
    server: str  # the server's resourceId
    token: str
    provider_address: str | None = None


@dataclass
class Fleet:
    controllers: Sequence[str]
    specs: Sequence[AgentSpec]
    sessions: list[AgentSession] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(
        self,
        *,
        fail_keys: Callable[[str], bool] = lambda key: False,
        failing_dips: frozenset[str] = frozenset(),
    ) -> None:
        """Start an agent per spec; the probes of ``failing_dips`` (ipConfiguration
        instanceIds) fail on whichever host has them."""
        for spec in self.specs:
            dataplane = MemoryDataplane(fail_keys, failing_dips=set(failing_dips))
            session = AgentSession(
                self.controllers,
                spec.server,
                spec.token,
                dataplane,
                provider_address=spec.provider_address,
                prober=dataplane.probe,
            )
            self.sessions.append(session)
            self._tasks.append(asyncio.create_task(session.run(), name=f"agent-{spec.server}"))

    async def connected(self, within: float) -> bool:
        """Wait until every agent is connected (True) or ``within`` seconds passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.connected.wait() for s in self.sessions)), within
            )
        return all(s.connected.is_set() for s in self.sessions)

    async def applied(self, revision: int, within: float) -> bool:
        """Wait until every agent has applied ``revision`` (or ``within`` seconds passed)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(s.state.applied_revision >= revision for s in self.sessions):
                return True
            await asyncio.sleep(0.005)
        return False

    async def fail_probe(self, server: str, dip: str, *, failing: bool = True) -> None:
        """Make the probes of DIP ``dip`` (an ipConfiguration instanceId) fail on the agent
        of ``server`` (its resourceId), or answer again; the agent reports the change."""
        session = next(s for s in self.sessions if s.server == server)
        dataplane = session.dataplane
        assert isinstance(dataplane, MemoryDataplane)
        if failing:
            dataplane.failing_dips.add(dip)
        else:
            dataplane.failing_dips.discard(dip)
        await session.probe_again()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
