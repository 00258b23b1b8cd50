"""Real traffic between endpoint namespaces: TCP listeners that report what they accept, TCP
probes that tell a connection from a refusal from a drop, a probe that times a change of
outcome, a long-running ping whose every reply is counted, and iperf3.

Waits are bounded and end on events (a line printed, a reply counted); measured times are
returned to the tests, which record them with the ``figures`` fixture.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.netns import in_ns
from tests.support.processes import stop_process

# Binds and listens on every port given (IPv4 and IPv6), then says "ready"; prints "port peer"
# for each connection it accepts (an IPv4 peer as such), and closes it.
LISTENER = """
import socket, sys, threading
def serve(listener, port):
    while True:
        connection, peer = listener.accept()
        print(port, peer[0].removeprefix("::ffff:"), flush=True)
        connection.close()
listeners = []
for port in sys.argv[1:]:
    listener = socket.socket(socket.AF_INET6)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", int(port)))
    listener.listen(64)
    listeners.append((listener, port))
for listener, port in listeners:
    threading.Thread(target=serve, args=(listener, port), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# One TCP connection attempt per line of stdin ("host port timeout"); answers each with
# "start outcome": the CLOCK_MONOTONIC time the attempt began (the test's clock) and what it
# met -- connected, refused, or dropped (nothing answered within the timeout).
ATTEMPTS = """
import socket, sys, time
while line := sys.stdin.readline():
    host, port, timeout = line.split()
    start = time.monotonic()
    try:
        socket.create_connection((host, int(port)), timeout=float(timeout)).close()
        outcome = "connected"
    except ConnectionRefusedError:
        outcome = "refused"
    except TimeoutError:
        outcome = "dropped"
    except OSError as error:
        outcome = "failed:" + type(error).__name__
    print(start, outcome, flush=True)
"""

# How long a SYN may go unanswered before the attempt counts as dropped: much longer than a
# connection takes on a loaded machine (a few ms), much shorter than TCP's retry schedule.
DROP_TIMEOUT = 1.5
# Between attempts of a probe waiting for a change, when it connects (a refused or dropped
# attempt already took its time).
PROBE_INTERVAL = 0.02
START_TIMEOUT = 30.0


def _first_line(process: subprocess.Popen[str], within: float) -> str:
    """The first line ``process`` prints, read in a thread so the wait is bounded."""
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(within)
    assert lines, f"no output within {within} s"
    return lines[0].strip()


@dataclass
class Listener:
    """TCP listeners in one namespace; ``accepted`` is what they accepted so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def accepted(self, port: int | None = None) -> list[str]:
        """``port peer`` of each connection accepted (on ``port``), in order."""
        return [line for line in list(self.lines) if port is None or line.split()[0] == str(port)]

    def wait_accepted(self, port: int, count: int, within: float = 10.0) -> None:
        wait_until(lambda: len(self.accepted(port)) >= count, within, f"{count} on {port}")


@contextmanager
def listening(namespace: str, ports: Sequence[int]) -> Iterator[Listener]:
    """TCP listeners on ``ports`` inside ``namespace``, bound before this returns."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", LISTENER, *map(str, ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = _first_line(process, START_TIMEOUT)
        assert line == "ready", line
        listener = Listener(process)
        threading.Thread(target=listener._collect, daemon=True).start()
        yield listener
    finally:
        stop_process(process)


class Prober:
    """A process in ``namespace`` that makes TCP connection attempts when asked."""

    def __init__(self, namespace: str) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", ATTEMPTS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )

    def attempt(self, address: str, port: int, timeout: float) -> tuple[float, str]:
        """(monotonic start, outcome) of one connection attempt."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{address} {port} {timeout}\n")
        self.process.stdin.flush()
        start, outcome = _first_line(self.process, timeout + START_TIMEOUT).split()
        return float(start), outcome

    def close(self) -> None:
        stop_process(self.process)


def reach(namespace: str, address: str, port: int) -> str:
    """What one TCP connection from ``namespace`` to ``address:port`` meets: ``connected``,
    ``refused`` (an RST: the host is there, nothing listens) or ``dropped`` (no answer)."""
    prober = Prober(namespace)
    try:
        return prober.attempt(address, port, DROP_TIMEOUT)[1]
    finally:
        prober.close()


def connects(namespace: str, address: str, port: int) -> bool:
    return reach(namespace, address, port) == "connected"


@dataclass
class ChangeProbe:
    """Attempts to connect, over and over, until the outcome becomes ``wanted``."""

    prober: Prober
    address: str
    port: int
    wanted: str  # "connected" or "dropped"
    result: list[tuple[float, str]] = field(default_factory=list)
    thread: threading.Thread | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def _timeout(self) -> float:
        return DROP_TIMEOUT if self.wanted == "dropped" else 0.2

    def start(self) -> None:
        """Check the outcome is not ``wanted`` yet, then go on probing in the background."""
        _, first = self.prober.attempt(self.address, self.port, self._timeout())
        assert first != self.wanted, f"port {self.port} is {first} before the change"
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                start, outcome = self.prober.attempt(self.address, self.port, self._timeout())
            except Exception as error:  # the prober was stopped, or died: no result
                self.result.append((time.monotonic(), f"error:{error!r}"))
                return
            if outcome == self.wanted or outcome not in ("connected", "dropped"):
                self.result.append((start, outcome))
                return
            time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - start)))

    def changed_at(self, within: float) -> float:
        """The monotonic time of the first attempt that met ``wanted``."""
        assert self.thread is not None
        self.thread.join(within)
        assert self.result, f"port {self.port} did not become {self.wanted} within {within} s"
        ((start, outcome),) = self.result
        assert outcome == self.wanted, f"port {self.port} became {outcome}, not {self.wanted}"
        return start


@contextmanager
def probing_for(namespace: str, address: str, port: int, wanted: str) -> Iterator[ChangeProbe]:
    """A started ``ChangeProbe`` from ``namespace``; stopped afterwards."""
    probe = ChangeProbe(Prober(namespace), address, port, wanted)
    try:
        probe.start()
        yield probe
    finally:
        probe.stopped.set()
        probe.prober.close()


def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.05)


ICMP_SEQ = re.compile(r"icmp_seq=(\d+)")


@dataclass
class Pinger:
    """A ping running in the background (every ``interval`` s) whose replies are counted
    from its output, each by its sequence number."""

    process: subprocess.Popen[bytes]
    output: Path

    def replies(self) -> list[int]:
        text = self.output.read_text(errors="replace")
        return [int(seq) for seq in ICMP_SEQ.findall(text)]

    def wait_replies(self, more: int, within: float = 30.0) -> None:
        """Wait until ``more`` replies beyond those counted now have come."""
        wanted = len(self.replies()) + more
        wait_until(lambda: len(self.replies()) >= wanted, within, f"{more} more ping replies")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        finally:
            stop_process(self.process)

    def lost(self) -> tuple[int, int]:
        """(requests up to the last answered one, those of them never answered)."""
        answered = set(self.replies())
        last = max(answered, default=0)
        return last, len(set(range(1, last + 1)) - answered)


@contextmanager
def pinging(namespace: str, address: str, output: Path, interval: float) -> Iterator[Pinger]:
    """A ping from ``namespace`` to ``address`` until the block ends."""
    with output.open("wb") as sink:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "ping", "-n", "-i", f"{interval:g}", address],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    pinger = Pinger(process, output)
    try:
        yield pinger
    finally:
        pinger.stop()


def first_ping(namespace: str, address: str, within: float = 60.0) -> float:
    """Ping ``address`` from ``namespace`` (which may not exist yet) every 10 ms until a reply
    comes; the monotonic time that reply arrived (to within one process exit, a few ms)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        # One process pinging until its first reply, not one process per attempt: an attempt
        # that starts just before the path exists then costs 10 ms, not a reply timeout.
        left = max(1, int(deadline - time.monotonic()))
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, "ping", "-n", "-q", "-c", "1", "-i", "0.01",
             "-w", str(left), address],
            capture_output=True,
            check=False,
            timeout=left + 30,
        )  # fmt: skip
        if result.returncode == 0:
            return time.monotonic()
        time.sleep(0.01)  # no such namespace yet
    raise AssertionError(f"no ping from {namespace} to {address} within {within} s")


def iperf_mbps(server_ns: str, server_ip: str, client_ns: str, seconds: int = 4) -> float:
    """Throughput of a TCP stream from ``client_ns`` to ``server_ns`` in Mbit/s, as the
    receiver counted it (the first second, slow start, is omitted)."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-B", server_ip, "-p", "5201"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: "5201" in in_ns(server_ns, "ss", "-Hltn", "sport = :5201"),
            START_TIMEOUT,
            "the iperf3 server listening",
        )
        out = in_ns(
            client_ns,
            "iperf3",
            "-c",
            server_ip,
            "-p",
            "5201",
            "-t",
            str(seconds),
            "-O",
            "1",
            "-J",
            timeout=seconds + 30,
        )
    finally:
        stop_process(server)
    report = json.loads(out)
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6
