"""``diagnostics/connectivityCheck``: the verdict and the hops of one packet, evaluated over the
policy compiled for the hosts, through the REST API as NC's scripts call it.

The fabric (``tests.support.southbound``): virtual network blue with NIC a1 on host A and b1
on host B, red with c1 on host C; agents connect so that the hosts have provider addresses.
a1's ACL ``web`` lets TCP 80 in and denies the rest of what comes in.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from controller.settings import Settings
from tests.support.bodies import acl, acl_rule
from tests.support.cli import Outcome, sdnc
from tests.support.nbi import assert_error, put, put_raw
from tests.support.southbound import (
    FAST,
    PROVIDER,
    VNET_BLUE,
    VNET_RED,
    WEB_ACL,
    Agents,
    Fabric,
    InProcessController,
    eventually,
    in_process_controller,
)

Json = dict[str, Any]
A1, B1, C1 = "24.30.1.10", "24.30.1.20", "10.1.1.30"
CHECK = "/networking/v1/diagnostics/connectivityCheck"


@pytest.fixture
async def hosts(
    controller: InProcessController, fabric: Fabric, agents: Agents, agent_tokens: dict[str, str]
) -> Fabric:
    """The fabric with every host's agent connected (so each has its provider address) and
    host B holding the mapping of a1; a1's ACL denies inbound what rule r1 does not allow."""
    started = {
        host: agents.start(host, agent_tokens[host], provider_address=PROVIDER[host])
        for host in PROVIDER
    }
    await put(
        controller.http,
        WEB_ACL,
        acl(acl_rule("r1", 100), inboundDefaultAction="Deny", outboundDefaultAction="Permit"),
    )
    mapping = fabric.mapping("a1")
    await eventually(
        lambda: mapping in started["hostB"].dataplane_log.upserted(), 15, "b1's host to map a1"
    )
    return fabric


def body(sender: str, receiver: str, protocol: str = "Icmp", **extra: object) -> Json:
    """What NC's Test-VNetPing script sends (its casing of ``sendervirtualNetwork``)."""
    properties: Json = {
        "senderIpAddress": sender,
        "receiverIpAddress": receiver,
        "sendervirtualNetwork": {"resourceRef": VNET_BLUE},
        "receivervirtualNetwork": {"resourceRef": VNET_BLUE},
        "disableTracing": False,
        "protocol": protocol,
        "icmpProtocolConfig": {"sequenceNumber": 1, "length": 0},
    }
    return {"resourceId": "action", "properties": properties | extra}


async def check(http: httpx.AsyncClient, sent: Json) -> Json:
    """PUT the check, follow ``connectivityCheckResult``, return the result's properties."""
    answer = await http.put(CHECK, json=sent)
    assert answer.status_code == 201, answer.text
    operation = answer.json()["properties"]
    result_ref = operation["connectivityCheckResult"]["resourceRef"]
    assert result_ref == f"/diagnostics/connectivityCheckResults/{operation['operationId']}"
    assert answer.headers["Location"] == f"/networking/v1{result_ref}"
    result = await http.get(f"/networking/v1{result_ref}")
    assert result.status_code == 200, result.text
    properties: Json = result.json()["properties"]
    assert properties["operationId"] == operation["operationId"]
    return properties


def hop(properties: Json, kind: str) -> Json:
    found = [h for h in properties["result"]["hops"] if h["type"] == kind]
    assert len(found) == 1, properties["result"]["hops"]
    return found[0]


