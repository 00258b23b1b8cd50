"""Every operation of the OpenAPI document, walked on a populated database, answers what the
document declares: status code, content type and body schema, for successes and for errors.

The fuzzer (test_fuzz.py) sends mostly invalid or random data, so few of its requests succeed;
this walk makes sure every operation's successful answers (and its usual errors) conform too.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.bodies import (
    acl,
    acl_rule,
    connection,
    credential,
    ip_configuration,
    ip_pool,
    logical_subnet,
    mac_pool,
    network_interface,
    nic,
    provider_network,
    ref,
    route,
    route_table,
    server,
    virtual_network,
    virtual_subnet,
)
from tests.support.documented import SCHEMA, assert_documented
from tests.support.figures import Figures
from tests.support.nbi import PS_HEADERS, V1, put, url
from tests.support.slb import (
    backend_pool,
    frontend,
    inbound_nat_rule,
    lb_rule,
    load_balancer,
    manager,
    outbound_nat_rule,
    probe,
    public_ip,
)

PA_SUBNET = "/logicalNetworks/HNVPA/subnets/PA"
WEB = "/virtualNetworks/V1/subnets/web"
VIP_SUBNET = "/logicalNetworks/VIP/subnets/vip"
VIP_POOL = f"{VIP_SUBNET}/ipPools/pool"
LB = "/loadBalancers/lb"
FE = f"{LB}/frontendIPConfigurations/fe"
BE = f"{LB}/backendAddressPools/be"
PROBE = f"{LB}/probes/p"

# One resource of every kind, parents before children, in an order they can be created.
BUILD: list[tuple[str, dict[str, Any]]] = [
    ("/credentials/cert", credential("X509Certificate", value="AB12")),
    ("/macPools/pool", mac_pool("00-1D-D8-B7-1C-00", "00-1D-D8-B7-1F-FF")),
    ("/logicalNetworks/HNVPA", provider_network(
        logical_subnet("PA", "10.10.56.0/23", ip_pool("pool", "10.10.56.5", "10.10.57.250"),
                       vlanID="11", defaultGateways=["10.10.56.1"]))),
    ("/accessControlLists/web", acl(acl_rule("allow-80"))),
    ("/accessControlLists/web/aclRules/allow-443", acl_rule("allow-443", 110,
                                                            destinationPortRange="443")),
    ("/routeTables/rt", route_table(route("r1", "0.0.0.0/0"))),
    ("/servers/host1", server(connection("/credentials/cert"),
                              networkInterfaces=[network_interface("pnic", PA_SUBNET)])),
    ("/virtualNetworks/V1", virtual_network(
        virtual_subnet("web", "24.30.1.0/24", accessControlList=ref("/accessControlLists/web"),
                       routeTable=ref("/routeTables/rt")))),
    ("/networkInterfaces/vm1", nic(
        ip_configuration("ip1", WEB, "24.30.1.10"), server=ref("/servers/host1"),
        portSettings={"stormLimit": "1000", "qosSettings": {"outboundMaximumMbps": 100}})),
    ("/networkInterfaces/vm1/ipConfigurations/ip2", ip_configuration("ip2", WEB)),
    ("/logicalNetworks/VIP", {"properties": {"subnets": [logical_subnet(
        "vip", "203.0.113.0/27", ip_pool("pool", "203.0.113.8", "203.0.113.15"),
        isPublic=True, defaultGateways=["203.0.113.1"])]}}),
    ("/loadBalancerManager/config", manager(VIP_POOL)),
    ("/publicIPAddresses/pip", public_ip()),
    (LB, load_balancer(
        frontends=(frontend("fe", VIP_SUBNET),), pools=(backend_pool("be"),),
        probes=(probe("p"),), rules=(lb_rule("r", (FE,), BE, probe_path=PROBE),),
        nat_rules=(inbound_nat_rule("nat", (FE,), 2222, 22),),
        outbound_rules=(outbound_nat_rule("out", (FE,), BE),))),
    ("/networkInterfaces/vm2", nic(ip_configuration(
        "ip1", WEB, "24.30.1.20", loadBalancerBackendAddressPools=[ref(BE)],
        loadBalancerInboundNatRules=[ref(f"{LB}/inboundNatRules/nat")],
        publicIPAddress=ref("/publicIPAddresses/pip")), server=ref("/servers/host1"))),
    ("/loadBalancerMuxes/mux", {"properties": {"server": ref("/servers/host1")}}),
    ("/virtualNetworkManager/configuration",
     {"properties": {"networkVirtualizationProtocol": "vxlan"}}),
    ("/virtualSwitchManager/configuration",
     {"properties": {"qosSettings": {"linkSpeedPercentage": "50"}}}),
]  # fmt: skip

# Users before what they use; children before their parents (which would take them along).
DELETE_ORDER = [
    "/loadBalancerMuxes/mux", "/networkInterfaces/vm2", f"{LB}/loadBalancingRules/r",
    f"{LB}/inboundNatRules/nat", f"{LB}/outboundNatRules/out", PROBE, BE, FE, LB,
    "/publicIPAddresses/pip",  # the VIP network stays: the manager (a singleton) names it
    "/networkInterfaces/vm1/ipConfigurations/ip2", "/networkInterfaces/vm1/ipConfigurations/ip1",
    "/networkInterfaces/vm1", WEB, "/virtualNetworks/V1", "/servers/host1/networkInterfaces/pnic",
    "/servers/host1", "/routeTables/rt/routes/r1", "/routeTables/rt",
    "/accessControlLists/web/aclRules/allow-443", "/accessControlLists/web",
    "/logicalNetworks/HNVPA/subnets/PA/ipPools/pool", PA_SUBNET, "/logicalNetworks/HNVPA",
    "/macPools/pool", "/credentials/cert",
]  # fmt: skip


class Walk:
    """Sends requests and checks every response against the operation the document has for it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.covered: set[str] = set()
        self.checked = 0

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        target = (
            path
            if path.startswith(("/southbound/", "/healthz", "/readyz", "/metrics"))
            else url(path)
        )
        response = await self.client.request(method, target, **kwargs)
        self.covered.add(assert_documented(response))
        self.checked += 1
        return response


