"""The only module of the agent that executes commands.

Everything the agent does to the kernel goes through ``Runner``: one asyncio subprocess per
command, many changes per command where the tool allows it (``ip``/``bridge``/``tc`` read
``-batch -`` from stdin; with ``-force`` a failing line does not stop the others and the
failing lines are reported by number). A command that fails raises ``CommandError``, which
carries the command line and what the tool printed on stderr.

``host_netns`` makes the runner act as if it were started in that (named) network namespace:
``ip``/``bridge``/``tc`` get ``-n NS``, other tools run under ``ip netns exec NS``. The agent
itself runs in its host's namespace and leaves it unset; tests use it to run several
"hosts" on one machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BATCH_TOOLS = ("ip", "bridge", "tc")
# Namespace argument meaning "switch nowhere": ``ip netns add`` must run in the agent's own
# mount namespace (``ip -n`` enters a private one, where the new namespace's bind mount
# would be invisible to everyone else).
GLOBAL = ""
_FAILED_LINE = re.compile(r"^Command failed -:(\d+)\s*$")


class CommandError(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"`{' '.join(self.argv)}` exited {returncode}: {self.stderr}")


@dataclass(frozen=True)
class BatchResult:
    """Which lines of a batch failed (0-based line index -> what the tool said)."""

    failed: dict[int, str] = field(default_factory=dict)


@dataclass
class Runner:
    host_netns: str | None = None
    commands: int = 0  # how many commands were executed (observations included)

    def tool(self, tool: str, netns: str | None) -> list[str]:
        """argv prefix for ``ip``/``bridge``/``tc`` acting in ``netns`` (None: the host)."""
        target = self.host_netns if netns is None else netns
        return [tool, "-n", target] if target else [tool]

    def inside(self, netns: str | None, argv: Sequence[str]) -> list[str]:
        """argv running any other command inside ``netns`` (None: the host)."""
        target = self.host_netns if netns is None else netns
        return ["ip", "netns", "exec", target, *argv] if target else list(argv)

    async def run(
        self, argv: Sequence[str], *, stdin: str | None = None, check: bool = True
    ) -> tuple[int, str, str]:
        self.commands += 1
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        code = process.returncode if process.returncode is not None else -1
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if check and code != 0:
            raise CommandError(argv, code, stderr)
        return code, stdout, stderr

    async def json(self, tool: str, netns: str | None, *args: str) -> Any:
        _, out, _ = await self.run([*self.tool(tool, netns), "-j", *args])
        return json.loads(out) if out.strip() else []

    async def json_batch(
        self, tool: str, netns: str | None, commands: Sequence[str], *, details: bool = False
    ) -> list[Any]:
        """Run several show commands in one process; one parsed JSON document per command."""
        argv = [*self.tool(tool, netns), "-j", *(["-d"] if details else []), "-batch", "-"]
        _, out, _ = await self.run(argv, stdin="".join(f"{c}\n" for c in commands))
        return _documents(out)

    async def batch(self, tool: str, netns: str | None, lines: Sequence[str]) -> BatchResult:
        """Apply ``lines`` in one process, continuing past failing lines."""
        if not lines:
            return BatchResult()
        argv = [*self.tool(tool, netns), "-force", "-batch", "-"]
        code, _, stderr = await self.run(argv, stdin="".join(f"{x}\n" for x in lines), check=False)
        if code == 0:
            return BatchResult()
        failed = _failed_lines(stderr)
        if not failed:  # the tool failed as a whole (e.g. no such namespace)
            failed = dict.fromkeys(range(len(lines)), stderr.strip() or f"exit {code}")
        return BatchResult(failed)


def _documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)


def _failed_lines(stderr: str) -> dict[int, str]:
    """``-force`` batches print the tool's complaint, then ``Command failed -:LINE``."""
    failed: dict[int, str] = {}
    pending: list[str] = []
    for line in stderr.splitlines():
        match = _FAILED_LINE.match(line)
        if match is None:
            pending.append(line.strip())
            continue
        failed[int(match.group(1)) - 1] = "; ".join(p for p in pending if p) or "failed"
        pending = []
    return failed
