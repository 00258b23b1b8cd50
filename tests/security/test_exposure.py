"""Secure defaults: ``sdnc serve`` without authentication listens on loopback only (unless
told ``--insecure``), the settings refuse incoherent security, and repeated failed logins from
one address are answered 429 with ``Retry-After`` while other clients go on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from controller.api.throttle import FailureThrottle
from controller.app import create_app
from controller.core.hosts import is_loopback
from controller.core.roles import Role
from controller.server import exposure_problem
from controller.service.access import AccessService
from controller.service.audit import AuditLog, AuditQuery
from controller.settings import Settings
from controller.store.database import Database, Timeouts
from tests.support.bodies import acl
from tests.support.nbi import PS_HEADERS, V1, serve


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("198.18.0.1", False),
        ("controller.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    problem = exposure_problem(Settings(), host)
    assert (problem is None) is loopback
    assert exposure_problem(Settings(insecure=True), host) is None
    assert exposure_problem(Settings(auth="token"), host) is None


def test_serve_refuses_no_authentication_on_another_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SDNC_DATA_DIR": str(tmp_path / "data")},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "--insecure" in result.stderr
    # Refused before anything was done: no database was even made.
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth": "none,token"}, "cannot be combined"),
        ({"auth": "kerberos"}, "give none, or any of"),
        ({"auth": "x509"}, "needs a client CA"),
        ({"auth": "oidc", "oidc_issuer": "https://id.example"}, "SDNC_OIDC_AUDIENCE"),
        ({"tls_cert": "a.crt"}, "go together"),
    ],
)
def test_settings_refuse_incoherent_security(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**settings)  # type: ignore[arg-type]


async def test_repeated_failed_logins_are_throttled_per_address(
    settings: Settings, database: Database
) -> None:
    secured = settings.model_copy(update={"auth": "token", "auth_failure_limit": 10})
    app = create_app(secured, database=database)
    _, good = await AccessService(database).create_token("ops", Role.OPERATOR)
    attacker = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    bystander = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with serve(app):
        async with httpx.AsyncClient(transport=attacker, base_url="http://nc") as http:
            statuses = []
            for attempt in range(50):
                answer = await http.put(
                    f"{V1}/accessControlLists/a{attempt}",
                    json=acl(),
                    headers={**PS_HEADERS, "Authorization": f"Bearer sdnc_wrong{attempt}"},
                )
                statuses.append(answer.status_code)
            assert statuses == [401] * 10 + [429] * 40
            assert answer.json()["error"]["code"] == "TooManyFailedLogins"
            assert 1 <= int(answer.headers["retry-after"]) <= 60
            # Blocked means blocked: even the right token waits.
            blocked = await http.get(f"{V1}/accessControlLists", headers=_bearer(good))
            assert blocked.status_code == 429
        async with httpx.AsyncClient(transport=bystander, base_url="http://nc") as http:
            answer = await http.put(
                f"{V1}/accessControlLists/web", json=acl(), headers={**PS_HEADERS, **_bearer(good)}
            )
            assert answer.status_code == 201
            listed = await http.get(f"{V1}/accessControlLists", headers=_bearer(good))
            assert [item["resourceId"] for item in listed.json()["value"]] == ["web"]
    # Every refusal is in the audit log, with the address it came from.
    audit: AuditLog = app.state.audit
    refused = [row for _, row in await audit.events(AuditQuery(limit=1000)) if row.status >= 400]
    assert sorted({(row.source, row.status, row.outcome) for row in refused}) == [
        ("198.51.100.7", 401, "Unauthorized"),
        ("198.51.100.7", 429, "TooManyFailedLogins"),
    ]
    assert len(refused) == 51


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_throttle_forgets_failures_once_they_leave_the_window() -> None:
    now = [1000.0]
    throttle = FailureThrottle(3, 60.0, size=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("192.0.2.1") is None
        throttle.failed("192.0.2.1")
    assert throttle.retry_after("192.0.2.1") == 60
    now[0] += 45
    assert throttle.retry_after("192.0.2.1") == 15
    now[0] += 15
    assert throttle.retry_after("192.0.2.1") is None
    # Bounded: the address not seen for the longest is forgotten first.
    for address in ("192.0.2.2", "192.0.2.3", "192.0.2.4"):
        for _ in range(3):
            throttle.failed(address)
    assert throttle.retry_after("192.0.2.2") is None
    assert throttle.retry_after("192.0.2.4") == 60


async def test_credentials_that_cannot_be_checked_are_answered_503(
    settings: Settings, database: Database, database_url: str
) -> None:
    """The database does not answer: a token cannot be looked up, nor a write made (nor its
    audit event recorded); both are answered 503 with Retry-After."""
    secured = settings.model_copy(update={"auth": "token"})
    _, good = await AccessService(database).create_token("ops", Role.OPERATOR)
    app = create_app(secured, database=database)
    async with serve(app) as http:
        broken = Database("postgresql+psycopg://nobody@127.0.0.1:9/none", timeouts=_short())
        app.state.access.database = broken
        app.state.audit.database = broken
        answer = await http.get(f"{V1}/accessControlLists", headers=_bearer(good))
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"]
        app.state.access.database = database
        service = app.state.service
        service.database = service.reader.database = broken
        put = await http.put(
            f"{V1}/accessControlLists/web", json=acl(), headers={**PS_HEADERS, **_bearer(good)}
        )
        assert put.status_code == 503, put.text
        assert put.json()["error"]["code"] == "ServiceUnavailable"
        await broken.dispose()


def _short() -> Timeouts:
    return Timeouts(total=1.0, connect=0.5)


def test_serve_refuses_symmetric_oidc_algorithms(tmp_path: Path) -> None:
    """An HMAC algorithm would let anyone holding the issuer's public key sign tokens."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SDNC_DATA_DIR": str(tmp_path / "data"),
        "SDNC_OIDC_ISSUER": "https://id.example",
        "SDNC_OIDC_AUDIENCE": "sdnc",
        "SDNC_OIDC_ALGORITHMS": "RS256,HS256",
    }
    result = subprocess.run(
        [sys.executable, "-m", "controller", "serve", "--auth", "oidc"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "must be asymmetric" in result.stderr
    assert "HS256" in result.stderr
