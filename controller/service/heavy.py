"""CPU-heavy work off the event loop: building the views of a big aggregate or of a page of
a big collection, and rendering them.

Work that takes tens of milliseconds of pure Python on the event loop delays every other
request by as much (a discovery GET waited seconds behind concurrent GETs of a 20,000-NIC
collection). Such work runs on one worker thread instead. The interpreter lock still lets
only one thread run Python at a time, but it makes a running thread hand over within its
switch interval (5 ms) when another asks, so the event loop gets its turn within milliseconds
rather than after the whole computation. One worker only: with several, the loop would
compete with all of them for the lock, and the cores are no more for it. Work too small to
matter stays on the loop (a hop to the thread costs about 0.1 ms).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Rows (or nodes) past which work on them goes to the worker thread: about 10 ms of Python.
HEAVY_ROWS = 400

_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdnc-heavy")


async def off_loop(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` on the heavy-work thread, in the caller's context (the
    request id its log lines carry); it must not touch the event loop or anything only the
    loop may touch."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_worker, lambda: context.run(function, *args, **kwargs))
