"""``diagnostics/connectivityCheck``: can one endpoint reach another, and if not, why?

NC's asynchronous pattern (as ``slb_state``): ``PUT /diagnostics/connectivityCheck`` with
``senderIpAddress``, ``receiverIpAddress``, ``senderVirtualNetwork``,
``receiverVirtualNetwork`` (default: the sender's), ``protocol`` (``Icmp``, ``Tcp``, ``Udp``)
and its ``icmpProtocolConfig``/``tcpProtocolConfig``/``udpProtocolConfig``; the answer names an
``operationId`` whose result is read at ``connectivityCheckResults/{operationId}``. NC sends a
real probe through the hosts; here the answer comes from the reference evaluator
(``controller.policy.trace``) over the policy this replica compiled for the hosts, once it has
compiled everything committed, so it says what packets do once the hosts applied it (the
result names that revision). It completes within the PUT and is stored, so any replica
answers the GET, for an hour.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core.kinds import Registry
from controller.core.paths import parse_ref
from controller.core.wire import fold_members
from controller.errors import InvalidInput, InvalidReference, NotFound, ServiceUnavailable
from controller.policy.acl_semantics import Address
from controller.policy.trace import CompiledPolicy, Probe, Trace, trace
from controller.resources.virtual_networks import VIRTUAL_NETWORKS
from controller.store.database import Database
from controller.store.diagnostics import DiagnosticResults, StoredResult
from controller.store.repository import ResourceRepository

Json = dict[str, Any]
CONNECTIVITY_CHECK = "connectivityCheck"
RESULT_LIFETIME = timedelta(hours=1)
LISTED = 1000  # results a listing shows at most (each is a few KB)
# This replica's compiled policy once it holds everything committed (its revision), or None
# when it could not catch up in time.
PolicyReader = Callable[[], Awaitable[tuple[int, CompiledPolicy] | None]]

_MEMBERS = (
    "senderIpAddress",
    "receiverIpAddress",
    "senderVirtualNetwork",
    "receiverVirtualNetwork",
    "protocol",
    "icmpProtocolConfig",
    "tcpProtocolConfig",
    "udpProtocolConfig",
    "disableTracing",
)
_LOOKUP = {name.lower(): name for name in _MEMBERS}
_PROTOCOLS = {"icmp": "Icmp", "tcp": "Tcp", "udp": "Udp"}
_PORTS = {"sourceport": "sourcePort", "destinationport": "destinationPort"}
# Errors point at members as every error does: the resource, then the member's path.
_AT = "/diagnostics/connectivityCheck/properties"


@dataclass(frozen=True)
class Request:
    """A check as the client asked it (canonical spellings), networks by resourceRef."""

    sender: Address
    receiver: Address
    sender_network: str
    receiver_network: str
    protocol: str
    source_port: int | None
    destination_port: int | None

    def echo(self) -> Json:
        """The request's members as the result shows them."""
        echoed: Json = {
            "senderIpAddress": str(self.sender),
            "receiverIpAddress": str(self.receiver),
            "senderVirtualNetwork": {"resourceRef": self.sender_network},
            "receiverVirtualNetwork": {"resourceRef": self.receiver_network},
            "protocol": self.protocol,
        }
        if self.protocol != "Icmp":
            config = {"sourcePort": self.source_port, "destinationPort": self.destination_port}
            echoed[f"{self.protocol.lower()}ProtocolConfig"] = {
                k: v for k, v in config.items() if v is not None
            }
        return echoed


