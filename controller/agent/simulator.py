"""Simulated host agents: many real protocol sessions in one process, each applying to memory.

Used by ``sdnc simulate-agents``, the convergence benchmark and the tests. A simulated agent
speaks exactly the protocol the Linux agent speaks; only its dataplane is a dictionary.
``fail_keys`` makes it report failures for chosen objects, to exercise configurationState.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.agent.session import AgentSession, Body, Failure


@dataclass
class MemoryDataplane:
    fail_keys: Callable[[str], bool] = lambda key: False
    reports_all_failures: bool = False
    applies: int = 0
    last_apply: float = 0.0

    async def apply(
        self, desired: dict[str, Body], upserts: dict[str, Body], deletes: Sequence[str]
    ) -> list[Failure]:
        self.applies += 1
        self.last_apply = time.monotonic()
        return [
            Failure(key, "PolicyConfigurationFailure", "simulated failure")
            for key in upserts
            if self.fail_keys(key)
        ]


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

    def start(self, *, fail_keys: Callable[[str], bool] = lambda key: False) -> None:
        for spec in self.specs:
            session = AgentSession(
                self.controllers,
                spec.server,
                spec.token,
                MemoryDataplane(fail_keys),
                provider_address=spec.provider_address,
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

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
