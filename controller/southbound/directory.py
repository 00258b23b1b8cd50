"""Which server a channel URL names, for the handshakes of the agent channel.

Every connection attempt names a server, and most floods repeat themselves: an agent
reconnecting again and again, a bad token retried, a script hammering one URL. Answers (found
or not) are kept ``ttl`` seconds, so a repeated attempt costs no query; and at most
``concurrency`` lookups reach the database at once, so a flood of attempts naming ever new
servers waits here rather than taking the connections the northbound API and the status
writes need. A server deleted (or created) is seen at most ``ttl`` seconds late; the token
check still uses the instanceId, so a re-created server's old tokens never pass.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable

Found = tuple[uuid.UUID, str] | None  # (instanceId, resourceRef) of the server, or None
Fetch = Callable[[str], Awaitable[Found]]


class ServerDirectory:
    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl: float = 2.0,
        concurrency: int = 4,
        size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self.queries = 0  # lookups that reached the database
        self._gate = asyncio.Semaphore(concurrency)
        self._answers: OrderedDict[str, tuple[float, Found]] = OrderedDict()

    async def find(self, resource_id: str) -> Found:
        key = resource_id.lower()  # resourceIds match without regard to case
        cached = self._cached(key)
        if cached is not None:
            return cached[1]
        async with self._gate:
            # Those that waited for the gate mostly find the answer of the one ahead of them.
            cached = self._cached(key)
            if cached is not None:
                return cached[1]
            self.queries += 1
            found = await self.fetch(resource_id)
        self._answers[key] = (self.clock() + self.ttl, found)
        self._answers.move_to_end(key)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)
        return found

    def _cached(self, key: str) -> tuple[float, Found] | None:
        cached = self._answers.get(key)
        if cached is None:
            return None
        if cached[0] < self.clock():
            del self._answers[key]
            return None
        return cached
