"""The end-to-end deployment: an underlay with three host namespaces, one real controller on
PostgreSQL listening on the underlay, the fabric built through the REST API, and one real
``sdnc agent`` per host, started inside its host namespace.

The deployment is built once per module (tests run in file order and build on each other's
effects, as an operator's session would). Everything is torn down afterwards: agents stopped,
then every namespace of this run removed (hosts, endpoints named by NIC instanceId, router
namespaces named by the server instanceId), then the bridge. A failing test shows the agents'
and the controller's logs written during it.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import create_database
from tests.e2e.agents import SDNC, AgentProcess, admin_token, start_agents
from tests.e2e.fabric import Api, Tenants, create_servers, create_tenants
from tests.e2e.netns import Underlay, namespaces, remove_namespaces, underlay
from tests.support.pki import CertificateAuthority
from tests.support.server import ControllerServer
from tests.support.southbound import FAST_ENV

HOSTS = 3
# Seconds between the agents' drift repairs (shorter than the default, for the drift test).
RESYNC_INTERVAL = 2.0
FAILED = pytest.StashKey[bool]()


@dataclass
class Deployment:
    net: Underlay
    controller: ControllerServer
    api: Api
    servers: dict[str, str]  # instanceId by resourceId (host1, ...)
    agents: dict[int, AgentProcess]  # by host index
    tenants: Tenants

    def endpoint_ns(self, nic: str) -> str:
        """The namespace of a NIC's endpoint: named by the NIC's instanceId."""
        return self.tenants.nics[nic]

    def router_ns(self, host: int, vnet: str) -> str:
        return f"sdnc-rd-{self.servers[f'host{host}']}-{self.tenants.vnets[vnet]}"

    def vsid(self, vnet: str, subnet: str) -> int:
        return self.tenants.vsids[(vnet, subnet)]

    def owned_namespaces(self) -> list[str]:
        """Every namespace this run's agents may have created."""
        ours = [*self.tenants.nics.values()]
        routers = tuple(f"sdnc-rd-{server}-" for server in self.servers.values())
        return ours + [name for name in namespaces() if name.startswith(routers)]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


def _agent_available() -> None:
    result = subprocess.run([SDNC, "agent", "--help"], capture_output=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"`sdnc agent` is not available:\n{result.stdout.decode()}")


@pytest.fixture(scope="module")
def deployment(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    _agent_available()
    before = namespaces()
    workdir = tmp_path_factory.mktemp("e2e")
    owned: set[str] = set()
    # Undone in reverse order, every step even when another fails: the agents stopped, the
    # client closed, the controller stopped, the namespaces the agents made removed, then the
    # underlay (hosts and bridge) and the database.
    with contextlib.ExitStack() as cleanup:
        url = cleanup.enter_context(create_database(postgres_server))
        net = cleanup.enter_context(underlay(HOSTS))
        # Served as it should be on a real network: TLS with a certificate for the address
        # the agents reach, token authentication; the agents verify it against the CA.
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
        deployed = Deployment(net, controller, api, {}, {}, Tenants({}, {}, {}))

        def remove_agent_namespaces() -> None:
            owned.update(deployed.owned_namespaces())
            remove_namespaces(sorted(owned))

        cleanup.callback(remove_agent_namespaces)
        cleanup.callback(controller.remove_log)
        cleanup.callback(controller.stop)
        cleanup.callback(api.close)
        try:
            controller.start()
            api.authorize(admin_token(url))
            deployed.servers.update(create_servers(api, net))
            deployed.agents.update(
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
            api.wait_status([f"/servers/{name}" for name in deployed.servers], within=60)
            create_tenants(api, deployed.tenants)
            nics = [f"/networkInterfaces/{nic}" for nic in deployed.tenants.nics]
            api.wait_status(nics, within=60)
        except BaseException:
            _print_logs(deployed)
            raise
        yield deployed
    left = (namespaces() - before) & (owned | {host.name for host in net.hosts})
    assert not left, f"namespaces left behind: {sorted(left)}"


def _print_logs(deployed: Deployment, offsets: dict[str, int] | None = None) -> None:
    offsets = offsets or {}
    for index, agent in deployed.agents.items():
        text = agent.log_since(offsets.get(f"host{index}", 0)) if agent.log_path.exists() else ""
        print(f"--- log of the agent of host{index} ---\n{text}")
    controller = deployed.controller.log_since(offsets.get("controller", 0))
    print(f"--- log of the controller ---\n{controller}")


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[None]:
    """Show what the agents and the controller logged during a failing test."""
    offsets = {f"host{i}": agent.log_size() for i, agent in deployment.agents.items()}
    offsets["controller"] = deployment.controller.log_size()
    yield
    if request.node.stash.get(FAILED, False):
        _print_logs(deployment, offsets)
