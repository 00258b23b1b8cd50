"""Stopping background loops without cutting their work in half.

A loop that talks to a database must not be cancelled in the middle of a statement: with the
embedded store the statement runs on a driver thread that outlives the cancellation and later
reports to an event loop that may be gone. ``Stopper`` lets a loop pause between steps in a way
that ends at once when asked to stop; ``stop_tasks`` asks, waits for the step under way to finish
(up to ``grace`` seconds), and only then cancels what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class Stopper:
    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False (at once) when asked to stop, True otherwise."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return not self._stopping.is_set()


async def stop_tasks(
    stopper: Stopper, tasks: Iterable[asyncio.Task[None]], *, grace: float
) -> None:
    """Ask the loops of ``tasks`` to stop, give them ``grace`` seconds to finish the step under
    way, then cancel the ones still running; returns once all have ended."""
    stopper.stop()
    pending = [task for task in tasks if not task.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
