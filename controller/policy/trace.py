"""The connectivity check's reference evaluator: the path one packet takes through the policy
the controller compiled for the hosts, and whether it arrives (pure: no I/O).

It reads only what the hosts are sent -- each host's objects, as ``Compiler.snapshot`` gives
them -- and decides as the Linux agent enforces (``acl_semantics``, shared with the agent's
nftables renderer), so its verdict is a prediction of what packets do once every host has
applied the current revision. The hops:

``SenderEndpoint``     the sender's endpoint object on its host (address, MAC, ACLs)
``SenderAcls``         the sender's ACLs, outbound, on the sender's host: allowed or dropped,
                       by which ACL and rule (or default)
``Encapsulation``      to another host: the mapping object the sender's host holds for the
                       receiver (VSID, provider addresses); or ``LocalDelivery`` on one host
``ReceiverAcls``       the receiver's ACLs, inbound, on the receiver's host
``ReceiverEndpoint``   the receiver's endpoint object

To a VIP, a ``LoadBalancer`` hop comes first (``trace_lb``: the sender's host translates the
flow to a DIP before its ACLs see it), then the path to that DIP -- to each DIP in turn when
the check gives no source port (the first that fails says why).

The first hop that stops the packet ends the trace with its reason. Replies of an allowed flow
are not evaluated: the data plane tracks connections and lets them back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import protocol
from controller.policy.acl_semantics import Address, Packet, Verdict, acls_from_objects, decide
from controller.policy.trace_lb import through_load_balancer, to_dip

Body = Mapping[str, Any]
Json = dict[str, Any]
SUCCESS = "Success"
FAILURE = "Failure"


@dataclass(frozen=True)
class Probe:
    """What to check: ``sender``/``receiver`` addresses in virtual networks named by
    instanceId, and the first packet's protocol and ports."""

    sender: Address
    sender_network: str
    receiver: Address
    receiver_network: str
    protocol: str  # tcp, udp, icmp (icmpv6 for IPv6 addresses)
    source_port: int | None = None
    destination_port: int | None = None

    def packet(self) -> Packet:
        return Packet(
            self.sender, self.receiver, self.protocol, self.source_port, self.destination_port
        )


@dataclass(frozen=True)
class Placed:
    """An endpoint object where it is: its host (server instanceId), wire key and body."""

    host: str
    key: str
    body: Body


@dataclass
class Trace:
    status: str = SUCCESS
    reason: str | None = None
    hops: list[Json] = field(default_factory=list)

    def stop(self, reason: str) -> Trace:
        self.status, self.reason = FAILURE, reason
        return self


@dataclass(frozen=True)
class CompiledPolicy:
    """What the evaluator reads: every endpoint object with its host, and a host's objects."""

    endpoints: Callable[[], Iterable[Placed]]
    snapshot: Callable[[str], Mapping[str, Body]]


def trace(policy: CompiledPolicy, probe: Probe) -> Trace:
    """The path of ``probe``'s first packet and the verdict (see the module)."""
    result = Trace()
    sender = _find(policy.endpoints(), probe.sender, probe.sender_network)
    if sender is None:
        return result.stop(
            f"no endpoint with address {probe.sender} in virtual network "
            f"{probe.sender_network} is placed on a host"
        )
    result.hops.append(_endpoint_hop("SenderEndpoint", sender))
    here = policy.snapshot(sender.host)
    network = str(sender.body.get("virtualNetwork"))
    balanced = through_load_balancer(here, sender.host, network, probe)
    if balanced is None:
        return _onward(policy, probe, sender, here, result)
    result.hops.append(balanced.hop)
    if not balanced.dips:
        return result.stop(balanced.reason or "the load balancer sends the flow nowhere")
    # Every DIP the flow may go to: the first that fails says why; else the first's path.
    paths = [
        _onward(policy, to_dip(probe, dip, port, network), sender, here, _copy(result))
        for dip, port in balanced.dips
    ]
    return next((path for path in paths if path.status == FAILURE), paths[0])


def _copy(result: Trace) -> Trace:
    return Trace(result.status, result.reason, list(result.hops))


