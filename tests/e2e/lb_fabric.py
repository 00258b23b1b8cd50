"""The load-balancing deployment, built through the REST API only, as a client would.

One controller on PostgreSQL on an underlay in 198.18.0.0/15 (reserved for benchmarking):
hosts 1 and 2 hold the endpoints, host 3 is the mux (a ``loadBalancerMux`` names its server;
it holds no endpoint), and an external client sits on the underlay with a static route for the
VIP prefix (203.0.113.0/24) via the mux's provider address. Each host namespace routes by
default towards that client, so its loose reverse-path filter accepts what leaves a router
from a VIP.

Virtual network ``tenant`` (10.30.1.0/24): DIPs dip1 and dip2 on host 1, dip3 on host 2, the
client endpoint on host 2, and ``pip``, a NIC with a public IP, on host 1. Virtual network
``other`` (10.31.1.0/24): one NIC on host 2. Load balancer ``web``: a public VIP, TCP 80 ->
8080 over dip1-3 with an Http probe, an inbound NAT rule 2222 -> dip1:8080 and an outbound NAT
rule (All) over the pool. Load balancer ``inner``: an internal VIP in the tenant subnet, TCP
80 -> 8080 over the same DIPs.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import create_database
from tests.e2e.agents import SDNC, AgentProcess, admin_token, start_agents
from tests.e2e.conftest import _print_logs
from tests.e2e.fabric import Api, create_servers
from tests.e2e.lb_traffic import http_server
from tests.e2e.netns import Underlay, delete_namespace, namespaces, remove_namespaces, run, underlay
from tests.support.bodies import (
    Json,
    ip_configuration,
    ip_pool,
    logical_network,
    logical_subnet,
    nic,
    ref,
    virtual_network,
    virtual_subnet,
)
from tests.support.pki import CertificateAuthority
from tests.support.server import ControllerServer
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
from tests.support.southbound import FAST_ENV

HOSTS = 3  # host 3 is the mux
MUX_HOST = 3
RESYNC_INTERVAL = 5.0
VIP_PREFIX = "203.0.113.0/24"
VIP_NETWORK = "/logicalNetworks/PublicVIP"
VIP_SUBNET = f"{VIP_NETWORK}/subnets/vips"
VIP_POOL = f"{VIP_SUBNET}/ipPools/vips"
VIP, PUBLIC, INNER = "203.0.113.10", "203.0.113.50", "10.30.1.100"
WEB, INNER_LB, PIP = "/loadBalancers/web", "/loadBalancers/inner", "/publicIPAddresses/pip"
WEB_POOL, INNER_POOL = f"{WEB}/backendAddressPools/dips", f"{INNER_LB}/backendAddressPools/dips"
SSH = f"{WEB}/inboundNatRules/ssh"
PROBE_INTERVAL, PROBE_COUNT = 1, 2  # the shortest the API allows, and 2 failures to be Down
HTTP_PORT, CLIENT_PORT = 8080, 9000
SUBNETS = {"tenant": "10.30.1.0/24", "other": "10.31.1.0/24"}


@dataclass(frozen=True)
class Nic:
    name: str  # the NIC's resourceId
    host: int
    vnet: str
    ip: str
    mac: str

    @property
    def path(self) -> str:
        return f"/networkInterfaces/{self.name}"

    def body(self, **members: object) -> Json:
        """The NIC, its ipConfiguration with ``members`` (pools, NAT rules, public IP)."""
        config = ip_configuration("ip", f"/virtualNetworks/{self.vnet}/subnets/web", self.ip)
        config["properties"].update(members)
        return nic(config, privateMacAddress=self.mac, server=ref(f"/servers/host{self.host}"))


DIPS = (
    Nic("dip1", 1, "tenant", "10.30.1.11", "02CC00000B01"),
    Nic("dip2", 1, "tenant", "10.30.1.12", "02CC00000B02"),
    Nic("dip3", 2, "tenant", "10.30.1.13", "02CC00000B03"),
)
CLIENT_NIC = Nic("client", 2, "tenant", "10.30.1.20", "02CC00000C01")
PIP_NIC = Nic("pip", 1, "tenant", "10.30.1.30", "02CC00000D01")
OTHER_NIC = Nic("stranger", 2, "other", "10.31.1.20", "02CC00000E01")
NICS = (*DIPS, CLIENT_NIC, PIP_NIC, OTHER_NIC)


def dip_body(dip: Nic, *, in_web_pool: bool = True) -> Json:
    """A DIP's NIC: in both pools (the web one unless ``in_web_pool`` is false); dip1 is the
    inbound NAT rule's."""
    pools = [ref(WEB_POOL)] if in_web_pool else []
    nat = [ref(SSH)] if dip is DIPS[0] else []
    return dip.body(
        loadBalancerBackendAddressPools=[*pools, ref(INNER_POOL)],
        loadBalancerInboundNatRules=nat,
    )