async def test_an_allowed_flow_succeeds_through_the_tunnel_and_names_the_rule(
    controller: InProcessController, hosts: Fabric
) -> None:
    tcp = {"tcpProtocolConfig": {"sourcePort": 40000, "destinationPort": 80}}
    found = await check(controller.http, body(B1, A1, "Tcp", **tcp))

    assert found["result"]["status"] == "Success", found["result"]
    assert [h["type"] for h in found["result"]["hops"]] == [
        "SenderEndpoint",
        "SenderAcls",
        "Encapsulation",
        "ReceiverAcls",
        "ReceiverEndpoint",
    ]
    sender = hop(found, "SenderEndpoint")
    assert sender["host"]["resourceRef"] == "/servers/hostB"
    assert sender["networkInterface"]["resourceRef"] == "/networkInterfaces/b1"
    assert hop(found, "SenderAcls")["decidedBy"] == "NoAcl"
    tunnel = hop(found, "Encapsulation")
    assert tunnel["sourceProviderAddress"] == PROVIDER["hostB"]
    assert tunnel["destinationProviderAddress"] == PROVIDER["hostA"]
    assert tunnel["destinationHost"]["resourceRef"] == "/servers/hostA"
    assert isinstance(tunnel["vsid"], int)
    inbound = hop(found, "ReceiverAcls")
    assert inbound["action"] == "Allow"
    assert inbound["decidedBy"] == "Rule"
    assert inbound["rule"]["resourceRef"] == f"{WEB_ACL}/aclRules/r1"
    assert inbound["acl"]["resourceRef"] == WEB_ACL
    assert found["protocol"] == "Tcp"
    assert found["revision"] > 0


async def test_a_denied_port_fails_at_the_receivers_acl_default(
    controller: InProcessController, hosts: Fabric
) -> None:
    tcp = {"tcpProtocolConfig": {"destinationPort": 443}}
    found = await check(controller.http, body(B1, A1, "Tcp", **tcp))

    assert found["result"]["status"] == "Failure"
    denied = hop(found, "ReceiverAcls")
    assert (denied["action"], denied["decidedBy"]) == ("Deny", "DefaultAction")
    assert found["result"]["reason"] == (
        f"dropped inbound on host /servers/hostA by the default action of ACL {WEB_ACL}"
    )
    assert not [h for h in found["result"]["hops"] if h["type"] == "ReceiverEndpoint"]


async def test_ping_follows_the_same_acl_and_the_reverse_direction_is_open(
    controller: InProcessController, hosts: Fabric
) -> None:
    toward_a1 = await check(controller.http, body(B1, A1, "ICMP"))
    from_a1 = await check(controller.http, body(A1, B1))

    assert toward_a1["result"]["status"] == "Failure"
    assert from_a1["result"]["status"] == "Success"
    # a1's ACL has no outbound rule: its default (Permit) lets the ping out.
    assert hop(from_a1, "SenderAcls")["decidedBy"] == "DefaultAction"


@pytest.mark.parametrize(
    ("sender", "receiver", "networks", "reason"),
    [
        (B1, C1, {"receivervirtualNetwork": {"resourceRef": VNET_RED}}, "isolated"),
        (B1, "24.30.1.99", {}, "nothing there to deliver to"),
        ("24.30.1.98", A1, {}, "no endpoint with address 24.30.1.98"),
    ],
    ids=["another virtual network", "nobody at the address", "no such sender"],
)
async def test_what_cannot_arrive_says_why(
    controller: InProcessController,
    hosts: Fabric,
    sender: str,
    receiver: str,
    networks: Json,
    reason: str,
) -> None:
    found = await check(controller.http, body(sender, receiver, **networks))

    assert found["result"]["status"] == "Failure"
    assert reason in found["result"]["reason"]


async def test_results_are_listed_and_unknown_ones_are_404(
    controller: InProcessController, hosts: Fabric
) -> None:
    first = await check(controller.http, body(B1, A1))
    second = await check(controller.http, body(A1, B1))

    listed = await controller.http.get("/networking/v1/diagnostics/connectivityCheckResults")
    assert listed.status_code == 200
    ids = [item["properties"]["operationId"] for item in listed.json()["value"]]
    assert set(ids) == {first["operationId"], second["operationId"]}
    unknown = await controller.http.get(
        "/networking/v1/diagnostics/connectivityCheckResults/00000000-0000-0000-0000-000000000000"
    )
    assert_error(unknown, 404, "NotFound")