def _collection(path: str) -> str:
    return path.rsplit("/", 1)[0]


async def test_every_operation_answers_as_documented(
    client: httpx.AsyncClient, figures: Figures
) -> None:
    walk = Walk(client)
    for path, body in BUILD:
        await put(client, path, body)
    assert (await walk.send("GET", "/networking/discovery")).status_code == 200
    assert (await walk.send("GET", "/southbound/v1/status")).status_code == 200
    assert (await walk.send("GET", "/southbound/v1/hosts")).status_code == 200
    for endpoint in ("/healthz", "/readyz", "/metrics"):
        assert (await walk.send("GET", endpoint)).status_code == 200, endpoint
    paths = [path for path, _ in BUILD]
    paths += [PA_SUBNET, "/logicalNetworks/HNVPA/subnets/PA/ipPools/pool", WEB,
              "/servers/host1/networkInterfaces/pnic", "/routeTables/rt/routes/r1",
              "/networkInterfaces/vm1/ipConfigurations/ip1", VIP_SUBNET, VIP_POOL, FE, BE, PROBE,
              f"{LB}/loadBalancingRules/r", f"{LB}/inboundNatRules/nat",
              f"{LB}/outboundNatRules/out"]  # fmt: skip
    for path in paths:
        resource = (await walk.send("GET", path)).json()
        if not path.endswith(("/configuration", "/config")):  # singletons have no collection
            assert (await walk.send("GET", _collection(path))).status_code == 200
        # Read-modify-write, as PowerShell scripts do: read-only members go back too.
        again = await walk.send("PUT", path, json=resource, headers=PS_HEADERS)
        assert again.status_code == 200, again.text
    taken = await walk.send("PUT", "/diagnostics/slbState", json={"properties": {}})
    assert taken.status_code == 201, taken.text
    result = taken.json()["properties"]["slbStateResult"]["resourceRef"]
    assert (await walk.send("GET", result)).status_code == 200
    # Test-VNetPing's question: can vm1 reach vm2?
    ping = {"properties": {"senderIpAddress": "24.30.1.10", "receiverIpAddress": "24.30.1.20",
                           "sendervirtualNetwork": ref("/virtualNetworks/V1"),
                           "receivervirtualNetwork": ref("/virtualNetworks/V1"),
                           "protocol": "Icmp"}}  # fmt: skip
    checked = await walk.send("PUT", "/diagnostics/connectivityCheck", json=ping)
    assert checked.status_code == 201, checked.text
    verdict = checked.json()["properties"]["connectivityCheckResult"]["resourceRef"]
    assert (await walk.send("GET", verdict)).status_code == 200
    assert (await walk.send("GET", _collection(verdict))).status_code == 200
    await _errors(walk)
    for path in DELETE_ORDER:
        deleted = await walk.send("DELETE", path)
        assert deleted.status_code == 200, (path, deleted.text)
        assert (await walk.send("DELETE", path)).status_code == 204
    documented = {op.ok().label for op in SCHEMA.get_all_operations()}
    figures.record("operations with a checked response", len(walk.covered & documented))
    figures.record("responses checked against the document", walk.checked)
    assert documented - walk.covered == set()


async def _errors(walk: Walk) -> None:
    """The usual failures of each method, each in the documented error envelope."""
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/credentials/missing", {}, 404),
        ("GET", "/credentials/a%00b", {}, 400),
        ("GET", "/logicalNetworks/missing/subnets", {}, 404),
        ("PUT", "/credentials/bad", {"json": {"properties": {"type": "Nope"}}}, 400),
        ("PUT", "/credentials/bad", {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
         415),
        ("PUT", "/credentials/cert", {"json": {"properties": {"type": "X509Certificate",
                                                              "value": "AB"}},
                                      "headers": {"If-Match": 'W/"stale"'}}, 412),
        ("PUT", "/logicalNetworks/missing/subnets/s", {"json": {"properties": {
            "addressPrefix": "10.0.0.0/24"}}}, 412),
        ("DELETE", "/accessControlLists/web", {}, 409),
        ("DELETE", "/credentials/cert", {"headers": {"If-Match": 'W/"stale"'}}, 412),
        ("PUT", f"{V1}/credentials/c?timeout=nan", {"json": {}}, 400),
        ("GET", "/networking/v9/credentials", {}, 404),
    ]  # fmt: skip
    for method, path, kwargs, status in cases:
        response = await walk.send(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
