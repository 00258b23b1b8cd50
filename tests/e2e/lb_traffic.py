"""Traffic for the load-balancing tests: a small HTTP server in each DIP (and in the external
client, for what leaves the virtual network), and clients that make connections one after the
other, stream them in the background with their start times, or hold one open to echo.

The server answers ``GET /`` with ``<its own address> <the client address it saw>``, ``GET
/health`` with 200 unless its flag file exists (then 500), and a connection that starts with
the line ``ECHO`` with the same greeting, then echoes every line until the client closes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.probes import wait_until
from tests.support.processes import stop_process

SERVER = """
import os, socket, sys, threading
port, flag = int(sys.argv[1]), sys.argv[2]
def serve(connection, peer):
    with connection:
        reader = connection.makefile("rb")
        first = reader.readline().decode(errors="replace")
        who = f"{connection.getsockname()[0]} {peer[0]}\\n"
        if first.startswith("ECHO"):
            connection.sendall(who.encode())
            while line := reader.readline():
                connection.sendall(line)
            return
        while reader.readline() not in (b"\\r\\n", b"\\n", b""):
            pass
        status, body = "200 OK", who
        if first.startswith("GET /health"):
            status = "500 Failing" if os.path.exists(flag) else "200 OK"
            body = status + "\\n"
        head = f"HTTP/1.0 {status}\\r\\nContent-Length: {len(body)}\\r\\nConnection: close\\r\\n"
        connection.sendall(f"{head}\\r\\n{body}".encode())
listener = socket.create_server(("0.0.0.0", port), backlog=256, reuse_port=True)
print("ready", flush=True)
while True:
    connection, peer = listener.accept()
    threading.Thread(target=serve, args=(connection, peer), daemon=True).start()
"""
# ask ADDRESS PORT COUNT [SOURCE PORT...]: COUNT connections one after the other (one from
# each source port, if given), their answers as JSON ("-" for one that failed). stream
# ADDRESS PORT: connections until killed, one line each: "<CLOCK_MONOTONIC start> <answer>".
# hold ADDRESS PORT: one connection held open, its greeting printed, then each line of stdin
# sent through it and its echo printed.
CLIENT = """
import json, socket, sys, time
mode, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def one(source=None):
    try:
        with socket.create_connection((address, port), 1.0, source) as sock:
            sock.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        answer = data.decode().strip().splitlines()[-1].strip()
        return answer if len(answer.split()) == 2 else "-"
    except (OSError, IndexError):
        return "-"
if mode == "ask":
    sources = [("", int(p)) for p in sys.argv[5:]] or [None] * int(sys.argv[4])
    print(json.dumps([one(source) for source in sources]))
elif mode == "stream":
    while True:
        start = time.monotonic()
        print(start, one(), flush=True)
        time.sleep(0.01)
else:
    sock = socket.create_connection((address, port), 2.0)
    sock.sendall(b"ECHO\\n")
    reader = sock.makefile()
    print(reader.readline().strip(), flush=True)
    for line in sys.stdin:
        sock.sendall(line.encode())
        print(reader.readline().strip(), flush=True)
"""
Answer = tuple[str, str]  # (the server that answered, the client address it saw); "" failed


def _client(namespace: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, sys.executable, "-c", CLIENT, *args]


def _answer(text: str) -> Answer:
    server, _, seen = text.partition(" ")
    return ("", "") if text == "-" else (server, seen)


@contextmanager
def http_server(namespace: str, port: int, flag: Path) -> Iterator[None]:
    """``SERVER`` in ``namespace`` on ``port``, failing its health while ``flag`` exists."""
    argv = ["ip", "netns", "exec", namespace, sys.executable, "-c", SERVER, str(port), str(flag)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready", f"no server in {namespace}"
        yield
    finally:
        stop_process(server)


def ask(
    namespace: str, address: str, port: int, count: int = 1, source_ports: Sequence[int] = ()
) -> list[Answer]:
    """``count`` connections from ``namespace`` to ``address:port`` (or one from each of
    ``source_ports``), one after the other."""
    argv = _client(namespace, "ask", address, str(port), str(count), *map(str, source_ports))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60 + count, check=False)
    assert done.returncode == 0, f"the client failed: {done.stderr.strip()}"
    return [_answer(text) for text in json.loads(done.stdout)]


@dataclass
class Stream:
    """Connections from ``namespace`` to ``address:port`` one after the other, in the
    background: (monotonic start, answer) of each so far."""

    process: subprocess.Popen[str]
    seen: list[tuple[float, Answer]] = field(default_factory=list)

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            start, _, answer = line.strip().partition(" ")
            self.seen.append((float(start), _answer(answer)))

    def since(self, start: float) -> list[tuple[float, Answer]]:
        return [(at, answer) for at, answer in list(self.seen) if at >= start]

    def wait_beyond(self, start: float, count: int, within: float = 30.0) -> None:
        """Wait until ``count`` connections started after ``start`` have ended."""
        wait_until(lambda: len(self.since(start)) >= count, within, f"{count} connections")

    def avoided_from(self, start: float, server: str) -> float:
        """How long after ``start`` the connections stopped reaching ``server``: the start of
        the first connection after the last one it answered (0 if none did)."""
        after = self.since(start)
        last = max((i for i, (_, (who, _)) in enumerate(after) if who == server), default=-1)
        assert last + 1 < len(after), f"{server} still answers"
        return max(0.0, after[last + 1][0] - start)

    def reached_from(self, start: float, server: str) -> float | None:
        """How long after ``start`` a connection first reached ``server`` (None: not yet)."""
        found = [at for at, (who, _) in self.since(start) if who == server]
        return found[0] - start if found else None

    def failed_since(self, start: float) -> int:
        return sum(1 for _, (who, _) in self.since(start) if not who)


@contextmanager
def streaming(namespace: str, address: str, port: int) -> Iterator[Stream]:
    process = subprocess.Popen(
        _client(namespace, "stream", address, str(port)), stdout=subprocess.PIPE, text=True
    )
    stream = Stream(process)
    threading.Thread(target=stream._collect, daemon=True).start()
    try:
        yield stream
    finally:
        stop_process(process)


@dataclass
class Held:
    """One connection held open (``hold``): ``greeting`` is what the server said first."""

    process: subprocess.Popen[str]
    greeting: Answer

    def echoes(self, line: str) -> bool:
        """Whether the connection carries ``line`` there and back (bounded: the client's
        socket times out after 2 s, and then exits)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        try:
            self.process.stdin.write(f"{line}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return False
        return self.process.stdout.readline().strip() == line

    def close(self) -> None:
        stop_process(self.process)


def hold(namespace: str, address: str, port: int) -> Held:
    process = subprocess.Popen(
        _client(namespace, "hold", address, str(port)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    greeting = _answer(process.stdout.readline().strip() or "-")
    return Held(process, greeting)
