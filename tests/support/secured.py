"""A controller secured as the issue describes, for the security suite: TLS with a client CA,
authentication by token, client certificate and OIDC (a local issuer), served by the
controller's own server class on 127.0.0.1; tokens and certificates of every role, and the
ones that must not get in (revoked, expired, unlisted, from another CA).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from controller.app import create_app
from controller.core.roles import Role
from controller.service.access import AccessService
from controller.settings import Settings
from controller.store.database import Database
from controller.tls import TlsFiles, TlsReloader
from tests.support.bodies import acl
from tests.support.nbi import PS_HEADERS, V1
from tests.support.oidc import AUDIENCE, Issuer, running_issuer
from tests.support.pki import CertificateAuthority, Issued
from tests.support.secure import tls_server
from tests.support.southbound import eventually


@dataclass
class Secured:
    base_url: str
    port: int
    ca: CertificateAuthority
    issuer: Issuer
    access: AccessService
    tokens: dict[str, str] = field(default_factory=dict)
    certs: dict[str, Issued] = field(default_factory=dict)
    app: Any = None

    def trust(self, cert: str | None = None) -> ssl.SSLContext:
        """A client context trusting the server, presenting certificate ``cert`` if named."""
        if cert is None:
            return self.ca.client_trust()
        return self.certs[cert].client_context(self.ca)

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.get(token, token)}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        cert: str | None = None,
        body: object = None,
    ) -> httpx.Response:
        async with httpx.AsyncClient(verify=self.trust(cert), timeout=30) as http:
            return await http.request(
                method,
                f"{self.base_url}{path}",
                headers={**PS_HEADERS, **(headers or {})},
                json=body,
            )

    async def audited(self, request_id: str) -> dict[str, Any]:
        """The audit event of the request answered with ``request_id`` (written just after the
        answer: waited for)."""
        found: list[dict[str, Any]] = []

        async def recorded() -> bool:
            answer = await self.request(
                "GET", "/admin/v1/auditEvents", headers=self.bearer("admin")
            )
            assert answer.status_code == 200, answer.text
            found[:] = [e for e in answer.json()["value"] if e["requestId"] == request_id]
            return bool(found)

        await eventually(recorded, what=f"the audit event of {request_id}")
        return found[0]

    async def snapshot(self) -> list[Any]:
        """What an admin reads of the ACLs: equal before and after a refused request."""
        answer = await self.request("GET", f"{V1}/accessControlLists", headers=self.bearer("admin"))
        assert answer.status_code == 200, answer.text
        return list(answer.json()["value"])


@contextlib.asynccontextmanager
async def secured_controller(
    database: Database, database_url: str, directory: Path, **overrides: Any
) -> AsyncIterator[Secured]:
    ca = CertificateAuthority(directory)
    server = ca.server()
    async with running_issuer() as issuer:
        settings = Settings(
            database_url=database_url,
            auth="token,x509,oidc",
            tls_cert=server.cert_path,
            tls_key=server.key_path,
            tls_client_ca=ca.cert_path,
            oidc_issuer=issuer.url,
            oidc_audience=AUDIENCE,
            **overrides,
        )
        reloader = TlsReloader(TlsFiles(server.cert_path, server.key_path, ca.cert_path))
        app = create_app(settings, database=database)
        access: AccessService = app.state.access
        async with tls_server(app, settings, reloader) as port:
            secured = Secured(f"https://localhost:{port}", port, ca, issuer, access, app=app)
            await _credentials(secured, database)
            answer = await secured.request(
                "PUT", f"{V1}/accessControlLists/web", headers=secured.bearer("admin"), body=acl()
            )
            assert answer.status_code == 201, answer.text
            yield secured


async def _credentials(secured: Secured, database: Database) -> None:
    access = secured.access
    for role in Role:
        _, secured.tokens[role.value] = await access.create_token(role.value, role)
    _, secured.tokens["revoked"] = await access.create_token("revoked", Role.ADMIN)
    await access.revoke_token("revoked")
    # Made two hours ago, for one hour.
    past = AccessService(database, clock=lambda: datetime.now(UTC) - timedelta(hours=2))
    _, secured.tokens["expired"] = await past.create_token(
        "expired", Role.ADMIN, timedelta(hours=1)
    )
    ca = secured.ca
    other = CertificateAuthority(ca.directory, "other CA")
    secured.certs = {
        "operator": ca.client("operator", "scvmm.contoso.test"),
        "reader": ca.client("reader", "monitor.contoso.test"),
        "unlisted": ca.client("unlisted", "unlisted.contoso.test"),
        "expired": ca.client("expired", "scvmm.contoso.test", expired=True),
        "other CA": other.client("stranger", "scvmm.contoso.test"),
    }
    await access.allow_certificate(secured.certs["operator"].thumbprint, Role.OPERATOR)
    reader_subject = secured.certs["reader"].subject
    await access.allow_certificate(reader_subject.replace(",", ", ").lower(), Role.READER)
    # The expired one and the other CA's carry the operator's subject: refused all the same.
    await access.allow_certificate(secured.certs["expired"].thumbprint, Role.ADMIN)
    await access.allow_certificate(secured.certs["other CA"].thumbprint, Role.ADMIN)
