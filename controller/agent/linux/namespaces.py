"""Entering and making network namespaces from a thread, for the runner (nothing else uses
it: with ``runner.py`` and ``nftlib.py`` it is the agent's door to the kernel).

``setns`` moves only the calling thread, so a socket made in a namespace stays there after the
thread leaves; a namespace is made by ``unshare`` in a thread of its own, bound to
``/run/netns/NAME`` as ``ip netns add`` does, without a process.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def entered(netns: str) -> Iterator[None]:
    """This thread in ``netns`` ("": where it is) until the block ends. Nothing in the block
    may await: the event loop's other tasks would run in the namespace too."""
    if not netns:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


async def in_thread(work: Callable[[str], None], name: str) -> None:
    """``work(name)`` in a thread of its own, which ends with it: whatever namespace the
    thread is left in, no other work runs there after it."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def run() -> None:
        try:
            work(name)
        except BaseException as exc:  # handed to the awaiting task
            done.get_loop().call_soon_threadsafe(_settle, done, exc)
        else:
            done.get_loop().call_soon_threadsafe(_settle, done, None)

    threading.Thread(target=run, name=f"netns {name}", daemon=True).start()
    await done


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if not done.cancelled():
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def make_namespace(name: str) -> None:
    """``ip netns add NAME`` without the process: a new network namespace for this thread,
    bound to ``/run/netns/NAME`` (the mount point ``ip netns add`` has made shared)."""
    path = NETNS_DIR / name
    NETNS_DIR.mkdir(exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise _errno("unshare")
        source = b"/proc/thread-self/ns/net"
        if _libc.mount(source, bytes(path), b"none", MS_BIND, None) != 0:
            raise _errno(f"bind {path}")
    except OSError:
        path.unlink(missing_ok=True)
        raise


def _errno(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
