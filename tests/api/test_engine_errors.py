"""Error handling: bodies, media types, size and depth limits, validation, request ids."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from controller.app import create_app
from controller.settings import Settings
from controller.store import migrate
from controller.store.database import Database
from tests.support.bodies import acl, acl_rule, acl_rule_properties
from tests.support.nbi import (
    V1,
    Json,
    assert_absent,
    assert_error,
    assert_stored,
    get,
    get_all,
    put,
    serve,
)

ACL = f"{V1}/accessControlLists/A"
JSON = {"Content-Type": "application/json; charset=UTF-8"}
LIMIT = 2048


@pytest.fixture
async def small_client(database_url: str, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 2 KiB body limit."""
    app = create_app(Settings(database_url=database_url, max_body_bytes=LIMIT), database=database)
    async with serve(app) as http:
        yield http


async def existing_acl(client: httpx.AsyncClient) -> Json:
    return await put(client, ACL, acl(acl_rule("r1", priority=100)))


async def assert_unchanged(client: httpx.AsyncClient, before: Json | None) -> None:
    """The ACL reads back as ``before`` (``None``: it is still absent)."""
    if before is None:
        await assert_absent(client, ACL)
    else:
        assert await get(client, ACL) == before


def nested(depth: int) -> dict[str, Any]:
    """A JSON body that is ``depth`` objects deep (the body itself is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 2):
        value = {"a": value}
    return {"tags": value} if depth > 1 else {}


def padded_body(size: int) -> bytes:
    body = orjson.dumps({"tags": {"pad": ""}, "properties": {}})
    return body.replace(b'"pad":""', b'"pad":"' + b"x" * (size - len(body)) + b'"')


# -- malformed bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"properties": {', b"{'properties': {}}", b"not json", b'{"a": 1} trailing', b"\xff\xfe"],
)
async def test_malformed_json_is_400_invalid_json(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.put(ACL, content=content, headers=JSON)
    assert_error(response, 400, "InvalidJson")
    await assert_unchanged(client, None)


async def test_malformed_json_on_update_changes_nothing(client: httpx.AsyncClient) -> None:
    before = await existing_acl(client)
    response = await client.put(ACL, content=b'{"properties": {"aclRules": []', headers=JSON)
    assert_error(response, 400, "InvalidJson")
    await assert_unchanged(client, before)


async def test_empty_body_is_400_invalid_json(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, content=b"  ", headers=JSON)
    assert_error(response, 400, "InvalidJson")
    await assert_unchanged(client, None)


@pytest.mark.parametrize("content", [b"[]", b'[{"properties": {}}]', b'"text"', b"42", b"null"])
async def test_body_that_is_not_an_object_is_400_invalid_json(
    client: httpx.AsyncClient, content: bytes
) -> None:
    before = await existing_acl(client)
    response = await client.put(ACL, content=content, headers=JSON)
    assert_error(response, 400, "InvalidJson")
    await assert_unchanged(client, before)


async def test_properties_that_are_not_an_object_is_400(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json={"properties": []})
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/properties"
    await assert_unchanged(client, None)


async def test_tags_that_are_not_an_object_is_400(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json={"tags": "x", "properties": {}})
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/tags"
    await assert_unchanged(client, None)


# -- media type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json; charset=no-such-charset"},
    ],
)
async def test_put_without_a_json_content_type_is_415(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    before = await existing_acl(client)
    response = await client.put(ACL, content=b'{"properties": {}}', headers=headers)
    assert_error(response, 415, "UnsupportedMediaType")
    await assert_unchanged(client, before)


async def test_put_of_a_missing_resource_without_content_type_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(ACL, content=b'{"properties": {}}')
    assert_error(response, 415, "UnsupportedMediaType")
    await assert_unchanged(client, None)


async def test_body_in_another_declared_charset_is_decoded(client: httpx.AsyncClient) -> None:
    body = '{"tags": {"name": "caf\u00e9"}, "properties": {}}'.encode("utf-16")
    response = await client.put(
        ACL, content=body, headers={"Content-Type": "application/json; charset=utf-16"}
    )
    assert response.status_code == 201, response.text
    assert (await assert_stored(client, response.json()))["tags"] == {"name": "caf\u00e9"}


# -- size and structure limits --------------------------------------------------------------


async def test_body_over_the_limit_with_content_length_is_413(
    small_client: httpx.AsyncClient,
) -> None:
    response = await small_client.put(ACL, content=padded_body(LIMIT + 1), headers=JSON)
    assert_error(response, 413, "PayloadTooLarge")
    await assert_unchanged(small_client, None)


async def test_chunked_body_over_the_limit_is_413(small_client: httpx.AsyncClient) -> None:
    content = padded_body(LIMIT * 3)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 512):
            yield content[start : start + 512]

    response = await small_client.put(ACL, content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PayloadTooLarge")
    await assert_unchanged(small_client, None)


async def test_body_over_the_limit_on_update_changes_nothing(
    small_client: httpx.AsyncClient,
) -> None:
    before = await existing_acl(small_client)
    response = await small_client.put(ACL, content=padded_body(LIMIT + 100), headers=JSON)
    assert_error(response, 413, "PayloadTooLarge")
    await assert_unchanged(small_client, before)


async def test_body_at_the_limit_is_accepted(small_client: httpx.AsyncClient) -> None:
    content = padded_body(LIMIT)
    response = await small_client.put(ACL, content=content, headers=JSON)
    assert response.status_code == 201, response.text
    stored = await assert_stored(small_client, response.json())
    assert stored["tags"] == orjson.loads(content)["tags"]


async def test_chunked_body_under_the_limit_is_accepted(small_client: httpx.AsyncClient) -> None:
    content = padded_body(LIMIT - 10)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 100):
            yield content[start : start + 100]

    response = await small_client.put(ACL, content=chunks(), headers=JSON)
    assert response.status_code == 201, response.text
    stored = await assert_stored(small_client, response.json())
    assert stored["tags"] == orjson.loads(content)["tags"]


async def test_json_nested_deeper_than_the_limit_is_400(client: httpx.AsyncClient) -> None:
    before = await existing_acl(client)
    response = await client.put(ACL, json=nested(65))
    assert_error(response, 400, "InvalidInput")
    await assert_unchanged(client, before)


async def test_deeply_nested_arrays_are_400(client: httpx.AsyncClient) -> None:
    content = b'{"tags": {"a": ' + b"[" * 500 + b"]" * 500 + b"}}"
    response = await client.put(ACL, content=content, headers=JSON)
    assert_error(response, 400, "InvalidInput")
    await assert_unchanged(client, None)


async def test_json_nested_to_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json=nested(64))
    assert response.status_code == 201, response.text
    assert (await assert_stored(client, response.json()))["tags"] == nested(64)["tags"]


@pytest.mark.parametrize(
    "body",
    [
        {"tags": {"name": "a\u0000b"}, "properties": {}},
        {"tags": {"na\u0000me": "x"}, "properties": {}},
        acl(acl_rule("r\u00001")),
        acl(acl_rule("r1", description="\u0000")),
    ],
)
async def test_strings_with_nul_are_400(client: httpx.AsyncClient, body: Json) -> None:
    before = await existing_acl(client)
    response = await client.put(ACL, json=body)
    assert_error(response, 400, "InvalidInput")
    await assert_unchanged(client, before)


# -- validation -----------------------------------------------------------------------------


async def test_validation_failure_is_400_invalid_input_naming_the_member(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(ACL, json=acl(acl_rule("r1", priority="high")))
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/aclRules/r1/properties/priority"
    assert error["details"][0]["target"] == error["target"]
    await assert_unchanged(client, None)


async def test_validation_failure_at_a_child_uri_names_the_member(
    client: httpx.AsyncClient,
) -> None:
    before = await existing_acl(client)
    body = {"properties": acl_rule_properties(protocol="SCTP")}
    response = await client.put(f"{ACL}/aclRules/r1", json=body)
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/aclRules/r1/properties/protocol"
    await assert_unchanged(client, before)


async def test_missing_required_member_is_400_naming_it(client: httpx.AsyncClient) -> None:
    before = await existing_acl(client)
    properties = acl_rule_properties()
    del properties["sourcePortRange"]
    response = await client.put(f"{ACL}/aclRules/r2", json={"properties": properties})
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"] == "/accessControlLists/A/aclRules/r2/properties/sourcePortRange"
    await assert_unchanged(client, before)


async def test_every_invalid_member_is_listed_in_details(client: httpx.AsyncClient) -> None:
    response = await client.put(ACL, json=acl(acl_rule("r1", priority=0, action="Maybe")))
    error = assert_error(response, 400, "InvalidInput")
    targets = {d["target"] for d in error["details"]}
    assert targets == {
        "/accessControlLists/A/aclRules/r1/properties/priority",
        "/accessControlLists/A/aclRules/r1/properties/action",
    }
    assert {d["code"] for d in error["details"]} == {"InvalidInput"}
    await assert_unchanged(client, None)


async def test_semantic_validation_failure_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    before = await existing_acl(client)
    # r1 already has this priority in this direction.
    body = {"properties": acl_rule_properties(priority=100)}
    response = await client.put(f"{ACL}/aclRules/r2", json=body)
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"].endswith("/priority")
    await assert_unchanged(client, before)


@pytest.mark.parametrize(
    "body",
    [
        {"properties": {"inboundDefaultAction": 7}},
        {"properties": {"inboundDefaultAction": {"x": 1}}},
        {"properties": {"aclRules": [{"resourceId": "r1", "properties": {}}]}},
        acl(acl_rule("r1", priority=[])),
    ],
)
async def test_validation_is_400_invalid_input_never_422(
    client: httpx.AsyncClient, body: Json
) -> None:
    response = await client.put(ACL, json=body)
    error = assert_error(response, 400, "InvalidInput")
    assert error["target"].startswith(
        ("/accessControlLists/A/properties/", "/accessControlLists/A/aclRules/r1/properties/")
    )
    await assert_unchanged(client, None)


# -- request ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/networking/discovery", 200),
        ("GET", f"{V1}/accessControlLists", 200),
        ("GET", f"{V1}/accessControlLists/nope", 404),
        ("GET", f"{V1}/nothingHere", 404),
        ("PATCH", f"{V1}/accessControlLists/A", 405),
        ("DELETE", f"{V1}/accessControlLists/nope", 204),
        ("PUT", f"{V1}/accessControlLists/nope/aclRules/r", 412),
    ],
)
async def test_every_response_carries_request_ids(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(
        method,
        path,
        json={"properties": acl_rule_properties()},
        headers={"x-ms-client-request-id": "client-42"},
    )
    assert response.status_code == status
    assert response.headers["x-ms-request-id"]
    assert response.headers["x-ms-client-request-id"] == "client-42"
    # None of them writes anything.
    assert await get_all(client, f"{V1}/accessControlLists") == []


async def test_request_ids_are_unique_per_request(client: httpx.AsyncClient) -> None:
    ids = {
        (await client.get(f"{V1}/accessControlLists")).headers["x-ms-request-id"] for _ in range(5)
    }
    assert len(ids) == 5


async def test_413_carries_request_ids(small_client: httpx.AsyncClient) -> None:
    response = await small_client.put(
        ACL,
        content=padded_body(LIMIT * 2),
        headers={**JSON, "x-ms-client-request-id": "big-1"},
    )
    assert_error(response, 413, "PayloadTooLarge")
    assert response.headers["x-ms-client-request-id"] == "big-1"
    await assert_unchanged(small_client, None)


async def test_400_and_415_carry_request_ids(client: httpx.AsyncClient) -> None:
    bad_json = await client.put(
        ACL, content=b"{", headers={**JSON, "x-ms-client-request-id": "c-1"}
    )
    assert_error(bad_json, 400, "InvalidJson")
    assert bad_json.headers["x-ms-client-request-id"] == "c-1"
    no_type = await client.put(ACL, content=b"{}", headers={"x-ms-client-request-id": "c-2"})
    assert_error(no_type, 415, "UnsupportedMediaType")
    assert no_type.headers["x-ms-client-request-id"] == "c-2"
    await assert_unchanged(client, None)


async def test_unreachable_database_is_503_envelope_with_request_ids() -> None:
    # Nothing listens on port 1: every connection attempt is refused.
    url = "postgresql+psycopg://sdnc@127.0.0.1:1/sdnc?connect_timeout=2"
    database = Database(url)
    app = create_app(Settings(database_url=url), database=database)
    try:
        # No lifespan: its start-up writes would fail the same way.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nc") as http:
            response = await http.get(ACL, headers={"x-ms-client-request-id": "db-down"})
    finally:
        await database.dispose()
    assert_error(response, 503, "ServiceUnavailable")
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ms-client-request-id"] == "db-down"


async def test_unexpected_error_is_500_envelope_with_request_ids(tmp_path: Path) -> None:
    path = tmp_path / "controller.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    database = Database(url)
    app = create_app(Settings(database_url=url), database=database)
    try:
        async with serve(app) as http:
            await put(http, ACL, {"properties": {}})
            # A stored document the controller cannot decode: an unexpected error on read.
            with closing(sqlite3.connect(path)) as raw, raw:
                raw.execute("UPDATE resources SET properties = '{not json'")
            response = await http.get(ACL, headers={"x-ms-client-request-id": "boom"})
    finally:
        await database.dispose()
    error = assert_error(response, 500, "InternalServerError")
    assert "not json" not in error["message"]
    assert response.headers["x-ms-client-request-id"] == "boom"
