"""Histories of concurrent NBI requests and the checks run over them, in the manner of Jepsen
and etcd's robustness suite.

Every request is recorded with when it was sent and when its outcome was known, and classed
``ok`` (2xx: acknowledged), ``fail`` (4xx, or a connection that was never made: definitely
not applied) or ``info`` (5xx, or a connection lost after the request went out: it may or
may not have been applied, at any moment between sending and the loss).

Each PUT carries a marker of its own (a tag), so the state found afterwards names the write
that produced it. ``lost_writes`` finds acknowledged writes the final state contradicts: an
``ok`` write that certainly came after the write whose state is visible (it was sent after
that one's outcome was known). ``etag_chain`` checks conditional writes of one resource: each
acknowledged write names, in ``If-Match``, the etag of the acknowledged write before it, and
no two share a precondition.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Json = dict[str, Any]
Outcome = Literal["ok", "fail", "info"]
MARKER_TAG = "write"


@dataclass
class Op:
    client: int
    method: str
    key: str  # the resource path
    marker: str | None = None  # the tag a PUT writes
    body: Json | None = None
    if_match: str | None = None
    stale: bool = False  # ``if_match`` was sent knowing it is superseded
    invoked: float = 0.0
    completed: float = math.inf  # when the outcome was known
    status: int | None = None
    etag: str | None = None  # of a 2xx PUT
    error: str | None = None
    sent: bool = True  # False: the connection was refused, nothing went out
    response: Json | None = None

    @property
    def outcome(self) -> Outcome:
        if self.status is None:
            return "info" if self.sent else "fail"
        if 200 <= self.status < 300:
            return "ok"
        return "info" if self.status >= 500 else "fail"

    def describe(self) -> str:
        answer = self.status if self.status is not None else self.error
        marker = f" {self.marker}" if self.marker else ""
        condition = f" If-Match {self.if_match}" if self.if_match else ""
        return (
            f"[{self.invoked:.3f}-{self.completed:.3f}] client {self.client} {self.method} "
            f"{self.key}{marker}{condition} -> {answer} {self.etag or ''}"
        )


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _serial: int = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    def marker(self, client: int) -> str:
        self._serial += 1
        return f"c{client}-w{self._serial}"

    async def call(
        self,
        op: Op,
        send: Callable[[], Awaitable[httpx.Response]],
    ) -> Op:
        """Send a request, record its outcome in ``op`` and the history."""
        op.invoked = self.now()
        self.ops.append(op)
        try:
            response = await send()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            op.sent, op.error = False, type(exc).__name__
        except httpx.TransportError as exc:
            op.error = type(exc).__name__
        else:
            op.status = response.status_code
            if response.content and response.headers.get("content-type", "").startswith(
                "application/json"
            ):
                op.response = response.json()
            if 200 <= response.status_code < 300 and op.method == "PUT":
                op.etag = response.headers.get("etag")
        op.completed = self.now()
        return op

    def of(self, key: str) -> list[Op]:
        return [op for op in self.ops if op.key == key]

    def counts(self) -> dict[str, int]:
        writes = [op for op in self.ops if op.method in ("PUT", "DELETE")]
        return {
            "writes": len(writes),
            "acknowledged": sum(op.outcome == "ok" for op in writes),
            "indeterminate": sum(op.outcome == "info" for op in writes),
            "4xx": sum(op.status is not None and 400 <= op.status < 500 for op in writes),
            "never sent (connection refused)": sum(not op.sent for op in writes),
            "5xx": sum(op.status is not None and op.status >= 500 for op in self.ops),
        }


def marker_of(resource: Json) -> str | None:
    tags = resource.get("tags") or {}
    marker = tags.get(MARKER_TAG)
    return marker if isinstance(marker, str) else None


@dataclass(frozen=True)
class Final:
    """What a key shows after the run: absent, or a resource with its etag and marker."""

    etag: str | None = None
    marker: str | None = None

    @property
    def absent(self) -> bool:
        return self.etag is None


def producer(ops: Sequence[Op], final: Final) -> list[Op] | str:
    """The writes that may have produced ``final`` (the PUT with its marker; for an absent
    key every DELETE, or nothing when the key never existed), or why none can have."""
    writes = [op for op in ops if op.outcome != "fail"]
    if final.absent:
        return [op for op in writes if op.method == "DELETE"]
    found = [op for op in writes if op.method == "PUT" and op.marker == final.marker]
    if not found:
        return f"the state (marker {final.marker}) was written by no request"
    (write,) = found
    if write.outcome == "ok" and write.etag != final.etag:
        return f"the acknowledged write {write.marker} shows etag {final.etag}, not {write.etag}"
    return found


def lost_writes(ops: Sequence[Op], final: Final) -> list[str]:
    """Acknowledged writes of one key that ``final`` contradicts (empty: none lost)."""
    candidates = producer(ops, final)
    if isinstance(candidates, str):
        return [candidates]
    # The state is the effect of its producer; the latest moment that can have been.
    visible_since = max((op.completed for op in candidates), default=-math.inf)
    return [
        f"lost: {op.describe()}"
        for op in ops
        if op.outcome == "ok"
        and op.method in ("PUT", "DELETE")
        and op not in candidates
        and op.invoked > visible_since
    ]


def etag_chain(ops: Iterable[Op], initial: str) -> list[Op]:
    """The acknowledged conditional writes of one resource in the order their preconditions
    chain them, from ``initial``; fails if two share a precondition, one names an etag no
    acknowledged write produced, or the order contradicts real time."""
    writes = [op for op in ops if op.method == "PUT" and op.if_match is not None]
    acknowledged = [op for op in writes if op.outcome == "ok"]
    by_precondition: dict[str, Op] = {}
    for op in acknowledged:
        previous = by_precondition.setdefault(op.if_match or "", op)
        assert previous is op, f"two won on one etag:\n{previous.describe()}\n{op.describe()}"
    chain: list[Op] = []
    etag = initial
    while etag in by_precondition:
        chain.append(by_precondition.pop(etag))
        etag = chain[-1].etag or ""
    assert not by_precondition, "acknowledged writes outside the chain:\n" + "\n".join(
        op.describe() for op in by_precondition.values()
    )
    # Real time: a write that finished before another was sent cannot come after it.
    latest_sent: Op | None = None
    for op in chain:
        if latest_sent is not None:
            assert op.completed > latest_sent.invoked, (
                f"chained after a write sent once it had finished:\n"
                f"{latest_sent.describe()}\n{op.describe()}"
            )
        if latest_sent is None or op.invoked > latest_sent.invoked:
            latest_sent = op
    return chain
