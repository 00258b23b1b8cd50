"""The Linux data plane: every apply reconciles the whole host with the desired objects.

Plan (pure) -> nftables rulesets per router namespace (pure) -> the kernel changes only what
differs -> the state directory records what was applied and which namespaces are ours. A
periodic resync runs the same reconcile to repair drift (a device deleted by hand, a lost
route). Applies and resyncs never overlap.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from controller import protocol
from controller.agent.linux import lb_tables, nft
from controller.agent.linux.acls import acls_from_objects
from controller.agent.linux.balancer import Balancing, Reader
from controller.agent.linux.kernel import Kernel, Result
from controller.agent.linux.mux import MUX_KINDS, is_mux
from controller.agent.linux.mux_role import MuxRole
from controller.agent.linux.observe import Observed
from controller.agent.linux.plan import HostPlan, plan, replan, router_prefix
from controller.agent.linux.runner import CommandError, Runner
from controller.agent.linux.state import Saved, StateDir
from controller.agent.session import Body, Failure

log = logging.getLogger(__name__)
Reporter = Callable[[list[Failure]], Awaitable[None]]
READ_ATTEMPTS = 3
FULL_COLLECTIONS_OFF = 1 << 30  # generation-1 collections before a full one: never


@dataclass(frozen=True)
class Report:
    changes: int
    failures: list[Failure]
    seconds: float
    # "delta": applied against the model, without reading the host; "deferred": a resync
    # that applies kept overtaking, left to the next one
    kind: str = "full"


class LinuxDataplane:
    # Every apply reconciles the whole host, so it returns every failing object.
    reports_all_failures = True

    def __init__(
        self,
        server: str,
        *,
        runner: Runner | None = None,
        state_dir: StateDir | None = None,
        provider_address: str | None = None,
        saved: Saved | None = None,
    ) -> None:
        self.server = server  # resourceId; the instanceId comes with the host/ object
        self.runner = runner or Runner()
        self.state_dir = state_dir
        self.provider_address = provider_address
        saved = saved or Saved()
        self.server_id = saved.server_id
        self.desired: dict[str, Body] = dict(saved.objects)
        self.owned: set[str] = set(saved.namespaces)
        self.kernel = Kernel(self.runner, dict(saved.rulesets))
        self.last: Report | None = None
        # What the agent put in the kernel (the last plan applied whole), and the ruleset
        # tables of each router namespace; None until a full reconcile has run.
        self.model: HostPlan | None = None
        self.tables: dict[str, nft.Tables] = {}
        self.generation = 0  # moves with every apply and every change made
        self._dirty = False  # applied since the state directory was last written
        self._recording: asyncio.Task[None] | None = None
        self.recorded = 0.0  # seconds the last listing after an in-place change took
        self._lock = asyncio.Lock()
        self.held = 0.0  # seconds the last full reconcile held up applies
        # Per router namespace, the ACL chains whose old rules an in-place change left behind
        # its new ones, for ``_record`` to remove (see ``nft.Tables.transition_from``).
        self._shadowed: dict[str, frozenset[str]] = {}
        # The acl/ and aclRule/ objects among the desired ones (None: to be found): finding
        # them among a thousand endpoints' objects took 1.4 ms of each change.
        self._acl_objects: dict[str, Body] | None = None
        # The load-balancing objects as read (re-read by key), and each router's table of
        # them for the Balancing it was rendered from: a host may hold 1,000 rules.
        self._balancing = Reader()
        self._balancing_read = False
        self.mux = MuxRole(self.runner)
        self._lb_rendered: dict[str, tuple[Balancing, dict[str, str], lb_tables.LbTables]] = {}

    async def apply(
        self, desired: dict[str, Body], upserts: dict[str, Body], deletes: Sequence[str]
    ) -> list[Failure]:
        async with self._lock:
            before, self.desired = self.desired, dict(desired)
            self._track_acls(upserts, deletes)
            self._balancing.update(self.desired, [*upserts, *deletes])
            await self._mux_role([*upserts, *deletes])
            self.generation += 1
            report = None
            if self.model is not None:
                changed = {key: _nic(before.get(key)) for key in [*upserts, *deletes]}
                report = await self._delta(self.model, replan(self.model, self.desired, changed))
            if report is None:
                report = await self._reconcile("apply")
        return report.failures

    def _track_acls(self, upserts: dict[str, Body], deletes: Sequence[str]) -> None:
        if self._acl_objects is None:
            return
        for key in deletes:
            self._acl_objects.pop(key, None)
        for key in upserts:
            if _is_acl(key) and key in self.desired:
                self._acl_objects[key] = self.desired[key]

    async def reconcile(self, reason: str = "resync") -> Report:
        """The full observe-and-repair. The host is read, and what differs computed, without
        holding up applies; only making the changes waits for (and holds up) them -- on a
        host that is right, nothing (``held``: how long it did). An apply meanwhile makes
        what was read stale: then read again; after a few stale reads the repair waits for
        the next resync (a ``deferred`` report). Reading while holding applies up instead
        held them up to 0.9 s at 250 endpoints while endpoints were being added."""
        self.held = 0.0
        async with self._lock:
            await self._mux_role(None)
        for _ in range(READ_ATTEMPTS):
            # The listing of the last in-place change first: else a ruleset changed in place
            # would look unknown to the repair, which would reload it (resetting counters).
            await self.settle()
            generation = self.generation
            started = time.monotonic()
            wanted, rulesets, failures = self._desired()
            observed = await self.kernel.observe(wanted, self.owned)
            texts = {router: ruleset.text for router, ruleset in rulesets.items()}
            owned = self.owned | set(wanted.ports)  # as ``_own`` will make it
            changes = await self.kernel.changes(wanted, texts, owned, observed)
            async with self._lock:
                if generation == self.generation:
                    held = time.monotonic()
                    self._own(wanted)
                    result = await self.kernel.execute(wanted, self.owned, changes)
                    self.held = time.monotonic() - held
                    return self._finish(reason, started, wanted, rulesets, failures, result)
        log.info("%s: deferred, applies changed the host during each of %d reads",
                 reason, READ_ATTEMPTS)  # fmt: skip
        known = self.last.failures if self.last is not None else []
        return Report(0, known, 0.0, "deferred")

    async def resync(self, interval: float, report: Reporter | None = None) -> None:
        """Reconcile every ``interval`` seconds until cancelled, handing each outcome's
        failures to ``report`` (which tells the controller when they changed); then the
        full garbage collection (see ``collect_fully_between_resyncs``)."""
        while True:
            await asyncio.sleep(interval)
            try:
                outcome = await self.reconcile()
            except OSError as exc:  # the tools are missing or the system is out of resources
                log.error("resync failed: %s", exc)
                continue
            finally:
                gc.collect()
            if report is not None:
                await report(outcome.failures)

    async def _mux_role(self, changed: list[str] | None) -> None:
        """The mux role (``mux_role.py``), for a server sent where DIPs live: applied when a
        load-balancing object changed, repaired on a full reconcile (``changed`` None),
        removed when the server is no longer a mux."""
        quiet = changed is not None and not any(_is_balancing(key) for key in changed)
        if quiet and not self.mux.active and self.model is not None:
            return  # a delta on a host that is no mux, changing nothing that could make it one
        try:
            if not is_mux(self.desired):
                if self.mux.active:
                    await self.mux.stop()
            elif changed is None:
                await self.mux.reconcile(self.desired)
            elif not self.mux.ready or any(_is_balancing(key) for key in changed):
                await self.mux.apply(self.desired)
        except (CommandError, OSError) as exc:  # reading the kernel failed: the next resync
            log.warning("mux: %s", exc)
            self.mux.ready = False

    def _plan(self) -> HostPlan:
        host = next((k for k in sorted(self.desired) if protocol.kind_of(k) == protocol.HOST), None)
        if host is not None:
            self.server_id = host.partition("/")[2]
        return plan(self.desired, self.server_id or self.server, self.provider_address)

    def _desired(
        self, planned: HostPlan | None = None
    ) -> tuple[HostPlan, dict[str, nft.Ruleset], list[Failure]]:
        """The plan (``planned`` if given), the ruleset of each router namespace, and what
        cannot be applied."""
        wanted = planned or self._plan()
        failures = list(wanted.failures)
        rulesets: dict[str, nft.Ruleset] = {}
        if planned is None or self._acl_objects is None:  # a full reconcile looks at all
            self._acl_objects = {k: v for k, v in self.desired.items() if _is_acl(k)}
        acls = acls_from_objects(self._acl_objects)
        if planned is None or not self._balancing_read:
            self._balancing = Reader()
            self._balancing.update(self.desired, self.desired)
            self._balancing_read = True
        _, problems = self._balancing.balancing()
        failures += [Failure(key, "PolicyConfigurationFailure", m) for key, m in problems]
        prefix = router_prefix(wanted.server)
        for router in sorted(wanted.routers):
            forwarding = wanted.forwarding.get(router, {})
            shared = self._balancing.of_network(router.removeprefix(prefix))
            # Which endpoints are local matters only to a router that balances something.
            filtered = () if shared.empty else wanted.filtered.get(router, ())
            local = {f.address: f.mac for f in filtered}
            lb = self._lb_tables(router, shared, local)
            ruleset = nft.render(wanted.filtered.get(router, []), acls, forwarding, lb)
            rulesets[router] = ruleset
            failures += [
                Failure(key, "PolicyConfigurationFailure", m) for key, m in ruleset.problems
            ]
        return wanted, rulesets, failures

    def _lb_tables(
        self, router: str, balancing: Balancing, local: dict[str, str]
    ) -> lb_tables.LbTables:
        """The router's load-balancing table, rendered again only when what it holds (or
        which of its endpoints are local) changed."""
        known = self._lb_rendered.get(router)
        if known is not None and known[0] is balancing and known[1] == local:
            return known[2]
        tables = lb_tables.render(balancing, local, known)
        self._lb_rendered[router] = (balancing, local, tables)
        return tables

    async def _reconcile(self, reason: str) -> Report:
        started = time.monotonic()
        wanted, rulesets, failures = self._desired()
        self._own(wanted)
        observed = await self.kernel.observe(wanted, self.owned)
        return await self._repair(reason, started, wanted, rulesets, failures, observed)

    async def _repair(
        self,
        reason: str,
        started: float,
        wanted: HostPlan,
        rulesets: dict[str, nft.Ruleset],
        failures: list[Failure],
        observed: Observed,
    ) -> Report:
        self._own(wanted)
        texts = {router: ruleset.text for router, ruleset in rulesets.items()}
        result = await self.kernel.repair(wanted, texts, self.owned, observed)
        return self._finish(reason, started, wanted, rulesets, failures, result)

    async def _delta(self, model: HostPlan, planned: HostPlan | None) -> Report | None:
        """Apply the change against the model (see ``Kernel.delta``); None when it must be
        a full reconcile. A change the kernel refused falls back to the full reconcile, which
        repairs whatever half of it was done."""
        started = time.monotonic()
        wanted, rulesets, failures = self._desired(planned)
        self._own(wanted)
        transitions = {
            router: ruleset.tables.transition_from(self.tables.get(router, nft.Tables()))
            for router, ruleset in rulesets.items()
        }
        scripts = {router: transition.now for router, transition in transitions.items()}
        result = await self.kernel.delta(model, wanted, scripts, self.owned)
        if result is None or result.failures:
            if result is not None:
                log.warning("delta apply failed (%s); reconciling", result.failures[0].message)
            self.model = None
            return None
        for router, transition in transitions.items():
            if transition.shadowed:
                self._shadowed[router] = self._shadowed.get(router, frozenset()) | (
                    transition.shadowed
                )
        report = self._finish("apply", started, wanted, rulesets, failures, result, "delta")
        if self.kernel.pending and self._recording is None:
            # After the apply (its ack need not wait); the next one need not wait either.
            self._recording = asyncio.create_task(self._record())
        return report

    async def settle(self) -> float:
        """Wait for the listing of the last in-place change; how many seconds it took (0.0:
        none was due)."""
        task = self._recording
        if task is None:
            return 0.0
        await task
        return self.recorded

    async def close(self) -> None:
        """Finish the listing of the last in-place change, close the netlink sockets. Owners
        call it before their event loop ends: cancelled while starting its process, the
        listing's task would keep asyncio's shutdown waiting for that process forever."""
        await self.settle()
        await self.runner.close()

    async def _record(self) -> None:
        """Remove the rules in-place changes left shadowed, then list the rulesets changed in
        place without holding up applies: an apply (or a repair) arriving meanwhile does not
        wait for the listing but makes it stale -- then it is dropped and taken again, until
        one is of what the kernel holds."""
        try:
            started = time.monotonic()
            while True:
                async with self._lock:  # no apply or repair is changing the kernel now
                    # Under the lock: an apply changing the same chains meanwhile would be
                    # undone by a tidy computed before it.
                    untidy = await self._tidy()
                    generation = self.generation
                    pending = self.kernel.pending & self.tables.keys() - untidy
                    texts = {router: self.tables[router].text for router in pending}
                listed = await self.kernel.listings(pending)
                async with self._lock:  # a repair under way has finished, and counted
                    if generation == self.generation:
                        self.kernel.record(texts, listed)
                        self._dirty = True
                        break
            self.recorded = time.monotonic() - started
        finally:
            self._recording = None

    async def _tidy(self) -> set[str]:
        """Remove the rules that in-place changes left shadowed; the routers where that
        failed (their rulesets are not recorded, so the next resync reloads them whole)."""
        shadowed, self._shadowed = self._shadowed, {}
        failed: set[str] = set()
        for router, chains in sorted(shadowed.items()):
            tables = self.tables.get(router)
            script = tables.tidy(chains) if tables is not None else ""
            if script and not await self.kernel.load_in_place(router, script):
                failed.add(router)
        return failed

    def _finish(
        self,
        reason: str,
        started: float,
        wanted: HostPlan,
        rulesets: dict[str, nft.Ruleset],
        failures: list[Failure],
        result: Result,
        kind: str = "full",
    ) -> Report:
        self.owned = result.owned
        # The model is what the agent put in the kernel; after a refused change it is
        # unknown, and the next apply is a full reconcile.
        self.model = None if result.failures else wanted
        self.tables = {router: ruleset.tables for router, ruleset in rulesets.items()}
        if kind == "full":  # every ruleset that differed from its whole text was reloaded
            self._shadowed = {}
        if result.changes:
            self.generation += 1
        self._dirty = True
        failures += result.failures + self.mux.failures
        report = Report(result.changes, _unique(failures), time.monotonic() - started, kind)
        self.last = report
        if result.changes:
            for line in result.described:
                log.info("change: %s", line)
        level = logging.INFO if result.changes or reason != "resync" else logging.DEBUG
        log.log(
            level,
            "%s: %d changes, %d failing objects, %.0f ms (%s)",
            reason,
            report.changes,
            len({f.key for f in report.failures}),
            report.seconds * 1000,
            kind,
        )
        return report

    def _own(self, wanted: HostPlan) -> None:
        """Record the NIC namespaces about to be created before creating them: a crash in
        between must not leave namespaces the agent would no longer know are its own."""
        if not wanted.ports.keys() <= self.owned:
            self.owned |= set(wanted.ports)
            if self.state_dir is not None:
                self.state_dir.save_namespaces(self.owned)

    async def flush(self) -> None:
        """Write what was applied to the state directory, if anything was since the last
        time. Not on every apply: writing every object costs what the host holds; the
        daemon flushes before it records a revision, so the revision never claims more."""
        if self.state_dir is None or not self._dirty:
            return
        self._dirty = False
        owned = set(self.owned)
        await asyncio.to_thread(
            self.state_dir.save_objects,
            dict(self.desired),
            self.server_id,
            owned,
            dict(self.kernel.loaded),
        )
        self.state_dir.save_namespaces(owned)  # forgets the namespaces deleted since


def collect_fully_between_resyncs() -> None:
    """Leave Python's full collections to ``resync``: one scans every object the agent holds
    (60 ms at 250 endpoints, 200 ms at 1,000, measured with ``gc.callbacks``), and a change
    arriving meanwhile waits for it -- the tail of the apply times. The young generations
    still collect as they come (what an apply makes and drops); the full collection runs
    after each periodic resync, off the apply path. Process-wide: the daemon and the agent
    benchmark call it."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTIONS_OFF)


def _is_balancing(key: str) -> bool:
    return protocol.kind_of(key) in MUX_KINDS


def _is_acl(key: str) -> bool:
    return protocol.kind_of(key) in (protocol.ACL, protocol.ACL_RULE)


def _nic(body: Body | None) -> str | None:
    nic = (body or {}).get("nic")
    return str(nic) if nic is not None else None


def _unique(failures: list[Failure]) -> list[Failure]:
    """One failure per object: the first reason found."""
    seen: dict[str, Failure] = {}
    for failure in failures:
        seen.setdefault(failure.key, failure)
    return list(seen.values())
