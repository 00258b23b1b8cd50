"""The agent channel secured: ``wss://`` with the controller's certificate checked against
the agent's CA file, agents authenticating with their token or with a client certificate that
names their server, and no agent credential ever opening another server's channel. The agent
reads its token from a file or the environment, and will not send it in clear to another
machine."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from controller.agent.credentials import (
    CredentialError,
    TlsOptions,
    cleartext_problem,
    client_context,
    read_token,
)
from controller.app import create_app
from controller.core.roles import Role
from controller.server import tls_reloader
from controller.service.access import AccessService
from controller.settings import Settings
from controller.southbound.admin import agent_token
from controller.store.database import Database
from tests.support.bodies import connection, credential, server
from tests.support.nbi import PS_HEADERS, V1
from tests.support.pki import CertificateAuthority
from tests.support.secure import tls_server
from tests.support.southbound import Agents, eventually

HOSTS = ("host-a", "host-b")


@dataclass
class Channelled:
    base_url: str
    ca: CertificateAuthority
    tokens: dict[str, str]

    def channel(self, host: str) -> str:
        return f"wss://{self.base_url.split('://')[1]}/southbound/v1/servers/{host}/channel"


@pytest.fixture
async def channelled(
    database: Database, database_url: str, tmp_path: Path
) -> AsyncIterator[Channelled]:
    ca = CertificateAuthority(tmp_path)
    certificate = ca.server()
    settings = Settings(
        database_url=database_url,
        auth="token",
        tls_cert=certificate.cert_path,
        tls_key=certificate.key_path,
        tls_client_ca=ca.cert_path,
    )
    app = create_app(settings, database=database)
    _, admin = await AccessService(database).create_token("admin", Role.ADMIN)
    async with tls_server(app, settings, tls_reloader(settings)) as port:
        base_url = f"https://localhost:{port}"
        async with httpx.AsyncClient(
            verify=ca.client_trust(), headers={"Authorization": f"Bearer {admin}"}
        ) as http:
            cert = credential("X509Certificate", value="AB12")
            bodies = {"/credentials/cert": cert} | {
                f"/servers/{host}": server(connection("/credentials/cert", address=host))
                for host in HOSTS
            }
            for path, body in bodies.items():
                answer = await http.put(f"{base_url}{V1}{path}", json=body, headers=PS_HEADERS)
                assert answer.status_code == 201, answer.text
        tokens = {host: await agent_token(database, host) or "" for host in HOSTS}
        yield Channelled(base_url, ca, tokens)


async def _session_works(channelled: Channelled, token: str | None, tls: object) -> None:
    agents = Agents([channelled.base_url])
    try:
        agent = agents.start("host-a", token)  # type: ignore[arg-type]
        agent.tls = tls  # type: ignore[assignment]
        await eventually(lambda: agent.stats.snapshots >= 1, what="a snapshot over wss")
    finally:
        await agents.close()


async def test_an_agent_with_its_token_over_wss(channelled: Channelled) -> None:
    tls = client_context(TlsOptions(ca_file=channelled.ca.cert_path))
    await _session_works(channelled, channelled.tokens["host-a"], tls)


async def test_an_agent_with_a_certificate_naming_its_server(
    channelled: Channelled, tmp_path: Path
) -> None:
    # Named by a DNS alternative name; the common name is the host's FQDN.
    issued = channelled.ca.client("host-a", "host-a.fabric.test", dns_names=("host-a",))
    tls = client_context(TlsOptions(channelled.ca.cert_path, issued.cert_path, issued.key_path))
    await _session_works(channelled, None, tls)


@pytest.mark.parametrize("credential", ["token of A", "certificate of A", "nothing"])
async def test_an_agent_credential_never_opens_another_servers_channel(
    credential: str, channelled: Channelled
) -> None:
    issued = channelled.ca.client("host-a", "host-a")
    context = client_context(TlsOptions(channelled.ca.cert_path, issued.cert_path, issued.key_path))
    headers = {}
    if credential == "token of A":
        headers = {"Authorization": f"Bearer {channelled.tokens['host-a']}"}
    elif credential == "nothing":
        context = client_context(TlsOptions(channelled.ca.cert_path))
    with pytest.raises(InvalidStatus) as refused:
        async with connect(channelled.channel("host-b"), ssl=context, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403
    # The same credentials do open host A's channel.
    if credential != "nothing":
        async with connect(channelled.channel("host-a"), ssl=context, additional_headers=headers):
            pass


async def test_an_agent_without_the_ca_does_not_trust_the_controller(
    channelled: Channelled,
) -> None:
    tls = client_context(TlsOptions())  # the system's CAs: not this test's
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        async with connect(channelled.channel("host-a"), ssl=tls):
            pass


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  abc123\n")
    assert read_token(path, {"SDNC_AGENT_TOKEN": "from-env"}) == "abc123"
    assert read_token(None, {"SDNC_AGENT_TOKEN": "from-env"}) == "from-env"
    assert read_token(None, {}, given="typed") == "typed"
    assert read_token(None, {}) is None
    path.write_text("\n")
    with pytest.raises(CredentialError, match="empty"):
        read_token(path, {})
    with pytest.raises(CredentialError, match="cannot read"):
        read_token(tmp_path / "missing", {})


@pytest.mark.parametrize(
    ("controllers", "insecure", "refused"),
    [
        (["http://127.0.0.1:8080"], False, False),
        (["http://[::1]:8080"], False, False),
        (["https://198.51.100.1:8443"], False, False),
        (["https://198.51.100.1:8443", "http://198.51.100.2:8080"], False, True),
        (["http://198.51.100.2:8080"], False, True),
        (["http://controller.example:8080"], False, True),
        (["http://198.51.100.2:8080"], True, False),
    ],
)
def test_the_token_never_goes_in_clear_to_another_machine(
    controllers: list[str], insecure: bool, refused: bool
) -> None:
    problem = cleartext_problem(controllers, has_token=True, insecure=insecure)
    assert (problem is not None) is refused
    assert cleartext_problem(controllers, has_token=False, insecure=False) is None


def test_sdnc_agent_refuses_a_clear_text_token_and_hides_it(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("secret-token\n")
    command = [
        sys.executable, "-m", "controller", "agent",
        "--controller", "http://198.51.100.2:8080",
        "--server", "host-a",
        "--token-file", str(token_file),
        "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, env={"PATH": "/usr/bin"}
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to send the agent token in clear text" in result.stderr
    assert "secret-token" not in result.stderr + result.stdout
    none = subprocess.run(
        [*command[:8], "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin"},
    )
    assert none.returncode == 2
    assert "no credentials" in none.stderr
