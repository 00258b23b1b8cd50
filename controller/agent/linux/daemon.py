"""``sdnc agent``: one host's agent, from its persisted state, until SIGTERM/SIGINT.

Stopping leaves the data plane as it is: endpoints keep their connectivity while the agent
restarts, and the restarted agent finds the kernel right and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller import protocol
from controller.agent.linux.dataplane import LinuxDataplane, collect_fully_between_resyncs
from controller.agent.linux.namespaces import NETNS_DIR
from controller.agent.linux.plan import router_name, router_prefix
from controller.agent.linux.probes import ProbeRunner
from controller.agent.linux.runner import Runner, connect_in
from controller.agent.linux.state import StateDir
from controller.agent.session import AgentSession, AgentState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    controllers: Sequence[str]
    server: str
    token: str | None
    provider_address: str | None
    state_dir: Path
    resync_interval: float = 10.0
    tls: ssl.SSLContext | None = None


async def run_agent(options: Options) -> None:
    collect_fully_between_resyncs()
    state_dir = StateDir(options.state_dir)
    saved = state_dir.load()
    dataplane = LinuxDataplane(
        options.server,
        state_dir=state_dir,
        provider_address=options.provider_address,
        saved=saved,
    )
    log.info(
        "agent %s: resuming from revision %d with %d objects",
        options.server,
        saved.applied_revision,
        len(saved.objects),
    )
    # Repair the host from what was last applied even before a controller answers.
    await dataplane.reconcile("start")
    # Probes leave from the router namespace of the DIP's virtual network: their source is
    # the subnet's gateway address, and they do not depend on anything outside the host.
    probes = ProbeRunner(options.server, connect_in, lambda address: _router_of(dataplane, address))
    session = AgentSession(
        options.controllers,
        options.server,
        options.token,
        dataplane,
        provider_address=options.provider_address,
        state=AgentState(saved.applied_revision, dict(saved.objects)),
        tls=options.tls,
        prober=probes.prober,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.create_task(session.run(), name="session"),
        asyncio.create_task(
            dataplane.resync(options.resync_interval, session.report), name="resync"
        ),
        asyncio.create_task(_keep_revision(session, dataplane, state_dir), name="revision"),
        asyncio.create_task(probes.run(session.probe_again), name="probes"),
    ]
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in [waiter, *tasks]:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await dataplane.close()
    revision = session.state.applied_revision
    await dataplane.flush()
    state_dir.save_revision(revision)
    log.info("agent %s: stopped at revision %d", options.server, session.state.applied_revision)


def _router_of(dataplane: LinuxDataplane, address: str) -> str | None:
    """The router namespace of the local endpoint with ``address`` in the desired state (its
    virtual network's), whether or not the last apply went through whole."""
    for key, body in dataplane.desired.items():
        if protocol.kind_of(key) == protocol.ENDPOINT and body.get("ip") == address:
            vnet = body.get("virtualNetwork")
            server = dataplane.server_id or dataplane.server
            return router_name(server, str(vnet)) if vnet else None
    return None


async def _keep_revision(
    session: AgentSession, dataplane: LinuxDataplane, state_dir: StateDir
) -> None:
    """Persist the applied objects and revision as they move: the objects first, so the
    revision never claims more than they hold."""
    written = session.state.applied_revision
    while True:
        await asyncio.sleep(0.5)
        revision = session.state.applied_revision
        await dataplane.flush()
        if revision != written:
            state_dir.save_revision(revision)
            written = revision


async def tear_down(
    server: str,
    state_dir: Path,
    *,
    provider_address: str | None = None,
    runner: Runner | None = None,
) -> list[str]:
    """Remove what the agent of ``server`` built on this host -- the NIC namespaces its state
    directory says it created, its router namespaces (with their bridges, VXLAN devices and
    rulesets), a mux role's device, rules and table -- then its state directory. The
    namespaces of its that remain (none, unless the kernel refused to delete one)."""
    state = StateDir(state_dir)
    saved = state.load()
    dataplane = LinuxDataplane(
        server, runner=runner, state_dir=None, provider_address=provider_address, saved=saved
    )
    owned = set(saved.namespaces)
    try:
        # Nothing is wanted: the full reconcile this first apply runs deletes what is owned.
        await dataplane.apply({}, {}, list(saved.objects))
        await dataplane.mux.stop()  # and what a mux role made, if the server was a mux
    finally:
        await dataplane.close()
    prefix = router_prefix(saved.server_id or server)
    present = set(NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else set()
    remaining = sorted(
        path.name for path in present if path.name in owned or path.name.startswith(prefix)
    )
    if not remaining:
        state.remove()
    log.info("agent %s: torn down (%d namespaces remain)", server, len(remaining))
    return remaining