# Where the errors of a check point: the resource, then the member.
AT = "/diagnostics/connectivityCheck/properties"


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"senderIpAddress": None}, f"{AT}/senderIpAddress"),
        ({"receiverIpAddress": "24.30.1"}, f"{AT}/receiverIpAddress"),
        ({"receiverIpAddress": "2001:db8::1"}, f"{AT}/receiverIpAddress"),
        ({"sendervirtualNetwork": None}, f"{AT}/senderVirtualNetwork"),
        ({"sendervirtualNetwork": "/virtualNetworks/blue"}, f"{AT}/senderVirtualNetwork"),
        ({"sendervirtualNetwork": {"resourceRef": "/virtualNetworks/nope"}},
         f"{AT}/senderVirtualNetwork"),
        ({"receivervirtualNetwork": {"resourceRef": "/accessControlLists/web"}},
         f"{AT}/receiverVirtualNetwork"),
        ({"protocol": "Sctp"}, f"{AT}/protocol"),
        ({"protocol": "Tcp"}, f"{AT}/tcpProtocolConfig/destinationPort"),
        ({"protocol": "Udp", "udpProtocolConfig": {"destinationPort": 70000}},
         f"{AT}/udpProtocolConfig/destinationPort"),
        ({"protocol": "Tcp", "tcpProtocolConfig": {"destinationPort": True}},
         f"{AT}/tcpProtocolConfig/destinationPort"),
    ],
)  # fmt: skip
async def test_a_check_that_cannot_be_read_is_400_naming_the_member(
    controller: InProcessController, hosts: Fabric, change: Json, target: str
) -> None:
    sent = body(B1, A1)
    for member, value in change.items():
        if value is None:
            del sent["properties"][member]
        else:
            sent["properties"][member] = value

    answer = await put_raw(controller.http, CHECK, sent)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["target"] == target


async def test_a_check_without_properties_is_400(database_url: str) -> None:
    async with in_process_controller(Settings(database_url=database_url, **FAST)) as running:
        answer = await put_raw(running.http, CHECK, {"resourceId": "action"})
    assert_error(answer, 400, "InvalidInput")


async def _sdnc(controller: InProcessController, *args: str) -> Outcome:
    # In a thread: the controller and the agents run in this test's event loop.
    return await asyncio.to_thread(sdnc, controller.base_url, *args)


async def test_sdnc_trace_prints_the_hops_and_the_rule(
    controller: InProcessController, hosts: Fabric
) -> None:
    allowed = await _sdnc(controller, "trace", B1, A1, "--protocol", "tcp", "--port", "80")
    denied = await _sdnc(controller, "trace", B1, A1, "-p", "tcp", "--port", "443")

    assert allowed.code == 0, allowed.stdout + allowed.stderr
    lines = allowed.stdout.splitlines()
    hops = [line.split()[1] for line in lines if line.split() and line.split()[0].isdigit()]
    assert hops == [
        "SenderEndpoint", "SenderAcls", "Encapsulation", "ReceiverAcls", "ReceiverEndpoint"
    ]  # fmt: skip
    assert f"rule {WEB_ACL}/aclRules/r1" in allowed.stdout
    assert f"{PROVIDER['hostB']} -> {PROVIDER['hostA']}" in allowed.stdout
    assert lines[-1].startswith("Success")
    # The virtual network came from the NIC holding the sender's address.
    assert denied.code == 2
    assert f"default action of {WEB_ACL}" in denied.stdout
    assert denied.stdout.splitlines()[-1] == (
        f"Failure: dropped inbound on host /servers/hostA by the default action of ACL {WEB_ACL}"
    )


async def test_sdnc_trace_answers_json_and_says_what_is_missing(
    controller: InProcessController, hosts: Fabric
) -> None:
    as_json = await _sdnc(controller, "trace", A1, B1, "-o", "json")
    unknown = await _sdnc(controller, "trace", "24.30.1.98", A1)
    no_port = await _sdnc(controller, "trace", B1, A1, "--protocol", "udp")
    named = await _sdnc(controller, "trace", C1, B1, "--network", "red", "--to-network", "blue")

    assert as_json.code == 0, as_json.stderr
    assert json.loads(as_json.stdout)["properties"]["result"]["status"] == "Success"
    assert unknown.code == 1
    assert "give the sender's virtual network with --network" in unknown.stderr
    assert no_port.code == 2
    assert "--port" in no_port.stderr
    assert named.code == 2
    assert "isolated" in named.stdout
