"""Failed authentication, counted per client address: after ``limit`` failures within
``window`` seconds the address is answered 429 (with ``Retry-After``) until its oldest failure
leaves the window, without looking at its credentials at all.

The count costs nothing for other clients: it is an in-memory check per address, and a
blocked address is answered before any database work. Each replica counts for itself. The
number of addresses remembered is bounded; the oldest are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureThrottle:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        size: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.size = size
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, source: str) -> int | None:
        """Seconds until ``source`` may try again, None if it may now."""
        failures = self._recent(source)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - self.clock()))

    def failed(self, source: str) -> None:
        failures = self._recent(source)
        if failures is None:
            failures = self._failures[source] = deque(maxlen=self.limit)
        failures.append(self.clock())
        self._failures.move_to_end(source)
        while len(self._failures) > self.size:
            self._failures.popitem(last=False)

    def _recent(self, source: str) -> deque[float] | None:
        failures = self._failures.get(source)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[source]
            return None
        return failures
