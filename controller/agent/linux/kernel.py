"""Make the kernel match a ``HostPlan``: observe, compute the difference, apply only that --
the whole host (``reconcile``: ``observe`` then ``repair``), or a change against the agent's
model of the kernel (``delta``). See ``repair.py`` for what the agent owns and may delete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.agent.linux.changes import DELETE, FINISH, HOST, Changes, Command, execute
from controller.agent.linux.delta import entry_changes, port_changes, structural
from controller.agent.linux.observe import Observed, list_ruleset, observe
from controller.agent.linux.observe import port as observe_port
from controller.agent.linux.plan import HostPlan
from controller.agent.linux.repair import diff, diff_steps, digest
from controller.agent.linux.routes import Routing, routing_lines
from controller.agent.linux.runner import GLOBAL, CommandError, Op, Runner
from controller.agent.session import Failure

log = logging.getLogger(__name__)


@dataclass
class Result:
    changes: int
    described: list[str]
    failures: list[Failure]
    owned: set[str]  # NIC namespaces the agent owns after this reconcile


@dataclass
class Kernel:
    runner: Runner
    # Per router namespace: digest of the ruleset text loaded, digest of `nft -s list ruleset`
    # right after; both unchanged => the ruleset in the kernel is the one wanted.
    loaded: dict[str, tuple[str, str]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)  # changed in place, listing not recorded

    async def reconcile(
        self, plan: HostPlan, rulesets: Mapping[str, str], owned: set[str]
    ) -> Result:
        return await self.repair(plan, rulesets, owned, await self.observe(plan, owned))

    async def observe(self, plan: HostPlan, owned: set[str]) -> Observed:
        """Everything the plan or the agent's ownership may touch (the full scan)."""
        ipv6 = {p.router for p in plan.ports.values() if p.ips6}
        ipv6 |= {s.router for s in plan.segments.values() if ":" in s.gateway}
        ipv6 |= {n for n, p in plan.ports.items() if p.ips6}
        observed = await observe(self.runner, plan.routers, [*plan.ports, *owned], ipv6)
        self.runner.keep_only(observed.namespaces | {self.runner.host_netns or ""})
        return observed

    async def repair(
        self, plan: HostPlan, rulesets: Mapping[str, str], owned: set[str], observed: Observed
    ) -> Result:
        """Change what ``observed`` shows differs from the plan."""
        changes = diff(plan, observed, owned, rulesets, self.loaded)
        return await self.execute(plan, owned, changes)

    async def changes(
        self, plan: HostPlan, rulesets: Mapping[str, str], owned: set[str], observed: Observed
    ) -> Changes:
        """What ``repair`` would change, computed in steps that let applies run between them
        (a whole host's difference is tens of milliseconds at a thousand endpoints)."""
        changes = Changes()
        loaded = dict(self.loaded)  # as it is now: an apply between steps may change it
        for _ in diff_steps(changes, plan, observed, owned, rulesets, loaded):
            await asyncio.sleep(0)
        return changes

    async def execute(self, plan: HostPlan, owned: set[str], changes: Changes) -> Result:
        """Make the ``changes`` of a repair."""
        outcome = await execute(self.runner, changes)
        for command in outcome.succeeded:
            if command.stdin is not None and command.netns is not None:
                await self._remember(command.netns, command.stdin)
        for router in list(self.loaded):
            if router not in plan.routers:
                del self.loaded[router]
        kept = {
            n for n in owned if n not in plan.ports and f"netns del {n}" in outcome.failed_lines
        }
        return Result(outcome.changes, changes.describe(), outcome.failures, kept | set(plan.ports))

    async def delta(
        self,
        old: HostPlan,
        new: HostPlan,
        scripts: Mapping[str, str],
        owned: set[str],
    ) -> Result | None:
        """Apply the difference between the plan the kernel holds (``old``, the model) and
        ``new`` without reading the whole host: new NICs are built from nothing, changed ones
        are observed alone, removed ones deleted, neighbour/FDB entries changed by difference
        and ``scripts`` (per router, one nft transaction of the elements and chains that
        changed) loaded. None: a structural change, for a full reconcile to apply."""
        # A NIC not re-planned is the same object in both plans: only the others are compared.
        # When none was (an ACL change, say), one comparison of the two dicts says so.
        same = old.ports == new.ports
        moved = [] if same else [n for n, p in old.ports.items() if new.ports.get(n, p) is not p]
        if structural(old, new) or any(
            (old.ports[n].router, old.ports[n].veth) != (new.ports[n].router, new.ports[n].veth)
            for n in moved
        ):
            return None
        changes = Changes()
        for name in sorted(old.ports.keys() - new.ports.keys()):
            # The veth pair first: the kernel dismantles a deleted namespace in the
            # background, and its veth (with the /32 routes) must be gone when this returns.
            gone = old.ports[name]
            op = Op("del", gone.veth)
            changes.add(DELETE, "ip", gone.router, f"link del {gone.veth}", (), op)
            if name in owned:
                changes.add(HOST, "ip", GLOBAL, f"netns del {name}")
        differing = () if same else (n for n, p in new.ports.items() if old.ports.get(n) is not p)
        changed = [new.ports[n] for n in sorted(differing) if old.ports.get(n) != new.ports[n]]
        seen = await asyncio.gather(
            *(
                observe_port(
                    self.runner, p.router, p.veth, p.netns, bool(p.ips6 or old.ports[p.netns].ips6)
                )
                for p in changed
                if p.netns in old.ports
            )
        )
        views = iter(seen)
        for port in changed:
            before = old.ports.get(port.netns)
            port_changes(changes, before, port, next(views) if before is not None else None)
        entry_changes(changes, old, new)
        for router in sorted(new.routers):
            had, wants = old.routing.get(router, Routing()), new.routing.get(router, Routing())
            if had != wants:  # only the router namespaces whose route tables changed
                deleted = {old.ports[n].veth for n in old.ports.keys() - new.ports.keys()}
                routing_lines(changes, router, had, wants, deleted)
        for router, script in sorted(scripts.items()):
            if script:
                argv = ["ip", "netns", "exec", router, "nft", "-f", "-"]
                summary = f"nft -f - ({script.count(chr(10))} changes to inet/bridge sdnc)"
                # Sorted only if it fails: a router of 1,000 endpoints has 2,000 keys.
                keys = tuple(new.keys_of_router.get(router, ()))
                changes.command(FINISH, Command(router, argv, keys, script, summary, nft=True))
        outcome = await execute(self.runner, changes)
        for command in outcome.succeeded:
            if command.stdin is not None and command.netns is not None:
                # Changed in place: until ``record`` lists it, a full reconcile would
                # reload it (which resets the counters), having nothing to compare with.
                self.loaded[command.netns] = ("", "")
                self.pending.add(command.netns)
        removed = old.ports.keys() - new.ports.keys()
        kept = {n for n in owned if n not in new.ports and n not in removed}
        kept |= {n for n in removed & owned if f"netns del {n}" in outcome.failed_lines}
        return Result(outcome.changes, changes.describe(), outcome.failures, kept | set(new.ports))

    async def listings(self, routers: set[str]) -> dict[str, str | None]:
        """The rulesets of ``routers`` as listed now (None: could not be listed)."""
        names = sorted(routers)
        return dict(zip(names, await asyncio.gather(*map(self._list, names)), strict=True))

    async def load_in_place(self, router: str, script: str) -> bool:
        """One more in-place transaction in ``router`` (its ruleset stays to be listed);
        False, logged, if the kernel refused it."""
        self.loaded[router] = ("", "")
        self.pending.add(router)
        try:
            await self.runner.nft(router, script)
        except (CommandError, OSError) as exc:
            log.warning("[%s] nft -f - failed: %s", router, exc)
            return False
        return True

    def record(self, texts: Mapping[str, str], listed: Mapping[str, str | None]) -> None:
        """Remember the listings of rulesets changed in place, as after loading them whole: a
        later full reconcile compares the kernel's listing with that one (``texts``: each
        router's whole ruleset, as ``render`` makes it)."""
        for router, listing in listed.items():
            if listing is not None and router in texts:
                self.loaded[router] = (digest(texts[router]), digest(listing))
        self.pending.clear()

    async def _list(self, router: str) -> str | None:
        return await list_ruleset(self.runner, router)

    async def _remember(self, router: str, text: str) -> None:
        listed = await self._list(router)
        if listed is not None:
            self.loaded[router] = (digest(text), digest(listed))