def web_lb() -> Json:
    fe, probe_path = f"{WEB}/frontendIPConfigurations/fe", f"{WEB}/probes/health"
    return load_balancer(
        frontends=(frontend("fe", VIP_SUBNET, VIP),),
        pools=(backend_pool("dips"),),
        probes=(
            probe(
                "health",
                "Http",
                HTTP_PORT,
                "/health",
                intervalInSeconds=PROBE_INTERVAL,
                numberOfProbes=PROBE_COUNT,
            ),
        ),
        rules=(lb_rule("http", (fe,), WEB_POOL, backend_port=HTTP_PORT, probe_path=probe_path),),
        nat_rules=(inbound_nat_rule("ssh", (fe,), 2222, HTTP_PORT),),
        outbound_rules=(outbound_nat_rule("out", (fe,), WEB_POOL),),
    )


def inner_lb() -> Json:
    fe = f"{INNER_LB}/frontendIPConfigurations/fe"
    return load_balancer(
        frontends=(frontend("fe", "/virtualNetworks/tenant/subnets/web", INNER),),
        pools=(backend_pool("dips"),),
        rules=(lb_rule("http", (fe,), INNER_POOL, backend_port=HTTP_PORT),),
    )


@dataclass
class LbDeployment:
    net: Underlay
    controller: ControllerServer
    api: Api
    workdir: Path
    client: str = ""  # the external client's namespace
    client_ip: str = ""
    servers: dict[str, str] = field(default_factory=dict)  # instanceId by resourceId
    agents: dict[int, AgentProcess] = field(default_factory=dict)  # by host index
    nics: dict[str, str] = field(default_factory=dict)  # instanceId by NIC resourceId

    def ns(self, nic: Nic) -> str:
        """The namespace of a NIC's endpoint: named by the NIC's instanceId."""
        return self.nics[nic.name]

    def flag(self, dip: Nic) -> Path:
        """While this file exists, ``dip``'s health check fails."""
        return self.workdir / f"fail-{dip.name}"

    def owned_namespaces(self) -> list[str]:
        routers = tuple(f"sdnc-rd-{server}-" for server in self.servers.values())
        return [*self.nics.values(), *(n for n in namespaces() if n.startswith(routers))]


