"""A real controller in a subprocess (``python -m controller serve``) for tests over sockets.

The controller listens on 127.0.0.1 (or the address it is given) on a free port and runs on the
database URL it is given (migrations are applied on start, as ``sdnc serve`` does). Its stderr
goes to a temporary file: ``log_since`` returns what it wrote during a test, so a failing test
can show the server's side.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.postgres import free_port

START_TIMEOUT = 60.0
# The controller's log level (debug shows the transaction retries of Database.run).
LOG_LEVEL = os.environ.get("SDNC_TEST_SERVER_LOG_LEVEL", "warning")
STOP_TIMEOUT = 15.0


class ServerFailed(RuntimeError):
    """The controller did not come up (or died); the message carries its log."""


class ControllerServer:
    """``database_url=None`` runs the controller on its embedded default store, under ``cwd``."""

    def __init__(
        self,
        database_url: str | None,
        *,
        log_level: str = LOG_LEVEL,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        trust: ssl.SSLContext | None = None,
    ) -> None:
        self.database_url = database_url
        self.log_level = log_level
        self.cwd = cwd
        # More SDNC_* settings for the controller (SDNC_VSID_MIN, ...).
        self.extra_env = dict(extra_env or {})
        # The address it listens on (another one than loopback when clients in other network
        # namespaces must reach it).
        self.host = host
        self.port = free_port()
        # More options of ``sdnc serve`` (--tls-cert ..., --auth ...).
        self.extra_args = tuple(extra_args)
        # Given, the controller serves TLS and this client context trusts its certificate.
        self.trust = trust
        self.base_url = f"{'https' if trust else 'http'}://{host}:{self.port}"
        handle, name = tempfile.mkstemp(prefix="sdnc-server-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SDNC_")}
        env["SDNC_LOG_LEVEL"] = self.log_level
        if self.database_url is not None:
            env["SDNC_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        command = [
            sys.executable,
            "-m",
            "controller",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        # Appended to: a controller started again (after ``kill``) keeps the earlier log.
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                env=env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_until_up()
        return self.base_url

    def _wait_until_up(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerFailed(
                    f"the controller exited with {self._process.returncode}:\n{self.log()}"
                )
            try:
                response = httpx.get(
                    f"{self.base_url}/networking/discovery",
                    timeout=2.0,
                    verify=self.trust or True,
                )
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if response.status_code == 200:
                return
            time.sleep(0.1)
        self.stop()
        raise ServerFailed(f"the controller did not answer within {START_TIMEOUT}s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self._process is not None, "the controller is not running"
        return self._process.pid

    def open_files(self) -> int:
        """How many file descriptors the controller process holds now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        process.send_signal(signal.SIGCONT)  # a paused controller handles the SIGTERM too
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, whatever was in flight is cut off. ``start``
        brings it up again on the same port and database."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the controller (SIGSTOP): it neither answers nor notices anything until
        ``resume``, as in a long stall or a partition."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def remove_log(self) -> None:
        self.log_path.unlink(missing_ok=True)


@contextmanager
def running_controller(
    database_url: str, *, log_level: str = LOG_LEVEL, extra_env: dict[str, str] | None = None
) -> Iterator[ControllerServer]:
    """A started controller on ``database_url`` (with ``extra_env`` added to its environment),
    stopped (and its log removed) afterwards."""
    server = ControllerServer(database_url, log_level=log_level, extra_env=extra_env)
    with contextlib.ExitStack() as cleanup:  # the log is removed even if stopping fails
        cleanup.callback(server.remove_log)
        cleanup.callback(server.stop)
        server.start()
        yield server
