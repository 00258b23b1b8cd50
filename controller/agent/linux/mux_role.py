"""The mux role in the kernel: the plan of ``mux.py`` applied in the namespace the agent runs
in (the mux's provider address is there).

Made once: a VXLAN device ``sdncmux`` in metadata mode (``external``: each route says the VNI
and the remote end), IPv4 forwarding, and the rule routing what the mux sends itself by the
main table. Per place a DIP lives: a permanent neighbour entry, a table with one route, a rule
by mark (changed by difference from the last apply). The nftables table is changed in place as
a router's load-balancing table is, or loaded whole after a failure and at each full reconcile
whose listing of it differs. A server that stops being a mux loses all of it.

A mux and a host role cannot share one namespace: a metadata-mode VXLAN device and the
per-VSID devices of the routers both want UDP port 4789 there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from controller import protocol
from controller.agent.linux.mux import (
    LOCAL_PRIORITY,
    MARK_BASE,
    MARK_MASK,
    MUX_DEVICE,
    MUX_TABLE,
    RULE_PRIORITY,
    MuxTables,
    Target,
    plan_mux,
)
from controller.agent.linux.runner import CommandError, Runner
from controller.agent.session import Failure

log = logging.getLogger(__name__)
FAILED = "PolicyConfigurationFailure"
VXLAN_PORT = 4789
# How long a place no longer in use stays routed: the longest idle timeout a flow may have
# (a rule's idleTimeoutMinutes is at most 120), after which the mux has forgotten every flow.
DRAIN_SECONDS = 120 * 60


def _route_lines(target: Target, number: int) -> list[str]:
    mark, hop = MARK_BASE + number, target.next_hop(number)
    encap = f"encap ip id {target.vsid} dst {target.provider}"
    return [
        f"neigh replace {hop} lladdr {target.mac} dev {MUX_DEVICE} nud permanent",
        f"route replace default via {hop} dev {MUX_DEVICE} onlink {encap} table {mark}",
    ]


def _rule(number: int) -> str:
    mark = MARK_BASE + number
    return f"rule add pref {RULE_PRIORITY} fwmark {mark:#x} lookup {mark}"


def _forget_lines(target: Target, number: int) -> list[str]:
    mark = MARK_BASE + number
    return [
        f"rule del pref {RULE_PRIORITY} fwmark {mark:#x} lookup {mark}",
        f"route flush table {mark}",
        f"neigh del {target.next_hop(number)} dev {MUX_DEVICE}",
    ]


class MuxRole:
    """The mux's kernel state, and what the agent last put there."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.targets: dict[Target, int] = {}  # the places routed, by number
        self.draining: dict[Target, float] = {}  # no longer in use: routed until (monotonic)
        self.tables: MuxTables | None = None  # None: not known to be in the kernel
        self.listed = ""  # digest of the table's listing after it was loaded whole
        self.ready = False  # the device, forwarding and the local rule are in place
        self.failures: list[Failure] = []

    @property
    def active(self) -> bool:
        return self.ready or bool(self.targets) or self.tables is not None

    async def apply(self, objects: Mapping[str, Mapping[str, Any]]) -> list[Failure]:
        """Make the kernel forward as ``objects`` say; the failures, by object."""
        plan = plan_mux(objects, self.targets)
        failures = [Failure(key, FAILED, message) for key, message in plan.problems]
        keys = sorted(k for k in objects if protocol.kind_of(k) == protocol.VIP_MAP)
        try:
            if not self.ready:
                await self._base()
            await self._route(plan.targets)
            await self._load(plan.tables)
        except (CommandError, OSError) as exc:
            log.warning("mux: %s", exc)
            self.ready, self.tables = False, None
            failures += [Failure(key, FAILED, f"mux: {exc}") for key in keys]
        self.failures = failures
        return failures

    async def reconcile(self, objects: Mapping[str, Mapping[str, Any]]) -> list[Failure]:
        """Read what the kernel holds and repair it, then apply."""
        await self._base()  # the device first: the routes below go through it
        rules = await self.runner.json("ip", None, "rule", "show")
        wanted = {MARK_BASE + n for n in self.targets.values()}
        stale = [r for r in rules if _ours(r) and _mark(r) not in wanted]
        lines = []
        for rule in stale:
            mark = _mark(rule)
            lines += [f"rule del pref {RULE_PRIORITY} fwmark {mark:#x} lookup {rule.get('table')}",
                      f"route flush table {mark}"]  # fmt: skip
        missing = wanted - {_mark(r) for r in rules if _ours(r)}
        lines += [_rule(n) for n in self.targets.values() if MARK_BASE + n in missing]
        for target, number in self.targets.items():
            lines += _route_lines(target, number)
        await self._batch(lines)
        if self.tables is not None and self.listed != await self._listing():
            self.tables = None  # drifted: loaded whole below
        return await self.apply(objects)

    async def stop(self) -> None:
        """Remove everything the mux role made (the server is no longer a mux, or the agent
        is torn down): found in the kernel, not only what this process made."""
        rules = await self.runner.json("ip", None, "rule", "show")
        lines = [
            line
            for rule in rules
            if _ours(rule)
            for line in (
                f"rule del pref {RULE_PRIORITY} fwmark {_mark(rule):#x} lookup {rule.get('table')}",
                f"route flush table {_mark(rule)}",
            )
        ]
        if any(rule.get("priority") == LOCAL_PRIORITY for rule in rules):
            lines.append(_local_rule("del"))
        links = await self.runner.json("ip", None, "link", "show")
        if any(link.get("ifname") == MUX_DEVICE for link in links):
            lines.append(f"link del {MUX_DEVICE}")  # its neighbours go with it
        await self._batch(lines, check=False)
        with contextlib.suppress(CommandError):  # not there
            await self.runner.nft(None, f"delete table ip {MUX_TABLE}\n")
        self.targets, self.tables, self.ready, self.failures = {}, None, False, []
        self.draining = {}

    async def _base(self) -> None:
        links = await self.runner.json("ip", None, "-d", "link", "show")
        device = next((link for link in links if link.get("ifname") == MUX_DEVICE), None)
        lines = []
        if device is None:
            lines.append(f"link add {MUX_DEVICE} type vxlan external dstport {VXLAN_PORT}")
        if device is None or "UP" not in device.get("flags", ()):
            lines.append(f"link set {MUX_DEVICE} up")
        rules = await self.runner.json("ip", None, "rule", "show")
        if not any(r.get("priority") == LOCAL_PRIORITY for r in rules):
            lines.append(_local_rule("add"))
        await self._batch(lines)
        self.runner.sysctl(None, [("net.ipv4.ip_forward", "1")])
        self.ready = True

    async def _route(self, targets: dict[Target, int]) -> None:
        """Route the places in use; keep routing those no longer in use while the flows the
        mux remembers may still go there (``DRAIN_SECONDS``: a DIP that left its pool keeps
        its connections), with their numbers (no new place takes one before)."""
        now = time.monotonic()
        for target in self.targets.keys() - targets.keys():
            self.draining.setdefault(target, now + DRAIN_SECONDS)
        for target in targets.keys() & self.draining.keys():
            del self.draining[target]  # in use again
        drained = {t for t, deadline in self.draining.items() if deadline <= now}
        gone = [
            line
            for target, number in self.targets.items()
            if target in drained or targets.get(target, number) != number
            for line in _forget_lines(target, number)
        ]
        await self._batch(gone, check=False)  # what is already gone need not go
        came = [
            line
            for target, number in targets.items()
            if self.targets.get(target) != number
            for line in (*_route_lines(target, number), _rule(number))
        ]
        await self._batch(came)
        for target in drained:
            del self.draining[target]
        kept = {t: n for t, n in self.targets.items() if t in self.draining}
        self.targets = kept | targets

    async def _load(self, tables: MuxTables) -> None:
        if self.tables is None:
            await self.runner.nft(None, tables.text)
            self.listed = await self._listing()
        else:
            script = tables.changes_from(self.tables)
            if script:
                await self.runner.nft(None, script)
                self.listed = await self._listing()
        self.tables = tables

    async def _listing(self) -> str:
        """A digest of the table's chains and VIP map (its slot maps are not listed: a
        thousand rules' million elements take seconds)."""
        try:
            listed = await self.runner.nft(None, f"list map ip {MUX_TABLE} vips", stateless=True)
        except CommandError:
            return ""
        return hashlib.sha256(listed.encode()).hexdigest()

    async def _batch(self, lines: Sequence[str], *, check: bool = True) -> None:
        result = await self.runner.batch("ip", None, lines)
        if check and result.failed:
            index, message = min(result.failed.items())
            raise OSError(f"ip {lines[index]}: {message}")


def _local_rule(verb: str) -> str:
    return (
        f"rule {verb} pref {LOCAL_PRIORITY} fwmark {MARK_BASE:#x}/{MARK_MASK:#x} iif lo lookup main"
    )


def _ours(rule: Mapping[str, Any]) -> bool:
    return rule.get("priority") == RULE_PRIORITY and _mark(rule) & MARK_MASK == MARK_BASE


def _mark(rule: Mapping[str, Any]) -> int:
    try:
        return int(str(rule.get("fwmark", "0")), 0)
    except ValueError:
        return 0
