"""``sdnc trace SRC DST``: why can (or can't) one endpoint reach another?

It asks the controller's ``diagnostics/connectivityCheck`` (docs/nbi.md) and prints the hops
the packet takes -- the sender's ACLs, the tunnel, the receiver's ACLs -- with the rule that
decided, and the verdict. Without ``--network`` the sender's virtual network is the one whose
network interface holds SRC (the command says so when several do).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from controller.client import render
from controller.client.commands import Controller, OutputFormat, OutputOption, connected, stdout
from controller.client.http import DEFAULT_URL, Client, ClientError

CHECK = "/diagnostics/connectivityCheck"
Json = dict[str, Any]


class Protocol(StrEnum):
    icmp = "icmp"
    tcp = "tcp"
    udp = "udp"


def trace(
    source: Annotated[str, typer.Argument(metavar="SRC", help="The sender's IP address.")],
    destination: Annotated[str, typer.Argument(metavar="DST", help="The receiver's IP address.")],
    protocol: Annotated[
        Protocol,
        typer.Option("--protocol", "-p", metavar="PROTOCOL", help="icmp (a ping), tcp or udp."),
    ] = Protocol.icmp,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, metavar="PORT", help="Destination port."),
    ] = None,
    source_port: Annotated[
        int | None,
        typer.Option("--source-port", min=1, max=65535, metavar="PORT", help="Source port."),
    ] = None,
    network: Annotated[
        str | None,
        typer.Option(
            "--network", metavar="VNET", help="The sender's virtual network (id or resourceRef)."
        ),
    ] = None,
    to_network: Annotated[
        str | None,
        typer.Option(
            "--to-network", metavar="VNET", help="The receiver's (default: the sender's)."
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
    controller: Controller = DEFAULT_URL,
) -> None:
    """The path of one packet from SRC to DST through the compiled policy, and the verdict.

    sdnc trace 10.20.1.10 10.20.1.20 --protocol tcp --port 443"""
    for name, value in (("SRC", source), ("DST", destination)):
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r} is not an IP address", param_hint=name) from exc
    if protocol is not Protocol.icmp and port is None:
        raise typer.BadParameter(f"a {protocol} trace needs --port", param_hint="--port")
    with connected(controller) as client:
        sender = _network_ref(network) if network else _network_of(client, source)
        receiver = _network_ref(to_network) if to_network else sender
        body = _check(source, destination, sender, receiver, protocol, port, source_port)
        answer = client.put(CHECK, body).resource
        result_ref = answer["properties"]["connectivityCheckResult"]["resourceRef"]
        result = client.get(result_ref)
    out = stdout()
    if output in (OutputFormat.json, OutputFormat.yaml):
        render.data(out, result, output.value)
        return
    show(out, result["properties"], wide=output is OutputFormat.wide)
    if result["properties"]["result"]["status"] != "Success":
        raise typer.Exit(2)


def _network_ref(text: str) -> str:
    return text if text.startswith("/") else f"/virtualNetworks/{text}"


def _network_of(client: Client, address: str) -> str:
    """The virtual network of the network interfaces holding ``address``; one, or an error."""
    found: set[str] = set()
    for nic in client.get("/networkInterfaces").get("value") or []:
        for config in nic.get("properties", {}).get("ipConfigurations") or []:
            properties = config.get("properties", {})
            subnet = (properties.get("subnet") or {}).get("resourceRef", "")
            if properties.get("privateIPAddress") == address and "/subnets/" in subnet:
                found.add(subnet.split("/subnets/")[0])
    if len(found) != 1:
        where = "no network interface holds it" if not found else f"it is in {sorted(found)}"
        raise ClientError(f"give the sender's virtual network with --network: {where}")
    return found.pop()


def _check(
    source: str,
    destination: str,
    sender: str,
    receiver: str,
    protocol: Protocol,
    port: int | None,
    source_port: int | None,
) -> Json:
    properties: Json = {
        "senderIpAddress": source,
        "receiverIpAddress": destination,
        "senderVirtualNetwork": {"resourceRef": sender},
        "receiverVirtualNetwork": {"resourceRef": receiver},
        "protocol": protocol.value.capitalize(),
    }
    if protocol is not Protocol.icmp:
        ports = {"destinationPort": port, "sourcePort": source_port}
        properties[f"{protocol.value}ProtocolConfig"] = {
            k: v for k, v in ports.items() if v is not None
        }
    return {"resourceId": "action", "properties": properties}


def show(out: Console, properties: Json, *, wide: bool = False) -> None:
    """The hops as a table, then the verdict (and its reason)."""
    verdict = properties["result"]
    rows = [_hop_row(index, hop, wide) for index, hop in enumerate(verdict["hops"], start=1)]
    headers = ["#", "HOP", "HOST", "DETAIL"]
    title = (
        f"{properties['senderIpAddress']} -> {properties['receiverIpAddress']} "
        f"{properties['protocol']} (policy revision {properties.get('revision')})"
    )
    out.print(render.table(title, headers, rows))
    if verdict["status"] == "Success":
        out.print("[green]Success[/green]: the packet arrives")
    else:
        out.print(f"[red]Failure[/red]: {verdict.get('reason', '')}", highlight=False)


def _ref(value: object, wide: bool) -> str:
    if not isinstance(value, dict):
        return "-" if value is None else str(value)
    ref = value.get("resourceRef") or value.get("instanceId") or "-"
    return f"{ref} ({value.get('instanceId')})" if wide and value.get("resourceRef") else ref


def _hop_row(index: int, hop: Json, wide: bool) -> list[str]:
    kind = hop["type"]
    host = _ref(hop.get("host") or hop.get("sourceHost"), wide)
    if kind in ("SenderEndpoint", "ReceiverEndpoint"):
        detail = f"{hop.get('ipAddress')} on {_ref(hop.get('networkInterface'), wide)}"
        acls = ", ".join(_ref(acl, wide) for acl in hop.get("acls") or []) or "no ACL"
        detail += f"; ACLs: {acls}"
    elif kind in ("SenderAcls", "ReceiverAcls"):
        decided = {
            "Rule": f"by rule {_ref(hop.get('rule'), wide)}",
            "DefaultAction": f"by the default action of {_ref(hop.get('acl'), wide)}",
            "NoAcl": "(no ACL)",
            "MissingAcl": f"(ACL {_ref(hop.get('acl'), wide)} is not on the host)",
        }.get(str(hop.get("decidedBy")), str(hop.get("decidedBy")))
        detail = f"{hop.get('direction')}: {hop.get('action')} {decided}"
    elif kind == "Encapsulation":
        detail = (
            f"{hop.get('encapsulation')} VSID {hop.get('vsid')}: "
            f"{hop.get('sourceProviderAddress')} -> {hop.get('destinationProviderAddress')} "
            f"({_ref(hop.get('destinationHost'), wide)})"
        )
    elif kind == "LocalDelivery":
        detail = "same host: routed locally"
    elif kind == "LoadBalancer":
        rule = _ref(hop.get("rule") or hop.get("inboundNatRule"), wide)
        chosen = hop.get("dip") or f"each of {', '.join(hop.get('dips') or []) or 'none'}"
        detail = (
            f"{hop.get('vip')}:{hop.get('frontendPort')} by {rule} -> "
            f"{chosen}:{hop.get('backendPort')}"
        )
    else:
        detail = ""
    return [str(index), kind, host, detail]
