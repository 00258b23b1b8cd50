"""A throwaway PostgreSQL cluster that tests can take away from the controller: stop it (fast
shutdown), kill it (SIGKILL of the postmaster, as a crash), start it again on the same data and
port, or freeze it (SIGSTOP of every process of the cluster: the server still accepts TCP
connections in the kernel but never answers, as a hung host or a long pause does).

``frozen()`` thaws in a ``finally``, and ``stop()`` thaws before it removes the cluster, so a
failing test never leaves stopped processes behind.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.postgres import ThrowawayPostgres

# How long the processes of a killed cluster may take to notice and exit (seconds).
EXIT_TIMEOUT = 30.0


def _children(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ControllablePostgres(ThrowawayPostgres):
    def __init__(self) -> None:
        super().__init__()
        self._frozen: list[int] = []

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, ...)."""
        postmaster = self.postmaster()
        return [postmaster, *_children(postmaster)]

    def shut_down(self) -> None:
        """Fast shutdown: sessions are terminated, the data stays for ``start_again``."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL of the postmaster; its processes exit when they notice (waited for)."""
        processes = self.processes()
        os.kill(processes[0], signal.SIGKILL)
        deadline = time.monotonic() + EXIT_TIMEOUT
        while any(_alive(pid) for pid in processes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the processes of the killed cluster did not exit: {processes}")
            time.sleep(0.05)

    def start_again(self) -> None:
        """Start the cluster on its data and port after ``shut_down`` or ``kill`` (after a
        kill it recovers from its log first); returns once it accepts connections."""
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            self.server_options(),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def freeze(self) -> None:
        self._frozen = self.processes()
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        frozen, self._frozen = self._frozen, []
        for pid in frozen:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The cluster frozen for the block; thawed however the block ends."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def stop(self) -> None:
        self.thaw()
        super().stop()
