"""A flood of connection attempts on the agent channel, run as a process of its own
(``python -m tests.support.flood``), so that the clients' own work does not share the event
loop of the controller or of the agents a test watches meanwhile.

Half the attempts are bad (a wrong token for the server, or the server's token on a server
that does not exist: both refused with 403), half valid connects of the same server, each
saying hello and staying until the controller closes it because a newer one took its place
(or until all have connected). Prints one JSON object: what came back, and how long it took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from tests.support.refusals import raw_handshake
from tests.support.southbound import channel, receive, say_hello


@dataclass
class Flood:
    base_url: str
    server: str
    token: str
    attempts: int
    concurrency: int
    statuses: Counter[int] = field(default_factory=Counter)
    closes: Counter[int | None] = field(default_factory=Counter)
    connected: int = 0
    all_connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def valid(self) -> int:
        return self.attempts // 2

    async def run(self) -> dict[str, object]:
        gate = asyncio.Semaphore(self.concurrency)

        async def attempt(n: int) -> None:
            async with gate:
                await (self.connect() if n % 2 else self.bad(n // 2))

        started = time.monotonic()
        await asyncio.gather(*(attempt(n) for n in range(self.attempts)))
        return {
            "seconds": time.monotonic() - started,
            "refusals": {str(status): count for status, count in self.statuses.items()},
            "closes": {str(code): count for code, count in self.closes.items()},
        }

    async def bad(self, n: int) -> None:
        if n % 2:
            server, token = self.server, f"not-{n}"
        else:
            server, token = f"ghost-{uuid.uuid4().hex[:12]}", self.token
        path = f"/southbound/v1/servers/{server}/channel".encode()
        auth = [(b"Authorization", f"Bearer {token}".encode())]
        self.statuses[await raw_handshake(self.base_url, path, auth)] += 1

    async def connect(self) -> None:
        async with channel(self.base_url, self.server, self.token) as websocket:
            await say_hello(websocket, self.server, 0)
            with contextlib.suppress(ConnectionClosed):
                await receive(websocket)
            self.connected += 1
            if self.connected == self.valid:
                self.all_connected.set()
            closed = asyncio.ensure_future(websocket.wait_closed())
            done = asyncio.ensure_future(self.all_connected.wait())
            await asyncio.wait({closed, done}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            done.cancel()
            self.closes[websocket.close_code] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--attempts", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    flood = Flood(args.base_url, args.server, args.token, args.attempts, args.concurrency)
    print(json.dumps(asyncio.run(flood.run())))


async def flood_from_another_process(
    base_url: str, server: str, token: str, *, attempts: int, within: float = 60.0
) -> dict[str, object]:
    """Run the flood in a child process; its JSON report."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.flood",
        f"--base-url={base_url}",
        f"--server={server}",
        f"--token={token}",
        f"--attempts={attempts}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(within):
            out, err = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, err.decode(errors="replace")[-2000:]
    report: dict[str, object] = json.loads(out)
    return report


if __name__ == "__main__":
    main()