@dataclass(frozen=True)
class ConnectivityReport:
    operation_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    result: Json


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parse_request(properties: Json) -> Request:
    """The check ``properties`` ask for; 400 naming the member when they cannot be read."""
    members = fold_members(properties, _LOOKUP)
    sender = _address(members, "senderIpAddress")
    receiver = _address(members, "receiverIpAddress")
    if sender.version != receiver.version:
        raise InvalidInput(
            "senderIpAddress and receiverIpAddress are of different IP versions",
            target=f"{_AT}/receiverIpAddress",
        )
    sender_network = _reference(members, "senderVirtualNetwork")
    if sender_network is None:
        raise InvalidInput(
            'senderVirtualNetwork is required: {"resourceRef": "/virtualNetworks/<id>"}',
            target=f"{_AT}/senderVirtualNetwork",
        )
    receiver_network = _reference(members, "receiverVirtualNetwork")
    protocol = _protocol(members.get("protocol", "Icmp"))
    source_port = destination_port = None
    if protocol != "Icmp":
        name = f"{protocol.lower()}ProtocolConfig"
        config = members.get(name, {})
        if not isinstance(config, dict):
            raise InvalidInput(f"{name} must be a JSON object", target=f"{_AT}/{name}")
        ports = fold_members(config, _PORTS)
        source_port = _port(ports.get("sourcePort"), f"{_AT}/{name}/sourcePort")
        destination_port = _port(ports.get("destinationPort"), f"{_AT}/{name}/destinationPort")
        if destination_port is None:
            raise InvalidInput(
                f"a {protocol} check needs {name}.destinationPort (1-65535)",
                target=f"{_AT}/{name}/destinationPort",
            )
    return Request(
        sender,
        receiver,
        sender_network,
        receiver_network or sender_network,
        protocol,
        source_port,
        destination_port,
    )


def _address(members: Json, name: str) -> Address:
    value = members.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is required: an IP address", target=f"{_AT}/{name}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        message = f"{name} {value!r} is not an IP address"
        raise InvalidInput(message, target=f"{_AT}/{name}") from None


def _reference(members: Json, name: str) -> str | None:
    """The resourceRef of member ``name``; None when it is absent."""
    value = members.get(name)
    if value is None:
        return None
    ref = (
        fold_members(value, {"resourceref": "resourceRef"}).get("resourceRef")
        if isinstance(value, dict)
        else None
    )
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(
            f'{name} must be {{"resourceRef": "/virtualNetworks/<id>"}}',
            target=f"{_AT}/{name}",
        )
    return ref.strip()


def _protocol(value: object) -> str:
    found = _PROTOCOLS.get(str(value).strip().lower()) if isinstance(value, str) else None
    if found is None:
        raise InvalidInput(f"protocol {value!r} is not Icmp, Tcp or Udp", target=f"{_AT}/protocol")
    return found


