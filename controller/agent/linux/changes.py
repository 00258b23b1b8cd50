"""A set of kernel changes grouped into as few commands as practical, and their execution.

Changes are collected per phase; within a phase, every (tool, namespace) pair becomes one
``-batch -`` process and the processes of different namespaces run concurrently. Phases run
in order (deletions, then namespaces and links, then their configuration, then FDB entries,
qdiscs and rulesets). Every line remembers the objects it serves, so a failing line becomes a
``Failure`` of exactly those objects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.agent.linux.runner import CommandError, Op, Runner
from controller.agent.session import Failure

log = logging.getLogger(__name__)

DELETE, HOST, CONFIGURE, FINISH = range(4)
FAILED = "PolicyConfigurationFailure"


@dataclass(frozen=True)
class Line:
    text: str
    keys: tuple[str, ...] = ()
    op: Op | None = None  # the same change as a netlink request, when there is one


@dataclass
class Batch:
    tool: str
    netns: str | None
    lines: list[Line] = field(default_factory=list)


@dataclass
class Command:
    netns: str | None
    argv: list[str]
    keys: tuple[str, ...] = ()
    stdin: str | None = None
    summary: str = ""
    sysctls: tuple[tuple[str, str], ...] = ()  # the same settings, written without argv
    nft: bool = False  # argv is ``nft -f -`` of stdin, which the runner may load in-process


@dataclass
class Outcome:
    changes: int = 0
    failures: list[Failure] = field(default_factory=list)
    failed_lines: set[str] = field(default_factory=set)
    succeeded: list[Command] = field(default_factory=list)


@dataclass
class Changes:
    batches: list[dict[tuple[str, str | None], Batch]] = field(
        default_factory=lambda: [{} for _ in range(4)]
    )
    commands: list[list[Command]] = field(default_factory=lambda: [[] for _ in range(4)])

    def add(
        self,
        phase: int,
        tool: str,
        netns: str | None,
        text: str,
        keys: Sequence[str] = (),
        op: Op | None = None,
    ) -> None:
        batch = self.batches[phase].setdefault((tool, netns), Batch(tool, netns))
        batch.lines.append(Line(text, tuple(keys), op))

    def command(self, phase: int, command: Command) -> None:
        self.commands[phase].append(command)

    @property
    def count(self) -> int:
        lines = sum(len(b.lines) for phase in self.batches for b in phase.values())
        return lines + sum(len(phase) for phase in self.commands)

    def describe(self) -> list[str]:
        described: list[str] = []
        for phase in range(4):
            for batch in self.batches[phase].values():
                where = batch.netns or "host"
                described += [f"[{where}] {batch.tool} {line.text}" for line in batch.lines]
            described += [f"[{c.netns or 'host'}] {c.summary}" for c in self.commands[phase]]
        return described


async def execute(runner: Runner, changes: Changes) -> Outcome:
    outcome = Outcome(changes=changes.count)
    for phase in range(4):
        batches = list(changes.batches[phase].values())
        commands = changes.commands[phase]
        await asyncio.gather(
            *(_batch(runner, b, outcome) for b in batches),
            *(_command(runner, c, outcome) for c in commands),
        )
    return outcome


async def _batch(runner: Runner, batch: Batch, outcome: Outcome) -> None:
    ops = [line.op for line in batch.lines if line.op is not None]
    if runner.use_netlink and len(ops) == len(batch.lines):
        result = await runner.netlink(batch.netns, ops)
    else:
        result = await runner.batch(batch.tool, batch.netns, [line.text for line in batch.lines])
    for index, message in sorted(result.failed.items()):
        if index >= len(batch.lines):
            continue
        line = batch.lines[index]
        where = batch.netns or "host"
        log.warning("[%s] %s %s failed: %s", where, batch.tool, line.text, message)
        outcome.failed_lines.add(line.text)
        detail = f"{batch.tool} {line.text} (in {where}): {message}"
        outcome.failures += [Failure(key, FAILED, detail) for key in line.keys]


async def _command(runner: Runner, command: Command, outcome: Outcome) -> None:
    try:
        if runner.use_netlink and command.sysctls:
            runner.sysctl(command.netns, command.sysctls)
        elif command.nft and command.stdin is not None:
            await runner.nft(command.netns, command.stdin)
        else:
            await runner.run(command.argv, stdin=command.stdin)
    except (CommandError, OSError) as exc:
        log.warning("[%s] %s failed: %s", command.netns or "host", command.summary, exc)
        outcome.failures += [Failure(key, FAILED, str(exc)) for key in sorted(command.keys)]
    else:
        outcome.succeeded.append(command)