def _onward(
    policy: CompiledPolicy, probe: Probe, sender: Placed, here: Mapping[str, Body], result: Trace
) -> Trace:
    """From the sender's ACLs to the receiver (``probe.receiver`` an endpoint address)."""
    packet = probe.packet()
    verdict = decide(_acl_ids(sender.body), acls_from_objects(here), "outbound", packet)
    result.hops.append(_acl_hop("SenderAcls", sender.host, "outbound", verdict))
    if not verdict.allowed:
        return result.stop(_dropped("outbound", sender.host, verdict))
    if probe.sender_network != probe.receiver_network:
        return result.stop(
            f"virtual networks {probe.sender_network} and {probe.receiver_network} are "
            "isolated from each other: no route between them"
        )
    receiver_host = _route(here, sender, probe.receiver, result)
    if receiver_host is None:
        return result.stop(
            f"the sender's host {sender.host} has no endpoint or mapping for {probe.receiver} "
            f"in virtual network {probe.receiver_network}: nothing there to deliver to"
        )
    there = policy.snapshot(receiver_host)
    receiver = _find(
        (Placed(receiver_host, k, b) for k, b in there.items()
         if protocol.kind_of(k) == protocol.ENDPOINT),
        probe.receiver,
        probe.receiver_network,
    )  # fmt: skip
    if receiver is None:
        return result.stop(
            f"host {receiver_host} holds no endpoint for {probe.receiver}: the mapping "
            "points to a host that does not have it"
        )
    verdict = decide(_acl_ids(receiver.body), acls_from_objects(there), "inbound", packet)
    result.hops.append(_acl_hop("ReceiverAcls", receiver_host, "inbound", verdict))
    if not verdict.allowed:
        return result.stop(_dropped("inbound", receiver_host, verdict))
    result.hops.append(_endpoint_hop("ReceiverEndpoint", receiver))
    return result


def compiled_policy(
    objects: Mapping[str, Any], snapshot: Callable[[str], Mapping[str, Body]]
) -> CompiledPolicy:
    """The view of a ``Compiler``: its ``objects`` (name -> placed object) and ``snapshot``."""

    def endpoints() -> Iterable[Placed]:
        prefix = f"{protocol.ENDPOINT}:"
        for name, placed in list(objects.items()):
            if name.startswith(prefix):
                for host in placed.hosts:
                    yield Placed(host, placed.wire, placed.body)

    return CompiledPolicy(endpoints, snapshot)


def _find(candidates: Iterable[Placed], address: Address, network: str) -> Placed | None:
    for candidate in candidates:
        body = candidate.body
        if _same_address(body.get("ip"), address) and body.get("virtualNetwork") == network:
            return candidate
    return None


def _same_address(value: object, address: Address) -> bool:
    try:
        return ipaddress.ip_address(str(value)) == address
    except ValueError:
        return False


def _acl_ids(body: Body) -> list[str]:
    return [str(acl) for acl in body.get("acls") or []]


def _route(
    here: Mapping[str, Body], sender: Placed, receiver: Address, result: Trace
) -> str | None:
    """The host that holds ``receiver``, from what the sender's host knows; adds the hop."""
    network = sender.body.get("virtualNetwork")
    for key, body in here.items():
        kind = protocol.kind_of(key)
        if body.get("virtualNetwork") != network or not _same_address(body.get("ip"), receiver):
            continue
        if kind == protocol.ENDPOINT:
            result.hops.append({"type": "LocalDelivery", "host": sender.host})
            return sender.host
        if kind == protocol.MAPPING:
            own = here.get(protocol.object_key(protocol.HOST, sender.host), {})
            result.hops.append(
                {
                    "type": "Encapsulation",
                    "encapsulation": own.get("encapsulation", "Vxlan"),
                    "vsid": body.get("vsid"),
                    "sourceHost": sender.host,
                    "sourceProviderAddress": own.get("providerAddress"),
                    "destinationHost": body.get("host"),
                    "destinationProviderAddress": body.get("providerAddress"),
                }
            )
            return str(body.get("host"))
    return None


def _endpoint_hop(kind: str, placed: Placed) -> Json:
    body = placed.body
    return {
        "type": kind,
        "host": placed.host,
        "endpoint": placed.key.partition("/")[2],
        "networkInterface": body.get("nic"),
        "ipAddress": body.get("ip"),
        "macAddress": body.get("mac"),
        "subnet": body.get("subnet"),
        "acls": _acl_ids(body),
    }


def _acl_hop(kind: str, host: str, direction: str, verdict: Verdict) -> Json:
    rule = verdict.rule.partition("/")[2] if verdict.rule else None
    return {
        "type": kind,
        "host": host,
        "direction": direction,
        "action": "Allow" if verdict.allowed else "Deny",
        "acl": verdict.acl,
        "rule": rule,
        "decidedBy": _decided_by(verdict),
    }


def _decided_by(verdict: Verdict) -> str:
    if verdict.missing is not None:
        return "MissingAcl"
    if verdict.acl is None:
        return "NoAcl"
    return "Rule" if verdict.rule else "DefaultAction"


def _dropped(direction: str, host: str, verdict: Verdict) -> str:
    if verdict.missing is not None:
        return f"ACL {verdict.missing} is not on host {host}; the endpoint's traffic is dropped"
    if verdict.rule is not None:
        rule = verdict.rule.partition("/")[2]
        return f"dropped {direction} on host {host} by rule {rule} of ACL {verdict.acl}"
    return f"dropped {direction} on host {host} by the default action of ACL {verdict.acl}"