def _port(value: object, target: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(f"{target.rpartition('/')[2]} must be a port, 1-65535", target=target)
    return value


class ConnectivityChecks:
    def __init__(
        self,
        database: Database,
        registry: Registry,
        policy: PolicyReader,
        *,
        lifetime: timedelta = RESULT_LIFETIME,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.database = database
        self.registry = registry
        self.policy = policy
        self.lifetime = lifetime
        self.clock = clock

    async def run(self, properties: Json) -> ConnectivityReport:
        """Evaluate the check ``properties`` ask for and store its result."""
        request = parse_request(properties)
        networks = await self._networks(request)
        compiled = await self.policy()
        if compiled is None:
            raise ServiceUnavailable(
                "this replica has not yet compiled the latest changes; try again shortly"
            )
        revision, policy = compiled
        probe = Probe(
            request.sender,
            networks[request.sender_network],
            request.receiver,
            networks[request.receiver_network],
            _packet_protocol(request),
            request.source_port,
            request.destination_port,
        )
        found = trace(policy, probe)
        now = self.clock()
        report = ConnectivityReport(uuid.uuid4(), now, now + self.lifetime, {})

        async def work(connection: AsyncConnection) -> None:
            refs = await _refs(connection, self.database.is_postgres, found)
            result = request.echo() | {"revision": revision, "result": _result(found, refs)}
            results = DiagnosticResults(connection)
            await results.prune(now)
            await results.save(
                StoredResult(
                    report.operation_id, CONNECTIVITY_CHECK, result, now, report.expires_at
                )
            )
            report.result.update(result)

        await self.database.run(work)
        return report

    async def result(self, operation_id: str) -> ConnectivityReport:
        """The stored result of ``operation_id``; 404 when unknown or expired."""
        try:
            wanted: uuid.UUID | None = uuid.UUID(operation_id)
        except ValueError:
            wanted = None

        async def work(connection: AsyncConnection) -> StoredResult | None:
            if wanted is None:
                return None
            return await DiagnosticResults(connection).load(
                wanted, CONNECTIVITY_CHECK, self.clock()
            )

        found = await self.database.run(work, write=False)
        if found is None:
            raise NotFound(
                f"no connectivityCheck result {operation_id} (unknown, or older than "
                f"{int(self.lifetime.total_seconds())} s)",
                target=operation_id,
            )
        return _report(found)

    async def results(self) -> list[ConnectivityReport]:
        """Every unexpired result, newest first (at most ``LISTED``)."""

        async def work(connection: AsyncConnection) -> list[StoredResult]:
            found = DiagnosticResults(connection)
            return await found.of_kind(CONNECTIVITY_CHECK, self.clock(), limit=LISTED)

        return [_report(found) for found in await self.database.run(work, write=False)]

    async def _networks(self, request: Request) -> dict[str, str]:
        """The instanceId of each virtual network the request names; 400 when one is not."""
        paths = {}
        for member, ref in (
            ("senderVirtualNetwork", request.sender_network),
            ("receiverVirtualNetwork", request.receiver_network),
        ):
            path = parse_ref(self.registry, ref)
            if path is None or path.kind is not VIRTUAL_NETWORKS:
                raise InvalidReference(
                    f"{member} {ref!r} is not a virtual network's resourceRef "
                    "(/virtualNetworks/<id>)",
                    target=f"{_AT}/{member}",
                )
            paths[ref] = (member, path.key)

        async def work(connection: AsyncConnection) -> dict[str, tuple[uuid.UUID, str]]:
            repo = ResourceRepository(connection, is_postgres=self.database.is_postgres)
            return await repo.find({key for _, key in paths.values()})

        found = await self.database.run(work, write=False)
        networks: dict[str, str] = {}
        for ref, (member, key) in paths.items():
            if key not in found:
                raise InvalidReference(
                    f"{member} {ref!r} names no virtual network", target=f"{_AT}/{member}"
                )
            networks[ref] = str(found[key][0])
        return networks


def _packet_protocol(request: Request) -> str:
    if request.protocol == "Icmp":
        return "icmp" if request.sender.version == 4 else "icmpv6"
    return request.protocol.lower()


# The hop members that name resources by instanceId; the result shows their resourceRefs too.
_NAMED = (
    "host", "sourceHost", "destinationHost", "endpoint", "networkInterface", "subnet", "acl",
    "rule", "inboundNatRule",
)  # fmt: skip


async def _refs(connection: AsyncConnection, is_postgres: bool, found: Trace) -> dict[str, str]:
    ids: dict[uuid.UUID, str] = {}
    for hop in found.hops:
        for name in [hop.get(member) for member in _NAMED] + list(hop.get("acls", [])):
            try:
                ids[uuid.UUID(str(name))] = str(name)
            except ValueError:
                continue
    refs = await ResourceRepository(connection, is_postgres=is_postgres).refs_of(ids)
    return {ids[instance_id]: ref for instance_id, ref in refs.items()}


def _result(found: Trace, refs: dict[str, str]) -> Json:
    def named(value: object) -> Json:
        return {"instanceId": value, "resourceRef": refs.get(str(value))}

    hops = []
    for hop in found.hops:
        shown = {
            member: named(value) if member in _NAMED and value is not None else value
            for member, value in hop.items()
        }
        if "acls" in shown:
            shown["acls"] = [named(acl) for acl in shown["acls"]]
        hops.append(shown)
    result: Json = {"status": found.status, "hops": hops}
    if found.reason is not None:
        reason = found.reason
        for instance_id, ref in refs.items():  # the resources it names, as the client knows them
            reason = reason.replace(instance_id, ref)
        result["reason"] = reason
    return result


def _report(found: StoredResult) -> ConnectivityReport:
    return ConnectivityReport(found.operation_id, found.created_at, found.expires_at, found.result)
