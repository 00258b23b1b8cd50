"""Real ``sdnc agent`` processes, one per simulated host, each inside its host's namespace.

``nsenter --net`` (rather than ``ip netns exec``) keeps the agent in the machine's mount
namespace, so the namespaces it creates with ``ip netns add`` are visible to everyone. Each
agent's output goes to a file; ``log`` reads it for assertions and failure reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.netns import NETNS_DIR, Host

SDNC = str(Path(sys.executable).with_name("sdnc"))
STOP_TIMEOUT = 10.0
# The line the agent logs after each reconciliation of the kernel with its policy: on start,
# on each apply of what the controller sent, on resyncs ("apply: 3 changes, 0 failing ...").
CHANGES = re.compile(r"\b(start|apply|resync): (\d+) changes\b")


def admin_token(database_url: str) -> str:
    """A new admin token for the test's NBI client: ``sdnc token create`` as an operator runs
    it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDNC_")}
    env["SDNC_DATABASE_URL"] = database_url
    result = subprocess.run(
        [SDNC, "token", "create", "e2e", "--role", "admin"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def agent_token(database_url: str, server: str) -> str:
    """The token of ``server``, as an operator gets it: ``sdnc agent-token`` with the
    controller's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDNC_")}
    env["SDNC_DATABASE_URL"] = database_url
    result = subprocess.run(
        [SDNC, "agent-token", server], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@dataclass
class AgentProcess:
    host: Host
    server: str  # the server's resourceId
    token: str
    controller: str
    state_dir: Path
    log_path: Path
    resync_interval: float = 10.0
    # The CA the controller's certificate is checked against (https:// controllers).
    ca_file: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        return [
            "nsenter", f"--net={NETNS_DIR / self.host.name}",
            SDNC, "agent",
            "--controller", self.controller,
            "--server", self.server,
            "--provider-address", self.host.provider_address,
            "--state-dir", str(self.state_dir),
            "--resync-interval", f"{self.resync_interval:g}",
            *(["--ca-file", str(self.ca_file)] if self.ca_file else []),
        ]  # fmt: skip

    def start(self) -> None:
        assert self._process is None or self._process.poll() is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("SDNC_")}
        # From the environment, as an operator should: not in the process list.
        env["SDNC_AGENT_TOKEN"] = self.token
        with self.log_path.open("ab") as log:
            log.write(f"--- started at {time.monotonic():.3f}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing gets cleaned up."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def changes(self, offset: int = 0) -> list[tuple[str, int]]:
        """(why, how many changes) of every reconciliation the agent logged since
        ``offset``."""
        return [(m.group(1), int(m.group(2))) for m in CHANGES.finditer(self.log_since(offset))]


def start_agents(
    cleanup: contextlib.ExitStack,
    hosts: Sequence[Host],
    database_url: str,
    controller: str,
    ca_file: Path,
    workdir: Path,
    resync_interval: float,
) -> dict[int, AgentProcess]:
    """One agent per host (servers ``host1``, ``host2``, ...), each stopped by ``cleanup``;
    by host index."""
    agents: dict[int, AgentProcess] = {}
    for index, host in enumerate(hosts, start=1):
        name = f"host{index}"
        agent = AgentProcess(
            host, name, agent_token(database_url, name), controller,
            workdir / f"state-{name}", workdir / f"agent-{name}.log", resync_interval, ca_file,
        )  # fmt: skip
        agents[index] = agent
        cleanup.callback(agent.stop)
        agent.start()
    return agents
