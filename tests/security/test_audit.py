"""The audit log: writes with the etags they replaced and produced, credential changes without
their values, ``GET /admin/v1/auditEvents`` filtering and paging, retention; and CORS, whose
refused preflights are denials like any other."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from controller.app import create_app
from controller.core.roles import Role
from controller.service.access import AccessService
from controller.service.audit import AuditLog, AuditQuery, AuditRow
from controller.settings import Settings
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule
from tests.support.nbi import PS_HEADERS, V1, serve
from tests.support.southbound import eventually

PORTAL = "https://portal.contoso.test"
EVENTS = "/admin/v1/auditEvents"


class Client:
    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.http = http
        self.tokens = tokens

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str = "admin",
        body: object = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        sent = {**PS_HEADERS, "Authorization": f"Bearer {self.tokens[as_]}", **(headers or {})}
        return await self.http.request(method, path, headers=sent, json=body, **kw)

    async def events(self, **params: str) -> list[dict[str, Any]]:
        answer = await self.call("GET", EVENTS, params=params)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["value"])

    async def event_of(self, answer: httpx.Response) -> dict[str, Any]:
        wanted = answer.headers["x-ms-request-id"]
        found: list[dict[str, Any]] = []

        async def written() -> bool:
            found[:] = [e for e in await self.events() if e["requestId"] == wanted]
            return bool(found)

        await eventually(written, what="the audit event")
        return found[0]


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[Client]:
    secured = settings.model_copy(update={"auth": "token", "cors_origins": PORTAL})
    app = create_app(secured, database=database)
    access = AccessService(database)
    tokens = {role.value: (await access.create_token(role.value, role))[1] for role in Role}
    async with serve(app) as http:
        yield Client(http, tokens)


async def test_writes_are_recorded_with_the_etags_before_and_after(client: Client) -> None:
    created = await client.call("PUT", f"{V1}/accessControlLists/web", as_="operator", body=acl())
    first = await client.event_of(created)
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert first["etagBefore"] is None
    assert first["etagAfter"] == created.headers["etag"]
    assert first["principal"] == "token:operator"
    assert first["authentication"] == "token"
    assert (first["method"], first["status"]) == ("PUT", 201)
    # A child written at its own URI changes its top-level resource's etag.
    child = await client.call(
        "PUT",
        f"{V1}/accessControlLists/web/aclRules/r1",
        as_="operator",
        body=acl_rule("r1"),
    )
    second = await client.event_of(child)
    assert second["etagBefore"] == created.headers["etag"]
    assert second["etagAfter"] == child.headers["etag"] != created.headers["etag"]
    assert second["path"] == f"{V1}/accessControlLists/web/aclRules/r1"
    # A failed write is recorded too: nothing changed.
    refused = await client.call(
        "PUT",
        f"{V1}/accessControlLists/web",
        as_="operator",
        body=acl(),
        headers={"If-Match": 'W/"00000000-0000-0000-0000-000000000000"'},
    )
    assert refused.status_code == 412
    third = await client.event_of(refused)
    assert third["etagBefore"] == child.headers["etag"]
    assert third["etagAfter"] is None
    deleted = await client.call("DELETE", f"{V1}/accessControlLists/web", as_="operator")
    fourth = await client.event_of(deleted)
    assert (fourth["etagBefore"], fourth["etagAfter"]) == (child.headers["etag"], None)
    # Reads are not recorded; each write once, whether its transaction recorded it (the
    # committed ones) or the middleware did (the refused one).
    await client.call("GET", f"{V1}/accessControlLists", as_="reader")
    events = await client.events()
    assert sorted(e["requestId"] for e in events) == sorted(
        event["requestId"] for event in (first, second, third, fourth)
    )


async def test_filters_and_pages(client: Client) -> None:
    for name in ("a", "b", "c"):
        await client.call("PUT", f"{V1}/accessControlLists/{name}", body=acl())
    await client.call("PUT", f"{V1}/accessControlLists/a/aclRules/r", body=acl_rule("r"))
    await client.call("PUT", f"{V1}/accessControlLists/aa", as_="operator", body=acl())
    await eventually(lambda: _count(client, 5), what="five events")
    # The path and below it, in any casing; not a sibling whose name starts alike.
    below_a = await client.events(path="/Networking/V1/AccessControlLists/A")
    assert [e["path"] for e in below_a] == [
        f"{V1}/accessControlLists/a/aclRules/r",
        f"{V1}/accessControlLists/a",
    ]
    assert [e["path"] for e in await client.events(principal="token:operator")] == [
        f"{V1}/accessControlLists/aa"
    ]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await client.events(**{"from": future}) == []
    assert len(await client.events(to=future)) == 5
    pages: list[list[str]] = []
    answer = await client.call("GET", EVENTS, params={"$top": "2"})
    while True:
        body = answer.json()
        pages.append([e["path"].rsplit("/", 1)[-1] for e in body["value"]])
        if "nextLink" not in body:
            break
        answer = await client.call("GET", body["nextLink"])
    assert pages == [["aa", "r"], ["c", "b"], ["a"]]
    for wrong in ({"from": "yesterday"}, {"to": "0.5"}, {"$top": "0"}, {"$top": "1001"}):
        bad = await client.call("GET", EVENTS, params=wrong)
        assert bad.status_code == 400, wrong
        assert bad.json()["error"]["code"] == "InvalidInput"


async def _count(client: Client, wanted: int) -> bool:
    return len(await client.events()) >= wanted


async def test_only_admins_read_the_audit(client: Client) -> None:
    for role in ("reader", "operator"):
        answer = await client.call("GET", EVENTS, as_=role)
        assert answer.status_code == 403


async def test_retention_prunes_old_events(database: Database) -> None:
    now = datetime.now(UTC)
    audit = AuditLog(database, retention=timedelta(days=30), clock=lambda: now)
    for age in (40, 31, 29, 1):
        await audit.record(
            AuditRow(now - timedelta(days=age), "p", "token", None, "PUT", f"/x/{age}", 200)
        )
    assert await audit.prune() == 2
    kept = [row.path for _, row in await audit.events(AuditQuery())]
    assert kept == ["/x/1", "/x/29"]


def test_credential_changes_are_recorded_without_their_values(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SDNC_DATA_DIR": str(tmp_path), "SDNC_LOG_LEVEL": "error"}

    def sdnc(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "controller", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        return result.stdout

    sdnc("db", "upgrade")
    token = sdnc("token", "create", "ci", "--role", "operator").strip()
    sdnc("token", "revoke", "ci")
    sdnc("cert", "allow", "CN=scvmm,O=Contoso", "--role", "admin")
    rows = sqlite3.connect(tmp_path / "controller.db").execute(
        "SELECT principal, auth_method, method, path, status, outcome FROM audit_events ORDER BY id"
    )
    events = list(rows)
    assert [(e[2], e[3], e[4]) for e in events] == [
        ("POST", "/admin/v1/tokens/ci", 201),
        ("DELETE", "/admin/v1/tokens/ci", 204),
        ("PUT", "/admin/v1/certificates/subject:CN=scvmm,O=Contoso", 200),
    ]
    assert all(e[0].startswith("local:") and e[1] == "cli" for e in events)
    assert token not in str(events)
    assert token[len("sdnc_") :] not in str(events)


async def test_cors_allows_the_listed_origin_with_credentials(client: Client) -> None:
    answer = await client.http.options(
        f"{V1}/accessControlLists",
        headers={
            "Origin": PORTAL,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == PORTAL
    assert answer.headers["access-control-allow-credentials"] == "true"
    read = await client.call("GET", f"{V1}/accessControlLists", headers={"Origin": PORTAL})
    assert read.headers["access-control-allow-origin"] == PORTAL


async def test_a_preflight_from_a_foreign_origin_is_refused_and_audited(client: Client) -> None:
    answer = await client.http.options(
        f"{V1}/accessControlLists/web",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "Forbidden"
    assert "access-control-allow-origin" not in answer.headers
    events = await client.events()
    assert [(e["method"], e["status"]) for e in events] == [("OPTIONS", 403)]
    assert events[0]["outcome"].startswith("CORS: Disallowed CORS origin")
    # A simple request from there is served (credentials decide), but the browser is not
    # told it may read the answer.
    read = await client.call(
        "GET", f"{V1}/accessControlLists", headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in read.headers


@pytest.mark.parametrize("origins", ["*", "https://a.example,*", "portal.example"])
def test_cors_origins_are_explicit(origins: str) -> None:
    with pytest.raises(ValidationError, match="never"):
        Settings(cors_origins=origins)
