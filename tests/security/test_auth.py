"""The security table: each way in that must fail, over real TLS handshakes with real tokens,
certificates made for the test and JWTs of a local issuer, with the status (or the failed
handshake) it gets, the database unchanged; and the ways in that must work, as controls."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.store.database import Database
from tests.support.bodies import acl
from tests.support.nbi import V1
from tests.support.secure import exchange
from tests.support.secured import Secured, secured_controller

WEB = f"{V1}/accessControlLists/web"
NEW = f"{V1}/accessControlLists/new"
Headers = Callable[[Secured], dict[str, str]]


@pytest.fixture
async def secured(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[Secured]:
    # A limit no case reaches: every request comes from 127.0.0.1 (the throttle has its test).
    async with secured_controller(
        database, database_url, tmp_path, auth_failure_limit=10_000
    ) as controller:
        yield controller


def _basic(password: str, user: str = "DOMAIN\\ops") -> Headers:
    def headers(s: Secured) -> dict[str, str]:
        encoded = base64.b64encode(f"{user}:{s.tokens.get(password, password)}".encode())
        return {"Authorization": f"Basic {encoded.decode()}"}

    return headers


def _bearer(token: str) -> Headers:
    return lambda s: s.bearer(token)


def _jwt(**claims: object) -> Headers:
    return lambda s: {"Authorization": f"Bearer {s.issuer.token(**claims)}"}  # type: ignore[arg-type]


def _none() -> Headers:
    return lambda s: {}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    headers: Headers
    status: int
    cert: str | None = None
    path: str = NEW


DENIED = [
    Case("no credentials", "PUT", _none(), 401),
    Case("no credentials reading", "GET", _none(), 401, path=WEB),
    Case("wrong token", "PUT", _bearer("sdnc_" + "x" * 43), 401),
    Case("not a token at all", "PUT", _bearer("hunter2"), 401),
    Case("revoked token", "PUT", _bearer("revoked"), 401),
    Case("expired token", "PUT", _bearer("expired"), 401),
    Case("wrong Basic password", "PUT", _basic("nope"), 401),
    Case("reader writing", "PUT", _bearer("reader"), 403),
    Case("reader deleting", "DELETE", _bearer("reader"), 403, path=WEB),
    Case("reader writing with Basic", "PUT", _basic("reader"), 403),
    Case("unlisted thumbprint", "PUT", _none(), 401, cert="unlisted"),
    Case("reader certificate writing", "PUT", _none(), 403, cert="reader"),
    Case("JWT for another audience", "PUT", _jwt(roles="admin", audience="someone-else"), 401),
    Case("JWT of another issuer", "PUT", _jwt(roles="admin", issuer="https://evil.test"), 401),
    Case("expired JWT", "PUT", _jwt(roles="admin", lifetime=-120), 401),
    Case("JWT not yet valid", "PUT", _jwt(roles="admin", not_before=600), 401),
    Case(
        "alg none JWT",
        "PUT",
        lambda s: {"Authorization": f"Bearer {s.issuer.unsigned()}"},
        401,
    ),
    Case("JWT signed with an unpublished key", "PUT", _jwt(roles="admin", unpublished=True), 401),
    Case("JWT without a role", "PUT", _jwt(roles=["auditor"]), 401),
    Case("reader JWT writing", "PUT", _jwt(roles="reader"), 403),
    Case("operator token on the admin API", "GET", _bearer("operator"), 403, path="/admin/v1/x"),
]


@pytest.mark.parametrize("case", DENIED, ids=[case.name for case in DENIED])
async def test_denied(case: Case, secured: Secured) -> None:
    before = await secured.snapshot()
    answer = await secured.request(
        case.method, case.path, headers=case.headers(secured), cert=case.cert, body=acl()
    )
    assert answer.status_code == case.status, answer.text
    error = answer.json()["error"]
    assert error["code"] == {401: "Unauthorized", 403: "Forbidden"}[case.status]
    assert answer.headers["x-ms-request-id"]
    if case.status == 401:
        challenges = answer.headers.get_list("www-authenticate")
        assert 'Bearer realm="sdnc"' in challenges
        assert any(challenge.startswith("Basic ") for challenge in challenges)
    assert await secured.snapshot() == before
    event = await secured.audited(answer.headers["x-ms-request-id"])
    assert event["status"] == case.status
    assert event["method"] == case.method
    assert event["path"] == case.path
    assert event["outcome"] == error["code"]
    assert event["source"] == "127.0.0.1"
    if case.status == 403:  # known, not allowed: the audit says who
        assert event["principal"] is not None
        assert event["authentication"] in ("token", "x509", "oidc")
    # The audit never holds a credential.
    assert "sdnc_" not in str(event)


@pytest.mark.parametrize("cert", ["expired", "other CA"])
async def test_certificates_that_fail_the_handshake(cert: str, secured: Secured) -> None:
    before = await secured.snapshot()
    assert await exchange(secured.port, secured.trust(cert), NEW) == b""
    assert await secured.snapshot() == before


ALLOWED = [
    Case("operator token", "PUT", _bearer("operator"), 201),
    Case("operator token as the Basic password", "PUT", _basic("operator"), 201),
    Case("Basic with an empty user name", "PUT", _basic("admin", user=""), 201),
    Case("reader token reading", "GET", _bearer("reader"), 200, path=WEB),
    Case("operator certificate by thumbprint", "PUT", _none(), 201, cert="operator"),
    Case("reader certificate by subject, reading", "GET", _none(), 200, cert="reader", path=WEB),
    Case("operator JWT", "PUT", _jwt(roles=["reader", "operator"]), 201),
    Case("reader JWT reading", "GET", _jwt(roles="reader"), 200, path=WEB),
    Case("no credentials for the discovery", "GET", _none(), 200, path="/networking/discovery"),
]


@pytest.mark.parametrize("case", ALLOWED, ids=[case.name for case in ALLOWED])
async def test_allowed(case: Case, secured: Secured) -> None:
    answer = await secured.request(
        case.method, case.path, headers=case.headers(secured), cert=case.cert, body=acl()
    )
    assert answer.status_code == case.status, answer.text


async def test_refusals_do_not_tell_whether_a_resource_exists(secured: Secured) -> None:
    """``web`` exists, ``ghost`` does not: a reader's write and an anonymous read of either
    are answered alike."""
    for method, headers in (("PUT", secured.bearer("reader")), ("GET", {}), ("DELETE", {})):
        answers = [
            await secured.request(method, f"{V1}/accessControlLists/{name}", headers=headers)
            for name in ("web", "ghost")
        ]
        assert answers[0].status_code == answers[1].status_code in (401, 403)
        assert answers[0].json() == answers[1].json()


async def test_the_issuer_keys_are_cached(secured: Secured) -> None:
    for _ in range(5):
        answer = await secured.request("GET", WEB, headers=_jwt(roles="reader")(secured))
        assert answer.status_code == 200
    # Tokens whose signature fails do not make it fetch the keys again and again.
    for _ in range(5):
        answer = await secured.request("GET", WEB, headers=_jwt(unpublished=True)(secured))
        assert answer.status_code == 401
    assert secured.issuer.jwks_requests == 1
