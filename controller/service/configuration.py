"""``configurationState``: whether the hosts applied what the controller asked of them.

Derived from what the agents report (their applied revision, per-object failures) and whether
one is connected -- never from the controller's own progress, so a host that is down shows
``HostNotConnectedToController`` while ``provisioningState`` stays ``Succeeded``:

network interface  ``Uninitialized`` (not bound to a server, or the host has not applied the
                   NIC's last change yet), ``Success``, ``Failure`` (the host reported failures
                   for the NIC's objects, or no agent is connected for its host)
server             ``Success`` when its agent is connected, else ``Failure``
load balancer mux  ``Uninitialized`` (not placed on a server), else its server's state
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.store.agents import AgentRepository, AgentState, is_live
from controller.store.repository import ResourceRepository, StoredResource

SOURCE = "VirtualSwitch"
# Kinds placed on a server, whose state is that of the server's agent.
PLACED = ("networkInterfaces", "loadBalancerMuxes")


@dataclass(frozen=True)
class Hosts:
    """What the configuration states of some rows need from the database: the server each
    NIC or mux is placed on, those servers' agents, and their resourceRefs."""

    server_of: Mapping[str, uuid.UUID]
    agents: Mapping[uuid.UUID, AgentState]
    refs: Mapping[uuid.UUID, str]


async def hosts_of(
    repo: ResourceRepository, rows: Sequence[StoredResource], *, is_postgres: bool
) -> Hosts | None:
    """The database's part of the states of ``rows`` (None: none of them has one)."""
    placed = [row for row in rows if row.kind in PLACED]
    servers = [row for row in rows if row.kind == "servers"]
    if not placed and not servers:
        return None
    server_keys = {_server_key(row) for row in placed} - {None}
    found = await repo.find(sorted(k for k in server_keys if k))
    server_of = {key: found[key][0] for key in server_keys if key and key in found}
    # Messages name a server as operators do: by its resourceRef.
    refs = dict(found.values())
    refs.update((row.instance_id, row.resource_ref) for row in servers)
    wanted = list({*server_of.values(), *(s.instance_id for s in servers)})
    agents = await AgentRepository(repo.connection, is_postgres=is_postgres).states(wanted)
    return Hosts(server_of, agents, refs)


def states_of(
    rows: Sequence[StoredResource], hosts: Hosts | None
) -> dict[uuid.UUID, dict[str, Any]]:
    """The configuration states of ``rows`` (pure: a big page's run off the event loop)."""
    if hosts is None:
        return {}
    children = _configs_by_nic(rows)
    now = datetime.now(UTC)
    result: dict[uuid.UUID, dict[str, Any]] = {}
    for row in rows:
        if row.kind == "servers":
            agent = hosts.agents.get(row.instance_id)
            server_id = row.instance_id
            result[server_id] = _server_state(server_id, server_id, agent, now, hosts.refs)
        elif row.kind in PLACED:
            result[row.instance_id] = _placed_state(row, hosts, children, now)
    return result


def _placed_state(
    row: StoredResource, hosts: Hosts, children: Mapping[uuid.UUID, set[str]], now: datetime
) -> dict[str, Any]:
    """The state of a NIC or a mux, from the agent of the server it is placed on."""
    key = _server_key(row)
    server = hosts.server_of.get(key) if key else None
    agent = hosts.agents.get(server) if server else None
    if row.kind == "networkInterfaces":
        return _nic_state(row, server, agent, children, now, hosts.refs)
    if server is None:
        return _state(row.instance_id, "Uninitialized", now, [])
    return _server_state(row.instance_id, server, agent, now, hosts.refs)


def _server_key(row: StoredResource) -> str | None:
    """The server a NIC or a mux is placed on."""
    ref = (row.properties.get("server") or {}).get("resourceRef")
    return str(ref).lower() if ref else None


def _configs_by_nic(rows: Sequence[StoredResource]) -> dict[uuid.UUID, set[str]]:
    keys: dict[uuid.UUID, set[str]] = {}
    for row in rows:
        if row.kind == "networkInterfaces/ipConfigurations" and row.parent_id is not None:
            keys.setdefault(row.parent_id, set()).add(f"endpoint/{row.instance_id}")
    return keys


def _live(state: AgentState | None, now: datetime) -> bool:
    return state is not None and is_live(state.connected, state.last_seen, now)


def _state(
    resource: uuid.UUID, status: str, now: datetime, details: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "id": str(resource),
        "status": status,
        "lastUpdatedTime": now.isoformat(),
        "detailedInfo": details,
    }


def _not_connected(server: uuid.UUID, refs: Mapping[uuid.UUID, str]) -> dict[str, str]:
    name = refs.get(server, str(server))
    return {
        "source": SOURCE,
        "code": "HostNotConnectedToController",
        "message": f"no host agent of server {name} is connected to the controller",
    }


def _nic_state(
    nic: StoredResource,
    server: uuid.UUID | None,
    state: AgentState | None,
    configs: Mapping[uuid.UUID, set[str]],
    now: datetime,
    refs: Mapping[uuid.UUID, str],
) -> dict[str, Any]:
    if server is None:
        return _state(nic.instance_id, "Uninitialized", now, [])
    if not _live(state, now):
        return _state(nic.instance_id, "Failure", now, [_not_connected(server, refs)])
    assert state is not None
    mine = configs.get(nic.instance_id, set()) | {f"nic/{nic.instance_id}"}
    reported = (state.failures or {}).get("failures") or []
    failures = [f for f in reported if f.get("key") in mine]
    if failures:
        details = [
            {"source": SOURCE, "code": str(f.get("code")), "message": str(f.get("message"))}
            for f in failures
        ]
        return _state(nic.instance_id, "Failure", now, details)
    status = "Success" if state.applied_revision >= nic.revision else "Uninitialized"
    return _state(nic.instance_id, status, now, [])


def _server_state(
    resource: uuid.UUID,
    server: uuid.UUID,
    state: AgentState | None,
    now: datetime,
    refs: Mapping[uuid.UUID, str],
) -> dict[str, Any]:
    """The state of ``server``, or of a mux on it (``resource``), from the server's agent."""
    if _live(state, now):
        return _state(resource, "Success", now, [])
    return _state(resource, "Failure", now, [_not_connected(server, refs)])
