"""What NC renders, we render: the members NC's responses always carry, with their defaults,
on every rendering of every kind that has some (the PUT answer, GET, the list, a child
embedded in its parent and in its parent's list). The expected values are read from the table
of docs/nbi.md, which must list exactly what the kinds declare; what a client sends wins, and
every answer still conforms to the OpenAPI document."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.resources import REGISTRY
from controller.store.database import Database
from tests.support.bodies import (
    acl,
    acl_rule,
    connection,
    credential,
    ip_configuration,
    logical_network,
    logical_subnet,
    nic,
    ref,
    server,
    virtual_network,
)
from tests.support.documented import assert_documented
from tests.support.nbi import PS_HEADERS, Json, url, without_etags, without_read_times
from tests.support.slb import (
    MANAGER,
    PUBLIC_POOL,
    WEB,
    inbound_nat_rule,
    lb_rule,
    probe,
    public_ip,
    slb_fabric,
    web_lb,
)
from tests.support.store import drop_stored_members

DOCS = Path(__file__).resolve().parents[2] / "docs" / "nbi.md"
ROW = re.compile(r"^\| `([\w/]+)` \| `([\w.\[\]]+)` \| `(.*?)`( \(read-only\))? \|$", re.MULTILINE)
LB = "/loadBalancers/LB1"
FE = f"{LB}/frontendIPConfigurations/FE1"
BE = f"{LB}/backendAddressPools/BE1"


@dataclass(frozen=True)
class Documented:
    value: Any
    read_only: bool


def documented() -> dict[str, dict[str, Documented]]:
    """The table of docs/nbi.md: kind -> member path -> its default."""
    table: dict[str, dict[str, Documented]] = {}
    for kind, path, value, read_only in ROW.findall(DOCS.read_text()):
        table.setdefault(kind, {})[path] = Documented(json.loads(value), bool(read_only))
    return table


DOCUMENTED = documented()


@dataclass(frozen=True)
class Case:
    """One resource of a kind: the minimal body creating it (none of the defaulted members),
    the members a client may set instead, and what must exist first."""

    kind: str
    path: str
    body: Json
    sent: Json
    needs: tuple[tuple[str, Json], ...] = ()
    singleton: bool = field(default=False)


CREDENTIAL = ("/credentials/cert", credential("X509Certificate", value="AB12"))
HOST = ("/servers/host1", server(connection("/credentials/cert")))
NIC = ("/networkInterfaces/nic1", nic(ip_configuration("ip1", WEB)))
LOAD_BALANCER = (LB, web_lb())
DNS = ["192.0.2.53"]

CASES = [
    Case("credentials", "/credentials/c1", credential("X509Certificate", value="AB12"),
         {"networks": [ref("/logicalNetworks/HNVPA")]}),
    Case("logicalNetworks", "/logicalNetworks/LN", logical_network(),
         {"networkVirtualizationEnabled": True}),
    Case("logicalNetworks/subnets", "/logicalNetworks/LN/subnets/s1",
         logical_subnet(None, "192.0.2.0/24"),
         {"vlanID": 7, "defaultGateways": ["192.0.2.1"], "dnsServers": DNS, "isPublic": True,
          "gatewayPools": [ref("/gatewayPools/g")]},
         needs=(("/logicalNetworks/LN", logical_network()),)),
    Case("virtualNetworkManager", "/virtualNetworkManager/configuration", {"properties": {}},
         {"networkVirtualizationProtocol": "NvGRE"}, singleton=True),
    Case("virtualSwitchManager", "/virtualSwitchManager/configuration", {"properties": {}},
         {"qosSettings": {"linkSpeedPercentage": 50}}, singleton=True),
    Case("accessControlLists", "/accessControlLists/a1", acl(),
         {"inboundDefaultAction": "Deny", "outboundDefaultAction": "Deny"}),
    Case("accessControlLists/aclRules", "/accessControlLists/a1/aclRules/r1", acl_rule(None),
         {"logging": "Disabled"}, needs=(("/accessControlLists/a1", acl()),)),
    Case("servers/networkInterfaces", "/servers/host1/networkInterfaces/pnic",
         {"properties": {}}, {"isBMC": True}, needs=(CREDENTIAL, HOST)),
    Case("virtualNetworks", "/virtualNetworks/V2",
         virtual_network(prefixes=("198.51.100.0/24",)), {"dhcpOptions": {"dnsServers": DNS}}),
    Case("networkInterfaces", NIC[0], NIC[1],
         {"dnsSettings": {"dnsServers": DNS}, "isPrimary": False, "isMultitenantStack": True,
          "portSettings": {"vmqWeight": 50, "macSpoofingEnabled": "Enabled"},
          "serviceInsertionElements": [ref("/serviceInsertions/s")]}),
    Case("networkInterfaces/ipConfigurations", "/networkInterfaces/nic1/ipConfigurations/ip2",
         ip_configuration(None, WEB),
         {"loadBalancerBackendAddressPools": [ref(BE)],
          "loadBalancerInboundNatRules": [ref(f"{LB}/inboundNatRules/N1")]},
         needs=(NIC, LOAD_BALANCER,
                (f"{LB}/inboundNatRules/N1", inbound_nat_rule(None, (FE,), 3389))),),
    Case("loadBalancerManager", MANAGER, {"properties": {}},
         {"vipIpPools": [ref(PUBLIC_POOL)], "outboundNatIPExemptions": ["192.0.2.0/24"],
          "isOutboundNatEnabled": False}, singleton=True),
    Case("publicIPAddresses", "/publicIPAddresses/pip1", public_ip(),
         {"idleTimeoutInMinutes": 10, "counters": [{"bytes": 1}]}),
    Case("loadBalancers/loadBalancingRules", f"{LB}/loadBalancingRules/R2",
         lb_rule(None, (FE,), BE, frontend_port=8080),
         {"enableFloatingIP": True, "idleTimeoutInMinutes": 10, "loadDistribution": "SourceIP"},
         needs=(LOAD_BALANCER,)),
    Case("loadBalancers/probes", f"{LB}/probes/P2", probe(None),
         {"intervalInSeconds": 5, "numberOfProbes": 11}, needs=(LOAD_BALANCER,)),
    Case("loadBalancers/inboundNatRules", f"{LB}/inboundNatRules/N2",
         inbound_nat_rule(None, (FE,), 2222), {"idleTimeoutInMinutes": 10,
                                               "enableFloatingIP": True},
         needs=(LOAD_BALANCER,)),
    Case("loadBalancerMuxes", "/loadBalancerMuxes/mux1",
         {"properties": {"routerConfiguration": {"localASN": 64628}}},
         {"routerConfiguration": {"localASN": 64628, "peerRouterConfigurations": [
             {"peerASN": 64623, "routerIPAddress": "192.0.2.1"}]},
          "connections": [{"managementAddresses": ["mux1"]}]}),
]  # fmt: skip


def test_the_documented_table_lists_exactly_what_the_kinds_declare() -> None:
    declared = {
        kind.key: {
            path: Documented(member.value, member.read_only is not None)
            for path, member in kind.shape.flat()
            if member.shape is None
        }
        for kind in REGISTRY.kinds
        if kind.shape.members
    }
    assert declared == DOCUMENTED


def test_every_kind_with_defaults_has_a_case() -> None:
    assert [case.kind for case in CASES] == list(DOCUMENTED)


def _lookup(value: Any, path: str) -> list[Any]:
    """The values at a member path (``a.b``, ``a.b[].c``: one per object of the array);
    ``[]`` when an enclosing object is absent."""
    values = [value]
    for step in path.split("."):
        array = step.endswith("[]")
        name = step.removesuffix("[]")
        values = [v[name] for v in values if isinstance(v, dict) and name in v]
        if array:
            values = [item for v in values for item in v]
    return values


def _expect(properties: Json, kind: str, sent: Json, where: str) -> None:
    """``properties`` carry every documented member of ``kind``: what ``sent`` holds for it
    (unless it is read-only), else the documented default."""
    for path, entry in DOCUMENTED[kind].items():
        given = _lookup(sent, path)
        wanted = given[0] if given and not entry.read_only else entry.value
        if "." in path:
            outer = path.rsplit(".", 1)[0].removesuffix("[]")
            if not dict(REGISTRY.by_key[kind].shape.flat())[outer].always and not _lookup(
                properties, outer
            ):
                # Inside an object rendered only when sent, and none was.
                assert not _lookup(sent, outer), (where, path, properties)
                continue
        found = _lookup(properties, path)
        assert found, f"{where}: {kind} lacks {path}: {properties}"
        assert all(value == wanted for value in found), (where, path, found, wanted)


async def _renderings(
    client: httpx.AsyncClient, path: str, singleton: bool
) -> list[tuple[str, Json]]:
    """(where, properties) of every rendering of the resource at ``path`` but the PUT answer;
    each response checked against the document."""
    seen: list[tuple[str, Json]] = []

    async def read(target: str) -> Json:
        response = await client.get(url(target))
        assert response.status_code == 200, response.text
        assert_documented(response)
        body: Json = response.json()
        return body

    def find(items: list[Json], ref_: str) -> Json:
        matching = [item for item in items if item["resourceRef"] == ref_]
        assert len(matching) == 1, (ref_, items)
        return matching[0]

    seen.append(("GET", (await read(path))["properties"]))
    parent, collection = path.rsplit("/", 2)[0], path.rsplit("/", 1)[0]
    if not singleton:
        listed = await read(collection)
        seen.append(("list", find(listed["value"], path)["properties"]))
    kind_name = collection.rsplit("/", 1)[1]
    if parent:  # a child: embedded in its parent and in its parent's list
        owner = await read(parent)
        seen.append(("parent", find(owner["properties"][kind_name], path)["properties"]))
        owners = await read(parent.rsplit("/", 1)[0])
        embedded = find(owners["value"], parent)["properties"][kind_name]
        seen.append(("parent list", find(embedded, path)["properties"]))
    return seen


async def _put(client: httpx.AsyncClient, path: str, body: Json) -> Json:
    response = await client.put(url(path), json=body, headers=PS_HEADERS)
    assert response.status_code in (200, 201), response.text
    assert_documented(response)
    answer: Json = response.json()
    return answer


async def _prepare(client: httpx.AsyncClient, case: Case) -> None:
    await slb_fabric(client)
    for path, body in case.needs:
        await _put(client, path, body)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.kind)
async def test_every_default_is_rendered_everywhere(client: httpx.AsyncClient, case: Case) -> None:
    await _prepare(client, case)
    answer = await _put(client, case.path, case.body)
    _expect(answer["properties"], case.kind, {}, "PUT answer")
    for where, properties in await _renderings(client, case.path, case.singleton):
        _expect(properties, case.kind, {}, where)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.kind)
async def test_what_a_client_sends_wins_over_the_defaults(
    client: httpx.AsyncClient, case: Case
) -> None:
    await _prepare(client, case)
    body = {**case.body, "properties": {**case.body["properties"], **case.sent}}
    answer = await _put(client, case.path, body)
    _expect(answer["properties"], case.kind, case.sent, "PUT answer")
    for where, properties in await _renderings(client, case.path, case.singleton):
        _expect(properties, case.kind, case.sent, where)
    # Read-modify-write, as PowerShell scripts do: the rendered defaults go back in and the
    # resource reads the same.
    again = await _put(client, case.path, answer)
    assert without_etags(without_read_times(again)) == without_etags(without_read_times(answer))


async def test_a_nic_stored_before_load_balancing_reads_back_as_nc_renders_it(
    client: httpx.AsyncClient, database: Database
) -> None:
    """The third-party client crash of the issue: an ipConfiguration written before the load
    balancing members existed has neither in its stored document; every read carries both."""
    await slb_fabric(client)
    await _put(client, *NIC)
    config = "/networkInterfaces/nic1/ipConfigurations/ip1"
    await drop_stored_members(
        database, config, "loadBalancerBackendAddressPools", "loadBalancerInboundNatRules"
    )
    for where, properties in await _renderings(client, config, singleton=False):
        # What such a client does with every ipConfiguration, without checking.
        pools = [p["resourceRef"] for p in properties["loadBalancerBackendAddressPools"]]
        rules = [r["resourceRef"] for r in properties["loadBalancerInboundNatRules"]]
        assert (pools, rules) == ([], []), where
    nic_read = (await client.get(url(NIC[0]))).json()["properties"]
    assert nic_read["portSettings"]["vmqWeight"] == 100
    assert nic_read["dnsSettings"] == {"dnsServers": []}
    assert nic_read["serviceInsertionElements"] == []
