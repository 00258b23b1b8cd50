"""TCP traffic between network namespaces for the agent's tests: servers that answer ``ok`` on
some ports, and one connection attempt's outcome (connected, refused, dropped)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

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
def serving(namespace: str, *ports: int) -> Iterator[None]:
    """A server in ``namespace`` answering ``ok`` on each of ``ports``, stopped on exit."""
    argv = ["ip", "netns", "exec", namespace, sys.executable, "-c", SERVER, *map(str, ports)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield
    finally:
        stop_process(server)


def reach(client: str, address: str, port: int, *source: str) -> str:
    """What one TCP connection attempt from ``client`` met: connected, refused, dropped (no
    answer within a second)."""
    argv = ["ip", "netns", "exec", client, sys.executable, "-c", CLIENT, address, str(port)]
    done = subprocess.run([*argv, *source], capture_output=True, check=False, timeout=60)
    return OUTCOMES.get(done.returncode, f"failed ({done.returncode})")
