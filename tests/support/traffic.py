"""TCP traffic between network namespaces for the agent's tests: servers that answer ``ok`` on
some ports, and one connection attempt's outcome (connected, refused, dropped)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence

from tests.support.processes import stop_process

SERVER = """
import selectors, socket, sys
selector = selectors.DefaultSelector()
for port in sys.argv[1:]:
    listener = socket.create_server(("0.0.0.0", int(port)), reuse_port=True)
    selector.register(listener, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in selector.select():
        connection, _ = key.fileobj.accept()
        connection.sendall(b"ok")
        connection.close()
"""
# Exits 0 when connected (and served), 2 when refused, 3 when nothing answered (dropped).
CLIENT = """
import socket, sys
try:
    source = (sys.argv[3], 0) if len(sys.argv) > 3 else None
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), 1.0, source) as sock:
        sys.exit(0 if sock.recv(2) == b"ok" else 1)
except ConnectionRefusedError:
    sys.exit(2)
except TimeoutError:
    sys.exit(3)
except OSError:
    sys.exit(1)
"""
OUTCOMES = {0: "connected", 2: "refused", 3: "dropped"}


@contextlib.contextmanager
def _server(namespace: str, script: str, ports: Sequence[int]) -> Iterator[None]:
    """``script`` in ``namespace`` on ``ports``, once it said it is ready; stopped on exit."""
    argv = ["ip", "netns", "exec", namespace, sys.executable, "-c", script, *map(str, ports)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield
    finally:
        stop_process(server)


def serving(namespace: str, *ports: int) -> contextlib.AbstractContextManager[None]:
    """A server in ``namespace`` answering ``ok`` on each of ``ports``, stopped on exit."""
    return _server(namespace, SERVER, ports)


def reach(client: str, address: str, port: int, *source: str) -> str:
    """What one TCP connection attempt from ``client`` met: connected, refused, dropped (no
    answer within a second)."""
    argv = ["ip", "netns", "exec", client, sys.executable, "-c", CLIENT, address, str(port)]
    done = subprocess.run([*argv, *source], capture_output=True, check=False, timeout=60)
    return OUTCOMES.get(done.returncode, f"failed ({done.returncode})")


# Accepts on each port; answers each connection with the address it was reached at and the
# address it came from ("<local> <peer>:<port>"), then echoes what comes.
WHOAMI = """
import socket, sys, threading
def serve(connection, peer):
    with connection:
        local = connection.getsockname()[0]
        connection.sendall(f"{local} {peer[0]}:{peer[1]}\\n".encode())
        while data := connection.recv(100):
            connection.sendall(data)
def accept(listener):
    while True:
        connection, peer = listener.accept()
        threading.Thread(target=serve, args=(connection, peer), daemon=True).start()
for port in sys.argv[1:]:
    listener = socket.create_server(("0.0.0.0", int(port)), backlog=128, reuse_port=True)
    threading.Thread(target=accept, args=(listener,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
# Opens COUNT connections to ADDRESS:PORT one after the other (from the SOURCE PORTs given,
# one each, if any); prints the greetings as JSON ("!" and the error's name for a connection
# that failed). One from a given port ends with a reset, so that the port is free again at
# once (no TIME_WAIT). A connection has 3 s: the kernel resends a SYN that got no answer after
# 1 s, and a busy machine may lose one (a flow the policy drops is dropped every time).
ASK = """
import json, socket, struct, sys
address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sources = [("", int(p)) for p in sys.argv[4:]] or [None] * count
answers = []
for source in sources:
    try:
        with socket.create_connection((address, port), 3.0, source) as sock:
            answers.append(sock.makefile().readline().strip())
            if source:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as error:
        answers.append("!" + type(error).__name__)
print(json.dumps(answers))
"""
# One connection held open: prints the greeting, then echoes each line of stdin through it.
HOLD = """
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), 2.0)
reader = sock.makefile()
print(reader.readline().strip(), flush=True)
for line in sys.stdin:
    sock.sendall(line.encode())
    print(reader.readline().strip(), flush=True)
"""


def whoami(namespace: str, *ports: int) -> contextlib.AbstractContextManager[None]:
    """A server in ``namespace`` on each of ``ports`` that says where it was reached and from
    where (``WHOAMI``), then echoes; stopped on exit."""
    return _server(namespace, WHOAMI, ports)


def ask(
    client: str, address: str, port: int, count: int = 1, source_ports: Sequence[int] = ()
) -> list[tuple[str, str]]:
    """``count`` connections from ``client`` (or one from each of ``source_ports``), one after
    the other: per connection (the address that answered, the client address it saw), ("",
    the error's name) when it failed."""
    argv = ["ip", "netns", "exec", client, sys.executable, "-c", ASK, address, str(port)]
    argv += [str(count), *map(str, source_ports)]
    attempts = len(source_ports) or count
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30 + 4 * attempts)
    if done.returncode != 0:
        raise AssertionError(f"the client failed: {done.stderr.strip()}")
    answers = json.loads(done.stdout)
    return [_answer(text) for text in answers]


def _answer(text: str) -> tuple[str, str]:
    if text.startswith("!"):
        return "", text[1:]
    local, peer = text.split()
    return local, peer.rsplit(":", 1)[0]


def hold(client: str, address: str, port: int) -> subprocess.Popen[str]:
    """One connection held open (``HOLD``): its greeting is its first line of output."""
    argv = ["ip", "netns", "exec", client, sys.executable, "-c", HOLD, address, str(port)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def echoes(held: subprocess.Popen[str], line: str) -> bool:
    """Whether the held connection carries ``line`` there and back."""
    assert held.stdin is not None
    assert held.stdout is not None
    held.stdin.write(f"{line}\n")
    held.stdin.flush()
    return held.stdout.readline().strip() == line
