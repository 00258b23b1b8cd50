"""The tenant fabric, built through the REST API only, as a client would.

Two virtual networks with the SAME prefixes (blue and red: 10.20.1.0/24 "web" and 10.20.2.0/24
"app"), endpoints spread over three hosts, an ACL allowing TCP 443 and denying TCP 80 inbound
on one endpoint, a 50 Mbit/s outbound cap on another. Blue is dual-stack: IPv6 subnets "web6"
and "app6" beside the IPv4 ones, and each blue NIC has an ipConfiguration in one of them.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import httpx

from tests.e2e.netns import Underlay
from tests.support.bodies import (
    Json,
    acl,
    acl_rule,
    connection,
    credential,
    ip_configuration,
    ip_pool,
    logical_subnet,
    nic,
    provider_network,
    ref,
    server,
    virtual_network,
    virtual_subnet,
)
from tests.support.nbi import PS_HEADERS, url

WEB_ACL = "/accessControlLists/web"
PREFIXES = ("10.20.0.0/16",)
SUBNETS = {"web": "10.20.1.0/24", "app": "10.20.2.0/24"}
PREFIXES6 = ("2001:db8:20::/48",)  # blue's only
SUBNETS6 = {"web6": "2001:db8:20:1::/64", "app6": "2001:db8:20:2::/64"}
WAIT = "?wait=applied&timeout=20"
QOS_MBPS = 50


@dataclass(frozen=True)
class Endpoint:
    name: str  # the NIC's resourceId
    host: int  # 1-based index of the host it is placed on
    vnet: str
    subnet: str
    ip: str
    mac: str
    acl: bool = False  # the ipConfiguration uses WEB_ACL
    outbound_mbps: int | None = None
    ip6: str | None = None  # dual-stack: the address of a second ipConfiguration ("ip6") in
    subnet6: str = ""  # this IPv6 subnet, using WEB_ACL too when ``acl``

    @property
    def path(self) -> str:
        return f"/networkInterfaces/{self.name}"

    def body(self) -> Json:
        extra: Json = {"accessControlList": ref(WEB_ACL)} if self.acl else {}
        subnet = f"/virtualNetworks/{self.vnet}/subnets/{self.subnet}"
        configs = [ip_configuration("ip", subnet, self.ip, **extra)]
        if self.ip6 is not None:
            subnet6 = f"/virtualNetworks/{self.vnet}/subnets/{self.subnet6}"
            configs.append(ip_configuration("ip6", subnet6, self.ip6, **extra))
        port: Json = {}
        if self.outbound_mbps is not None:
            qos = {"outboundMaximumMbps": self.outbound_mbps}
            port = {"portSettings": {"qosSettings": qos}}
        host = ref(f"/servers/host{self.host}")
        return nic(*configs, privateMacAddress=self.mac, server=host, **port)


ENDPOINTS = (
    Endpoint(
        "blue-a",
        1,
        "blue",
        "web",
        "10.20.1.10",
        "02AA00000A01",
        ip6="2001:db8:20:1::10",
        subnet6="web6",
    ),
    Endpoint(
        "blue-b",
        2,
        "blue",
        "web",
        "10.20.1.20",
        "02AA00000B01",
        acl=True,
        ip6="2001:db8:20:1::20",
        subnet6="web6",
    ),
    Endpoint(
        "blue-c",
        3,
        "blue",
        "app",
        "10.20.2.30",
        "02AA00000C01",
        outbound_mbps=QOS_MBPS,
        ip6="2001:db8:20:2::30",
        subnet6="app6",
    ),
    # Same addresses as blue-a and blue-b, in the other virtual network.
    Endpoint("red-a", 1, "red", "web", "10.20.1.10", "02BB00000A01"),
    Endpoint("red-b", 2, "red", "web", "10.20.1.20", "02BB00000B01"),
)
# Created (and deleted) by a test: a new endpoint on host 3.
LATE = Endpoint("blue-n", 3, "blue", "web", "10.20.1.50", "02AA00000D01")
# Created (and deleted) by a test: a virtual appliance in subnet app on host 2, the next hop
# of a route table on subnet web.
APPLIANCE = Endpoint("blue-v", 2, "blue", "app", "10.20.2.40", "02AA00000E01")
ROUTE_TABLE = "/routeTables/through-nva"


def https_only_acl(*, http: str = "Deny") -> Json:
    """Inbound: allow TCP 443 (priority 100), ``http`` TCP 80 (110); defaults Permit."""
    return acl(
        acl_rule("allow-https", 100, destinationPortRange="443", action="Allow"),
        acl_rule("deny-http", 110, destinationPortRange="80", action=http),
        inboundDefaultAction="Permit",
        outboundDefaultAction="Permit",
    )


class Api:
    """A synchronous NBI client that asserts success."""

    def __init__(self, base_url: str, *, verify: ssl.SSLContext | bool = True) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60, verify=verify)

    def authorize(self, token: str) -> None:
        """Send ``token`` with every request from now on."""
        self.http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.http.close()

    def put(self, path: str, body: Json, *, wait: bool = False) -> Json:
        response = self.http.put(url(path) + (WAIT if wait else ""), json=body, headers=PS_HEADERS)
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        if wait:
            assert response.headers.get("x-sdnc-applied") == "true", (path, response.headers)
        result: Json = response.json()
        return result

    def get(self, path: str) -> Json:
        response = self.http.get(url(path))
        assert response.status_code == 200, (path, response.status_code, response.text)
        result: Json = response.json()
        return result

    def delete(self, path: str, *, wait: bool = False) -> None:
        response = self.http.delete(url(path) + (WAIT if wait else ""))
        assert response.status_code in (200, 202, 204), (path, response.status_code, response.text)
        if wait:
            assert response.headers.get("x-sdnc-applied") == "true", (path, response.headers)

    def instance_id(self, path: str) -> str:
        return str(self.get(path)["instanceId"])

    def configuration_status(self, path: str) -> str:
        return str(self.get(path)["properties"]["configurationState"]["status"])

    def wait_status(self, paths: list[str], status: str = "Success", within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            seen = {path: self.configuration_status(path) for path in paths}
            if all(value == status for value in seen.values()):
                return
            if time.monotonic() > deadline:
                details = {p: self.get(p)["properties"]["configurationState"] for p in paths}
                raise AssertionError(f"not {status} within {within} s: {details}")
            time.sleep(0.1)


def create_servers(api: Api, net: Underlay) -> dict[str, str]:
    """The credential, the HNV provider network with its PA pool, and one server per host;
    instanceIds by server resourceId."""
    api.put("/credentials/agents", credential("X509Certificate", value="AB12"))
    subnet = logical_subnet(
        "PA",
        net.network,
        ip_pool("pool", f"{net.prefix}.11", f"{net.prefix}.99"),
        defaultGateways=[net.gateway],
    )
    api.put("/logicalNetworks/HNVPA", provider_network(subnet))
    servers = {}
    for index, host in enumerate(net.hosts, start=1):
        body = server(connection("/credentials/agents", address=host.provider_address))
        servers[f"host{index}"] = str(api.put(f"/servers/host{index}", body)["instanceId"])
    return servers


@dataclass
class Tenants:
    vnets: dict[str, str]  # instanceId by name
    vsids: dict[tuple[str, str], int]  # (vnet, subnet) -> VSID
    nics: dict[str, str]  # NIC instanceId (the endpoint's namespace) by NIC resourceId


def blue_network(web_route_table: str | None = None) -> Json:
    """Virtual network blue (dual-stack); subnet web with the route table at
    ``web_route_table``."""
    table = {"routeTable": ref(web_route_table)} if web_route_table else {}
    subnets = [
        virtual_subnet(sub, prefix, **(table if sub == "web" else {}))
        for sub, prefix in (SUBNETS | SUBNETS6).items()
    ]
    return virtual_network(*subnets, prefixes=PREFIXES + PREFIXES6)


def create_tenants(api: Api, tenants: Tenants) -> None:
    """The ACL, both virtual networks and the endpoints (recorded in ``tenants`` as they are
    created); each write waits until the connected hosts applied it."""
    api.put(WEB_ACL, https_only_acl(), wait=True)
    vnets, vsids = tenants.vnets, tenants.vsids
    red = virtual_network(*(virtual_subnet(s, p) for s, p in SUBNETS.items()), prefixes=PREFIXES)
    for name, body, wanted in (("blue", blue_network(), SUBNETS | SUBNETS6), ("red", red, SUBNETS)):
        created = api.put(f"/virtualNetworks/{name}", body, wait=True)
        vnets[name] = str(created["instanceId"])
        for sub in wanted:
            found = api.get(f"/virtualNetworks/{name}/subnets/{sub}")
            vsids[(name, sub)] = int(found["properties"]["vsid"])
    for endpoint in ENDPOINTS:
        created = api.put(endpoint.path, endpoint.body(), wait=True)
        tenants.nics[endpoint.name] = str(created["instanceId"])
