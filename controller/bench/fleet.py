"""``sdnc simulate-agents``: simulated agents for the servers in the controller's database.

Tooling, not the agent: it reads the database (to mint the servers' tokens), which an agent
never does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence

from controller.agent.simulator import AgentSpec, Fleet
from controller.southbound.admin import server_tokens
from controller.store.database import Database

log = logging.getLogger("simulate-agents")


async def run_fleet(
    database_url: str,
    controllers: Sequence[str],
    count: int,
    provider_network: str,
    *,
    failing_dips: frozenset[str] = frozenset(),
) -> None:
    """``sdnc simulate-agents``: agents for the first ``count`` servers, reporting every 5 s;
    the probes of ``failing_dips`` (ipConfiguration instanceIds) fail on their hosts."""
    database = Database(database_url)
    try:
        servers = await server_tokens(database, count)
    finally:
        await database.dispose()
    addresses = ipaddress.ip_network(provider_network).hosts()
    fleet = Fleet(
        controllers,
        [AgentSpec(server, token, str(next(addresses))) for server, token in servers],
    )
    fleet.start(failing_dips=failing_dips)
    try:
        while True:
            await asyncio.sleep(5)
            connected = sum(s.connected.is_set() for s in fleet.sessions)
            revisions = [s.state.applied_revision for s in fleet.sessions]
            log.info(
                "%d/%d agents connected; applied revisions %d..%d",
                connected,
                len(fleet.sessions),
                min(revisions, default=0),
                max(revisions, default=0),
            )
    finally:
        await fleet.stop()