def add_client(net: Underlay) -> tuple[str, str]:
    """The external client: a namespace on the underlay at .200; (namespace, address)."""
    suffix = net.bridge.removeprefix("sdu")
    name, address, outside = f"sdnc-c-{suffix}", f"{net.prefix}.200", f"sdvc{suffix}"
    run("ip", "netns", "add", name)
    run("ip", "link", "add", outside, "type", "veth", "peer", "name", "underlay0", "netns", name)
    run("ip", "link", "set", outside, "master", net.bridge, "up")
    run("ip", "-n", name, "link", "set", "lo", "up")
    run("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "underlay0")
    run("ip", "-n", name, "link", "set", "underlay0", "up")
    return name, address


def _create_slb(api: Api, d: LbDeployment) -> None:
    """The VIP network, the manager, the mux, the virtual networks and the NICs (each write
    waits until the hosts applied it), then the servers in the DIPs, then the load balancers
    and the NICs joining them."""
    vips = logical_subnet(
        "vips",
        VIP_PREFIX,
        ip_pool("vips", "203.0.113.10", "203.0.113.60"),
        isPublic=True,
        defaultGateways=["203.0.113.1"],
    )
    api.put(VIP_NETWORK, logical_network(vips))
    config = manager(VIP_POOL, loadBalancerManagerIPAddress=d.net.gateway)
    api.put("/loadBalancerManager/config", config)
    api.put("/loadBalancerMuxes/mux", {"properties": {"server": ref(f"/servers/host{MUX_HOST}")}})
    for vnet, prefix in SUBNETS.items():
        body = virtual_network(virtual_subnet("web", prefix), prefixes=(prefix,))
        api.put(f"/virtualNetworks/{vnet}", body, wait=True)
    for each in NICS:
        d.nics[each.name] = str(api.put(each.path, each.body(), wait=True)["instanceId"])
    api.wait_status([each.path for each in NICS], within=60)


def _join(api: Api) -> None:
    api.put(WEB, web_lb(), wait=True)
    api.put(INNER_LB, inner_lb(), wait=True)
    api.put(PIP, public_ip(PUBLIC), wait=True)
    for dip in DIPS:
        api.put(dip.path, dip_body(dip), wait=True)
    api.put(PIP_NIC.path, PIP_NIC.body(publicIPAddress=ref(PIP)), wait=True)


@contextlib.contextmanager
def lb_deployment(postgres_server: str, workdir: Path) -> Iterator[LbDeployment]:
    """The deployment of the module docstring; everything removed afterwards, each step even
    when another fails (agents, servers in the endpoints, controller, the namespaces the agents
    made, the client, the underlay, the database)."""
    done = subprocess.run([SDNC, "agent", "--help"], capture_output=True, check=False)
    assert done.returncode == 0, f"`sdnc agent` is not available:\n{done.stdout.decode()}"
    before = namespaces()
    owned: set[str] = set()
    with contextlib.ExitStack() as cleanup:
        url = cleanup.enter_context(create_database(postgres_server))
        net = cleanup.enter_context(underlay(HOSTS, base="198.18"))
        ca = CertificateAuthority(workdir)
        certificate = ca.server("controller", hosts=(net.gateway,))
        tls = ["--tls-cert", str(certificate.cert_path), "--tls-key", str(certificate.key_path)]
        controller = ControllerServer(
            url,
            host=net.gateway,
            extra_env=FAST_ENV,
            extra_args=[*tls, "--auth", "token"],
            trust=ca.client_trust(),
        )
        api = Api(controller.base_url, verify=ca.client_trust())
        d = LbDeployment(net, controller, api, workdir)
        owned.add(f"sdnc-c-{net.bridge.removeprefix('sdu')}")
        cleanup.callback(delete_namespace, f"sdnc-c-{net.bridge.removeprefix('sdu')}")

        def remove_agent_namespaces() -> None:
            owned.update(d.owned_namespaces())
            remove_namespaces(sorted(owned))

        cleanup.callback(remove_agent_namespaces)
        cleanup.callback(controller.remove_log)
        cleanup.callback(controller.stop)
        cleanup.callback(api.close)
        try:
            d.client, d.client_ip = add_client(net)
            mux = net.hosts[MUX_HOST - 1].provider_address
            run("ip", "-n", d.client, "route", "add", VIP_PREFIX, "via", mux)
            for host in net.hosts:
                run("ip", "-n", host.name, "route", "add", "default", "via", d.client_ip)
            controller.start()
            api.authorize(admin_token(url))
            d.servers.update(create_servers(api, net))
            d.agents.update(
                start_agents(
                    cleanup,
                    net.hosts,
                    url,
                    controller.base_url,
                    ca.cert_path,
                    workdir,
                    RESYNC_INTERVAL,
                )
            )
            api.wait_status([f"/servers/{name}" for name in d.servers], within=60)
            _create_slb(api, d)
            for each in (*DIPS, PIP_NIC):
                cleanup.enter_context(http_server(d.ns(each), HTTP_PORT, d.flag(each)))
            cleanup.enter_context(http_server(d.client, CLIENT_PORT, workdir / "never"))
            _join(api)
        except BaseException:
            _print_logs(d)  # type: ignore[arg-type]
            raise
        yield d
    left = (namespaces() - before) & (owned | {host.name for host in net.hosts})
    assert not left, f"namespaces left behind: {sorted(left)}"
